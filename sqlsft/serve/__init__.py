"""`sqlsft serve`: find a model, check it, start an OpenAI-compatible engine for it (vLLM, transformers
serve or llama.cpp), wait until it is healthy, and manage it until it is stopped.

    registry.py      the server state files (one per port) and the ServerRecord they hold; /health
    servable.py      ServableModel: what an engine serves, checked (a model folder or a GGUF file)
    model_folder.py  is a folder servable as trained (weights, tokenizer, chat template, end-of-turn ids)
    gguf_file.py     is a GGUF servable as trained (chat template, stop token); which GGUF serves MODEL
    engines/         one file per engine behind one small interface, and the choice between them
    plan.py          everything decided before a start: engine, python, port, command line (--dry-run)
    lifecycle.py     start, wait until healthy, foreground or detached, stop the process group
    manage.py        `sqlsft server status|logs|stop`
    install.py       `sqlsft engines install`: an engine's own pinned environment
    progress.py      the hooks the stage reports through (cli/views/serve.py draws them)

What other stages use is imported from here.
"""

import sys

from sqlsft.common.hardware import gpu_count
from sqlsft.serve.engines import ENGINES, choose_engine
from sqlsft.serve.engines.vllm import VLLM_PYTHON_ENV, VllmEngine
from sqlsft.serve.lifecycle import running_server, start_server, stop_all, stop_server
from sqlsft.serve.model_folder import check_model_folder
from sqlsft.serve.plan import free_port
from sqlsft.serve.registry import ServerRecord, health, recorded_servers


def vllm_python(engine_python: str | None = None) -> tuple[str, str]:
    """The python that runs vLLM here and how it was found (see engines/vllm.py for the order);
    this environment's python when there is none."""
    found = VllmEngine().locate(engine_python, has_gpu=gpu_count() > 0)
    return (found.python, found.origin) if found.python else (sys.executable, "this environment")


__all__ = [
    "ENGINES",
    "VLLM_PYTHON_ENV",
    "ServerRecord",
    "check_model_folder",
    "choose_engine",
    "free_port",
    "health",
    "recorded_servers",
    "running_server",
    "start_server",
    "stop_all",
    "stop_server",
    "vllm_python",
]
