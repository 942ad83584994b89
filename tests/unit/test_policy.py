"""Unit tests for leadops.delivery.policy: decide() and SendWindow."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from leadops.delivery.policy import (
    Action,
    Caps,
    ContactFacts,
    Decision,
    MessageClass,
    Reason,
    SendWindow,
    decide,
    intro_decision,
)

WEEKDAYS = frozenset(range(5))
WINDOW = SendWindow(start=time(9, 0), end=time(18, 0), weekdays=WEEKDAYS)
CAPS = Caps(per_day=2, per_week=4)


def facts(**overrides: object) -> ContactFacts:
    base = ContactFacts(
        email="ada@example.com",
        phone="+447400123456",
        email_consent=True,
        whatsapp_consent=True,
        email_suppressed=False,
        whatsapp_suppressed=False,
        unsubscribed=False,
        lifecycle_stage="lead",
        timezone="UTC",
    )
    return replace(base, **overrides)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Tuesday 2026-03-10 12:00 UTC: inside the window in UTC.
OPEN_NOW = utc(2026, 3, 10, 12, 0)


def run(channel: str = "email", lead: ContactFacts | None = None, **kwargs: object):
    params: dict[str, object] = {
        "channel": channel,
        "lead": lead or facts(),
        "now": OPEN_NOW,
        "window": WINDOW,
        "caps": CAPS,
        "recent_sends": [],
    }
    params.update(kwargs)
    return decide(**params)  # type: ignore[arg-type]


def test_send_when_everything_allows() -> None:
    decision = run()
    assert decision.action == Action.SEND
    assert decision.reason is None
    assert decision.retry_at is None


@pytest.mark.parametrize(
    ("channel", "override"),
    [("email", {"email_consent": False}), ("whatsapp", {"whatsapp_consent": False})],
)
def test_missing_consent_skips(channel: str, override: dict[str, object]) -> None:
    decision = run(channel, facts(**override))
    assert (decision.action, decision.reason) == (Action.SKIP, Reason.NO_CONSENT)


def test_consent_for_other_channel_does_not_count() -> None:
    lead = facts(email_consent=False, whatsapp_consent=True)
    assert run("email", lead).reason == Reason.NO_CONSENT
    assert run("whatsapp", lead).action == Action.SEND


@pytest.mark.parametrize(
    "lead",
    [facts(unsubscribed=True), facts(lifecycle_stage="unsubscribed")],
    ids=["flag", "stage"],
)
@pytest.mark.parametrize("channel", ["email", "whatsapp"])
def test_unsubscribed_skips(lead: ContactFacts, channel: str) -> None:
    decision = run(channel, lead)
    assert (decision.action, decision.reason) == (Action.SKIP, Reason.UNSUBSCRIBED)


def test_unsubscribed_skips_even_outside_window() -> None:
    decision = run(lead=facts(unsubscribed=True), now=utc(2026, 3, 10, 2, 0))
    assert decision.reason == Reason.UNSUBSCRIBED


@pytest.mark.parametrize(
    ("channel", "override"),
    [("email", {"email_suppressed": True}), ("whatsapp", {"whatsapp_suppressed": True})],
)
def test_suppressed_channel_skips(channel: str, override: dict[str, object]) -> None:
    decision = run(channel, facts(**override))
    assert (decision.action, decision.reason) == (Action.SKIP, Reason.SUPPRESSED)


def test_suppression_is_per_channel() -> None:
    lead = facts(email_suppressed=True)
    assert run("whatsapp", lead).action == Action.SEND


@pytest.mark.parametrize(
    ("channel", "override"),
    [("email", {"email": None}), ("whatsapp", {"phone": None}), ("email", {"email": ""})],
)
def test_no_address_skips(channel: str, override: dict[str, object]) -> None:
    decision = run(channel, facts(**override))
    assert (decision.action, decision.reason) == (Action.SKIP, Reason.NO_ADDRESS)


def test_already_sent_skips() -> None:
    decision = run(already_sent=True)
    assert (decision.action, decision.reason) == (Action.SKIP, Reason.ALREADY_SENT)


def test_unknown_channel_raises() -> None:
    with pytest.raises(ValueError, match="fax"):
        run("fax")


# --- send window -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        # UTC, before opening on a Tuesday -> same day 09:00.
        ("UTC", utc(2026, 3, 10, 7, 15), utc(2026, 3, 10, 9, 0)),
        # UTC, after closing on a Tuesday -> Wednesday 09:00.
        ("UTC", utc(2026, 3, 10, 18, 0), utc(2026, 3, 11, 9, 0)),
        # Kolkata (+5:30): 02:00 UTC Tue = 07:30 IST -> 09:00 IST = 03:30 UTC.
        ("Asia/Kolkata", utc(2026, 3, 10, 2, 0), utc(2026, 3, 10, 3, 30)),
        # Kolkata: Friday 13:00 UTC = 18:30 IST -> Monday 09:00 IST = 03:30 UTC.
        ("Asia/Kolkata", utc(2026, 3, 13, 13, 0), utc(2026, 3, 16, 3, 30)),
        # Kolkata: Tuesday 12:29 UTC = 17:59 IST is open; 12:30 UTC = 18:00 IST closed.
        ("Asia/Kolkata", utc(2026, 3, 10, 12, 30), utc(2026, 3, 11, 3, 30)),
        # New York, spring forward on Sunday 2026-03-08: Friday 19:00 EST (Sat 00:00 UTC)
        # -> Monday 09:00 EDT = 13:00 UTC (not 14:00).
        ("America/New_York", utc(2026, 3, 7, 0, 0), utc(2026, 3, 9, 13, 0)),
        # New York, fall back on Sunday 2026-11-01: Friday 20:00 EDT (Sat 00:00 UTC)
        # -> Monday 09:00 EST = 14:00 UTC.
        ("America/New_York", utc(2026, 10, 31, 0, 0), utc(2026, 11, 2, 14, 0)),
        # New York, Saturday during the week before the change (EST) -> Monday 14:00 UTC.
        ("America/New_York", utc(2026, 3, 7, 15, 0), utc(2026, 3, 9, 13, 0)),
        # Sunday evening UTC is already Monday morning in Tokyo -> Mon 09:00 JST.
        ("Asia/Tokyo", utc(2026, 3, 8, 23, 30), utc(2026, 3, 9, 0, 0)),
        # Saturday UTC -> Monday UTC.
        ("UTC", utc(2026, 3, 14, 10, 0), utc(2026, 3, 16, 9, 0)),
        # Sunday in Los Angeles (Monday 01:00 UTC) -> Monday 09:00 PDT = 16:00 UTC.
        ("America/Los_Angeles", utc(2026, 3, 16, 1, 0), utc(2026, 3, 16, 16, 0)),
    ],
)
def test_outside_window_holds_until_next_opening(
    zone: str, now: datetime, expected: datetime
) -> None:
    decision = run(lead=facts(timezone=zone), now=now)
    assert (decision.action, decision.reason) == (Action.HOLD, Reason.OUTSIDE_SEND_WINDOW)
    assert decision.retry_at == expected
    assert decision.retry_at.utcoffset() == timedelta(0)
    # Re-evaluated at retry_at the message goes out.
    again = run(lead=facts(timezone=zone), now=decision.retry_at)
    assert again.action == Action.SEND


@pytest.mark.parametrize(
    ("zone", "now"),
    [
        ("UTC", utc(2026, 3, 10, 9, 0)),
        ("UTC", utc(2026, 3, 10, 17, 59, 59)),
        ("Asia/Kolkata", utc(2026, 3, 10, 3, 30)),
        ("America/New_York", utc(2026, 3, 9, 13, 0)),  # 09:00 EDT, day after the change
        ("America/New_York", utc(2026, 11, 2, 14, 0)),  # 09:00 EST, day after the change
    ],
)
def test_inside_window_sends(zone: str, now: datetime) -> None:
    assert run(lead=facts(timezone=zone), now=now).action == Action.SEND


def test_window_end_is_exclusive() -> None:
    assert not WINDOW.is_open(utc(2026, 3, 10, 18, 0), ZoneInfo("UTC"))
    assert WINDOW.is_open(utc(2026, 3, 10, 9, 0), ZoneInfo("UTC"))


def test_next_open_returns_now_when_open() -> None:
    assert WINDOW.next_open(OPEN_NOW, ZoneInfo("UTC")) == OPEN_NOW


def test_next_open_with_single_weekday_after_closing_goes_a_week_ahead() -> None:
    tuesdays = SendWindow(time(9), time(18), frozenset({1}))
    # Tuesday 19:00 UTC -> next Tuesday 09:00.
    assert tuesdays.next_open(utc(2026, 3, 10, 19), ZoneInfo("UTC")) == utc(2026, 3, 17, 9)


def test_next_open_without_weekdays_raises() -> None:
    never = SendWindow(time(9), time(18), frozenset())
    with pytest.raises(ValueError):
        never.next_open(OPEN_NOW, ZoneInfo("UTC"))


@pytest.mark.parametrize(
    "zone", ["UTC", "Asia/Kolkata", "America/New_York", "Australia/Sydney", "Pacific/Auckland"]
)
def test_retry_at_is_always_inside_window(zone: str) -> None:
    """Every 37 minutes through March and the autumn DST weeks: a hold lands in the window."""
    tz = ZoneInfo(zone)
    lead = facts(timezone=zone)
    for start in (utc(2026, 3, 1), utc(2026, 10, 20)):
        now = start
        while now < start + timedelta(days=16):
            decision = run(lead=lead, now=now)
            if decision.action == Action.HOLD:
                assert decision.reason == Reason.OUTSIDE_SEND_WINDOW
                assert decision.retry_at > now
                assert WINDOW.is_open(decision.retry_at, tz), (zone, now, decision.retry_at)
                local = decision.retry_at.astimezone(tz)
                assert local.time() == time(9, 0)
                assert run(lead=lead, now=decision.retry_at).action == Action.SEND
            else:
                assert WINDOW.is_open(now, tz)
            now += timedelta(minutes=37)


# --- frequency caps ----------------------------------------------------------------------


def test_daily_cap_holds_until_oldest_send_in_day_ages_out() -> None:
    sends = [OPEN_NOW - timedelta(hours=2), OPEN_NOW - timedelta(hours=1)]
    decision = run(recent_sends=sends)
    assert (decision.action, decision.reason) == (Action.HOLD, Reason.FREQUENCY_CAP)
    assert decision.retry_at == sends[0] + timedelta(days=1)
    assert run(recent_sends=sends, now=decision.retry_at).action == Action.SEND


def test_below_daily_cap_sends() -> None:
    assert run(recent_sends=[OPEN_NOW - timedelta(hours=1)]).action == Action.SEND


def test_sends_older_than_a_day_do_not_count_toward_daily_cap() -> None:
    sends = [OPEN_NOW - timedelta(days=1), OPEN_NOW - timedelta(hours=3)]
    assert run(recent_sends=sends).action == Action.SEND


def test_weekly_cap_holds_until_it_frees() -> None:
    sends = [OPEN_NOW - timedelta(days=d) for d in (6, 5, 3, 2)]
    decision = run(recent_sends=sends)
    assert (decision.action, decision.reason) == (Action.HOLD, Reason.FREQUENCY_CAP)
    assert decision.retry_at == OPEN_NOW - timedelta(days=6) + timedelta(days=7)
    assert run(recent_sends=sends, now=decision.retry_at).action == Action.SEND


def test_both_caps_hold_until_the_later_release() -> None:
    sends = [OPEN_NOW - timedelta(days=d) for d in (6, 5)] + [
        OPEN_NOW - timedelta(hours=4),
        OPEN_NOW - timedelta(hours=1),
    ]
    decision = run(recent_sends=sends)
    assert decision.reason == Reason.FREQUENCY_CAP
    # Day cap frees at now+20h, week cap at now+1d: the later one wins.
    assert decision.retry_at == OPEN_NOW + timedelta(days=1)


def test_future_sends_are_ignored() -> None:
    sends = [OPEN_NOW + timedelta(hours=1), OPEN_NOW + timedelta(hours=2)]
    assert run(recent_sends=sends).action == Action.SEND


def test_window_is_checked_before_caps() -> None:
    night = utc(2026, 3, 10, 22, 0)
    sends = [night - timedelta(hours=5), night - timedelta(hours=2)]
    assert run(recent_sends=sends, now=night).reason == Reason.OUTSIDE_SEND_WINDOW


def test_cap_hold_reevaluated_eventually_sends_inside_window() -> None:
    """Following retry_at hold after hold ends in a send inside the lead's window."""
    zone = "Asia/Kolkata"
    lead = facts(timezone=zone)
    now = utc(2026, 3, 10, 11, 0)  # 16:30 IST
    sends = [now - timedelta(hours=1), now - timedelta(minutes=30)]
    for _ in range(5):
        decision = run(lead=lead, now=now, recent_sends=sends)
        if decision.action == Action.SEND:
            break
        assert decision.retry_at > now
        now = decision.retry_at
    else:
        pytest.fail("never sent")
    assert WINDOW.is_open(now, ZoneInfo(zone))


def test_cap_retry_at_is_inside_window() -> None:
    # Sends at 07:00 and 10:00 UTC Tuesday; at 12:00 the day cap (2) is full and frees at
    # 07:00 UTC Wednesday, two hours before the window opens.
    sends = [OPEN_NOW - timedelta(hours=5), OPEN_NOW - timedelta(hours=2)]
    decision = run(recent_sends=sends)
    assert decision.reason == Reason.FREQUENCY_CAP
    assert WINDOW.is_open(decision.retry_at, ZoneInfo("UTC"))


# -- message classes ----------------------------------------------------------------------


def transactional(**kwargs: object):
    return run(message_class=MessageClass.TRANSACTIONAL, **kwargs)


def test_marketing_is_the_default_class_and_needs_consent() -> None:
    assert run(lead=facts(email_consent=False)).reason == Reason.NO_CONSENT
    marketing = run(lead=facts(email_consent=False), message_class=MessageClass.MARKETING)
    assert marketing.reason == Reason.NO_CONSENT


def test_transactional_needs_no_marketing_consent() -> None:
    assert transactional(lead=facts(email_consent=False)).action == Action.SEND
    assert transactional(channel="whatsapp", lead=facts(whatsapp_consent=False)).action == (
        Action.SEND
    )


@pytest.mark.parametrize(
    ("lead", "reason"),
    [
        (facts(email_consent=False, email_suppressed=True), Reason.SUPPRESSED),
        (facts(email_consent=False, unsubscribed=True), Reason.UNSUBSCRIBED),
        (facts(email_consent=False, lifecycle_stage="unsubscribed"), Reason.UNSUBSCRIBED),
        (facts(email_consent=False, email=None), Reason.NO_ADDRESS),
    ],
)
def test_transactional_still_stops_at_suppression_unsubscribe_and_no_address(
    lead: ContactFacts, reason: Reason
) -> None:
    decision = transactional(lead=lead)
    assert (decision.action, decision.reason) == (Action.SKIP, reason)


def test_transactional_keeps_to_the_send_window() -> None:
    saturday = utc(2026, 3, 14, 12, 0)
    decision = transactional(lead=facts(email_consent=False), now=saturday)
    assert decision.action == Action.HOLD and decision.reason == Reason.OUTSIDE_SEND_WINDOW
    assert decision.retry_at == utc(2026, 3, 16, 9, 0)


def test_transactional_messages_are_not_held_by_the_frequency_caps() -> None:
    recent = [OPEN_NOW - timedelta(hours=h) for h in (1, 2, 3, 4, 5)]
    assert run(recent_sends=recent).reason == Reason.FREQUENCY_CAP
    assert transactional(recent_sends=recent).action == Action.SEND


def test_blackout_date_holds_until_the_next_open_day() -> None:
    # Tuesday 10 March is a blackout date, and so is Wednesday: open again on Thursday.
    window = SendWindow(
        time(9, 0), time(18, 0), WEEKDAYS, frozenset({date(2026, 3, 10), date(2026, 3, 11)})
    )
    decision = run(window=window)
    assert decision == Decision(Action.HOLD, Reason.OUTSIDE_SEND_WINDOW, utc(2026, 3, 12, 9, 0))


def test_blackout_dates_are_the_leads_local_dates() -> None:
    # 23:30 UTC on Monday 9 March is already Tuesday 10 March 08:30 in Tokyo.
    window = SendWindow(time(9, 0), time(18, 0), WEEKDAYS, frozenset({date(2026, 3, 10)}))
    decision = run(window=window, now=utc(2026, 3, 9, 23, 30), lead=facts(timezone="Asia/Tokyo"))
    assert decision.retry_at == datetime(2026, 3, 11, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))


def test_a_paused_campaign_holds_and_is_looked_at_again_a_day_later() -> None:
    decision = run(paused=True)
    assert decision == Decision(Action.HOLD, Reason.CAMPAIGN_PAUSED, OPEN_NOW + timedelta(days=1))


def test_a_pause_never_turns_a_skip_into_a_hold() -> None:
    assert run(paused=True, lead=facts(email_consent=False)).reason == Reason.NO_CONSENT
    assert run(paused=True, lead=facts(unsubscribed=True)).reason == Reason.UNSUBSCRIBED


def intro(channel: str = "email", lead: ContactFacts | None = None, **kwargs: object) -> Decision:
    values: dict[str, object] = {"now": OPEN_NOW, "whatsapp_session": True} | kwargs
    return intro_decision(
        channel=channel,
        lead=lead or facts(email_consent=False, whatsapp_consent=False),
        window=WINDOW,
        **values,  # type: ignore[arg-type]
    )


def test_the_hand_off_intro_is_transactional_with_the_window_and_whatsapp_s_24_hours() -> None:
    assert intro() == Decision(Action.SEND)  # no marketing consent needed, no caps
    assert intro(lead=facts(email_suppressed=True)) == Decision(Action.SKIP, Reason.SUPPRESSED)
    assert intro(lead=facts(unsubscribed=True)) == Decision(Action.SKIP, Reason.UNSUBSCRIBED)
    night = utc(2026, 3, 10, 22, 0)
    assert intro(now=night) == Decision(
        Action.HOLD, Reason.OUTSIDE_SEND_WINDOW, utc(2026, 3, 11, 9, 0)
    )
    assert intro("whatsapp") == Decision(Action.SEND)
    assert intro("whatsapp", whatsapp_session=False) == Decision(
        Action.SKIP, Reason.WHATSAPP_SESSION_CLOSED
    )
    assert intro("email", whatsapp_session=False) == Decision(Action.SEND)  # email: no session
