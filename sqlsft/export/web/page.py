"""Write the static page folder for one GGUF: `index.html` and the page's code (templates/web/), the
runtime files (runtime/), the Python bundle (python.zip), `model.json` (what the page knows of its model
and prompts) and the GGUF itself (a hard link when it can, else a copy: never a path outside the folder,
so the folder can be copied or hosted as it is).
"""

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import write_json
from sqlsft.common.paths import templates_dir
from sqlsft.data.options import DEFAULT_TEMPLATE
from sqlsft.export.web.bundle import BUNDLE_FILE, write_bundle
from sqlsft.export.web.runtime import NPM_PACKAGES, copy_runtime

PAGE_FILES = ("index.html", "app.js", "prompt-worker.js", "sql-worker.js", "style.css")
CONFIG_FILE = "model.json"
MODEL_FILE = "model.gguf"
N_CTX = 4096
MAX_TOKENS = 512  # as `sqlsft chat`
MAX_ROWS = 1000  # rows kept per query, as the sandbox keeps
SHOWN_ROWS = 20
SQL_TIME_LIMIT_MS = 3000  # the schema and the statement together; then the SQL worker is terminated


@dataclass(frozen=True)
class WebPage:
    folder: Path
    gguf: Path  # the file inside the folder
    linked: bool  # a hard link to the source GGUF (no space used), else a copy


def page_source_dir() -> Path:
    return templates_dir() / "web"


def gguf_prompt_facts(gguf: Path) -> dict:
    """The chat template and special tokens the GGUF carries (the embedded GGUF has no template: then
    Gemma 3's, which training used too)."""
    from gguf import GGUFReader

    from sqlsft.models.chat_template import gemma3_chat_template

    try:
        reader = GGUFReader(str(gguf))
    except (OSError, ValueError) as exc:
        raise SqlsftError(f"{gguf} is not a readable GGUF file: {exc}") from None
    fields = reader.fields

    def text(key: str) -> str | None:
        field = fields.get(key)
        return None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8")

    def token(key: str) -> str | None:
        ids, tokens = fields.get(key), fields.get("tokenizer.ggml.tokens")
        if ids is None or tokens is None:
            return None
        index = int(ids.parts[ids.data[0]][0])
        return bytes(tokens.parts[tokens.data[index]]).decode("utf-8")

    template = text("tokenizer.chat_template")
    return {
        "chat_template": template or gemma3_chat_template(),
        "chat_template_source": "the GGUF" if template else "Gemma 3's (the GGUF carries none)",
        "special_tokens": {
            k: v
            for k, v in (
                ("bos_token", token("tokenizer.ggml.bos_token_id")),
                ("eos_token", token("tokenizer.ggml.eos_token_id")),
            )
            if v is not None
        },
    }


def prompt_config(gguf: Path, template: str | None = None) -> dict:
    """model.json's `prompts`: the training templates' text, the chat template, the special tokens."""
    from sqlsft.data.prompts import load_templates

    templates = load_templates(template)
    return {"template_name": templates.name, "templates": templates.sources, **gguf_prompt_facts(gguf)}


def _place_gguf(source: Path, target: Path) -> bool:
    """The GGUF in the folder: a hard link when source and folder share a file system, else a copy."""
    if target.exists() or target.is_symlink():
        target.unlink()
    try:
        os.link(source, target)
        return True
    except OSError:
        shutil.copyfile(source, target)
        return False


def write_page(
    gguf: Path,
    folder: Path,
    *,
    label: str,
    examples: list[dict] | None = None,
    template: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> WebPage:
    """Write (or refresh) the page folder for `gguf`."""
    gguf = Path(gguf).resolve()
    if not gguf.is_file():
        raise SqlsftError(f"GGUF file {gguf} does not exist.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prompts = prompt_config(gguf, template or DEFAULT_TEMPLATE)
    source = page_source_dir()
    for name in PAGE_FILES:
        shutil.copyfile(source / name, folder / name)
    copy_runtime(folder / "runtime", log)
    write_bundle(folder / BUNDLE_FILE)
    linked = _place_gguf(gguf, folder / MODEL_FILE)
    config = {
        "label": label,
        "gguf": MODEL_FILE,
        "gguf_source": gguf.name,
        "gguf_bytes": gguf.stat().st_size,
        "n_ctx": N_CTX,
        "max_tokens": MAX_TOKENS,
        "max_rows": MAX_ROWS,
        "shown_rows": SHOWN_ROWS,
        "sql_time_limit_ms": SQL_TIME_LIMIT_MS,
        "runtimes": NPM_PACKAGES,
        "prompts": prompts,
        "examples": [
            {k: row.get(k, "") for k in ("sql_prompt", "sql_context", "sql")} for row in examples or []
        ],
    }
    write_json(folder / CONFIG_FILE, config)
    (folder / ".gitignore").write_text("# the model and the runtimes stay out of git\n*\n", encoding="utf-8")
    return WebPage(folder, folder / MODEL_FILE, linked)
