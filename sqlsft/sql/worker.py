"""The sandbox process: runs jobs from its parent (pool.py) one at a time, under an address-space limit.

Started as `python -P -c <bootstrap> JOB_FD RESULT_FD ADDRESS_SPACE_BYTES` with PYTHONHASHSEED=0 (row
digests must hash alike in every sandbox process). It reads `(kind, payload)` jobs from JOB_FD and
writes `("phase", (phase, seconds))` as each timed phase starts, then `("done", reply)` or
`("failed", message)` to RESULT_FD. It ends when its parent closes the job pipe (or dies).
"""

import os
import resource
import sys
import time
from multiprocessing.connection import Connection

# Imported before the first job, so that no job pays for the imports inside its time limit.
from sqlsft.sql import dialect, engine
from sqlsft.sql.results import Phase


def _run_query(payload, begin_phase):
    return engine.execute(payload, begin_phase, time.perf_counter)


def _judge_text(payload, begin_phase):
    predicted_sql, gold_sql, timeout_s = payload
    begin_phase(Phase.SQLGLOT, timeout_s)
    return dialect.judge_text(predicted_sql, gold_sql)


_HANDLERS = {"query": _run_query, "judge_text": _judge_text}


def serve(jobs: Connection, results: Connection) -> None:
    def begin_phase(phase: Phase, seconds: float) -> None:
        results.send(("phase", (str(phase), seconds)))

    while True:
        try:
            kind, payload = jobs.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("done", _HANDLERS[kind](payload, begin_phase))
        except Exception as exc:  # MemoryError included: the job failed, this process goes on
            reply = ("failed", f"{type(exc).__name__}: {exc}")
        try:
            results.send(reply)
        except Exception as exc:  # a reply that cannot be pickled or is too big for the memory left
            results.send(("failed", f"the result could not be sent back ({type(exc).__name__})"))


def main(argv: list[str]) -> None:
    job_fd, result_fd, address_space = (int(arg) for arg in argv)
    jobs, results = Connection(job_fd, writable=False), Connection(result_fd, readable=False)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        address_space = min(address_space, hard)
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    results.send(("ready", os.getpid()))
    serve(jobs, results)


if __name__ == "__main__":
    main(sys.argv[1:])
