"""The CLI shell: version, help listing every subcommand, `sqlsft env`, usage errors."""

import os
import subprocess
import sys

from sqlsft import __version__


def sqlsft(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "sqlsft", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=300,
    )


def test_version():
    result = sqlsft("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"sqlsft {__version__}"


def test_help_lists_every_subcommand():
    result = sqlsft("--help")
    assert result.returncode == 0
    for command in ("env", "prepare", "train", "runs", "serve", "server", "chat", "eval", "bench"):
        assert f" {command} " in result.stdout, command
    bench = sqlsft("bench", "--help")
    for command in ("prepare", "train", "serve"):
        assert f" {command} " in bench.stdout, command


def test_env_reports_versions_hardware_engines_wandb_and_hub():
    result = sqlsft("env", "--plain", env={"WANDB_API_KEY": "", "SQLSFT_VLLM_PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    lines = dict(line[2:].split(": ", 1) for line in result.stdout.splitlines() if line.startswith("- "))
    import torch
    import transformers

    assert lines["torch"] == torch.__version__.split("+")[0] or lines["torch"] == torch.__version__
    assert lines["transformers"] == transformers.__version__
    assert lines["GPUs"].startswith("no GPU") if not torch.cuda.is_available() else "GPU" in lines["GPUs"]
    assert lines["engine vllm"].startswith("not usable: no vllm in")  # this env has no vLLM
    assert lines["engine transformers"].startswith("usable")
    assert lines["wandb"].startswith("not logged in")
    assert lines["Hugging Face hub"].startswith(("reachable", "unreachable", "offline"))


def test_unknown_command_is_a_usage_error_without_traceback():
    result = sqlsft("frobnicate")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "No such command" in result.stderr
