"""The webhook inbox: every incoming event stored once, processed later by the rescore run.

Each event gets a deterministic `dedupe_key` (SendGrid sg_event_id, Twilio SID + status,
an email's Message-ID, or a hash of the content), so a provider's retry or a replayed
request is stored once. Refused requests are not stored; they are counted per source and
reason. Bodies are parsed where they come from (providers/sendgrid/events.py and
inbound_parse.py, providers/twilio/events.py, engagement/site.py); the unsubscribe link
and hand-raise forms make their records here.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from leadops.models import INBOX, WEBHOOK_REJECTIONS, InboxStatus
from leadops.providers.inbound import FORM, UNSUBSCRIBE, InboxRecord, digest


def unsubscribe_record(lead_id: int, channel: str, token: str, method: str) -> InboxRecord:
    payload = {"lead_id": lead_id, "channel": channel, "method": method}
    return InboxRecord(UNSUBSCRIBE, "unsubscribe", "u:" + digest(token), payload)


def form_record(
    lead_id: int,
    form: str,
    submission_id: int,
    submission_key: str,
    rule: str,
    answers: Mapping[str, str],
    now: datetime,
) -> InboxRecord:
    """A hand-raise from a web form, for the lead the submission reached; `answers` are
    every field the person sent (their message included), kept for the rep."""
    payload = {
        "lead_id": lead_id,
        "form": form,
        "submission_id": submission_id,
        "occurred_at": now.isoformat(),
        "answers": dict(answers),
    }
    return InboxRecord(FORM, rule, f"form:{form}:{submission_key}"[:200], payload)


def _insert(connection: Connection, table: sa.Table) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    if connection.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {connection.dialect.name}")


# SQLite allows one writer at a time; threads that queue on a lock here are much faster
# than threads that retry on SQLITE_BUSY (its busy handler sleeps between retries).
_SQLITE_WRITER = threading.Lock()


def _writer(engine: Engine) -> AbstractContextManager[Any]:
    return _SQLITE_WRITER if engine.dialect.name == "sqlite" else nullcontext()


def store(engine: Engine, records: Sequence[InboxRecord], now: datetime) -> int:
    """Store records not seen before; return how many were new."""
    if not records:
        return 0
    with _writer(engine), engine.begin() as connection:
        return store_in(connection, records, now)


def store_in(connection: Connection, records: Sequence[InboxRecord], now: datetime) -> int:
    """Store records not seen before within the caller's transaction; return how many."""
    if not records:
        return 0
    rows = [
        {
            "source": r.source,
            "kind": r.kind,
            "dedupe_key": r.dedupe_key,
            "payload": r.payload,
            "received_at": now,
            "status": InboxStatus.PENDING,
        }
        for r in records
    ]
    statement = (
        _insert(connection, INBOX)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(INBOX.c.id)
    )
    return len(connection.execute(statement, rows).all())


def count_rejection(engine: Engine, source: str, reason: str, now: datetime) -> None:
    """Count one refused request (never stored, never processed)."""
    with _writer(engine), engine.begin() as connection:
        statement = _insert(connection, WEBHOOK_REJECTIONS).values(
            source=source, reason=reason, count=1, first_at=now, last_at=now
        )
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["source", "reason"],
                set_={"count": WEBHOOK_REJECTIONS.c["count"] + 1, "last_at": now},
            )
        )
