"""Execution accuracy during training, as settings: sqlsft's keys, what they ask of HF's Trainer, and the checks.

  training.eval_rows            N > 0: at each checkpoint save (and at the end) generate greedy answers for the
                                first N validation rows and score them by execution (train/execution_eval.py)
  training.eval_max_new_tokens  the longest answer generated (default 256)

HF's own fields do the rest: `eval_strategy` follows `save_strategy` (so every checkpoint has its score),
`metric_for_best_model` records the best checkpoint in trainer_state.json, `eval_on_start` (--eval-at-start)
scores the untrained model, and `load_best_model_at_end` (--load-best) makes model/ the best checkpoint.
"""

from typing import Any

from sqlsft.common.errors import SqlsftError

EVAL_ROWS_KEY = "eval_rows"
EVAL_MAX_NEW_TOKENS_KEY = "eval_max_new_tokens"
EVAL_KEYS = (EVAL_ROWS_KEY, EVAL_MAX_NEW_TOKENS_KEY)  # sqlsft's: never passed to SFTConfig
DEFAULT_MAX_NEW_TOKENS = 256  # a builtin answer is well under 200 Gemma tokens; a runaway one stops here
BEST_METRIC = "execution_accuracy"  # HF reads eval_execution_accuracy from what evaluate() returns
OWN_METRICS = (BEST_METRIC, "valid_sql")
HF_DEFAULT_SAVE_STEPS = 500  # TrainingArguments' save_steps when a config leaves it out


def eval_rows(training: dict[str, Any]) -> int:
    value = training.get(EVAL_ROWS_KEY) or 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def max_new_tokens(training: dict[str, Any]) -> int:
    return training.get(EVAL_MAX_NEW_TOKENS_KEY) or DEFAULT_MAX_NEW_TOKENS


def saves_checkpoints(training: dict[str, Any]) -> bool:
    return str(training.get("save_strategy", "steps")) != "no"


def check_eval_settings(training: dict[str, Any]) -> None:
    """One clear line for settings that cannot work together (before anything is prepared or launched)."""
    rows = training.get(EVAL_ROWS_KEY)
    if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 0):
        raise SqlsftError(
            f"eval_rows = {rows!r}: give a number of validation rows to score (0 turns it off).",
            "For example --eval-rows 100.",
        )
    tokens = training.get(EVAL_MAX_NEW_TOKENS_KEY)
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1):
        raise SqlsftError(f"eval_max_new_tokens = {tokens!r}: give a number of tokens, at least 1.")
    if not eval_rows(training):
        for key, flag in (("load_best_model_at_end", "--load-best"), ("eval_on_start", "--eval-at-start")):
            if training.get(key):
                raise SqlsftError(
                    f"{flag} ({key}) needs execution accuracy, and this run measures none.",
                    "Add --eval-rows N (the number of validation rows to score at each checkpoint).",
                )
        return
    metric = training.get("metric_for_best_model")
    if metric is not None and str(metric).removeprefix("eval_") not in OWN_METRICS:
        raise SqlsftError(
            f"metric_for_best_model = {metric!r}: with eval_rows, training measures only "
            f"{' and '.join(OWN_METRICS)}.",
            f"Leave it out (the best checkpoint is the one with the best {BEST_METRIC}).",
        )
    if training.get("load_best_model_at_end") and not saves_checkpoints(training):
        raise SqlsftError(
            "--load-best chooses among checkpoints, and this config saves none (save_strategy: no).",
            "Save some: --set save_strategy=steps --set save_steps=N.",
        )


def trainer_arguments(training: dict[str, Any]) -> dict[str, Any]:
    """The SFTConfig fields that turn on HF's evaluation for `eval_rows` (none when it is 0): evaluate whenever
    a checkpoint is saved, and rank checkpoints by execution accuracy. A config's own eval_strategy stays."""
    if not eval_rows(training):
        return {}
    out: dict[str, Any] = {
        "metric_for_best_model": training.get("metric_for_best_model") or BEST_METRIC,
        "greater_is_better": True,
    }
    if "eval_strategy" not in training:
        save = str(training.get("save_strategy", "steps"))
        if save == "epoch":
            out["eval_strategy"] = "epoch"
        elif save in (
            "steps",
            "best",
        ):  # "best" saves after an evaluation that improved: evaluate on its steps
            out["eval_strategy"] = "steps"
            out["eval_steps"] = training.get("save_steps") or HF_DEFAULT_SAVE_STEPS
        else:
            out["eval_strategy"] = "no"  # the worker evaluates once, at the end
    return out
