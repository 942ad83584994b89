"""Resolving inbox events to their leads and touches: one lookup per batch of events
(touch ids, provider message ids, emails, phones), then each event on its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.core.clock import parse_instant
from leadops.models import LEADS, TOUCHES
from leadops.providers import inbound


def payload_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def phone_of(value: str) -> str:
    return value.removeprefix("whatsapp:").strip()


@dataclass
class Lookup:
    touches: dict[int, dict[str, Any]]  # touch id -> row
    by_sid: dict[str, dict[str, Any]]  # provider id -> touch row
    emails: dict[str, int]
    phones: dict[str, int]
    leads: set[int]


def lookup(connection: Connection, rows: Sequence[Any]) -> Lookup:
    touch_ids: set[int] = set()
    sids: set[str] = set()
    emails: set[str] = set()
    phones: set[str] = set()
    lead_ids: set[int] = set()
    for row in rows:
        p = row.payload
        if row.source == inbound.SENDGRID:
            for key, target in (("touch_id", touch_ids), ("lead_id", lead_ids)):
                value = payload_int(p.get(key))
                if value is not None:
                    target.add(value)
            if isinstance(p.get("email"), str):
                emails.add(p["email"].lower())
        elif row.source == inbound.TWILIO_STATUS:
            if p.get("touch_id") is not None:
                touch_ids.add(int(p["touch_id"]))
            sids.add(p.get("MessageSid", ""))
        elif row.source == inbound.TWILIO_INBOUND:
            phones.add(phone_of(p.get("From", "")))
        elif row.source in (inbound.UNSUBSCRIBE, inbound.FORM):
            lead_ids.add(int(p["lead_id"]))
        elif row.source == inbound.SITE and isinstance(p.get("email"), str):
            emails.add(p["email"].lower())
    t = TOUCHES.c
    columns = (t.id, t.lead_id, t.channel, t.status, t.provider_message_id, t.sent_at)
    touches = {
        r.id: r._asdict()
        for r in connection.execute(sa.select(*columns).where(t.id.in_(touch_ids))).all()
    }
    by_sid = {
        r.provider_message_id: r._asdict()
        for r in connection.execute(
            sa.select(*columns).where(t.provider_message_id.in_(sids))
        ).all()
    }
    lead_ids |= {row["lead_id"] for row in touches.values()}
    lead_ids |= {row["lead_id"] for row in by_sid.values()}
    found_emails = {
        email.lower(): lead_id
        for lead_id, email in connection.execute(
            # intake stores emails lower-cased, so the unique index answers this
            sa.select(LEADS.c.id, LEADS.c.email).where(LEADS.c.email.in_(emails))
        ).all()
    }
    found_phones: dict[str, int] = {}
    for lead_id, phone in connection.execute(
        sa.select(LEADS.c.id, LEADS.c.phone).where(LEADS.c.phone.in_(phones)).order_by(LEADS.c.id)
    ).all():
        found_phones.setdefault(phone, lead_id)
    candidates = lead_ids | set(found_emails.values()) | set(found_phones.values())
    existing = set(
        connection.execute(sa.select(LEADS.c.id).where(LEADS.c.id.in_(candidates))).scalars()
    )
    return Lookup(touches, by_sid, found_emails, found_phones, existing)


def resolve(row: Any, found: Lookup) -> tuple[int | None, dict[str, Any] | None]:
    p = row.payload
    touch = None
    lead_id: int | None = None
    if row.source == inbound.SENDGRID:
        if p.get("kind", "touch") != "touch":
            return None, None  # a rep notification or a form confirmation, not a lead's touch
        touch_id = payload_int(p.get("touch_id"))
        touch = found.touches.get(touch_id) if touch_id is not None else None
        lead_id = payload_int(p.get("lead_id")) or (touch["lead_id"] if touch else None)
        if lead_id is None and isinstance(p.get("email"), str):
            lead_id = found.emails.get(p["email"].lower())
    elif row.source == inbound.TWILIO_STATUS:
        touch_id = p.get("touch_id")
        touch = found.touches.get(touch_id) if touch_id is not None else None
        touch = touch or found.by_sid.get(p.get("MessageSid", ""))
        lead_id = touch["lead_id"] if touch else None
    elif row.source == inbound.TWILIO_INBOUND:
        lead_id = found.phones.get(phone_of(p.get("From", "")))
    elif row.source in (inbound.UNSUBSCRIBE, inbound.FORM):
        lead_id = int(p["lead_id"])
    elif row.source == inbound.SITE:
        lead_id = found.emails.get(str(p.get("email", "")).lower())
    if lead_id is not None and lead_id not in found.leads:
        lead_id = None
    return lead_id, touch


def event_time(row: Any) -> datetime:
    p = row.payload
    if row.source == inbound.SENDGRID:
        return datetime.fromtimestamp(float(p["timestamp"]), UTC)
    if row.source in (inbound.SITE, inbound.FORM):
        return parse_instant(p["occurred_at"])
    return row.received_at
