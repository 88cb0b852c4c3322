"""The end of turn: the token that closes an assistant turn, and the two checks that make a model learn to
emit it. Each training example's labels must end with an unmasked end-of-turn token (TRL does not add one
to conversational data; truncation can cut it off), and a base model whose end-of-turn embedding was never
trained gets it re-initialised first (see fix_untrained_end_of_turn)."""

from sqlsft.models.chat_template import END_OF_TURN_TOKENS


def end_of_turn_id(tokenizer) -> int:
    """The token that closes an assistant turn in the chat template (Gemma: <end_of_turn>, id 106)."""
    for token in END_OF_TURN_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id >= 0:
            return token_id
    ids = chat_ids(tokenizer, [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])
    special = set(tokenizer.all_special_ids)
    for token_id in reversed(ids):
        if token_id in special:
            return token_id
    return tokenizer.eos_token_id


def chat_ids(tokenizer, messages: list[dict]) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def blank_ids(tokenizer) -> set[int]:
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
