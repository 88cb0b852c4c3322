"""Everything about a server decided before anything starts: the engine and its python, what it serves (a
checked model folder, or a GGUF file for llama.cpp), the port, and the command line (`sqlsft serve
--dry-run` prints this plan)."""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import read_json
from sqlsft.common.hardware import gpu_count
from sqlsft.common.processes import port_in_use, shell_line
from sqlsft.models.resolve import resolve_model_folder
from sqlsft.serve.engines import EngineChoice, choose_engine
from sqlsft.serve.engines.base import Launch, LaunchRequest
from sqlsft.serve.engines.llama_cpp import LlamaCppEngine
from sqlsft.serve.engines.vllm import VllmEngine
from sqlsft.serve.gguf_file import servable_gguf
from sqlsft.serve.model_folder import check_model_folder
from sqlsft.serve.registry import recorded_servers, server_workdir
from sqlsft.serve.servable import ServableModel

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MODEL_NAME = "local"
DEFAULT_MAX_MODEL_LEN = 2048


# vLLM's allowed --max-lora-rank values (it refuses others); an adapter's rank rounds up to the next one.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


@dataclass(frozen=True)
class ServerPlan:
    model: ServableModel
    choice: EngineChoice
    request: LaunchRequest
    launch: Launch
    adapter_name: str | None = None  # a LoRA adapter served on its base: the name clients ask for

    @property
    def host(self) -> str:
        return self.request.host

    @property
    def port(self) -> int:
        return self.request.port

    @property
    def model_name(self) -> str:
        return self.adapter_name or self.request.model_name

    @property
    def command(self) -> list[str]:
        return self.launch.command

    def launch_line(self) -> str:
        return shell_line(self.launch.command)

    def prepare(self) -> None:
        """Write what the command line refers to (chat template, links), just before the engine starts."""
        self.choice.engine.prepare(self.launch, self.request)


def check_port_number(port: int) -> None:
    if not 1 <= port <= 65535:
        raise SqlsftError(f"Port {port} is out of range.", "Use a port between 1024 and 65535.")


def plan_server(
    model: str | None = "latest",
    *,
    engine: str = "auto",
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    model_name: str = DEFAULT_MODEL_NAME,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    gpus: int | None = None,
    api_key: str | None = None,
    engine_python: str | None = None,
    extra_args: Sequence[str] = (),
    quant: str | None = None,
    make_gguf: bool = True,
    console: Console | None = None,
) -> ServerPlan:
    """Resolve and check everything, and build the engine's command line; start nothing.

    llama.cpp serves a GGUF: `quant` picks a run's export (default: the newest); `make_gguf=False` (a dry
    run) refuses a run without one instead of exporting it here (progress on `console`)."""
    check_port_number(port)
    name = model_name.strip()
    if not name or any(c.isspace() for c in name):
        raise SqlsftError(
            f"Served model name '{model_name}' is empty or has spaces.", "Pass --model-name NAME."
        )
    if max_model_len < 1:
        raise SqlsftError(f"--max-model-len {max_model_len} must be 1 or more.")
    gpu_total = gpu_count()
    if gpus is not None and gpus > max(gpu_total, 1):
        raise SqlsftError(
            f"--gpus {gpus} asks for more GPUs than this machine has ({gpu_total or 'none'}).",
            "Lower --gpus.",
        )
    adapter = unmerged_adapter(model)
    if adapter is not None and engine == "auto":
        engine = VllmEngine.name  # only vLLM serves an adapter on its base
    choice = _choose_engine(model, engine, engine_python, gpu_total > 0, quant)
    adapter_name = None
    if adapter is not None:
        checked, adapter_args = _adapter_on_base(adapter, choice.name, name, console)
        extra_args, adapter_name, name = (*adapter_args, *extra_args), name, f"{name}-base"
    elif choice.name == LlamaCppEngine.name:
        checked = servable_gguf(model, quant, console, make=make_gguf)
    else:
        folder, label = resolve_model_folder(model, console)
        checked = check_model_folder(folder, label)
    request = LaunchRequest(
        model=checked,
        host=host,
        port=port,
        model_name=name,
        max_model_len=max_model_len,
        gpus=gpus,
        gpu_total=gpu_total,
        api_key=api_key,
        extra_args=tuple(extra_args),
        workdir=server_workdir(port),
    )
    launch = choice.engine.launch(choice.python, request)
    env = {**launch.env, "PYTHONUNBUFFERED": "1"}
    notes = (*launch.notes, *choice.notes)
    if adapter_name:
        notes += (f"LoRA adapter {adapter[1]} served as '{adapter_name}' on its base (served as '{name}')",)
    launch = Launch(launch.command, launch.cwd, env, notes)
    return ServerPlan(checked, choice, request, launch, adapter_name)


def unmerged_adapter(model: str | None) -> tuple[str, Path] | None:
    """(run name, adapter folder) when MODEL is a run trained with --no-merge: adapter/ and no model/."""
    from sqlsft.runs.registry import resolve_run
    from sqlsft.train.adapter import adapter_dir, has_adapter

    spec = (model or "latest").strip()
    if spec.endswith(".gguf"):
        return None
    try:
        run = resolve_run(spec)
    except SqlsftError:
        return None  # not a run: a model folder or a hub id, resolved the usual way
    if run.selected or run.model_dir.is_dir() or not has_adapter(run.path):
        return None  # RUN:best and RUN:checkpoint-N are model folders
    return run.name, adapter_dir(run.path)


def _adapter_on_base(
    adapter: tuple[str, Path], engine: str, name: str, console: Console | None
) -> tuple[ServableModel, tuple[str, ...]]:
    """The run's base model, checked like any folder and given the run's chat template, and the vLLM
    arguments that serve the adapter on it under the name clients ask for."""
    from sqlsft.runs.run_info import read_run_info
    from sqlsft.serve.model_folder import chat_template_text

    run_name, folder = adapter
    if engine != VllmEngine.name:
        raise SqlsftError(
            f"Run {run_name} kept only its LoRA adapter (--no-merge); only vLLM serves an adapter on its base, "
            f"not --engine {engine}.",
            "Use --engine vllm (`sqlsft engines install vllm`), or train again without --no-merge.",
        )
    base = read_run_info(folder.parent).model_path
    if not base:
        raise SqlsftError(
            f"Run {run_name} does not say which base model its adapter was trained on (run.json)."
        )
    base_folder, _ = resolve_model_folder(base, console)
    checked = check_model_folder(base_folder, f"{run_name} (LoRA adapter on {base})")
    template = chat_template_text(folder)
    if template:
        checked = replace(checked, chat_template=template)
    config = read_json(folder / "adapter_config.json")
    rank = int(config.get("r") or 16)
    max_rank = next((r for r in VLLM_LORA_RANKS if r >= rank), rank)
    args = ("--enable-lora", "--lora-modules", f"{name}={folder}", "--max-lora-rank", str(max_rank))
    return checked, args


def _choose_engine(
    model: str | None, engine: str, engine_python: str | None, has_gpu: bool, quant: str | None
) -> EngineChoice:
    """The engine for MODEL: a .gguf file or --quant (a GGUF export) only llama.cpp serves; `auto` takes
    llama.cpp on a CPU when a GGUF is at hand without converting anything."""
    from sqlsft.export.served import gguf_for_serving, is_gguf_file

    spec = (model or "latest").strip()
    gguf_only = "a .gguf file" if is_gguf_file(spec) else ("--quant (a GGUF export)" if quant else None)
    if gguf_only and engine not in ("auto", LlamaCppEngine.name):
        raise SqlsftError(
            f"Only --engine llama.cpp serves {gguf_only}, not --engine {engine}.",
            "Pass --engine llama.cpp (or auto)."
            if quant is None
            else "Pass --engine llama.cpp, or leave out --quant.",
        )
    if gguf_only and engine == "auto":
        choice = choose_engine(LlamaCppEngine.name, engine_python, has_gpu)
        return replace(choice, reason=f"{gguf_only}, which only llama.cpp serves")

    def gguf_at_hand() -> str | None:
        found = gguf_for_serving(spec, quant, make=False)
        return found.path.name if found else None

    return choose_engine(engine, engine_python, has_gpu=has_gpu, gguf_at_hand=gguf_at_hand)


def free_port(host: str = DEFAULT_HOST, start: int = DEFAULT_PORT) -> int:
    """The first port from `start` that nothing listens on and no sqlsft server has recorded."""
    recorded = {r.port for r in recorded_servers()}
    for candidate in range(start, min(start + 200, 65536)):
        if candidate not in recorded and not port_in_use(host, candidate):
            return candidate
    raise SqlsftError(f"No free port between {start} and {start + 199}.")


def check_port_free(host: str, port: int) -> None:
    """A clear error, with a free port to use instead, when the port is taken."""
    check_port_number(port)
    taken = next((r for r in recorded_servers() if r.port == port), None)
    if taken is not None:
        raise SqlsftError(
            f"Port {port} is already used by a sqlsft server ({taken.engine}, {taken.model_name}, pid {taken.pid}).",
            f"Stop it with `sqlsft server stop --port {port}`, or pick another port: --port {free_port(host, port + 1)}.",
        )
    if port_in_use(host, port):
        raise SqlsftError(
            f"Port {port} on {host} is already in use by another program.",
            f"Pick another one, for example --port {free_port(host, port + 1)}.",
        )
