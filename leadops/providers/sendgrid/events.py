"""SendGrid Event Webhook bodies parsed into inbox records, and what each SendGrid event
type means in our vocabulary (`sendgrid_event`; the rescore run applies it later)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leadops.models.events import EventType
from leadops.providers.inbound import (
    SENDGRID,
    BadPayload,
    InboxRecord,
    digest,
    id_field,
    parse_json,
    text_field,
)

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
# Types whose meaning does not depend on the event's other fields.
_MEANING = {
    "click": EventType.CLICKED,
    "delivered": EventType.DELIVERED,
    "spamreport": EventType.SPAM,
    "unsubscribe": EventType.UNSUBSCRIBED,
    "group_unsubscribe": EventType.GROUP_UNSUBSCRIBED,
    "group_resubscribe": EventType.RESUBSCRIBED,
}
# "dropped" reasons that mean SendGrid will not mail the address again (its own
# suppression lists, or an invalid address); other reasons drop one message only.
ADDRESS_DROP_REASONS = ("bounced address", "invalid", "unsubscribed address", "spam reporting")


def sendgrid_event(kind: str, event: Mapping[str, Any]) -> EventType:
    """What a SendGrid event of type `kind` (its fields in `event`) means."""
    if kind == "open":
        # sg_machine_open: opened by a mail privacy proxy (Apple Mail...), not the person
        return EventType.MACHINE_OPEN if event.get("sg_machine_open") is True else EventType.OPENED
    if kind == "bounce":
        return EventType.BLOCKED if event.get("type") == "blocked" else EventType.BOUNCED
    if kind == "dropped":
        reason = str(event.get("reason", "")).lower()
        if any(marker in reason for marker in ADDRESS_DROP_REASONS):
            return EventType.DROPPED
        return EventType.FAILED
    return _MEANING.get(kind, EventType.OTHER)


def sendgrid_records(body: bytes) -> list[InboxRecord]:
    """Parse a SendGrid Event Webhook body (a JSON array of event objects)."""
    events = parse_json(body)
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
            id_field(event.get(name), f"event {index} ({kind}): {name}")
        for name in ("email", "url", "reason", "type", "kind", "sg_message_id"):
            text_field(event.get(name), f"event {index} ({kind}): {name}")
        sg_event_id = event.get("sg_event_id")
        if isinstance(sg_event_id, str) and 0 < len(sg_event_id) <= 190:
            key = f"sg:{sg_event_id}"
        else:
            key = "sg:h:" + digest(
                event.get("sg_message_id"), kind, event.get("timestamp"), event.get("url")
            )
        records.append(InboxRecord(SENDGRID, kind, key, event))
    return records
