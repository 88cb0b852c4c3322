"""`transformers serve`: an OpenAI-compatible server that runs on the CPU, from sqlsft's own environment
(the `transformers[serving]` extra).

It answers only to the exact MODEL string it was started with, and lists the Hugging Face cache on
/v1/models: so it is started on a link named like the served name (in the server's own folder) with a
private cache that holds just that name, and clients ask for `local`, not a path.
"""

import shutil
import sys
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.serve.engines.base import (
    Engine,
    EngineLocation,
    Launch,
    LaunchRequest,
    probe_python,
    resolve_python,
)

SERVING_MODULES = ("transformers", "fastapi", "uvicorn", "openai")
FAKE_REVISION = "0" * 40


class TransformersEngine(Engine):
    name = "transformers"
    install_hint = "Install it with `pip install 'transformers[serving]'`."

    def locate(self, engine_python: str | None, has_gpu: bool) -> EngineLocation:
        if engine_python:
            return self.check_python(resolve_python(engine_python, "--engine-python"), "--engine-python")
        return self.check_python(sys.executable, "this environment")

    def check_python(self, python: str, origin: str) -> EngineLocation:
        probe = probe_python(python, SERVING_MODULES, ["transformers"])
        if probe.missing_modules:
            missing = ", ".join(probe.missing_modules)
            return EngineLocation(
                None,
                origin,
                f"not usable: missing {missing} (pip install 'transformers[serving]')",
                problem=f"transformers serve is not usable in {python}: missing {missing}.",
            )
        version = probe.versions.get("transformers", "?")
        return EngineLocation(
            python, origin, f"transformers {version} serve", requirement=f"transformers=={version}"
        )

    def launch(self, python: str, request: LaunchRequest) -> Launch:
        name = request.model_name
        if request.api_key:
            raise SqlsftError(
                "transformers serve cannot check an API key.",
                "Use --engine vllm or llama.cpp for --api-key, or keep the server on 127.0.0.1 without a key.",
            )
        if "@" in name or ":" in name or ".." in name.split("/") or name.startswith("/"):
            raise SqlsftError(
                f"Served model name '{name}' cannot be used with transformers serve.",
                "Use a plain name such as `local` (no '@', ':' or '..').",
            )
        notes = ["transformers serve uses one device: --gpus is ignored"] if (request.gpus or 0) > 1 else []
        device = "auto" if request.gpu_total else "cpu"
        command = [python, "-m", "transformers.cli.transformers", "serve", name,
                   "--host", request.host, "--port", str(request.port), "--device", device]  # fmt: skip
        dtype_args, dtype_notes = self.cpu_dtype_args(request)
        env = {
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_HUB_CACHE": str(request.workdir / "hub"),
            "HF_HUB_OFFLINE": "1",
        }
        cwd = request.workdir / "names"
        return Launch([*command, *dtype_args, *request.extra_args], cwd, env, (*notes, *dtype_notes))

    def prepare(self, launch: Launch, request: LaunchRequest) -> None:
        super().prepare(launch, request)
        shutil.rmtree(launch.cwd, ignore_errors=True)
        _replace_link(launch.cwd / request.model_name, request.model.path)
        hub = request.workdir / "hub"
        repo = hub / ("models--" + request.model_name.replace("/", "--"))
        shutil.rmtree(hub, ignore_errors=True)
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(FAKE_REVISION)
        snapshot = repo / "snapshots" / FAKE_REVISION
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").symlink_to(request.model.path / "config.json")


def _replace_link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(target, target_is_directory=True)
