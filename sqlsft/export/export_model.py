"""`sqlsft export --format gguf`: a model folder (a run's final model, a checkpoint, `embedded`) to a GGUF that
llama.cpp, Ollama and the browser run as it was trained, proven before the file is called done:

1. the tokenizer source: the folder's own tokenizer.model, else the GGUF its base model's tokenizer came from
   (the embedded package's GGUF, or a vocabulary-only GGUF of a hub base model made by llama.cpp's converter);
2. llama.cpp's converter and quantizer (`gguf.plan_export` / `run_export`);
3. parity (`verify.check_parity`): the converted f16 file against the original, template, tokenizer, stop
   token and greedy generations on the run's test prompts; the final file's template, tokenizer and stop;
4. execution accuracy of the original and of the file, on the same test rows (`sqlsft eval` with the
   llama.cpp engine for the file), side by side, with a warning when the file loses more than 3 points;
5. the Ollama Modelfile, the model card and `export.json` (what was checked, measured and made).
"""

import os
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import write_json
from sqlsft.export.gguf import (
    ExportPlan,
    embedded_tokenizer_gguf,
    plan_export,
    run_export,
    tokenizer_gguf_command,
)
from sqlsft.export.modelfile import ModelCard, write_export_texts
from sqlsft.export.served import ExportTarget, export_target
from sqlsft.export.verify import ParityReport, check_parity, require_parity

EXPORT_FILE = "export.json"
DEFAULT_EVAL_ROWS = 100
LOSS_WARNING_POINTS = 3.0  # a quantized file that loses more execution accuracy than this gets a warning
GENERATION_PROMPTS = 8  # greedy generations compared token by token (f16 against the original)
TOKENIZER_PROMPTS = 200  # prompts whose template rendering and token ids must be identical
BASE_TOKENIZER_FILE = "base-tokenizer.gguf"


@dataclass
class ExportOutcome:
    file: Path
    folder: Path
    quant: str
    seconds: dict[str, float]
    parity: list[ParityReport]
    original_score: float | None = None
    export_score: float | None = None
    eval_rows: int | None = None
    eval_reports: dict[str, str] = field(default_factory=dict)  # original/export -> report folder
    original_engine: str | None = None
    warnings: list[str] = field(default_factory=list)
    texts: tuple[Path, ...] = ()  # Modelfile, README.md

    @property
    def score_loss_points(self) -> float | None:
        if self.original_score is None or self.export_score is None:
            return None
        return round(100 * (self.original_score - self.export_score), 1)


# ---------------------------------------------------------------- which tokenizer the converter gets


def _owning_run(model_dir: Path, target: ExportTarget):
    """The training run a model folder belongs to: its final model, or one of its checkpoints."""
    from sqlsft.runs.registry import is_run_folder, load_run

    if target.run is not None:
        return target.run
    for candidate in (model_dir.parent, model_dir.parent.parent):
        if is_run_folder(candidate):
            return load_run(candidate)
    return None


def base_model_of(model_dir: Path, target: ExportTarget) -> str | None:
    """What the model was trained from (`embedded`, a hub id, a folder), if sqlsft trained it."""
    from sqlsft.models.resolve import EMBEDDED, embedded_model_path

    if model_dir.resolve() == embedded_model_path().resolve():
        return EMBEDDED
    run = _owning_run(model_dir, target)
    return run.model if run is not None else None


def tokenizer_source_command(model_dir: Path, target: ExportTarget) -> tuple[Path | None, list[str] | None]:
    """(the GGUF whose tokenizer keys the converter copies, the command that makes it first if any).

    A folder with a SentencePiece tokenizer.model converts by the converter's own route (None, None). A model
    trained from `embedded` takes the package GGUF's tokenizer; one trained from a hub Gemma 3 (whose saved
    folder has tokenizer.json only) a vocabulary-only GGUF of that base model, made by llama.cpp's converter."""
    from sqlsft.models.resolve import EMBEDDED, resolve_model_folder

    if (model_dir / "tokenizer.model").is_file():
        return None, None
    base = base_model_of(model_dir, target)
    if base is None:
        return None, None
    if base == EMBEDDED:
        return embedded_tokenizer_gguf(), None
    base_dir, _ = resolve_model_folder(base)
    if not (base_dir / "tokenizer.model").is_file():
        return None, None
    out = target.folder / BASE_TOKENIZER_FILE
    return out, tokenizer_gguf_command(base_dir, out)


def _make_tokenizer_gguf(command: list[str], out: Path, console: Console) -> None:
    """llama.cpp's converter, vocabulary only, on the base model (the command is shown)."""
    from sqlsft.common.processes import shell_line
    from sqlsft.export.gguf import child_env

    out.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"  $ {shell_line(command)}", markup=False, highlight=False, soft_wrap=True)
    log_file = out.parent / "base-tokenizer.log"
    with open(log_file, "wb") as log:
        code = subprocess.run(
            command, cwd=out.parent, stdout=log, stderr=subprocess.STDOUT, env=child_env()
        ).returncode
    if code != 0 or not out.is_file():
        raise SqlsftError(
            f"llama.cpp's converter could not write the base model's tokenizer (exit {code}).",
            f"See {log_file}.",
        )


# ---------------------------------------------------------------- the export


def plan_model_export(
    model_dir: Path, quant: str, threads: int | None = None
) -> tuple[ExportTarget, ExportPlan, list[str] | None]:
    """Everything an export of `model_dir` will run, decided and checked before anything runs."""
    target = export_target(model_dir)
    vocab_from, vocab_command = tokenizer_source_command(target.model_dir, target)
    plan = plan_export(
        target.model_dir,
        target.folder,
        quant,
        name=target.name,
        vocab_from=vocab_from if vocab_command is None else None,
        threads=threads,
    )
    if vocab_command is not None:  # plan_export checks that vocab_from exists: it is made first
        plan = replace(plan, vocab_from=vocab_from, commands=_with_vocab(plan.commands, vocab_from))
    return target, plan, vocab_command


def _with_vocab(commands: tuple[tuple[str, ...], ...], vocab_from: Path) -> tuple[tuple[str, ...], ...]:
    convert = list(commands[0])
    split = convert.index("--")
    convert[split:split] = ["--vocab-from", str(vocab_from.resolve())]
    return (tuple(convert), *commands[1:])


def export_model(
    model_dir: Path,
    quant: str,
    *,
    console: Console | None = None,
    evaluate: bool = True,
    eval_rows: int = DEFAULT_EVAL_ROWS,
    generation_tokens: int = 16,
    threads: int | None = None,
    original_engine_name: str | None = None,
) -> ExportOutcome:
    """Export, check parity, evaluate both sides (unless `evaluate=False`), write the texts; see the module doc."""
    console = console or Console(stderr=True)
    if eval_rows < 1:
        raise SqlsftError(f"--eval-rows {eval_rows} must be 1 or more.", "Or pass --no-eval.")
    target, plan, vocab_command = plan_model_export(Path(model_dir), quant, threads)
    started = time.monotonic()
    if vocab_command is not None and plan.vocab_from is not None and not plan.vocab_from.is_file():
        console.print("base model tokenizer: llama.cpp's converter, vocabulary only", highlight=False)
        _make_tokenizer_gguf(vocab_command, plan.vocab_from, console)
    for line in plan.lines():
        console.print(f"  $ {line}", markup=False, highlight=False, soft_wrap=True)
    with console.status(
        f"converting to {plan.converted.name}" + (f", then {quant}" if plan.output != plan.converted else "")
    ):
        result = run_export(plan, log=lambda line: console.print(line, markup=False, highlight=False))
    seconds = dict(result.seconds)

    conversations = _test_conversations(target, console)
    checks = []
    with console.status(
        f"checking {plan.converted.name} against the original (template, tokens, stop, greedy)"
    ):
        checks.append(
            check_parity(
                plan.converted,
                target.model_dir,
                conversations[:GENERATION_PROMPTS],
                generation_tokens=generation_tokens,
                threads=threads,
            )
        )
    require_parity(checks[-1])
    with console.status(
        f"checking {plan.output.name} (template, tokens, stop on {len(conversations)} prompts)"
    ):
        checks.append(
            check_parity(plan.output, target.model_dir, conversations, generation_tokens=0, threads=threads)
        )
    require_parity(checks[-1])
    seconds["parity"] = round(time.monotonic() - started - sum(seconds.values()), 2)

    outcome = ExportOutcome(plan.output, target.folder, quant, seconds, checks)
    if evaluate:
        eval_started = time.monotonic()
        _evaluate_both(outcome, target, eval_rows, console, original_engine_name)
        seconds["eval"] = round(time.monotonic() - eval_started, 2)
    loss = outcome.score_loss_points
    if loss is not None and loss > LOSS_WARNING_POINTS:
        outcome.warnings.append(
            f"{plan.output.name} loses {loss:.1f} points of execution accuracy against the original "
            f"({100 * outcome.original_score:.1f}% -> {100 * outcome.export_score:.1f}%): "
            "try a higher-precision --quant (q8_0 or f16)."
        )
    outcome.texts = write_export_texts(target.folder, _card(target, plan, outcome, conversations[0]))
    _write_manifest(target, plan, outcome)
    return outcome


def _test_conversations(target: ExportTarget, console: Console) -> list[list[dict]]:
    """The prompts of the run's own test rows (else the builtin test rows), as eval asks them."""
    from sqlsft.eval.options import EvalOptions
    from sqlsft.eval.rows import load_rows

    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - the data line is printed by eval, not here
    rows = load_rows(EvalOptions(limit=TOKENIZER_PROMPTS), quiet, run=_owning_run(target.model_dir, target))
    return [row["prompt"] for row in rows.rows]


def original_engine() -> str:
    """The engine the original (transformers) model is evaluated with: vLLM when it is installed (a CUDA or a CPU
    build: 100 rows in about a minute here), else transformers serve. Never `auto`, which picks llama.cpp, so the
    export, for a model that has one."""
    from sqlsft.common.hardware import gpu_count
    from sqlsft.serve.engines.vllm import VllmEngine

    try:
        found = VllmEngine().locate(None, gpu_count() > 0)
    except SqlsftError:
        return "transformers"
    return "vllm" if found.usable else "transformers"


def _evaluate_both(
    outcome: ExportOutcome,
    target: ExportTarget,
    eval_rows: int,
    console: Console,
    original_engine_name: str | None = None,
) -> None:
    """Execution accuracy of the original and of the file on the same first `eval_rows` test rows."""
    from sqlsft.eval.evaluate import evaluate_model, finished_report_for
    from sqlsft.eval.model import EvalModel
    from sqlsft.eval.options import EvalOptions
    from sqlsft.eval.rows import load_rows

    run = _owning_run(target.model_dir, target)
    options = EvalOptions(limit=eval_rows)
    data = load_rows(options, console, run=run)
    console.print(data.description, markup=False, highlight=False, soft_wrap=True)
    original = EvalModel(target.name, run, target.model_dir)  # the run's name, or <run>-checkpoint-N
    original_options = replace(options, engine=original_engine_name or original_engine())
    earlier = finished_report_for(original, str(original.folder), data, original_options)
    if earlier is not None:
        console.print(f"original: execution accuracy from {earlier[1]}", markup=False, highlight=False)
        original_report, original_folder = earlier
    else:
        found = evaluate_model(original, data, original_options, console)
        original_report, original_folder = found.report, found.folder
    exported = EvalModel(f"{original.label} ({outcome.file.name})", None, outcome.file)
    found = evaluate_model(exported, data, replace(options, engine="llama.cpp"), console)
    outcome.original_score = original_report.get("execution_accuracy")
    outcome.export_score = found.report.get("execution_accuracy")
    outcome.eval_rows = len(data.rows)
    outcome.original_engine = original_options.engine
    outcome.eval_reports = {"original": str(original_folder), "export": str(found.folder)}


def _card(target: ExportTarget, plan: ExportPlan, outcome: ExportOutcome, example: list[dict]) -> ModelCard:
    from sqlsft.data.cache import Prepared
    from sqlsft.export.verify import render_prompt
    from sqlsft.models.resolve import EMBEDDED, EMBEDDED_DESCRIPTION

    run = _owning_run(target.model_dir, target)
    dataset = split = None
    if run is not None:
        from sqlsft.eval.rows import run_preparation, split_options

        prepared = run_preparation(run)
        if isinstance(prepared, Prepared):
            dataset = prepared.manifest.get("dataset")
            split = split_options(prepared.manifest)
    base = base_model_of(target.model_dir, target) or str(target.model_dir)
    checks = outcome.parity
    greedy = checks[0].prompts
    parity = (
        f"chat template, token ids and end-of-turn stop identical on {len(checks[-1].prompts)} test prompts; "
        f"greedy generations of {plan.converted.name} equal to the original's for the first "
        f"{checks[0].generation_tokens} tokens of {len(greedy)} prompts."
    )
    return ModelCard(
        name=target.name,
        gguf_file=plan.output.name,
        quant=plan.quant,
        base_model=EMBEDDED_DESCRIPTION if base == EMBEDDED else base,
        dataset=dataset,
        split=split,
        preset=run.preset if run is not None else None,
        steps=run.steps if run is not None else None,
        final_loss=run.final_loss if run is not None else None,
        original_score=outcome.original_score,
        export_score=outcome.export_score,
        eval_rows=outcome.eval_rows,
        original_engine=outcome.original_engine or "not evaluated",
        prompt_messages=example,
        prompt_text=render_prompt(target.model_dir, example),
        parity=parity,
        license="Gemma Terms of Use" if "gemma" in base.lower() or base == EMBEDDED else None,
    )


def _write_manifest(target: ExportTarget, plan: ExportPlan, outcome: ExportOutcome) -> Path:
    import llama_cpp

    from sqlsft import __version__

    manifest: dict[str, Any] = {
        "model_dir": str(target.model_dir),
        "file": str(outcome.file),
        "quant": outcome.quant,
        "size_bytes": outcome.file.stat().st_size,
        "commands": plan.lines(),
        "seconds": outcome.seconds,
        "parity": [check.to_dict() | {"prompts": len(check.prompts)} for check in outcome.parity],
        "execution_accuracy": {"original": outcome.original_score, "export": outcome.export_score},
        "eval_rows": outcome.eval_rows,
        "eval_reports": outcome.eval_reports,
        "warnings": outcome.warnings,
        "versions": {"sqlsft": __version__, "llama-cpp-python": llama_cpp.__version__},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    path = target.folder / EXPORT_FILE
    write_json(path, manifest)
    return path
