"""Ask and score many rows: a thread pool of requests, each answer scored as it arrives and handed on at once
(to be appended to predictions.jsonl), so a crash loses nothing already scored."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Protocol

from sqlsft.common.openai_target import first_line
from sqlsft.eval.answering import Answer, Answerer
from sqlsft.eval.scored_row import ScoredRow, scoring_failed
from sqlsft.sql.scoring import ExampleScore, request_failed, run_gold, score_answer


@dataclass
class Tally:
    """How far a scoring loop is (what a progress view shows)."""

    label: str
    total: int  # rows of the whole evaluation, resumed ones included
    done: int = 0
    counted: int = 0  # rows whose gold executes (the execution-accuracy denominator)
    correct: int = 0
    failed_requests: int = 0

    def add(self, record: ScoredRow) -> None:
        self.done += 1
        self.counted += bool(record.score.gold_executes)
        self.correct += bool(record.score.execution_match)
        self.failed_requests += record.request_failed

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.counted if self.counted else None


class ProgressView(Protocol):
    """What the scoring loop tells a progress display (the CLI draws it; see sqlsft/cli/views/eval.py)."""

    def start(self, tally: Tally) -> None: ...
    def update(self, tally: Tally) -> None: ...
    def stop(self) -> None: ...


class NoProgress:
    def start(self, tally: Tally) -> None:
        pass

    def update(self, tally: Tally) -> None:
        pass

    def stop(self) -> None:
        pass


def score_row(row: dict, answer: Answer, by: list[str], index: int) -> ScoredRow:
    """Score one answer; whatever raises while scoring becomes this row's error, never the eval's end."""
    gold = None
    try:
        gold = run_gold(row["sql_context"], row["sql"])
        if answer.error:
            score: ExampleScore = request_failed(row["sql"], gold, answer.error)
        else:
            score = score_answer(row["sql_context"], row["sql"], answer.text, gold=gold)
    except Exception as exc:
        gold_ok = bool(gold is not None and gold.ok)
        score = scoring_failed(
            gold_ok, gold.status if gold is not None else "unknown", f"scoring failed: {first_line(exc)}"
        )
    return ScoredRow(
        index=index,
        id=row.get("id"),
        sql_prompt=row.get("sql_prompt", ""),
        gold=row.get("sql", ""),
        answer=answer.text,
        latency_s=round(answer.latency_s, 4),
        finish_reason=answer.finish_reason,
        completion_tokens=answer.completion_tokens,
        score=score,
        columns={column: row.get(column) for column in by},
    )


def run_rows(
    rows: dict[int, dict],
    answer: Answerer,
    *,
    concurrency: int,
    by: list[str],
    on_scored: Callable[[ScoredRow], None] = lambda record: None,
    progress: ProgressView | None = None,
    tally: Tally | None = None,
) -> tuple[list[ScoredRow], float]:
    """Answer and score `rows` (index -> row) with at most `concurrency` requests in flight.

    `on_scored` gets each record as soon as it is scored (in the calling thread: one writer, no lock).
    Returns the records in row order and the wall time."""
    progress = progress or NoProgress()
    tally = tally or Tally("eval", total=len(rows))
    records: list[ScoredRow] = []
    started = time.perf_counter()

    def work(index: int, row: dict) -> ScoredRow:
        try:
            given = answer(row)
        except Exception as exc:  # an answerer that raises is a failed request, like any other
            given = Answer("", 0.0, error=first_line(exc))
        return score_row(row, given, by, index)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="eval")
    progress.start(tally)
    try:
        futures = [pool.submit(work, index, row) for index, row in rows.items()]
        for future in as_completed(futures):
            record = future.result()
            on_scored(record)
            records.append(record)
            tally.add(record)
            progress.update(tally)
    except BaseException:
        # Ctrl-C or a failed write: drop the queued rows and return at once; requests in flight end
        # with the server.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        progress.stop()
    pool.shutdown(wait=True)
    records.sort(key=lambda r: r.index)
    return records, time.perf_counter() - started
