"""SQL pieces the KPI queries share, written once for SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from leadops.models import SENT_TOUCH_STATUSES

SENT = [str(status) for status in SENT_TOUCH_STATUSES]
NO_SOURCE = "(none)"  # the group of leads without a source
# Percentiles as exact fractions (numerator, denominator), so ranks stay integers.
MEDIAN = (1, 2)
P90 = (9, 10)


def seconds(expr: Any, dialect: str) -> Any:
    """Seconds since the epoch of a timestamp column, in the database's own SQL."""
    if dialect == "postgresql":
        return sa.func.extract("epoch", expr)
    return sa.func.julianday(expr) * 86400.0


def utc_day(expr: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.func.date(sa.func.timezone("UTC", expr))
    return sa.func.date(expr)


def _int(value: int) -> Any:
    """An integer written into the SQL (typed, so `//` divides integers as integers)."""
    return sa.literal_column(str(int(value)), sa.Integer)


def percentiles(
    value: Any,
    fractions: tuple[tuple[int, int], ...],
    *,
    where: Any,
    key: Any = None,
    select_from: Any = None,
) -> sa.Select[Any]:
    """Rows of ([key,] n, one value per fraction): the count and the percentiles of
    `value` over the rows matching `where`, per `key` (one row for all when None; its n
    is None when no row matches).

    A percentile p is PostgreSQL's percentile_cont(p): at rank p * (n - 1) of the sorted
    values (from 0), interpolated between the two closest ranks, so the median of an
    even count is the mean of the two middle values. Computed with window functions that
    SQLite runs too; each fraction is (numerator, denominator), e.g. MEDIAN or P90.
    """
    values = sa.select(
        *([key.label("k")] if key is not None else []), sa.cast(value, sa.Float).label("v")
    ).where(where)
    if select_from is not None:
        values = values.select_from(select_from)
    d = values.subquery("deltas").c  # each value computed once, then ranked
    partition = [d.k] if key is not None else None
    ranked = sa.select(
        *([d.k] if key is not None else []),
        d.v,
        sa.func.row_number().over(partition_by=partition, order_by=d.v).label("rn"),
        sa.func.count().over(partition_by=partition).label("n"),
    ).subquery("ranked")
    r = ranked.c
    index = r.rn - _int(1)
    columns = []
    for numerator, denominator in fractions:
        position = _int(numerator) * (r.n - _int(1))  # the rank times the denominator
        low = position // _int(denominator)  # integer division: the rank below
        share = sa.cast(position - low * _int(denominator), sa.Float) / float(denominator)
        weight = sa.case((index == low, 1.0 - share), (index == low + _int(1), share), else_=0.0)
        columns.append(sa.func.sum(r.v * weight))
    query = sa.select(*([r.k] if key is not None else []), sa.func.max(r.n), *columns)
    return query.group_by(r.k) if key is not None else query
