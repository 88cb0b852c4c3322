"""Training part of a model: `training.freeze_embeddings: true` keeps the token embedding table fixed.

Why: a small model's vocabulary table can be most of its weights (Gemma 3 270M: 262,144 x 640, tied to the LM
head, 63% of the parameters). Frozen, it gets no gradient and no AdamW moments, so a step costs less time and
memory; the transformer layers still learn. The LM head shares the table when the model ties them, so it is
frozen with it. A LoRA run trains only its adapter and ignores the key.
"""

FREEZE_EMBEDDINGS_KEY = "freeze_embeddings"


def freeze_embeddings(model) -> str:
    """Stop gradients to the input embeddings (and an untied output head stays trainable); returns a note."""
    embeddings = model.get_input_embeddings().weight
    embeddings.requires_grad_(False)
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embeddings
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    what = "embeddings (tied to the LM head)" if tied else "input embeddings"
    return (
        f"frozen {what}: {trainable:,} of {total:,} parameters train ({100 * trainable / max(total, 1):.0f}%)"
    )


def frozen_parameter_count(model) -> int:
    """How many parameters `freeze_embeddings` would freeze (for estimates on a meta-device model)."""
    return model.get_input_embeddings().weight.numel()
