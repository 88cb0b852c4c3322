"""What a sandboxed run returns, and the limits it ran under: plain data, passed between processes."""

from dataclasses import dataclass, field
from enum import StrEnum

MIB = 1 << 20


class QueryStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    DENIED = "denied"
    SCHEMA_ERROR = "schema_error"


class Phase(StrEnum):
    """The timed phases of a sandbox job: each gets the whole time limit, and a kill if it overruns it."""

    SCHEMA = "schema"
    STATEMENT = "statement"
    TABLES = "tables"  # reading the tables back after the statement
    SQLGLOT = "sqlglot"  # normalizing and parsing the predicted SQL for scoring


@dataclass(frozen=True)
class Limits:
    """The limits of one sandboxed run (published in the scoring rules and the README)."""

    heap_bytes: int = 512 * MIB  # SQLite's heap in the sandbox process (hard_heap_limit)
    address_space_bytes: int = 2048 * MIB  # the whole sandbox process (RLIMIT_AS): Python, SQLite, results
    value_bytes: int = 1 * MIB  # one string or blob (SQLITE_LIMIT_LENGTH)
    sql_bytes: int = 1 * MIB  # the statement that runs (and each schema statement)
    schema_bytes: int = 16 * MIB  # the whole schema text
    db_pages: int = 16_384  # x 4 KiB pages = 64 MiB per database (main and temp)
    result_bytes: int = (
        32 * MIB
    )  # rows kept in memory and sent back, over the result and the tables read back


DEFAULT_LIMITS = Limits()


@dataclass
class RowDigest:
    """Every row of a result in a few numbers: what lets two results be compared beyond the rows kept.

    Row hashes are of each row's exact text (an integral float as the integer it equals), 64-bit, the
    same in every sandbox process: equal hashes mean equal rows; different hashes prove a difference only
    where no float is involved (floats compare with a tolerance). Column hashes say which columns could
    correspond (those of columns holding floats say nothing).
    """

    row_count: int
    rows_hash: int  # order-independent: the sum of the rows' hashes, mod 2**64
    sequence_hash: str  # order-dependent: BLAKE2b over the rows in the order they came
    column_hashes: list[int]  # order-independent, one per column: the sum of its values' hashes
    float_columns: list[bool]  # columns holding a float anywhere


@dataclass
class QueryJob:
    """One run_query call, as the sandbox process receives it."""

    schema: str
    query: str
    timeout_s: float
    max_rows: int
    include_state: bool
    read_dialect: str | None
    digest: bool
    limits: Limits


@dataclass
class QueryResult:
    status: str  # a QueryStatus
    columns: list[str]
    rows: list[tuple]
    error: str | None = None
    truncated: bool = False  # more rows than max_rows (or than the byte budget) came back: `rows` is a prefix
    elapsed_s: float = 0.0
    # table -> rows after the statement (when include_state=True); for scoring DML/DDL answers
    state: dict[str, list[tuple]] | None = None
    # Rows the statement returned in all: known when nothing was cut, or when digest=True.
    row_count: int | None = None
    # digest=True: every row the statement returned, in a few numbers (see RowDigest).
    digest: RowDigest | None = None
    # Tables read back whose rows were cut (like `truncated`), and with digest=True every table's digest.
    truncated_tables: list[str] = field(default_factory=list)
    state_digests: dict[str, RowDigest] | None = None

    @property
    def ok(self) -> bool:
        return self.status == QueryStatus.OK
