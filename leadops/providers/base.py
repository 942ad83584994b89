"""What every channel implements, and the errors that tell the dispatcher what happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    """A rendered message for one touch. `to` is an email address or an E.164 number."""

    touch_id: int
    lead_id: int
    channel: str
    to: str
    campaign: str
    step: str
    created_at: datetime
    subject: str = ""
    html: str = ""
    text: str = ""
    body: str = ""
    unsubscribe_url: str = ""
    # Email: where replies go (a nurture touch's signed Inbound Parse address), if not the
    # channel's default (LEADOPS_REPLY_TO_EMAIL)
    reply_to: str = ""
    to_name: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # What `touch_id` numbers: a nurture touch ("touch"), or another record such as a rep
    # notification ("escalation") or a double opt-in email ("confirmation"). Provider
    # events map back to touches only for "touch".
    kind: str = "touch"
    # WhatsApp: whether the lead's 24-hour session window is open (free text allowed), and
    # the approved template (ContentSid + ContentVariables) to use when it is not.
    session_open: bool = False
    content_sid: str = ""
    content_variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """What the channel recorded: `provider_id` names the copy (outbox file, provider id);
    `provider_message_id` is the provider's own message id (SendGrid X-Message-Id, Twilio
    SID) that its webhooks refer to, empty for the file outbox."""

    provider_id: str
    provider_message_id: str = ""


class SendError(Exception):
    """Base class; the subclass says whether the message may have arrived."""


class TransientSendError(SendError):
    """Provably not delivered (429, connection refused, 5xx before acceptance): retry later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Rejected for good (bad address, invalid template). `suppress` marks the address bad;
    `reason` is the suppression reason code when the provider says which (SMS: an opt-out)."""

    def __init__(self, message: str, *, suppress: bool = False, reason: str = "") -> None:
        super().__init__(message)
        self.suppress = suppress
        self.reason = reason


class ChannelUnavailableError(TransientSendError):
    """The provider refused us, not the message (bad credentials, account suspended).

    Nothing was delivered; the dispatcher stops using the channel for this run and leaves
    its touches pending, so fixing the configuration is enough to resume.
    """


class AmbiguousSendError(SendError):
    """The request left but no answer came back: it may have arrived. Never re-sent."""


class ChannelSender(Protocol):
    name: str
    # How many sends may run at once, and at most how many start per second (None: no limit).
    concurrency: int
    rate_per_second: float | None

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message or raise a SendError subclass."""
        ...

    def find_sent(self, touch_id: int, campaign: str, step: str) -> str | None:
        """The provider id if this channel can prove the touch was sent, else None."""
        ...
