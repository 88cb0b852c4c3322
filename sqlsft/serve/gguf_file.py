"""Is a GGUF file servable as trained? It must be a GGUF (magic bytes), carry its chat template
(`tokenizer.chat_template`) and name the token generation ends at (`tokenizer.ggml.eos_token_id` or
`eot_token_id`). And which GGUF llama.cpp serves for MODEL (`sqlsft.export.served`).

The header is walked here, key by key, with gguf's own type constants: the gguf package's GGUFReader parses
every element of every array (a 262k-token vocabulary takes 10-20 s), and this runs before every start.
"""

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rich.console import Console

from sqlsft.common.errors import SqlsftError
from sqlsft.serve.servable import ServableModel

CHAT_TEMPLATE_KEY = "tokenizer.chat_template"
STOP_ID_KEYS = ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")
FILE_TYPE_KEY = "general.file_type"
EXPORT_HINT = (
    "Export the model with `sqlsft export MODEL`: its GGUF carries the training template and stop token."
)

# the embedded package's GGUF has no chat template: its model was trained (converted) with Gemma 3's, whose
# tokens these are
EMBEDDED_TEMPLATE_TOKENS = ("<bos>", "<end_of_turn>")


@dataclass(frozen=True)
class GgufMetadata:
    """The header values a server needs; arrays are skipped (their length only)."""

    values: dict[str, object]

    @property
    def chat_template(self) -> str | None:
        template = self.values.get(CHAT_TEMPLATE_KEY)
        return template if isinstance(template, str) and template.strip() else None

    @property
    def stop_ids(self) -> dict[str, int]:
        return {key: v for key in STOP_ID_KEYS if isinstance(v := self.values.get(key), int)}

    @property
    def quant(self) -> str | None:
        from gguf.constants import LlamaFileType

        try:
            name = LlamaFileType(int(self.values[FILE_TYPE_KEY])).name  # type: ignore[call-overload]
        except (KeyError, ValueError, TypeError):
            return None
        return name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()


def _read(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def read_gguf_metadata(path: Path) -> GgufMetadata:
    """The key-value header of a GGUF file; ValueError when it is not one, EOFError when it is cut short."""
    from gguf.constants import GGUF_MAGIC, GGUFValueType

    scalars = {
        GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
        GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
        GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?", GGUFValueType.UINT64: "<Q",
        GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
    }  # fmt: skip

    def string(stream: BinaryIO) -> bytes:
        (length,) = struct.unpack("<Q", _read(stream, 8))
        return _read(stream, length)

    def value(stream: BinaryIO, kind: int) -> object:
        if kind == GGUFValueType.STRING:
            return string(stream).decode("utf-8", errors="replace")
        if kind == GGUFValueType.ARRAY:
            item_kind, count = struct.unpack("<IQ", _read(stream, 12))
            if item_kind in scalars:
                stream.seek(count * struct.calcsize(scalars[item_kind]), 1)
            else:
                for _ in range(count):
                    value(stream, item_kind)
            return count
        if kind not in scalars:
            raise ValueError(f"unknown value type {kind}")
        fmt = scalars[kind]
        return struct.unpack(fmt, _read(stream, struct.calcsize(fmt)))[0]

    with open(path, "rb", buffering=1 << 20) as stream:
        magic, _version, _tensors, kv_count = struct.unpack("<IIQQ", _read(stream, 24))
        if magic != GGUF_MAGIC:
            raise ValueError("no GGUF magic bytes")
        values = {}
        for _ in range(kv_count):
            key = string(stream).decode("utf-8", errors="replace")
            (kind,) = struct.unpack("<I", _read(stream, 4))
            values[key] = value(stream, kind)
    return GgufMetadata(values)


def check_gguf_file(path: Path, label: str, *, training_template: str | None = None) -> ServableModel:
    """Refuse a file llama.cpp cannot serve as trained. `training_template`: the template to hand the engine
    when the file has none of its own (the embedded package's GGUF), instead of refusing it."""
    path = Path(path)
    if not path.is_file():
        raise SqlsftError(f"GGUF file {path} does not exist.", "Pass an existing .gguf file.")
    try:
        metadata = read_gguf_metadata(path)
    except ValueError as exc:
        raise SqlsftError(f"{label} is not a GGUF file ({exc}).", EXPORT_HINT) from None
    except (EOFError, OSError, struct.error) as exc:
        raise SqlsftError(f"{label} cannot be read as a GGUF file (damaged or cut short: {exc or 'end of file'}).", EXPORT_HINT) from None  # fmt: skip
    if not metadata.stop_ids:
        raise SqlsftError(
            f"{label} names no end-of-generation token ({' or '.join(STOP_ID_KEYS)}): answers would never stop.",
            EXPORT_HINT,
        )
    template, tokens = metadata.chat_template, None
    if template is None:
        if training_template is None:
            raise SqlsftError(
                f"{label} has no chat template ({CHAT_TEMPLATE_KEY}): llama.cpp would prompt it in a generic format.",
                EXPORT_HINT,
            )
        template, tokens = training_template, EMBEDDED_TEMPLATE_TOKENS
    return ServableModel(
        path=path.resolve(),
        label=label,
        chat_template=template,
        is_gguf=True,
        quant=metadata.quant,
        template_tokens=tokens,
    )


def servable_gguf(
    spec: str | None, quant: str | None = None, console: Console | None = None, *, make: bool = True
) -> ServableModel:
    """MODEL as llama.cpp serves it: a .gguf file, `embedded` (the package's GGUF, with the training template
    sqlsft converted it with), or a run/folder's export (made here on first use unless `make` is False)."""
    from sqlsft.export.served import gguf_for_serving, is_gguf_file
    from sqlsft.models.resolve import EMBEDDED

    spec = (spec or "latest").strip()
    if quant and is_gguf_file(spec):
        raise SqlsftError(f"--quant picks one of a run's exports; {spec} is already one file.", "Leave out --quant.")  # fmt: skip
    served = gguf_for_serving(spec, quant, console, make=make)
    if served is None:
        raise SqlsftError(
            f"{spec} has no GGUF export yet.",
            f"`sqlsft export {spec}` makes one (`sqlsft serve` without --dry-run makes it on first use).",
        )
    training_template = None
    if served.label == EMBEDDED:
        from sqlsft.models.chat_template import gemma3_chat_template

        training_template = gemma3_chat_template()
    return check_gguf_file(served.path, served.label, training_template=training_template)
