"""Child processes and ports: start a command in its own process group with its output in a log,
stop a whole group, tell whether a process lives, read the end of a log, probe a port.

Used by train (accelerate launch) and serve (the engines); each of those owns its command line.
"""

import contextlib
import errno
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlsft.common.errors import SqlsftError


def shell_line(command: list[str]) -> str:
    """The command as one line a user can paste into a shell."""
    return shlex.join(command)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, so a foreground child never outlives sqlsft."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_in_group(
    command: list[str],
    log_file: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    append: bool = False,
    die_with_parent: bool = False,
) -> subprocess.Popen:
    """Start command in a new session (its own process group), stdout and stderr into log_file.

    The log's first line is the command itself, so what ran can always be read back and rerun.
    """
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    preexec = _die_with_parent if die_with_parent and sys.platform.startswith("linux") else None
    with open(log_file, "ab" if append else "wb") as log:
        log.write(f"$ {shell_line(command)}\n".encode())
        log.flush()
        try:
            return subprocess.Popen(
                command,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches sqlsft only; sqlsft stops the group
                preexec_fn=preexec,
            )
        except OSError as exc:
            raise SqlsftError(f"Cannot start {command[0]}: {exc.strerror or exc}.") from exc


def pid_alive(pid: Any, create_time: float | None = None) -> bool:
    """Whether a process with this pid runs (and, given create_time, is the same process, not a reuse)."""
    import psutil

    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - float(create_time)) < 1.0
    except (psutil.NoSuchProcess, ValueError, TypeError, OverflowError):
        return False
    except psutil.AccessDenied:
        return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_members(pgid: int) -> list[Any]:
    import psutil

    members = []
    with contextlib.suppress(psutil.Error):
        members = psutil.Process(pgid).children(recursive=True)
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid != pgid and os.getpgid(proc.pid) == pgid and proc not in members:
                members.append(proc)
    return members


def _running(proc: Any) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_group(pgid: int, grace_s: float = 5.0, child: subprocess.Popen | None = None) -> None:
    """Leave no process behind: SIGTERM the group (and any descendant that left it), SIGKILL what
    remains after grace_s. `child`, when it is this process's Popen, is reaped so it is no zombie."""
    import psutil

    members = _group_members(pgid)
    with contextlib.suppress(psutil.Error):
        members.insert(0, psutil.Process(pgid))
    signal_group(pgid, signal.SIGTERM)
    for proc in members:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if child is not None:
            child.poll()  # reap our own child, or it stays a zombie that looks alive
        if not any(_running(proc) for proc in members) and not group_alive(pgid):
            break
        time.sleep(0.1)
    else:
        signal_group(pgid, signal.SIGKILL)
        for proc in members:
            with contextlib.suppress(psutil.Error):
                proc.kill()
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)
    psutil.wait_procs([p for p in members if _running(p)], timeout=5)


def log_tail(path: Path | str, lines: int = 20, max_bytes: int = 64_000) -> list[str]:
    """The last non-blank lines of a log, as a terminal would show them (progress bars' \\r folded)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    rows = [row.rsplit("\r", 1)[-1].rstrip() for row in text.splitlines()]
    return [row for row in rows if row.strip()][-lines:]


def error_line(lines: list[str]) -> str:
    """The line of a log tail that most likely says what went wrong."""
    for row in reversed(lines):
        if "Error" in row or "Exception" in row or "error:" in row.lower():
            return row.strip()
    return lines[-1].strip() if lines else "(empty log)"


def port_in_use(host: str, port: int) -> bool:
    """Whether binding host:port fails because something listens there (as a server would bind it).

    A port that can never be bound here (out of range, an address not of this machine) is a user
    mistake and raises SqlsftError."""
    if not 0 < int(port) < 65536:
        raise SqlsftError(f"Port {port} is out of range.", "Use a port between 1024 and 65535.")
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
