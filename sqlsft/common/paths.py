"""Where sqlsft keeps things: caches, runs, and the templates and presets it ships."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def cache_dir(override: str | Path | None = None) -> Path:
    """Caches (prepared data sets, the converted embedded model): ~/.cache/sqlsft or $SQLSFT_CACHE_DIR."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("SQLSFT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sqlsft"


def runs_dir(override: str | Path | None = None) -> Path:
    """Training runs: ./runs or $SQLSFT_RUNS_DIR."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("SQLSFT_RUNS_DIR")
    return Path(env).expanduser() if env else Path.cwd() / "runs"


def state_dir() -> Path:
    """Live process state (servers started with --detach): under the cache folder."""
    return cache_dir() / "state"


def _resource_dir(name: str) -> Path:
    # Inside an installed wheel the folders are packaged under sqlsft/_resources;
    # in a source checkout (editable install) they sit at the repository's top level.
    packaged = PACKAGE_DIR / "_resources" / name
    if packaged.is_dir():
        return packaged
    return PACKAGE_DIR.parent / name


def templates_dir() -> Path:
    return _resource_dir("templates")


def presets_dir() -> Path:
    return _resource_dir("presets")
