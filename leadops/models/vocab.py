"""The vocabulary of the tables: lifecycle stages and the funnel order, channels, and the
statuses of touches, enrollments, quarantine, inbox events, scores, escalations, their
notifications, form submissions and dead letters. Plain enums and sets, no ORM: the pure
decision modules (policy, planner, segments, scoring, render) import them from here.
"""

from __future__ import annotations

from enum import StrEnum


class LifecycleStage(StrEnum):
    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    MQL = "mql"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    RECYCLED = "recycled"
    UNSUBSCRIBED = "unsubscribed"


# Funnel order, used so that a merge or import never moves a lead backwards.
FUNNEL_ORDER: dict[str, int] = {
    LifecycleStage.SUBSCRIBER: 0,
    LifecycleStage.RECYCLED: 1,
    LifecycleStage.LEAD: 1,
    LifecycleStage.MQL: 2,
    LifecycleStage.SQL: 3,
    LifecycleStage.OPPORTUNITY: 4,
    LifecycleStage.CUSTOMER: 5,
}


class Channel(StrEnum):
    EMAIL = "email"
    WHATSAPP = "whatsapp"
    SMS = "sms"


class TouchStatus(StrEnum):
    PENDING = "pending"  # due (or held with a hold_reason until not_before)
    CLAIMED = "claimed"  # taken by a dispatcher; its request has not left
    SENDING = "sending"  # the request is leaving; outcome unknown until recorded
    SENT = "sent"  # accepted by the channel; provider_id recorded
    DELIVERED = "delivered"
    FAILED = "failed"  # permanent failure, with the reason in `error`
    AMBIGUOUS = "ambiguous"  # may or may not have arrived; never re-sent automatically
    SKIPPED = "skipped"  # will never be sent (no consent, unsubscribed...), reason in hold_reason
    # Could not be decided or composed (our code or its data failed for this touch only):
    # never sent, set aside with the error until `leadops deadletters retry`.
    DEAD_LETTER = "dead_letter"


FINAL_TOUCH_STATUSES = frozenset(
    {
        TouchStatus.SENT,
        TouchStatus.DELIVERED,
        TouchStatus.FAILED,
        TouchStatus.AMBIGUOUS,
        TouchStatus.SKIPPED,
    }
)
SENT_TOUCH_STATUSES = frozenset({TouchStatus.SENT, TouchStatus.DELIVERED})


class SuppressionReason(StrEnum):
    """Why a lead's channel is suppressed: the code stored in <channel>_suppression_reason.
    A provider's own words stay with the touch or the inbox event, never here."""

    UNSUBSCRIBE = "unsubscribe"  # the unsubscribe link, SendGrid unsubscribe
    GROUP_UNSUBSCRIBE = "group_unsubscribe"  # a SendGrid unsubscribe group
    SPAMREPORT = "spamreport"  # marked as spam
    WHATSAPP_OPT_OUT = "whatsapp_opt_out"  # STOP and the other opt-out keywords
    EMAIL_OPT_OUT = "email_opt_out"  # an email reply saying unsubscribe, stop...
    BOUNCE = "bounce"  # hard bounce reported by the provider
    DROPPED = "dropped"  # SendGrid dropped an invalid, bounced or unsubscribed address
    INVALID_NUMBER = "invalid_number"  # Twilio: the number cannot be reached (WhatsApp, SMS)
    SMS_OPT_OUT = "sms_opt_out"  # SMS STOP keywords, or Twilio 21610 (the number sent STOP)
    INVALID_ADDRESS = "invalid_address"  # the provider refused the email address on send
    DISQUALIFIED = "disqualified"  # a rep disqualified the lead: not a lead for sales at all
    SUNSET = "sunset"  # finished a sunset campaign (re-engage) without engaging; lifted by engaging


# The person asked to stop, so their opt-in lifts it; a number Twilio could not reach is
# lifted too (an opt-in from it proves it works). Bounced, dropped and refused email
# addresses stay suppressed: only a new address helps.
OPT_IN_CLEARS = frozenset(
    {
        SuppressionReason.UNSUBSCRIBE,
        SuppressionReason.GROUP_UNSUBSCRIBE,
        SuppressionReason.SPAMREPORT,
        SuppressionReason.WHATSAPP_OPT_OUT,
        SuppressionReason.EMAIL_OPT_OUT,
        SuppressionReason.INVALID_NUMBER,
        SuppressionReason.SUNSET,
        SuppressionReason.SMS_OPT_OUT,
    }
)


class Band(StrEnum):
    """A lead's temperature by its grade (leads.band; config/scoring.yaml bands)."""

    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


class LeadStatus(StrEnum):
    """A lead's status beside its stage (leads.lead_status): what the stage cannot say.
    It moves up IQL -> PQL -> SAL; disqualified ends it (only sales sets it)."""

    IQL = "iql"  # information qualified: gave its details for content (a content form)
    PQL = "pql"  # product qualified: product use (trial started; scoring.yaml pql_events)
    SAL = "sal"  # sales accepted: a rep acknowledged its escalation
    DISQUALIFIED = "disqualified"  # a rep disqualified it (status_reason: DisqualifyReason)


STATUS_ORDER: dict[str, int] = {
    LeadStatus.IQL: 1,
    LeadStatus.PQL: 2,
    LeadStatus.SAL: 3,
    LeadStatus.DISQUALIFIED: 4,
}


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"
    GOAL_REACHED = "goal_reached"  # the campaign's goal happened (campaign file `goal:`)


class QuarantineStatus(StrEnum):
    OPEN = "open"
    RELEASED = "released"
    DROPPED = "dropped"


# -- Engagement ----------------------------------------------------------------------------


class InboxStatus(StrEnum):
    PENDING = "pending"  # stored, not yet processed by the rescore run
    PROCESSED = "processed"  # applied (scores, suppression, touches); see `result`
    IGNORED = "ignored"  # nothing to apply (unknown lead, unknown type...); see `result`
    # Failed to apply (rolled back, nothing of it kept); the error is in `result` and in
    # dead_letters, until `leadops deadletters retry` puts it back to pending.
    DEAD_LETTER = "dead_letter"


class ScoreKind(StrEnum):
    FIT = "fit"
    ENGAGEMENT = "engagement"
    DECAY = "decay"


# -- Escalation ----------------------------------------------------------------------------


class EscalationStatus(StrEnum):
    OPEN = "open"  # assigned, waiting for the rep to acknowledge
    ACKNOWLEDGED = "acknowledged"
    REROUTED = "rerouted"  # not acknowledged in time; assigned to the next rep or the queue
    CLOSED_WON = "closed_won"
    CLOSED_LOST = "closed_lost"
    RECYCLED = "recycled"  # not ready: back into nurture
    DISQUALIFIED = "disqualified"  # not a lead for sales at all; marketing stops too


class ActivityKind(StrEnum):
    """What a rep did with an escalation (escalation_activities.kind)."""

    ACKNOWLEDGED = "acknowledged"
    CONTACTED = "contacted"  # a first or later contact: call, email or meeting
    NOTE = "note"
    WON = "won"
    LOST = "lost"
    NOT_READY = "not_ready"
    DISQUALIFIED = "disqualified"


class ContactChannel(StrEnum):
    """How a rep reached the lead (escalation_activities.channel)."""

    CALL = "call"
    EMAIL = "email"
    MEETING = "meeting"


class DealStatus(StrEnum):
    """What a CRM deal's stage means for revenue."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class LostReason(StrEnum):
    """Why a deal was lost (structured, so the report can count them)."""

    NO_BUDGET = "no_budget"
    NO_NEED = "no_need"
    TIMING = "timing"
    COMPETITOR = "competitor"
    NO_DECISION = "no_decision"
    UNRESPONSIVE = "unresponsive"
    PRICE = "price"
    OTHER = "other"


class NotReadyReason(StrEnum):
    """Why a lead is not ready to buy yet (it goes back to nurture, to be tried again)."""

    TIMING = "timing"
    NO_BUDGET_YET = "no_budget_yet"
    RESEARCHING = "researching"
    WRONG_CONTACT = "wrong_contact"
    UNRESPONSIVE = "unresponsive"
    OTHER = "other"


class DisqualifyReason(StrEnum):
    """Why a lead is not a lead for sales at all; marketing to it stops."""

    WRONG_FIT = "wrong_fit"
    NO_BUDGET = "no_budget"
    COMPETITOR = "competitor"
    SPAM = "spam"
    STUDENT = "student"
    DUPLICATE = "duplicate"
    EXISTING_CUSTOMER = "existing_customer"
    OTHER = "other"


ACTIVE_ESCALATION_STATUSES = (
    EscalationStatus.OPEN,
    EscalationStatus.ACKNOWLEDGED,
    EscalationStatus.REROUTED,
)
AWAITING_ACK_STATUSES = (EscalationStatus.OPEN, EscalationStatus.REROUTED)


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"
    SKIPPED = "skipped"  # no longer relevant when its turn came (acknowledged, re-routed...)


# -- Intake --------------------------------------------------------------------------------


class FormSubmissionStatus(StrEnum):
    PENDING = "pending"  # confirmation email to be sent
    SENDING = "sending"  # the confirmation email is leaving
    SENT = "sent"  # confirmation sent; waiting for the click
    CONFIRMED = "confirmed"  # email consent given through the signed link
    NOT_NEEDED = "not_needed"  # the lead already had email consent, or asked for none
    QUARANTINED = "quarantined"  # the record failed validation; see the quarantine
    FAILED = "failed"  # the confirmation could not be sent (error says why)
    SKIPPED = "skipped"  # the contact policy refused it (suppressed, unsubscribed; see error)


# -- Dead letters --------------------------------------------------------------------------


class DeadLetterItem(StrEnum):
    INBOX = "inbox"  # an inbox event the rescore run could not apply (item_id: inbox id)
    TOUCH = "touch"  # a touch the dispatcher could not decide or compose (item_id: touch id)
    ESCALATION = "escalation"  # a sales-ready lead that could not be escalated (item_id: lead)


class DeadLetterStatus(StrEnum):
    OPEN = "open"  # set aside, waiting for a fix and a retry
    RETRIED = "retried"  # put back by `leadops deadletters retry`; fails again: open again
    RESOLVED = "resolved"  # applied by a later pass on its own (an SLA re-route)
