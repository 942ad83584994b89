"""Resolving inbox events: what each means (`translate`, the provider's own translation,
once), and the lead and message it is about (one lookup per batch of events: touch ids,
provider message ids, emails, phones, the leads' sent messages; then each event on its
own)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.core.bulk import among
from leadops.core.clock import parse_instant
from leadops.engagement.scoring import ScoringConfig, classify_inbound, classify_inbound_email
from leadops.models import LEADS, TOUCHES
from leadops.models.events import EventType
from leadops.providers import inbound
from leadops.providers.sendgrid.events import sendgrid_event
from leadops.providers.twilio.events import inbound_channel, twilio_status_event

# Events that name only their lead, and the channel of the message they answer (None: any):
# they are about the lead's last message sent before them. An inbound email names its
# message when its reply address does; matched by its sender, it is about the last email.
# An inbound Twilio message answers the last one on its own channel (WhatsApp or SMS).
ABOUT_LAST_SENT = {
    inbound.TWILIO_INBOUND: "whatsapp",
    inbound.UNSUBSCRIBE: None,
    inbound.SENDGRID_INBOUND: "email",
}


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
    # lead id -> its messages sent, as (sent_at, touch id, channel), oldest first; only for
    # the leads of events that name no message (ABOUT_LAST_SENT)
    sent: dict[int, list[tuple[datetime, int, str]]]


def translate(row: Any, config: ScoringConfig) -> EventType:
    """What an inbox event means: each provider's translation (its events module), and
    our own sources' (the unsubscribe link, site events, hand-raise forms)."""
    p = row.payload
    if row.source == inbound.SENDGRID:
        return sendgrid_event(row.kind, p)
    if row.source == inbound.TWILIO_STATUS:
        code = payload_int(p.get("ErrorCode"))
        return twilio_status_event(row.kind, code, config.invalid_number_error_codes)
    if row.source == inbound.TWILIO_INBOUND:
        return classify_inbound(config, p)
    if row.source == inbound.SENDGRID_INBOUND:
        return classify_inbound_email(config, row.kind, p)
    if row.source == inbound.UNSUBSCRIBE:
        return EventType.UNSUBSCRIBED
    if row.source == inbound.FORM:
        return EventType.HAND_RAISE
    if row.source == inbound.SITE:
        return EventType.ACTIVITY
    return EventType.OTHER


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
        elif row.source == inbound.SENDGRID_INBOUND:
            touch_id = payload_int(p.get("touch_id"))
            if touch_id is not None:
                touch_ids.add(touch_id)
            emails.add(sender_of(row))
        elif row.source in (inbound.UNSUBSCRIBE, inbound.FORM):
            lead_ids.add(int(p["lead_id"]))
        elif row.source == inbound.SITE and isinstance(p.get("email"), str):
            emails.add(p["email"].lower())
    t, lead, dialect = TOUCHES.c, LEADS.c, connection.dialect.name
    columns = (t.id, t.lead_id, t.channel, t.status, t.provider_message_id, t.sent_at)
    touches = {
        r.id: r._asdict()
        for r in connection.execute(
            sa.select(*columns).where(among(dialect, t.id, touch_ids))
        ).all()
    }
    by_sid = {
        r.provider_message_id: r._asdict()
        for r in connection.execute(
            sa.select(*columns).where(among(dialect, t.provider_message_id, sids))
        ).all()
    }
    lead_ids |= {row["lead_id"] for row in touches.values()}
    lead_ids |= {row["lead_id"] for row in by_sid.values()}
    found_emails = {
        email.lower(): lead_id
        for lead_id, email in connection.execute(
            # intake stores emails lower-cased, so the unique index answers this
            sa.select(lead.id, lead.email).where(among(dialect, lead.email, emails))
        ).all()
    }
    found_phones: dict[str, int] = {}
    for lead_id, phone in connection.execute(
        sa.select(lead.id, lead.phone).where(among(dialect, lead.phone, phones)).order_by(lead.id)
    ).all():
        found_phones.setdefault(phone, lead_id)
    candidates = lead_ids | set(found_emails.values()) | set(found_phones.values())
    existing = set(
        connection.execute(sa.select(lead.id).where(among(dialect, lead.id, candidates))).scalars()
    )
    about_last = {
        int(row.payload["lead_id"]) for row in rows if row.source == inbound.UNSUBSCRIBE
    } | {
        found_phones[phone]
        for phone in (
            phone_of(r.payload.get("From", "")) for r in rows if r.source == inbound.TWILIO_INBOUND
        )
        if phone in found_phones
    }
    about_last |= {
        found_emails[sender_of(r)]
        for r in rows
        if r.source == inbound.SENDGRID_INBOUND and sender_of(r) in found_emails
    }
    sent = _sent_touches(connection, about_last & existing)
    return Lookup(touches, by_sid, found_emails, found_phones, existing, sent)


def _sent_touches(
    connection: Connection, lead_ids: set[int]
) -> dict[int, list[tuple[datetime, int, str]]]:
    """Each lead's sent touches (sent at, touch id, channel), oldest first."""
    t = TOUCHES.c
    sent: dict[int, list[tuple[datetime, int, str]]] = {}
    if not lead_ids:
        return sent
    for lead_id, sent_at, touch_id, channel in connection.execute(
        sa.select(t.lead_id, t.sent_at, t.id, t.channel)
        .where(among(connection.dialect.name, t.lead_id, lead_ids), t.sent_at.is_not(None))
        .order_by(t.sent_at, t.id)
    ).all():
        sent.setdefault(lead_id, []).append((sent_at, touch_id, channel))
    return sent


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
    elif row.source == inbound.SENDGRID_INBOUND:
        # the touch its signed reply address names; else a sender SPF or DKIM vouches for
        touch_id = payload_int(p.get("touch_id"))
        touch = found.touches.get(touch_id) if touch_id is not None else None
        if touch is not None:
            lead_id = touch["lead_id"]
        elif p.get("sender_authenticated") is True:
            lead_id = found.emails.get(sender_of(row))
    elif row.source in (inbound.UNSUBSCRIBE, inbound.FORM):
        lead_id = int(p["lead_id"])
    elif row.source == inbound.SITE:
        lead_id = found.emails.get(str(p.get("email", "")).lower())
    if lead_id is not None and lead_id not in found.leads:
        lead_id = None
    return lead_id, touch


def touch_of(row: Any, lead_id: int, touch: dict[str, Any] | None, found: Lookup) -> int | None:
    """The message an event is about: the touch it names, if it is the lead's; for an
    event that names only its lead, the lead's last message sent at or before it arrived
    (on the channel the event came by, for an inbound message)."""
    if touch is not None and touch["lead_id"] == lead_id:
        return int(touch["id"])
    if row.source not in ABOUT_LAST_SENT:
        return None
    channel = ABOUT_LAST_SENT[row.source]
    if row.source == inbound.TWILIO_INBOUND:
        channel = inbound_channel(row.payload)
    last = None
    for sent_at, touch_id, touch_channel in found.sent.get(lead_id, []):
        if sent_at > row.received_at:
            break
        if channel is None or touch_channel == channel:
            last = touch_id
    return last


def sender_of(row: Any) -> str:
    """The sender address of an inbound email, lower-cased (as intake stores emails)."""
    return str(row.payload.get("sender") or "").lower()


def from_the_lead(row: Any, lead_id: int, found: Lookup) -> bool:
    """Whether an inbound email's sender address is the lead's own (not a colleague's or
    another address of theirs answering through the reply address)."""
    return found.emails.get(sender_of(row)) == lead_id


def no_lead(row: Any) -> str:
    """Why an event matched no lead, for its inbox row."""
    if row.source != inbound.SENDGRID_INBOUND:
        return "no matching lead"
    p = row.payload
    address = {
        "valid": "its reply address names a touch that does not exist",
        "invalid": "its reply address does not verify",
    }.get(str(p.get("token")), "no reply address")
    if p.get("sender_authenticated") is not True:
        sender = "the sender is not vouched for by SPF or DKIM"
    else:
        sender = "the sender's address is no lead's"
    return f"no matching lead: {address}, and {sender}"


def event_time(row: Any) -> datetime:
    p = row.payload
    if row.source == inbound.SENDGRID:
        return datetime.fromtimestamp(float(p["timestamp"]), UTC)
    if row.source in (inbound.SITE, inbound.FORM):
        return parse_instant(p["occurred_at"])
    return row.received_at
