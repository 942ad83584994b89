"""Drain the contact outbox to HubSpot: POST /crm/v3/objects/contacts/batch/update,
`{"inputs": [{"id": <contact id>, "properties": {...}}]}`, at most 100 inputs.

HubSpot answers 200 (all updated) or 207 with `errors` whose `context.ids` name the
contacts it did not update; a 4xx for the whole batch (e.g. a contact deleted or merged
away) is retried one contact at a time, so one bad contact does not hold the rest, and
the refused one is marked failed (not retried until its values change). An update sets
properties to fixed values, so it is idempotent: a batch that timed out after it left is
safe to send again, and the client does. An outage (still failing after the retries)
leaves the rows pending with `attempts`, `not_before` (5 minutes, doubling, at most 6
hours) and `last_error`, and ends the pass: nothing is lost, and what was confirmed is
recorded as written so it is never sent again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.crm.config import CrmConfig
from leadops.models import CRM_CONTACTS
from leadops.providers.hubspot import HubSpotClient, HubSpotError, HubSpotRefused

log = logging.getLogger("leadops.crm.writeback")

BATCH_UPDATE = "/crm/v3/objects/contacts/batch/update"
MAX_BACKOFF = timedelta(hours=6)


@dataclass
class DrainReport:
    batches: int = 0
    written: int = 0
    failed: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)


def _due(engine: Engine, now: datetime, limit: int) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(
                    CRM_CONTACTS.c.id,
                    CRM_CONTACTS.c.crm_id,
                    CRM_CONTACTS.c.pending,
                    CRM_CONTACTS.c.attempts,
                )
                .where(
                    CRM_CONTACTS.c.status == "pending",
                    sa.or_(CRM_CONTACTS.c.not_before.is_(None), CRM_CONTACTS.c.not_before <= now),
                )
                .order_by(CRM_CONTACTS.c.id)
                .limit(limit)
            )
        )


def _refused_ids(answer: dict[str, Any]) -> dict[str, str]:
    """Contact id -> HubSpot's message, from a 207 answer's errors."""
    refused: dict[str, str] = {}
    for error in answer.get("errors") or []:
        for crm_id in (error.get("context") or {}).get("ids") or []:
            refused[str(crm_id)] = str(error.get("message") or error.get("category"))[:300]
    return refused


def _send(client: HubSpotClient, rows: list[Any]) -> dict[str, str]:
    """Send one batch; the contacts HubSpot refused, with why. Raises HubSpotError on an
    outage (nothing known written)."""
    body = {"inputs": [{"id": r.crm_id, "properties": r.pending} for r in rows]}
    try:
        return _refused_ids(client.request("POST", BATCH_UPDATE, body))
    except HubSpotRefused as exc:
        if len(rows) == 1:
            return {rows[0].crm_id: str(exc)[:300]}
    refused: dict[str, str] = {}
    for row in rows:  # one at a time: find the contact HubSpot refuses
        refused.update(_send(client, [row]))
    return refused


def _record(engine: Engine, rows: list[Any], refused: dict[str, str], now: datetime) -> None:
    written = [{"row_id": r.id, "sent": r.pending} for r in rows if r.crm_id not in refused]
    failed = [{"row_id": r.id, "error": refused[r.crm_id]} for r in rows if r.crm_id in refused]
    with engine.begin() as connection:
        if written:
            connection.execute(
                CRM_CONTACTS.update()
                .where(CRM_CONTACTS.c.id == sa.bindparam("row_id"))
                .values(
                    status="idle",
                    written=sa.bindparam("sent"),
                    written_at=now,
                    pending=None,
                    attempts=0,
                    not_before=None,
                    last_error=None,
                ),
                written,
            )
        if failed:
            connection.execute(
                CRM_CONTACTS.update()
                .where(CRM_CONTACTS.c.id == sa.bindparam("row_id"))
                .values(
                    status="failed",
                    attempts=CRM_CONTACTS.c.attempts + 1,
                    last_error=sa.bindparam("error"),
                ),
                failed,
            )


def _defer(engine: Engine, rows: list[Any], error: str, now: datetime, config: CrmConfig) -> None:
    first = timedelta(minutes=config.retry_minutes)
    params = [
        {
            "row_id": r.id,
            "attempts": r.attempts + 1,
            "not_before": now + min(first * 2 ** min(r.attempts, 20), MAX_BACKOFF),
        }
        for r in rows
    ]
    with engine.begin() as connection:
        connection.execute(
            CRM_CONTACTS.update()
            .where(CRM_CONTACTS.c.id == sa.bindparam("row_id"))
            .values(
                attempts=sa.bindparam("attempts"),
                not_before=sa.bindparam("not_before"),
                last_error=error[:500],
            ),
            params,
        )


def drain(
    engine: Engine, client: HubSpotClient, config: CrmConfig, *, now: datetime
) -> DrainReport:
    """Send the due pending contacts in batches until none is left (or the pass's
    `max_batches`), recording each batch as it is confirmed."""
    report = DrainReport()
    size = config.writeback.batch_size
    for _ in range(config.writeback.max_batches):
        rows = _due(engine, now, size)
        if not rows:
            break
        try:
            refused = _send(client, rows)
        except HubSpotError as exc:
            _defer(engine, rows, str(exc), now, config)
            report.deferred += len(rows)
            report.errors.append(str(exc))
            log.error("HubSpot write-back stopped; %d contacts stay queued: %s", len(rows), exc)
            break
        _record(engine, rows, refused, now)
        report.batches += 1
        report.written += len(rows) - len(refused)
        report.failed += len(refused)
        for crm_id, why in refused.items():
            log.warning("HubSpot refused contact %s: %s", crm_id, why)
    return report
