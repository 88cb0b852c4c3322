"""Sandbox processes, seen from the parent: start them, hand each a job, kill one that overruns.

SQLite's progress handler cannot stop one slow built-in function call (instr(), LIKE, replace() on
multi-MB strings ran 8-45 s), and neither can `Connection.interrupt()` (measured: an instr() of 2 MB by
1 MB ran its whole 30 s after an interrupt at 1 s). So jobs run in separate processes (worker.py), and
the parent kills one that has not answered GRACE_S after its phase's deadline. Processes are kept and
reused, one job at a time each: a round trip adds about 1 ms to a query on a busy 2-core machine (a
simple query took 1.8-2.3 ms instead of 0.8-1.1 ms in-process); starting a process costs 0.3-2 s
(importing sqlglot), paid once per process and after each kill.
"""

import atexit
import contextlib
import os
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import sqlsft

GRACE_S = 0.5  # how long past a phase's deadline the process may take to stop by itself
READY_TIMEOUT_S = 120.0  # starting a process imports sqlglot: slow on a busy machine
# Jobs are CPU-bound: more of them at once than there are cores only stretches each one towards its
# time limit. Callers beyond this wait for a turn (the wait is not part of any time limit).
MAX_RUNNING = max(
    2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
)
# Where `import sqlsft` finds this very copy of the package, whatever the child's working folder is.
_PACKAGE_ROOT = str(Path(sqlsft.__file__).resolve().parent.parent)
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from sqlsft.sql.worker import main; main(sys.argv[1:])"
)


class SandboxStopped(Exception):
    """The process did not finish the job: killed over its time limit, died, or never started."""

    def __init__(self, message: str, phase: str | None = None, timed_out: bool = False) -> None:
        super().__init__(message)
        self.phase = phase
        self.timed_out = timed_out


class SandboxFailed(Exception):
    """The job raised inside the process (which lives on); the message says what."""


class _Process:
    def __init__(self, address_space_bytes: int) -> None:
        job_read, job_write = os.pipe()
        result_read, result_write = os.pipe()
        env = dict(os.environ, PYTHONHASHSEED="0")
        try:
            # -P: no working folder on sys.path. A new session: a Ctrl-C at the terminal reaches the
            # parent only, which decides; the process ends when its job pipe closes.
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-P",
                    "-c",
                    _BOOTSTRAP,
                    _PACKAGE_ROOT,
                    *map(str, (job_read, result_write, address_space_bytes)),
                ],
                pass_fds=(job_read, result_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (job_write, result_read):
                os.close(fd)
            raise SandboxStopped(f"the sandbox process could not start: {exc}") from exc
        finally:
            os.close(job_read)
            os.close(result_write)
        self.jobs = Connection(job_write, readable=False)
        self.results = Connection(result_read, writable=False)
        try:
            self._receive(time.monotonic() + READY_TIMEOUT_S, None)
        except SandboxStopped as exc:
            raise SandboxStopped(f"the sandbox process did not start ({exc})") from exc

    def _receive(self, kill_at: float, phase: str | None) -> tuple[str, Any]:
        remaining = kill_at - time.monotonic()
        if remaining <= 0 or not self.results.poll(remaining):
            self.kill()
            raise SandboxStopped("stopped: over the time limit", phase, timed_out=True)
        try:
            return self.results.recv()
        except (EOFError, OSError) as exc:
            code = self.kill()
            how = f"killed by signal {-code}" if code and code < 0 else f"exit code {code}"
            raise SandboxStopped(f"the sandbox process ended ({how}; over its memory limit?)", phase) from exc

    def call(self, kind: str, payload: Any, first_phase_s: float) -> Any:
        self.jobs.send((kind, payload))
        kill_at, phase = time.monotonic() + first_phase_s + GRACE_S, None
        while True:
            tag, value = self._receive(kill_at, phase)
            if tag == "phase":
                phase, seconds = value
                kill_at = time.monotonic() + seconds + GRACE_S
            elif tag == "done":
                return value
            else:
                raise SandboxFailed(value)

    def kill(self) -> int | None:
        with contextlib.suppress(OSError):  # already gone
            self.popen.kill()
        code = self.popen.wait()
        self.close_pipes()
        return code

    def close_pipes(self) -> None:
        self.jobs.close()
        self.results.close()

    def retire(self) -> None:
        """Let the process end by itself (it does when its job pipe closes) and reap it."""
        self.close_pipes()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()


class SandboxPool:
    """At most MAX_RUNNING jobs at once; idle processes kept for the default limits (others get their own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turns = threading.BoundedSemaphore(MAX_RUNNING)
        self._idle: list[_Process] = []
        self._forgotten: list[_Process] = []

    def call(
        self, kind: str, payload: Any, first_phase_s: float, address_space_bytes: int, reuse: bool
    ) -> Any:
        """Run one job in a sandbox process. Raises SandboxStopped or SandboxFailed."""
        with self._turns:
            return self._call(kind, payload, first_phase_s, address_space_bytes, reuse)

    def _call(
        self, kind: str, payload: Any, first_phase_s: float, address_space_bytes: int, reuse: bool
    ) -> Any:
        process = self._take() if reuse else None
        if process is None:
            process = _Process(address_space_bytes)
        healthy = False
        try:
            reply = process.call(kind, payload, first_phase_s)
            healthy = True
            return reply
        except SandboxFailed:
            healthy = True
            raise
        except SandboxStopped:
            raise
        except BaseException:  # KeyboardInterrupt mid-job: the process state is unknown
            process.kill()
            raise
        finally:
            if healthy:
                self._give_back(process, reuse)

    def _take(self) -> _Process | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give_back(self, process: _Process, reuse: bool) -> None:
        with self._lock:
            if reuse and len(self._idle) < MAX_RUNNING:
                self._idle.append(process)
                return
        process.retire()

    def shutdown(self) -> None:
        """End every idle process (they also end by themselves when this process exits)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for process in idle:
            process.retire()

    def _after_fork_in_child(self) -> None:
        # The processes belong to the parent: a forked child (prepare's worker pool) starts its own.
        for process in self._idle:
            process.close_pipes()
        self._forgotten.extend(self._idle)  # kept referenced: their Popen must not be reaped from here
        self._idle = []
        self._lock = threading.Lock()
        self._turns = threading.BoundedSemaphore(MAX_RUNNING)


POOL = SandboxPool()
atexit.register(POOL.shutdown)
os.register_at_fork(after_in_child=POOL._after_fork_in_child)
