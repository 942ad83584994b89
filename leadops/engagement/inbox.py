"""The webhook inbox: every incoming event stored once, processed later by the rescore run.

Each event gets a deterministic `dedupe_key` (SendGrid sg_event_id, Twilio SID + status,
or a hash of the content), so a provider's retry or a replayed request is stored once.
Refused requests are not stored; they are counted per source and reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from leadops.core.clock import parse_instant
from leadops.models import INBOX, WEBHOOK_REJECTIONS, InboxStatus

SENDGRID = "sendgrid"
TWILIO_STATUS = "twilio_status"
TWILIO_INBOUND = "twilio_inbound"
UNSUBSCRIBE = "unsubscribe"
SITE = "site"
FORM = "form"  # a hand-raise web form (a demo or contact request)

SENDGRID_EVENTS = frozenset(
    {
        "processed",
        "delivered",
        "deferred",
        "bounce",
        "dropped",
        "open",
        "click",
        "spamreport",
        "unsubscribe",
        "group_unsubscribe",
        "group_resubscribe",
    }
)
SITE_EVENTS = frozenset(
    {
        "page_view",
        "demo_requested",
        "trial_started",
        "appointment_booked",
        "appointment_cancelled",
        "subscribed",
    }
)


# Twilio message statuses a status callback may carry.
TWILIO_STATUSES = frozenset(
    {
        "accepted",
        "scheduled",
        "canceled",
        "queued",
        "sending",
        "sent",
        "failed",
        "delivered",
        "undelivered",
        "receiving",
        "received",
        "read",
    }
)
MAX_ID = 2**31 - 1  # the largest id an INTEGER column holds (PostgreSQL)
_SID = re.compile(r"[A-Za-z0-9]{2,64}")
_DIGITS = re.compile(r"[0-9]{1,19}")
_ERROR_CODE = re.compile(r"[0-9]{1,6}")
_PRICE = re.compile(r"-?[0-9]{1,9}(\.[0-9]{1,12})?")


class BadPayload(ValueError):
    """A request body that is not what the endpoint accepts; the message says where."""


def _json(body: bytes) -> Any:
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(body, parse_constant=no_constants)
    except RecursionError as exc:
        raise BadPayload("body is nested too deeply") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPayload(f"body is not JSON: {exc}") from exc


def _id_field(value: object, where: str) -> None:
    """An id carried in a payload: absent, or a whole number a database column holds."""
    if value is None:
        return
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID:
        return
    if isinstance(value, str) and _DIGITS.fullmatch(value) and int(value) <= MAX_ID:
        return
    raise BadPayload(f"{where} must be a whole number from 0 to {MAX_ID}")


def _text_field(value: object, where: str, limit: int = 2000) -> None:
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise BadPayload(f"{where} must be text of at most {limit} characters")


@dataclass(frozen=True)
class InboxRecord:
    source: str
    kind: str
    dedupe_key: str
    payload: dict[str, Any]


def _digest(*parts: object) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def sendgrid_records(body: bytes) -> list[InboxRecord]:
    """Parse a SendGrid Event Webhook body (a JSON array of event objects)."""
    events = _json(body)
    if not isinstance(events, list):
        raise BadPayload("body must be a JSON array of events")
    records = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise BadPayload(f"event {index} is not a JSON object")
        kind = event.get("event")
        if not isinstance(kind, str) or not kind or len(kind) > 64:
            raise BadPayload(f"event {index} has no 'event' type")
        stamp = event.get("timestamp")
        if not isinstance(stamp, int | float) or isinstance(stamp, bool) or not 0 < stamp < 1e11:
            raise BadPayload(f"event {index} ({kind}) has no valid Unix 'timestamp'")
        for name in ("touch_id", "lead_id"):
            _id_field(event.get(name), f"event {index} ({kind}): {name}")
        for name in ("email", "url", "reason", "type", "kind", "sg_message_id"):
            _text_field(event.get(name), f"event {index} ({kind}): {name}")
        sg_event_id = event.get("sg_event_id")
        if isinstance(sg_event_id, str) and 0 < len(sg_event_id) <= 190:
            key = f"sg:{sg_event_id}"
        else:
            key = "sg:h:" + _digest(
                event.get("sg_message_id"), kind, event.get("timestamp"), event.get("url")
            )
        records.append(InboxRecord(SENDGRID, kind, key, event))
    return records


def twilio_status_record(params: Mapping[str, str], touch_id: int | None) -> InboxRecord:
    """A Twilio message status callback (form fields), for touch `touch_id` if known."""
    sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
    if not sid or not status:
        raise BadPayload("status callback needs MessageSid and MessageStatus")
    if not _SID.fullmatch(sid):
        raise BadPayload("MessageSid must be 2-64 letters and digits")
    for name in ("MessageStatus", "SmsStatus"):
        value = params.get(name)
        if value is not None and value.lower() not in TWILIO_STATUSES:
            raise BadPayload(f"{name} {value[:40]!r} is not a Twilio message status")
    code = params.get("ErrorCode", "")
    if code and not _ERROR_CODE.fullmatch(code):
        raise BadPayload("ErrorCode must be a Twilio error code (up to 6 digits)")
    price = params.get("Price", "")
    if price and not _PRICE.fullmatch(price):
        raise BadPayload("Price must be a decimal number")
    if touch_id is not None and not 0 <= touch_id <= MAX_ID:
        raise BadPayload(f"touch_id must be a whole number from 0 to {MAX_ID}")
    payload: dict[str, Any] = dict(params)
    payload["touch_id"] = touch_id
    return InboxRecord(TWILIO_STATUS, status.lower(), f"tw:{sid}:{status.lower()}"[:200], payload)


def twilio_inbound_record(params: Mapping[str, str]) -> InboxRecord:
    """An inbound WhatsApp message (form fields)."""
    sid, sender = params.get("MessageSid", ""), params.get("From", "")
    if not sid or not sender:
        raise BadPayload("inbound message needs MessageSid and From")
    if not _SID.fullmatch(sid):
        raise BadPayload("MessageSid must be 2-64 letters and digits")
    if len(sender) > 64:
        raise BadPayload("From must be a WhatsApp address (at most 64 characters)")
    return InboxRecord(TWILIO_INBOUND, "inbound", f"tw-in:{sid}"[:200], dict(params))


def unsubscribe_record(lead_id: int, channel: str, token: str, method: str) -> InboxRecord:
    payload = {"lead_id": lead_id, "channel": channel, "method": method}
    return InboxRecord(UNSUBSCRIBE, "unsubscribe", "u:" + _digest(token), payload)


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


def site_records(body: bytes) -> list[InboxRecord]:
    """Parse site events: a JSON object or array of
    {"id", "type", "email", "occurred_at", "properties"} objects."""
    data = _json(body)
    events = data if isinstance(data, list) else [data]
    records = []
    for index, event in enumerate(events):
        where = f"event {index}"
        if not isinstance(event, dict):
            raise BadPayload(f"{where} is not a JSON object")
        kind = event.get("type")
        if not isinstance(kind, str) or not kind or len(kind) > 64:
            raise BadPayload(f"{where}: 'type' must be a non-empty string (at most 64 chars)")
        email = event.get("email")
        if not isinstance(email, str) or "@" not in email or len(email) > 320:
            raise BadPayload(f"{where} ({kind}): 'email' must be an email address")
        occurred = event.get("occurred_at")
        if not isinstance(occurred, str):
            raise BadPayload(f"{where} ({kind}): 'occurred_at' must be an ISO 8601 time")
        try:
            parse_instant(occurred)
        except (ValueError, OverflowError) as exc:
            raise BadPayload(f"{where} ({kind}): occurred_at: {exc}") from exc
        properties = event.get("properties", {})
        if not isinstance(properties, dict):
            raise BadPayload(f"{where} ({kind}): 'properties' must be an object")
        if kind == "page_view" and not isinstance(properties.get("url"), str):
            raise BadPayload(f"{where} (page_view): properties.url must be a string")
        event_id = event.get("id")
        if isinstance(event_id, str) and 0 < len(event_id) <= 180:
            key = f"site:{event_id}"
        else:
            key = "site:h:" + _digest(event)
        records.append(InboxRecord(SITE, kind, key, event))
    return records


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
