"""The contact policy on SMS: its own consent and suppression, quiet hours 08:00-21:00 in
the lead's time zone unless the send window is stricter."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from leadops.delivery.policy import (
    Action,
    Reason,
    SendWindow,
    contact_facts,
    sms_window,
)
from leadops.models import Lead
from tests.unit.test_policy import facts, run

WIDE = SendWindow(start=time(6, 0), end=time(23, 0), weekdays=frozenset(range(7)))
SMS_FACTS = facts(sms_consent=True, whatsapp_consent=False)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 10, hour, minute, tzinfo=UTC)  # a Tuesday


def test_sms_needs_its_own_consent_and_a_number() -> None:
    assert run("sms", facts(sms_consent=False)).reason == Reason.NO_CONSENT
    assert run("sms", SMS_FACTS).action == Action.SEND
    assert run("sms", facts(sms_consent=True, phone=None)).reason == Reason.NO_ADDRESS


def test_sms_suppression_and_unsubscribe_skip_it() -> None:
    lead = facts(sms_consent=True, sms_suppressed=True)
    assert (run("sms", lead).action, run("sms", lead).reason) == (Action.SKIP, Reason.SUPPRESSED)
    assert run("sms", facts(sms_consent=True, unsubscribed=True)).reason == Reason.UNSUBSCRIBED
    # a WhatsApp suppression leaves SMS alone, and the other way round
    assert run("sms", facts(sms_consent=True, whatsapp_suppressed=True)).action == Action.SEND
    assert run("whatsapp", facts(sms_suppressed=True)).action == Action.SEND


@pytest.mark.parametrize(
    ("now", "zone", "action", "retry_at"),
    [
        (at(7, 59), "UTC", Action.HOLD, at(8, 0)),
        (at(8, 0), "UTC", Action.SEND, None),
        (at(20, 59), "UTC", Action.SEND, None),
        (at(21, 0), "UTC", Action.HOLD, datetime(2026, 3, 11, 8, 0, tzinfo=UTC)),
        # 11:30 UTC is 07:30 in New York (EDT): held until 08:00 there (12:00 UTC)
        (at(11, 30), "America/New_York", Action.HOLD, at(12, 0)),
        # 15:00 UTC is 20:30 in Kolkata: still allowed
        (at(15, 0), "Asia/Kolkata", Action.SEND, None),
    ],
)
def test_quiet_hours_are_local_and_narrower_than_a_wide_window(
    now: datetime, zone: str, action: Action, retry_at: datetime | None
) -> None:
    decision = run("sms", facts(sms_consent=True, timezone=zone), now=now, window=WIDE)
    assert (decision.action, decision.retry_at) == (action, retry_at)
    if action == Action.HOLD:
        assert decision.reason == Reason.SMS_QUIET_HOURS
    # email keeps the send window
    assert run("email", facts(timezone=zone), now=now, window=WIDE).action == Action.SEND


def test_a_stricter_send_window_wins() -> None:
    strict = SendWindow(start=time(10, 0), end=time(16, 0), weekdays=frozenset(range(5)))
    assert sms_window(strict) == strict
    decision = run("sms", SMS_FACTS, now=at(9, 0), window=strict)
    assert (decision.reason, decision.retry_at) == (Reason.OUTSIDE_SEND_WINDOW, at(10, 0))
    assert sms_window(WIDE).start == time(8, 0) and sms_window(WIDE).end == time(21, 0)


def test_caps_release_into_quiet_hours() -> None:
    """A capped SMS waits for the cap, then for 08:00 local."""
    sent = [at(20, 30), datetime(2026, 3, 10, 20, 40, tzinfo=UTC)]
    decision = run("sms", SMS_FACTS, now=at(20, 50), window=WIDE, recent_sends=sent)
    assert decision.reason == Reason.FREQUENCY_CAP
    assert decision.retry_at == datetime(2026, 3, 11, 20, 30, tzinfo=UTC)


def test_contact_facts_read_the_sms_columns() -> None:
    lead = Lead(
        email=None,
        phone="+14155550100",
        sms_consent=True,
        sms_suppressed_at=at(9),
        timezone="UTC",
        lifecycle_stage="lead",
    )
    found = contact_facts(lead)
    assert (found.sms_consent, found.sms_suppressed) == (True, True)
