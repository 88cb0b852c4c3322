"""Execution accuracy during training: TRL's SFTTrainer whose `evaluate()` answers validation questions and
scores the answers by running them, with the scorer of `sqlsft eval`.

Everything else is the Trainer's own: `eval_strategy` decides when (train/eval_settings.py makes it follow
the checkpoints), `metric_for_best_model` records the best checkpoint in trainer_state.json, `eval_on_start`
and `load_best_model_at_end` work as documented, and the returned metrics reach metrics.jsonl, wandb and
trackio through `log()`.

Several ranks: each generates its share of the rows (every rank the same number of batches, so FSDP's
lockstep generation never waits on a rank that has finished), rank 0 scores them all, and every rank returns
rank 0's figures (the Trainer decides the best checkpoint on each rank).
"""

import time
from concurrent.futures import ThreadPoolExecutor

import torch
from accelerate.utils import broadcast_object_list, gather_object
from transformers import GenerationConfig
from trl import SFTTrainer
from trl.distributed import DistributedBackend
from trl.models.utils import unwrap_model_for_generation

from sqlsft.eval.answering import Answer
from sqlsft.eval.score_rows import score_row
from sqlsft.sql.pool import MAX_RUNNING
from sqlsft.sql.scoring import summarize

METRIC_PREFIX = "eval"


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The row's prompt as training tokenized it (TRL: the chat template with the generation prompt)."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def shard(count: int, rank: int, world: int) -> list[int]:
    """This rank's row indices, padded with a repeat so that every rank has the same number (the repeats'
    answers are dropped)."""
    mine = list(range(rank, count, world))
    per_rank = -(-count // world)
    return mine + [mine[-1] if mine else 0] * (per_rank - len(mine))


class ExecutionEvalTrainer(SFTTrainer):
    """SFTTrainer whose evaluation is execution accuracy on `eval_rows` (prepared validation rows: `prompt`
    messages, `sql_context` schema, `sql` gold), the same rows in the same order every time."""

    def __init__(self, *args, eval_rows, max_new_tokens: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.execution_rows = [dict(row) for row in eval_rows]
        self.max_new_tokens = max_new_tokens
        tokenizer = self.processing_class
        self.prompts = [prompt_ids(tokenizer, row["prompt"]) for row in self.execution_rows]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.last_evaluated_step: int | None = None

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = METRIC_PREFIX):
        started = time.perf_counter()
        model = self.model
        was_training = model.training
        model.eval()  # also makes TRL's log() treat these as eval figures (and leave the train ones alone)
        try:
            answers = self._answers()
            metrics = (
                [self._score(answers, started, metric_key_prefix)] if self.is_world_process_zero() else [None]
            )
            metrics = broadcast_object_list(metrics)[0]  # the same figures on every rank
            self.last_evaluated_step = self.state.global_step
            self.log(dict(metrics))
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        finally:
            model.train(was_training)
        return metrics

    def _answers(self) -> dict[int, str]:
        """{row index: answer text} for every row, gathered from all ranks (on every rank)."""
        accelerator = self.accelerator
        indices = shard(len(self.prompts), accelerator.process_index, accelerator.num_processes)
        indices.sort(key=lambda i: len(self.prompts[i]))  # similar lengths together: less padding
        size = max(1, self.args.per_device_eval_batch_size)
        backend = DistributedBackend(accelerator)
        # FSDP and ZeRO-3 run each forward across all ranks: none may stop generating before the others
        synced = (backend.is_fsdp or backend.is_zero3) and accelerator.num_processes > 1
        generation = GenerationConfig(  # greedy, stopping where the saved generation config stops (end of turn)
            max_new_tokens=self.max_new_tokens, do_sample=False,
            eos_token_id=self.model.generation_config.eos_token_id, pad_token_id=self.pad_id,
        )  # fmt: skip
        mine: list[tuple[int, str]] = []
        with (
            unwrap_model_for_generation(
                self.model_wrapped, accelerator,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as model,
            torch.no_grad(),
            backend.summon_full_params(self.model_wrapped, recurse=False),
        ):  # fmt: skip
            for start in range(0, len(indices), size):
                batch = indices[start : start + size]
                input_ids, attention_mask = self._left_padded([self.prompts[i] for i in batch], model.device)
                output = model.generate(
                    input_ids=input_ids, attention_mask=attention_mask, generation_config=generation,
                    synced_gpus=synced,
                )  # fmt: skip
                for index, tokens in zip(batch, output[:, input_ids.shape[1] :].tolist(), strict=True):
                    mine.append((index, self.processing_class.decode(tokens, skip_special_tokens=True)))
        return dict(gather_object(mine))  # the padding repeats collapse here

    def _left_padded(self, prompts: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        return ids.to(device), mask.to(device)

    def _score(self, answers: dict[int, str], started: float, prefix: str) -> dict[str, float]:
        """Score every answer as `sqlsft eval` does (its sandbox processes, a few at once)."""

        def one(index: int):
            return score_row(self.execution_rows[index], Answer(answers[index], 0.0), [], index).score

        with ThreadPoolExecutor(max_workers=MAX_RUNNING, thread_name_prefix="eval-score") as pool:
            scores = list(pool.map(one, range(len(self.execution_rows))))
        totals = summarize(scores)
        # HF compares the best metric with `>`: an accuracy with no executable gold counts as 0
        return {
            f"{prefix}_execution_accuracy": totals["execution_accuracy"] or 0.0,
            f"{prefix}_valid_sql": totals["valid_sql"] or 0.0,
            f"{prefix}_rows": len(scores),
            f"{prefix}_seconds": round(time.perf_counter() - started, 2),
        }
