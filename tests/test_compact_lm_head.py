"""The CPU LM head (sqlsft/train/compact_lm_head.py) gives TRL's SFTTrainer the same loss, metrics and gradients
as TRL's own fused head, on packed rows whose prompts are masked."""

import pytest
import torch

from sqlsft.train.compact_lm_head import use_compact_lm_head


def _model(folder, softcap):
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    model.config.final_logit_softcapping = softcap
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # what SFTTrainer does
    return model


def _packed_batch(vocab: int):
    """Three rows packed into one padding-free sequence (position ids restart), prompts masked with -100."""
    generator = torch.Generator().manual_seed(0)
    lengths, prompt = [7, 11, 5], [4, 6, 3]
    input_ids = torch.randint(3, vocab, (1, sum(lengths)), generator=generator)
    position_ids = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    labels = input_ids.clone()
    start = 0
    for n, p in zip(lengths, prompt, strict=True):
        labels[0, start : start + p] = -100
        start += n
    return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}


@pytest.mark.parametrize("softcap", [None, 30.0])
def test_compact_head_matches_trls_fused_head(tiny_model_dir, softcap):
    reference, compact = _model(tiny_model_dir, softcap), _model(tiny_model_dir, softcap)
    assert use_compact_lm_head(compact) is not None  # on the CPU it takes over
    batch = _packed_batch(reference.config.vocab_size)
    outputs = {}
    for name, model in (("trl", reference), ("compact", compact)):
        out = model(**batch, fused_lm_head=True, num_items_in_batch=torch.tensor(9))
        out.loss.backward()
        outputs[name] = out
    trl, ours = outputs["trl"], outputs["compact"]
    assert torch.equal(trl.label_mask, ours.label_mask)
    torch.testing.assert_close(ours.loss, trl.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.log_probs, trl.log_probs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.entropy, trl.entropy, rtol=1e-4, atol=1e-5)
    assert torch.equal(ours.is_top1.bool(), trl.is_top1.bool())
    for (name, a), (_, b) in zip(reference.named_parameters(), compact.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")
    # the model's own forward (generation) is untouched
    plain = compact(input_ids=batch["input_ids"])
    assert plain.logits.shape == (*batch["input_ids"].shape, compact.config.vocab_size)
