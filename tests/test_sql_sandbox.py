"""The SQL sandbox: hostile SQL is refused or stopped, nothing reaches the disk, results compare as published."""

import json
import multiprocessing
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sqlsft.sql.compare import Verdict, compare_results, results_match
from sqlsft.sql.dialect import to_sqlite
from sqlsft.sql.results import Limits
from sqlsft.sql.sandbox import QueryResult, run_query
from sqlsft.sql.statements import extract_sql, query_orders_rows, split_statements

SCHEMA = """
CREATE TABLE employees (id INT PRIMARY KEY, name VARCHAR(50), dept VARCHAR(20), salary DECIMAL(10,2));
INSERT INTO employees (id, name, dept, salary) VALUES
  (1, 'Ann', 'eng', 120000.50), (2, 'Bob', 'eng', 95000), (3, 'Cid', 'ops', 70000), (4, 'Dee', NULL, NULL);
"""
TIMEOUT_S = 0.5


def ok(columns, rows, state=None) -> QueryResult:
    return QueryResult("ok", columns, rows, state=state)


# ---------------------------------------------------------------- normal queries


def test_select_returns_exact_rows_and_columns():
    result = run_query(SCHEMA, "SELECT name, salary FROM employees WHERE dept = 'eng' ORDER BY id")
    assert result.ok, result.error
    assert result.columns == ["name", "salary"]
    assert result.rows == [("Ann", 120000.5), ("Bob", 95000)]
    assert not result.truncated and result.elapsed_s < 1


def test_aggregates_nulls_and_trailing_semicolon_comment():
    result = run_query(SCHEMA, "SELECT dept, COUNT(*) FROM employees GROUP BY dept ORDER BY dept; -- done")
    assert result.ok, result.error
    assert result.rows == [(None, 1), ("eng", 2), ("ops", 1)]


def test_max_rows_truncates():
    result = run_query(SCHEMA, "SELECT * FROM employees", max_rows=2)
    assert result.ok and result.truncated and len(result.rows) == 2


def test_dml_returns_state_after_the_statement():
    result = run_query(SCHEMA, "UPDATE employees SET salary = 1 WHERE dept = 'ops'", include_state=True)
    assert result.ok, result.error
    assert result.columns == [] and result.rows == []
    assert (3, "Cid", "ops", 1) in result.state["employees"]
    deleted = run_query(SCHEMA, "DELETE FROM employees WHERE salary IS NULL", include_state=True)
    assert len(deleted.state["employees"]) == 3


def test_each_run_gets_a_fresh_database():
    run_query(SCHEMA, "DELETE FROM employees")
    assert len(run_query(SCHEMA, "SELECT * FROM employees").rows) == 4


def test_errors_are_statuses_not_exceptions():
    assert run_query(SCHEMA, "SELECT nope FROM employees").status == "error"
    assert "no such column" in run_query(SCHEMA, "SELECT nope FROM employees").error
    empty = run_query(SCHEMA, "  -- nothing\n")
    assert empty.status == "error" and "no SQL" in empty.error
    two = run_query(SCHEMA, "SELECT 1; DELETE FROM employees")
    assert two.status == "error" and "one SQL statement" in two.error
    bad_schema = run_query("CREATE TABLE (", "SELECT 1")
    assert bad_schema.status == "schema_error" and bad_schema.error.startswith("Schema:")


# ---------------------------------------------------------------- MySQL-flavoured schemas and queries


def test_mysql_schema_is_transpiled_statement_by_statement():
    schema = """
    CREATE TABLE `orders` (`id` INT AUTO_INCREMENT PRIMARY KEY, status ENUM('new','done'), placed DATE);
    INSERT INTO `orders` (id, status, placed) VALUES (1, 'new', DATE '2023-02-15'), (2, 'done', '2020-01-01');
    """
    result = run_query(schema, "SELECT id, placed FROM orders ORDER BY id")
    assert result.ok, result.error
    assert result.rows == [(1, "2023-02-15"), (2, "2020-01-01")]


def test_mysql_date_functions_in_queries():
    schema = (
        "CREATE TABLE o (id INT, placed DATE); INSERT INTO o VALUES (1, '2023-02-15'), (2, '2020-11-01');"
    )
    result = run_query(schema, "SELECT id, YEAR(placed), MONTH(placed), QUARTER(placed) FROM o ORDER BY id")
    assert result.ok, result.error
    assert result.rows == [(1, 2023, 2, 1), (2, 2020, 11, 4)]
    recent = run_query(schema, "SELECT id FROM o WHERE placed >= DATE_SUB('2023-06-01', INTERVAL 1 YEAR)")
    assert recent.ok and recent.rows == [(1,)], recent.error
    assert run_query(schema, "SELECT COUNT(*) FROM o WHERE placed > NOW() - INTERVAL 100 YEAR").rows == [(2,)]
    assert "DATE(" in to_sqlite("SELECT DATE_ADD(d, INTERVAL 3 DAY) FROM t")
    assert to_sqlite("SELECT (((") == "SELECT ((("  # unparsable: unchanged


# ---------------------------------------------------------------- hostile input


def test_attach_is_denied_and_writes_nothing(tmp_path):
    target = tmp_path / "attached.db"
    for query in (f"ATTACH '{target}' AS x", f"  attach database '{target}' as x"):
        result = run_query(SCHEMA, query)
        assert result.status == "denied", result
    assert not target.exists()


def test_attach_in_the_schema_is_refused(tmp_path):
    target = tmp_path / "schema.db"
    result = run_query(f"ATTACH '{target}' AS x; CREATE TABLE x.t (a INT);", "SELECT 1")
    assert result.status == "schema_error" and "ATTACH" in result.error
    assert not target.exists()


def test_vacuum_into_a_file_is_refused(tmp_path):
    target = tmp_path / "copy.db"
    assert run_query(SCHEMA, f"VACUUM INTO '{target}'").status == "denied"
    # Even hidden inside a schema the authorizer (and the zero ATTACH limit) stop it.
    assert run_query(f"{SCHEMA}; VACUUM INTO '{target}';", "SELECT 1").status == "schema_error"
    assert not target.exists()


def test_extension_loading_and_pragmas_are_denied(tmp_path):
    loaded = run_query(SCHEMA, f"SELECT load_extension('{tmp_path / 'evil.so'}')")
    assert loaded.status == "denied" and "load_extension" in loaded.error
    for pragma in (
        "PRAGMA writable_schema = ON",
        "PRAGMA temp_store_directory = '/tmp'",
        "pragma table_info(x)",
    ):
        assert run_query(SCHEMA, pragma).status == "denied"
    assert run_query(SCHEMA, "SELECT * FROM pragma_table_info('employees')").status == "denied"


def test_endless_recursive_cte_is_stopped_in_time():
    started = time.perf_counter()
    result = run_query(
        SCHEMA,
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT COUNT(*) FROM r",
        timeout_s=TIMEOUT_S,
    )
    assert result.status == "timeout" and "time limit" in result.error
    assert time.perf_counter() - started < TIMEOUT_S + 1


def test_huge_cross_join_is_stopped_or_capped():
    tables = ", ".join(f"employees e{i}" for i in range(16))  # 4**16 rows
    started = time.perf_counter()
    counted = run_query(SCHEMA, f"SELECT COUNT(*) FROM {tables}", timeout_s=TIMEOUT_S)
    assert counted.status == "timeout"
    listed = run_query(SCHEMA, f"SELECT e0.id, e15.id FROM {tables}", timeout_s=TIMEOUT_S, max_rows=50)
    assert listed.ok and listed.truncated and len(listed.rows) == 50
    assert time.perf_counter() - started < 2 * TIMEOUT_S + 1


def test_big_values_and_big_tables_hit_limits():
    assert "too big" in run_query(SCHEMA, "SELECT zeroblob(100000000)").error
    grow = run_query(
        SCHEMA,
        "CREATE TABLE big AS WITH RECURSIVE r(i, x) AS (SELECT 1, zeroblob(1000000) UNION ALL "
        "SELECT i + 1, zeroblob(1000000) FROM r LIMIT 1000) SELECT * FROM r",
    )
    assert grow.status == "error" and "size limit" in grow.error


def test_memory_hungry_query_is_stopped():
    # A job with its own limits runs in a sandbox process of its own (SQLite's heap limit is per process).
    result = run_query(
        "CREATE TABLE a (x INT)",
        "WITH RECURSIVE r(i, x) AS (SELECT 1, randomblob(1000) UNION ALL SELECT i + 1, randomblob(1000) "
        "FROM r LIMIT 5000000) SELECT i FROM r ORDER BY x",
        timeout_s=20,
        limits=Limits(heap_bytes=64 << 20),
    )
    assert result.status == "error" and "memory limit" in result.error, result


# ---------------------------------------------------------------- comparison


def test_unordered_multisets_and_ordered_mode():
    gold = ok(["a"], [(1,), (2,), (2,)])
    assert results_match(gold, ok(["x"], [(2,), (1,), (2,)]))
    assert not results_match(gold, ok(["a"], [(1,), (2,)]))  # multiset, not set
    assert not results_match(gold, ok(["a"], [(1,), (1,), (2,)]))
    assert not results_match(gold, ok(["a"], [(2,), (1,), (2,)]), ordered=True)
    assert results_match(gold, ok(["a"], [(1,), (2,), (2,)]), ordered=True)


def test_float_tolerance_nulls_and_types():
    gold = ok(["avg", "n"], [(1 / 3, None), (2.0, 5)])
    assert results_match(gold, ok(["avg", "n"], [(2, 5), (0.3333333334, None)]))
    assert not results_match(gold, ok(["avg", "n"], [(0.34, None), (2.0, 5)]))
    assert not results_match(gold, ok(["avg", "n"], [(1 / 3, 0), (2.0, 5)]))  # NULL is not 0
    assert not results_match(ok(["a"], [("1",)]), ok(["a"], [(1,)]))  # text is not a number
    assert results_match(gold, ok(["avg", "n"], [(0.3334, None), (2.0, 5)]), float_tol=1e-3)


def test_column_order_ignored_and_extra_columns_only_when_lenient():
    gold = ok(["name", "total"], [("a", 1), ("b", 2)])
    assert results_match(gold, ok(["total", "name"], [(2, "b"), (1, "a")]))
    wider = ok(["id", "name", "total"], [(7, "a", 1), (8, "b", 2)])
    assert not results_match(gold, wider)
    assert results_match(gold, wider, allow_extra_columns=True)
    assert not results_match(gold, ok(["name"], [("a",), ("b",)]), allow_extra_columns=True)
    assert not results_match(
        gold, ok(["name", "total"], [("a", 2), ("b", 1)])
    )  # rows, not columns, must agree


def test_errors_never_match_and_dml_compares_state():
    assert not results_match(QueryResult("error", [], [], "x"), QueryResult("error", [], [], "x"))
    gold = run_query(
        SCHEMA, "UPDATE employees SET salary = salary * 1.1 WHERE dept = 'eng'", include_state=True
    )
    same = run_query(
        SCHEMA, "UPDATE employees SET salary = 1.1 * salary WHERE dept IN ('eng')", include_state=True
    )
    other = run_query(SCHEMA, "UPDATE employees SET salary = salary * 1.1", include_state=True)
    assert results_match(gold, same)
    assert not results_match(gold, other)


def test_real_queries_compare_end_to_end():
    gold = run_query(SCHEMA, "SELECT dept, AVG(salary) FROM employees WHERE dept IS NOT NULL GROUP BY dept")
    pred = run_query(SCHEMA, "SELECT AVG(salary) AS s, dept FROM employees GROUP BY dept HAVING dept <> ''")
    assert results_match(gold, pred)


# ---------------------------------------------------------------- reading SQL out of text


def test_query_orders_rows_looks_at_the_top_level_only():
    assert query_orders_rows("SELECT a FROM t ORDER BY a")
    assert query_orders_rows("WITH x AS (SELECT 1) SELECT * FROM x order\n by 1 DESC LIMIT 3")
    assert not query_orders_rows("SELECT * FROM (SELECT a FROM t ORDER BY a LIMIT 3) s")
    assert not query_orders_rows("SELECT RANK() OVER (ORDER BY a) FROM t")
    assert not query_orders_rows("SELECT 'ORDER BY' FROM t -- ORDER BY a")


def test_extract_sql_from_fences_and_bare_text():
    assert extract_sql("```sql\nSELECT 1;\n```") == "SELECT 1;"
    assert extract_sql("Here:\n```\nSELECT 2\n```\nthen ```sql\nSELECT 3\n```") == "SELECT 3"
    assert extract_sql("```SQL\nSELECT 1\n```\n```sql\nSELECT 2\n```") == "SELECT 1"
    assert extract_sql("```sql\nSELECT a\nFROM t") == "SELECT a\nFROM t"  # cut off mid-stream
    assert extract_sql("  select * from t  ") == "select * from t"
    assert extract_sql("The answer is:\nSELECT name FROM t;") == "SELECT name FROM t;"
    assert extract_sql("I cannot help with that.") == ""
    assert extract_sql("Delete the old rows first, then insert.") == ""  # prose, not SQL
    assert extract_sql("Update: the table has no such column.") == ""
    assert extract_sql("Sure.\nDELETE FROM t WHERE id = 2;") == "DELETE FROM t WHERE id = 2;"
    assert extract_sql("WITH x AS (SELECT 1) SELECT * FROM x") == "WITH x AS (SELECT 1) SELECT * FROM x"
    assert extract_sql("update t set a = 1") == "update t set a = 1"
    assert extract_sql("") == ""


def test_trigger_bodies_are_one_statement():
    schema = (
        "CREATE TABLE t (id INT, n INT); CREATE TABLE log (msg TEXT);\n"
        "CREATE TRIGGER t_log AFTER INSERT ON t BEGIN\n"
        "  INSERT INTO log VALUES ('added; ' || CASE WHEN NEW.n > 1 THEN 'many' ELSE 'one' END);\n"
        "  UPDATE t SET n = n WHERE id = NEW.id;\n"
        "END;\n"
        "INSERT INTO t VALUES (1, 2);"
    )
    pieces = split_statements(schema)
    assert len(pieces) == 4 and pieces[2].startswith("CREATE TRIGGER") and pieces[2].endswith("END")
    result = run_query(schema, "SELECT msg FROM log")
    assert result.ok and result.rows == [("added; many",)]


def test_split_statements_respects_quotes_and_comments():
    text = "INSERT INTO t VALUES ('a;b', \"c;\"); -- x; y\nSELECT 1 /* ; */ ;;  "
    assert split_statements(text) == ["INSERT INTO t VALUES ('a;b', \"c;\")", "-- x; y\nSELECT 1 /* ; */"]


@pytest.mark.parametrize("n", [300])
def test_fast_enough_for_prepare(n):
    started = time.perf_counter()
    for i in range(n):
        assert run_query(SCHEMA, f"SELECT name FROM employees WHERE id = {i % 4 + 1}").ok
    per_row_ms = (time.perf_counter() - started) / n * 1000
    assert per_row_ms < 5, per_row_ms  # about 0.5 ms here; prepare checks ~100k rows


# ---------------------------------------------------------------- hard walls (issue 11, section 2)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT instr(printf('%.*c', 1000000, 'a'), printf('%.*c', 500000, 'a') || 'b')",
        "SELECT printf('%.*c', 1000000, 'a') LIKE '%' || printf('%.*c', 20000, 'a') || 'b%'",
        "SELECT printf('%.*c', 1000000, 'a') GLOB '*' || printf('%.*c', 20000, 'a') || 'b*'",
        "SELECT length(replace(printf('%.*c', 1000000, 'a'), printf('%.*c', 500000, 'a') || 'b', 'x'))",
        # The issue's own query: over the value limit, printf() gives NULL at once.
        "SELECT instr(printf('%.*c', 16000000, 'a'), printf('%.*c', 8000000, 'a') || 'b')",
    ],
)
def test_one_slow_function_call_cannot_outlast_the_time_limit(query):
    # SQLite's progress handler runs between VM steps, not inside one long instr()/LIKE/replace() call.
    started = time.perf_counter()
    result = run_query(SCHEMA, query, timeout_s=TIMEOUT_S)
    assert time.perf_counter() - started < TIMEOUT_S + 1.5
    if "16000000" in query:
        assert result.rows == [(None,)], result
    else:
        assert result.status == "timeout" and "time limit" in result.error, result
    # The sandbox is fine afterwards.
    assert run_query(SCHEMA, "SELECT COUNT(*) FROM employees").rows == [(4,)]


_BIG_ROWS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 2000) SELECT zeroblob(1000000) FROM c"
_PEAK_MEMORY = """
import json, resource, sys
from sqlsft.sql.pool import POOL
from sqlsft.sql.sandbox import run_query
run_query('', 'SELECT 1')  # the sandbox process starts
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
selected = run_query('', sys.argv[1], max_rows=5000)
viewed = run_query('', 'CREATE VIEW v AS ' + sys.argv[1], max_rows=5000, include_state=True)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
POOL.shutdown()
print(json.dumps({
    "grew_mib": (after - before) / 1024,
    "sandbox_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    "selected": [selected.status, len(selected.rows), selected.truncated],
    "viewed": [viewed.status, len(viewed.state["v"]), viewed.truncated_tables],
}))
"""


def test_fetched_rows_stay_within_the_byte_budget():
    # 2,000 rows of 1 MB: the caller keeps at most the 32 MiB budget, whether selected or read back as a view.
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY, _BIG_ROWS], capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr
    measured = json.loads(out.stdout)
    assert measured["grew_mib"] < 200, measured
    assert measured["sandbox_peak_mib"] < 1024, measured
    status, kept, truncated = measured["selected"]
    assert status == "ok" and truncated and 0 < kept <= 34, measured  # 32 MiB of 1 MB values
    status, kept, cut_tables = measured["viewed"]
    assert status == "ok" and cut_tables == ["v"] and 0 < kept <= 34, measured


def test_text_that_is_not_unicode_is_refused_not_raised():
    result = run_query(SCHEMA, "SELECT '\ud800'")
    assert result.status == "error" and "surrogate" in result.error
    bad_schema = run_query("CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('\udfff');", "SELECT 1")
    assert bad_schema.status == "schema_error" and "surrogate" in bad_schema.error
    assert extract_sql("```sql\nSELECT '\ud800'\n```") == "SELECT '\ud800'"


def test_oversized_sql_is_refused_with_a_reason():
    big = "SELECT 1 WHERE 1 IN (" + ",".join(["1"] * 600_000) + ")"
    result = run_query(SCHEMA, big)
    assert result.status == "error" and "MiB" in result.error and "at most 1 MiB" in result.error


def test_splitting_is_linear_inside_a_trigger_body():
    trigger = "CREATE TRIGGER t AFTER INSERT ON employees BEGIN " + "SELECT 1;" * 30_000 + " END; SELECT 2"
    started = time.perf_counter()
    pieces = split_statements(trigger)
    assert time.perf_counter() - started < 1
    assert len(pieces) == 2 and pieces[0].endswith("END") and pieces[1] == "SELECT 2"


@pytest.mark.parametrize(
    "text",
    ["```" * 300_000, "```\n" * 225_000, "```sql x\n" * 90_000, "WITH a (\n" * 100_000, "[" * 900_000],
)
def test_reading_sql_out_of_adversarial_text_is_linear(text):
    for read in (extract_sql, query_orders_rows):
        started = time.perf_counter()
        read(text)
        assert time.perf_counter() - started < 1, read


# ---------------------------------------------------------------- comparison at scale


def test_thirteen_equal_columns_one_off_is_quick():
    gold = ok([f"c{i}" for i in range(13)], [(i,) * 13 for i in range(6)])
    one_off = ok([f"c{i}" for i in range(13)], [(i,) * 12 + (i + 100,) for i in range(6)])
    started = time.perf_counter()
    assert not results_match(gold, one_off)
    assert not results_match(gold, one_off, allow_extra_columns=True)
    assert time.perf_counter() - started < 2


def test_columns_holding_the_same_values_in_other_rows_are_told_apart():
    # 13 columns, each a permutation of 0..16: any column "matches" any other one as a multiset.
    rows = [tuple((i * (j + 1)) % 17 for j in range(13)) for i in range(17)]
    gold = ok([f"c{j}" for j in range(13)], rows)
    started = time.perf_counter()
    assert results_match(gold, ok([f"c{j}" for j in range(13)], [row[::-1] for row in rows]))
    # Column 0 swapped between two rows: every column keeps its values, two rows change.
    swapped = [list(row) for row in rows]
    swapped[1][0], swapped[2][0] = swapped[2][0], swapped[1][0]
    assert sorted(swapped[1]) not in [sorted(row) for row in rows]  # so no column order can match
    assert not results_match(gold, ok(gold.columns, [tuple(row[::-1]) for row in swapped]))
    floats = [tuple(v + 0.5 for v in row) for row in rows]
    assert results_match(ok(gold.columns, floats), ok(gold.columns, [row[::-1] for row in floats]))
    assert time.perf_counter() - started < 2


def test_float_rows_matching_needs_no_lucky_sort_order():
    gold = ok(["a", "b"], [(1.0, 2.0), (1.0 + 1e-12, 1.0)])
    pred = ok(["a", "b"], [(1.0, 1.0), (1.0 + 1e-12, 2.0)])
    assert results_match(gold, pred)
    assert not results_match(gold, ok(["a", "b"], [(1.0, 1.0), (1.0, 1.0)]))


def _count_employees(_: int) -> list[tuple]:
    return run_query(SCHEMA, "SELECT COUNT(*) FROM employees").rows


def test_threads_and_forked_children_use_the_sandbox_side_by_side():
    assert _count_employees(0) == [(4,)]  # this process now holds a sandbox process
    with ThreadPoolExecutor(8) as threads:
        answers = list(threads.map(lambda i: run_query(SCHEMA, f"SELECT {i}").rows, range(40)))
    assert answers == [[(i,)] for i in range(40)]
    # prepare checks rows in forked worker processes: each starts sandbox processes of its own.
    with multiprocessing.get_context("fork").Pool(2) as children:
        assert children.map(_count_employees, range(4)) == [[(4,)]] * 4
    assert _count_employees(0) == [(4,)]


def test_a_cut_result_never_compares_equal_on_the_rows_kept_alone():
    big = (
        "CREATE TABLE big (id INT); INSERT INTO big WITH RECURSIVE r(i) AS "
        "(SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 1500) SELECT i FROM r;"
    )
    gold, fewer = run_query(big, "SELECT id FROM big"), run_query(big, "SELECT id FROM big WHERE id <= 1200")
    assert gold.truncated and fewer.truncated and gold.rows == fewer.rows  # the first 1,000 rows agree
    assert not results_match(gold, fewer)
    assert compare_results(gold, fewer) == Verdict.UNDECIDED  # without digests nothing more is known
    gold, fewer, same = (
        run_query(big, sql, digest=True)
        for sql in (
            "SELECT id FROM big",
            "SELECT id FROM big WHERE id <= 1200",
            "SELECT id FROM big ORDER BY -id",
        )
    )
    assert (gold.digest.row_count, fewer.digest.row_count) == (1500, 1200)
    assert compare_results(gold, fewer) == Verdict.MISMATCH
    assert compare_results(gold, same) == Verdict.MATCH
