"""A server's life: start the planned engine in its own process group, wait until /health answers, keep it
in the foreground (Ctrl-C, SIGTERM or SIGHUP stop it) or leave it detached, and stop the whole group.

The engine process starts in exactly one place, `start_server`, with its command line reported first.
"""

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

from sqlsft.common.errors import SqlsftError
from sqlsft.common.processes import error_line, kill_group, log_tail, start_in_group
from sqlsft.serve.plan import (
    ServerPlan,
    check_port_free,
    plan_server,
)
from sqlsft.serve.progress import ConsoleProgress, StartupProgress
from sqlsft.serve.registry import (
    Health,
    ServerRecord,
    health,
    log_path,
    record_for_port,
    recorded_servers,
    remove_record,
    write_record,
)

DEFAULT_STARTUP_TIMEOUT_S = 600
# SIGTERM first; what still runs this long after (an engine finishing requests, freeing memory) gets SIGKILL
SERVER_STOP_GRACE_S = 15.0
WILDCARD_HOSTS = ("0.0.0.0", "::")

_children: dict[int, subprocess.Popen] = {}  # servers this process started: reaped here, never left zombies


def start_server(
    model: str = "latest",
    *,
    detach: bool = True,
    timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
    progress: StartupProgress | None = None,
    **options: Any,
) -> ServerRecord:
    """Start a server and return once /health answers. `options`: plan_server's keywords (engine, port,
    host, model_name, max_model_len, gpus, api_key, engine_python, extra_args, quant).

    `detach=True`: the server outlives this process (stop it with `stop_server`). `detach=False`: it
    dies with this process; the caller stops it (`running_server` does). Either way it is recorded,
    so `sqlsft server status` and `sqlsft chat` find it. On a crash or time-out during start-up the
    whole process group is stopped and SqlsftError says why (last log line, log path).
    """
    progress = progress or StartupProgress()
    recorded_servers()  # clean stale state first: a dead server's port is free again
    options.setdefault("console", getattr(progress, "console", None))  # a GGUF export made on first use
    plan = plan_server(model, **options)
    check_port_free(plan.host, plan.port)
    if plan.host in WILDCARD_HOSTS and not plan.request.api_key:
        progress.warn(
            f"--host {plan.host} without --api-key: anyone who can reach this machine can use the model. "
            "Pass --api-key (vllm, llama.cpp) or keep --host 127.0.0.1."
        )
    for text in plan.model.warnings:
        progress.warn(text)
    progress.planned(plan)
    plan.prepare()
    log_file = log_path(plan.port)
    proc = start_in_group(
        plan.command, log_file, env=plan.launch.env, cwd=plan.launch.cwd, die_with_parent=not detach
    )
    _children[proc.pid] = proc
    record = ServerRecord(
        pid=proc.pid,
        port=plan.port,
        host=plan.host,
        model=str(plan.model.path),
        model_name=plan.model_name,
        engine=plan.choice.name,
        log_file=str(log_file),
        started_at=time.time(),
        api_key_set=bool(plan.request.api_key),
        create_time=_create_time(proc.pid),
        command=plan.command,
        detached=detach,
    )
    write_record(record)
    try:
        _wait_healthy(proc, plan, str(log_file), timeout_s, progress)
    except BaseException:
        _stop_group(proc.pid, grace_s=5)
        remove_record(plan.port, proc.pid)
        raise
    record.api_key = plan.request.api_key
    return record


def _create_time(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return time.time()


def _wait_healthy(
    proc: subprocess.Popen, plan: ServerPlan, log_file: str, timeout_s: float, progress: StartupProgress
) -> None:
    start = time.monotonic()
    with progress.waiting(plan, log_file) as tick:
        while True:
            code = proc.poll()
            if code is not None:
                lines = log_tail(log_file, 15)
                progress.log_lines(lines)
                raise SqlsftError(
                    f"The {plan.choice.name} engine exited with code {code} during start-up: {error_line(lines)}",
                    f"Full log: {log_file}",
                )
            if health(plan.host, plan.port) is Health.HEALTHY:
                progress.healthy(plan, time.monotonic() - start)
                return
            elapsed = time.monotonic() - start
            if elapsed > timeout_s:
                raise SqlsftError(
                    f"The {plan.choice.name} engine did not answer /health within {timeout_s:.0f} s; stopped it.",
                    f"Raise --timeout, or read the log: {log_file}",
                )
            tick(elapsed, log_tail(log_file, 3))
            time.sleep(0.5)


def _stop_group(pid: int, grace_s: float = SERVER_STOP_GRACE_S) -> None:
    """SIGTERM the server's process group (the engine and its workers), SIGKILL what remains after grace."""
    kill_group(pid, grace_s=grace_s, child=_children.pop(pid, None))


def wait_for_exit(record: ServerRecord, poll_s: float = 0.5) -> int | None:
    """Block until the server's process ends; its exit code when this process started it."""
    proc = _children.get(record.pid)
    if proc is not None:
        code = proc.wait()
        remove_record(record.port, record.pid)
        return code
    while record_for_port(record.port) is not None:
        time.sleep(poll_s)
    return None


def stop_server(port: int) -> bool:
    """Stop the sqlsft server on `port` (SIGTERM to its group, SIGKILL after a grace); False if none runs."""
    record = record_for_port(port)
    if record is None:
        return False
    _stop_group(record.pid)
    remove_record(port, record.pid)
    return True


def stop_all() -> list[int]:
    return [record.port for record in recorded_servers() if stop_server(record.port)]


@contextlib.contextmanager
def running_server(model: str = "latest", **kwargs: Any) -> Iterator[ServerRecord]:
    """Start a server (not detached unless asked), yield its record, and always stop it.

    Takes start_server's keywords; `console=` (plain progress lines on it) and `served_model_name=` (the
    old name of model_name) are also accepted, for the stages that start a server on the side."""
    kwargs.setdefault("detach", False)
    if "served_model_name" in kwargs:
        kwargs["model_name"] = kwargs.pop("served_model_name")
    console = kwargs.pop("console", None)
    if console is not None and kwargs.get("progress") is None:
        kwargs["progress"] = ConsoleProgress(console)
    previous = _interrupt_on_termination()
    try:
        record = start_server(model, **kwargs)
        try:
            yield record
        finally:
            stop_server(record.port)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _interrupt_on_termination() -> dict:
    """While a server runs on the side of eval, export, chat or bench, a plain `kill` (SIGTERM) or a closing
    terminal (SIGHUP) raises KeyboardInterrupt, as Ctrl-C does: the command ends its usual interrupted way and
    the `finally` above stops the engine. (Python's default SIGTERM ends the process at once and orphaned it.)"""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _terminated) for sig in (signal.SIGTERM, signal.SIGHUP)}


class _Interrupted(Exception):
    pass


def _raise_interrupt(signum, frame) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def serve(
    model: str = "latest", *, detach: bool = False, progress: StartupProgress | None = None, **kwargs
) -> int:
    """`sqlsft serve`: start a server; in the foreground, keep it until Ctrl-C (or SIGTERM/SIGHUP).

    Returns the exit code for the CLI: 0 after a clean stop or a detached start, 130 when start-up was
    interrupted; an engine that dies on its own is an error.
    """
    progress = progress or StartupProgress()
    # Ctrl-C, a terminal closing (SIGHUP) or a plain `kill` must stop the engine too, not orphan it
    # (SIGINT explicitly: a shell's background job starts with it ignored).
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in signals}
    record = None
    try:
        record = start_server(model, detach=detach, progress=progress, **kwargs)
        progress.ready(record, detach)
        if detach:
            return 0
        code = wait_for_exit(record)
        progress.log_lines(log_tail(record.log_file, 15))
        raise SqlsftError(
            f"The {record.engine} engine on port {record.port} exited on its own with code {code}.",
            f"Full log: {record.log_file}",
        )
    except (KeyboardInterrupt, _Interrupted):
        if record is not None and not detach:
            progress.stopping(record)
            stop_server(record.port)
            progress.stopped(record)
            return 0
        progress.cancelled()
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
