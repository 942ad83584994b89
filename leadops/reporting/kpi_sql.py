"""SQL pieces the KPI queries share, written once for SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from leadops.models import SENT_TOUCH_STATUSES

SENT = [str(status) for status in SENT_TOUCH_STATUSES]


def seconds(expr: Any, dialect: str) -> Any:
    """Seconds since the epoch of a timestamp column, in the database's own SQL."""
    if dialect == "postgresql":
        return sa.func.extract("epoch", expr)
    return sa.func.julianday(expr) * 86400.0


def utc_day(expr: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.func.date(sa.func.timezone("UTC", expr))
    return sa.func.date(expr)
