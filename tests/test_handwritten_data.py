"""The hand-written gretel-style question set: every row builds and answers in real SQLite, in gretel's shape."""

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

HANDWRITTEN_FILE = Path(__file__).resolve().parent.parent / "sqlsft/data/handwritten/gretel_style_60.jsonl"
ROWS = [json.loads(line) for line in HANDWRITTEN_FILE.read_text().splitlines() if line.strip()]

KEYS = {"id", "domain", "sql_complexity", "sql_task_type", "sql_prompt", "sql_context", "sql"}
COMPLEXITIES = {"basic SQL", "aggregation", "single join", "subqueries", "window functions", "multiple_joins"}
TASK_TYPES = {"analytics and reporting", "data manipulation"}
DATA_MANIPULATION_VERBS = ("UPDATE", "DELETE", "INSERT")


def run_gold(row: dict) -> tuple[list[tuple], int]:
    """(the rows the gold query returns, the rows it changed), with plain SQLite: no dialect translation."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(row["sql_context"])
        before = db.total_changes
        found = db.execute(row["sql"]).fetchall()  # execute() refuses more than one statement
        return found, db.total_changes - before
    finally:
        db.close()


def test_sixty_rows_with_gretel_keys_and_values():
    assert len(ROWS) == 60
    for row in ROWS:
        assert set(row) == KEYS, row["id"]
        assert row["sql_complexity"] in COMPLEXITIES, row["id"]
        assert row["sql_task_type"] in TASK_TYPES, row["id"]
        assert all(isinstance(row[k], str) and row[k].strip() for k in KEYS - {"id"}), row["id"]
        changes_data = row["sql"].lstrip().upper().startswith(DATA_MANIPULATION_VERBS)
        assert changes_data == (row["sql_task_type"] == "data manipulation"), row["id"]


def test_ids_and_prompts_are_unique():
    assert len({r["id"] for r in ROWS}) == len(ROWS)
    repeated = [p for p, n in Counter(r["sql_prompt"].strip().lower() for r in ROWS).items() if n > 1]
    assert repeated == []


def test_mix_of_complexities_tasks_and_domains():
    # the README states this mix; a row moved between kinds should update both
    assert Counter(r["sql_complexity"] for r in ROWS) == {
        "basic SQL": 21,
        "aggregation": 16,
        "single join": 10,
        "subqueries": 8,
        "window functions": 3,
        "multiple_joins": 2,
    }
    assert Counter(r["sql_task_type"] for r in ROWS)["data manipulation"] == 6
    assert len({r["domain"] for r in ROWS}) >= 15


@pytest.mark.parametrize("row", ROWS, ids=[f"row{r['id']}" for r in ROWS])
def test_gold_query_runs_and_shows_an_answer(row):
    """A SELECT returns rows and a data change changes rows, so a wrong answer cannot match by being empty too."""
    found, changed = run_gold(row)
    if row["sql_task_type"] == "data manipulation":
        assert changed > 0, "the gold data change touches no rows"
    else:
        assert found, "the gold SELECT returns no rows"
        assert changed == 0
