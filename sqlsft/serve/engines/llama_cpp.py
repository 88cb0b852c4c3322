"""llama.cpp through llama-cpp-python's OpenAI server: a GGUF file on the CPU (or offloaded to a GPU with
--gpus, given a CUDA build), from sqlsft's own environment (the `llama` extra) or --engine-python.

The command runs `llama_cpp_server.py` next to this file: llama-cpp-python's own server and settings,
plus /health. Without --chat_format the server prompts with the GGUF's `tokenizer.chat_template` and stops
at its EOS/EOT tokens, which `sqlsft export` writes; a GGUF without a template is refused before the start
(except the embedded package's, which gets its training template in a file).
"""

import json
import sys
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.hardware import detect_hardware
from sqlsft.serve.engines.base import (
    Engine,
    EngineLocation,
    Launch,
    LaunchRequest,
    has_option,
    probe_python,
    resolve_python,
)
from sqlsft.serve.engines.llama_cpp_server import API_KEY_ENV

SERVER_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
DISTRIBUTION = "llama-cpp-python"
LLAMA_CPP_PIN = "llama-cpp-python[server]==0.3.36"
INSTALL_COMMAND = "uv sync --extra llama"
SERVER_MODULE = "sqlsft.serve.engines.llama_cpp_server"
SERVER_FILE = Path(__file__).with_name("llama_cpp_server.py")
TEMPLATE_CONFIG_FILE = "chat_template.json"


class LlamaCppEngine(Engine):
    name = "llama.cpp"
    install_hint = (
        f"Install it with `{INSTALL_COMMAND}` (a checkout: `bash scripts/setup.sh --llama`) or "
        f"`pip install '{LLAMA_CPP_PIN}'` (builds llama.cpp once, about 5 minutes); or use --engine transformers."
    )

    def locate(self, engine_python: str | None, has_gpu: bool) -> EngineLocation:
        if engine_python:
            return self.check_python(resolve_python(engine_python, "--engine-python"), "--engine-python")
        return self.check_python(sys.executable, "this environment")

    def check_python(self, python: str, origin: str) -> EngineLocation:
        probe = probe_python(python, SERVER_MODULES, [DISTRIBUTION])
        if probe.missing_modules:
            missing = ", ".join(probe.missing_modules)
            return EngineLocation(
                None,
                origin,
                f"not usable: missing {missing} (`{INSTALL_COMMAND}` installs it)",
                problem=f"llama.cpp is not usable in {python}: missing {missing}.",
            )
        version = probe.versions.get(DISTRIBUTION, "?")
        return EngineLocation(
            python, origin, f"{DISTRIBUTION} {version}", requirement=f"{DISTRIBUTION}=={version}"
        )

    def launch(self, python: str, request: LaunchRequest) -> Launch:
        model = request.model
        if not model.is_gguf:
            raise SqlsftError(f"llama.cpp serves a GGUF file, not the folder {model.path}.", "Pass a .gguf, a run or `embedded`.")  # fmt: skip
        # this environment runs the module; another one runs the file, so it needs no sqlsft installed
        entry = ["-m", SERVER_MODULE] if python == sys.executable else [str(SERVER_FILE)]
        extra = request.extra_args
        command = [
            python, *entry,
            "--model", str(model.path),
            "--host", request.host,
            "--port", str(request.port),
            "--n_ctx", str(request.max_model_len),
            "--model_alias", request.model_name,
        ]  # fmt: skip
        notes = []
        if not has_option(extra, "--n_threads"):
            threads = detect_hardware().cpu_cores
            command += ["--n_threads", str(threads)]
            notes.append(f"{threads} threads (the CPU cores this process may use)")
        if request.gpus and request.gpu_total:
            command += ["--n_gpu_layers", "-1"]
            notes.append("every layer on the GPU (a CPU-only build of llama-cpp-python ignores this)")
        elif request.gpus:
            notes.append("no GPU: --gpus is ignored")
        if model.template_tokens:
            command += ["--chat_template_config", str(request.workdir / TEMPLATE_CONFIG_FILE)]
            notes.append(f"{model.label} has no chat template of its own: given the training template")
        env = {API_KEY_ENV: request.api_key} if request.api_key else {}
        return Launch([*command, *extra], request.workdir, env, tuple(notes))

    def prepare(self, launch: Launch, request: LaunchRequest) -> None:
        super().prepare(launch, request)
        if request.model.template_tokens:
            bos, end_of_turn = request.model.template_tokens
            config = {"template": request.model.chat_template, "bos_token": bos, "eos_token": end_of_turn}
            (request.workdir / TEMPLATE_CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")
