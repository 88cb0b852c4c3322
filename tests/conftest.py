"""Shared fixtures. Every test session gets its own cache and runs folders, so nothing leaks into ~/.cache."""

import os
import signal
from pathlib import Path

import pytest

# setuptools first, before any test imports the stdlib's distutils: torch's inductor (FlexAttention's compiled
# kernel) imports setuptools, whose distutils shim then fails an assertion
import setuptools  # noqa: F401

ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "test-artifacts"

# A suite started in the background (`pytest &` in a script, nohup) has SIGINT ignored, and every process it
# starts would inherit that: the Ctrl-C tests would signal processes that cannot hear it. A handled signal
# is reset to its default in a child, so handling it here gives the children Python's usual Ctrl-C.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def isolated_sqlsft_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("sqlsft-home")
    saved = {
        k: os.environ.get(k)
        for k in ("SQLSFT_CACHE_DIR", "SQLSFT_RUNS_DIR", "WANDB_MODE", "HF_HUB_DISABLE_TELEMETRY")
    }
    os.environ["SQLSFT_CACHE_DIR"] = str(base / "cache")
    os.environ["SQLSFT_RUNS_DIR"] = str(base / "runs")
    os.environ["WANDB_MODE"] = "disabled"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    yield base
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny Gemma 3 with a small tokenizer and Gemma's chat template."""
    from tests.tiny_model import build_tiny_gemma

    return build_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma"))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave files worth looking at (screenshots, reports): test-artifacts/ in the repo."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through Playwright (Playwright's own browser download fails here); one per
    test module, so Playwright's event loop never outlives the module that drives it."""
    from playwright.sync_api import sync_playwright

    if not Path("/usr/bin/chromium").exists():
        pytest.fail(
            "Debian's chromium is missing: apt-get install -y chromium (bash scripts/setup.sh --browser)"
        )
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield instance
        instance.close()
