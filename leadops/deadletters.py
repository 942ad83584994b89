"""Dead letters: inputs a pipeline could not apply, set aside with their error so the rest of
the batch goes on, and put back by `leadops deadletters retry` once the cause is fixed.

- Rescore and the every-minute inbox pass: an inbox event that raises is rolled back on
  its own (the batch runs in a savepoint and is split only when it fails), marked
  `dead_letter` and recorded here; the other events apply.
- Dispatch: a touch whose contact decision or composition raises is marked `dead_letter`
  before anything is sent for it; it is never sent until it is retried.
- Escalation: a sales-ready lead that cannot be routed or recorded is recorded here with
  what `escalate()` needs, and the every-minute scan leaves it alone until it is retried.
  An escalation past its SLA that cannot be re-routed is recorded too; the SLA check
  tries it again each minute and resolves the dead letter when it succeeds.

Recording, resolving, listing and counting are here, below every stage that records; the
retry itself is leadops.ops.retry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops.core.db import is_transient
from leadops.models import (
    DEAD_LETTERS,
    INBOX,
    TOUCHES,
    DeadLetterItem,
    DeadLetterStatus,
)

log = logging.getLogger("leadops.deadletters")

ERROR_LENGTH = 1000


def describe(exc: BaseException) -> str:
    """The error in one line: its type and message (a database error's driver message,
    without the SQL statement and parameters)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:ERROR_LENGTH]


def must_raise(exc: BaseException) -> bool:
    """Errors that are not the input's fault (the database is locked or unreachable, a
    timeout) are raised, never set aside: the whole run is retried instead."""
    return is_transient(exc) or not isinstance(exc, Exception)


def record(
    connection: Connection,
    *,
    item: DeadLetterItem,
    item_id: int | None,
    stage: str,
    error: str,
    payload: dict[str, Any],
    now: datetime,
    key: str | None = None,
) -> None:
    """Record (or reopen, counting one more failure) the dead letter of one item."""
    key = (key or f"{item}:{item_id}")[:250]
    d = DEAD_LETTERS.c
    log.error("%s set aside by %s: %s", key, stage, error)
    updated = connection.execute(
        sa.update(DEAD_LETTERS)
        .where(d.key == key)
        .values(
            status=DeadLetterStatus.OPEN,
            error=error,
            payload=payload,
            failures=d.failures + 1,
            last_failed_at=now,
        )
    ).rowcount
    if not updated:
        connection.execute(
            sa.insert(DEAD_LETTERS).values(
                key=key,
                item=item,
                item_id=item_id,
                stage=stage,
                status=DeadLetterStatus.OPEN,
                error=error,
                payload=payload,
                failures=1,
                first_failed_at=now,
                last_failed_at=now,
                retries=0,
            )
        )


def resolve(engine: Engine, key: str, now: datetime) -> None:
    """An item a pass tries again by itself succeeded: close its open dead letter."""
    d = DEAD_LETTERS.c
    with engine.begin() as connection:
        connection.execute(
            sa.update(DEAD_LETTERS)
            .where(d.key == key, d.status == DeadLetterStatus.OPEN)
            .values(status=DeadLetterStatus.RESOLVED, retried_at=now)
        )


def open_escalation_leads() -> sa.Select[Any]:
    """Lead ids with an open escalation dead letter (the scan skips them until a retry)."""
    d = DEAD_LETTERS.c
    return sa.select(d.item_id).where(
        d.item == DeadLetterItem.ESCALATION, d.status == DeadLetterStatus.OPEN
    )


def _item_states(connection: Connection, rows: Sequence[Any]) -> dict[tuple[str, int], str]:
    """The current status of each dead letter's inbox event or touch."""
    states: dict[tuple[str, int], str] = {}
    for item, table in ((DeadLetterItem.INBOX, INBOX), (DeadLetterItem.TOUCH, TOUCHES)):
        ids = [r.item_id for r in rows if r.item == item and r.item_id is not None]
        for start in range(0, len(ids), 1000):
            for item_id, status in connection.execute(
                sa.select(table.c.id, table.c.status).where(
                    table.c.id.in_(ids[start : start + 1000])
                )
            ).all():
                states[(item, item_id)] = status
    return states


def list_rows(
    engine: Engine, *, status: str | None = DeadLetterStatus.OPEN, item: str | None = None
) -> list[dict[str, Any]]:
    """Dead letters (open ones by default), oldest first, with their item's current state."""
    d = DEAD_LETTERS.c
    query = sa.select(DEAD_LETTERS).order_by(d.id)
    if status is not None:
        query = query.where(d.status == status)
    if item is not None:
        query = query.where(d.item == item)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
        states = _item_states(connection, rows)
    return [
        {
            "id": r.id,
            "item": r.item,
            "item_id": r.item_id,
            "stage": r.stage,
            "status": r.status,
            "item_status": states.get((r.item, r.item_id), "") if r.item_id is not None else "",
            "failures": r.failures,
            "retries": r.retries,
            "first_failed_at": r.first_failed_at,
            "last_failed_at": r.last_failed_at,
            "error": r.error,
        }
        for r in rows
    ]


def counts(engine: Engine) -> list[dict[str, Any]]:
    """Dead letters per item and status."""
    d = DEAD_LETTERS.c
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(d.item, d.status, sa.func.count(), sa.func.max(d.last_failed_at))
            .group_by(d.item, d.status)
            .order_by(d.item, d.status)
        ).all()
    return [
        {"item": item, "status": status, "count": n, "last_failed_at": last}
        for item, status, n, last in rows
    ]


def open_count(connection: Connection, item: str) -> int:
    d = DEAD_LETTERS.c
    return int(
        connection.execute(
            sa.select(sa.func.count()).where(d.item == item, d.status == DeadLetterStatus.OPEN)
        ).scalar_one()
    )
