"""LoRA and QLoRA runs: the adapter TRL trains on a frozen base (peft through TRL's ModelConfig), saved to
the run's adapter/ folder and merged into a full model in model/, so serve, eval, chat and export see an
ordinary model folder.

QLoRA's base is loaded in 4 bits for training only: the merge loads it again in its training dtype
(bf16 in the presets) and adds the adapter to those weights, never to the 4-bit ones.
"""

from pathlib import Path

from sqlsft.runs.registry import RunFolder
from sqlsft.train.config import TrainConfig

ADAPTER_CONFIG_FILE = "adapter_config.json"  # peft's own name


def adapter_dir(run_dir: Path) -> Path:
    return RunFolder(Path(run_dir)).adapter_dir


def has_adapter(run_dir: Path) -> bool:
    return (adapter_dir(run_dir) / ADAPTER_CONFIG_FILE).is_file()


def trl_model_config(config: TrainConfig):
    """TRL's ModelConfig from the run's model section (every key was checked against it already)."""
    from trl import ModelConfig

    return ModelConfig(**config.model)


def peft_and_quantization(config: TrainConfig):
    """(peft LoraConfig or None, BitsAndBytesConfig or None), exactly as `trl sft` builds them."""
    if not config.uses_peft:
        return None, None
    from trl import get_peft_config, get_quantization_config

    model_args = trl_model_config(config)
    return get_peft_config(model_args), get_quantization_config(model_args)


def stop_on_end_of_turn(generation, tokenizer, end_id: int) -> None:
    """A generation config whose eos lists the tokenizer's EOS and the end of turn (vLLM stops on each)."""
    eos = generation.eos_token_id
    eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    for token_id in (tokenizer.eos_token_id, end_id):
        if token_id is not None and token_id not in eos:
            eos.append(token_id)
    generation.eos_token_id = eos
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id


def save_tokenizer(tokenizer, folder: Path) -> None:
    tokenizer.save_pretrained(str(folder))
    if not (folder / "chat_template.jinja").is_file() and tokenizer.chat_template:
        (folder / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")


def load_merge_base(config: TrainConfig, base_path: str):
    """The base in its training dtype (never quantized), on the CPU, with the same end-of-turn fix as training."""
    from trl.trainer.utils import create_model_from_path

    model = config.model
    return create_model_from_path(
        base_path,
        dtype=model.get("dtype") or "float32",
        revision=model.get("model_revision") or "main",
        trust_remote_code=bool(model.get("trust_remote_code") or config.training.get("trust_remote_code")),
        device_map="cpu",
    )


def merge_adapter(
    config: TrainConfig, base_path: str, adapter: Path, tokenizer, end_id: int, out: Path
) -> None:
    """model/ = base (training dtype) + adapter, merged with peft's merge_and_unload; tokenizer, chat
    template and a generation config that stops on the end of turn, as a full run's model/ has."""
    from peft import PeftModel

    from sqlsft.train.end_of_turn import fix_untrained_end_of_turn

    base = load_merge_base(config, base_path)
    # training saw the fixed end-of-turn row (frozen, so not in the adapter): the merge base gets it too
    fix_untrained_end_of_turn(base, tokenizer, end_id)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    stop_on_end_of_turn(merged.generation_config, tokenizer, end_id)
    merged.config.use_cache = True
    merged.save_pretrained(str(out))
    save_tokenizer(tokenizer, out)


def save_adapter_and_merge(
    trainer, config: TrainConfig, run_dir: Path, base_path: str, tokenizer, end_id: int
):
    """adapter/ on every run; model/ (merged) unless the config says merge_adapter: false. Returns model/ or
    adapter/, whichever the run's servable result is."""
    from sqlsft.runs.registry import RunFolder

    folder = adapter_dir(run_dir)
    trainer.save_model(str(folder))  # a PeftModel saves the adapter only (all ranks take part under FSDP)
    accelerator = trainer.accelerator
    if accelerator.is_main_process:
        save_tokenizer(tokenizer, folder)
    result = folder
    if config.merge_adapter:
        result = RunFolder(run_dir).model_dir
        if accelerator.is_main_process:
            merge_adapter(config, base_path, folder, tokenizer, end_id, result)
    accelerator.wait_for_everyone()
    return result
