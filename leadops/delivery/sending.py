"""What a provider's answer means for any outbound message, and when to try again.

Every kind of outbound message (nurture touch, rep notification and manager digest, form
confirmation, the lead's hand-off intro, and later SMS, CRM writes) is recorded before it
is sent, then its outcome is classified here, once:

- `sent`: the provider accepted it;
- `retry`: provably not delivered (TransientSendError): pending again after the kind's
  backoff, or `failed` once its RetryPolicy gives up;
- `channel_stopped`: the provider refused us, not the message (ChannelUnavailableError):
  it waits, unsent, however long the outage; not counted against the attempts;
- `failed`: rejected for good (PermanentSendError; `suppress` when the address is bad);
- `ambiguous`: it may have arrived (AmbiguousSendError, or our own error after the
  request may have left): never re-sent automatically.

A new kind registers its RetryPolicy in POLICIES, with the reason for its numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from leadops.providers.base import (
    AmbiguousSendError,
    ChannelUnavailableError,
    PermanentSendError,
    TransientSendError,
)


class SendOutcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    CHANNEL_STOPPED = "channel_stopped"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class Classified:
    """A provider answer, classified: the outcome, the error text, and its hints."""

    outcome: SendOutcome
    error: str | None = None
    retry_after: float | None = None  # the provider's Retry-After, seconds
    suppress: bool = False  # failed because the address cannot receive
    suppress_reason: str = ""  # the provider's reason code for it, if it gave one


def classify(error: BaseException | None) -> Classified:
    """The outcome of a send that raised `error` (None: it was accepted)."""
    if error is None:
        return Classified(SendOutcome.SENT)
    if isinstance(error, ChannelUnavailableError):  # before TransientSendError: a subclass
        return Classified(SendOutcome.CHANNEL_STOPPED, str(error))
    if isinstance(error, TransientSendError):
        return Classified(SendOutcome.RETRY, str(error), retry_after=error.retry_after)
    if isinstance(error, PermanentSendError):
        return Classified(
            SendOutcome.FAILED, str(error), suppress=error.suppress, suppress_reason=error.reason
        )
    if isinstance(error, AmbiguousSendError):
        return Classified(SendOutcome.AMBIGUOUS, str(error))
    # our own bug, or a network error, after the request may have left: never resend
    return Classified(SendOutcome.AMBIGUOUS, f"unexpected {type(error).__name__}: {error}")


class MessageKind(StrEnum):
    TOUCH = "touch"
    NOTIFICATION = "notification"
    CONFIRMATION = "confirmation"
    INTRO = "intro"  # the lead's hand-off message introducing their rep


@dataclass(frozen=True)
class RetryPolicy:
    """When a message that provably did not leave is tried again, and when we give up.

    The n-th failed attempt waits `first_delay * 2**(n-1)`, at most `max_delay` (a
    provider's Retry-After wins, at least a second). We give up once `max_attempts` were
    made, or once the message is older than `max_age` (for a kind that does not count
    its attempts)."""

    kind: str
    first_delay: timedelta
    max_delay: timedelta
    max_attempts: int | None
    max_age: timedelta | None
    why: str

    def delay(self, attempts: int, retry_after: float | None = None) -> timedelta:
        """How long to wait after `attempts` failed attempts."""
        if retry_after is not None:
            return timedelta(seconds=max(1.0, retry_after))
        backoff = self.first_delay * 2 ** max(0, attempts - 1)
        return min(self.max_delay, backoff)

    def gives_up(
        self, attempts: int, *, since: datetime | None = None, now: datetime | None = None
    ) -> bool:
        """True once `attempts` attempts were made (or the message, first recorded at
        `since`, is older than `max_age` at `now`): it is failed, not retried."""
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        if self.max_age is not None and since is not None and now is not None:
            return now - since >= self.max_age
        return False

    def gave_up(self, attempts: int, error: str | None) -> str:
        """The error a message that was given up on is recorded with."""
        return f"gave up after {attempts} attempts: {error}"


POLICIES: dict[str, RetryPolicy] = {
    MessageKind.TOUCH: RetryPolicy(
        MessageKind.TOUCH,
        first_delay=timedelta(seconds=30),
        max_delay=timedelta(hours=1),
        max_attempts=8,
        max_age=None,
        why=(
            "marketing can wait: 30 s doubling to an hour spans about two hours of "
            "provider trouble over 8 attempts before the touch is failed, and every "
            "attempt was also retried in place by the channel pool"
        ),
    ),
    MessageKind.NOTIFICATION: RetryPolicy(
        MessageKind.NOTIFICATION,
        first_delay=timedelta(seconds=15),
        max_delay=timedelta(minutes=5),
        max_attempts=6,
        max_age=None,
        why=(
            "a rep must hear within the SLA: 15 s doubling, capped at 5 minutes, gives up "
            "after 6 attempts (about 8 minutes) so a failed notification shows while the "
            "SLA can still be met by the manager or the queue"
        ),
    ),
    MessageKind.CONFIRMATION: RetryPolicy(
        MessageKind.CONFIRMATION,
        first_delay=timedelta(0),
        max_delay=timedelta(0),
        max_attempts=None,
        max_age=timedelta(days=2),
        why=(
            "retried at each intake pass (form submissions keep no attempt count or "
            "due time); given up 2 days after the sign-up, when a confirmation email "
            "would come too late to be recognised"
        ),
    ),
    MessageKind.INTRO: RetryPolicy(
        MessageKind.INTRO,
        first_delay=timedelta(seconds=30),
        max_delay=timedelta(minutes=10),
        max_attempts=6,
        max_age=None,
        why=(
            "the lead should hear within minutes that a person is coming: 30 s doubling, "
            "capped at 10 minutes, gives up after 6 attempts (about 16 minutes); later, "
            "the rep's own first contact would overtake it"
        ),
    ),
}


def policy(kind: str) -> RetryPolicy:
    """The retry policy of a kind of message; a kind must register one in POLICIES."""
    try:
        return POLICIES[kind]
    except KeyError:
        raise KeyError(f"no retry policy for message kind {kind!r} (see POLICIES)") from None
