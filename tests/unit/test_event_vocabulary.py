"""Each provider's events translated into the vocabulary, at the provider's edge."""

from __future__ import annotations

from typing import Any

import pytest

from leadops.models.events import EventType
from leadops.providers.sendgrid.events import SENDGRID_EVENTS, sendgrid_event
from leadops.providers.twilio.events import (
    TWILIO_STATUSES,
    twilio_inbound_event,
    twilio_status_event,
)


@pytest.mark.parametrize(
    ("kind", "fields", "meaning"),
    [
        ("delivered", {}, EventType.DELIVERED),
        ("open", {}, EventType.OPENED),
        ("open", {"sg_machine_open": False}, EventType.OPENED),
        ("open", {"sg_machine_open": "true"}, EventType.OPENED),  # only JSON true is a proxy
        ("open", {"sg_machine_open": True}, EventType.MACHINE_OPEN),
        ("click", {"url": "https://x.example/pricing"}, EventType.CLICKED),
        ("bounce", {"type": "bounce", "reason": "550 no such user"}, EventType.BOUNCED),
        ("bounce", {}, EventType.BOUNCED),
        ("bounce", {"type": "blocked", "reason": "421 try later"}, EventType.BLOCKED),
        ("dropped", {"reason": "Bounced Address"}, EventType.DROPPED),
        ("dropped", {"reason": "Invalid"}, EventType.DROPPED),
        ("dropped", {"reason": "Unsubscribed Address"}, EventType.DROPPED),
        ("dropped", {"reason": "Spam Reporting Address"}, EventType.DROPPED),
        ("dropped", {"reason": "Spam Content (if enabled)"}, EventType.FAILED),
        ("dropped", {}, EventType.FAILED),
        ("spamreport", {}, EventType.SPAM),
        ("unsubscribe", {}, EventType.UNSUBSCRIBED),
        ("group_unsubscribe", {"asm_group_id": 1}, EventType.GROUP_UNSUBSCRIBED),
        ("group_resubscribe", {"asm_group_id": 1}, EventType.RESUBSCRIBED),
        ("processed", {}, EventType.OTHER),
        ("deferred", {}, EventType.OTHER),
        ("something_new", {}, EventType.OTHER),
    ],
)
def test_sendgrid_events(kind: str, fields: dict[str, Any], meaning: EventType) -> None:
    assert sendgrid_event(kind, fields) == meaning


def test_every_sendgrid_type_has_a_meaning() -> None:
    assert {sendgrid_event(kind, {}) for kind in SENDGRID_EVENTS} <= set(EventType)
    assert sendgrid_event("processed", {}) == EventType.OTHER
    # only the types about a message still on its way mean nothing to a lead
    other = {kind for kind in SENDGRID_EVENTS if sendgrid_event(kind, {}) == EventType.OTHER}
    assert other == {"processed", "deferred"}


def test_only_twilio_statuses_in_transit_mean_other() -> None:
    other = {s for s in TWILIO_STATUSES if twilio_status_event(s, None, ()) == EventType.OTHER}
    assert other == {
        "accepted",
        "canceled",
        "queued",
        "received",
        "receiving",
        "scheduled",
        "sending",
    }


@pytest.mark.parametrize(
    ("status", "code", "meaning"),
    [
        ("sent", None, EventType.SENT),
        ("delivered", None, EventType.DELIVERED),
        ("read", None, EventType.READ),
        ("READ", None, EventType.READ),
        ("failed", None, EventType.FAILED),
        ("undelivered", 30003, EventType.FAILED),
        ("failed", 21211, EventType.INVALID_NUMBER),
        ("undelivered", 63003, EventType.INVALID_NUMBER),
        ("delivered", 21211, EventType.DELIVERED),  # a code only matters on a failure
        ("queued", None, EventType.OTHER),
        ("accepted", None, EventType.OTHER),
    ],
)
def test_twilio_statuses(status: str, code: int | None, meaning: EventType) -> None:
    assert twilio_status_event(status, code, (21211, 63003)) == meaning
    assert {twilio_status_event(s, None, ()) for s in TWILIO_STATUSES} <= set(EventType)


@pytest.mark.parametrize(
    ("fields", "meaning"),
    [
        ({"Body": "STOP"}, EventType.OPTED_OUT),
        ({"Body": "  stop. "}, EventType.OPTED_OUT),
        ({"Body": "start"}, EventType.RESUBSCRIBED),
        ({"Body": "", "ButtonPayload": "STOP"}, EventType.OPTED_OUT),
        ({"Body": "", "ButtonText": "Start"}, EventType.RESUBSCRIBED),
        ({"Body": "please stop by on Tuesday"}, EventType.REPLIED),
        ({}, EventType.REPLIED),
    ],
)
def test_inbound_whatsapp_messages(fields: dict[str, str], meaning: EventType) -> None:
    assert twilio_inbound_event(fields, {"STOP"}, {"START"}) == meaning
