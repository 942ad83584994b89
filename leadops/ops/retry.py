"""Retrying dead letters (`leadops deadletters retry`), once their cause is fixed.

A retry puts an inbox event or a touch back to `pending` (the next rescore or dispatch run
applies it; the failed attempt left nothing behind, so it applies once; a touch whose
lead has left that sequence meanwhile is skipped instead) and runs an escalation again at
once (once per lead, trigger and key). Failing again opens the dead
letter again, with one more failure counted. Recording and listing dead letters is
leadops.deadletters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops.deadletters import describe, must_raise, record
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
from leadops.models.touch_states import move_touches
from leadops.sales.escalation import escalate
from leadops.sales.runtime import EscalationRuntime


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
                move_touches(
                    TouchStatus.SKIPPED,
                    t.id == row.item_id,
                    ~active,
                    only=[TouchStatus.DEAD_LETTER],
                    hold_reason="enrollment_ended",
                    updated_at=now,
                )
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
        statement = move_touches(
            TouchStatus.PENDING,
            t.id == row.item_id,
            only=[TouchStatus.DEAD_LETTER],
            hold_reason=None,
            error=None,
            not_before=now,
            claim_token=None,
            lease_until=None,
            updated_at=now,
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
