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

A retry puts an inbox event or a touch back to `pending` (the next rescore or dispatch run
applies it; the failed attempt left nothing behind, so it applies once; a touch whose
lead has left that sequence meanwhile is skipped instead) and runs an escalation again at
once (once per lead, trigger and key). Failing again opens the dead
letter again, with one more failure counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops.core.db import is_transient
from leadops.models import (
    DEAD_LETTERS,
    ENROLLMENTS,
    INBOX,
    TOUCHES,
    DeadLetterItem,
    DeadLetterStatus,
    EnrollmentStatus,
    InboxStatus,
    TouchStatus,
)

if TYPE_CHECKING:
    from leadops.sales.runtime import EscalationRuntime

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


@dataclass(frozen=True)
class RetryResult:
    id: int
    item: str
    item_id: int | None
    outcome: str  # requeued, skipped, escalated, failed, not_retried
    detail: str


class DeadLetterError(LookupError):
    """A retry asked for a dead letter that does not exist."""


def retry(
    engine: Engine,
    ids: Sequence[int] | None,
    now: datetime,
    *,
    escalation_runtime: Callable[[], EscalationRuntime] | None = None,
) -> list[RetryResult]:
    """Retry the given open dead letters (None: every open one); see the module docstring.

    `escalation_runtime` loads routing and channels, only when an escalation is retried."""
    d = DEAD_LETTERS.c
    query = sa.select(DEAD_LETTERS).order_by(d.id)
    if ids is None:
        query = query.where(d.status == DeadLetterStatus.OPEN)
    else:
        query = query.where(d.id.in_(list(ids)))
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    if ids is not None:
        missing = sorted(set(ids) - {r.id for r in rows})
        if missing:
            raise DeadLetterError(f"no dead letter with id {', '.join(map(str, missing))}")
    results = []
    runtime: EscalationRuntime | None = None
    for row in rows:
        if row.status != DeadLetterStatus.OPEN:
            results.append(
                RetryResult(row.id, row.item, row.item_id, "not_retried", f"already {row.status}")
            )
            continue
        if row.item == DeadLetterItem.ESCALATION:
            if runtime is None:
                if escalation_runtime is None:
                    raise ValueError("retrying an escalation needs the escalation runtime")
                runtime = escalation_runtime()
            results.append(_retry_escalation(runtime, row, now))
        else:
            results.append(_requeue(engine, row, now))
    return results


def _mark_retried(connection: Connection, row_id: int, now: datetime) -> None:
    d = DEAD_LETTERS.c
    connection.execute(
        sa.update(DEAD_LETTERS)
        .where(d.id == row_id, d.status == DeadLetterStatus.OPEN)
        .values(status=DeadLetterStatus.RETRIED, retried_at=now, retries=d.retries + 1)
    )


def _requeue(engine: Engine, row: Any, now: datetime) -> RetryResult:
    """Put a dead-lettered inbox event or touch back to pending (only if it still is one)."""
    if row.item == DeadLetterItem.INBOX:
        table = INBOX
        statement = (
            sa.update(INBOX)
            .where(INBOX.c.id == row.item_id, INBOX.c.status == InboxStatus.DEAD_LETTER)
            .values(status=InboxStatus.PENDING, result=None, processed_at=None, lead_id=None)
        )
        after = "the next rescore (or inbox pass) applies it"
    else:
        table = TOUCHES
        t, e = TOUCHES.c, ENROLLMENTS.c
        active = (
            sa.select(e.id)
            .where(e.id == t.enrollment_id, e.status == EnrollmentStatus.ACTIVE)
            .exists()
        )
        with engine.begin() as connection:
            # The lead left the sequence meanwhile (another campaign, escalated, stopped):
            # the touch is skipped for good, never sent.
            ended = connection.execute(
                sa.update(TOUCHES)
                .where(t.id == row.item_id, t.status == TouchStatus.DEAD_LETTER, ~active)
                .values(status=TouchStatus.SKIPPED, hold_reason="enrollment_ended", updated_at=now)
            ).rowcount
            if ended:
                _mark_retried(connection, row.id, now)
                return RetryResult(
                    row.id,
                    row.item,
                    row.item_id,
                    "skipped",
                    "its enrollment has ended: skipped, never sent",
                )
        statement = (
            sa.update(TOUCHES)
            .where(t.id == row.item_id, t.status == TouchStatus.DEAD_LETTER)
            .values(
                status=TouchStatus.PENDING,
                hold_reason=None,
                error=None,
                not_before=now,
                claim_token=None,
                lease_until=None,
                updated_at=now,
            )
        )
        after = "the next dispatch run decides it again"
    with engine.begin() as connection:
        requeued = connection.execute(statement).rowcount
        if not requeued:
            status = connection.execute(
                sa.select(table.c.status).where(table.c.id == row.item_id)
            ).scalar_one_or_none()
            return RetryResult(
                row.id,
                row.item,
                row.item_id,
                "not_retried",
                f"{row.item} {row.item_id} is {status or 'gone'}, not a dead letter",
            )
        _mark_retried(connection, row.id, now)
    return RetryResult(row.id, row.item, row.item_id, "requeued", f"pending again: {after}")


def _retry_escalation(runtime: EscalationRuntime, row: Any, now: datetime) -> RetryResult:
    from leadops.sales.escalation import escalate

    p = row.payload
    if "reroute" in p:  # the SLA check tries every minute by itself
        with runtime.engine.begin() as connection:
            _mark_retried(connection, row.id, now)
        return RetryResult(
            row.id, row.item, row.item_id, "requeued", "the every-minute SLA check re-routes it"
        )
    try:
        result = escalate(
            runtime.engine,
            int(p["lead_id"]),
            p["trigger"],
            p["trigger_key"],
            int(p["score"]),
            p["reasons"],
            now,
            runtime=runtime,
        )
    except Exception as exc:
        if must_raise(exc):
            raise
        error = describe(exc)
        with runtime.engine.begin() as connection:
            record(
                connection,
                item=DeadLetterItem.ESCALATION,
                item_id=row.item_id,
                stage=row.stage,
                error=error,
                payload=p,
                now=now,
                key=row.key,
            )
        return RetryResult(row.id, row.item, row.item_id, "failed", error)
    with runtime.engine.begin() as connection:
        _mark_retried(connection, row.id, now)
    what = "escalated" if result.created else "not needed"
    return RetryResult(
        row.id, row.item, row.item_id, "escalated", f"{what}: {result.rule} {result.detail}"
    )
