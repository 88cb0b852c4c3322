"""The report's figures: totals, breakdowns, latency, slowest and failed rows, and the scoring rules."""

from typing import Any

from sqlsft.common.formatting import percentile
from sqlsft.eval.scored_row import ScoredRow
from sqlsft.sql.scoring import CORRECT, SCORING_RULES, summarize

DEFAULT_BY = ("sql_complexity", "sql_task_type")
SLOWEST_SHOWN = 5
FAILED_SHOWN = 10


def breakdown_columns(rows: list[dict], by: list[str]) -> list[str]:
    """The columns to break results down by: --by, else the default ones the rows have."""
    if by:
        return list(by)
    return [c for c in DEFAULT_BY if rows and c in rows[0]]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def latency_figures(records: list[ScoredRow], wall_s: float, asked: int) -> dict[str, Any]:
    """Latency of the answered requests; rates over the `asked` rows of this session's `wall_s`."""
    latencies = [r.latency_s for r in records if not r.request_failed]
    tokens = [r.completion_tokens for r in records if r.completion_tokens]
    return {
        "wall_s": round(wall_s, 3),
        "requests_per_s": round(asked / wall_s, 3) if wall_s and asked else None,
        "p50_s": _rounded(percentile(latencies, 0.5)),
        "p95_s": _rounded(percentile(latencies, 0.95)),
        "max_s": max(latencies) if latencies else None,
        "output_tokens": sum(tokens),
        "output_tokens_per_s": round(sum(tokens) / wall_s, 1) if wall_s and tokens else None,
        "hit_max_tokens": sum(1 for r in records if r.finish_reason == "length"),
    }


def build_report(
    records: list[ScoredRow],
    *,
    wall_s: float,
    by: list[str],
    meta: dict[str, Any] | None = None,
    asked: int | None = None,
) -> dict[str, Any]:
    """The report JSON: what was evaluated (meta), totals, breakdowns, latency, slowest and failed rows, rules.

    `asked`: rows answered in this session (fewer than the records when an earlier session's are resumed)."""
    totals = summarize([r.score for r in records])
    breakdown: dict[str, dict[str, Any]] = {}
    for column in by:
        groups: dict[str, list[ScoredRow]] = {}
        for record in records:
            groups.setdefault(str(record.columns.get(column)), []).append(record)
        breakdown[column] = {
            value: summarize([r.score for r in group]) for value, group in sorted(groups.items())
        }
    slowest = sorted(records, key=lambda r: r.latency_s, reverse=True)[:SLOWEST_SHOWN]
    failed = [r for r in records if r.outcome != CORRECT][:FAILED_SHOWN]
    return {
        **(meta or {}),
        **totals,
        "breakdown": breakdown,
        "latency": latency_figures(records, wall_s, len(records) if asked is None else asked),
        "slowest": [brief(r) for r in slowest],
        "failed": [brief(r, with_sql=True) for r in failed],
        "scoring_rules": SCORING_RULES,
    }


def brief(record: ScoredRow, with_sql: bool = False) -> dict[str, Any]:
    out = {"index": record.index, "id": record.id, "outcome": record.outcome, "latency_s": record.latency_s}
    if with_sql:
        out.update(
            gold=record.gold,
            predicted=record.score.predicted_sql,
            answer=record.answer,
            error=record.score.error,
        )
    return out
