"""Applying the webhook inbox to leads: pending events, oldest first, a batch per
transaction; an event that fails to apply is rolled back alone and set aside as a dead
letter, and the others apply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops import deadletters
from leadops.core.bulk import among, bulk_update, execute_many
from leadops.delivery.suppression import lift_sunset
from leadops.engagement.effects import Batch, CapHistory, apply_row
from leadops.engagement.report import RescoreReport
from leadops.engagement.resolve import event_time, lookup
from leadops.engagement.scoring import ScoringConfig
from leadops.engagement.status import raise_status
from leadops.models import INBOX, LEADS, SCORE_LEDGER, DeadLetterItem, InboxStatus
from leadops.models.vocab import LeadStatus, SuppressionReason

INBOX_BATCH = 2000


def _update_activity(connection: Connection, column: str, values: dict[int, datetime]) -> None:
    """Move each lead's activity column forward to its value (never back)."""
    if not values:
        return
    current = LEADS.c[column]
    execute_many(
        connection,
        sa.update(LEADS)
        .where(
            LEADS.c.id == sa.bindparam("lid"),
            sa.or_(current.is_(None), current < sa.bindparam("value")),
        )
        .values({column: sa.bindparam("value")}),
        [{"lid": lead_id, "value": at} for lead_id, at in values.items()],
    )


def _lift_sunset(connection: Connection, lead_ids: dict[int, datetime], now: datetime) -> None:
    """Lift the sunset suppression of the leads that engaged (only those that have one:
    most batches have none)."""
    c = LEADS.c
    sunset = [
        c[f"{channel}_suppression_reason"] == SuppressionReason.SUNSET
        for channel in ("email", "whatsapp", "sms")
    ]
    ids = connection.execute(
        sa.select(c.id).where(among(connection.dialect.name, c.id, lead_ids), sa.or_(*sunset))
    ).scalars()
    lifting = list(ids)
    if lifting:
        lift_sunset(connection, lifting, now)


def process_inbox(
    engine: Engine, config: ScoringConfig, now: datetime, report: RescoreReport
) -> tuple[set[int], dict[tuple[int, str], datetime]]:
    """Apply every pending inbox event, oldest first, one transaction per batch.

    A batch is applied in a savepoint; only when it fails is it split (halves, then
    halves of those) so that each event that raises is rolled back alone and set aside as
    a dead letter, and the others apply. Returns the leads whose score may have changed
    and the hand-raises seen."""
    touched: set[int] = set()
    hand_raised: dict[tuple[int, str], datetime] = {}
    caps = CapHistory(config)
    i = INBOX.c
    while True:
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                # Take SQLite's write lock before reading: two passes at once (the fast
                # path and the every-minute pass) then never read the same pending
                # events; the second waits for the first's batch and reads what is left.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            query = (
                sa.select(i.id, i.source, i.kind, i.payload, i.received_at)
                .where(i.status == InboxStatus.PENDING)
                .order_by(i.id)
                .limit(INBOX_BATCH)
            )
            if connection.dialect.name == "postgresql":
                # Concurrent runs (the every-minute inbox pass and the 5-minute rescore, or
                # several workers) take disjoint batches.
                query = query.with_for_update(skip_locked=True)
            rows = connection.execute(query).all()
            if not rows:
                break
            for part in _apply_isolated(connection, config, caps, now, rows):
                _merge(report, part.report)
                touched |= part.touched
                for key_, at in part.hand_raised.items():
                    hand_raised.setdefault(key_, at)
    return touched, hand_raised


@dataclass
class _Applied:
    """What applying some inbox rows did, kept only once their savepoint is released."""

    report: RescoreReport
    touched: set[int]
    hand_raised: dict[tuple[int, str], datetime]


def _merge(report: RescoreReport, part: RescoreReport) -> None:
    report.events.update(part.events)
    report.ignored.update(part.ignored)
    report.unknown_site_types.update(part.unknown_site_types)
    report.ledger_rows += part.ledger_rows
    report.suppressed.update(part.suppressed)
    report.sequences_stopped.update(part.sequences_stopped)
    report.dead_letters += part.dead_letters


def _apply_isolated(
    connection: Connection,
    config: ScoringConfig,
    caps: CapHistory,
    now: datetime,
    rows: Sequence[Any],
) -> list[_Applied]:
    """Apply `rows` in a savepoint; when that fails, each half on its own, down to the
    single events that fail, which become dead letters."""
    try:
        with connection.begin_nested():
            return [_apply_rows(connection, config, caps, now, rows)]
    except Exception as exc:
        if deadletters.must_raise(exc):
            raise
        if len(rows) > 1:
            middle = len(rows) // 2
            return [
                *_apply_isolated(connection, config, caps, now, rows[:middle]),
                *_apply_isolated(connection, config, caps, now, rows[middle:]),
            ]
        return [_dead_letter(connection, rows[0], exc, now)]


def _dead_letter(connection: Connection, row: Any, exc: Exception, now: datetime) -> _Applied:
    error = deadletters.describe(exc)
    with connection.begin_nested():
        connection.execute(
            sa.update(INBOX)
            .where(INBOX.c.id == row.id)
            .values(status=InboxStatus.DEAD_LETTER, result=error[:300], processed_at=now)
        )
        deadletters.record(
            connection,
            item=DeadLetterItem.INBOX,
            item_id=row.id,
            stage="rescore",
            error=error,
            payload={"source": row.source, "kind": row.kind},
            now=now,
        )
    part = RescoreReport(now=now)
    part.dead_letters = 1
    return _Applied(part, set(), {})


def _apply_rows(
    connection: Connection,
    config: ScoringConfig,
    caps: CapHistory,
    now: datetime,
    rows: Sequence[Any],
) -> _Applied:
    """Apply these inbox rows and mark them processed or ignored (all or nothing)."""
    report = RescoreReport(now=now)
    found = lookup(connection, rows)
    caps.refresh(connection, found.leads, min(event_time(row) for row in rows))
    batch = Batch(connection, config, now, report, caps)
    updates = []
    for row in rows:
        done = apply_row(batch, row, found)
        processed = done.status == InboxStatus.PROCESSED
        key = f"{row.source}/{row.kind}" if processed else done.result
        (report.events if processed else report.ignored)[key[:80]] += 1
        updates.append(
            {
                "id": row.id,
                "status": done.status,
                "event": done.event,
                "lead_id": done.lead_id,
                "touch_id": done.touch_id,
                "result": done.result[:300],
            }
        )
    if batch.ledger:
        execute_many(connection, SCORE_LEDGER.insert(), batch.ledger)
        report.ledger_rows += len(batch.ledger)
    _update_activity(connection, "last_engaged_at", batch.engaged)
    _lift_sunset(connection, batch.engaged, now)
    for rule in config.pql_events:
        product = [row["lead_id"] for row in batch.ledger if row["rule"] == rule]
        raise_status(connection, product, LeadStatus.PQL, rule, now)
    _update_activity(connection, "last_inbound_at", batch.inbound)
    bulk_update(connection, INBOX, updates, shared={"processed_at": now})
    return _Applied(report, batch.touched, batch.hand_raised)
