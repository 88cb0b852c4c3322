"""Comparing two query results the way our evaluation defines it (published in the README and reports).

Results are multisets of rows; row order matters only when the gold query orders its rows; numbers
compare with a tolerance that absorbs float noise only (relative FLOAT_REL_TOL, absolute FLOAT_ABS_TOL;
two integers compare exactly); NULL equals NULL; column names and column order are ignored; the lenient
mode lets the prediction carry extra columns as long as a projection of it matches. DML/DDL answers
compare the tables after the statement.

A result whose rows were cut (over max_rows or the byte budget) never compares equal on the rows kept:
the full row counts must agree, and then the digests of every row (see RowDigest) decide. Where they
cannot decide (floats, or columns that could correspond in several orders), the verdict is UNDECIDED.

Every step is polynomial: column correspondences are a bipartite matching (scipy), and at most
MAX_COLUMN_ASSIGNMENTS of them are tried, each a linear-time multiset comparison.
"""

import math
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from enum import StrEnum
from itertools import chain, islice

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from sqlsft.sql.results import QueryResult, RowDigest

FLOAT_REL_TOL = 1e-9
FLOAT_ABS_TOL = 1e-12
INTEGER_REL_TOL = 1e-12  # an integer against a float: only the float's rounding noise is forgiven
MAX_COLUMN_ASSIGNMENTS = 64  # distinct column correspondences tried (identical columns count once)
MAX_SEARCH_STEPS = 10_000  # steps of the search for them
MAX_MATCHING_ROWS = 2_000  # rows per group for the exact float matching (the sorted check comes first)
MAX_EXACT_MATCHINGS = 2  # column correspondences that may use it (the others: the sorted check only)
MAX_COMPARED_VALUES = 400_000  # values compared over all the column correspondences tried
MAX_GUESS_COMPARISONS = 300_000  # values compared to guess a column order among floats


class Verdict(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    UNDECIDED = "undecided"  # the rows were cut and their digests cannot tell (see the module docstring)


def _combine(*verdicts: Verdict) -> Verdict:
    if Verdict.MISMATCH in verdicts:
        return Verdict.MISMATCH
    return Verdict.UNDECIDED if Verdict.UNDECIDED in verdicts else Verdict.MATCH


# ---------------------------------------------------------------------------------------------------
# Values and rows


def values_equal(a, b, tol: float = FLOAT_REL_TOL) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a_num, b_num = isinstance(a, int | float), isinstance(b, int | float)
    if a_num and b_num:
        if a == b:
            return True
        a_int, b_int = isinstance(a, int), isinstance(b, int)
        if a_int and b_int:
            return False
        rel_tol = INTEGER_REL_TOL if a_int or b_int else tol
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=FLOAT_ABS_TOL)
    if a_num or b_num:
        return False
    return a == b


def _rows_equal(a: Sequence, b: Sequence, tol: float) -> bool:
    return len(a) == len(b) and all(values_equal(x, y, tol) for x, y in zip(a, b, strict=True))


def _sort_key(value):
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, int | float):
        return (1, value, "")
    if isinstance(value, bytes):
        return (3, 0, value.hex())
    return (2, 0, str(value))


def _float_columns(rows: list[tuple]) -> set[int]:
    return {j for j, column in enumerate(zip(*rows, strict=True)) if float in set(map(type, column))}


_NUMBER = object()  # stands for a number in a tolerant column, in the exact part of a row


def _multisets_equal(
    gold: list[tuple], pred: list[tuple], tol: float, ordered: bool, exact_matching: bool = True
) -> bool:
    """Equal as multisets of rows (as sequences when `ordered`), numbers within the tolerance."""
    if len(gold) != len(pred):
        return False
    if ordered:
        return all(_rows_equal(g, p, tol) for g, p in zip(gold, pred, strict=True))
    if not gold:
        return True
    if {len(row) for row in gold} != {len(row) for row in pred}:
        return False
    tolerant = _float_columns(gold) | _float_columns(pred)
    if not tolerant:
        return Counter(gold) == Counter(pred)
    # Rows agree exactly outside the tolerant columns: group them by that part, then match the numbers.
    gold_groups: dict[tuple, list[list]] = defaultdict(list)
    pred_groups: dict[tuple, list[list]] = defaultdict(list)
    for rows, groups in ((gold, gold_groups), (pred, pred_groups)):
        for row in rows:
            key, numbers = [], []
            for j, value in enumerate(row):
                if j in tolerant and isinstance(value, int | float):
                    key.append(_NUMBER)
                    numbers.append(value)
                else:
                    key.append(value)
            groups[tuple(key)].append(numbers)
    if gold_groups.keys() != pred_groups.keys():
        return False
    return all(_numbers_match(gold_groups[key], pred_groups[key], tol, exact_matching) for key in gold_groups)


def _numbers_match(gold: list[list], pred: list[list], tol: float, exact_matching: bool) -> bool:
    """Can each gold number row be paired with its own predicted one, value by value within the tolerance?"""
    if len(gold) != len(pred):
        return False
    gold, pred = sorted(gold), sorted(pred)
    if all(_rows_equal(g, p, tol) for g, p in zip(gold, pred, strict=True)):
        return True
    if len(gold[0]) <= 1 or not exact_matching or len(gold) > MAX_MATCHING_ROWS:
        return False  # one number per row: the sorted pairing is the best there is
    # Near-equal numbers may sort differently on each side: an exact bipartite matching decides. Pairs
    # are narrowed column by column, the column with the most distinct values first.
    g, p = np.array(gold, dtype=float), np.array(pred, dtype=float)
    g_int = np.array([[isinstance(v, int) for v in row] for row in gold])
    p_int = np.array([[isinstance(v, int) for v in row] for row in pred])
    order = sorted(range(g.shape[1]), key=lambda j: -len(set(g[:, j].tolist())))
    rows_g, rows_p = np.indices((len(gold), len(pred))).reshape(2, -1)
    with np.errstate(invalid="ignore", over="ignore"):
        for j in order:
            a, b, a_int, b_int = g[rows_g, j], p[rows_p, j], g_int[rows_g, j], p_int[rows_p, j]
            scale = np.maximum(np.abs(a), np.abs(b)) * np.where(a_int | b_int, INTEGER_REL_TOL, tol)
            near = (a == b) | (np.abs(a - b) <= np.maximum(scale, FLOAT_ABS_TOL))
            keep = np.where(a_int & b_int, a == b, near)
            rows_g, rows_p = rows_g[keep], rows_p[keep]
            if len(np.unique(rows_g)) < len(gold):
                return False  # a gold row with no partner left
    close = csr_matrix((np.ones(len(rows_g), dtype=bool), (rows_g, rows_p)), shape=(len(gold), len(pred)))
    matched = maximum_bipartite_matching(close, perm_type="column")
    return bool((matched >= 0).all())


# ---------------------------------------------------------------------------------------------------
# Which predicted column stands for which gold column


def _sorted_columns(rows: list[tuple], width: int) -> list[list]:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
    return [sorted(column, key=_sort_key) for column in columns]


def _columns_equal(a: list, b: list, tol: float) -> bool:
    return a == b or (len(a) == len(b) and all(values_equal(x, y, tol) for x, y in zip(a, b, strict=True)))


def _identity_classes(rows: list[tuple], width: int) -> list[int]:
    """For each column, the first column holding exactly the same values row by row."""
    first: dict[tuple, int] = {}
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
    return [first.setdefault(column, j) for j, column in enumerate(columns)]


def _row_context_signatures(rows: list[tuple], width: int) -> list[Counter]:
    """Per column: the multiset of (its value, the row's values in any order).

    Column order does not change a row's values, so a predicted column can stand for a gold one only if
    their signatures agree: this tells apart columns that hold the same values in different rows. Only
    for exact values (a float's noise would change the signature) and equal widths.
    """
    row_keys = [tuple(sorted(row, key=_sort_key)) for row in rows]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
    return [Counter(zip(column, row_keys, strict=True)) for column in columns]


def _has_full_matching(allowed: np.ndarray) -> bool:
    """Can every row (gold column) of `allowed` get its own column (predicted column)?"""
    if allowed.shape[0] == 0:
        return True
    if allowed.shape[0] > allowed.shape[1] or not allowed.any(axis=1).all():
        return False
    matched = maximum_bipartite_matching(csr_matrix(allowed), perm_type="column")
    return bool((matched >= 0).all())


def _column_assignments(allowed: np.ndarray, gold_class: list[int], pred_class: list[int]) -> Iterator[tuple]:
    """Injective maps gold column -> predicted column within `allowed`, one per class of equivalent maps.

    Maps that differ only by swapping identical gold columns, or identical predicted columns, give the
    same comparison: within a class of identical gold columns the predicted classes chosen never
    decrease, and within a class of identical predicted columns the lowest unused one is taken. A
    matching check at each step prunes branches that cannot be completed.
    """
    n_gold, n_pred = allowed.shape
    used = np.zeros(n_pred, dtype=bool)
    chosen: list[int] = []
    steps = 0

    def walk(g: int) -> Iterator[tuple]:
        nonlocal steps
        if g == n_gold:
            yield tuple(chosen)
            return
        floor = max((pred_class[chosen[h]] for h in range(g) if gold_class[h] == gold_class[g]), default=-1)
        for p in np.flatnonzero(allowed[g] & ~used):
            steps += 1
            if steps > MAX_SEARCH_STEPS:
                return
            if pred_class[p] < floor or any(not used[q] and pred_class[q] == pred_class[p] for q in range(p)):
                continue
            used[p] = True
            if _has_full_matching(allowed[g + 1 :][:, ~used]):
                chosen.append(int(p))
                yield from walk(g + 1)
                chosen.pop()
            used[p] = False

    yield from walk(0)


def _rows_by_content(rows: list[tuple]) -> list[tuple]:
    """Rows sorted by their values in any order (numbers rounded to 6 digits): columns' order aside,
    equal results put equal rows at the same places, float noise aside."""

    def coarse(value):
        return float(f"{value:.6g}") if isinstance(value, int | float) else value

    return sorted(rows, key=lambda row: sorted(_sort_key(coarse(v)) for v in row))


def _likely_assignment(
    gold: list[tuple], pred: list[tuple], allowed: np.ndarray, tol: float
) -> Iterator[tuple]:
    """The column correspondence under which the most values agree once rows are paired by content.

    Floats leave the signatures out (see _row_context_signatures); this finds the order of columns that
    hold the same values in other rows in one guess, tried before the search.
    """
    paired = list(zip(_rows_by_content(gold), _rows_by_content(pred), strict=True))
    n_gold, n_pred = allowed.shape
    agree = np.array(
        [
            [sum(values_equal(a[g], b[p], tol) for a, b in paired) for p in range(n_pred)]
            for g in range(n_gold)
        ]
    )
    cost = np.where(allowed, -agree, len(paired) + 1)
    gold_columns, pred_columns = linear_sum_assignment(cost)
    if allowed[gold_columns, pred_columns].all():
        yield tuple(int(p) for p in pred_columns[np.argsort(gold_columns)])


def _rows_match_some_columns(
    gold: list[tuple], pred: list[tuple], n_gold: int, n_pred: int, tol: float, ordered: bool
) -> bool:
    if n_gold == n_pred and _multisets_equal(gold, pred, tol, ordered):
        return True
    if n_gold == n_pred and not (_float_columns(gold) or _float_columns(pred)):
        gold_signatures = _row_context_signatures(gold, n_gold)
        pred_signatures = _row_context_signatures(pred, n_pred)
        allowed = np.array([[g == p for p in pred_signatures] for g in gold_signatures], dtype=bool)
    else:
        gold_sorted, pred_sorted = _sorted_columns(gold, n_gold), _sorted_columns(pred, n_pred)
        allowed = np.array(
            [[_columns_equal(g, p, tol) for p in pred_sorted] for g in gold_sorted], dtype=bool
        )
    allowed = allowed.reshape(n_gold, n_pred)
    if not _has_full_matching(allowed):
        return False
    gold_class, pred_class = _identity_classes(gold, n_gold), _identity_classes(pred, n_pred)
    tries = max(
        MAX_EXACT_MATCHINGS, min(MAX_COLUMN_ASSIGNMENTS, MAX_COMPARED_VALUES // max(1, len(gold) * n_gold))
    )
    assignments = islice(_column_assignments(allowed, gold_class, pred_class), tries)
    if n_gold == n_pred and len(gold) * n_gold * n_pred <= MAX_GUESS_COMPARISONS:
        assignments = chain(_likely_assignment(gold, pred, allowed, tol), assignments)
    return any(
        _multisets_equal(
            gold, [tuple(row[i] for i in mapping) for row in pred], tol, ordered, n < MAX_EXACT_MATCHINGS
        )
        for n, mapping in enumerate(assignments)
    )


# ---------------------------------------------------------------------------------------------------
# Rows that were cut: counts and digests


def _count_bounds(rows: list[tuple], cut: bool, digest: RowDigest | None) -> tuple[int, float]:
    """(at least, at most) how many rows the statement returned."""
    if digest is not None:
        return digest.row_count, digest.row_count
    if not cut:
        return len(rows), len(rows)
    return len(rows) + 1, math.inf


def _digests_verdict(
    gold: tuple[list[tuple], bool, RowDigest | None],
    pred: tuple[list[tuple], bool, RowDigest | None],
    n_gold: int,
    n_pred: int,
    ordered: bool,
    fixed_columns: bool = False,
) -> Verdict:
    """The verdict on rows of which one side (at least) was cut: counts first, then the digests.

    `fixed_columns`: the columns correspond in their own order (a table read back), not in any order.
    """
    (gold_rows, gold_cut, gold_digest), (pred_rows, pred_cut, pred_digest) = gold, pred
    gold_low, gold_high = _count_bounds(gold_rows, gold_cut, gold_digest)
    pred_low, pred_high = _count_bounds(pred_rows, pred_cut, pred_digest)
    if gold_high < pred_low or pred_high < gold_low:
        return Verdict.MISMATCH
    if gold_digest is None or pred_digest is None:
        return Verdict.UNDECIDED
    if n_gold == n_pred:
        if ordered and gold_digest.sequence_hash == pred_digest.sequence_hash:
            return Verdict.MATCH
        if not ordered and gold_digest.rows_hash == pred_digest.rows_hash:
            return Verdict.MATCH
    # A column pair can correspond if a float in either makes its hashes inconclusive, or they agree.
    allowed = np.array(
        [
            [
                g_float or p_float or g == p
                for p, p_float in zip(pred_digest.column_hashes, pred_digest.float_columns, strict=True)
            ]
            for g, g_float in zip(gold_digest.column_hashes, gold_digest.float_columns, strict=True)
        ],
        dtype=bool,
    ).reshape(n_gold, n_pred)
    if fixed_columns:
        allowed = allowed & np.eye(n_gold, n_pred, dtype=bool)
    if not _has_full_matching(allowed):
        return Verdict.MISMATCH
    if any(gold_digest.float_columns) or any(pred_digest.float_columns):
        return Verdict.UNDECIDED  # floats compare with a tolerance: different row hashes prove nothing
    if n_gold == n_pred and (fixed_columns or _only_identity(allowed)):
        return Verdict.MISMATCH  # the columns can only correspond in their own order, whose hash differs
    return Verdict.UNDECIDED


def _only_identity(allowed: np.ndarray) -> bool:
    """Is the identity the one full matching of the square `allowed`?"""
    if not allowed.diagonal().all():
        return False
    for g in range(allowed.shape[0]):
        without = allowed.copy()
        without[g, g] = False
        if _has_full_matching(without):
            return False
    return True


# ---------------------------------------------------------------------------------------------------
# Whole results


def _states_verdict(gold: QueryResult, pred: QueryResult, tol: float) -> Verdict:
    if gold.state is None or pred.state is None:
        return Verdict.MATCH
    gold_names = {name.lower(): name for name in gold.state}
    pred_names = {name.lower(): name for name in pred.state}
    if gold_names.keys() != pred_names.keys():
        return Verdict.MISMATCH
    verdicts = []
    for lower, gold_name in gold_names.items():
        pred_name = pred_names[lower]
        gold_rows, pred_rows = gold.state[gold_name], pred.state[pred_name]
        gold_cut, pred_cut = gold_name in gold.truncated_tables, pred_name in pred.truncated_tables
        if not (gold_cut or pred_cut):
            equal = _multisets_equal(gold_rows, pred_rows, tol, False)
            verdicts.append(Verdict.MATCH if equal else Verdict.MISMATCH)
            continue
        gold_digest = (gold.state_digests or {}).get(gold_name)
        pred_digest = (pred.state_digests or {}).get(pred_name)
        widths = [len(d.column_hashes) for d in (gold_digest, pred_digest) if d is not None]
        if len(set(widths)) > 1:
            verdicts.append(Verdict.MISMATCH)
            continue
        width = widths[0] if widths else 0
        verdicts.append(
            _digests_verdict(
                (gold_rows, gold_cut, gold_digest),
                (pred_rows, pred_cut, pred_digest),
                width,
                width,
                ordered=False,
                fixed_columns=True,
            )
        )
    return _combine(*verdicts)


def compare_results(
    gold: QueryResult,
    predicted: QueryResult,
    *,
    ordered: bool = False,
    float_tol: float = FLOAT_REL_TOL,
    allow_extra_columns: bool = False,
) -> Verdict:
    """MATCH, MISMATCH, or UNDECIDED (rows were cut and their digests cannot tell): see results_match."""
    if not (gold.ok and predicted.ok):
        return Verdict.MISMATCH
    n_gold, n_pred = len(gold.columns), len(predicted.columns)
    if n_pred < n_gold or (n_pred != n_gold and not allow_extra_columns):
        return Verdict.MISMATCH
    state = _states_verdict(gold, predicted, float_tol)
    if state == Verdict.MISMATCH:
        return state
    if gold.truncated or predicted.truncated:
        rows = _digests_verdict(
            (gold.rows, gold.truncated, gold.digest),
            (predicted.rows, predicted.truncated, predicted.digest),
            n_gold,
            n_pred,
            ordered,
        )
    elif len(gold.rows) != len(predicted.rows):
        rows = Verdict.MISMATCH
    elif n_gold == 0:
        rows = Verdict.MATCH
    else:
        equal = _rows_match_some_columns(gold.rows, predicted.rows, n_gold, n_pred, float_tol, ordered)
        rows = Verdict.MATCH if equal else Verdict.MISMATCH
    return _combine(state, rows)


def results_match(
    gold: QueryResult,
    predicted: QueryResult,
    *,
    ordered: bool = False,
    float_tol: float = FLOAT_REL_TOL,
    allow_extra_columns: bool = False,
) -> bool:
    """Does the predicted result equal the gold one? (multisets, tolerance, columns matched by values)

    `ordered`: compare row order too (pass `query_orders_rows(gold_sql)`). `allow_extra_columns`: the
    lenient score, where the prediction may return more columns than the gold. When both results carry
    `state`, the tables after the statement must match as well (how DML answers are scored). A result
    whose rows were cut is equal only when its digest proves it (compare_results says UNDECIDED else).
    """
    verdict = compare_results(
        gold, predicted, ordered=ordered, float_tol=float_tol, allow_extra_columns=allow_extra_columns
    )
    return verdict == Verdict.MATCH
