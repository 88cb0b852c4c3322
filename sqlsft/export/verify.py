"""Parity checks at export: the GGUF, in llama.cpp, must read prompts as training did and answer as the
original model does.

1. Template: the GGUF's `tokenizer.chat_template`, rendered the way llama-cpp-python's server renders it
   (its Jinja2ChatFormatter), gives the same prompt text as the training tokenizer's chat template.
2. Tokenizer: llama.cpp's tokenizer (`vocab_only=True`) gives the same ids as the training tokenizer on
   those prompt texts (parsed as the server does: special tokens, no extra BOS).
3. Stop: the end-of-turn token is llama.cpp's EOS, EOT and an end-of-generation token.
4. Generation (on the f16/bf16 file): from the training tokenization of each prompt, llama.cpp's greedy
   tokens are transformers' greedy picks, step by step, up to the token limit or llama.cpp's stop.

The llama.cpp side runs in a child process (`python -m sqlsft.export.verify llama-side`): the Python that
has llama-cpp-python, and a crash or llama.cpp's own logging stays there.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.processes import shell_line
from sqlsft.export.gguf import child_env
from sqlsft.models.chat_template import END_OF_TURN_TOKENS

DEFAULT_GENERATION_TOKENS = 16


@dataclass
class PromptCheck:
    index: int
    template_same: bool
    tokens_same: bool
    first_token_difference: int | None  # position of the first differing id, None when the ids agree
    gguf_generation: list[int] = field(default_factory=list)  # llama.cpp's greedy tokens (to its stop)
    hf_choices: list[int] = field(default_factory=list)  # transformers' greedy pick at each of those steps
    matched_tokens: int | None = None  # steps where both pick the same token


@dataclass
class ParityReport:
    gguf: str
    end_of_turn: str
    end_of_turn_id: int
    gguf_eos_id: int
    gguf_eot_id: int
    end_of_turn_ends_generation: bool
    generation_tokens: int
    prompts: list[PromptCheck]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def check_parity(
    gguf_file: Path,
    model_dir: Path,
    conversations: list[list[dict]],
    *,
    generation_tokens: int = DEFAULT_GENERATION_TOKENS,
    llama_python: str | None = None,
    threads: int | None = None,
) -> ParityReport:
    """Run the checks on `conversations` (prompt messages: system and user turns, no answer).
    `generation_tokens=0` skips the generation check (for quantized files, which may differ)."""
    if not conversations:
        raise SqlsftError("The parity check needs at least one prompt.")
    gguf_file = Path(gguf_file)
    if not gguf_file.is_file():
        raise SqlsftError(f"{gguf_file} does not exist.")
    tokenizer = _training_tokenizer(model_dir)
    texts = [
        tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in conversations
    ]
    hf_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    end_of_turn = next((t for t in END_OF_TURN_TOKENS if t in tokenizer.get_vocab()), None)
    if end_of_turn is None:
        raise SqlsftError(f"The tokenizer in {model_dir} has no end-of-turn token.")
    end_of_turn_id = tokenizer.convert_tokens_to_ids(end_of_turn)

    request = {
        "texts": texts,
        "conversations": conversations,
        "prompt_ids": hf_ids,  # generation starts from the training tokenization: weights are checked apart
        "generation_tokens": generation_tokens,
        "end_of_turn_id": end_of_turn_id,
    }
    llama = _llama_side_run(gguf_file, request, llama_python, threads)
    hf_choices = _hf_greedy_along(model_dir, hf_ids, llama["generations"]) if generation_tokens else []

    prompts, problems = [], []
    for i, text in enumerate(texts):
        ours, theirs = hf_ids[i], llama["ids"][i]
        check = PromptCheck(
            index=i,
            template_same=llama["rendered"][i] == text,
            tokens_same=ours == theirs,
            first_token_difference=_first_difference(ours, theirs),
        )
        if generation_tokens:
            check.gguf_generation = llama["generations"][i]
            check.hf_choices = hf_choices[i]
            check.matched_tokens = _common_prefix(check.hf_choices, check.gguf_generation)
        prompts.append(check)

    bad_template = [p.index for p in prompts if not p.template_same]
    if bad_template:
        problems.append(
            f"the GGUF's chat template renders {len(bad_template)} of {len(prompts)} prompts differently"
        )
    bad_tokens = [p for p in prompts if not p.tokens_same]
    if bad_tokens:
        first = bad_tokens[0]
        problems.append(
            f"llama.cpp tokenizes {len(bad_tokens)} of {len(prompts)} prompts differently "
            f"(prompt {first.index}, from token {first.first_token_difference})"
        )
    if llama["eos_id"] != end_of_turn_id or llama["eot_id"] != end_of_turn_id:
        problems.append(
            f"{end_of_turn} ({end_of_turn_id}) is not the GGUF's EOS/EOT (they are {llama['eos_id']}/{llama['eot_id']})"
        )
    if not llama["end_of_turn_is_eog"]:
        problems.append(f"llama.cpp does not end generation at {end_of_turn} ({end_of_turn_id})")
    if generation_tokens:
        differ = [p for p in prompts if p.hf_choices != p.gguf_generation]
        if differ:
            worst = min(differ, key=lambda p: p.matched_tokens or 0)
            problems.append(
                f"greedy generations differ on {len(differ)} of {len(prompts)} prompts "
                f"(prompt {worst.index}: same for {worst.matched_tokens} of {generation_tokens} tokens)"
            )
    return ParityReport(
        gguf=str(gguf_file),
        end_of_turn=end_of_turn,
        end_of_turn_id=end_of_turn_id,
        gguf_eos_id=llama["eos_id"],
        gguf_eot_id=llama["eot_id"],
        end_of_turn_ends_generation=llama["end_of_turn_is_eog"],
        generation_tokens=generation_tokens,
        prompts=prompts,
        problems=problems,
    )


def require_parity(report: ParityReport) -> None:
    """One line for the CLI when an export does not match its model."""
    if not report.ok:
        raise SqlsftError(
            f"The export {Path(report.gguf).name} does not match its model: {'; '.join(report.problems)}.",
            "The file is kept for inspection; do not ship it.",
        )


def render_prompt(model_dir: Path, messages: list[dict]) -> str:
    """The prompt text the model reads for `messages` (its training chat template, generation prompt added)."""
    return _training_tokenizer(model_dir).apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )


def _training_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if not tokenizer.chat_template:
        raise SqlsftError(f"The tokenizer in {model_dir} has no chat template.")
    return tokenizer


def _hf_greedy_along(
    model_dir: Path, prompts: list[list[int]], generations: list[list[int]]
) -> list[list[int]]:
    """transformers' greedy pick (float32) at each step of llama.cpp's generation, by teacher forcing: one
    forward pass per prompt instead of one per token. Equal to comparing two greedy decodes up to the first
    difference, and a stop is compared like any token."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.eval()
    choices = []
    with torch.inference_mode():
        for ids, generated in zip(prompts, generations, strict=True):
            if not generated:
                choices.append([])
                continue
            sequence = torch.tensor([ids + generated[:-1]])
            logits = model(sequence, logits_to_keep=len(generated)).logits[0]
            choices.append(logits.argmax(-1).tolist())
    return choices


def _first_difference(a: list[int], b: list[int]) -> int | None:
    if a == b:
        return None
    return _common_prefix(a, b)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


# ---------------------------------------------------------------- the llama.cpp side (child process)


def llama_side_command(gguf_file: Path, request: Path, reply: Path, python: str | None, threads: int | None):
    return [
        python or sys.executable,
        "-m",
        "sqlsft.export.verify",
        "llama-side",
        str(gguf_file),
        str(request),
        str(reply),
        "--threads",
        str(threads or os.cpu_count() or 1),
    ]


def _llama_side_run(gguf_file: Path, request: dict, python: str | None, threads: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="sqlsft-parity-") as tmp:
        request_file, reply_file = Path(tmp) / "request.json", Path(tmp) / "reply.json"
        request_file.write_text(json.dumps(request), encoding="utf-8")
        command = llama_side_command(gguf_file, request_file, reply_file, python, threads)
        done = subprocess.run(
            command, capture_output=True, text=True, env=child_env(), cwd=tmp, stdin=subprocess.DEVNULL
        )
        if done.returncode != 0 or not reply_file.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            raise SqlsftError(
                f"llama.cpp could not check {gguf_file.name}: {tail[0]}", f"Rerun: {shell_line(command)}"
            )
        return json.loads(reply_file.read_text(encoding="utf-8"))


def _llama_side(gguf_file: str, request: dict, threads: int) -> dict:
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    vocab_only = llama_cpp.Llama(model_path=gguf_file, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(vocab_only.model)
    eos, bos = vocab_only.token_eos(), vocab_only.token_bos()
    eot = llama_cpp.llama_vocab_eot(vocab)
    template = vocab_only.metadata.get("tokenizer.chat_template", "")
    # exactly what llama-cpp-python's server does with a GGUF that carries a chat template
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=vocab_only._model.token_get_text(eos) if eos != -1 else "",
        bos_token=vocab_only._model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )
    rendered = []
    for messages in request["conversations"]:
        try:
            rendered.append(formatter(messages=messages).prompt)
        except Exception as exc:  # a template that does not render is a failed check, not a crash
            rendered.append(f"<template error: {exc}>")
    ids = [
        vocab_only.tokenize(text.encode("utf-8"), add_bos=False, special=True) for text in request["texts"]
    ]
    is_eog = bool(llama_cpp.llama_vocab_is_eog(vocab, int(request["end_of_turn_id"])))
    reply = {"rendered": rendered, "ids": ids, "eos_id": eos, "eot_id": eot, "end_of_turn_is_eog": is_eog}
    del vocab_only

    generations = []
    tokens = int(request.get("generation_tokens") or 0)
    if tokens:
        prompts = request.get("prompt_ids") or ids
        n_ctx = max(len(i) for i in prompts) + tokens + 8
        llm = llama_cpp.Llama(model_path=gguf_file, n_ctx=n_ctx, n_threads=threads, verbose=False, seed=0)
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        for prompt in prompts:
            out = []
            for token in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
                out.append(int(token))
                if llama_cpp.llama_vocab_is_eog(vocab, token) or len(out) >= tokens:
                    break
            generations.append(out)
    reply["generations"] = generations
    return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sqlsft.export.verify")
    steps = parser.add_subparsers(dest="step", required=True)
    side = steps.add_parser("llama-side", help="tokenize, render and generate with llama.cpp; write JSON")
    side.add_argument("gguf")
    side.add_argument("request", help="JSON: texts, conversations, generation_tokens")
    side.add_argument("reply", help="where the JSON answer goes")
    side.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    request = json.loads(Path(args.request).read_text(encoding="utf-8"))
    reply = _llama_side(args.gguf, request, args.threads)
    Path(args.reply).write_text(json.dumps(reply), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
