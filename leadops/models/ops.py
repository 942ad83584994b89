"""Operations tables: pass marks of incremental passes over large tables, and dead
letters (inputs a pipeline set aside so the rest of its batch could go on)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from leadops.models.types import ts
from leadops.models.vocab import DeadLetterStatus


class PassMark(SQLModel, table=True):
    """How far a periodic pass over a large table has got (e.g. the rescore run's no-opens
    rule): the `now` it last ran at, the last ledger id it had seen, and the settings it
    ran with. The next run looks only at what changed since; none: a full pass."""

    __tablename__ = "pass_marks"

    name: str = Field(primary_key=True, max_length=64)
    at: datetime = ts(nullable=False)
    last_id: int = 0
    detail: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)


class DeadLetter(SQLModel, table=True):
    """An input that failed to apply, with its error and time; one row per item (`key`).

    The item itself is left untouched by the failed attempt (rolled back) and is not picked
    up again until a retry: an inbox event or touch is marked `dead_letter`, an escalation
    keeps what `escalate()` needs in `payload`."""

    __tablename__ = "dead_letters"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=250, unique=True)  # "inbox:12", "touch:7", "escalation:..."
    item: str = Field(max_length=20)
    item_id: int | None = Field(default=None, index=True)
    stage: str = Field(max_length=20)  # rescore, dispatch, escalation
    status: str = Field(default=DeadLetterStatus.OPEN, max_length=20, index=True)
    error: str
    payload: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    failures: int = 1
    first_failed_at: datetime = ts(nullable=False)
    last_failed_at: datetime = ts(nullable=False)
    retried_at: datetime | None = ts()
    retries: int = 0


# Core table handles, for set-based statements that bypass the ORM's per-object overhead.
PASS_MARKS = cast(sa.Table, PassMark.__table__)  # type: ignore[attr-defined]
DEAD_LETTERS = cast(sa.Table, DeadLetter.__table__)  # type: ignore[attr-defined]
