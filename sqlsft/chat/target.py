"""The server the chat page talks to (--url, else the one `sqlsft serve --detach` recorded) and the
answer streamed from it."""

from collections.abc import Iterator
from dataclasses import dataclass

from sqlsft.common.errors import SqlsftError
from sqlsft.common.openai_target import (
    DEFAULT_SERVED_NAME,
    NO_KEY,
    OpenAITarget,
    api_key_from_env,
    check_url,
    explain_error,
)
from sqlsft.serve import recorded_servers

REQUEST_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ChatTarget(OpenAITarget):
    """An OpenAI target plus where it came from, for the page's header. The key is never shown."""

    source: str = "--url"  # or "recorded server (pid N)"


class ServerProblem(Exception):
    """Something about the server the user should read in the page (never a stack trace)."""


def resolve_target(url: str | None, model: str | None, api_key: str | None) -> ChatTarget:
    """--url wins; else the newest server `sqlsft serve --detach` recorded; else a clear error."""
    if url:
        return ChatTarget(
            check_url(url), model or DEFAULT_SERVED_NAME, api_key or api_key_from_env() or NO_KEY
        )
    servers = recorded_servers()
    if not servers:
        raise SqlsftError(
            "No model server is running (none recorded by `sqlsft serve`).",
            "Start one with `sqlsft serve RUN --detach`, or pass --url http://HOST:PORT/v1 for any "
            "OpenAI-compatible server.",
        )
    server = max(servers, key=lambda s: s.started_at)
    return ChatTarget(
        url=server.url.rstrip("/"),
        model=model or server.model_name or DEFAULT_SERVED_NAME,
        api_key=api_key or server.api_key or api_key_from_env() or NO_KEY,
        source=f"recorded server (pid {server.pid})",
    )


def _served_names(target: ChatTarget) -> str:
    try:
        names = [m.id for m in target.client(REQUEST_TIMEOUT_S).models.list().data]
    except Exception:  # only a hint for the message being built: the request's own error matters
        return ""
    return f" It serves: {', '.join(names[:5])}." if names else ""


def stream_answer(target: ChatTarget, messages: list[dict], max_tokens: int) -> Iterator[str]:
    """The answer so far, after each streamed piece. Raises ServerProblem with a readable message."""
    import openai

    text = ""
    try:
        stream = target.client(REQUEST_TIMEOUT_S).chat.completions.create(
            model=target.model, messages=messages, temperature=0, max_tokens=max_tokens, stream=True
        )
        with stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
                    yield text
    except Exception as exc:
        message = explain_error(exc, target, REQUEST_TIMEOUT_S)
        if isinstance(exc, openai.NotFoundError) or "does not serve a model" in message:
            message += target.redact(_served_names(target))
        raise ServerProblem(message) from exc
