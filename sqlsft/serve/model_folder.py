"""Is a model folder servable as it was trained? Weights, tokenizer, the chat template, and end-of-turn
ids that stop generation; and which dtype a CPU without native half precision should run it in.

Read from the folder's JSON files only (no tokenizer or model load): this runs before every start.
"""

import contextlib
import json
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import read_json
from sqlsft.common.hardware import cpu_has_native_bf16
from sqlsft.models.chat_template import END_OF_TURN_TOKENS
from sqlsft.serve.servable import ServableModel

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def chat_template_text(folder: Path) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "tokenizer_config.json"):
        template = read_json(folder / name).get("chat_template")
        if isinstance(template, list):  # named templates: [{"name": "default", "template": "..."}]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        if isinstance(template, str) and template.strip():
            return template
    return None


def _vocab_ids(folder: Path) -> dict[str, int]:
    """Special/added token ids from tokenizer.json and tokenizer_config.json (cheap: no tokenizer load)."""
    ids: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError, KeyError):
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        for token in data.get("added_tokens", []):
            ids[token["content"]] = int(token["id"])
        vocab = data.get("model", {}).get("vocab", {})
        if isinstance(vocab, dict):
            for token in END_OF_TURN_TOKENS:
                if token in vocab and token not in ids:
                    ids[token] = int(vocab[token])
    with contextlib.suppress(AttributeError, ValueError, TypeError, KeyError):
        decoder = read_json(folder / "tokenizer_config.json").get("added_tokens_decoder", {})
        for token_id, info in decoder.items():
            ids.setdefault(info["content"], int(token_id))
    return ids


def eos_ids(folder: Path) -> list[int] | None:
    """The ids generation stops at, from generation_config.json; None when there is no such file."""
    path = folder / "generation_config.json"
    if not path.is_file():
        return None
    eos = read_json(path).get("eos_token_id")
    if eos is None:
        return []
    with contextlib.suppress(TypeError, ValueError):
        return [int(e) for e in (eos if isinstance(eos, list) else [eos])]
    return []


def emulated_cpu_dtype(folder: Path, float32_runs_as: str = "float32") -> str | None:
    """The half-precision dtype an engine would run the model in when this CPU only emulates it (bf16
    without AVX512-BF16/AMX, fp16 always); None when it would run natively.

    `float32_runs_as`: what the engine's `--dtype auto` makes of a float32 checkpoint (transformers keeps
    float32, vLLM turns it into bfloat16)."""
    config = read_json(folder / "config.json")
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    if dtype == "float32":
        dtype = float32_runs_as
    if dtype == "float16" or (dtype == "bfloat16" and not cpu_has_native_bf16()):
        return dtype
    return None


def check_model_folder(folder: Path, label: str | None = None) -> ServableModel:
    """Refuse a folder an engine cannot serve as trained; warn when generations may never stop."""
    folder = Path(folder)
    shown = label or str(folder)
    if not (folder / "config.json").is_file():
        raise SqlsftError(
            f"{folder} is not a model folder (no config.json).", "Pass a run, model or checkpoint."
        )
    if not any(next(folder.glob(p), None) for p in WEIGHT_PATTERNS):
        raise SqlsftError(
            f"Model folder {folder} has no weights (*.safetensors or *.bin).",
            "Pass the final model folder of a run (runs/<run>/model) or a complete checkpoint.",
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise SqlsftError(
            f"Model folder {folder} has no tokenizer (tokenizer.json or tokenizer.model).",
            "Save the tokenizer with the model (`tokenizer.save_pretrained(folder)`).",
        )
    template = chat_template_text(folder)
    if template is None:
        raise SqlsftError(
            f"Model folder {folder} has no chat template (chat_template.jinja or tokenizer_config.json).",
            "Serving needs the template the model was trained with; save it with the tokenizer.",
        )
    return ServableModel(
        path=folder, label=shown, chat_template=template, warnings=_stop_warnings(folder, shown, template)
    )


def _stop_warnings(folder: Path, shown: str, template: str) -> tuple[str, ...]:
    """A warning when the template's end-of-turn token is not among the ids generation stops at."""
    ids = _vocab_ids(folder)
    eos = eos_ids(folder)
    for token in END_OF_TURN_TOKENS:
        if token not in template or token not in ids:
            continue
        if eos is None:
            return (
                f"{shown} has no generation_config.json: generations may not stop at {token} "
                f"(id {ids[token]}). Save a generation config whose eos_token_id lists it.",
            )
        if ids[token] not in eos:
            return (
                f"generation_config.json of {shown} does not list {token} (id {ids[token]}) in eos_token_id "
                f"{eos}: generations may run on past the end of the answer. Add it.",
            )
        break
    return ()
