"""The training script `accelerate launch` runs on every rank: `python -m sqlsft.train.worker --run-dir RUN`.

It reads the run's resolved config.yaml, loads the prepared data set from disk (prepare did the per-row
work before the launch), builds TRL's SFTTrainer, and leaves in the run folder: metrics.jsonl (rank 0),
checkpoints/, and model/ (weights, tokenizer, chat template, generation config that stops on the end
of turn). SIGINT/SIGTERM ask for a checkpoint and a clean stop after the current step, on every rank.
"""

import argparse
import json
import resource
import signal
import sys
import threading
import time
from pathlib import Path

from sqlsft.models.chat_template import END_OF_TURN_TOKENS, ensure_chat_template
from sqlsft.train.config import load_resolved

# How many rows' labels to check for the end of turn before training, and how many offending ones to name.
EXAMPLES_SHOWN = 3


def _append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, default=float) + "\n")


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

    metrics_path = run_dir / "metrics.jsonl"

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
                _append_jsonl(
                    metrics_path,
                    {"event": "start", "step": state.global_step, "max_steps": state.max_steps,
                     "world_size": args.world_size, "backend": backend, "device": str(args.device),
                     "time": self.last_time},
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
                row = {
                    "step": state.global_step,
                    "max_steps": state.max_steps,
                    "epoch": logs.get("epoch", state.epoch),
                    "loss": logs.get("loss"),
                    "learning_rate": logs.get("learning_rate"),
                    "grad_norm": logs.get("grad_norm"),
                    "num_tokens": tokens,
                    "tokens_per_s": rate,
                    "mean_token_accuracy": logs.get("mean_token_accuracy"),
                    "peak_memory_gib": round(memory, 3),
                    "memory": kind,
                    "time": now,
                }
                _append_jsonl(metrics_path, row)
            elif "train_runtime" in logs:
                _append_jsonl(
                    metrics_path, {"event": "summary", "step": state.global_step, **logs, "time": now}
                )
            elif any(k.startswith("eval_") for k in logs):
                _append_jsonl(metrics_path, {"event": "eval", "step": state.global_step, **logs, "time": now})

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                _append_jsonl(
                    metrics_path, {"event": "checkpoint", "step": state.global_step, "path": str(folder)}
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
                    _append_jsonl(metrics_path, {"event": "interrupted", "step": state.global_step,
                                                 "max_steps": state.max_steps, "time": time.time()})  # fmt: skip
            return control

    return MetricsCallback(), StopOnSignal()


# ---------------------------------------------------------------- the end of turn


def end_of_turn_id(tokenizer) -> int:
    """The token that closes an assistant turn in the chat template (Gemma: <end_of_turn>, id 106)."""
    for token in END_OF_TURN_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id >= 0:
            return token_id
    ids = _chat_ids(tokenizer, [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])
    special = set(tokenizer.all_special_ids)
    for token_id in reversed(ids):
        if token_id in special:
            return token_id
    return tokenizer.eos_token_id


def _chat_ids(tokenizer, messages: list[dict]) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def _blank_ids(tokenizer) -> set[int]:
    """Token ids of pure whitespace (the template's newline after the end of turn)."""
    ids: set[int] = set()
    for text in ("\n", "\n\n", "\n\n\n", " ", "\t"):
        ids.update(tokenizer.encode(text, add_special_tokens=False))
    return {i for i in ids if tokenizer.decode([i]).strip() == ""}


# An end-of-turn token the model never saw in training (a base model's chat tokens) keeps the embedding it
# was initialised with, which points the same way as the other never-used tokens. Trained tokens have no
# such near-twins.
UNTRAINED_COSINE = 0.98
UNTRAINED_MIN_TWINS = 8


def _twin_mask(weight, token_id: int, threshold: float = UNTRAINED_COSINE, chunk: int = 32768):
    """Rows of `weight` whose cosine with row token_id is >= threshold (token_id's own row included),
    computed in chunks so that a bf16 table is never copied whole to float32."""
    import torch

    row = torch.nn.functional.normalize(weight[token_id].detach().float(), dim=0)
    with torch.no_grad():
        blocks = [
            torch.nn.functional.normalize(weight[start : start + chunk].detach().float(), dim=1) @ row
            >= threshold
            for start in range(0, weight.shape[0], chunk)
        ]
    return torch.cat(blocks)


def embedding_twins(model, token_id: int, threshold: float = UNTRAINED_COSINE) -> int:
    """How many other tokens' input embeddings have cosine >= threshold with token_id's."""
    return int(_twin_mask(model.get_input_embeddings().weight, token_id, threshold).sum()) - 1


def fix_untrained_end_of_turn(model, tokenizer, end_id: int) -> str | None:
    """Re-initialise an untrained end-of-turn token to the mean of the trained tokens' embeddings.

    Learning to emit a token that points the same way as thousands of never-used ones raises them all: the
    embedded base model then ends its answers with a random rare token instead of <end_of_turn> and never
    stops. unsloth treats base models' untrained tokens the same way. Returns what was done, or None."""
    import torch

    embeddings = model.get_input_embeddings().weight
    untrained = _twin_mask(embeddings, end_id)
    twins = int(untrained.sum()) - 1
    if twins < UNTRAINED_MIN_TWINS:
        return None
    tables = [(embeddings, untrained)]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not embeddings:  # an untied LM head gets the same treatment
        tables.append((output.weight, _twin_mask(output.weight, end_id)))
    with torch.no_grad():
        for weight, untrained in tables:
            trained = weight[~untrained].float()
            mean = trained.mean(dim=0)
            mean = mean * (trained.norm(dim=1).mean() / mean.norm().clamp(min=1e-12))
            weight[end_id] = mean.to(weight.dtype)
    name = tokenizer.convert_ids_to_tokens(end_id)
    return (
        f"{name} (id {end_id}) was untrained in this model (its embedding pointed the same way as {twins} other "
        "tokens): re-initialised to the mean of the trained tokens' embeddings, so the model can learn to stop"
    )


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
        return {"_sqlsft_length": len(_chat_ids(tokenizer, example["prompt"] + example["completion"]))}

    with_length = dataset.map(length, num_proc=num_proc, desc="Measuring rows")
    kept = with_length.filter(lambda n: n <= max_length, input_columns="_sqlsft_length", num_proc=num_proc)
    return kept.remove_columns("_sqlsft_length"), len(dataset) - len(kept)


def check_end_of_turn(dataset, end_id: int, blank_ids: set[int]) -> tuple[int, list[int]]:
    """Each example's trained labels must end with an unmasked end-of-turn token (trailing blanks allowed).

    Works on TRL's prepared rows, packed (segments given by seq_lengths) or not. Returns (checked, bad rows).
    """
    checked, bad = 0, []
    columns = ["labels", "seq_lengths"] if "seq_lengths" in dataset.column_names else ["labels"]
    for row_index, row in enumerate(dataset.select_columns(columns)):
        labels = row["labels"]
        lengths = row.get("seq_lengths") or [len(labels)]
        start = 0
        for n in lengths:
            segment = [t for t in labels[start : start + n] if t != -100]
            start += n
            checked += 1
            while segment and segment[-1] in blank_ids:
                segment.pop()
            if not segment or segment[-1] != end_id:
                bad.append(row_index)
                break
    return checked, bad


# ---------------------------------------------------------------- main


def build_sft_config(config, run_dir: Path):
    from trl import SFTConfig

    training = dict(config.training)
    model = config.model
    init_kwargs = {
        "revision": model.get("model_revision", "main"),
        "dtype": model.get("dtype", "float32"),
        "attn_implementation": model.get("attn_implementation"),
        "trust_remote_code": bool(training.get("trust_remote_code", False)),
    }
    init_kwargs = {k: v for k, v in init_kwargs.items() if v is not None}
    init_kwargs.update(training.pop("model_init_kwargs", None) or {})
    training.update(
        output_dir=str(run_dir / "checkpoints"),
        run_name=run_dir.name,
        model_init_kwargs=init_kwargs,
        disable_tqdm=True,  # the launching terminal shows progress from metrics.jsonl; the log gets plain lines
    )
    return SFTConfig(**training)


def save_final_model(trainer, tokenizer, model_dir: Path, end_id: int) -> None:
    """model/: weights, tokenizer, chat template and a generation config whose eos lists the end of turn."""
    model = trainer.model
    generation = model.generation_config
    eos = generation.eos_token_id
    eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    for token_id in (tokenizer.eos_token_id, end_id):
        if token_id is not None and token_id not in eos:
            eos.append(token_id)
    generation.eos_token_id = eos
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = True
    trainer.save_model(str(model_dir))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(model_dir))
        if not (model_dir / "chat_template.jinja").is_file() and tokenizer.chat_template:
            (model_dir / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")


def run(run_dir: Path, resume_from: str | None = None) -> int:
    stop = StopRequest()
    stop.install()
    config = load_resolved(run_dir / "config.yaml")
    run_info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))

    import datasets
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    datasets.disable_progress_bars()
    sft_config = build_sft_config(config, run_dir)
    model_path = run_info["model_path"]
    tokenizer = AutoTokenizer.from_pretrained(
        model_path, trust_remote_code=bool(config.training.get("trust_remote_code", False))
    )
    if ensure_chat_template(tokenizer):
        print("[sqlsft] the tokenizer has no chat template: using Gemma 3's", flush=True)
    end_id = end_of_turn_id(tokenizer)

    data = datasets.load_from_disk(run_info["data_path"])
    train_rows = data["train"]
    with sft_config.main_process_first(desc="measuring rows"):  # rank 0 writes the datasets cache first
        train_rows, dropped = drop_overlong(
            train_rows, tokenizer, sft_config.max_length, sft_config.dataset_num_proc,
            counted=bool(run_info.get("data_token_counts")),
        )  # fmt: skip
    is_main = sft_config.process_index == 0
    if is_main:
        _append_jsonl(
            run_dir / "metrics.jsonl",
            {"event": "data", "rows": len(train_rows), "dropped_overlong": dropped,
             "max_length": sft_config.max_length, "time": time.time()},
        )  # fmt: skip
    if dropped:
        print(f"[sqlsft] {dropped} rows longer than max_length={sft_config.max_length} left out", flush=True)
    if len(train_rows) == 0:
        print("[sqlsft] error: no training row fits in max_length; raise training.max_length", flush=True)
        return 2

    metrics_cb, stop_cb = build_callbacks(run_dir, stop)
    trainer = SFTTrainer(
        model=model_path,
        args=sft_config,
        train_dataset=train_rows,
        processing_class=tokenizer,
        callbacks=[metrics_cb, stop_cb],
    )
    checked, bad = check_end_of_turn(trainer.train_dataset, end_id, _blank_ids(tokenizer))
    if bad:
        shown = ", ".join(map(str, bad[:EXAMPLES_SHOWN]))
        print(
            f"[sqlsft] error: {len(bad)} training rows (e.g. {shown}) have labels that do not end with an "
            f"unmasked end-of-turn token (id {end_id}); the model would not learn to stop",
            flush=True,
        )
        return 3
    print(f"[sqlsft] labels checked: all {checked} examples end with an unmasked end of turn (id {end_id})")
    fixed = None if resume_from else fix_untrained_end_of_turn(trainer.model, tokenizer, end_id)
    if fixed:  # on resume the checkpoint's weights (already fixed) replace the model's
        print(f"[sqlsft] {fixed}", flush=True)
        if is_main:
            _append_jsonl(run_dir / "metrics.jsonl", {"event": "note", "text": fixed, "time": time.time()})

    trainer.train(resume_from_checkpoint=resume_from)
    if stop_cb.stopped:
        print(f"[sqlsft] stopped at step {trainer.state.global_step} (checkpoint saved)", flush=True)
    else:
        save_final_model(trainer, tokenizer, run_dir / "model", end_id)
        if is_main:
            _append_jsonl(run_dir / "metrics.jsonl", {"event": "saved", "path": str(run_dir / "model"),
                                                      "step": trainer.state.global_step, "time": time.time()})  # fmt: skip
    if hasattr(trainer, "end"):
        trainer.end()  # transformers >= 5.18: finish trackers and tear down the process group
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sqlsft.train.worker", description=__doc__)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--resume-from", default=None)
    args = parser.parse_args(argv)
    sys.exit(run(args.run_dir.resolve(), args.resume_from))


if __name__ == "__main__":
    main()
