"""How many rows a list query matches before `--limit` cuts it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlmodel import Session


def count_of(session: Session | Connection, query: Any) -> int:
    """The number of rows `query` returns without its order and limit."""
    counted = select(func.count()).select_from(query.order_by(None).limit(None).subquery())
    return int(session.execute(counted).scalar_one())
