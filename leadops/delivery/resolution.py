"""Operator decisions on touches the dispatcher could not settle by itself.

An `ambiguous` touch may or may not have reached the lead, so nothing re-sends it
automatically. After checking the provider's dashboard or the lead, an operator records
the answer: `sent` (it arrived) or `not sent` (queue it again). Every decision is kept in
the touch_audit table with who made it and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from leadops.models import TOUCH_AUDIT, TOUCHES, TouchStatus
from leadops.models.touch_states import move_touches

RESOLVABLE = frozenset({TouchStatus.AMBIGUOUS})


class ResolutionError(ValueError):
    """The touch can't be resolved this way (unknown id, wrong status, no reason)."""


@dataclass(frozen=True)
class Resolution:
    touch_id: int
    from_status: str
    to_status: str
    reason: str


def resolve_touch(
    engine: Engine,
    touch_id: int,
    *,
    sent: bool,
    reason: str,
    actor: str,
    now: datetime,
    provider_message_id: str | None = None,
) -> Resolution:
    """Mark an ambiguous touch sent, or queue it again (pending, due now), with an audit row."""
    reason = reason.strip()
    if not reason:
        raise ResolutionError("give a reason (--reason), it is kept in the audit log")
    t = TOUCHES.c
    with engine.begin() as conn:
        row = conn.execute(select(t.status, t.sent_at).where(t.id == touch_id)).one_or_none()
        if row is None:
            raise ResolutionError(f"no touch with id {touch_id}")
        status = row.status
        if status not in RESOLVABLE:
            raise ResolutionError(
                f"touch {touch_id} is {status}; only ambiguous touches can be resolved"
            )
        if sent:
            target = TouchStatus.SENT
            values: dict[str, object] = {
                "sent_at": now,
                "hold_reason": None,
                "error": f"resolved as sent by {actor}: {reason}",
            }
            if provider_message_id:
                values["provider_message_id"] = provider_message_id
        else:
            target = TouchStatus.PENDING
            values = {
                "not_before": now,
                "hold_reason": None,
                "error": f"re-queued by {actor}: {reason}",
            }
        changed = conn.execute(
            move_touches(
                target,
                t.id == touch_id,
                only=[status],
                claim_token=None,
                lease_until=None,
                updated_at=now,
                **values,
            )
        ).rowcount
        if changed != 1:
            raise ResolutionError(f"touch {touch_id} changed while resolving; try again")
        conn.execute(
            insert(TOUCH_AUDIT).values(
                touch_id=touch_id,
                action="resolve_sent" if sent else "resolve_not_sent",
                from_status=status,
                to_status=target,
                reason=reason,
                actor=actor,
                created_at=now,
            )
        )
    return Resolution(touch_id, status, target, reason)
