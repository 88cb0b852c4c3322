"""The LM head of a CPU run: log-probabilities of the completion positions only, with torch's own log-softmax.

TRL 1.16's SFTTrainer asks the model for `fused_lm_head=True` outputs (trl/trainer/utils.py `add_fused_lm_head`):
per-token log-probabilities, entropy and top-1 hits of the next-token labels, without the full logits. On a
device with Triton it projects only the positions whose label is not -100. Elsewhere (the CPU) it scores *every*
position, in tiles folded by a chain of torch element-wise ops: with the builtin rows (85% of the tokens are the
prompt, whose labels are -100) and Gemma 3's 262,144-token vocabulary, that head took about 60% of a CPU step.

`use_compact_lm_head` replaces that forward, on the CPU only, by one that gives the trainer the same fields
(TRL's compute_loss is unchanged): the backbone runs as before, the head projects the labelled positions only,
and `log_softmax` (one fused native kernel) gives the log-probabilities and the entropy. The logits of those
positions are materialised (labelled tokens x vocabulary, fp32): a few hundred MiB for a micro-batch of a few
hundred completion tokens. Models whose head TRL scales in ways this one does not (logit_scale and kin) keep
TRL's head. tests/test_compact_lm_head.py checks loss and gradients against TRL's head.
"""

import functools
import types

# Config fields that change the logits beyond the final soft-capping: TRL's head knows them, this one does not.
SCALED_HEAD_FIELDS = ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def use_compact_lm_head(model) -> str | None:
    """Patch `model` (the causal LM, under any PEFT wrapper) when it runs on the CPU; returns a note, or None
    when TRL's head stays (a GPU, or a head scaled in a way this one does not reproduce)."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    if head is None or head.weight.device.type != "cpu":
        return None
    text_config = base.config.get_text_config()
    if any(getattr(text_config, name, None) is not None for name in SCALED_HEAD_FIELDS):
        return None
    softcap = getattr(text_config, "final_logit_softcapping", None)
    from trl.trainer.utils import FusedCausalLMOutput

    original_forward = type(base).forward

    @functools.wraps(original_forward)  # `generate` validates its model kwargs against this signature
    def forward(
        self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs
    ):
        if not fused_lm_head:  # generation, and anything else that wants the model's own forward
            if labels is not None:
                kwargs["labels"] = labels
            if shift_labels is not None:
                kwargs["shift_labels"] = shift_labels
            if num_items_in_batch is not None:
                kwargs["num_items_in_batch"] = num_items_in_batch
            return original_forward(self, *args, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        if shift_labels is None:
            hidden, targets = hidden[:, :-1], labels[:, 1:]
        else:
            targets = shift_labels
        mask = targets != -100
        head_module = self.get_output_embeddings()
        logits = head_module(hidden[mask]).float()  # [labelled tokens, vocab]
        if softcap is not None:
            logits = softcap * torch.tanh(logits / softcap)
        log_softmax = torch.log_softmax(logits, dim=-1)
        picked = targets[mask]
        token_log_probs = log_softmax.gather(-1, picked.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            entropy = -(log_softmax.exp() * log_softmax).sum(-1)
            is_top1 = logits.argmax(-1) == picked

        def spread(
            values,
        ):  # back to (batch, seq - 1), zero where the label is -100, as TRL's head gives them
            return values.new_zeros(mask.shape).masked_scatter(mask, values)

        log_probs = spread(token_log_probs)
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / count,
            log_probs=log_probs,
            entropy=spread(entropy),
            is_top1=spread(is_top1),
            label_mask=mask,
        )

    base.forward = types.MethodType(forward, base)
    return (
        "CPU: the LM head scores only the labelled (completion) positions, with torch's log-softmax "
        "(TRL's fused head scores every position when it has no Triton)"
    )
