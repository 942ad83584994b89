"""Column types and helpers the tables share: `UTCDateTime`, and `ts` for a timestamp
column. Every timestamp is stored as UTC and read back timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime that only accepts aware datetimes, stores UTC and returns aware UTC.

    PostgreSQL keeps it as timestamptz; SQLite, which has no zones, as naive UTC text.
    """

    # Alembic autogenerate names a column type by its module: the migrations (and their
    # template, which imports leadops.models) call it leadops.models.UTCDateTime.
    __module__ = "leadops.models"

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"refusing to store naive datetime {value.isoformat()}")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def ts(*, nullable: bool = True, index: bool = False) -> Any:
    """A timestamp column (UTCDateTime), nullable and unindexed unless told otherwise."""
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)
