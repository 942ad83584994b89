"""Pausing and resuming a campaign, recorded with who and why (the campaign_pauses table).

A pause takes effect at the next tick: the planner enrolls nobody in the campaign, and
the contact policy holds its touches (`campaign_paused`); nothing is skipped or lost.

Re-timing on resume: the campaign's remaining steps keep their spacing. Every touch not
sent yet moves later by the length of the pause (due and not-before; one that was due
before the pause goes out at the resume, inside the send window), and each active
enrollment's start moves by the same amount, so steps not planned yet fall due that much
later too. A 4-day pause delays day 10 and day 20 by 4 days each; they never arrive on
the same day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from leadops.delivery.campaigns import Campaign, open_pauses
from leadops.models import (
    ENROLLMENTS,
    TOUCHES,
    CampaignPause,
    EnrollmentStatus,
    TouchStatus,
)


class PauseError(ValueError):
    """A pause or resume that cannot be done (unknown campaign, already paused...)."""


@dataclass(frozen=True)
class Resumed:
    pause: CampaignPause
    touches_retimed: int
    enrollments_shifted: int


def _open_pause(session: Session, campaign: str) -> CampaignPause | None:
    return session.exec(
        select(CampaignPause).where(
            CampaignPause.campaign == campaign, col(CampaignPause.resumed_at).is_(None)
        )
    ).one_or_none()


def _check_known(campaign: str, campaigns: dict[str, Campaign]) -> None:
    if campaign not in campaigns:
        raise PauseError(f"unknown campaign {campaign!r} (known: {', '.join(sorted(campaigns))})")


def pause_campaign(
    engine: Engine,
    campaigns: dict[str, Campaign],
    campaign: str,
    *,
    by: str,
    reason: str,
    now: datetime,
) -> CampaignPause:
    """Pause `campaign` from `now`: recorded, effective at the next tick."""
    _check_known(campaign, campaigns)
    with Session(engine, expire_on_commit=False) as session:
        current = _open_pause(session, campaign)
        if current is not None:
            raise PauseError(
                f"campaign {campaign!r} is already paused since "
                f"{current.paused_at:%Y-%m-%d %H:%M} UTC by {current.paused_by}"
            )
        pause = CampaignPause(campaign=campaign, paused_at=now, paused_by=by, pause_reason=reason)
        session.add(pause)
        session.commit()
        return pause


def resume_campaign(
    engine: Engine,
    campaigns: dict[str, Campaign],
    campaign: str,
    *,
    by: str,
    reason: str,
    now: datetime,
) -> Resumed:
    """Resume `campaign` at `now` and re-time what it held (see the module docstring)."""
    _check_known(campaign, campaigns)
    with Session(engine, expire_on_commit=False) as session:
        pause = _open_pause(session, campaign)
        if pause is None:
            raise PauseError(f"campaign {campaign!r} is not paused")
        if now < pause.paused_at:
            raise PauseError(
                f"cannot resume {campaign!r} at {now:%Y-%m-%d %H:%M}, before its pause "
                f"({pause.paused_at:%Y-%m-%d %H:%M} UTC)"
            )
        shift = now - pause.paused_at
        t, e = TOUCHES.c, ENROLLMENTS.c
        touches = session.execute(
            sa.select(t.id, t.due_at).where(t.campaign == campaign, t.status == TouchStatus.PENDING)
        ).all()
        touch_rows = [
            {
                "touch_id": touch_id,
                "due": due_at + shift,
                "release": max(due_at + shift, now),
            }
            for touch_id, due_at in touches
        ]
        if touch_rows:
            session.execute(
                sa.update(TOUCHES)
                .where(t.id == sa.bindparam("touch_id"), t.status == TouchStatus.PENDING)
                .values(
                    due_at=sa.bindparam("due"),
                    not_before=sa.bindparam("release"),
                    hold_reason=None,
                    updated_at=now,
                ),
                touch_rows,
            )
        enrollments = session.execute(
            sa.select(e.id, e.started_at).where(
                e.campaign == campaign, e.status == EnrollmentStatus.ACTIVE
            )
        ).all()
        if enrollments:
            session.execute(
                sa.update(ENROLLMENTS)
                .where(e.id == sa.bindparam("enrollment_id"))
                .values(started_at=sa.bindparam("start")),
                [{"enrollment_id": i, "start": started + shift} for i, started in enrollments],
            )
        pause.resumed_at, pause.resumed_by, pause.resume_reason = now, by, reason
        session.add(pause)
        session.commit()
        return Resumed(pause, len(touch_rows), len(enrollments))


def pause_history(engine: Engine, campaign: str | None = None) -> list[CampaignPause]:
    """Every pause, newest first (only `campaign`'s when given)."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(CampaignPause)
        if campaign is not None:
            query = query.where(CampaignPause.campaign == campaign)
        return list(
            session.exec(
                query.order_by(col(CampaignPause.paused_at).desc(), col(CampaignPause.id).desc())
            )
        )


def paused_rows(engine: Engine, now: datetime) -> list[dict[str, object]]:
    """The campaigns paused at `now`: since when, by whom, why (for the run artifacts)."""
    with Session(engine) as session:
        pauses = open_pauses(session, now)
    return [
        {
            "campaign": key,
            "paused_since": pause.paused_at.isoformat(),
            "paused_by": pause.paused_by,
            "reason": pause.pause_reason,
        }
        for key, pause in sorted(pauses.items())
    ]


def campaign_state(campaign: Campaign, pause: CampaignPause | None, now: datetime) -> str:
    """paused, not started, ended or enrolling, at `now`."""
    if pause is not None:
        return "paused"
    if campaign.starts_at is not None and now < campaign.starts_at:
        return "not started"
    if campaign.ends_at is not None and now >= campaign.ends_at:
        return "ended"
    return "enrolling"


def _counts(session: Session, campaign: Any, where: Any) -> dict[str, int]:
    rows = session.execute(sa.select(campaign, sa.func.count()).where(where).group_by(campaign))
    return {str(key): int(count) for key, count in rows.all()}


def campaign_rows(
    engine: Engine, campaigns: dict[str, Campaign], now: datetime
) -> list[dict[str, object]]:
    """One row per campaign file: its calendar, state at `now`, and work in flight."""
    e, t = ENROLLMENTS.c, TOUCHES.c
    with Session(engine) as session:
        pauses = open_pauses(session, now)
        active = _counts(session, e.campaign, e.status == EnrollmentStatus.ACTIVE)
        pending = _counts(session, t.campaign, t.status == TouchStatus.PENDING)
    rows: list[dict[str, object]] = []
    for key, campaign in sorted(campaigns.items()):
        pause = pauses.get(key)
        rows.append(
            {
                "campaign": key,
                "name": campaign.name,
                "state": campaign_state(campaign, pause, now),
                "starts_at": campaign.starts_at,
                "ends_at": campaign.ends_at,
                "steps": len(campaign.steps),
                "cycle_days": campaign.cycle_days,
                "active_enrollments": active.get(key, 0),
                "pending_touches": pending.get(key, 0),
                "paused_since": pause.paused_at if pause else None,
                "paused_by": pause.paused_by if pause else None,
            }
        )
    return rows
