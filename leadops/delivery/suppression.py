"""Suppression: stop contacting a lead on a channel (or all), at once, until they opt in.

The contact policy (leadops.delivery.policy) refuses every send on a suppressed channel; these
functions set and clear the lead's suppression columns and cancel what is already queued.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import ENROLLMENTS, LEADS, TOUCHES, EnrollmentStatus, TouchStatus

# Suppression reasons an opt-in clears; bounces and dropped addresses stay suppressed.
OPT_IN_CLEARS = frozenset(
    {"unsubscribe", "group_unsubscribe", "spamreport", "whatsapp_opt_out", "invalid_number"}
)


def suppress(
    connection: Connection,
    lead_id: int,
    channels: Iterable[str],
    reason: str,
    now: datetime,
    *,
    unsubscribed: bool = False,
) -> list[str]:
    """Suppress the lead on `channels` (keeping an earlier suppression and its reason),
    and cancel its pending touches there. Returns the channels newly suppressed."""
    changed = []
    for channel in channels:
        at, why = LEADS.c[f"{channel}_suppressed_at"], f"{channel}_suppression_reason"
        result = connection.execute(
            sa.update(LEADS)
            .where(LEADS.c.id == lead_id, at.is_(None))
            .values({at.name: now, why: reason[:100], "updated_at": now})
        )
        if result.rowcount:
            changed.append(channel)
    if unsubscribed:
        connection.execute(
            sa.update(LEADS)
            .where(LEADS.c.id == lead_id, LEADS.c.unsubscribed_at.is_(None))
            .values(unsubscribed_at=now, updated_at=now)
        )
    skip_pending(connection, lead_id, channels, reason, now)
    return changed


def skip_pending(
    connection: Connection, lead_id: int, channels: Iterable[str], reason: str, now: datetime
) -> int:
    """Skip the lead's touches that have not left yet on `channels`."""
    t = TOUCHES.c
    result = connection.execute(
        sa.update(TOUCHES)
        .where(
            t.lead_id == lead_id,
            t.channel.in_(list(channels)),
            t.status == TouchStatus.PENDING,
        )
        .values(status=TouchStatus.SKIPPED, hold_reason=reason[:100], updated_at=now)
    )
    return int(result.rowcount or 0)


def opt_in(connection: Connection, lead_id: int, channel: str, now: datetime) -> bool:
    """The lead opted in again on `channel`: lift an opt-out suppression and record consent.

    Bounces and dropped addresses are not lifted by an opt-in."""
    at, why = f"{channel}_suppressed_at", f"{channel}_suppression_reason"
    row = connection.execute(
        sa.select(LEADS.c[why], LEADS.c[at]).where(LEADS.c.id == lead_id)
    ).first()
    if row is None:
        return False
    reason, suppressed_at = row
    values: dict[str, object] = {
        f"{channel}_consent": True,
        f"{channel}_consent_at": now,
        "unsubscribed_at": None,
        "updated_at": now,
    }
    if suppressed_at is not None:
        if reason not in OPT_IN_CLEARS:
            return False
        values.update({at: None, why: None})
    connection.execute(sa.update(LEADS).where(LEADS.c.id == lead_id).values(values))
    return True


def end_enrollment(connection: Connection, lead_id: int, reason: str, now: datetime) -> bool:
    """End the lead's active enrollment (the sequence stops) and skip its pending touches."""
    e = ENROLLMENTS.c
    active = connection.execute(
        sa.select(e.id).where(e.lead_id == lead_id, e.status == EnrollmentStatus.ACTIVE)
    ).scalar_one_or_none()
    if active is None:
        return False
    connection.execute(
        sa.update(ENROLLMENTS)
        .where(e.id == active)
        .values(status=EnrollmentStatus.EXITED, ended_at=now, end_reason=reason[:100])
    )
    connection.execute(
        sa.update(TOUCHES)
        .where(TOUCHES.c.enrollment_id == active, TOUCHES.c.status == TouchStatus.PENDING)
        .values(status=TouchStatus.SKIPPED, hold_reason=reason[:100], updated_at=now)
    )
    return True
