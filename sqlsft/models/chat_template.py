"""Gemma 3's chat template, as TRL ships it (the GGUF of the embedded model carries none)."""

from importlib import resources


def gemma3_chat_template() -> str:
    return resources.files("trl").joinpath("chat_templates/gemma3.jinja").read_text(encoding="utf-8")
