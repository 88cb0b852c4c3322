"""What an engine serves, checked before it starts: a model folder (vLLM, transformers serve) or a GGUF file
(llama.cpp), with the chat template it was trained with and any warning about how generations stop."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServableModel:
    path: Path  # a model folder, or a .gguf file
    label: str  # what the user asked for, resolved (run name, folder, hub id, `embedded`)
    chat_template: str
    warnings: tuple[str, ...] = ()
    is_gguf: bool = False
    quant: str | None = None  # a GGUF's quantization (q8_0, q4_k_m, f16, ...)
    # a GGUF without its own tokenizer.chat_template (the embedded package's): sqlsft hands the engine the
    # training template and these tokens, else the engine would fall back to a generic chat format
    template_tokens: tuple[str, str] | None = None  # (bos, end of turn)

    def describe(self) -> str:
        shown = str(self.path) if self.label == str(self.path) else f"{self.label} -> {self.path}"
        return f"{shown} ({self.quant})" if self.quant and self.quant not in shown else shown
