"""`sqlsft server status|logs|stop`: the running servers with a live health check, an engine's log (also of
a server that already stopped or crashed), and stopping one or all. Each returns data; cli/ renders it."""

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlsft.common.errors import SqlsftError
from sqlsft.common.processes import log_tail
from sqlsft.serve.lifecycle import stop_all, stop_server
from sqlsft.serve.registry import (
    HealthCheck,
    ServerRecord,
    check_health,
    log_path,
    record_for_port,
    recorded_servers,
    servers_dir,
)


@dataclass(frozen=True)
class ServerStatus:
    record: ServerRecord
    health: HealthCheck

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.record.url,
            "health": str(self.health),
            "uptime_s": round(self.record.uptime_s, 1),
            **self.record.to_json(),
        }


def server_statuses() -> list[ServerStatus]:
    """Every live server sqlsft started, by port, with its /health answer now."""
    return [ServerStatus(r, check_health(r.host, r.port)) for r in recorded_servers()]


def pick_port(port: int | None) -> int:
    """--port if given, else the only running server's port; a clear error when that is ambiguous."""
    if port is not None:
        return port
    records = recorded_servers()
    if len(records) == 1:
        return records[0].port
    if not records:
        raise SqlsftError(
            "No sqlsft server is running.", "Start one with `sqlsft serve` (add --detach to background it)."
        )
    ports = ", ".join(str(r.port) for r in records)
    raise SqlsftError(f"Several sqlsft servers are running (ports {ports}).", "Pick one with --port.")


def stop(port: int | None = None, all_servers: bool = False) -> list[int]:
    """The servers stopped, by port; an error when there is nothing to stop."""
    if all_servers:
        stopped = stop_all()
        if not stopped:
            raise SqlsftError("No sqlsft server is running: nothing to stop.")
        return stopped
    if port is not None and record_for_port(port) is None:
        running = [r.port for r in recorded_servers()]
        hint = f"Running: port {', '.join(map(str, running))}." if running else "None is running."
        raise SqlsftError(f"No sqlsft server on port {port}.", hint)
    chosen = pick_port(port)
    if not stop_server(chosen):
        raise SqlsftError(f"No sqlsft server on port {chosen}.")
    return [chosen]


def show_logs(port: int | None = None, lines: int = 50, follow: bool = False) -> Iterator[str]:
    """The engine log of a running server, or of the last one that ran on --port (or at all)."""
    if lines < 1:
        raise SqlsftError(f"--lines {lines} must be 1 or more.")
    if port is None:
        records = recorded_servers()
        if len(records) > 1:
            pick_port(None)  # raises: ambiguous
        logs = sorted(servers_dir().glob("*/engine.log"), key=lambda p: p.stat().st_mtime)
        if not records and not logs:
            raise SqlsftError("No server log yet.", "Start a server with `sqlsft serve`.")
        port = records[0].port if records else int(logs[-1].parent.name)  # else the newest log
    path = log_path(port)
    if not path.is_file():
        raise SqlsftError(f"No server log for port {port} ({path}).", "Start one with `sqlsft serve`.")
    if not follow:
        yield from log_tail(path, lines)
        return
    yield from follow_log(path, lines, alive=lambda: record_for_port(port) is not None)


def follow_log(path: Path, lines: int, alive: Callable[[], bool]) -> Iterator[str]:
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
