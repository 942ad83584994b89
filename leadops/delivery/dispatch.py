"""The dispatcher: claims due touches, applies the contact policy, renders, sends, records.

Exactly-once rules:
- A touch row exists (UNIQUE per lead, campaign version, step, channel) before anything
  is sent; the dispatcher only ever sends a row it has claimed.
- Before a request leaves, the row is committed as `sending`. If the process dies there,
  recovery cannot know whether the message arrived: unless the channel can prove it
  (the file outbox can), the row becomes `ambiguous` and is never re-sent automatically.
- Only failures that provably did not deliver go back to `pending` for a retry.
- A touch whose contact decision or composition raises (bad lead data, a bug) is marked
  `dead_letter` with its error before anything is sent for it, and the rest of the batch
  goes on; only `leadops deadletters retry` puts it back to `pending`.

Throughput: a claimed batch is decided and rendered at once, holds and skips are written
in one statement, and sends go out in chunks (`dispatch_chunk_size`, at least one per
sending thread) through each channel's pool (threads behind a token bucket): one commit
per chunk, not per message, which carries the chunk's `sending` mark and the outcomes known
so far. A chunk is committed as `sending` before any of it is handed to the pool, and at
most two chunks are in flight, so a crash leaves at most two chunks in doubt.

Several dispatcher processes may share one database (`run_workers`, `leadops run
--workers N`): each claims its own batches under its own claim token. On PostgreSQL the
claim skips rows another worker has locked (SKIP LOCKED); on SQLite the claiming UPDATE
takes the write lock and only turns rows that are still `pending` into claimed ones, and
each worker then reads back only the rows carrying its token, so no row is ever claimed
by two workers. Interrupted (Ctrl-C, SIGTERM, or its parent gone), `run_workers` stops
each process with SIGTERM: sends not started are cancelled (back to `pending`), those on
the wire finish and every outcome is recorded; a process still running after
STOP_GRACE_SECONDS is killed, and the rows it left `claimed` or `sending` are resolved by
the lease rules above, never re-sent while in doubt.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing import connection as mp_connection
from multiprocessing.connection import Connection as PipeEnd
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col
from sqlmodel import select as sqlmodel_select

from leadops import deadletters
from leadops.core.bulk import bulk_update
from leadops.core.clock import Clock, clock_for
from leadops.core.interrupts import signals_held
from leadops.core.settings import Settings
from leadops.delivery.campaigns import Campaign, StoredCampaigns
from leadops.delivery.compose import compose
from leadops.delivery.policy import Action, Caps, ContactFacts, Decision, Reason, SendWindow, decide
from leadops.delivery.pool import Attempt, ChannelPool, NotAttempted
from leadops.delivery.render import Renderer, RenderError
from leadops.models import (
    LEADS,
    SENT_TOUCH_STATUSES,
    TOUCHES,
    Channel,
    DeadLetterItem,
    Lead,
    TouchStatus,
)
from leadops.providers.base import (
    AmbiguousSendError,
    ChannelSender,
    ChannelUnavailableError,
    OutgoingMessage,
    PermanentSendError,
    TransientSendError,
)

log = logging.getLogger("leadops.dispatch")

MAX_TRANSIENT_ATTEMPTS = 8
RENDER_RETRY = timedelta(hours=1)
ProgressCallback = Callable[[int], None]


class ClaimedTouch(NamedTuple):
    """The columns of a claimed touch the dispatcher works with."""

    id: int
    lead_id: int
    campaign_version_id: int
    campaign: str
    step: str
    channel: str
    attempts: int


CLAIMED_COLUMNS = ClaimedTouch._fields


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

    @property
    def sent_total(self) -> int:
        return sum(self.sent.values())

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


def contact_facts(lead: Lead) -> ContactFacts:
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
    )


def retry_delay(attempts: int, retry_after: float | None) -> timedelta:
    """Exponential backoff from 30 s, capped at an hour; a provider's Retry-After wins."""
    if retry_after is not None:
        return timedelta(seconds=max(1.0, retry_after))
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        *,
        channels: Mapping[str, ChannelSender],
        renderer: Renderer,
        settings: Settings,
        clock: Clock,
        stored: StoredCampaigns,
    ) -> None:
        self.engine = engine
        self.channels = channels
        self.renderer = renderer
        self.settings = settings
        self.clock = clock
        self.window = SendWindow(
            settings.send_window_start, settings.send_window_end, settings.weekday_numbers
        )
        self.caps = Caps(settings.cap_per_day, settings.cap_per_week)
        self._campaigns = stored

    # -- recovery -----------------------------------------------------------------------

    def recover_stale(self) -> int:
        """Release expired claims: unsent rows go back to pending, in-flight ones are resolved.

        A `sending` row whose lease expired belonged to a dispatcher that died mid-request:
        it becomes `sent` if the channel can prove delivery, otherwise `ambiguous`.
        """
        now = self.clock.now()
        recovered = 0
        t = TOUCHES.c
        with self.engine.begin() as conn:
            released = conn.execute(
                update(TOUCHES)
                .where(t.status == TouchStatus.CLAIMED, t.lease_until < now)
                .values(
                    status=TouchStatus.PENDING, claim_token=None, lease_until=None, updated_at=now
                )
            )
            recovered += released.rowcount
            stuck = conn.execute(
                select(t.id, t.channel, t.campaign, t.step).where(
                    t.status == TouchStatus.SENDING, t.lease_until < now
                )
            ).all()
            for touch_id, channel_name, campaign, step in stuck:
                channel = self.channels.get(channel_name)
                proof = channel.find_sent(touch_id, campaign, step) if channel else None
                if proof is not None:
                    values = {"status": TouchStatus.SENT, "provider_id": proof, "sent_at": now}
                else:
                    values = {
                        "status": TouchStatus.AMBIGUOUS,
                        "error": "dispatcher stopped while sending; delivery unknown, not re-sent",
                    }
                conn.execute(
                    update(TOUCHES)
                    .where(t.id == touch_id)
                    .values(claim_token=None, lease_until=None, updated_at=now, **values)
                )
                recovered += 1
        if recovered:
            log.warning("recovered %d touches left by a stopped dispatcher", recovered)
        return recovered

    # -- claiming -----------------------------------------------------------------------

    def claim(self, limit: int) -> tuple[str, list[ClaimedTouch]]:
        """Claim up to `limit` due touches for this dispatcher, in one UPDATE ... RETURNING
        (its due rows picked with SKIP LOCKED on PostgreSQL)."""
        now = self.clock.now()
        token = uuid.uuid4().hex
        t = TOUCHES.c
        due = (
            select(t.id)
            .where(t.status == TouchStatus.PENDING, t.not_before <= now)
            .order_by(t.not_before, t.id)
            .limit(limit)
        )
        if self.engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        # Materialized: picked once. (As a plain IN subquery PostgreSQL may run it again
        # for the rows it meant to update, and each run skips the rows the last one locked.)
        picked = due.cte("due").prefix_with("MATERIALIZED", dialect="postgresql")
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(TOUCHES)
                .where(t.id.in_(select(picked.c.id)), t.status == TouchStatus.PENDING)
                .values(
                    status=TouchStatus.CLAIMED,
                    claim_token=token,
                    lease_until=now + timedelta(seconds=self.settings.claim_lease_seconds),
                    updated_at=now,
                )
                .returning(*(t[name] for name in CLAIMED_COLUMNS))
            ).all()
        return token, sorted((ClaimedTouch(*row) for row in rows), key=lambda c: c.id)

    # -- the loop -----------------------------------------------------------------------

    def run(self, *, progress: ProgressCallback | None = None) -> DispatchReport:
        """Dispatch every touch that is due now, batch by batch, until none is left.

        Sending is pipelined: while one chunk is on the wire, the next is decided and
        rendered, and the next batch is claimed."""
        report = DispatchReport()
        report.recovered = self.recover_stale()
        pools = {
            name: ChannelPool(
                channel,
                attempts=self.settings.provider_retry_attempts,
                max_wait=self.settings.provider_retry_max_wait_seconds,
            )
            for name, channel in self.channels.items()
        }
        threads = sum(pool.channel.concurrency for pool in pools.values())
        flight = _Flight(chunk=max(self.settings.dispatch_chunk_size, threads))
        completed = False
        try:
            while True:
                token, batch = self.claim(self.settings.dispatch_batch_size)
                if not batch:
                    break
                self._dispatch_batch(token, batch, pools, flight, report)
                if progress is not None:
                    progress(len(batch))
            completed = True
        finally:
            # Stopped by an error: sends not started yet are cancelled (and go back to
            # pending); sends on the wire finish, and every outcome known is recorded.
            for pool in pools.values():
                pool.close(cancel=not completed)
            flight.drain(0)
            self._record_attempts(flight.take_finished(), report)
        return report

    def _history(
        self, session: Session, batch: list[ClaimedTouch]
    ) -> tuple[set[tuple[int, str, str, str]], dict[int, list[datetime]]]:
        """Steps already sent (or in doubt) per lead, and each lead's sends of the last week."""
        lead_ids = {touch.lead_id for touch in batch}
        batch_ids = {touch.id for touch in batch}
        week_ago = self.clock.now() - timedelta(days=7)
        recent: dict[int, list[datetime]] = defaultdict(list)
        done: set[tuple[int, str, str, str]] = set()
        t = TOUCHES.c
        rows = session.execute(
            select(t.id, t.lead_id, t.campaign, t.step, t.channel, t.status, t.sent_at).where(
                t.lead_id.in_(lead_ids),
                t.status.in_([*SENT_TOUCH_STATUSES, TouchStatus.SENDING, TouchStatus.AMBIGUOUS]),
            )
        ).all()
        for touch_id, lead_id, campaign, step, channel, status, sent_at in rows:
            if touch_id in batch_ids:
                continue
            done.add((lead_id, campaign, step, channel))
            if status in SENT_TOUCH_STATUSES and sent_at and sent_at > week_ago:
                recent[lead_id].append(sent_at)
        return done, recent

    def _dispatch_batch(
        self,
        token: str,
        batch: list[ClaimedTouch],
        pools: Mapping[str, ChannelPool],
        flight: _Flight,
        report: DispatchReport,
    ) -> None:
        """Decide and render the batch chunk by chunk; each chunk is committed as `sending`
        before any of it is handed to a channel pool. Holds and skips are written at once."""
        now = self.clock.now()
        with Session(self.engine, expire_on_commit=False) as session:
            leads = {
                lead.id: lead
                for lead in session.exec(
                    sqlmodel_select(Lead).where(col(Lead.id).in_({t.lead_id for t in batch}))
                )
            }
            done, recent = self._history(session, batch)
            campaigns: dict[int, Campaign | Exception] = {}
            for version_id in {touch.campaign_version_id for touch in batch}:
                try:
                    campaigns[version_id] = self._campaigns.get(session, version_id)
                except Exception as exc:  # its touches are set aside below, one by one
                    if deadletters.must_raise(exc):
                        raise
                    campaigns[version_id] = exc
        outcomes: list[dict[str, Any]] = []
        dead: list[tuple[ClaimedTouch, str]] = []
        # One connection for the whole batch: its transaction per chunk doesn't check a
        # connection out of the pool (and ping the server) each time.
        with self.engine.connect() as conn:
            for start in range(0, len(batch), flight.chunk):
                ready: list[tuple[ClaimedTouch, OutgoingMessage]] = []
                for touch in batch[start : start + flight.chunk]:
                    key = (touch.lead_id, touch.campaign, touch.step, touch.channel)
                    try:
                        lead = leads[touch.lead_id]
                        decision = decide(
                            channel=touch.channel,
                            lead=contact_facts(lead),
                            now=now,
                            window=self.window,
                            caps=self.caps,
                            recent_sends=recent[touch.lead_id],
                            already_sent=key in done,
                        )
                        if decision.action != Action.SEND:
                            outcomes.append(self._not_now(touch, decision, report))
                            continue
                        campaign = campaigns[touch.campaign_version_id]
                        if isinstance(campaign, Exception):
                            raise campaign
                        message = compose(
                            touch_id=touch.id,
                            lead=lead,
                            channel=touch.channel,
                            campaign=campaign,
                            step_key=touch.step,
                            renderer=self.renderer,
                            settings=self.settings,
                            now=now,
                        )
                    except RenderError as exc:
                        log.error("touch %s held: %s", touch.id, exc)
                        report.held[Reason.RENDER_ERROR] += 1
                        report.count(touch, f"held:{Reason.RENDER_ERROR}")
                        report.errors.append(f"touch {touch.id}: {exc}")
                        outcomes.append(
                            _row(
                                touch,
                                status=TouchStatus.PENDING,
                                hold_reason=Reason.RENDER_ERROR,
                                not_before=now + RENDER_RETRY,
                                error=str(exc),
                            )
                        )
                        continue
                    except Exception as exc:
                        if deadletters.must_raise(exc):
                            raise
                        error = deadletters.describe(exc)
                        log.error("touch %s set aside: %s", touch.id, error)
                        report.dead_letters += 1
                        report.count(touch, "dead_letter")
                        report.errors.append(f"touch {touch.id}: {error}")
                        dead.append((touch, error))
                        outcomes.append(
                            _row(
                                touch,
                                status=TouchStatus.DEAD_LETTER,
                                hold_reason=None,
                                not_before=now,
                                error=error,
                            )
                        )
                        continue
                    # Counted against the caps now; a message that then fails only makes the
                    # rest of this batch more careful, never less.
                    recent[touch.lead_id].append(now)
                    done.add(key)
                    ready.append((touch, message))
                if ready:
                    # The outcomes known so far are written with this chunk's `sending`
                    # mark: one transaction per chunk.
                    with conn.begin():
                        self._record_attempts(flight.take_finished(), report, conn)
                        owned = self._mark_sending(token, ready, conn)
                    for touch, message in ready:
                        if touch.id not in owned:
                            log.warning("touch %s was taken over by another dispatcher", touch.id)
                            continue
                        flight.submit(token, touch, message, pools[touch.channel].submit(message))
                flight.drain(flight.chunk)
            with conn.begin():
                self._record_attempts(flight.take_finished(), report, conn)
                self._record(token, outcomes, conn)
                for touch, error in dead:
                    deadletters.record(
                        conn,
                        item=DeadLetterItem.TOUCH,
                        item_id=touch.id,
                        stage="dispatch",
                        error=error,
                        payload={"campaign": touch.campaign, "step": touch.step},
                        now=now,
                    )

    @staticmethod
    def _not_now(touch: ClaimedTouch, decision: Decision, report: DispatchReport) -> dict[str, Any]:
        """The outcome row of a touch the policy skips or holds."""
        assert decision.reason is not None
        if decision.action == Action.SKIP:
            report.skipped[decision.reason] += 1
            report.count(touch, f"skipped:{decision.reason}")
            return _row(touch, status=TouchStatus.SKIPPED, hold_reason=decision.reason)
        assert decision.retry_at is not None
        report.held[decision.reason] += 1
        report.count(touch, f"held:{decision.reason}")
        return _row(
            touch,
            status=TouchStatus.PENDING,
            hold_reason=decision.reason,
            not_before=decision.retry_at,
        )

    def _mark_sending(
        self, token: str, chunk: list[tuple[ClaimedTouch, OutgoingMessage]], conn: Connection
    ) -> set[int]:
        """Commit the chunk as `sending` (the point of no automatic return); only rows this
        dispatcher still owns are returned, and only those may be sent. (A claim that
        outlived its lease may have been taken over by another dispatcher.)"""
        now = self.clock.now()
        t = TOUCHES.c
        lease = now + timedelta(seconds=self.settings.claim_lease_seconds)
        ids = [touch.id for touch, _ in chunk]
        with self._transaction(conn):
            owned = set(
                conn.execute(
                    update(TOUCHES)
                    .where(t.id.in_(ids), t.claim_token == token, t.status == TouchStatus.CLAIMED)
                    .values(
                        status=TouchStatus.SENDING,
                        attempts=t.attempts + 1,
                        lease_until=lease,
                        updated_at=now,
                    )
                    .returning(t.id)
                ).scalars()
            )
        return owned

    def _record_attempts(
        self,
        attempts: list[tuple[str, ClaimedTouch, Attempt]],
        report: DispatchReport,
        conn: Connection | None = None,
    ) -> None:
        if not attempts:
            return
        now = self.clock.now()
        outcomes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        suppress: list[tuple[int, str, str]] = []
        for token, touch, attempt in attempts:
            tries = touch.attempts + 1
            subject = attempt.message.subject[:400] or None
            error = attempt.error
            if attempt.result is not None:
                report.sent[(touch.campaign, touch.step, touch.channel)] += 1
                report.count(touch, "sent")
                outcomes[token].append(
                    _row(
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
                )
            elif isinstance(error, ChannelUnavailableError):
                # Nothing left for this channel: the touch waits, however long the outage.
                report.held[Reason.PROVIDER_RETRY] += 1
                report.count(touch, f"held:{Reason.PROVIDER_RETRY}")
                report.errors.append(f"touch {touch.id}: {error}")
                outcomes[token].append(
                    _row(
                        touch,
                        subject=subject,
                        status=TouchStatus.PENDING,
                        hold_reason=Reason.PROVIDER_RETRY,
                        not_before=now + retry_delay(1, None),
                        attempts=touch.attempts,
                        error=str(error),
                    )
                )
            elif isinstance(error, TransientSendError):
                if tries >= MAX_TRANSIENT_ATTEMPTS:
                    report.failed += 1
                    report.count(touch, "failed")
                    outcomes[token].append(
                        _row(
                            touch,
                            subject=subject,
                            status=TouchStatus.FAILED,
                            error=f"gave up after {tries} attempts: {error}",
                        )
                    )
                else:
                    report.held[Reason.PROVIDER_RETRY] += 1
                    report.count(touch, f"held:{Reason.PROVIDER_RETRY}")
                    outcomes[token].append(
                        _row(
                            touch,
                            subject=subject,
                            status=TouchStatus.PENDING,
                            hold_reason=Reason.PROVIDER_RETRY,
                            not_before=now + retry_delay(tries, error.retry_after),
                            error=str(error),
                        )
                    )
            elif isinstance(error, PermanentSendError):
                report.failed += 1
                report.count(touch, "failed")
                outcomes[token].append(
                    _row(touch, subject=subject, status=TouchStatus.FAILED, error=str(error))
                )
                if error.suppress:
                    suppress.append((touch.lead_id, touch.channel, str(error)))
            elif isinstance(error, AmbiguousSendError):
                report.ambiguous += 1
                report.count(touch, "ambiguous")
                outcomes[token].append(
                    _row(touch, subject=subject, status=TouchStatus.AMBIGUOUS, error=str(error))
                )
            else:  # our own bug after the request may have left: never resend
                report.ambiguous += 1
                report.count(touch, "ambiguous")
                outcomes[token].append(
                    _row(
                        touch,
                        subject=subject,
                        status=TouchStatus.AMBIGUOUS,
                        error=f"unexpected {type(error).__name__}: {error}",
                    )
                )
        for token, rows in outcomes.items():
            self._record(token, rows, conn)
        for lead_id, channel, reason in suppress:
            self._suppress(lead_id, channel, reason, conn)

    def _record(
        self, token: str, outcomes: list[dict[str, Any]], conn: Connection | None = None
    ) -> None:
        """Write outcomes in one transaction (on `conn`, else a connection of its own), only
        for rows this dispatcher still owns."""
        if not outcomes:
            return
        now = self.clock.now()
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for outcome in outcomes:
            groups[tuple(sorted(outcome))].append(outcome)
        with self._transaction(conn) as conn:
            for columns, rows in groups.items():
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
                    where=[TOUCHES.c.claim_token == token],
                )

    @contextmanager
    def _transaction(self, conn: Connection | None) -> Iterator[Connection]:
        """A transaction on `conn` (the one it is in, if any), or on a connection of its own
        when None."""
        if conn is None:
            with self.engine.begin() as own:
                yield own
        elif conn.in_transaction():
            yield conn
        else:
            with conn.begin():
                yield conn

    def _suppress(
        self, lead_id: int, channel: str, reason: str, conn: Connection | None = None
    ) -> None:
        now = self.clock.now()
        column = "email" if channel == Channel.EMAIL else "whatsapp"
        with self._transaction(conn) as conn:
            conn.execute(
                update(LEADS)
                .where(LEADS.c.id == lead_id)
                .values(
                    {
                        f"{column}_suppressed_at": now,
                        f"{column}_suppression_reason": reason[:100],
                        "updated_at": now,
                    }
                )
            )


class _Flight:
    """Sends handed to channel pools and not yet recorded, across chunks and batches."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.inflight: dict[Future[Attempt], tuple[str, ClaimedTouch, OutgoingMessage]] = {}
        self.finished: list[tuple[str, ClaimedTouch, Attempt]] = []

    def submit(
        self, token: str, touch: ClaimedTouch, message: OutgoingMessage, future: Future[Attempt]
    ) -> None:
        self.inflight[future] = (token, touch, message)

    def _finish(self, future: Future[Attempt]) -> None:
        token, touch, message = self.inflight.pop(future)
        if future.cancelled():
            attempt = Attempt(message, error=NotAttempted("dispatcher stopped before sending"))
        else:
            attempt = future.result()
        self.finished.append((token, touch, attempt))

    def _collect(self) -> None:
        """Move every finished send (done() includes cancelled ones) to `finished`."""
        for future in [f for f in self.inflight if f.done()]:
            self._finish(future)

    def take_finished(self) -> list[tuple[str, ClaimedTouch, Attempt]]:
        """The sends finished so far (without waiting), forgotten here."""
        self._collect()
        finished, self.finished = self.finished, []
        return finished

    def drain(self, limit: int) -> None:
        """Wait until at most `limit` sends are in flight."""
        while True:
            # cancelled futures count as done: wait() would never return them
            self._collect()
            if len(self.inflight) <= limit:
                return
            # Wait on the oldest send only: sends finish roughly in order, and waiting on
            # one future is cheap where waiting on all of them locks each one every time.
            wait([next(iter(self.inflight))])


def _row(touch: ClaimedTouch, **values: Any) -> dict[str, Any]:
    return {"id": touch.id, **values}


def worker_settings(settings: Settings, workers: int) -> Settings:
    """One worker's share of the provider limits: rates and concurrency are totals."""
    if workers == 1:
        return settings
    return settings.model_copy(
        update={
            "dispatch_workers": 1,
            "sendgrid_rate_per_second": settings.sendgrid_rate_per_second / workers,
            "twilio_rate_per_second": settings.twilio_rate_per_second / workers,
            "sendgrid_concurrency": max(1, math.ceil(settings.sendgrid_concurrency / workers)),
            "twilio_concurrency": max(1, math.ceil(settings.twilio_concurrency / workers)),
        }
    )


def dispatch_worker(settings: Settings, at: datetime | None) -> DispatchReport:
    """One dispatcher process: its own engine, channels, Dispatcher and claim tokens."""
    from leadops.nurture.runtime import load_runtime  # leadops.nurture imports us
    from leadops.nurture.tick import run_dispatch

    runtime = load_runtime(settings)
    try:
        return run_dispatch(runtime, clock_for(at))
    finally:
        runtime.engine.dispose()


STOP_GRACE_SECONDS = 2.0  # after SIGTERM, for a dispatcher process to record and exit


class WorkerStopped(BaseException):
    """Raised in a dispatcher process by SIGTERM: it stops sending and records what it knows."""


class WorkerFailed(RuntimeError):
    """A dispatcher process ended without a report (it was stopped, killed or crashed)."""


class _RemoteTraceback(Exception):
    """The traceback of an error raised in a dispatcher process, as text."""

    def __str__(self) -> str:
        return str(self.args[0])


def _stop_worker(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: let the clean-up finish
    raise WorkerStopped


def _watch_parent() -> None:
    """Stop this dispatcher process when the process that started it has ended."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(conn: PipeEnd, settings: Settings, at: datetime | None) -> None:
    """The body of a dispatcher process started by run_workers; its outcome goes to `conn`.

    Ctrl-C is the parent's to handle (SIGINT is ignored here); SIGTERM, from the parent or
    sent when the parent has ended, stops the dispatcher: sends not started are cancelled,
    those on the wire finish and every outcome known is recorded (Dispatcher.run), and the
    process exits quietly. Rows it left `claimed` or `sending` are resolved by the lease
    rules of the next run.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    # started with both blocked (run_workers): a signal that came meanwhile arrives now
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    threading.Thread(target=_watch_parent, name="watch-parent", daemon=True).start()
    outcome: tuple[str, Any]
    try:
        try:
            outcome = ("report", dispatch_worker(settings, at))
        except Exception as exc:
            outcome = ("error", (exc, traceback.format_exc()))
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # done: nothing left to stop
    except WorkerStopped:  # (its handler has set SIGTERM to be ignored from now on)
        outcome = ("stopped", None)
    with conn:
        try:
            conn.send(outcome)
        except Exception:  # an outcome that does not pickle is sent as text
            detail = WorkerFailed(f"{outcome[0]}: {outcome[1]!r}"[:4000])
            conn.send(("error", (detail, traceback.format_exc())))


def stop_processes(processes: list[BaseProcess], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every process still running, SIGKILL those not ended within `grace`
    seconds, and wait for all of them. Ctrl-C and SIGTERM wait until it is done."""
    with signals_held():
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + grace
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                log.warning(
                    "dispatcher process %s did not stop within %.0f s: killed", process.pid, grace
                )
                process.kill()
                process.join()


def run_workers(
    settings: Settings,
    at: datetime | None,
    workers: int,
    *,
    progress: ProgressCallback | None = None,
) -> DispatchReport:
    """Dispatch everything due at `at` (None: now) with `workers` processes sharing the
    database and the provider limits; their reports are merged. Every worker runs to its
    end even when another fails; then the first failure is raised.

    Interrupted here (Ctrl-C, SIGTERM, any exception), it stops the workers first
    (stop_processes) and waits for them, then lets the interrupt go on: no dispatcher
    outlives the command or flow run that started it.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    share = worker_settings(settings, workers)
    report = DispatchReport()
    failures: list[BaseException] = []
    # spawn: a fresh interpreter per worker, no engine, pool or thread inherited by fork
    context = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = []
    waiting: dict[PipeEnd, BaseProcess] = {}
    try:
        with signals_held():  # no worker half-started, none started unseen
            for number in range(1, workers + 1):
                reader, writer = context.Pipe(duplex=False)
                process: BaseProcess = context.Process(
                    target=_worker_main,
                    args=(writer, share, at),
                    name=f"leadops-dispatch-{number}",
                    daemon=True,
                )
                process.start()
                writer.close()
                processes.append(process)
                waiting[reader] = process
        while waiting:
            for ready in mp_connection.wait(list(waiting)):
                assert isinstance(ready, PipeEnd)
                process = waiting.pop(ready)
                try:
                    kind, payload = ready.recv()
                except EOFError:
                    process.join(STOP_GRACE_SECONDS)
                    kind, payload = "lost", process.exitcode
                finally:
                    ready.close()
                if kind == "report":
                    report.merge(payload)
                    report.worker_sent.append(payload.sent_total)
                    if progress is not None:
                        done = payload.sent_total + sum(payload.held.values())
                        progress(done + sum(payload.skipped.values()))
                    continue
                if kind == "error":
                    error, text = payload
                    error.__cause__ = _RemoteTraceback(text)
                elif kind == "stopped":
                    error = WorkerFailed(
                        f"dispatcher process {process.pid} was stopped (SIGTERM) before it "
                        "finished; the next run sends what it left"
                    )
                else:
                    error = WorkerFailed(
                        f"dispatcher process {process.pid} ended without a report (exit code "
                        f"{payload}); the next run resolves what it left"
                    )
                log.error("a dispatcher worker failed: %s", error)  # raised once all ended
                failures.append(error)
        for process in processes:  # each has reported and is exiting
            process.join()
    finally:
        stop_processes(processes)
        for reader in waiting:
            reader.close()
    if failures:
        raise failures[0]
    return report
