"""The two ways tests run the sqlsft CLI (the only ones):

- `invoke(*args)`: in this process, through Typer's CliRunner (fast; the result has exit_code, stdout, stderr).
- `run_process(*args)`: the installed `sqlsft` script in a child process, for what must cross a real process
  boundary (signals, servers, detached children, the console as a pipe).
"""

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

SQLSFT = str(Path(sys.executable).parent / "sqlsft")


def invoke(*args: str, env: dict | None = None):
    from sqlsft.cli import app

    runner = CliRunner()
    return runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})}, catch_exceptions=False)


def run_process(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([SQLSFT, *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def one_error_line(result) -> str:
    """The error a failed command printed, asserting it is one `error:` line and no traceback."""
    code = result.returncode if hasattr(result, "returncode") else result.exit_code
    stderr = result.stderr
    assert code != 0, f"exit 0; stdout: {result.stdout}"
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert starts, stderr
    return " ".join(" ".join(lines[starts[0] :]).split())
