"""Scoring one prediction: hand-made cases for each published rule."""

from sqlsft.sql.scoring import (
    CORRECT,
    ERROR,
    GOLD_ERROR,
    NO_SQL,
    OUTCOMES,
    REQUEST_ERROR,
    SCORING_RULES,
    TIMEOUT,
    WRONG,
    normalize_sql,
    request_failed,
    run_gold,
    score_answer,
    score_prediction,
    sql_parses,
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
        CORRECT: 1, WRONG: 1, ERROR: 1, TIMEOUT: 0, NO_SQL: 0, GOLD_ERROR: 1, REQUEST_ERROR: 1
    }  # fmt: skip
    assert set(summary["outcomes"]) == set(OUTCOMES)
    assert summarize([])["execution_accuracy"] is None
    assert any("ORDER BY" in rule for rule in SCORING_RULES)
