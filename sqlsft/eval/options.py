"""What `sqlsft eval` was asked to do (the CLI fills it; every eval module reads it)."""

from dataclasses import dataclass, field

from sqlsft.common.errors import SqlsftError
from sqlsft.eval.answering import REQUEST_TIMEOUT_S


@dataclass
class EvalOptions:
    dataset: str | None = None  # None: the run's own prepared data, else the test file's, else builtin
    test_file: str | None = None  # score every row of this file (prepared as the test split)
    split: str = "test"
    limit: int | None = None
    concurrency: int = 16
    max_tokens: int = 256
    by: list[str] = field(default_factory=list)  # breakdown columns (default: report.DEFAULT_BY)
    request_timeout_s: float = REQUEST_TIMEOUT_S
    resume: bool = True  # continue an unfinished report of the same model, data and rows
    # for a server that eval starts itself
    engine: str = "auto"
    port: int | None = None


def check_options(options: EvalOptions) -> None:
    for name, value in (
        ("--limit", options.limit),
        ("--concurrency", options.concurrency),
        ("--max-tokens", options.max_tokens),
    ):
        if value is not None and value < 1:
            raise SqlsftError(f"{name} must be at least 1 (got {value}).")
