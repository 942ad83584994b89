"""The dispatcher: claims due touches, applies the contact policy, renders, sends, records.

Exactly-once rules:
- A touch row exists (UNIQUE per lead, campaign version, step, channel) before anything
  is sent; the dispatcher only ever sends a row it has claimed.
- Before a request leaves, the row is committed as `sending`. If the process dies there,
  recovery cannot know whether the message arrived: unless the channel can prove it
  (the file outbox can), the row becomes `ambiguous` and is never re-sent automatically.
- Only failures that provably did not deliver go back to `pending` for a retry
  (leadops.delivery.sending classifies each answer; outcomes maps it to a status).
- A touch whose contact decision or composition raises (bad lead data, a bug) is marked
  `dead_letter` with its error before anything is sent for it, and the rest of the batch
  goes on; only `leadops deadletters retry` puts it back to `pending`.

Throughput: a claimed batch is decided and rendered at once, holds and skips are written
in one statement, and sends go out in chunks (`dispatch_chunk_size`, at least one per
sending thread) through each channel's pool (threads behind a token bucket): one commit
per chunk, not per message, carrying the chunk's `sending` mark and the outcomes known. A
chunk is committed as `sending` before any of it is handed to the pool, and at most two
chunks are in flight (leadops.delivery.flight), so a crash leaves at most two in doubt.

Several dispatcher processes may share one database (leadops.delivery.workers, `leadops
run --workers N`): each claims its own batches under its own claim token. On PostgreSQL
the claim skips rows another worker has locked (SKIP LOCKED); on SQLite the claiming
UPDATE takes the write lock and only turns rows that are still `pending` into claimed
ones, and each worker then reads back only the rows carrying its token, so no row is ever
claimed by two workers. Rows a stopped process left `claimed` or `sending` are resolved by
the lease rules above (`recover_stale`), never re-sent while in doubt. Ctrl-C and SIGTERM
wait (leadops.core.interrupts) for a write transaction, and for a chunk marked `sending`
until all of it is in flight: the clean-up then records or returns every row of it.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col
from sqlmodel import select as sqlmodel_select

from leadops import deadletters
from leadops.core.clock import Clock
from leadops.core.interrupts import signals_held
from leadops.core.settings import Settings
from leadops.delivery.campaigns import Campaign, StoredCampaigns, open_pauses
from leadops.delivery.compose import compose, first_sms_to
from leadops.delivery.flight import Flight
from leadops.delivery.outcomes import (
    CLAIMED_COLUMNS,
    RENDER_RETRY,
    ClaimedTouch,
    DispatchReport,
    attempt_outcome,
    stopped_outcome,
    touch_row,
    transaction,
    write_outcomes,
)
from leadops.delivery.policy import (
    Action,
    Caps,
    Decision,
    Reason,
    SendWindow,
    contact_facts,
    decide,
)
from leadops.delivery.pool import Attempt, ChannelPool
from leadops.delivery.render import Renderer, RenderError
from leadops.delivery.suppression import suppress
from leadops.models import SENT_TOUCH_STATUSES, TOUCHES, DeadLetterItem, Lead, TouchStatus
from leadops.models.touch_states import move_touches
from leadops.providers.base import ChannelSender, OutgoingMessage

log = logging.getLogger("leadops.dispatch")

ProgressCallback = Callable[[int], None]


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
        """Release expired claims: unsent rows go back to pending; a `sending` row (its
        dispatcher died mid-request) becomes `sent` if the channel can prove delivery,
        otherwise `ambiguous`."""
        now = self.clock.now()
        recovered = 0
        t = TOUCHES.c
        with self.engine.begin() as conn:
            released = conn.execute(
                move_touches(
                    TouchStatus.PENDING,
                    t.lease_until < now,
                    only=[TouchStatus.CLAIMED],
                    claim_token=None,
                    lease_until=None,
                    updated_at=now,
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
                target, values = stopped_outcome(proof, now)
                conn.execute(
                    move_touches(
                        target,
                        t.id == touch_id,
                        only=[TouchStatus.SENDING],
                        claim_token=None,
                        lease_until=None,
                        updated_at=now,
                        **values,
                    )
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
        # Materialized: picked once (a plain IN subquery PostgreSQL may run again, skipping rows).
        picked = due.cte("due").prefix_with("MATERIALIZED", dialect="postgresql")
        with signals_held(), self.engine.begin() as conn:
            rows = conn.execute(
                move_touches(
                    TouchStatus.CLAIMED,
                    t.id.in_(select(picked.c.id)),
                    only=[TouchStatus.PENDING],
                    claim_token=token,
                    lease_until=now + timedelta(seconds=self.settings.claim_lease_seconds),
                    updated_at=now,
                ).returning(*(t[name] for name in CLAIMED_COLUMNS))
            ).all()
        return token, sorted((ClaimedTouch(*row) for row in rows), key=lambda c: c.id)

    # -- the loop -----------------------------------------------------------------------

    def run(self, *, progress: ProgressCallback | None = None) -> DispatchReport:
        """Dispatch every touch that is due now, batch by batch, until none is left. Sending
        is pipelined: while one chunk is on the wire, the next is decided and rendered."""
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
        flight = Flight(chunk=max(self.settings.dispatch_chunk_size, threads))
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

    def _load(self, batch: list[ClaimedTouch]) -> _Loaded:
        """Read what deciding and composing the batch needs, in one short session."""
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
                except Exception as exc:  # its touches are set aside later, one by one
                    if deadletters.must_raise(exc):
                        raise
                    campaigns[version_id] = exc
            paused = set(open_pauses(session, self.clock.now()))
        windows = {
            key: found.send_window_from(self.window)
            for key, found in campaigns.items()
            if not isinstance(found, Exception)
        }
        return _Loaded(leads, done, recent, campaigns, windows, paused)

    def _dispatch_batch(
        self,
        token: str,
        batch: list[ClaimedTouch],
        pools: Mapping[str, ChannelPool],
        flight: Flight,
        report: DispatchReport,
    ) -> None:
        """Decide and render the batch chunk by chunk; each chunk is committed as `sending`
        before any of it is handed to a channel pool. Holds and skips are written at once."""
        now = self.clock.now()
        loaded = self._load(batch)
        outcomes: list[dict[str, Any]] = []
        dead: list[tuple[ClaimedTouch, str]] = []
        # One connection for the whole batch, not a checkout (and server ping) per chunk.
        with self.engine.connect() as conn:
            for start in range(0, len(batch), flight.chunk):
                chunk = batch[start : start + flight.chunk]
                ready = self._decide_chunk(chunk, loaded, now, report, outcomes, dead)
                if ready:
                    # One transaction per chunk (its `sending` mark and the outcomes so far);
                    # a signal waits until all of the chunk is in flight.
                    with signals_held():
                        with conn.begin():
                            self._record_attempts(flight.take_finished(), report, conn)
                            owned = self._mark_sending(token, ready, conn)
                        for touch, message in ready:
                            if touch.id not in owned:
                                log.warning("touch %s taken over by another dispatcher", touch.id)
                                continue
                            pool = pools[touch.channel]
                            flight.submit(token, touch, message, pool.submit(message))
                flight.drain(flight.chunk)
            with signals_held(), conn.begin():
                self._record_attempts(flight.take_finished(), report, conn)
                write_outcomes(self.engine, self.clock, token, outcomes, conn)
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

    def _decide_chunk(
        self,
        chunk: list[ClaimedTouch],
        loaded: _Loaded,
        now: datetime,
        report: DispatchReport,
        outcomes: list[dict[str, Any]],
        dead: list[tuple[ClaimedTouch, str]],
    ) -> list[tuple[ClaimedTouch, OutgoingMessage]]:
        """Apply the contact policy to each touch and compose the messages to send; the
        rows of touches held, skipped or set aside go to `outcomes` (and `dead`)."""
        ready: list[tuple[ClaimedTouch, OutgoingMessage]] = []
        for touch in chunk:
            key = (touch.lead_id, touch.campaign, touch.step, touch.channel)
            try:
                message = self._compose(touch, loaded, key in loaded.done, now)
                if isinstance(message, Decision):
                    outcomes.append(self._not_now(touch, message, report))
                    continue
            except RenderError as exc:
                self.renderer.log_once(log, touch.id, exc)
                report.held[Reason.RENDER_ERROR] += 1
                report.count(touch, f"held:{Reason.RENDER_ERROR}")
                report.errors.append(f"touch {touch.id}: {exc}")
                outcomes.append(
                    touch_row(
                        touch,
                        status=TouchStatus.PENDING,
                        hold_reason=Reason.RENDER_ERROR,
                        not_before=self._render_retry_at(touch, loaded, now),
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
                    touch_row(
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
            loaded.recent[touch.lead_id].append(now)
            loaded.done.add(key)
            ready.append((touch, message))
        return ready

    def _render_retry_at(self, touch: ClaimedTouch, loaded: _Loaded, now: datetime) -> datetime:
        """An hour later, when the campaign's send window is open: retried outside it, the
        policy would hold it for the window and hide the render error."""
        window = loaded.windows.get(touch.campaign_version_id, self.window)
        return window.next_open(now + RENDER_RETRY, ZoneInfo(loaded.leads[touch.lead_id].timezone))

    def _compose(
        self, touch: ClaimedTouch, loaded: _Loaded, already_sent: bool, now: datetime
    ) -> OutgoingMessage | Decision:
        """The message to send for the touch, or the policy's decision not to send it now."""
        lead = loaded.leads[touch.lead_id]
        campaign = loaded.campaigns[touch.campaign_version_id]
        decision = decide(
            channel=touch.channel,
            lead=contact_facts(lead),
            now=now,
            window=loaded.windows.get(touch.campaign_version_id, self.window),
            caps=self.caps,
            recent_sends=loaded.recent[touch.lead_id],
            already_sent=already_sent,
            paused=touch.campaign in loaded.paused,
        )
        if decision.action != Action.SEND:
            return decision
        if isinstance(campaign, Exception):
            raise campaign
        return compose(
            touch_id=touch.id,
            lead=lead,
            channel=touch.channel,
            campaign=campaign,
            step_key=touch.step,
            variant=touch.variant,
            renderer=self.renderer,
            settings=self.settings,
            now=now,
            first_to_lead=first_sms_to(loaded.done, touch.lead_id, touch.channel),
        )

    @staticmethod
    def _not_now(touch: ClaimedTouch, decision: Decision, report: DispatchReport) -> dict[str, Any]:
        """The outcome row of a touch the policy skips or holds."""
        assert decision.reason is not None
        if decision.action == Action.SKIP:
            report.skipped[decision.reason] += 1
            report.count(touch, f"skipped:{decision.reason}")
            return touch_row(touch, status=TouchStatus.SKIPPED, hold_reason=decision.reason)
        assert decision.retry_at is not None
        report.held[decision.reason] += 1
        report.count(touch, f"held:{decision.reason}")
        return touch_row(
            touch,
            status=TouchStatus.PENDING,
            hold_reason=decision.reason,
            not_before=decision.retry_at,
        )

    def _mark_sending(
        self, token: str, chunk: list[tuple[ClaimedTouch, OutgoingMessage]], conn: Connection
    ) -> set[int]:
        """Commit the chunk as `sending` (the point of no automatic return); returns the rows
        this dispatcher still owns, the only ones it may send (a claim past its lease may
        have been taken over)."""
        now = self.clock.now()
        t = TOUCHES.c
        lease = now + timedelta(seconds=self.settings.claim_lease_seconds)
        ids = [touch.id for touch, _ in chunk]
        with transaction(self.engine, conn):
            owned = set(
                conn.execute(
                    move_touches(
                        TouchStatus.SENDING,
                        t.id.in_(ids),
                        t.claim_token == token,
                        only=[TouchStatus.CLAIMED],
                        attempts=t.attempts + 1,
                        lease_until=lease,
                        updated_at=now,
                    ).returning(t.id)
                ).scalars()
            )
        return owned

    def _record_attempts(
        self,
        attempts: list[tuple[str, ClaimedTouch, Attempt]],
        report: DispatchReport,
        conn: Connection | None = None,
    ) -> None:
        """Count and write the outcomes of finished sends; an address the provider refused
        is suppressed (leadops.delivery.suppression, in the same transaction)."""
        if not attempts:
            return
        now = self.clock.now()
        outcomes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        refused: list[tuple[int, str, str]] = []
        for token, touch, attempt in attempts:
            outcome = attempt_outcome(touch, attempt, now)
            report.add(touch, outcome)
            outcomes[token].append(outcome.row)
            if outcome.suppress is not None:
                refused.append((touch.lead_id, touch.channel, outcome.suppress))
        with signals_held(), transaction(self.engine, conn) as conn:
            for token, rows in outcomes.items():
                write_outcomes(self.engine, self.clock, token, rows, conn)
            for lead_id, channel, reason in refused:
                suppress(conn, lead_id, [channel], reason, now)


@dataclass
class _Loaded:
    """What deciding a batch reads once: its leads, what each was sent (or is in doubt),
    their sends of the last week, the campaign versions (or the error loading one raised)
    and the send windows of those that loaded, and the campaigns paused now."""

    leads: dict[int | None, Lead]
    done: set[tuple[int, str, str, str]]
    recent: dict[int, list[datetime]]
    campaigns: dict[int, Campaign | Exception]
    windows: dict[int, SendWindow]
    paused: set[str]
