"""The Hugging Face hub as sqlsft meets it: which names are repo ids, and one clear line for each way the
hub can refuse a model or a data set (gated, missing, unreachable, any other answer)."""

from enum import StrEnum

from sqlsft.common.errors import SqlsftError


class RepoKind(StrEnum):
    MODEL = "model"
    DATASET = "dataset"


_NOUN = {RepoKind.MODEL: "model", RepoKind.DATASET: "data set"}
# What works without the hub, said in the failure's hint.
_OFFLINE_CHOICE = {
    RepoKind.MODEL: "--model embedded (Gemma 3 270M, offline) or a local model folder",
    RepoKind.DATASET: "--dataset builtin or a local file (--dataset data.jsonl)",
}
_UNREACHABLE_TEXT = ("couldn't reach", "offline mode", "offline is enabled", "connection", "timed out")


def repo_url(repo_id: str, kind: RepoKind) -> str:
    return f"https://huggingface.co/{'datasets/' if kind == RepoKind.DATASET else ''}{repo_id}"


def looks_like_repo_id(text: str) -> bool:
    """Whether `text` is a valid hub repo id (`name` or `owner/name`), by huggingface_hub's own rules."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not text or text.startswith(("~", "/")):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and every cause or context behind it (libraries wrap the hub's own errors)."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _unreachable(chain: list[BaseException]) -> bool:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    for exc in chain:
        if isinstance(exc, HfHubHTTPError):
            return False  # the hub answered
        if isinstance(exc, LocalEntryNotFoundError | ConnectionError | TimeoutError):
            return True
        name = type(exc).__name__
        if name.endswith(("ConnectError", "ConnectionError", "Timeout", "TimeoutException", "NetworkError")):
            return True  # httpx's and requests' transport errors, without importing either
        if any(text in str(exc).lower() for text in _UNREACHABLE_TEXT):
            return True
    return False


def hub_error(
    exc: BaseException,
    repo_id: str,
    kind: RepoKind,
    *,
    token_set: bool | None = None,
    known_offline: bool = False,
) -> SqlsftError:
    """One line for a failed hub request about `repo_id`, whichever library raised it.

    `known_offline`: the hub was found unreachable before the request (it ran in offline mode), so any
    failure means the repo is not in the local cache."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    noun, url, choice = _NOUN[kind], repo_url(repo_id, kind), _OFFLINE_CHOICE[kind]
    chain = _chain(exc)
    if known_offline or _unreachable(chain):
        return SqlsftError(
            f"The Hugging Face hub is unreachable and {noun} '{repo_id}' is not in the local cache.",
            f"Use {choice}, or retry with a network (`sqlsft env` shows whether the hub answers).",
        )
    if any(isinstance(e, GatedRepoError) or "is a gated" in str(e) for e in chain):
        if token_set is None:
            token_set = get_token() is not None
        if not token_set:
            return SqlsftError(
                f"{repo_id} is a gated {noun} and no Hugging Face token is set.",
                f"Accept its terms at {url}, then `hf auth login` (or set HF_TOKEN); or use {choice}.",
            )
        return SqlsftError(
            f"Your Hugging Face token has no access to the gated {noun} {repo_id}.",
            f"Request access at {url} (accept the terms with the account of your token), then retry.",
        )
    if any(
        isinstance(e, RepositoryNotFoundError) or type(e).__name__ == "DatasetNotFoundError" for e in chain
    ):
        return SqlsftError(
            f"{noun.capitalize()} {repo_id} was not found on the Hugging Face hub "
            "(or it is private and your token cannot see it).",
            f"Check the id, set HF_TOKEN for a private one, or use {choice}.",
        )
    first_line = (str(exc).splitlines() or [""])[0][:300]
    if isinstance(exc, HfHubHTTPError):
        return SqlsftError(f"The Hugging Face hub refused {repo_id}: {first_line}")
    return SqlsftError(
        f"Could not load {noun} '{repo_id}' from the Hugging Face hub: {type(exc).__name__}: {first_line}"
    )
