"""The contact policy: may this message go to this lead on this channel now?

One pure function, `decide`, answers send, hold (try again at `retry_at`) or skip (never),
and every answer other than send carries a reason code.

Two classes of message (`MessageClass`):
- marketing: nurture sequences. They need the channel's consent, stop at an opt-out or
  suppression, and keep to the send window and the frequency caps.
- transactional: what the person asked for (the double opt-in confirmation, the answer
  to a request such as the hand-off intro, `intro_decision`). No marketing consent is
  needed and the caps do not count them, but unsubscribe, suppression and the send window
  still apply.

WhatsApp free text (no approved template) may only go inside the 24-hour window after
the lead's last inbound WhatsApp message (Twilio error 63016 otherwise).

SMS needs the lead's SMS consent and keeps to quiet hours: 08:00-21:00 in the lead's time
zone (TCPA), narrowed further by the send window where that is stricter (`sms_window`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from leadops.models.leads import Lead
from leadops.models.vocab import Channel, LifecycleStage


class Reason(StrEnum):
    NO_CONSENT = "no_consent"
    UNSUBSCRIBED = "unsubscribed"
    SUPPRESSED = "suppressed"
    NO_ADDRESS = "no_address"
    OUTSIDE_SEND_WINDOW = "outside_send_window"
    FREQUENCY_CAP = "frequency_cap"
    ALREADY_SENT = "already_sent"
    RENDER_ERROR = "render_error"
    PROVIDER_RETRY = "provider_retry"
    CAMPAIGN_PAUSED = "campaign_paused"
    WHATSAPP_SESSION_CLOSED = "whatsapp_session_closed"
    SMS_QUIET_HOURS = "sms_quiet_hours"


# The one legend of the codes in touches.hold_reason: the policy's Reason codes, then the
# codes other stages write when they skip or set a touch aside (suppression events, the
# end of an enrollment, escalation). Summaries, `leads why` and `leadops reasons` use it.
REASON_MEANINGS: dict[str, str] = {
    Reason.NO_CONSENT: "the lead gave no marketing consent on this channel",
    Reason.UNSUBSCRIBED: "the lead unsubscribed; nothing more is sent",
    Reason.SUPPRESSED: "this channel's address is suppressed (bounce, complaint, opt-out)",
    Reason.NO_ADDRESS: "the lead has no address (email or phone) on this channel",
    Reason.OUTSIDE_SEND_WINDOW: "outside the send window (local hours, weekdays); waits for it",
    Reason.FREQUENCY_CAP: "the lead reached the messages-per-day or per-week cap; waits for room",
    Reason.ALREADY_SENT: "this step already went to the lead on this channel",
    Reason.RENDER_ERROR: "the template failed to render; retried hourly until it is fixed",
    Reason.PROVIDER_RETRY: "the provider refused for now (rate limit, outage); retried later",
    Reason.CAMPAIGN_PAUSED: "the campaign is paused (`leadops campaigns resume` releases it)",
    Reason.WHATSAPP_SESSION_CLOSED: (
        "free WhatsApp text needs a message from the lead in the last 24 hours; none came"
    ),
    Reason.SMS_QUIET_HOURS: "SMS waits for 08:00-21:00 in the lead's time zone (quiet hours)",
    "dead_letter": "set aside after an unexpected error; `leadops deadletters retry` puts it back",
    "enrollment_ended": "the lead's enrollment ended before this step went out",
    "holdout": "the lead is in the campaign's holdout: sent nothing, to measure its lift",
    "escalated": "the lead was handed to sales; nurture stops",
    "replied": "the lead replied; nurture stops so a person can answer",
    "unsubscribe": "the lead unsubscribed (unsubscribe link or SendGrid unsubscribe)",
    "group_unsubscribe": "the lead unsubscribed from this kind of email (SendGrid group)",
    "bounce": "the email address hard-bounced",
    "dropped": "the email provider dropped the address (invalid or known bad)",
    "spamreport": "the lead marked an email as spam",
    "invalid_number": "the phone number cannot receive WhatsApp or SMS messages",
    "invalid_address": "the email provider refused the address when sending",
    "whatsapp_opt_out": "the lead opted out on WhatsApp (STOP)",
    "disqualified": "a rep disqualified the lead (not a lead for sales); marketing stops",
    "sunset": "did not engage through re-engage: marketing stops until the lead engages",
    "email_opt_out": "the lead replied to an email asking to stop (unsubscribe, stop)",
    "condition_not_met": "the step's condition (when / unless in the campaign file) said skip",
    "wait_timed_out": "the event the step waited for (wait_for) did not happen by its day",
    "goal_reached": "the lead reached the campaign's goal; the campaign ended for it",
    "sms_opt_out": "the lead opted out of SMS (STOP, or Twilio error 21610)",
}


def reason_meaning(code: str) -> str:
    """The one-line meaning of a hold or skip reason code."""
    return REASON_MEANINGS.get(code, "no legend entry for this code")


def legend(codes: Iterable[str]) -> list[dict[str, str]]:
    """The legend rows (code, meaning) of the given codes, sorted, each once."""
    return [{"code": code, "meaning": reason_meaning(code)} for code in sorted(set(codes))]


class MessageClass(StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class Action(StrEnum):
    SEND = "send"
    HOLD = "hold"
    SKIP = "skip"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: Reason | None = None
    retry_at: datetime | None = None


SEND = Decision(Action.SEND)

# A paused campaign's touch is looked at again after this long (resuming re-times it).
PAUSE_RECHECK = timedelta(days=1)


@dataclass(frozen=True)
class SendWindow:
    """Local hours [start, end) on the given weekdays (0 = Monday), except on the
    blackout dates (local dates too)."""

    start: time
    end: time
    weekdays: frozenset[int]
    blackouts: frozenset[date] = frozenset()

    def _open_day(self, day: date) -> bool:
        return day.weekday() in self.weekdays and day not in self.blackouts

    def is_open(self, now: datetime, zone: ZoneInfo) -> bool:
        local = now.astimezone(zone)
        return self._open_day(local.date()) and self.start <= local.time() < self.end

    def next_open(self, now: datetime, zone: ZoneInfo) -> datetime:
        """The first moment at or after `now` when the window is open, in UTC."""
        if self.is_open(now, zone):
            return now
        local = now.astimezone(zone)
        for offset in range(8 + len(self.blackouts)):
            day = local.date() + timedelta(days=offset)
            if not self._open_day(day):
                continue
            opens = datetime.combine(day, self.start, tzinfo=zone)
            if opens >= local:
                return opens.astimezone(now.tzinfo)
        raise ValueError("send window has no weekdays")


# Quiet hours for SMS (TCPA): messages go out only from 08:00 to 21:00, the lead's time.
SMS_EARLIEST = time(8, 0)
SMS_LATEST = time(21, 0)


def sms_window(window: SendWindow) -> SendWindow:
    """The send window narrowed to SMS quiet hours (the stricter of the two)."""
    return SendWindow(
        start=max(window.start, SMS_EARLIEST),
        end=min(window.end, SMS_LATEST),
        weekdays=window.weekdays,
        blackouts=window.blackouts,
    )


@dataclass(frozen=True)
class Caps:
    per_day: int
    per_week: int


@dataclass(frozen=True)
class ContactFacts:
    """What the policy needs to know about a lead."""

    email: str | None
    phone: str | None
    email_consent: bool
    whatsapp_consent: bool
    email_suppressed: bool
    whatsapp_suppressed: bool
    unsubscribed: bool
    lifecycle_stage: str
    timezone: str
    sms_consent: bool = False
    sms_suppressed: bool = False


def _cap_release(
    recent: Sequence[datetime], now: datetime, cap: int, span: timedelta
) -> datetime | None:
    """When the cap next allows a message, or None if it allows one now."""
    inside = sorted(sent for sent in recent if now - span < sent <= now)
    if len(inside) < cap:
        return None
    return inside[len(inside) - cap] + span


def decide(
    *,
    channel: str,
    lead: ContactFacts,
    now: datetime,
    window: SendWindow,
    caps: Caps,
    recent_sends: Sequence[datetime],
    already_sent: bool = False,
    message_class: MessageClass = MessageClass.MARKETING,
    paused: bool = False,
    whatsapp_session: bool | None = None,
) -> Decision:
    """Decide whether a message may go out now; see Reason for every "no".

    `window` is the campaign's (its own days, hours and blackout dates, else the
    settings'); a touch of a `paused` campaign is held, never skipped, until it resumes.
    `whatsapp_session` is given for WhatsApp free text: whether the lead's 24-hour window
    is open (when it is not, the message is skipped: another channel may carry it)."""
    marketing = message_class == MessageClass.MARKETING
    if already_sent:
        return Decision(Action.SKIP, Reason.ALREADY_SENT)
    if lead.unsubscribed or lead.lifecycle_stage == LifecycleStage.UNSUBSCRIBED:
        return Decision(Action.SKIP, Reason.UNSUBSCRIBED)
    if channel == Channel.EMAIL:
        suppressed, consent, address = lead.email_suppressed, lead.email_consent, lead.email
    elif channel == Channel.WHATSAPP:
        suppressed, consent, address = lead.whatsapp_suppressed, lead.whatsapp_consent, lead.phone
    elif channel == Channel.SMS:
        suppressed, consent, address = lead.sms_suppressed, lead.sms_consent, lead.phone
    else:
        raise ValueError(f"unknown channel {channel!r}")
    if suppressed:
        return Decision(Action.SKIP, Reason.SUPPRESSED)
    if marketing and not consent:
        return Decision(Action.SKIP, Reason.NO_CONSENT)
    if not address:
        return Decision(Action.SKIP, Reason.NO_ADDRESS)
    if channel == Channel.WHATSAPP and whatsapp_session is False:
        return Decision(Action.SKIP, Reason.WHATSAPP_SESSION_CLOSED)

    if paused:
        return Decision(Action.HOLD, Reason.CAMPAIGN_PAUSED, now + PAUSE_RECHECK)
    zone = ZoneInfo(lead.timezone)
    if not window.is_open(now, zone):
        return Decision(Action.HOLD, Reason.OUTSIDE_SEND_WINDOW, window.next_open(now, zone))
    if channel == Channel.SMS:
        window = sms_window(window)
        if not window.is_open(now, zone):
            return Decision(Action.HOLD, Reason.SMS_QUIET_HOURS, window.next_open(now, zone))
    if not marketing:
        return SEND
    releases = [
        _cap_release(recent_sends, now, caps.per_day, timedelta(days=1)),
        _cap_release(recent_sends, now, caps.per_week, timedelta(days=7)),
    ]
    blocked_until = max((r for r in releases if r is not None), default=None)
    if blocked_until is not None:
        return Decision(Action.HOLD, Reason.FREQUENCY_CAP, window.next_open(blocked_until, zone))
    return SEND


NO_CAPS = Caps(per_day=0, per_week=0)  # transactional messages are not counted by caps


def intro_decision(
    *,
    channel: str,
    lead: ContactFacts,
    now: datetime,
    window: SendWindow,
    whatsapp_session: bool,
) -> Decision:
    """The policy's answer for the lead's hand-off intro (MessageKind.INTRO), WhatsApp
    free text or an email: transactional, so unsubscribe, suppression, the send window
    and, on WhatsApp, the 24-hour window apply; no marketing consent or caps."""
    return decide(
        channel=channel,
        lead=lead,
        now=now,
        window=window,
        caps=NO_CAPS,
        recent_sends=(),
        message_class=MessageClass.TRANSACTIONAL,
        whatsapp_session=whatsapp_session if channel == Channel.WHATSAPP else None,
    )


def contact_facts(lead: Lead | Any) -> ContactFacts:
    """What the policy needs to know of a lead (the Lead model or a row with its columns)."""
    return ContactFacts(
        email=lead.email,
        phone=lead.phone,
        email_consent=lead.email_consent,
        whatsapp_consent=lead.whatsapp_consent,
        email_suppressed=lead.email_suppressed_at is not None,
        whatsapp_suppressed=lead.whatsapp_suppressed_at is not None,
        unsubscribed=lead.unsubscribed_at is not None,
        lifecycle_stage=lead.lifecycle_stage,
        timezone=lead.timezone,
        sms_consent=lead.sms_consent,
        sms_suppressed=lead.sms_suppressed_at is not None,
    )
