"""Micro-batches sized by tokens, not rows: a preset's `training.tokens_per_micro_batch`, and the attention and
kernels that go with it. The worker calls `plan_micro_batches` on each rank once it knows its device; the
result is what SFTConfig and the model loader get.

How a token budget maps onto TRL 1.16 (trl/data_utils.py `pack_dataset`, trl/trainer/sft_trainer.py
`DataCollatorForLanguageModeling`): with `packing=True, packing_strategy="bfd"`, TRL packs whole training rows
into rows of at most `max_length` tokens (best-fit decreasing, each packed row keeps its `seq_lengths`), and the
padding-free collator flattens a micro-batch into one sequence whose position ids restart at 0 for each row,
with no attention mask. So `max_length=BUDGET, per_device_train_batch_size=1` is one packed sequence of at most
BUDGET real tokens per micro-batch and not one pad token. sqlsft packs nothing itself. The preset's own
`max_length` keeps its meaning, the longest training row: longer rows are left out before packing (as in
every preset), so no row is ever cut.

Attention over a packed sequence: transformers builds the mask from the position ids. FlexAttention gets a block
mask (sparse: the work grows with the tokens each row attends to, and sliding-window layers keep their window);
flash attention (`flash_attention_2`, with the flash-attn package) runs its varlen kernel on the collator's
`cu_seq_lens`; SDPA and eager build a dense N x N mask over the whole micro-batch, so their memory grows with the
square of the budget. torch has no FlexAttention backward on the CPU (torch 2.14), so a CPU run trains with SDPA,
whose block-diagonal mask gives the same losses and gradients (tests/test_packed_attention.py proves both).

Keys sqlsft reads here and never passes to TRL (`SQLSFT_TRAINING_KEYS`):
  tokens_per_micro_batch       an integer, or `auto`: from the GPU's memory (the estimate of train/estimate.py),
                               a power of two from 4,096 to 65,536; CPU_TOKEN_BUDGET on the CPU
  liger_kernel_when_available  true: liger-kernel's layer kernels (`use_liger_kernel`) when this rank has a
                               GPU and the package imports; off otherwise, with a note
  bf16_when_native             true: bf16 mixed precision (`bf16`) when this rank computes bf16 natively (a GPU
                               with bf16, a CPU with AVX512-BF16 or AMX); fp32 otherwise, where emulated bf16
                               is many times slower; with a note either way
"""

import importlib.util
import os
from dataclasses import dataclass, field, replace
from typing import Any

from sqlsft.common.errors import SqlsftError
from sqlsft.train.eval_settings import EVAL_KEYS
from sqlsft.train.freeze import FREEZE_EMBEDDINGS_KEY

TOKEN_BUDGET_KEY = "tokens_per_micro_batch"
LIGER_WHEN_AVAILABLE_KEY = "liger_kernel_when_available"
BF16_WHEN_NATIVE_KEY = "bf16_when_native"
SQLSFT_TRAINING_KEYS = (TOKEN_BUDGET_KEY, LIGER_WHEN_AVAILABLE_KEY, BF16_WHEN_NATIVE_KEY)
AUTO = "auto"
CPU_TOKEN_BUDGET = 2048  # a CPU gains little from more, and the dense SDPA mask grows with its square
AUTO_MIN_TOKENS = 4096
AUTO_MAX_TOKENS = 65536  # a 270M model saturates an H200 well below this; more only costs memory
AUTO_MEMORY_SHARE = 0.6  # of the GPU's memory: the estimate leaves out the allocator's fragmentation
DENSE_MASK_WARNING_TOKENS = 16384  # a dense bool mask of 16k x 16k is 256 MiB per layer type
PACKED_ATTENTION = ("flex_attention", "flash_attention_2", "flash_attention_3", "sdpa", "eager")
GPU_ONLY_ATTENTION = ("flex_attention", "flash_attention_2", "flash_attention_3")
TRL_DEFAULT_MAX_LENGTH = 1024  # SFTConfig's, when a config sets none


@dataclass(frozen=True)
class Device:
    """What this rank trains on, as far as the plan cares."""

    kind: str  # "cuda" or "cpu"
    memory_gib: float | None = None  # the GPU's total memory
    flash_attn: bool = False  # the flash-attn package imports
    liger_kernel: bool = False  # the liger-kernel package imports
    bf16: bool = False  # computes bf16 natively (a GPU with bf16; a CPU with AVX512-BF16 or AMX)

    @property
    def is_gpu(self) -> bool:
        return self.kind == "cuda"


def detect_device(use_cpu: bool = False) -> Device:
    """This rank's device: its GPU (LOCAL_RANK) unless the run is on the CPU."""
    import torch

    if use_cpu or not torch.cuda.is_available():
        from sqlsft.common.hardware import cpu_has_native_bf16

        return Device("cpu", bf16=bool(cpu_has_native_bf16()))
    index = int(os.environ.get("LOCAL_RANK", "0")) % max(torch.cuda.device_count(), 1)
    return Device(
        "cuda",
        memory_gib=torch.cuda.get_device_properties(index).total_memory / 2**30,
        flash_attn=importlib.util.find_spec("flash_attn") is not None,
        liger_kernel=importlib.util.find_spec("liger_kernel") is not None,
        bf16=torch.cuda.is_bf16_supported(),
    )


@dataclass
class MicroBatchPlan:
    """What the worker builds SFTConfig and the model from."""

    training: dict[str, Any]  # SFTConfig fields: sqlsft's own keys resolved and removed
    attn_implementation: str | None
    row_limit: int | None  # the longest training row kept: the config's max_length (TRL's default 1024)
    tokens_per_micro_batch: int | None = None  # None: micro-batches of per_device_train_batch_size rows
    notes: list[str] = field(default_factory=list)  # one line each, for the log and metrics.jsonl


def check_token_budget(training: dict[str, Any]) -> None:
    """Refuse a budget that is not a positive integer or `auto`, or that the longest row would not fit in."""
    budget = training.get(TOKEN_BUDGET_KEY)
    if budget is None:
        return
    if training.get("packing_strategy") == "wrapped":
        raise SqlsftError(
            f"training.{TOKEN_BUDGET_KEY} packs whole rows (packing_strategy bfd); `wrapped` cuts rows apart.",
            "Leave packing_strategy out, or set it to bfd.",
        )
    if budget == AUTO:
        return
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise SqlsftError(
            f"training.{TOKEN_BUDGET_KEY} = {budget!r}: give a number of tokens, or `auto`.",
            f"For example --set {TOKEN_BUDGET_KEY}=16384.",
        )
    row_limit = int(training.get("max_length") or TRL_DEFAULT_MAX_LENGTH)
    if budget < row_limit:
        raise SqlsftError(
            f"training.{TOKEN_BUDGET_KEY} = {budget} is smaller than max_length = {row_limit}: the longest "
            "row must fit in one micro-batch.",
            f"Raise {TOKEN_BUDGET_KEY}, or lower max_length.",
        )


def auto_token_budget(config, device: Device, model_config=None) -> int:
    """The largest power of two whose estimated memory fits in AUTO_MEMORY_SHARE of the GPU (CPU: small)."""
    if not device.is_gpu or not device.memory_gib or model_config is None:
        return CPU_TOKEN_BUDGET
    from sqlsft.train.estimate import estimate_memory, model_shape

    shape = model_shape(model_config, config)
    best, tokens = AUTO_MIN_TOKENS, AUTO_MIN_TOKENS
    while tokens <= AUTO_MAX_TOKENS:
        trial = replace(
            config,
            training={**config.training, "per_device_train_batch_size": 1, "max_length": tokens},
            # the estimate counts eager's score matrices; the packed attentions here keep none
            model={**config.model, "attn_implementation": "sdpa"},
        )
        if estimate_memory(shape, trial).total_gib <= AUTO_MEMORY_SHARE * device.memory_gib:
            best = tokens
        tokens *= 2
    return best


def _attention(requested: str | None, device: Device, budget: int, notes: list[str]) -> str:
    if requested is not None and requested not in PACKED_ATTENTION:
        raise SqlsftError(
            f"attn_implementation = {requested!r} with {TOKEN_BUDGET_KEY}: packed rows need an attention that "
            "keeps them apart.",
            f"Use one of {', '.join(PACKED_ATTENTION)}.",
        )
    chosen = requested or "sdpa"
    if chosen in GPU_ONLY_ATTENTION and not device.is_gpu:
        notes.append(
            f"{chosen} cannot train on the CPU (no FlexAttention backward there; flash attention is CUDA only): "
            "using sdpa, whose block-diagonal mask over the packed rows gives the same result"
        )
        chosen = "sdpa"
    if chosen.startswith("flash_attention") and not device.flash_attn:
        raise SqlsftError(
            f"attn_implementation = {chosen} needs the flash-attn package, which is not installed.",
            "pip install flash-attn, or use --set attn_implementation=flex_attention.",
        )
    if chosen in ("sdpa", "eager") and device.is_gpu and budget > DENSE_MASK_WARNING_TOKENS:
        notes.append(
            f"{chosen} builds a dense {budget:,} x {budget:,} mask per micro-batch: flex_attention (or "
            "flash_attention_2) keeps packed rows apart without it"
        )
    return chosen


def plan_micro_batches(config, device: Device, model_config=None) -> MicroBatchPlan:
    """Resolve sqlsft's keys for this device: the token budget (TRL's packing fields), attention, liger."""
    training = dict(config.training)
    budget_setting = training.pop(TOKEN_BUDGET_KEY, None)
    liger_when_available = bool(training.pop(LIGER_WHEN_AVAILABLE_KEY, False))
    bf16_when_native = bool(training.pop(BF16_WHEN_NATIVE_KEY, False))
    training.pop(FREEZE_EMBEDDINGS_KEY, None)  # the worker applies it to the model (train/freeze.py)
    for key in EVAL_KEYS:  # the worker's evaluation reads them (train/eval_settings.py)
        training.pop(key, None)
    row_limit = training.get("max_length", TRL_DEFAULT_MAX_LENGTH)  # None: no limit (TRL's too)
    attention = config.model.get("attn_implementation")
    notes: list[str] = []
    if liger_when_available and not training.get("use_liger_kernel"):
        if device.is_gpu and device.liger_kernel:
            training["use_liger_kernel"] = True
            notes.append("liger-kernel: on (its RMSNorm, RoPE and GeGLU kernels)")
        else:
            why = "not installed" if device.is_gpu else "no GPU on this rank"
            notes.append(f"liger-kernel: off ({why})")
    if bf16_when_native and not training.get("bf16"):
        where = "GPU" if device.is_gpu else "CPU"
        if device.bf16:
            training["bf16"] = True
            notes.append(f"bf16 mixed precision: on (this {where} computes bf16 natively)")
        else:
            notes.append(f"bf16 mixed precision: off (this {where} has no native bf16): fp32")
    if budget_setting is None:
        return MicroBatchPlan(training, attention, row_limit, None, notes)
    check_token_budget({**training, TOKEN_BUDGET_KEY: budget_setting})
    row_limit = int(row_limit or TRL_DEFAULT_MAX_LENGTH)  # packing needs one: a row must fit the budget
    if budget_setting == AUTO:
        budget = max(auto_token_budget(config, device, model_config), row_limit)
        where = f"{device.memory_gib:.0f} GiB GPU" if device.is_gpu and device.memory_gib else "CPU"
        source = f"auto for this {where}"
    else:
        budget, source = int(budget_setting), "set"
    rows = training.get("per_device_train_batch_size")
    if rows not in (None, 1):
        notes.append(f"per_device_train_batch_size {rows} -> 1: one packed sequence per micro-batch")
    training.update(
        packing=True,
        packing_strategy=training.get("packing_strategy") or "bfd",
        padding_free=True,
        max_length=budget,  # TRL's packed length; rows longer than the config's max_length are already gone
        per_device_train_batch_size=1,
    )
    attention = _attention(attention, device, budget, notes)
    notes.insert(
        0,
        f"micro-batches of up to {budget:,} packed tokens ({source}), rows up to {row_limit:,} "
        f"tokens, attention {attention}",
    )
    return MicroBatchPlan(training, attention, row_limit, budget, notes)


def plan_for_this_rank(config, model_path: str) -> MicroBatchPlan:
    """The worker's entry: this rank's device, and the model's config when `auto` must size the budget."""
    device = detect_device(use_cpu=bool(config.training.get("use_cpu")))
    model_config = None
    if config.training.get(TOKEN_BUDGET_KEY) == AUTO and device.is_gpu:
        from transformers import AutoConfig

        model_config = AutoConfig.from_pretrained(
            model_path, trust_remote_code=bool(config.training.get("trust_remote_code", False))
        )
    return plan_micro_batches(config, device, model_config)
