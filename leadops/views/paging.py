"""Lists cut by `--limit`: the rows shown, and how many the query matches before the cut."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlmodel import Session


def paged(session: Session | Connection, query: Any, limit: int) -> tuple[list[Any], int]:
    """The rows of `query`, at most `limit` (0: all), and how many it matches in all:
    counted by a second query only when the limit cut the list."""
    rows = list(session.execute(query.limit(limit) if limit else query).all())
    total = count_of(session, query) if limit and len(rows) == limit else len(rows)
    return rows, total


def count_of(session: Session | Connection, query: Any) -> int:
    """The number of rows `query` returns without its order and limit."""
    counted = select(func.count()).select_from(query.order_by(None).limit(None).subquery())
    return int(session.execute(counted).scalar_one())
