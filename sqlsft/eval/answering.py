"""Asking a served model: one greedy chat completion per row, through the OpenAI client."""

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlsft.common.openai_target import OpenAITarget, explain_error

REQUEST_TIMEOUT_S = 600.0


@dataclass
class Answer:
    """What the model said for one row."""

    text: str
    latency_s: float
    finish_reason: str | None = None
    completion_tokens: int | None = None
    error: str | None = None  # the request failed


@dataclass
class ServedModel:
    """Who answers: an OpenAI-compatible server, the model name it serves, and how it came to be."""

    target: OpenAITarget
    label: str  # what the user asked for (run name, folder, hub id), or the served name with --url
    server: str  # "given (--url)" or "started by eval (<engine>)"


Answerer = Callable[[dict], Answer]


def openai_answerer(target: OpenAITarget, max_tokens: int, timeout_s: float = REQUEST_TIMEOUT_S) -> Answerer:
    """Greedy chat completions (temperature 0) with the row's training-format prompt."""
    client = target.client(timeout_s)

    def answer(row: dict) -> Answer:
        started = time.perf_counter()
        try:
            response = client.chat.completions.create(
                model=target.model,
                messages=row["prompt"],
                temperature=0.0,
                max_tokens=max_tokens,
            )
        except Exception as exc:  # a failed request is that row's outcome, never the end of the eval
            return Answer("", time.perf_counter() - started, error=explain_error(exc, target, timeout_s))
        latency = time.perf_counter() - started
        choice = response.choices[0] if response.choices else None
        usage = getattr(response, "usage", None)
        return Answer(
            text=(choice.message.content or "") if choice else "",
            latency_s=latency,
            finish_reason=choice.finish_reason if choice else None,
            completion_tokens=getattr(usage, "completion_tokens", None),
        )

    return answer
