"""One scored row: a line of predictions.jsonl (written as each row is scored, read back to resume)."""

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sqlsft.sql.scoring import ERROR, REQUEST_ERROR, ExampleScore

_SCORE_FIELDS = tuple(f.name for f in fields(ExampleScore))
_ROW_FIELDS = (
    "index",
    "id",
    "sql_prompt",
    "gold",
    "answer",
    "latency_s",
    "finish_reason",
    "completion_tokens",
)
SCORING_FAILED = "scoring_error"  # predicted_status of a row whose scoring raised (the row is an `error`)


@dataclass
class ScoredRow:
    """The row's identity, the gold query, the model's answer and its scores."""

    index: int  # position in the evaluated split (the order of the report)
    id: Any
    sql_prompt: str
    gold: str
    answer: str
    latency_s: float
    finish_reason: str | None
    completion_tokens: int | None
    score: ExampleScore
    columns: dict[str, Any] = field(default_factory=dict)  # the breakdown columns' values (--by)

    @property
    def outcome(self) -> str:
        return self.score.outcome

    @property
    def request_failed(self) -> bool:
        return self.score.outcome == REQUEST_ERROR

    def to_json(self) -> dict[str, Any]:
        """The flat JSON line: row fields, then the score's fields, then the breakdown columns."""
        line = {name: getattr(self, name) for name in _ROW_FIELDS}
        line.update(asdict(self.score))
        for column, value in self.columns.items():
            line.setdefault(column, value)
        return line

    @classmethod
    def from_json(cls, line: dict[str, Any], by: list[str]) -> "ScoredRow":
        """A line written by `to_json` (KeyError/TypeError when it is not one)."""
        return cls(
            **{name: line[name] for name in _ROW_FIELDS},
            score=ExampleScore(**{name: line[name] for name in _SCORE_FIELDS if name in line}),
            columns={column: line.get(column) for column in by},
        )


def scoring_failed(gold_executes: bool, gold_status: str, error: str) -> ExampleScore:
    """The score of a row whose scoring raised (a bug or a hostile answer): an error, not the eval's end."""
    return ExampleScore(
        outcome=ERROR,
        execution_match=False if gold_executes else None,
        execution_match_lenient=False if gold_executes else None,
        exact_match=False,
        valid_sql=False if gold_executes else None,
        parses=False,
        gold_executes=gold_executes,
        is_dml=False,
        ordered=False,
        predicted_sql="",
        gold_status=gold_status,
        predicted_status=SCORING_FAILED,
        error=error,
    )
