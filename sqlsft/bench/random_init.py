"""A model built from its config only (random weights), for benchmarks where the weights cannot be downloaded."""

import contextlib
import hashlib
import shutil
from pathlib import Path

from rich.console import Console

from sqlsft.common.formatting import slug
from sqlsft.common.paths import cache_dir


def random_init_model(spec: str, console: Console) -> Path:
    """A folder with `spec`'s config and tokenizer and randomly initialised weights (seed 0), cached.

    Only the config and the tokenizer are read (from the hub, a folder, or the embedded model), so
    throughput can be measured where the weights can't be downloaded.
    """
    from sqlsft.models.resolve import embedded_model_dir, resolve_model

    resolved = resolve_model(spec)
    source = str(embedded_model_dir(console)) if resolved.is_embedded else resolved.path_or_id
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(source)
    digest = hashlib.sha256(config.to_json_string(use_diff=False).encode()).hexdigest()[:12]
    name = slug(spec.replace("/", "-"), fallback="model")[-60:]
    folder = cache_dir() / "random-init" / f"{name}-{digest}"
    if (folder / ".complete").is_file():
        return folder
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    console.print(f"Building {spec} from its config with random weights (no weights read) -> {folder}")
    tokenizer = AutoTokenizer.from_pretrained(source)
    if not tokenizer.chat_template:
        from sqlsft.models.chat_template import gemma3_chat_template

        tokenizer.chat_template = gemma3_chat_template()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    with contextlib.suppress(OSError):  # no generation_config.json: the train worker adds the stop tokens
        model.generation_config = GenerationConfig.from_pretrained(source)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / ".complete").write_text(spec + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder
