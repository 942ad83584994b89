"""The one send-outcome classification and each kind's retry policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadops.delivery.outcomes import ClaimedTouch, attempt_outcome
from leadops.delivery.pool import Attempt, NotAttempted
from leadops.delivery.sending import (
    POLICIES,
    Classified,
    MessageKind,
    SendOutcome,
    classify,
    policy,
)
from leadops.intake.forms import confirmation_outcome
from leadops.models import FormSubmissionStatus, TouchStatus
from leadops.models.vocab import SuppressionReason
from leadops.providers.base import (
    AmbiguousSendError,
    ChannelUnavailableError,
    OutgoingMessage,
    PermanentSendError,
    SendError,
    SendResult,
    TransientSendError,
)

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, Classified(SendOutcome.SENT)),
        (TransientSendError("503"), Classified(SendOutcome.RETRY, "503")),
        (
            TransientSendError("429", retry_after=7.5),
            Classified(SendOutcome.RETRY, "429", retry_after=7.5),
        ),
        (ChannelUnavailableError("401 key"), Classified(SendOutcome.CHANNEL_STOPPED, "401 key")),
        (NotAttempted("stopped"), Classified(SendOutcome.CHANNEL_STOPPED, "stopped")),
        (PermanentSendError("400 template"), Classified(SendOutcome.FAILED, "400 template")),
        (
            PermanentSendError("400 bad address", suppress=True),
            Classified(SendOutcome.FAILED, "400 bad address", suppress=True),
        ),
        (AmbiguousSendError("timeout"), Classified(SendOutcome.AMBIGUOUS, "timeout")),
        (SendError("odd"), Classified(SendOutcome.AMBIGUOUS, "unexpected SendError: odd")),
        (OSError("reset"), Classified(SendOutcome.AMBIGUOUS, "unexpected OSError: reset")),
        (KeyError("x"), Classified(SendOutcome.AMBIGUOUS, "unexpected KeyError: 'x'")),
    ],
)
def test_every_provider_answer_has_one_outcome(
    error: BaseException | None, expected: Classified
) -> None:
    assert classify(error) == expected


def test_every_message_kind_states_its_policy_and_why() -> None:
    assert set(POLICIES) == set(MessageKind)
    for kind, rule in POLICIES.items():
        assert rule.kind == kind and len(rule.why) > 40
        assert rule.max_attempts is not None or rule.max_age is not None  # each gives up
    with pytest.raises(KeyError, match="no retry policy for message kind 'sms'"):
        policy("sms")


def test_backoff_doubles_to_its_cap_and_retry_after_wins() -> None:
    touch = POLICIES[MessageKind.TOUCH]
    assert [touch.delay(n).total_seconds() for n in (1, 2, 3, 8, 20)] == [30, 60, 120, 3600, 3600]
    notification = POLICIES[MessageKind.NOTIFICATION]
    assert [notification.delay(n).total_seconds() for n in (1, 2, 5, 9)] == [15, 30, 240, 300]
    assert touch.delay(3, retry_after=0.2) == timedelta(seconds=1)
    assert notification.delay(1, retry_after=90) == timedelta(seconds=90)


def _touch(attempts: int) -> ClaimedTouch:
    return ClaimedTouch(1, 2, 3, "welcome", "day0", "email", attempts)


def _attempt(error: BaseException | None = None) -> Attempt:
    message = OutgoingMessage(
        touch_id=1, lead_id=2, channel="email", to="a@example.com", campaign="welcome",
        step="day0", created_at=NOW, subject="Hi",
    )  # fmt: skip
    result = SendResult("sendgrid:x", "x") if error is None else None
    return Attempt(message, result=result, error=error)


def test_a_touch_is_retried_until_its_eighth_attempt_then_failed() -> None:
    error = TransientSendError("503")
    for attempts in range(7):  # attempts made before this one
        outcome = attempt_outcome(_touch(attempts), _attempt(error), NOW)
        assert outcome.kind == "held" and outcome.row["status"] == TouchStatus.PENDING
        assert outcome.row["not_before"] == NOW + POLICIES[MessageKind.TOUCH].delay(attempts + 1)
    last = attempt_outcome(_touch(7), _attempt(error), NOW)
    assert last.kind == "failed" and last.row["status"] == TouchStatus.FAILED
    assert last.row["error"] == "gave up after 8 attempts: 503"


def test_a_stopped_channel_does_not_count_against_a_touch() -> None:
    outcome = attempt_outcome(_touch(7), _attempt(ChannelUnavailableError("401")), NOW)
    assert outcome.kind == "held" and outcome.row["attempts"] == 7


def test_a_refused_address_is_suppressed_with_a_reason_code() -> None:
    bad = PermanentSendError("SendGrid 400: not a valid address", suppress=True)
    email = attempt_outcome(_touch(0), _attempt(bad), NOW)
    assert email.suppress == SuppressionReason.INVALID_ADDRESS
    whatsapp = attempt_outcome(_touch(0)._replace(channel="whatsapp"), _attempt(bad), NOW)
    assert whatsapp.suppress == SuppressionReason.INVALID_NUMBER
    assert attempt_outcome(_touch(0), _attempt(PermanentSendError("x")), NOW).suppress is None


def test_a_confirmation_is_retried_until_two_days_after_the_sign_up() -> None:
    answer = classify(TransientSendError("503"))
    young = confirmation_outcome(answer, NOW - timedelta(days=2) + timedelta(minutes=1), NOW)
    assert young == (FormSubmissionStatus.PENDING, "retry later: 503")
    old = confirmation_outcome(answer, NOW - timedelta(days=2), NOW)
    assert old == (FormSubmissionStatus.FAILED, "gave up (sign-up too old): 503")
    doubt = confirmation_outcome(classify(AmbiguousSendError("timeout")), NOW, NOW)
    assert doubt == (FormSubmissionStatus.SENDING, "ambiguous: timeout")
    assert confirmation_outcome(classify(None), NOW, NOW) == (FormSubmissionStatus.SENT, None)
