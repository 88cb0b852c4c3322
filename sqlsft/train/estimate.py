"""What a run will train and roughly how much accelerator memory each process needs, from the model's config
alone: the model is built on PyTorch's meta device (no weights read or downloaded), the LoRA adapter is
added by peft itself, and parameters are counted. `sqlsft train --dry-run` shows the result.

The memory figure is an estimate for planning (which GPU, which batch), not a promise:
  weights      base parameters x bytes of the dtype; QLoRA: the linear layers at 4 bits (+ NF4 block scales),
               the rest (embeddings, norms) in the dtype; LoRA adapters in fp32 (peft's default; bf16 in QLoRA,
               which TRL casts them to)
  training     gradients + AdamW's two moments for the trainable parameters, in their own dtype
  activations  per layer and token, 34 x hidden x 2 bytes (Korthikanti et al. 2022, bf16), + 5 x heads x
               sequence x 2 bytes with eager attention (its score matrices); with gradient checkpointing only
               each layer's input is kept, plus one layer's worth for the recomputation. Twice that in fp32.
  (no logits: TRL 1.16 computes the loss with its chunked, fused LM head; the CUDA context, about 0.5 GiB,
  and the allocator's fragmentation come on top.)
FSDP divides weights, gradients and optimizer states by the number of processes; DDP keeps a copy on each.
"""

from dataclasses import dataclass

from sqlsft.common.errors import SqlsftError
from sqlsft.train.config import TrainConfig
from sqlsft.train.freeze import FREEZE_EMBEDDINGS_KEY, frozen_parameter_count
from sqlsft.train.token_budget import TOKEN_BUDGET_KEY

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}
NF4_BYTES = 0.5 + 4 / 64  # 4 bits per weight + one fp32 scale per block of 64
INT8_BYTES = 1.0 + 4 / 4096
ACTIVATION_FACTOR = 34  # bytes per token, layer and hidden unit / 2 bytes (Korthikanti et al., Table 2)
ATTENTION_SCORES_FACTOR = 5  # x heads x sequence: the eager attention's score, softmax and dropout tensors
GIB = 2**30


@dataclass
class ModelShape:
    """What the estimate needs from a model, counted on the meta device."""

    total_params: int
    trainable_params: int  # all of them for a full run; the adapter's for LoRA
    quantizable_params: int  # weights of the linear layers bitsandbytes would quantize (all but the LM head)
    hidden_size: int
    layers: int
    heads: int
    architecture: str


@dataclass
class MemoryEstimate:
    shape: ModelShape
    weights_gib: float
    training_state_gib: float
    activations_gib: float
    tokens_per_step: int  # per process: the token budget of a packed micro-batch, else batch x max_length

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.training_state_gib + self.activations_gib

    def lines(self, config: TrainConfig, processes: int, device: str) -> list[str]:
        shape = self.shape
        share = 100 * shape.trainable_params / max(shape.total_params, 1)
        if config.uses_peft:
            rank = config.model.get("lora_r", 16)
            modules = config.model.get("lora_target_modules") or "peft's defaults"
            modules = ",".join(modules) if isinstance(modules, list) else modules
            what = f"LoRA r={rank} on {modules}" + (" over a 4-bit base" if config.quantized else "")
        else:
            what = "full fine-tuning" + (
                ", embeddings frozen" if config.training.get(FREEZE_EMBEDDINGS_KEY) else ""
            )
        where = "GPU" if device == "gpu" else "process"
        return [
            f"trainable parameters: {shape.trainable_params:,} of {shape.total_params:,} ({share:.2f}%), {what}",
            f"memory per {where} (estimate, {processes} process{'es' if processes > 1 else ''}): about "
            f"{_size(self.total_gib)} = weights {_size(self.weights_gib)} + gradients and AdamW "
            f"{_size(self.training_state_gib)} + activations {_size(self.activations_gib)} "
            f"({self.tokens_per_step:,} tokens per step per process; the CUDA context comes on top)",
        ]


def _size(gib: float) -> str:
    return f"{gib:.1f} GiB" if gib >= 1 else f"{gib * 1024:.0f} MiB"


def _text_config(model_config):
    return model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config


def model_shape(model_config, config: TrainConfig) -> ModelShape:
    """Count parameters of the model (and its LoRA adapter) built from its config on the meta device."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    names = getattr(model_config, "architectures", None) or []
    architecture = getattr(transformers, names[0], None) if names else None
    architecture = architecture or AutoModelForCausalLM
    with torch.device("meta"):
        model = (
            architecture._from_config(model_config)
            if architecture is not AutoModelForCausalLM
            else AutoModelForCausalLM.from_config(model_config)
        )
    total = sum(p.numel() for p in model.parameters())
    head = model.get_output_embeddings()
    quantizable = sum(
        m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head
    )
    trainable = total
    if config.training.get(FREEZE_EMBEDDINGS_KEY) and not config.uses_peft:
        trainable = total - frozen_parameter_count(model)
    if config.uses_peft:
        from peft import get_peft_model

        from sqlsft.train.adapter import peft_and_quantization

        peft_config, _ = peft_and_quantization(config)
        trainable, _ = get_peft_model(model, peft_config).get_nb_trainable_parameters()
    text = _text_config(model_config)
    return ModelShape(
        total_params=total,
        trainable_params=trainable,
        quantizable_params=quantizable,
        hidden_size=int(text.hidden_size),
        layers=int(text.num_hidden_layers),
        heads=int(text.num_attention_heads),
        architecture=type(model).__name__,
    )


def estimate_memory(
    shape: ModelShape, config: TrainConfig, processes: int = 1, fsdp: bool = False
) -> MemoryEstimate:
    model, training = config.model, config.training
    dtype_bytes = DTYPE_BYTES.get(str(model.get("dtype") or "float32"), 4)
    if config.quantized:
        low_bits = NF4_BYTES if model.get("load_in_4bit") else INT8_BYTES
        base = (
            shape.quantizable_params * low_bits
            + (shape.total_params - shape.quantizable_params) * dtype_bytes
        )
    else:
        base = shape.total_params * dtype_bytes
    if config.uses_peft:
        # TRL casts QLoRA adapters to bf16; peft keeps LoRA adapters in fp32
        adapter_bytes = 2 if config.quantized else 4
        weights = base + shape.trainable_params * adapter_bytes
        state = shape.trainable_params * adapter_bytes * 3  # gradient + two AdamW moments
    else:
        weights = base
        state = shape.trainable_params * dtype_bytes * 3
    if fsdp and processes > 1:
        weights, state = weights / processes, state / processes
    budget = training.get(TOKEN_BUDGET_KEY)
    if isinstance(budget, int) and not isinstance(budget, bool):  # packed: one sequence of the budget
        batch, sequence = 1, budget
    else:  # rows padded to the batch's longest, at most max_length (`auto` is sized on the GPU itself)
        batch = int(training.get("per_device_train_batch_size") or 8)
        sequence = int(training.get("max_length") or 1024)
    tokens = batch * sequence
    act_bytes = 2 if (training.get("bf16") or training.get("fp16") or dtype_bytes == 2) else 4
    per_layer_token = ACTIVATION_FACTOR * shape.hidden_size * act_bytes / 2
    if model.get("attn_implementation") == "eager":
        per_layer_token += ATTENTION_SCORES_FACTOR * shape.heads * sequence * act_bytes / 2
    if training.get("gradient_checkpointing", True):  # SFTConfig's default is on
        activations = tokens * (shape.layers * shape.hidden_size * act_bytes + per_layer_token)
    else:
        activations = tokens * shape.layers * per_layer_token
    return MemoryEstimate(shape, weights / GIB, state / GIB, activations / GIB, tokens)


def read_model_config(path_or_id: str, config: TrainConfig):
    """The model's config.json (a folder, or the hub's config file alone: no weights)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(
            path_or_id,
            revision=config.model.get("model_revision") or "main",
            trust_remote_code=bool(config.model.get("trust_remote_code")),
        )
    except Exception as exc:  # offline, gated, no config.json: the dry run says so and goes on
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SqlsftError(f"cannot read the config of {path_or_id} for the estimate: {first[:200]}") from None


def estimate_lines(
    path_or_id: str, config: TrainConfig, processes: int, device: str, fsdp: bool
) -> list[str]:
    """The dry run's two lines (trainable parameters, memory per process), or one line saying why not."""
    try:
        model_config = read_model_config(path_or_id, config)
    except SqlsftError as exc:
        return [str(exc)]
    try:
        shape = model_shape(model_config, config)
    except Exception as exc:  # an architecture the meta device or peft cannot build: no estimate, no failure
        return [f"no estimate for {path_or_id}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"]
    estimate = estimate_memory(shape, config, processes, fsdp)
    return estimate.lines(config, processes, device)
