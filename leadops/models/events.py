"""What an inbox event means, in our own words: the vocabulary every provider's events are
translated into once, at the provider's edge (providers/sendgrid/events.py,
providers/twilio/events.py; our own sources in engagement), and stored on the inbox row
(`inbox.event`). The rescore run and the KPIs read this, never a provider's type string.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    # What happened to a message we sent
    SENT = "sent"  # accepted by the channel (Twilio sent)
    DELIVERED = "delivered"  # reached the mailbox or the phone
    READ = "read"  # a WhatsApp read receipt: delivered and seen
    OPENED = "opened"  # an email opened by the person
    MACHINE_OPEN = "machine_open"  # an email opened by a mail privacy proxy, not the person
    CLICKED = "clicked"
    BOUNCED = "bounced"  # hard bounce: the address does not exist
    BLOCKED = "blocked"  # soft bounce: refused this time, the address may work later
    DROPPED = "dropped"  # the provider will not send to this address (bounced, invalid...)
    FAILED = "failed"  # this one message could not be delivered
    INVALID_NUMBER = "invalid_number"  # failed because the number cannot be reached
    # What the person said about being contacted
    SPAM = "spam"  # marked the email as spam
    UNSUBSCRIBED = "unsubscribed"  # unsubscribed (provider or our unsubscribe link)
    GROUP_UNSUBSCRIBED = "group_unsubscribed"  # left one email unsubscribe group
    RESUBSCRIBED = "resubscribed"  # opted back in (SendGrid group, WhatsApp keyword)
    OPTED_OUT = "opted_out"  # an opt-out keyword (STOP...) on WhatsApp or SMS
    HELP = "help"  # an SMS help keyword (HELP, INFO): Twilio answers it; not a reply
    REPLIED = "replied"  # an inbound message that is not a keyword
    # Our own sources
    ACTIVITY = "activity"  # a site or product event; its own type is in `inbox.kind`
    HAND_RAISE = "hand_raise"  # a hand-raise web form; the rule it scores is `inbox.kind`
    OTHER = "other"  # a provider status with nothing to apply (processed, queued...)


# Events that say the message reached its recipient, was seen, and so on: the KPIs per
# campaign step (leadops.reporting.step_kpis) count unique messages with one of these.
DELIVERED_EVENTS = frozenset({EventType.DELIVERED, EventType.READ})
OPENED_EVENTS = frozenset({EventType.OPENED, EventType.READ})
UNSUBSCRIBED_EVENTS = frozenset(
    {EventType.UNSUBSCRIBED, EventType.GROUP_UNSUBSCRIBED, EventType.SPAM, EventType.OPTED_OUT}
)
BOUNCED_EVENTS = frozenset(
    {
        EventType.BOUNCED,
        EventType.BLOCKED,
        EventType.DROPPED,
        EventType.FAILED,
        EventType.INVALID_NUMBER,
    }
)

# The types of site and product events (the site webhook, leadops.engagement.site) and of
# hand-raise web forms (config/intake.yaml `hand_raise`), as stored in `inbox.kind`.
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
HAND_RAISE_FORMS = frozenset({"demo_requested", "contact_request"})
