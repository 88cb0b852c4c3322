"""Everything about a server decided before anything starts: the model folder, the engine and its python,
the port, and the command line (`sqlsft serve --dry-run` prints this plan)."""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlsft.common.errors import SqlsftError
from sqlsft.common.hardware import gpu_count
from sqlsft.common.processes import port_in_use, shell_line
from sqlsft.models.resolve import resolve_model_folder
from sqlsft.serve.engines import EngineChoice, choose_engine
from sqlsft.serve.engines.base import Launch, LaunchRequest
from sqlsft.serve.model_folder import ModelFolder, check_model_folder
from sqlsft.serve.registry import recorded_servers, server_workdir

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MODEL_NAME = "local"
DEFAULT_MAX_MODEL_LEN = 2048


@dataclass(frozen=True)
class ServerPlan:
    model: ModelFolder
    choice: EngineChoice
    request: LaunchRequest
    launch: Launch

    @property
    def host(self) -> str:
        return self.request.host

    @property
    def port(self) -> int:
        return self.request.port

    @property
    def model_name(self) -> str:
        return self.request.model_name

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
) -> ServerPlan:
    """Resolve and check everything, and build the engine's command line; start nothing."""
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
    folder, label = resolve_model_folder(model)
    checked = check_model_folder(folder, label)
    choice = choose_engine(engine, engine_python, has_gpu=gpu_total > 0)
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
    launch = Launch(launch.command, launch.cwd, {**launch.env, "PYTHONUNBUFFERED": "1"}, launch.notes)
    return ServerPlan(checked, choice, request, launch)


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
