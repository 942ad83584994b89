"""The dispatcher: claims due touches, applies the contact policy, renders, sends, records.

Exactly-once rules:
- A touch row exists (UNIQUE per lead, campaign version, step, channel) before anything
  is sent; the dispatcher only ever sends a row it has claimed.
- Before a request leaves, the row is committed as `sending`. If the process dies there,
  recovery cannot know whether the message arrived: unless the channel can prove it
  (the file outbox can), the row becomes `ambiguous` and is never re-sent automatically.
- Only failures that provably did not deliver go back to `pending` for a retry.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col
from sqlmodel import select as sqlmodel_select

from leadops.campaigns import StoredCampaigns
from leadops.channels.base import (
    AmbiguousSendError,
    ChannelSender,
    PermanentSendError,
    TransientSendError,
)
from leadops.clock import Clock
from leadops.messages import compose
from leadops.models import (
    LEADS,
    SENT_TOUCH_STATUSES,
    TOUCHES,
    Channel,
    Lead,
    TouchStatus,
)
from leadops.models import Touch as TouchRow
from leadops.policy import Action, Caps, ContactFacts, Reason, SendWindow, decide
from leadops.render import Renderer, RenderError
from leadops.settings import Settings

log = logging.getLogger("leadops.dispatch")

MAX_TRANSIENT_ATTEMPTS = 8
RENDER_RETRY = timedelta(hours=1)
ProgressCallback = Callable[[int], None]


@dataclass
class DispatchReport:
    sent: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    held: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    ambiguous: int = 0
    recovered: int = 0
    errors: list[str] = field(default_factory=list)
    # (campaign, step, channel, outcome): outcome is sent, failed, ambiguous,
    # held:<reason> or skipped:<reason>; the per-run table of the nurture flow.
    outcomes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)

    def count(self, touch: TouchRow, outcome: str) -> None:
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
        self.recovered += other.recovered
        self.errors.extend(other.errors)
        self.outcomes.update(other.outcomes)


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

    def claim(self, limit: int) -> tuple[str, list[TouchRow]]:
        """Claim up to `limit` due touches for this dispatcher (SKIP LOCKED on PostgreSQL)."""
        now = self.clock.now()
        token = uuid.uuid4().hex
        t = TOUCHES.c
        with self.engine.begin() as conn:
            due = (
                select(t.id)
                .where(t.status == TouchStatus.PENDING, t.not_before <= now)
                .order_by(t.not_before, t.id)
                .limit(limit)
            )
            if self.engine.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            ids = list(conn.execute(due).scalars())
            if not ids:
                return token, []
            conn.execute(
                update(TOUCHES)
                .where(t.id.in_(ids), t.status == TouchStatus.PENDING)
                .values(
                    status=TouchStatus.CLAIMED,
                    claim_token=token,
                    lease_until=now + timedelta(seconds=self.settings.claim_lease_seconds),
                    updated_at=now,
                )
            )
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(
                sqlmodel_select(TouchRow)
                .where(TouchRow.claim_token == token)
                .order_by(col(TouchRow.id))
            )
            return token, list(rows)

    # -- the loop -----------------------------------------------------------------------

    def run(self, *, progress: ProgressCallback | None = None) -> DispatchReport:
        """Dispatch every touch that is due now, batch by batch, until none is left."""
        report = DispatchReport()
        report.recovered = self.recover_stale()
        while True:
            token, batch = self.claim(self.settings.dispatch_batch_size)
            if not batch:
                return report
            self._dispatch_batch(token, batch, report)
            if progress is not None:
                progress(len(batch))

    def _dispatch_batch(self, token: str, batch: list[TouchRow], report: DispatchReport) -> None:
        lead_ids = {touch.lead_id for touch in batch}
        batch_ids = {touch.id for touch in batch}
        with Session(self.engine, expire_on_commit=False) as session:
            leads = {
                lead.id: lead
                for lead in session.exec(sqlmodel_select(Lead).where(col(Lead.id).in_(lead_ids)))
            }
            week_ago = self.clock.now() - timedelta(days=7)
            recent: dict[int, list[datetime]] = defaultdict(list)
            done: set[tuple[int, str, str, str]] = set()
            t = TOUCHES.c
            rows = session.execute(
                select(t.id, t.lead_id, t.campaign, t.step, t.channel, t.status, t.sent_at).where(
                    t.lead_id.in_(lead_ids),
                    t.status.in_(
                        [*SENT_TOUCH_STATUSES, TouchStatus.SENDING, TouchStatus.AMBIGUOUS]
                    ),
                )
            ).all()
            for touch_id, lead_id, campaign, step, channel, status, sent_at in rows:
                if touch_id in batch_ids:
                    continue
                done.add((lead_id, campaign, step, channel))
                if status in SENT_TOUCH_STATUSES and sent_at and sent_at > week_ago:
                    recent[lead_id].append(sent_at)

            for touch in batch:
                lead = leads[touch.lead_id]
                key = (touch.lead_id, touch.campaign, touch.step, touch.channel)
                self._dispatch_one(session, token, touch, lead, key in done, recent, report)

    def _finish(self, session: Session, token: str, touch: TouchRow, **values: object) -> None:
        """Write the outcome, only while this dispatcher still owns the row."""
        values.setdefault("claim_token", None)
        values.setdefault("lease_until", None)
        values["updated_at"] = self.clock.now()
        session.execute(
            update(TOUCHES)
            .where(TOUCHES.c.id == touch.id, TOUCHES.c.claim_token == token)
            .values(**values)
        )
        session.commit()

    def _dispatch_one(
        self,
        session: Session,
        token: str,
        touch: TouchRow,
        lead: Lead,
        already_sent: bool,
        recent: dict[int, list[datetime]],
        report: DispatchReport,
    ) -> None:
        now = self.clock.now()
        decision = decide(
            channel=touch.channel,
            lead=contact_facts(lead),
            now=now,
            window=self.window,
            caps=self.caps,
            recent_sends=recent[touch.lead_id],
            already_sent=already_sent,
        )
        if decision.action == Action.SKIP:
            assert decision.reason is not None
            report.skipped[decision.reason] += 1
            report.count(touch, f"skipped:{decision.reason}")
            self._finish(
                session, token, touch, status=TouchStatus.SKIPPED, hold_reason=decision.reason
            )
            return
        if decision.action == Action.HOLD:
            assert decision.reason is not None and decision.retry_at is not None
            report.held[decision.reason] += 1
            report.count(touch, f"held:{decision.reason}")
            self._finish(
                session,
                token,
                touch,
                status=TouchStatus.PENDING,
                hold_reason=decision.reason,
                not_before=decision.retry_at,
            )
            return

        try:
            message = compose(
                touch_id=touch.id or 0,
                lead=lead,
                channel=touch.channel,
                campaign=self._campaigns.get(session, touch.campaign_version_id),
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
            self._finish(
                session,
                token,
                touch,
                status=TouchStatus.PENDING,
                hold_reason=Reason.RENDER_ERROR,
                not_before=now + RENDER_RETRY,
                error=str(exc),
            )
            return

        channel = self.channels[touch.channel]
        attempts = touch.attempts + 1
        session.execute(
            update(TOUCHES)
            .where(TOUCHES.c.id == touch.id, TOUCHES.c.claim_token == token)
            .values(
                status=TouchStatus.SENDING, attempts=attempts, subject=message.subject[:400] or None
            )
        )
        session.commit()
        try:
            result = channel.send(message)
        except TransientSendError as exc:
            if attempts >= MAX_TRANSIENT_ATTEMPTS:
                report.failed += 1
                report.count(touch, "failed")
                self._finish(
                    session,
                    token,
                    touch,
                    status=TouchStatus.FAILED,
                    error=f"gave up after {attempts} attempts: {exc}",
                )
                return
            report.held[Reason.PROVIDER_RETRY] += 1
            report.count(touch, f"held:{Reason.PROVIDER_RETRY}")
            self._finish(
                session,
                token,
                touch,
                status=TouchStatus.PENDING,
                hold_reason=Reason.PROVIDER_RETRY,
                not_before=now + retry_delay(attempts, exc.retry_after),
                error=str(exc),
            )
            return
        except PermanentSendError as exc:
            report.failed += 1
            report.count(touch, "failed")
            self._finish(session, token, touch, status=TouchStatus.FAILED, error=str(exc))
            if exc.suppress:
                self._suppress(session, lead, touch.channel, str(exc))
            return
        except AmbiguousSendError as exc:
            report.ambiguous += 1
            report.count(touch, "ambiguous")
            self._finish(session, token, touch, status=TouchStatus.AMBIGUOUS, error=str(exc))
            return
        except Exception as exc:  # our own bug after the request may have left: never resend
            log.exception("touch %s: unexpected error while sending", touch.id)
            report.ambiguous += 1
            report.count(touch, "ambiguous")
            self._finish(
                session,
                token,
                touch,
                status=TouchStatus.AMBIGUOUS,
                error=f"unexpected {type(exc).__name__}: {exc}",
            )
            return
        report.sent[(touch.campaign, touch.step, touch.channel)] += 1
        report.count(touch, "sent")
        recent[touch.lead_id].append(now)
        self._finish(
            session,
            token,
            touch,
            status=TouchStatus.SENT,
            provider_id=result.provider_id,
            sent_at=now,
            hold_reason=None,
            error=None,
        )

    def _suppress(self, session: Session, lead: Lead, channel: str, reason: str) -> None:
        now = self.clock.now()
        column = "email" if channel == Channel.EMAIL else "whatsapp"
        session.execute(
            update(LEADS)
            .where(LEADS.c.id == lead.id)
            .values(
                {
                    f"{column}_suppressed_at": now,
                    f"{column}_suppression_reason": reason[:100],
                    "updated_at": now,
                }
            )
        )
        session.commit()
