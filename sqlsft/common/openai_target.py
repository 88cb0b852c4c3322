"""An OpenAI-compatible server to talk to (a `sqlsft serve` server or any other): one place that makes
the client, picks the model name, and turns the client's errors into one readable line.

Used by eval, chat and bench serve."""

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from sqlsft.common.errors import SqlsftError

API_KEY_ENV_VARS = ("SQLSFT_API_KEY", "OPENAI_API_KEY")
NO_KEY = "EMPTY"  # what OpenAI clients send when a server needs no key
DEFAULT_SERVED_NAME = "local"


def api_key_from_env() -> str | None:
    return next((os.environ[name] for name in API_KEY_ENV_VARS if os.environ.get(name)), None)


def redact_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def check_url(url: str, option: str = "--url") -> str:
    url = (url or "").strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise SqlsftError(
            f"{option} '{url}' is not an http(s) URL.", "For example --url http://127.0.0.1:8080/v1."
        )
    return url


@dataclass(frozen=True)
class OpenAITarget:
    """A server's /v1 URL, the model name to ask for, and the key (never printed: see display_url)."""

    url: str
    model: str = DEFAULT_SERVED_NAME
    api_key: str = NO_KEY

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def client(self, timeout_s: float = 120.0):
        from openai import OpenAI

        return OpenAI(base_url=self.url, api_key=self.api_key or NO_KEY, timeout=timeout_s, max_retries=0)

    def redact(self, text: str) -> str:
        """text with the API key blanked out (error messages may echo it)."""
        if self.api_key and self.api_key != NO_KEY:
            text = text.replace(self.api_key, "***")
        return text


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def served_models(target: OpenAITarget, timeout_s: float = 30.0) -> list[str]:
    """The model names the server lists; SqlsftError when it cannot be reached."""
    try:
        return [model.id for model in target.client(timeout_s).models.list()]
    except Exception as exc:
        raise SqlsftError(
            f"Cannot reach an OpenAI-compatible server at {target.display_url} ({target.redact(first_line(exc))}).",
            "Start one with `sqlsft serve RUN --detach`, or fix --url.",
        ) from exc


def pick_served_model(target: OpenAITarget, wanted: str | None) -> str:
    """The model to ask for: `wanted` if the server has it, else the only one served (or `local`)."""
    names = served_models(target)
    if wanted:
        if names and wanted not in names:
            raise SqlsftError(
                f"The server at {target.display_url} does not serve '{wanted}'.",
                f"It serves: {', '.join(names)}.",
            )
        return wanted
    if len(names) == 1:
        return names[0]
    if DEFAULT_SERVED_NAME in names:
        return DEFAULT_SERVED_NAME
    if not names:
        raise SqlsftError(f"The server at {target.display_url} lists no models.", "Pass --model-name.")
    raise SqlsftError(
        f"The server at {target.display_url} serves several models.",
        f"Pick one with --model-name: {', '.join(names)}.",
    )


def server_detail(exc: BaseException) -> str:
    """The server's own words from an API error body (OpenAI or FastAPI style)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = (inner.get("message") or inner.get("detail")) if isinstance(inner, dict) else inner
        if message:
            return " ".join(str(message).split())[:300]
    return " ".join(str(getattr(exc, "message", exc)).split())[:300]


def explain_error(exc: BaseException, target: OpenAITarget, timeout_s: float | None = None) -> str:
    """One readable line for a failed request (never a stack trace; the key never shown)."""
    import openai

    where = target.display_url
    if isinstance(exc, openai.APITimeoutError):
        within = f" within {timeout_s:.0f} s" if timeout_s else ""
        message = f"The model server at {where} did not answer{within}."
    elif isinstance(exc, openai.APIConnectionError):
        message = (
            f"Cannot reach the model server at {where}. Start one with `sqlsft serve RUN --detach`, "
            "or pass --url pointing at a running server."
        )
    elif isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        message = f"The server at {where} refused the API key. Pass --api-key or set {' or '.join(API_KEY_ENV_VARS)}."
    elif isinstance(exc, openai.APIStatusError):
        detail = server_detail(exc)
        if exc.status_code == 404 or "model" in detail.lower():
            message = (
                f"The server at {where} does not serve a model named '{target.model}'. "
                f"Pass --model-name NAME. ({detail})"
            )
        else:
            message = f"The server at {where} answered {exc.status_code}: {detail}"
    else:
        message = f"The request to {where} failed: {first_line(exc)}"
    return target.redact(message)
