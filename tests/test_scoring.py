"""Scoring one prediction: hand-made cases for each published rule."""

import time

from sqlsft.sql.dialect import normalize_sql, sql_parses
from sqlsft.sql.scoring import (
    CORRECT,
    ERROR,
    GOLD_ERROR,
    NO_SQL,
    OUTCOMES,
    REQUEST_ERROR,
    SCORING_RULES,
    TIMEOUT,
    TOO_LARGE,
    WRONG,
    request_failed,
    run_gold,
    score_answer,
    score_prediction,
    summarize,
)

SCHEMA = """
CREATE TABLE products (id INT PRIMARY KEY, name VARCHAR(50), category VARCHAR(20), price DECIMAL(10,2));
INSERT INTO products (id, name, category, price) VALUES
  (1, 'Desk', 'office', 150.00), (2, 'Chair', 'office', 89.99), (3, 'Lamp', 'home', NULL), (4, 'Rug', 'home', 45.5);
"""


def test_equal_results_written_differently_are_correct():
    score = score_prediction(
        SCHEMA,
        "SELECT name FROM products WHERE category = 'office'",
        "SELECT p.name AS n FROM products p WHERE p.price > 50 AND p.category IN ('office')",
    )
    assert score.outcome == CORRECT and score.execution_match and score.execution_match_lenient
    assert not score.exact_match and score.valid_sql and score.parses and not score.ordered
    # row order does not matter when the gold does not order its rows
    assert score_prediction(
        SCHEMA, "SELECT id FROM products", "SELECT id FROM products ORDER BY id DESC"
    ).execution_match


def test_exact_match_after_normalization():
    gold = "SELECT name FROM products WHERE price > 50;"
    assert normalize_sql(gold) == normalize_sql("select   NAME\nfrom products where price>50")
    assert score_answer(SCHEMA, gold, "```sql\nselect name from PRODUCTS\nwhere price > 50\n```").exact_match
    assert not score_prediction(SCHEMA, gold, "SELECT name FROM products WHERE price >= 50").exact_match


def test_order_by_in_the_gold_makes_row_order_count():
    gold = "SELECT name FROM products ORDER BY id"
    assert score_prediction(SCHEMA, gold, "SELECT name FROM products ORDER BY id ASC").outcome == CORRECT
    reversed_ = score_prediction(SCHEMA, gold, "SELECT name FROM products ORDER BY id DESC")
    assert reversed_.ordered and reversed_.outcome == WRONG
    # ORDER BY inside a subquery does not make the outer result ordered
    inner = "SELECT name FROM (SELECT name FROM products ORDER BY price LIMIT 2) t"
    assert not score_prediction(SCHEMA, inner, "SELECT name FROM products WHERE id IN (2, 4)").ordered


def test_floats_compare_with_tolerance():
    gold = "SELECT AVG(price) FROM products WHERE category = 'office'"
    assert score_prediction(SCHEMA, gold, "SELECT SUM(price) / 2 FROM products WHERE id <= 2").execution_match
    assert score_prediction(SCHEMA, gold, "SELECT 119.995").execution_match
    assert not score_prediction(SCHEMA, gold, "SELECT 119.99").execution_match


def test_nulls_equal_nulls_but_not_zero():
    gold = "SELECT price FROM products WHERE category = 'home'"
    assert score_prediction(SCHEMA, gold, "SELECT price FROM products WHERE id IN (3, 4)").execution_match
    assert not score_prediction(
        SCHEMA, gold, "SELECT COALESCE(price, 0) FROM products WHERE id > 2"
    ).execution_match


def test_extra_columns_only_in_the_lenient_score():
    score = score_prediction(SCHEMA, "SELECT name FROM products", "SELECT id, name FROM products")
    assert score.outcome == WRONG and not score.execution_match and score.execution_match_lenient
    # column order never matters
    assert score_prediction(
        SCHEMA, "SELECT id, name FROM products", "SELECT name, id FROM products"
    ).execution_match


def test_dml_is_scored_by_the_database_state():
    gold = "UPDATE products SET price = price * 1.1 WHERE category = 'office'"
    same = score_prediction(SCHEMA, gold, "UPDATE products SET price = 1.1 * price WHERE id IN (1, 2)")
    assert same.is_dml and same.outcome == CORRECT
    assert score_prediction(SCHEMA, gold, "UPDATE products SET price = price * 1.1").outcome == WRONG
    insert = "INSERT INTO products (id, name, category, price) VALUES (5, 'Shelf', 'home', 60)"
    assert score_prediction(
        SCHEMA, insert, "INSERT INTO products VALUES (5, 'Shelf', 'home', 60.0)"
    ).execution_match
    with_delete = (
        "WITH gone AS (SELECT id FROM products WHERE price IS NULL) DELETE FROM products WHERE id IN gone"
    )
    assert (
        score_prediction(SCHEMA, with_delete, "DELETE FROM products WHERE price IS NULL").outcome == CORRECT
    )
    assert score_prediction(SCHEMA, with_delete, "DELETE FROM products WHERE id = 1").outcome == WRONG
    # a SELECT is not an answer to a DELETE, even when it runs
    delete = score_prediction(SCHEMA, "DELETE FROM products WHERE price IS NULL", "SELECT * FROM products")
    assert delete.outcome == WRONG and delete.valid_sql


def test_invalid_sql_errors_and_timeouts_are_counted_apart():
    gold = "SELECT name FROM products"
    broken = score_prediction(SCHEMA, gold, "SELEC name FROM products")
    assert broken.outcome == ERROR and not broken.valid_sql and not broken.parses and broken.error
    missing = score_prediction(SCHEMA, gold, "SELECT nope FROM products")
    assert missing.outcome == ERROR and missing.parses and "nope" in missing.error
    two = score_prediction(SCHEMA, gold, "SELECT 1; SELECT 2")
    assert two.outcome == ERROR
    no_sql = score_answer(SCHEMA, gold, "I cannot answer that.")
    assert no_sql.outcome == NO_SQL and no_sql.valid_sql is False
    endless = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r"
    slow = score_prediction(SCHEMA, gold, endless, timeout_s=0.2)
    assert slow.outcome == TIMEOUT and slow.execution_match is False
    denied = score_prediction(SCHEMA, gold, "ATTACH DATABASE '/tmp/x.db' AS x")
    assert denied.outcome == ERROR


def test_gold_that_does_not_execute_is_reported_apart():
    score = score_prediction(SCHEMA, "SELECT missing_column FROM products", "SELECT name FROM products")
    assert score.outcome == GOLD_ERROR and not score.gold_executes
    assert score.execution_match is None and score.valid_sql is True and "gold" in score.error
    bad_schema = score_prediction("CREATE TABLE (", "SELECT 1", "SELECT 1")
    assert bad_schema.outcome == GOLD_ERROR and bad_schema.valid_sql is None


def test_sql_parses_tells_statements_from_noise():
    assert sql_parses("SELECT 1") and sql_parses("DELETE FROM t") and sql_parses("REPLACE INTO t VALUES (1)")
    assert not sql_parses("SELEC name") and not sql_parses("hello world") and not sql_parses("")


def test_summary_denominators_and_outcome_counts():
    gold = "SELECT name FROM products WHERE price > 100"
    scores = [
        score_prediction(SCHEMA, gold, gold),  # correct
        score_prediction(SCHEMA, gold, "SELECT id, name FROM products WHERE price > 100"),  # lenient only
        score_prediction(SCHEMA, gold, "SELECT broken"),  # error
        score_prediction(SCHEMA, "SELECT nope FROM products", "SELECT 1"),  # gold error: not counted
        request_failed(gold, run_gold(SCHEMA, gold), "APIConnectionError: refused"),
    ]
    summary = summarize(scores)
    assert summary["examples"] == 5 and summary["gold_executes"] == 4
    assert summary["execution_accuracy"] == 0.25 and summary["execution_accuracy_lenient"] == 0.5
    assert summary["exact_match"] == 0.2
    assert summary["valid_sql"] == 0.75  # the failed request has no SQL to judge
    assert summary["outcomes"] == {
        CORRECT: 1, WRONG: 1, ERROR: 1, TIMEOUT: 0, NO_SQL: 0, GOLD_ERROR: 1, REQUEST_ERROR: 1, TOO_LARGE: 0
    }  # fmt: skip
    assert set(summary["outcomes"]) == set(OUTCOMES)
    assert summarize([])["execution_accuracy"] is None
    assert any("ORDER BY" in rule for rule in SCORING_RULES)


# ---------------------------------------------------------------- results over the 1,000 rows kept (issue 11, section 3)

BIG = (
    "CREATE TABLE big (id INT, price DECIMAL(10,2));\n"
    "INSERT INTO big WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 1500) "
    "SELECT i, i * 0.25 FROM r;"
)


def test_rows_beyond_the_compared_window_still_count():
    gold = run_gold(BIG, "SELECT id FROM big")
    assert gold.truncated and gold.digest.row_count == 1500
    assert (
        score_prediction(BIG, "SELECT id FROM big", "SELECT id FROM big WHERE id <= 1200", gold=gold).outcome
        == WRONG
    )
    changed = "SELECT CASE WHEN id = 1400 THEN 0 ELSE id END FROM big"
    assert score_prediction(BIG, "SELECT id FROM big", changed, gold=gold).outcome == WRONG
    same = score_prediction(BIG, "SELECT id FROM big", "SELECT id FROM big ORDER BY id DESC", gold=gold)
    assert same.outcome == CORRECT and same.execution_match
    # An ordered gold: the order beyond row 1,000 counts too.
    ordered = "SELECT id FROM big ORDER BY id"
    assert score_prediction(BIG, ordered, "SELECT id FROM big ORDER BY id = 1400, id").outcome == WRONG
    assert score_prediction(BIG, ordered, "SELECT id FROM big ORDER BY -id DESC").outcome == CORRECT


def test_big_results_the_digests_cannot_settle_are_reported_apart():
    gold = "SELECT id, price FROM big"
    assert score_prediction(BIG, gold, "SELECT id, id / 4.0 FROM big").outcome == CORRECT  # the same floats
    noisy = score_prediction(BIG, gold, "SELECT id, price + 1e-13 FROM big")
    assert noisy.outcome == TOO_LARGE and noisy.execution_match is False and "cannot score" in noisy.error
    swapped = score_prediction(BIG, "SELECT id, id * 2 FROM big", "SELECT id * 2, id FROM big")
    assert swapped.outcome == TOO_LARGE
    assert score_prediction(BIG, "SELECT id, id * 2 FROM big", "SELECT id, id * 3 FROM big").outcome == WRONG
    assert summarize([noisy])["outcomes"][TOO_LARGE] == 1


def test_dml_on_big_tables_compares_every_row():
    gold = "DELETE FROM big WHERE id > 1400"
    assert score_prediction(BIG, gold, "DELETE FROM big WHERE id > 1450").outcome == WRONG
    assert score_prediction(BIG, gold, "DELETE FROM big WHERE NOT id <= 1400").outcome == CORRECT
    update = "UPDATE big SET id = id + 1 WHERE id = 1499"
    assert score_prediction(BIG, update, "UPDATE big SET id = id + 1 WHERE id = 1300").outcome == WRONG


# ---------------------------------------------------------------- tolerance for float noise only

LEDGER = (
    "CREATE TABLE ledger (id INT, amount DECIMAL(12,2));\n"
    "INSERT INTO ledger VALUES (1, 10250000.00), (2, 10250000.00), (3, 10.00), (4, 0.10), (5, 0.20);"
)


def test_tolerance_absorbs_float_noise_only():
    total = "SELECT SUM(amount) FROM ledger"
    missing = score_prediction(LEDGER, total, "SELECT SUM(amount) FROM ledger WHERE amount <> 10")
    assert missing.outcome == WRONG  # 10.00 out of 20.5M: a relative 1e-6 tolerance called this correct
    rounded = "SELECT ROUND(AVG(amount), 0) FROM ledger WHERE id <= 3"
    assert score_prediction(LEDGER, rounded, "SELECT AVG(amount) FROM ledger WHERE id <= 3").outcome == WRONG
    noise = "SELECT SUM(amount) FROM ledger WHERE id >= 4"
    assert score_prediction(LEDGER, noise, "SELECT 0.1 + 0.2").outcome == CORRECT  # 0.30000000000000004
    assert (
        score_prediction(LEDGER, "SELECT COUNT(*) * 1000000001 FROM ledger", "SELECT 5000000004.0").outcome
        == WRONG
    )


# ---------------------------------------------------------------- hostile answers never end an eval


def test_answers_that_are_not_unicode_or_too_big_score_as_errors():
    gold = "SELECT name FROM products"
    surrogate = score_answer(SCHEMA, gold, "```sql\nSELECT '\ud800' FROM products\n```")
    assert surrogate.outcome == ERROR and "surrogate" in surrogate.error
    started = time.perf_counter()
    huge = score_answer(SCHEMA, gold, "```" * 700_000)
    assert huge.outcome == ERROR and "not read" in huge.error
    assert time.perf_counter() - started < 3


def test_sqlglot_on_a_huge_prediction_gets_the_time_limit_too():
    gold = "SELECT name FROM products"
    in_list = "SELECT name FROM products WHERE id IN (" + ",".join(map(str, range(100_000))) + ")"
    started = time.perf_counter()
    score = score_prediction(SCHEMA, gold, in_list, timeout_s=1.0)
    assert time.perf_counter() - started < 5  # sqlglot alone took 15 s on it
    assert score.outcome == CORRECT and not score.exact_match
