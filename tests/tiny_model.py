"""A tiny Gemma 3 text model with a small byte-level BPE tokenizer, built offline in seconds.

The real Gemma vocabulary (262k) dominates small-model cost on a CPU, so tests use this model:
same architecture (gemma3_text), same chat template and stop tokens as the embedded model.
"""

from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]

_CORPUS = [
    "You are an expert SQL query generator. Your task is to generate a correct SQL query that answers "
    "a user's prompt using the provided schema.",
    "Prompt:\nHow many rows are there?\n\nSchema:\n```sql\nCREATE TABLE t (id INT, name VARCHAR(50));\n```",
    "SELECT COUNT(*) FROM employees WHERE salary > 50000 GROUP BY department HAVING COUNT(*) > 2 "
    "ORDER BY name DESC LIMIT 5; INSERT INTO t (a, b) VALUES (1, 'x'); UPDATE t SET a = 2; DELETE FROM t;",
    "SUM AVG MIN MAX JOIN ON AS AND OR NOT IN IS NULL DISTINCT BETWEEN LIKE INNER LEFT",
    "What is the average price of products in each category? List the names of customers from 'Paris'.",
    "```sql\nSELECT name\nFROM customers\nWHERE city = 'Paris';\n```",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 ()*,.;:'\"=<>+-_/`\n\t",
]


def build_tiny_gemma(
    folder: Path, vocab_size: int = 1024, hidden_size: int = 64, layers: int = 2, seed: int = 0
):
    """Write a randomly initialised tiny Gemma 3 (weights, tokenizer, chat template, generation config)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, GenerationConfig, PreTrainedTokenizerFast

    from sqlsft.models.chat_template import gemma3_chat_template

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    tokenizer_model = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer_model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer_model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer_model.train_from_iterator(_CORPUS * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_model,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    tokenizer.chat_template = gemma3_chat_template()
    tokenizer.save_pretrained(folder)

    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=2048,
        sliding_window=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, end_of_turn],
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, end_of_turn],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(folder)
    return folder
