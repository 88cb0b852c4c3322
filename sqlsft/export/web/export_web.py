"""`sqlsft export MODEL --format web`: the page folder for a run, a model folder, `embedded` or a .gguf file.

The GGUF comes from `gguf_for_serving` (a run's export, made now with its parity checks when there is none
yet). The folder goes next to the GGUF export: `runs/<run>/export/web/` for a run.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from sqlsft.export.served import ServedGguf, export_target, gguf_for_serving, is_gguf_file
from sqlsft.export.web.page import WebPage, write_page

WEB_QUANT = "q4_k_m"  # the smallest download that keeps the model's answers (issue 12's measures)
EXAMPLES = 6


@dataclass(frozen=True)
class WebExport:
    page: WebPage
    served: ServedGguf
    examples_from: str


def web_folder(spec: str, served: ServedGguf) -> tuple[Path, object | None]:
    """(where the page goes, the training run if MODEL is one)."""
    from sqlsft.models.resolve import EMBEDDED, resolve_model_folder

    if is_gguf_file(spec):
        return served.path.with_name(f"{served.path.stem}-web"), None
    if spec.strip() == EMBEDDED:
        return served.path.parent / "web", None
    folder, _ = resolve_model_folder(spec)
    target = export_target(folder)
    if target.run is not None:
        return target.folder.parent / "web", target.run
    return target.folder / "web", None


def page_examples(run) -> tuple[list[dict], str]:
    """The run's own test rows (the split it was trained beside), else those `sqlsft chat` shows."""
    if run is not None:
        from sqlsft.data.cache import Prepared
        from sqlsft.eval.rows import run_preparation

        prepared = run_preparation(run)
        if isinstance(prepared, Prepared):
            test = prepared.split("test")
            rows = [test[i] for i in range(min(EXAMPLES, len(test)))]
            if rows:
                return rows, f"the test split of {run.name}"
    from sqlsft.chat.page import load_examples

    return load_examples(EXAMPLES), "the newest prepared test split (or the builtin set)"


def export_web(
    spec: str,
    quant: str | None = None,
    *,
    console: Console | None = None,
    template: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> WebExport:
    """Write the page folder for MODEL; returns where it is and what it holds."""
    served = gguf_for_serving(spec, quant, console)
    folder, run = web_folder(spec, served)
    examples, examples_from = page_examples(run)
    page = write_page(served.path, folder, label=served.label, examples=examples, template=template, log=log)
    return WebExport(page, served, examples_from)
