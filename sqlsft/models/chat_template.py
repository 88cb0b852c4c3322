"""Chat-template facts every stage agrees on: the tokens that end an assistant turn, and Gemma 3's
template as TRL ships it (the GGUF of the embedded model carries none)."""

from importlib import resources

# Tokens that close an assistant turn, in the order sqlsft looks for them (Gemma: <end_of_turn>, id 106).
END_OF_TURN_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>")
GEMMA_END_OF_TURN = END_OF_TURN_TOKENS[0]


def gemma3_chat_template() -> str:
    return resources.files("trl").joinpath("chat_templates/gemma3.jinja").read_text(encoding="utf-8")


def ensure_chat_template(tokenizer) -> bool:
    """Give a tokenizer without a chat template Gemma 3's; True when it had to."""
    if tokenizer.chat_template:
        return False
    tokenizer.chat_template = gemma3_chat_template()
    return True
