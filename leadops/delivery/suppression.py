"""Suppression and leaving nurture: the one writer of each.

The contact policy (leadops.delivery.policy) refuses every send on a suppressed channel.
`suppress` sets the lead's suppression columns with a reason code (SuppressionReason,
keeping an earlier suppression and its reason) and skips what is queued there; `opt_in`
lifts the reasons an opt-in clears (OPT_IN_CLEARS); `leave_nurture` ends the lead's
sequence. Every path uses them: unsubscribe links, provider callbacks, a provider refusing
an address during dispatch, an escalation to sales.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import ENROLLMENTS, LEADS, TOUCHES, EnrollmentStatus, TouchStatus
from leadops.models.touch_states import move_touches
from leadops.models.vocab import OPT_IN_CLEARS, SuppressionReason


def reason_code(reason: str) -> SuppressionReason:
    """The reason as a code; a free text is refused, naming the codes."""
    try:
        return SuppressionReason(reason)
    except ValueError:
        known = ", ".join(SuppressionReason)
        raise ValueError(f"unknown suppression reason {reason!r}; known: {known}") from None


def suppress(
    connection: Connection,
    lead_id: int,
    channels: Iterable[str],
    reason: str,
    now: datetime,
    *,
    unsubscribed: bool = False,
) -> list[str]:
    """Suppress the lead on `channels` for `reason` (a SuppressionReason; an earlier
    suppression and its reason are kept), and skip its pending touches there. Returns
    the channels newly suppressed."""
    code = reason_code(reason)
    channels = list(channels)
    changed = []
    for channel in channels:
        at, why = LEADS.c[f"{channel}_suppressed_at"], f"{channel}_suppression_reason"
        result = connection.execute(
            sa.update(LEADS)
            .where(LEADS.c.id == lead_id, at.is_(None))
            .values({at.name: now, why: code.value, "updated_at": now})
        )
        if result.rowcount:
            changed.append(channel)
    if unsubscribed:
        connection.execute(
            sa.update(LEADS)
            .where(LEADS.c.id == lead_id, LEADS.c.unsubscribed_at.is_(None))
            .values(unsubscribed_at=now, updated_at=now)
        )
    skip_pending(connection, lead_id, channels, code, now)
    return changed


def skip_pending(
    connection: Connection, lead_id: int, channels: Iterable[str], reason: str, now: datetime
) -> int:
    """Skip the lead's touches that have not left yet on `channels`."""
    t = TOUCHES.c
    result = connection.execute(
        move_touches(
            TouchStatus.SKIPPED,
            t.lead_id == lead_id,
            t.channel.in_(list(channels)),
            only=[TouchStatus.PENDING],
            hold_reason=reason[:100],
            updated_at=now,
        )
    )
    return int(result.rowcount or 0)


def opt_in(connection: Connection, lead_id: int, channel: str, now: datetime) -> bool:
    """The lead opted in again on `channel`: lift an opt-out suppression and record consent.

    Reasons outside OPT_IN_CLEARS (bounces, dropped or refused addresses) are not lifted."""
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


def lift_sunset(connection: Connection, lead_ids: Iterable[int], now: datetime) -> set[int]:
    """These leads engaged: lift a `sunset` suppression on each of their channels.
    Returns the leads lifted."""
    ids = sorted(set(lead_ids))
    lifted: set[int] = set()
    for channel in ("email", "whatsapp", "sms"):
        at, why = f"{channel}_suppressed_at", LEADS.c[f"{channel}_suppression_reason"]
        which = sa.and_(LEADS.c.id.in_(ids), why == SuppressionReason.SUNSET)
        lifted |= set(connection.execute(sa.select(LEADS.c.id).where(which)).scalars())
        connection.execute(
            sa.update(LEADS).where(which).values({at: None, why.name: None, "updated_at": now})
        )
    return lifted


class NurtureScope(StrEnum):
    """What leaving nurture skips besides ending the active enrollment."""

    ENROLLMENT = "enrollment"  # the pending touches of the active enrollment
    LEAD = "lead"  # every pending touch of the lead (handed to sales: nothing more goes out)


def leave_nurture(
    connection: Connection,
    lead_id: int,
    reason: str,
    now: datetime,
    *,
    scope: NurtureScope = NurtureScope.ENROLLMENT,
    end_reason: str | None = None,
    status: EnrollmentStatus = EnrollmentStatus.EXITED,
) -> bool:
    """The lead leaves nurture: its active enrollment ends (as `status`, with `end_reason`,
    else `reason`) and its pending touches in `scope` are skipped with `reason`. Returns
    whether an active enrollment ended."""
    e, t = ENROLLMENTS.c, TOUCHES.c
    active = connection.execute(
        sa.select(e.id).where(e.lead_id == lead_id, e.status == EnrollmentStatus.ACTIVE)
    ).scalar_one_or_none()
    if active is not None:
        connection.execute(
            sa.update(ENROLLMENTS)
            .where(e.id == active)
            .values(
                status=status,
                ended_at=now,
                end_reason=(end_reason or reason)[:100],
            )
        )
    if scope == NurtureScope.LEAD:
        which = t.lead_id == lead_id
    elif active is not None:
        which = t.enrollment_id == active
    else:
        return False
    connection.execute(
        move_touches(
            TouchStatus.SKIPPED,
            which,
            only=[TouchStatus.PENDING],
            hold_reason=reason[:100],
            updated_at=now,
        )
    )
    return active is not None
