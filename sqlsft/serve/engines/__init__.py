"""The serving engines, one file each, and the choice between them (`--engine auto|vllm|transformers|llama.cpp`).

A new engine is one new file with an `Engine` subclass, listed in ENGINE_TYPES.
"""

from collections.abc import Callable
from dataclasses import dataclass

from sqlsft.common.errors import SqlsftError
from sqlsft.common.hardware import gpu_count
from sqlsft.serve.engines.base import Engine
from sqlsft.serve.engines.llama_cpp import INSTALL_COMMAND as LLAMA_CPP_INSTALL_COMMAND
from sqlsft.serve.engines.llama_cpp import LlamaCppEngine
from sqlsft.serve.engines.transformers import TransformersEngine
from sqlsft.serve.engines.vllm import INSTALL_COMMAND, VllmEngine

ENGINE_TYPES: dict[str, type[Engine]] = {
    "vllm": VllmEngine,
    "transformers": TransformersEngine,
    "llama.cpp": LlamaCppEngine,
}
ENGINES = ("auto", *ENGINE_TYPES)


def get_engine(name: str) -> Engine:
    if name not in ENGINE_TYPES:
        raise SqlsftError(f"Unknown engine '{name}'.", f"Use one of: {', '.join(ENGINES)}.")
    return ENGINE_TYPES[name]()


@dataclass(frozen=True)
class EngineChoice:
    engine: Engine
    python: str
    reason: str
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.engine.name


def choose_engine(
    engine: str = "auto",
    engine_python: str | None = None,
    has_gpu: bool | None = None,
    gguf_at_hand: Callable[[], str | None] | None = None,
) -> EngineChoice:
    """Which engine, run by which python. `auto`: vLLM when a GPU and a vLLM build that uses it are
    present; else llama.cpp when it is installed and `gguf_at_hand()` names a GGUF that exists already (a
    .gguf, `embedded`, a run's export: auto never quantizes a model on its own); else transformers serve
    (vLLM on a CPU starts far slower than transformers serve)."""
    if engine not in ENGINES:
        raise SqlsftError(f"Unknown engine '{engine}'.", f"Use one of: {', '.join(ENGINES)}.")
    if has_gpu is None:
        has_gpu = gpu_count() > 0
    if engine != "auto":
        chosen = get_engine(engine)
        found = chosen.locate(engine_python, has_gpu)
        if not found.usable:
            raise SqlsftError(found.problem, chosen.install_hint)
        return EngineChoice(chosen, found.python, f"asked for; {found.detail} from {found.origin}")
    vllm = VllmEngine().locate(engine_python, has_gpu)
    if has_gpu and vllm.usable and not vllm.cpu_only:
        return EngineChoice(VllmEngine(), vllm.python, f"a GPU and {vllm.detail} ({vllm.origin}) are present")
    notes: tuple[str, ...] = ()
    if not has_gpu:
        why = "no GPU"
        llama = LlamaCppEngine().locate(engine_python, has_gpu)
        gguf = gguf_at_hand() if llama.usable and gguf_at_hand is not None else None
        if gguf:
            return EngineChoice(LlamaCppEngine(), llama.python, f"no GPU, {llama.detail} and a GGUF ({gguf})")
        faster = "a GGUF that llama.cpp serves faster"
        notes = (
            (f"`sqlsft export MODEL` makes {faster}",)
            if llama.usable
            else (f"`{LLAMA_CPP_INSTALL_COMMAND}` and `sqlsft export MODEL` make {faster}",)
        )
    elif vllm.usable:
        why = f"only a CPU build of vLLM was found ({vllm.detail}, {vllm.origin})"
    else:
        why = f"vLLM is not installed (`{INSTALL_COMMAND}` installs it)"
    fallback = TransformersEngine()
    found = fallback.locate(engine_python, has_gpu)
    if not found.usable:
        raise SqlsftError(found.problem, fallback.install_hint)
    return EngineChoice(fallback, found.python, f"{why}, so transformers serve", notes)


def engine_statuses() -> dict[str, str]:
    """One line per engine for `sqlsft env`: usable (which build, from where) or what to do."""
    has_gpu = gpu_count() > 0
    lines = {}
    for name, engine_type in ENGINE_TYPES.items():
        try:
            lines[f"engine {name}"] = engine_type().locate(None, has_gpu).status_line()
        except SqlsftError as exc:  # e.g. $SQLSFT_VLLM_PYTHON names a python that does not exist
            lines[f"engine {name}"] = f"not found: {exc.message}"
    return lines
