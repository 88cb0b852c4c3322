"""One sandboxed run, inside the sandbox process: a fresh in-memory SQLite database, the guards, the fetch.

Model output is untrusted: SQLite's authorizer refuses ATTACH/DETACH, PRAGMA and extension loading,
`SQLITE_LIMIT_ATTACHED` is 0 (so `VACUUM INTO` cannot open a file either), temporary storage stays in
memory, a progress handler stops the statement at its deadline, and limits cap value sizes, database
pages and SQLite's heap. Rows are copied into Python only up to a byte budget; beyond it (and beyond
`max_rows`) they are counted and hashed, never kept. What the progress handler cannot stop (one slow
built-in function call on a big string) is the parent's job: it kills this process at the deadline.
"""

import hashlib
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator

from sqlsft.common.formatting import shorten
from sqlsft.sql.dialect import to_sqlite
from sqlsft.sql.results import MIB, Limits, Phase, QueryJob, QueryResult, QueryStatus, RowDigest
from sqlsft.sql.statements import DENIED_LEADING, split_statements

PROGRESS_EVERY_OPS = 1_000
HASH_CHUNK_ROWS = 4_096  # rows hashed together (and at most HASH_CHUNK_BYTES of values)
HASH_CHUNK_BYTES = 8 << 20
_HASH_MODULUS = 1 << 64
_NONE_HASH = 0x5EED_0F_0000_0001  # None's own hash() differs between processes

# Python raises MemoryError when SQLite hits its heap limit (SQLITE_NOMEM).
_SQL_ERRORS = (sqlite3.Error, MemoryError)

_DENIED_ACTIONS = {
    sqlite3.SQLITE_ATTACH: "ATTACH",
    sqlite3.SQLITE_DETACH: "DETACH",
    sqlite3.SQLITE_PRAGMA: "PRAGMA",
}
_DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"}


class _Guard:
    """The authorizer and progress handler of one connection, remembering why they stopped it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.deadline = 0.0
        self.timed_out = False
        self.denied: str | None = None

    def start(self, timeout_s: float) -> None:
        self.deadline = self.clock() + timeout_s
        self.timed_out = False
        self.denied = None

    def progress(self) -> int:
        if self.clock() > self.deadline:
            self.timed_out = True
            return 1
        return 0

    def authorize(self, action: int, arg1, arg2, _db, _trigger) -> int:
        if action in _DENIED_ACTIONS:
            self.denied = _DENIED_ACTIONS[action]
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION and arg2 and arg2.lower() in _DENIED_FUNCTIONS:
            self.denied = f"the function {arg2}()"
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def status(self) -> QueryStatus:
        if self.timed_out:
            return QueryStatus.TIMEOUT
        return QueryStatus.DENIED if self.denied else QueryStatus.ERROR


def _connect(limits: Limits, guard: _Guard) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    if hasattr(conn, "enable_load_extension"):  # absent when Python was built without extension loading
        conn.enable_load_extension(False)
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute(f"PRAGMA max_page_count = {limits.db_pages}")
    conn.execute(f"PRAGMA temp.max_page_count = {limits.db_pages}")
    # The heap limit is process-wide in SQLite and the pragma can only lower it: a process that ran a
    # job with a lower limit is not reused for the default one (see pool.py).
    current = conn.execute("PRAGMA hard_heap_limit").fetchone()[0]
    if current == 0 or current > limits.heap_bytes:
        conn.execute(f"PRAGMA hard_heap_limit = {limits.heap_bytes}")
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.value_bytes)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, limits.sql_bytes)
    conn.setlimit(sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH, 10)
    conn.set_authorizer(guard.authorize)
    conn.set_progress_handler(guard.progress, PROGRESS_EVERY_OPS)
    return conn


def _describe(exc: BaseException, guard: _Guard, limits: Limits) -> str:
    if guard.timed_out:
        return "stopped: over the time limit"
    if guard.denied:
        return f"not allowed: {guard.denied}"
    if isinstance(exc, MemoryError):
        return f"stopped: over the memory limit ({limits.heap_bytes // MIB} MiB)"
    if "database or disk is full" in str(exc):
        return f"stopped: the database grew over its size limit ({limits.db_pages * 4 // 1024} MiB)"
    return str(exc)


def _build_schema(conn: sqlite3.Connection, guard: _Guard, job: QueryJob) -> str | None:
    """Run the schema statement by statement, transpiling those SQLite rejects. Returns an error or None."""
    for statement in split_statements(job.schema):
        denied = DENIED_LEADING.match(statement)
        if denied:
            return f"the schema may not use {denied.group(1).upper()}"
        try:
            conn.execute(statement)
            continue
        except _SQL_ERRORS as exc:
            if guard.timed_out or guard.denied:
                return _describe(exc, guard, job.limits)
            error = f"{exc} in: {shorten(statement, 120)}"
        if job.read_dialect is None:
            return error
        transpiled = to_sqlite(statement, job.read_dialect)
        if transpiled == statement:
            return error
        try:
            for piece in split_statements(transpiled):
                conn.execute(piece)
        except _SQL_ERRORS as exc:
            return _describe(exc, guard, job.limits) if (guard.timed_out or guard.denied) else error
    return None


class _ByteBudget:
    """Bytes of Python objects that fetched rows may take, over one whole job."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, row: tuple) -> bool:
        size = sys.getsizeof(row) + sum(map(sys.getsizeof, row))
        if size > self.left:
            self.left = -1  # once over, no later (smaller) row is kept either: the kept rows stay a prefix
            return False
        self.left -= size
        return True


def _integral_floats_as_int(row: tuple) -> tuple:
    return tuple(int(v) if type(v) is float and v.is_integer() else v for v in row)


class _Digester:
    """Counts and hashes rows in chunks (see RowDigest); the hashing runs in C over each chunk."""

    def __init__(self, width: int) -> None:
        if sys.flags.hash_randomization:
            raise RuntimeError("row digests need the sandbox process's PYTHONHASHSEED=0")
        self.count = 0
        self.rows_hash = 0
        self.sequence = hashlib.blake2b(digest_size=16)
        self.column_hashes = [0] * width
        self.float_columns = [False] * width

    def add(self, rows: Iterable[tuple]) -> None:
        chunk: list[tuple] = []
        size = 0
        for row in rows:
            chunk.append(row)
            size += sum(map(sys.getsizeof, row))
            if len(chunk) == HASH_CHUNK_ROWS or size >= HASH_CHUNK_BYTES:
                self._add_chunk(chunk)
                chunk, size = [], 0
        if chunk:
            self._add_chunk(chunk)

    def _add_chunk(self, chunk: list[tuple]) -> None:
        floats = [float in set(map(type, column)) for column in zip(*chunk, strict=True)]
        # 3 and 3.0 compare equal: an integral float is hashed as the integer it equals.
        texts = list(map(repr, map(_integral_floats_as_int, chunk) if any(floats) else chunk))
        self.count += len(chunk)
        self.rows_hash = (self.rows_hash + sum(map(hash, texts))) % _HASH_MODULUS
        self.sequence.update("\n".join(texts).encode("utf-8", "surrogatepass") + b"\n")
        for index, column in enumerate(zip(*chunk, strict=True)):
            # hash((v,)) mixes the bits (hash(v) of an integer is the integer: sums would collide).
            nones = column.count(None)
            total = sum(map(hash, zip(column))) + nones * (_NONE_HASH - hash((None,)))
            self.column_hashes[index] = (self.column_hashes[index] + total) % _HASH_MODULUS
            self.float_columns[index] = self.float_columns[index] or floats[index]

    def digest(self) -> RowDigest:
        return RowDigest(
            self.count, self.rows_hash, self.sequence.hexdigest(), self.column_hashes, self.float_columns
        )


def _fetch(
    rows: Iterator[tuple], width: int, max_rows: int, budget: _ByteBudget, digest: bool
) -> tuple[list[tuple], bool, int | None, RowDigest | None]:
    """(kept rows, cut?, how many rows in all, digest): kept up to max_rows and the byte budget.

    Without a digest the fetch stops at the first row not kept; with one, every row is hashed.
    """
    kept: list[tuple] = []
    digester = _Digester(width) if digest else None
    for row in rows:
        if len(kept) < max_rows and budget.take(row):
            kept.append(row)
            continue
        if digester is None:
            return kept, True, None, None
        digester.add(kept)
        digester.add([row])
        digester.add(rows)
        return kept, True, digester.count, digester.digest()
    if digester is None:
        return kept, False, len(kept), None
    digester.add(kept)
    return kept, False, len(kept), digester.digest()


def _execute(conn: sqlite3.Connection, query: str, job: QueryJob, budget: _ByteBudget) -> QueryResult:
    cursor = conn.execute(query)
    try:
        columns = [d[0] for d in cursor.description] if cursor.description else []
        if not columns:
            return QueryResult(QueryStatus.OK, [], [], row_count=0)
        rows, cut, count, digest = _fetch(cursor, len(columns), job.max_rows, budget, job.digest)
        return QueryResult(QueryStatus.OK, columns, rows, truncated=cut, row_count=count, digest=digest)
    finally:
        cursor.close()


def _read_state(
    conn: sqlite3.Connection, guard: _Guard, job: QueryJob, budget: _ByteBudget, result: QueryResult
) -> QueryResult:
    """The result with every table and view as it is after the statement (the result itself if all read)."""
    names = conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    result.state = {}
    result.state_digests = {} if job.digest else None
    for (name,) in names:
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            cursor = conn.execute(f"SELECT * FROM {quoted}")
            width = len(cursor.description or ())
            rows, cut, _, digest = _fetch(cursor, width, job.max_rows, budget, job.digest)
            cursor.close()
        except _SQL_ERRORS as exc:
            if guard.timed_out or isinstance(exc, MemoryError):
                # A table missing on both sides would compare equal: stop instead.
                message = f"{_describe(exc, guard, job.limits)} (reading the table {name} back)"
                return QueryResult(guard.status(), [], [], message)
            continue  # a view that fails has no state to compare
        result.state[name] = rows
        if cut:
            result.truncated_tables.append(name)
        if result.state_digests is not None and digest is not None:
            result.state_digests[name] = digest
    return result


def execute(
    job: QueryJob, begin_phase: Callable[[str, float], None], clock: Callable[[], float]
) -> QueryResult:
    """Run ONE statement of job.query on a fresh database built from job.schema.

    `begin_phase(phase, seconds)` is called as each timed Phase starts (the schema, the statement,
    reading the tables back), so the parent can kill this process if a phase overruns. Never raises for bad SQL.
    """
    started = clock()
    result = _execute_job(job, begin_phase, clock)
    result.elapsed_s = clock() - started
    return result


def _execute_job(
    job: QueryJob, begin_phase: Callable[[str, float], None], clock: Callable[[], float]
) -> QueryResult:
    guard = _Guard(clock)
    conn = _connect(job.limits, guard)
    try:
        begin_phase(Phase.SCHEMA, job.timeout_s)
        guard.start(job.timeout_s)
        schema_error = _build_schema(conn, guard, job)
        if schema_error:
            return QueryResult(QueryStatus.SCHEMA_ERROR, [], [], f"Schema: {schema_error}")

        begin_phase(Phase.STATEMENT, job.timeout_s)
        guard.start(job.timeout_s)
        statements = split_statements(job.query)
        if not statements:
            return QueryResult(QueryStatus.ERROR, [], [], "There is no SQL to run.")
        if len(statements) > 1:
            message = "Only one SQL statement may run; the answer has several."
            return QueryResult(QueryStatus.ERROR, [], [], message)
        statement = statements[0]
        denied = DENIED_LEADING.match(statement)
        if denied:
            message = f"Not allowed: {denied.group(1).upper()} statements."
            return QueryResult(QueryStatus.DENIED, [], [], message)

        budget = _ByteBudget(job.limits.result_bytes)
        try:
            result = _execute(conn, statement, job, budget)
        except _SQL_ERRORS as exc:
            # A failed statement leaves the database as it was (SQLite statements are atomic), so the
            # transpiled retry runs on the same data, within the same deadline.
            status, first_error = guard.status(), _describe(exc, guard, job.limits)
            transpiled = statement
            if status == QueryStatus.ERROR and job.read_dialect:
                transpiled = to_sqlite(statement, job.read_dialect)
            if transpiled == statement or len(split_statements(transpiled)) != 1:
                return QueryResult(status, [], [], first_error)
            budget = _ByteBudget(job.limits.result_bytes)
            try:
                result = _execute(conn, transpiled, job, budget)
            except _SQL_ERRORS as exc2:
                status = guard.status()
                message = first_error if status == QueryStatus.ERROR else _describe(exc2, guard, job.limits)
                return QueryResult(status, [], [], message)
        if job.include_state:
            begin_phase(Phase.TABLES, job.timeout_s)
            guard.start(job.timeout_s)
            return _read_state(conn, guard, job, budget, result)
        return result
    finally:
        conn.close()
