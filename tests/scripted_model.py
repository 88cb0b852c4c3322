"""A real tiny Gemma 3 whose weights are set so that greedy decoding answers every prompt with a fixed text.

A random tiny model writes byte garbage (often nothing printable while streaming), so a test of the chat
page or of eval cannot check what happens to a real answer. This one can: the layers are silenced
(zero output projections) and the tied embedding + final norm spell out a token chain, so the model is
a bigram machine "last prompt token -> answer tokens -> <end_of_turn>". Served by any engine, it streams
the answer token by token and stops by itself.
"""

import itertools
import shutil
from pathlib import Path


def build_scripted_model(base_dir: Path, folder: Path, answer: str) -> Path:
    """Copy the tiny model in `base_dir` to `folder`, rewritten to answer `answer` to any chat prompt."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    base_dir, folder = Path(base_dir), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for item in base_dir.iterdir():
        if item.name != "model.safetensors":
            shutil.copy2(item, folder / item.name)

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    prompt_ids = tokenizer.apply_chat_template(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
        add_generation_prompt=True,
        return_dict=True,
    )["input_ids"]
    chain = [
        prompt_ids[-1],
        *tokenizer.encode(answer, add_special_tokens=False),
        tokenizer.convert_tokens_to_ids("<end_of_turn>"),
    ]
    weights = load_file(base_dir / "model.safetensors")
    embed = weights["model.embed_tokens.weight"]
    hidden = embed.shape[1]
    if len(set(chain)) != len(chain) or 2 * (len(chain) - 1) > hidden:
        raise ValueError(
            f"answer {answer!r} needs distinct tokens and at most {hidden // 2 - 1} of them: {chain}"
        )

    for name in weights:
        if name.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
            weights[name] = torch.zeros_like(weights[name])  # layers add nothing to the residual stream
    dims = list(range(2 * (len(chain) - 1)))
    embed[:, dims] = 0.0
    embed[chain, :] = 0.0
    norm = torch.full((hidden,), -1.0)  # Gemma's RMSNorm scales by (1 + weight): -1 silences a dimension
    for link, (token, successor) in enumerate(itertools.pairwise(chain)):
        a, b = 2 * link, 2 * link + 1
        strength = 2.0**link  # each link outweighs the previous one: the chain only runs forward
        embed[token, a] = embed[token, b] = strength
        embed[successor, a], embed[successor, b] = strength, -strength
        norm[a], norm[b] = 0.0, -2.0  # +1 and -1: logit(successor | token) = 2 * strength**2 / rms
    weights["model.embed_tokens.weight"] = embed
    weights["model.norm.weight"] = norm
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder
