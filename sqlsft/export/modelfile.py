"""The two text files that travel with an exported GGUF: an Ollama `Modelfile` and a model card `README.md`.

The Modelfile's TEMPLATE renders a conversation as the training chat template does (Gemma 3 as TRL ships
it: the system message folded into the first user turn, `<start_of_turn>model`), without the BOS token,
which Ollama adds itself (the GGUF says `add_bos_token`). One difference stays: the training template
trims each message's content; Go templates have no trim, so pass contents without edge whitespace
(sqlsft's prompt renderer does).
"""

from dataclasses import dataclass, field
from pathlib import Path

GEMMA3_OLLAMA_TEMPLATE = """\
{{- $system := "" }}
{{- range .Messages }}
{{- if eq .Role "system" }}{{ $system = .Content }}
{{- else if eq .Role "user" }}<start_of_turn>user
{{ if $system }}{{ $system }}

{{ end }}{{ .Content }}<end_of_turn>
{{ $system = "" }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- end }}<start_of_turn>model
"""


def modelfile(gguf_name: str, stop: str = "<end_of_turn>", template: str = GEMMA3_OLLAMA_TEMPLATE) -> str:
    """An Ollama Modelfile for the GGUF next to it: `ollama create NAME -f Modelfile`."""
    return (
        f"# Made by sqlsft export. Use: ollama create sqlsft-model -f Modelfile\n"
        f"FROM ./{gguf_name}\n"
        f'TEMPLATE """{template}"""\n'
        f'PARAMETER stop "{stop}"\n'
        "PARAMETER temperature 0\n"
    )


@dataclass
class ModelCard:
    """What the model card says; the export command fills it from the run (unknown fields say so)."""

    name: str
    gguf_file: str
    quant: str
    base_model: str
    dataset: str | None = None
    split: str | None = None
    preset: str | None = None
    steps: int | None = None
    final_loss: float | None = None
    # execution accuracy (0..1) of the original model and of this file on the same rows
    original_score: float | None = None
    export_score: float | None = None
    eval_rows: int | None = None
    original_engine: str = "transformers"  # what served the original model for its score
    prompt_messages: list[dict] = field(default_factory=list)
    prompt_text: str = ""  # the same messages through the chat template, as the model reads them
    parity: str | None = None  # one line from the export's parity checks
    license: str | None = None  # the base model's terms (Gemma 3: the Gemma Terms of Use)


def _value(value) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _score(value: float | None) -> str:
    return "not measured" if value is None else f"{100 * value:.1f}%"


def model_card(card: ModelCard) -> str:
    lines = [
        f"# {card.name} ({card.quant})",
        "",
        f"A text-to-SQL model fine-tuned with sqlsft from **{card.base_model}**, exported to GGUF "
        f"(`{card.gguf_file}`, {card.quant}) with llama.cpp's own converter and quantizer.",
        "",
        "## Training",
        "",
        f"- Base model: {card.base_model}" + (f" (license: {card.license})" if card.license else ""),
        f"- Data set: {_value(card.dataset)} (split: {_value(card.split)})",
        f"- Preset: {_value(card.preset)}, steps: {_value(card.steps)}, final training loss: {_value(card.final_loss)}",
        "",
        "## Evaluation",
        "",
        "Execution accuracy (the query's result equals the gold query's result; multisets, order only where "
        "the gold query orders):",
        "",
        "| model | execution accuracy |",
        "| --- | --- |",
        f"| original ({card.original_engine}) | {_score(card.original_score)} |",
        f"| this file ({card.quant}, llama.cpp) | {_score(card.export_score)} |",
        "",
        f"Rows evaluated: {_value(card.eval_rows)}.",
    ]
    if card.parity:
        lines += ["", f"Checked at export: {card.parity}"]
    lines += [
        "",
        "## Prompt format",
        "",
        "The GGUF carries the training chat template (`tokenizer.chat_template`) and ends a reply with "
        "`<end_of_turn>`, which it declares as its end-of-generation token.",
    ]
    if card.prompt_messages:
        lines += ["", "Messages:", "", "```json", _json(card.prompt_messages), "```"]
    if card.prompt_text:
        lines += ["", "As the model reads them:", "", "```text", card.prompt_text.rstrip("\n"), "```"]
    lines += [
        "",
        "## Run it",
        "",
        "llama.cpp (llama-cpp-python's OpenAI-compatible server, which uses the chat template in the file):",
        "",
        "```bash",
        f"python -m llama_cpp.server --model {card.gguf_file} --port 8000",
        "```",
        "",
        "Ollama (the Modelfile next to this card):",
        "",
        "```bash",
        f"ollama create {card.name} -f Modelfile",
        f"ollama run {card.name}",
        "```",
        "",
        "sqlsft:",
        "",
        "```bash",
        f"sqlsft serve {card.gguf_file} --engine llama.cpp --detach",
        "sqlsft chat",
        "```",
        "",
    ]
    return "\n".join(lines)


def _json(value) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False)


def write_export_texts(folder: Path, card: ModelCard) -> tuple[Path, Path]:
    """Write `Modelfile` and `README.md` next to the GGUF."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "Modelfile"
    readme = folder / "README.md"
    model.write_text(modelfile(card.gguf_file), encoding="utf-8")
    readme.write_text(model_card(card), encoding="utf-8")
    return model, readme
