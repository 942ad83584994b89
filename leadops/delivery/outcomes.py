"""What a dispatched touch ends as, and how outcomes are counted and written.

- A send's outcome comes from the one classification (leadops.delivery.sending): only
  failures that provably did not deliver go back to `pending` for a retry, a transient
  error (within the touch RetryPolicy) or a channel found unavailable. An ambiguous
  error, or our own bug after the request may have left, is never re-sent.
- Outcomes are written in bulk, only for rows their dispatcher still owns (its claim token).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import or_
from sqlalchemy.engine import Connection, Engine

from leadops.core.bulk import bulk_update
from leadops.core.clock import Clock
from leadops.delivery.policy import Reason
from leadops.delivery.pool import Attempt
from leadops.delivery.sending import POLICIES, MessageKind, SendOutcome, classify
from leadops.models import TOUCHES, Channel, TouchStatus
from leadops.models.touch_states import sources
from leadops.models.vocab import SuppressionReason

RENDER_RETRY = timedelta(hours=1)


class ClaimedTouch(NamedTuple):
    """The columns of a claimed touch the dispatcher works with."""

    id: int
    lead_id: int
    campaign_version_id: int
    campaign: str
    step: str
    channel: str
    attempts: int
    variant: str | None = None  # the step's A/B variant (touches.variant)


CLAIMED_COLUMNS = ClaimedTouch._fields


class Outcome(NamedTuple):
    """What one send attempt ends as: the row to write and what the report counts."""

    kind: str  # sent, held, failed or ambiguous
    row: dict[str, Any]
    reason: Reason | None = None  # why it is held
    error: str | None = None  # kept in the report's errors
    suppress: SuppressionReason | None = None  # the lead's channel is suppressed, for this


@dataclass
class DispatchReport:
    sent: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    held: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    ambiguous: int = 0
    dead_letters: int = 0  # touches set aside: their decision or composition raised
    recovered: int = 0
    errors: list[str] = field(default_factory=list)
    # (campaign, step, channel, outcome): outcome is sent, failed, ambiguous,
    # held:<reason> or skipped:<reason>; the per-run table of the nurture flow.
    outcomes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    # Messages sent by each dispatcher process, when several ran (run_workers).
    worker_sent: list[int] = field(default_factory=list)

    def count(self, touch: ClaimedTouch, outcome: str) -> None:
        self.outcomes[(touch.campaign, touch.step, touch.channel, outcome)] += 1

    def add(self, touch: ClaimedTouch, outcome: Outcome) -> None:
        """Count the outcome of a send attempt."""
        if outcome.kind == "sent":
            self.sent[(touch.campaign, touch.step, touch.channel)] += 1
            self.count(touch, "sent")
        elif outcome.kind == "held":
            assert outcome.reason is not None
            self.held[outcome.reason] += 1
            self.count(touch, f"held:{outcome.reason}")
        elif outcome.kind == "failed":
            self.failed += 1
            self.count(touch, "failed")
        else:
            self.ambiguous += 1
            self.count(touch, "ambiguous")
        if outcome.error is not None:
            self.errors.append(outcome.error)

    @property
    def sent_total(self) -> int:
        return sum(self.sent.values())

    def counts(self) -> dict[str, int]:
        """The totals a tick reports (the nurture flow's result, `leadops run`'s line)."""
        return {
            "sent": self.sent_total,
            "held": sum(self.held.values()),
            "skipped": sum(self.skipped.values()),
            "failed": self.failed,
            "ambiguous": self.ambiguous,
            "dead_letters": self.dead_letters,
        }

    def merge(self, other: DispatchReport) -> None:
        self.sent.update(other.sent)
        self.held.update(other.held)
        self.skipped.update(other.skipped)
        self.failed += other.failed
        self.ambiguous += other.ambiguous
        self.dead_letters += other.dead_letters
        self.recovered += other.recovered
        self.errors.extend(other.errors)
        self.outcomes.update(other.outcomes)
        self.worker_sent.extend(other.worker_sent)


def log_summary(logger: logging.Logger, now: datetime, report: DispatchReport) -> None:
    """The one line a dispatch run logs when it is done."""
    logger.info(
        "dispatched %s: %d sent, %d held (%s), %d skipped, %d failed, %d ambiguous, "
        "%d set aside as dead letters, %d recovered from a stopped run",
        now.isoformat(),
        report.sent_total,
        sum(report.held.values()),
        ", ".join(f"{reason} {n}" for reason, n in sorted(report.held.items())) or "-",
        sum(report.skipped.values()),
        report.failed,
        report.ambiguous,
        report.dead_letters,
        report.recovered,
    )


TOUCH_RETRY = POLICIES[MessageKind.TOUCH]


def touch_row(touch: ClaimedTouch, **values: Any) -> dict[str, Any]:
    return {"id": touch.id, **values}


def attempt_outcome(touch: ClaimedTouch, attempt: Attempt, now: datetime) -> Outcome:
    """The status a send attempt leaves its touch in (a pure function of the attempt),
    from the one classification (leadops.delivery.sending) and the touch retry policy."""
    tries = touch.attempts + 1
    subject = attempt.message.subject[:400] or None
    answer = classify(attempt.error)
    if answer.outcome == SendOutcome.SENT:
        assert attempt.result is not None
        sent = touch_row(
            touch,
            subject=subject,
            status=TouchStatus.SENT,
            # cut to the columns: an overlong provider id must not fail the chunk
            provider_id=attempt.result.provider_id[:200],
            provider_message_id=attempt.result.provider_message_id[:100] or None,
            sent_at=now,
            hold_reason=None,
            error=None,
        )
        return Outcome("sent", sent)
    if answer.outcome == SendOutcome.CHANNEL_STOPPED:
        # Nothing left for this channel: the touch waits, however long the outage, and
        # the attempt does not count.
        waits = touch_row(
            touch,
            subject=subject,
            status=TouchStatus.PENDING,
            hold_reason=Reason.PROVIDER_RETRY,
            not_before=now + TOUCH_RETRY.delay(1),
            attempts=touch.attempts,
            error=answer.error,
        )
        return Outcome(
            "held", waits, Reason.PROVIDER_RETRY, error=f"touch {touch.id}: {answer.error}"
        )
    if answer.outcome == SendOutcome.RETRY:
        if TOUCH_RETRY.gives_up(tries):
            message = TOUCH_RETRY.gave_up(tries, answer.error)
            return Outcome(
                "failed",
                touch_row(touch, subject=subject, status=TouchStatus.FAILED, error=message),
            )
        retry = touch_row(
            touch,
            subject=subject,
            status=TouchStatus.PENDING,
            hold_reason=Reason.PROVIDER_RETRY,
            not_before=now + TOUCH_RETRY.delay(tries, answer.retry_after),
            error=answer.error,
        )
        return Outcome("held", retry, Reason.PROVIDER_RETRY)
    if answer.outcome == SendOutcome.FAILED:
        failed = touch_row(touch, subject=subject, status=TouchStatus.FAILED, error=answer.error)
        reason = bad_address(touch.channel, answer.suppress_reason) if answer.suppress else None
        return Outcome("failed", failed, suppress=reason)
    return Outcome(
        "ambiguous",
        touch_row(touch, subject=subject, status=TouchStatus.AMBIGUOUS, error=answer.error),
    )


def stopped_outcome(proof: str | None, now: datetime) -> tuple[TouchStatus, dict[str, Any]]:
    """What a touch a stopped dispatcher left `sending` becomes: `sent` when the channel
    proves it (`proof`), else `ambiguous`, never re-sent."""
    if proof is not None:
        return TouchStatus.SENT, {"provider_id": proof, "sent_at": now}
    error = "dispatcher stopped while sending; delivery unknown, not re-sent"
    return TouchStatus.AMBIGUOUS, {"error": error}


def bad_address(channel: str, reason: str = "") -> SuppressionReason:
    """The suppression reason of an address a provider refused on send (its words stay
    in the touch's error): the provider's reason code when it gave one."""
    if reason:
        return SuppressionReason(reason)
    if channel in (Channel.WHATSAPP, Channel.SMS):
        return SuppressionReason.INVALID_NUMBER
    return SuppressionReason.INVALID_ADDRESS


@contextmanager
def transaction(engine: Engine, conn: Connection | None) -> Iterator[Connection]:
    """A transaction on `conn` (the one it is in, if any), or on a connection of its own
    when None."""
    if conn is None:
        with engine.begin() as own:
            yield own
    elif conn.in_transaction():
        yield conn
    else:
        with conn.begin():
            yield conn


def write_outcomes(
    engine: Engine,
    clock: Clock,
    token: str,
    outcomes: list[dict[str, Any]],
    conn: Connection | None = None,
) -> None:
    """Write outcomes in one transaction (on `conn`, else a connection of its own), only
    for rows the dispatcher holding `token` still owns."""
    if not outcomes:
        return
    now = clock.now()
    groups: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    for outcome in outcomes:
        groups[(outcome["status"], tuple(sorted(outcome)))].append(outcome)
    with transaction(engine, conn) as conn:
        for (status, columns), rows in groups.items():
            # Values shared by the whole group are bound once, the rest per row.
            shared = {
                name: rows[0][name]
                for name in columns
                if name != "id" and all(row[name] == rows[0][name] for row in rows)
            }
            bulk_update(
                conn,
                TOUCHES,
                [{k: v for k, v in row.items() if k not in shared} for row in rows],
                shared={"claim_token": None, "lease_until": None, "updated_at": now, **shared},
                # only moves the transition table allows (touch_states); plain binds, no
                # IN list: an executemany cannot expand one
                where=[
                    TOUCHES.c.claim_token == token,
                    or_(*(TOUCHES.c.status == source for source in sources(status))),
                ],
            )
