"""The query kinds of the builtin data set, one file per complexity bucket.

A kind is a function `build(rng, data)` that writes a gold query over generated table rows, or returns None
when those rows do not suit it (the generator then draws again), registered with its question phrasings and
its explanation by `@query_kind`. `needs` names what its table must have (a label, categories, numbers,
additive numbers, dates, a reference); `child_needs`, set for kinds over a parent and its child table, what
the child must have. A build returns (sql, the names its phrasings use, the phrasing variant).

The generator draws a bucket, then a kind of that bucket in registration order: a new kind goes at the end
of its bucket's file, or the rows of every seed change (the order of the buckets' imports does not matter).
"""

from collections.abc import Callable
from dataclasses import dataclass

# gretel's own labels and descriptions
BASIC, AGGREGATION, SINGLE_JOIN, SUBQUERIES = "basic SQL", "aggregation", "single join", "subqueries"
COMPLEXITY_DESCRIPTIONS = {
    BASIC: "basic SQL with a simple select statement",
    AGGREGATION: "aggregation functions (COUNT, SUM, AVG, MIN, MAX, etc.), and HAVING clause",
    SINGLE_JOIN: "only one join (specify inner, outer, cross)",
    SUBQUERIES: "subqueries, including correlated and nested subqueries",
}
ANALYTICS, MANIPULATION = "analytics and reporting", "data manipulation"
TASK_DESCRIPTIONS = {
    ANALYTICS: "generating reports, dashboards, and analytical insights",
    MANIPULATION: "inserting, updating, or deleting records",
}


@dataclass(frozen=True)
class QueryKind:
    name: str
    bucket: str  # basic | aggregation | join | subquery | dml
    complexity: str
    needs: tuple[str, ...]  # what the (parent) table must have
    child_needs: tuple[str, ...] | None  # set for kinds over a parent and its child table
    questions: dict[str, tuple[str, ...]]  # variant -> phrasings
    explanations: dict[str, str]  # variant -> explanation
    build: Callable
    weight: float

    @property
    def task_type(self) -> str:
        return MANIPULATION if self.bucket == "dml" else ANALYTICS


QUERY_KINDS: list[QueryKind] = []


def query_kind(name, bucket, complexity, questions, explanation, needs=(), child_needs=None, weight=1.0):
    def register(build):
        q = questions if isinstance(questions, dict) else {"": questions}
        e = explanation if isinstance(explanation, dict) else dict.fromkeys(q, explanation)
        QUERY_KINDS.append(QueryKind(name, bucket, complexity, needs, child_needs, q, e, build, weight))
        return build

    return register


# Importing the buckets registers their kinds.
from sqlsft.data.builtin.kinds import aggregation, basic, dml, join, subquery  # noqa: E402, F401
