"""The servers sqlsft started: one state file per port, `state_dir()/servers/<port>.json`, read and written
only here, so that `sqlsft server status|logs|stop`, `sqlsft chat` and eval find a server started in
another terminal.

A state file is trusted only as far as its contents check out: damaged JSON, wrong types, a port that
does not match the file name, or a process that no longer runs (or is another process that reuses the
pid) make it stale, and a stale file is removed on sight. Nothing read from it can raise.
"""

import time
import types
import typing
import urllib.error
import urllib.request
from dataclasses import MISSING, asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlsft.common.files import read_json, write_json
from sqlsft.common.paths import state_dir
from sqlsft.common.processes import pid_alive


class Health(StrEnum):
    """What a server's /health endpoint says (str-valued: it prints and compares as the word)."""

    HEALTHY = "healthy"
    STARTING = "starting"  # nothing answers yet
    UNHEALTHY = "unhealthy"  # something answers, but not 200


@dataclass(frozen=True)
class HealthCheck:
    state: Health
    http_status: int | None = None

    def __str__(self) -> str:
        if self.state is Health.UNHEALTHY and self.http_status is not None:
            return f"unhealthy (HTTP {self.http_status})"
        return self.state.value


@dataclass
class ServerRecord:
    """A server sqlsft started: what its state file holds, plus the API key, which only the process that
    started the server knows (it is never written anywhere)."""

    pid: int
    port: int
    host: str
    model: str  # the model folder served
    model_name: str  # the name clients ask for
    engine: str
    log_file: str
    started_at: float
    api_key_set: bool = False
    create_time: float = 0.0  # the process's start time: a reused pid is never mistaken for our server
    command: list[str] = field(default_factory=list)
    detached: bool = True
    api_key: str | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        """The OpenAI base URL clients use (a wildcard bind address is reached through loopback)."""
        return f"http://{_url_host(connect_host(self.host))}:{self.port}/v1"

    @property
    def uptime_s(self) -> float:
        return max(0.0, time.time() - self.started_at)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["api_key"]
        return data

    @classmethod
    def from_json(cls, data: Any) -> "ServerRecord | None":
        """The record a state file describes, or None when any stored field is missing or of the wrong type."""
        if not isinstance(data, dict):
            return None
        hints = typing.get_type_hints(cls)
        values = {}
        for spec in fields(cls):
            if spec.name == "api_key" or spec.name not in data:
                continue
            value = _typed(data[spec.name], hints[spec.name])
            if value is _WRONG:
                return None
            values[spec.name] = value
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        if any(name not in values for name in required):
            return None
        # pid 0 or 1 would make a later `stop` signal this process group or init: never a server of ours
        if values["pid"] <= 1 or not 0 < values["port"] < 65536:
            return None
        return cls(**values)


_WRONG = object()


def _typed(value: Any, hint: Any) -> Any:
    """value as the field's type (an int where a float is expected is fine), or _WRONG."""
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else _WRONG
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG
    if hint in (str, bool):
        return value if isinstance(value, hint) else _WRONG
    if typing.get_origin(hint) is list:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
        return value if ok else _WRONG
    if isinstance(hint, types.UnionType):
        return value if value is None or isinstance(value, typing.get_args(hint)) else _WRONG
    return _WRONG


def servers_dir() -> Path:
    return state_dir() / "servers"


def _state_file(port: int) -> Path:
    return servers_dir() / f"{port}.json"


def server_workdir(port: int) -> Path:
    """Per-port folder: the engine's working folder, its log and the chat template it is given."""
    return servers_dir() / str(port)


def log_path(port: int) -> Path:
    return server_workdir(port) / "engine.log"


def write_record(record: ServerRecord) -> None:
    write_json(_state_file(record.port), record.to_json())


def _read_record(path: Path) -> ServerRecord | None:
    record = ServerRecord.from_json(read_json(path))
    if record is None or path.name != f"{record.port}.json":
        return None
    return record


def remove_record(port: int, pid: int) -> None:
    """Delete the port's state file if it still describes `pid` (a racing start must not drop another's)."""
    path = _state_file(port)
    record = _read_record(path)
    if record is None or record.pid == pid:
        path.unlink(missing_ok=True)


def recorded_servers() -> list[ServerRecord]:
    """Servers started by sqlsft that still run, by port; stale or damaged state files are removed on the way."""
    folder = servers_dir()
    if not folder.is_dir():
        return []
    live = []
    for path in sorted(folder.glob("*.json")):
        record = _read_record(path)
        if record is not None and pid_alive(record.pid, record.create_time):
            live.append(record)
        else:
            path.unlink(missing_ok=True)
    return sorted(live, key=lambda r: r.port)


def record_for_port(port: int) -> ServerRecord | None:
    return next((r for r in recorded_servers() if r.port == port), None)


def check_health(host: str, port: int, timeout: float = 2.0) -> HealthCheck:
    url = f"http://{_url_host(connect_host(host))}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status == 200:
                return HealthCheck(Health.HEALTHY)
            return HealthCheck(Health.UNHEALTHY, response.status)
    except urllib.error.HTTPError as exc:
        return HealthCheck(Health.UNHEALTHY, exc.code)
    except (OSError, ValueError):
        return HealthCheck(Health.STARTING)


def health(host: str, port: int, timeout: float = 2.0) -> Health:
    return check_health(host, port, timeout).state


def connect_host(host: str) -> str:
    """The address a client on this machine uses to reach a server bound to `host`."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
