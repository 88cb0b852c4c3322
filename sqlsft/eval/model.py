"""Which model eval asks: MODEL resolved once (a run, or a folder / hub id / `embedded` / .gguf file), and the
server that answers for it (the one at --url, or one started here and stopped on the way out)."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from sqlsft.common.errors import SqlsftError
from sqlsft.common.openai_target import NO_KEY, OpenAITarget
from sqlsft.eval.answering import ServedModel
from sqlsft.eval.options import EvalOptions

if TYPE_CHECKING:
    from sqlsft.runs.registry import Run


@dataclass(frozen=True)
class EvalModel:
    label: str  # the run's name (`RUN:best` for a checkpoint of it), else MODEL as given
    run: "Run | None"  # the training run MODEL names (its data and report folder), if any
    folder: Path | None  # what a server loads: a model folder or a .gguf file (None when --url answers)


def resolve_eval_model(spec: str, console: Console, *, with_folder: bool = True) -> EvalModel:
    """MODEL -> run and model folder, once per command; an unknown MODEL fails here, before any data work.

    `with_folder=False` (a server at --url answers): MODEL only names the run whose data and folder to use.
    A .gguf file is a model with no run (served by llama.cpp); a run served by llama.cpp is its export."""
    from sqlsft.export.served import is_gguf_file
    from sqlsft.runs.registry import LATEST, resolve_run, split_selection

    if is_gguf_file(spec):
        path = Path(spec).expanduser()
        if with_folder and not path.is_file():
            raise SqlsftError(f"GGUF file {spec} does not exist.", "Pass an existing .gguf file.")
        return EvalModel(spec, None, path.absolute() if with_folder else None)

    try:
        run = resolve_run(spec)
    except SqlsftError:
        if spec == LATEST or split_selection(spec)[1] is not None:
            raise
        run = None
    if not with_folder:
        return EvalModel(run.label if run is not None else spec, run, None)
    if run is not None:  # RUN:best is labelled so, and its report keyed by its own folder
        return EvalModel(run.label, run, run.final_model_dir().absolute())  # engines run in their own folder
    from sqlsft.models.resolve import resolve_model_folder

    folder, _ = resolve_model_folder(spec, console)
    return EvalModel(spec, None, folder)


@contextmanager
def answering_server(
    model: EvalModel, options: EvalOptions, console: Console, *, model_name: str | None, api_key: str | None
) -> Iterator[ServedModel]:
    """A server started for `model` (its resolved folder), stopped on the way out."""
    from sqlsft.serve import free_port, running_server

    if model.folder is None:
        raise SqlsftError(
            "Nothing to evaluate.", "Pass a MODEL (latest, a run, a folder, a hub id, a .gguf) or --url."
        )
    kwargs: dict = {"engine": options.engine, "port": options.port or free_port(), "console": console}
    if api_key:
        kwargs["api_key"] = api_key
    if model_name:
        kwargs["model_name"] = model_name
    console.print(
        f"Starting a server for {model.label} (stopped when eval ends)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    from sqlsft.models.resolve import EMBEDDED

    # llama.cpp serves `embedded` from the package's own GGUF, not from an export of its converted folder
    served = EMBEDDED if model.label == EMBEDDED and options.engine == "llama.cpp" else str(model.folder)
    with running_server(served, **kwargs) as record:
        target = OpenAITarget(record.url, record.model_name, record.api_key or NO_KEY)
        yield ServedModel(target, model.label, f"started by eval ({record.engine})")
