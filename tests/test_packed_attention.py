"""A packed, padding-free micro-batch trains exactly like the same rows padded: the `fast` preset's promise.

TRL packs the rows (`pack_dataset`, best-fit decreasing) and its collator flattens them into one sequence whose
position ids restart at 0 for each row; transformers builds the attention mask from those position ids
(FlexAttention: a block mask; SDPA: a dense block-diagonal one), keeping each row to itself and each sliding-window
layer to its window. Reference: the same rows padded to a batch through SDPA with an ordinary padding mask.

The model is the tiny Gemma 3 with a sliding window of 8 on its first layer (the second one attends to its whole
row), and the rows are up to 30 tokens, so the window cuts most of them. Everything runs in fp32.

FlexAttention on the CPU: torch compiles its forward pass (the real kernel, checked here for the per-token loss)
but has no CPU backward yet ("FlexAttention does not support backward on CPU", torch 2.14), so the gradient test
runs FlexAttention's reference implementation, the same operator with the same block mask, uncompiled. On a GPU
the compiled backward is torch's own. For the same reason `fast` falls back to SDPA when it trains on the CPU.
"""

import pytest
import torch

SLIDING_WINDOW = 8
ROW_LENGTHS = (21, 13, 30, 5, 17)  # distinct, so a packed segment names its row; four exceed the window
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(scope="module")
def rows(tiny_model_dir) -> list[list[int]]:
    from transformers import AutoConfig

    vocab = AutoConfig.from_pretrained(tiny_model_dir).vocab_size
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(10, vocab, (n,), generator=generator).tolist() for n in ROW_LENGTHS]


def load_model(folder, attn_implementation: str, sliding_window: int = SLIDING_WINDOW):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        folder,
        attn_implementation=attn_implementation,
        dtype=torch.float32,
        sliding_window=sliding_window,
        layer_types=["sliding_attention", "full_attention"],
        use_cache=False,  # as in training: the mask comes from the position ids only without a cache
    )
    assert (
        model.config.sliding_window == sliding_window
        and model.config._attn_implementation == attn_implementation
    )
    return model


def padded_batch(rows: list[list[int]]) -> dict:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=0)([{"input_ids": r} for r in rows])


def packed_batch(rows: list[list[int]], restart_positions: bool = True) -> dict:
    """TRL's own packing and padding-free collator: one micro-batch of at most sum(ROW_LENGTHS) tokens."""
    from datasets import Dataset
    from trl.data_utils import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    packed = pack_dataset(Dataset.from_dict({"input_ids": rows}), sum(ROW_LENGTHS), "bfd")
    assert len(packed) == 1  # every row in one packed sequence
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([packed[0]])
    assert "attention_mask" not in batch and batch["input_ids"].shape == (1, sum(ROW_LENGTHS))
    if not restart_positions:  # what a collator without position-id resets would send: one long row
        batch["position_ids"] = torch.arange(sum(ROW_LENGTHS))[None]
    return batch


def per_row_losses(model, batch: dict, rows: list[list[int]]) -> list[torch.Tensor]:
    """For each row (in the order of `rows`), the loss of each of its tokens after the first."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits.float()
    token_losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), batch["input_ids"][:, 1:], reduction="none"
    )
    out: list[torch.Tensor | None] = [None] * len(rows)
    if "position_ids" in batch and batch["input_ids"].shape[0] == 1:  # packed: find each row's segment
        ids = batch["input_ids"][0].tolist()
        start = 0
        while start < len(ids):
            index = next(i for i, r in enumerate(rows) if ids[start : start + len(r)] == r)
            out[index] = token_losses[0, start : start + len(rows[index]) - 1]
            start += len(rows[index])
    else:
        for index, row in enumerate(rows):
            out[index] = token_losses[index, : len(row) - 1]
    assert all(t is not None for t in out)
    return out


def gradients(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def padded_reference(tiny_model_dir, rows):
    """Per-token losses and gradients of the rows padded through SDPA: what the packed batch must reproduce."""
    model = load_model(tiny_model_dir, "sdpa")
    losses = per_row_losses(model, padded_batch(rows), rows)
    torch.cat(losses).sum().backward()
    return [t.detach() for t in losses], gradients(model)


def test_the_rows_are_longer_than_the_window_and_the_window_matters(tiny_model_dir, rows, padded_reference):
    """Without this, losing the sliding window on the packed path would go unnoticed."""
    assert sum(n > SLIDING_WINDOW for n in ROW_LENGTHS) >= 3
    wide = load_model(tiny_model_dir, "sdpa", sliding_window=512)
    with torch.no_grad():
        unwindowed = per_row_losses(wide, padded_batch(rows), rows)
    longest = ROW_LENGTHS.index(max(ROW_LENGTHS))
    reference = padded_reference[0][longest]
    assert torch.allclose(
        unwindowed[longest][: SLIDING_WINDOW - 1], reference[: SLIDING_WINDOW - 1], **TOLERANCE
    )
    assert (unwindowed[longest][SLIDING_WINDOW:] - reference[SLIDING_WINDOW:]).abs().max() > 1e-3


@pytest.mark.slow  # torch compiles the FlexAttention kernel for the CPU: about 40 s on 2 cores
def test_packed_flex_attention_gives_the_padded_per_token_loss(tiny_model_dir, rows, padded_reference):
    """The compiled FlexAttention kernel (forward) on TRL's packed micro-batch; and the same batch with its
    position ids running on across rows (no resets) must NOT match: the rows would see each other."""
    model = load_model(tiny_model_dir, "flex_attention")
    with torch.no_grad():
        packed = per_row_losses(model, packed_batch(rows), rows)
        contaminated = per_row_losses(model, packed_batch(rows, restart_positions=False), rows)
    for got, want in zip(packed, padded_reference[0], strict=True):
        torch.testing.assert_close(got, want, **TOLERANCE)
    first = ROW_LENGTHS.index(max(ROW_LENGTHS))  # BFD puts the longest row first: it sees nothing before it
    later = [i for i in range(len(ROW_LENGTHS)) if i != first]
    assert all((contaminated[i] - padded_reference[0][i]).abs().max() > 1e-3 for i in later)


@pytest.fixture
def flex_reference_backward(monkeypatch):
    """Run FlexAttention uncompiled (its reference implementation, which has a backward on the CPU)."""
    import torch.nn.attention.flex_attention as flex
    from transformers.integrations import flex_attention as transformers_flex

    monkeypatch.setattr(flex, "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG", True)
    monkeypatch.setattr(flex, "_validate_device", lambda query, key, value: None)  # the CPU-backward refusal

    def uncompiled(query, key, value, training=False, **kwargs):
        return flex.flex_attention(query, key, value, **kwargs)

    monkeypatch.setattr(transformers_flex, "compile_friendly_flex_attention", uncompiled)


@pytest.mark.parametrize("attn_implementation", ["flex_attention", "sdpa"])
def test_packed_gradients_equal_the_padded_ones(
    request, tiny_model_dir, rows, padded_reference, attn_implementation
):
    """Loss and every parameter's gradient of the packed micro-batch equal the padded batch's. `sdpa` is the
    path `fast` takes on the CPU (a dense block-diagonal mask); `flex_attention` the one it takes on a GPU."""
    if attn_implementation == "flex_attention":
        request.getfixturevalue("flex_reference_backward")
    model = load_model(tiny_model_dir, attn_implementation)
    losses = per_row_losses(model, packed_batch(rows), rows)
    torch.cat(losses).sum().backward()
    want_losses, want_grads = padded_reference
    for got, want in zip(losses, want_losses, strict=True):
        torch.testing.assert_close(got.detach(), want, **TOLERANCE)
    got_grads = gradients(model)
    assert got_grads.keys() == want_grads.keys() and len(got_grads) > 10
    for name, grad in got_grads.items():
        torch.testing.assert_close(grad, want_grads[name], **TOLERANCE, msg=lambda m, n=name: f"{n}: {m}")
    # and the contaminated batch does not give the padded gradients
    model.zero_grad()
    torch.cat(per_row_losses(model, packed_batch(rows, restart_positions=False), rows)).sum().backward()
    assert any(not torch.allclose(g, want_grads[n], **TOLERANCE) for n, g in gradients(model).items())


# ---------------------------------------------------------------- fast's token budget (sqlsft/train/token_budget.py)

GEMMA3_270M = {
    "vocab_size": 262144, "hidden_size": 640, "intermediate_size": 2048, "num_hidden_layers": 18,
    "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
}  # fmt: skip
PACKING_FIELDS = ("packing", "packing_strategy", "padding_free", "max_length", "per_device_train_batch_size")


def test_fast_sizes_its_micro_batches_by_tokens_for_each_device():
    from transformers import Gemma3TextConfig

    from sqlsft.common.errors import SqlsftError
    from sqlsft.train.config import resolve_config
    from sqlsft.train.token_budget import SQLSFT_TRAINING_KEYS, Device, plan_micro_batches

    fast = resolve_config("fast")
    model_config = Gemma3TextConfig(**GEMMA3_270M)  # the 270M's shape, no weights
    cpu = plan_micro_batches(fast, Device("cpu"), model_config)
    assert {k: cpu.training[k] for k in PACKING_FIELDS} == {
        "packing": True, "packing_strategy": "bfd", "padding_free": True, "max_length": 2048,
        "per_device_train_batch_size": 1,
    }  # fmt: skip
    assert cpu.tokens_per_micro_batch == 2048 and cpu.row_limit == 1024  # max_length stays the longest row
    assert cpu.attn_implementation == "sdpa" and "cannot train on the CPU" in " ".join(cpu.notes)
    assert not set(SQLSFT_TRAINING_KEYS) & set(cpu.training) and "use_liger_kernel" not in cpu.training

    h200 = plan_micro_batches(fast, Device("cuda", 139.8, liger_kernel=True), model_config)
    assert h200.tokens_per_micro_batch == 65536 and h200.training["max_length"] == 65536
    assert h200.attn_implementation == "flex_attention" and h200.training["use_liger_kernel"] is True
    small = plan_micro_batches(fast, Device("cuda", 22.0), model_config)
    assert 4096 <= small.tokens_per_micro_batch < 65536 and "use_liger_kernel" not in small.training
    assert "liger-kernel: off (not installed)" in small.notes

    flash = resolve_config(
        "fast", overrides=["tokens_per_micro_batch=16384", "attn_implementation=flash_attention_2"]
    )
    plan = plan_micro_batches(flash, Device("cuda", 139.8, flash_attn=True), model_config)
    assert plan.tokens_per_micro_batch == 16384 and plan.attn_implementation == "flash_attention_2"
    with pytest.raises(SqlsftError, match="needs the flash-attn package"):
        plan_micro_batches(flash, Device("cuda", 139.8), model_config)

    baseline = resolve_config("baseline")
    unchanged = plan_micro_batches(baseline, Device("cpu"))
    assert unchanged.tokens_per_micro_batch is None and unchanged.training == baseline.training


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("tokens_per_micro_batch=512", "tokens_per_micro_batch = 512 is smaller than max_length = 1024"),
        ("tokens_per_micro_batch=lots", "give a number of tokens, or `auto`"),
        ("tokens_per_micro_batch=0", "give a number of tokens, or `auto`"),
        ("packing_strategy=wrapped", "`wrapped` cuts rows apart"),
    ],
)
def test_a_bad_token_budget_is_one_line(setting, message):
    from tests.cli_runner import invoke, one_error_line

    assert message in one_error_line(invoke("train", "--preset", "fast", "--set", setting, "--dry-run"))


def test_trl_gives_one_packed_sequence_of_at_most_the_budget_per_micro_batch(tiny_model_dir, tmp_path):
    """The plan's fields through TRL's real SFTTrainer: every micro-batch is one padding-free sequence of whole
    rows, at most the budget long, and together they hold every token of every row once."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from sqlsft.train.config import resolve_config
    from sqlsft.train.token_budget import Device, plan_micro_batches

    budget = 256
    config = resolve_config(
        "fast", overrides=["max_length=64", f"tokens_per_micro_batch={budget}", "dataset_num_proc=1"]
    )
    plan = plan_micro_batches(config, Device("cpu"))
    words = ["SELECT", "name", "FROM", "customers", "WHERE", "city", "=", "'Paris'", "ORDER", "BY", "name"]
    rows = Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": " ".join(words[: 1 + i % 10])}] for i in range(40)],
            "completion": [
                [{"role": "assistant", "content": " ".join(words[: 1 + (7 * i) % 11])}] for i in range(40)
            ],
        }
    )
    args = SFTConfig(
        **plan.training, output_dir=str(tmp_path), use_cpu=True, report_to="none",
        model_init_kwargs={"attn_implementation": plan.attn_implementation, "dtype": "float32"},
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    trainer = SFTTrainer(model=str(tiny_model_dir), args=args, train_dataset=rows, processing_class=tokenizer)
    assert trainer.model.config._attn_implementation == "sdpa"  # the CPU's packed attention
    row_lengths = [n for packed in trainer.train_dataset["seq_lengths"] for n in packed]
    assert len(row_lengths) == 40 and max(row_lengths) <= 64
    seen_tokens = seen_rows = 0
    for batch in trainer.get_train_dataloader():
        assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
        assert batch["input_ids"].shape[1] <= budget
        seen_tokens += batch["input_ids"].shape[1]
        seen_rows += int((batch["position_ids"] == 0).sum())
    assert seen_rows == 40 and seen_tokens == sum(row_lengths)  # no pad, no row cut or lost
    assert seen_tokens / len(trainer.train_dataset) > budget / 2  # the budget is actually filled
