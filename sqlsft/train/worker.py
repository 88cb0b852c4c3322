"""The training script `accelerate launch` runs on every rank: `python -m sqlsft.train.worker --run-dir RUN`.

It reads the run's resolved config.yaml, loads the prepared data set from disk (prepare did the per-row
work before the launch), builds TRL's SFTTrainer, and leaves in the run folder: metrics.jsonl (rank 0),
checkpoints/, and model/ (weights, tokenizer, chat template, generation config that stops on the end
of turn). SIGINT/SIGTERM ask for a checkpoint and a clean stop after the current step, on every rank.
"""

import argparse
import resource
import signal
import sys
import threading
import time
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.models.chat_template import ensure_chat_template
from sqlsft.runs.metrics import MetricsEvent, StepMetrics, append_event, append_step
from sqlsft.runs.registry import RunFolder
from sqlsft.runs.run_info import require_run_info
from sqlsft.train.adapter import (
    peft_and_quantization,
    save_adapter_and_merge,
    save_tokenizer,
    stop_on_end_of_turn,
)
from sqlsft.train.compact_lm_head import use_compact_lm_head
from sqlsft.train.config import load_resolved
from sqlsft.train.end_of_turn import (
    blank_ids,
    chat_ids,
    check_end_of_turn,
    end_of_turn_id,
    fix_untrained_end_of_turn,
)
from sqlsft.train.eval_settings import eval_rows, max_new_tokens, saves_checkpoints, trainer_arguments
from sqlsft.train.freeze import FREEZE_EMBEDDINGS_KEY, freeze_embeddings
from sqlsft.train.token_budget import MicroBatchPlan, plan_for_this_rank

# How many offending rows to name when labels do not end with the end of turn.
EXAMPLES_SHOWN = 3


class StopRequest:
    """Set by SIGINT/SIGTERM; the ranks agree on it after each step so that they all stop at the same one."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handler)

    def _handler(self, signum, _frame) -> None:
        if self.event.is_set():
            return
        self.signal_name = signal.Signals(signum).name
        self.event.set()
        print(f"[sqlsft] {self.signal_name}: saving a checkpoint after this step, then stopping", flush=True)


def build_callbacks(run_dir: Path, stop: StopRequest):
    import torch
    import torch.distributed as dist
    from transformers import TrainerCallback

    def peak_memory_gib() -> tuple[float, str]:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch.cuda.max_memory_allocated() / 2**30, "gpu"
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "cpu-rss"

    class MetricsCallback(TrainerCallback):
        """Rank 0 appends one JSON line per log: step, loss, learning rate, grad norm, tokens/s, peak memory."""

        def __init__(self) -> None:
            self.last_time = time.time()
            self.last_tokens: float | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.last_time = time.time()
            self.last_tokens = 0.0
            if state.is_world_process_zero:
                backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else None
                append_event(
                    run_dir, MetricsEvent.START, self.last_time, step=state.global_step, max_steps=state.max_steps,
                    world_size=args.world_size, backend=backend, device=str(args.device),
                )  # fmt: skip

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            now = time.time()
            if "loss" in logs:
                tokens = logs.get("num_tokens")
                rate = None
                if tokens is not None and self.last_tokens is not None and tokens >= self.last_tokens:
                    rate = (tokens - self.last_tokens) / max(now - self.last_time, 1e-9)
                self.last_tokens, self.last_time = tokens, now
                memory, kind = peak_memory_gib()
                append_step(
                    run_dir,
                    StepMetrics(
                        step=state.global_step,
                        max_steps=state.max_steps,
                        epoch=logs.get("epoch", state.epoch),
                        loss=logs.get("loss"),
                        learning_rate=logs.get("learning_rate"),
                        grad_norm=logs.get("grad_norm"),
                        num_tokens=tokens,
                        tokens_per_s=rate,
                        mean_token_accuracy=logs.get("mean_token_accuracy"),
                        peak_memory_gib=round(memory, 3),
                        memory=kind,
                        time=now,
                    ),
                )
            elif "train_runtime" in logs:
                append_event(run_dir, MetricsEvent.SUMMARY, now, step=state.global_step, **logs)
            elif any(k.startswith("eval_") for k in logs):
                append_event(run_dir, MetricsEvent.EVAL, now, step=state.global_step, **logs)

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                append_event(
                    run_dir, MetricsEvent.CHECKPOINT, time.time(), step=state.global_step, path=str(folder)
                )

    class StopOnSignal(TrainerCallback):
        """After each step, all ranks learn whether any was asked to stop; then checkpoint and stop together."""

        def __init__(self) -> None:
            self.stopped = False

        def on_step_end(self, args, state, control, **kwargs):
            requested = stop.event.is_set()
            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                flag = torch.tensor([1.0 if requested else 0.0], device=args.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                requested = bool(flag.item() > 0)
            if requested and not self.stopped:
                self.stopped = True
                control.should_save = True
                control.should_training_stop = True
                if state.is_world_process_zero:
                    append_event(
                        run_dir, MetricsEvent.INTERRUPTED, time.time(), step=state.global_step,
                        max_steps=state.max_steps,
                    )  # fmt: skip
            return control

    return MetricsCallback(), StopOnSignal()


def drop_overlong(dataset, tokenizer, max_length: int | None, num_proc: int | None, counted: bool = False):
    """Drop rows whose prompt+completion exceed max_length: truncation would cut off their end of turn.

    `counted`: the rows carry prepare's `num_tokens`, made with this tokenizer, so no need to tokenize again.
    """
    if not max_length:
        return dataset, 0
    if counted and "num_tokens" in dataset.column_names:
        kept = dataset.filter(lambda n: n <= max_length, input_columns="num_tokens", num_proc=num_proc)
        return kept.select_columns(["prompt", "completion"]), len(dataset) - len(kept)
    dataset = dataset.select_columns(["prompt", "completion"])

    def length(example):
        return {"_sqlsft_length": len(chat_ids(tokenizer, example["prompt"] + example["completion"]))}

    with_length = dataset.map(length, num_proc=num_proc, desc="Measuring rows")
    kept = with_length.filter(lambda n: n <= max_length, input_columns="_sqlsft_length", num_proc=num_proc)
    return kept.remove_columns("_sqlsft_length"), len(dataset) - len(kept)


def validation_rows(data, training: dict, run_dir: Path, is_main: bool):
    """The first `eval_rows` rows of the validation split (scored at every evaluation), or None."""
    count = eval_rows(training)
    if not count:
        return None
    if "validation" not in data or len(data["validation"]) == 0:
        raise SqlsftError("eval_rows needs validation rows, and the prepared data set has none.")
    rows = data["validation"]
    notes = []
    if len(rows) < count:
        notes.append(f"eval_rows {count}: the validation split has {len(rows)} rows; scoring all of them")
    if not saves_checkpoints(training):
        notes.append("save_strategy is no: execution accuracy is measured once, at the end")
    for note in notes:
        print(f"[sqlsft] {note}", flush=True)
        if is_main:
            append_event(run_dir, MetricsEvent.NOTE, time.time(), text=note)
    return rows.select(range(min(count, len(rows))))


# ---------------------------------------------------------------- main


def build_sft_config(config, run_dir: Path, plan: MicroBatchPlan, resuming: bool = False):
    """SFTConfig from the resolved config, with the micro-batch plan's fields (token budget, liger) and the
    evaluation's (execution accuracy at each checkpoint) applied."""
    from trl import SFTConfig

    training = dict(plan.training)
    training.update(trainer_arguments(config.training))
    if resuming:
        training["eval_on_start"] = False  # step 0 was scored by the first launch; a resume starts later
    model = config.model
    init_kwargs = {
        "revision": model.get("model_revision", "main"),
        "dtype": model.get("dtype", "float32"),
        "attn_implementation": plan.attn_implementation,
        "trust_remote_code": bool(training.get("trust_remote_code", False)),
    }
    report_to = training.get("report_to")
    if "trackio" in ([report_to] if isinstance(report_to, str) else list(report_to or [])):
        # trackio's project (TrainingArguments' default: huggingface), as WANDB_PROJECT is for wandb
        training.setdefault("project", "sqlsft")
    init_kwargs = {k: v for k, v in init_kwargs.items() if v is not None}
    init_kwargs.update(training.pop("model_init_kwargs", None) or {})
    training.update(
        output_dir=str(RunFolder(run_dir).checkpoints_dir),
        run_name=run_dir.name,
        model_init_kwargs=init_kwargs,
        disable_tqdm=True,  # the launching terminal shows progress from metrics.jsonl; the log gets plain lines
    )
    return SFTConfig(**training)


def save_final_model(trainer, tokenizer, model_dir: Path, end_id: int) -> None:
    """model/: weights, tokenizer, chat template and a generation config whose eos lists the end of turn."""
    model = trainer.model
    stop_on_end_of_turn(model.generation_config, tokenizer, end_id)
    model.config.use_cache = True
    trainer.save_model(str(model_dir))
    if trainer.accelerator.is_main_process:
        save_tokenizer(tokenizer, model_dir)


def run(run_dir: Path, resume_from: str | None = None) -> int:
    stop = StopRequest()
    stop.install()
    folder = RunFolder(run_dir)
    config = load_resolved(folder.config_file)
    run_info = require_run_info(run_dir)

    import datasets
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    datasets.disable_progress_bars()
    model_path = run_info.model_path
    plan = plan_for_this_rank(config, model_path)
    sft_config = build_sft_config(config, run_dir, plan, resuming=bool(resume_from))
    tokenizer = AutoTokenizer.from_pretrained(
        model_path, trust_remote_code=bool(config.training.get("trust_remote_code", False))
    )
    if ensure_chat_template(tokenizer):
        print("[sqlsft] the tokenizer has no chat template: using Gemma 3's", flush=True)
    end_id = end_of_turn_id(tokenizer)

    data = datasets.load_from_disk(run_info.data_path)
    train_rows = data["train"]
    with sft_config.main_process_first(desc="measuring rows"):  # rank 0 writes the datasets cache first
        train_rows, dropped = drop_overlong(
            train_rows, tokenizer, plan.row_limit, sft_config.dataset_num_proc,
            counted=bool(run_info.data_token_counts),
        )  # fmt: skip
    is_main = sft_config.process_index == 0
    if is_main:
        append_event(
            run_dir, MetricsEvent.DATA, time.time(), rows=len(train_rows), dropped_overlong=dropped,
            max_length=plan.row_limit, tokens_per_micro_batch=plan.tokens_per_micro_batch,
            attn_implementation=plan.attn_implementation,
        )  # fmt: skip
        for note in plan.notes:
            append_event(run_dir, MetricsEvent.NOTE, time.time(), text=note)
    for note in plan.notes:
        print(f"[sqlsft] {note}", flush=True)
    if dropped:
        print(f"[sqlsft] {dropped} rows longer than max_length={plan.row_limit} left out", flush=True)
    if len(train_rows) == 0:
        print("[sqlsft] error: no training row fits in max_length; raise training.max_length", flush=True)
        return 2

    scored_rows = validation_rows(data, config.training, run_dir, is_main)
    metrics_cb, stop_cb = build_callbacks(run_dir, stop)
    peft_config, quantization_config = peft_and_quantization(config)
    trainer_kwargs = dict(
        model=model_path,
        args=sft_config,
        train_dataset=train_rows,
        processing_class=tokenizer,
        callbacks=[metrics_cb, stop_cb],
        peft_config=peft_config,
        quantization_config=quantization_config,
    )
    if scored_rows is None:
        trainer = SFTTrainer(**trainer_kwargs)
    else:
        from sqlsft.train.execution_eval import ExecutionEvalTrainer

        # HF refuses an eval_strategy without an eval_dataset; evaluate() generates from these rows' prompts
        needs_dataset = sft_config.eval_strategy != "no"
        eval_dataset = scored_rows.select_columns(["prompt", "completion"]) if needs_dataset else None
        trainer = ExecutionEvalTrainer(
            **trainer_kwargs, eval_dataset=eval_dataset, eval_rows=scored_rows,
            max_new_tokens=max_new_tokens(config.training),
        )  # fmt: skip
    # Every checkpoint is a usable model (and the evaluation stops where it will): the generation config
    # stops on the end of turn, as model/'s does.
    stop_on_end_of_turn(trainer.model.generation_config, tokenizer, end_id)
    compact_head = use_compact_lm_head(
        trainer.model
    )  # CPU only: TRL's fused head scores every position there
    if compact_head:
        print(f"[sqlsft] {compact_head}", flush=True)
        if is_main:
            append_event(run_dir, MetricsEvent.NOTE, time.time(), text=compact_head)
    if peft_config is not None and is_main:
        trainable, total = trainer.model.get_nb_trainable_parameters()
        text = f"LoRA: {trainable:,} trainable parameters of {total:,} ({100 * trainable / total:.2f}%)"
        print(f"[sqlsft] {text}", flush=True)
        append_event(run_dir, MetricsEvent.NOTE, time.time(), text=text)
    checked, bad = check_end_of_turn(trainer.train_dataset, end_id, blank_ids(tokenizer))
    if bad:
        shown = ", ".join(map(str, bad[:EXAMPLES_SHOWN]))
        print(
            f"[sqlsft] error: {len(bad)} training rows (e.g. {shown}) have labels that do not end with an "
            f"unmasked end-of-turn token (id {end_id}); the model would not learn to stop",
            flush=True,
        )
        return 3
    print(f"[sqlsft] labels checked: all {checked} examples end with an unmasked end of turn (id {end_id})")
    # On resume a full run's checkpoint holds the fixed weights; a LoRA checkpoint holds only the adapter,
    # so its frozen base is fixed again (the fix is deterministic, and the merge repeats it).
    fix = not resume_from or peft_config is not None
    fixed = fix_untrained_end_of_turn(trainer.model, tokenizer, end_id) if fix else None
    if fixed:
        print(f"[sqlsft] {fixed}", flush=True)
        if is_main:
            append_event(run_dir, MetricsEvent.NOTE, time.time(), text=fixed)

    if config.training.get(FREEZE_EMBEDDINGS_KEY) and peft_config is None:
        frozen = freeze_embeddings(trainer.model)  # before train() builds the optimizer over what trains
        print(f"[sqlsft] {frozen}", flush=True)
        if is_main:
            append_event(run_dir, MetricsEvent.NOTE, time.time(), text=frozen)

    trainer.train(resume_from_checkpoint=resume_from)
    if stop_cb.stopped:
        print(f"[sqlsft] stopped at step {trainer.state.global_step} (checkpoint saved)", flush=True)
    else:
        # --load-best: the Trainer has loaded its best checkpoint's weights, which model/ gets
        best = trainer.state.best_model_checkpoint if sft_config.load_best_model_at_end else None
        if best:
            print(f"[sqlsft] model/ gets {Path(best).name}: the best {sft_config.metric_for_best_model}, "
                  f"{trainer.state.best_metric:.4g}", flush=True)  # fmt: skip
        elif scored_rows is not None and trainer.last_evaluated_step != trainer.state.global_step:
            trainer.evaluate()  # the last step's model is the one model/ gets: score it too
        if peft_config is None:
            saved = folder.model_dir
            save_final_model(trainer, tokenizer, saved, end_id)
        else:
            if is_main and config.merge_adapter:
                print("[sqlsft] saving the adapter and merging it into model/", flush=True)
            saved = save_adapter_and_merge(trainer, config, run_dir, model_path, tokenizer, end_id)
        if is_main:
            from_checkpoint = {"best_checkpoint": best} if best else {}
            append_event(
                run_dir, MetricsEvent.SAVED, time.time(), path=str(saved), step=trainer.state.global_step,
                **from_checkpoint,
            )  # fmt: skip
    if hasattr(trainer, "end"):
        trainer.end()  # transformers >= 5.18: finish trackers and tear down the process group
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sqlsft.train.worker", description=__doc__)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--resume-from", default=None)
    args = parser.parse_args(argv)
    try:
        code = run(args.run_dir.resolve(), args.resume_from)
    except SqlsftError as exc:  # the launching sqlsft reports this line from train.log
        print(f"[sqlsft] error: {exc}", flush=True)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
