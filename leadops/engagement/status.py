"""The lead status beside the stage (leads.lead_status, LeadStatus): its one writer.

The status only moves up, IQL -> PQL -> SAL, and disqualified ends it: a content form
makes a lead an IQL (leadops.intake.forms), product use a PQL (the rescore run, scoring.yaml
`pql_events`), a rep's acknowledgement a SAL and a rep's disqualification disqualified
(leadops.sales.acks). Each change stores its reason and time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import LEADS
from leadops.models.vocab import STATUS_ORDER, LeadStatus


def raise_status(
    connection: Connection, lead_ids: Iterable[int], status: LeadStatus, reason: str, now: datetime
) -> set[int]:
    """Give these leads `status` (with `reason`) where it is above their current one;
    returns the leads changed."""
    ids = sorted(set(lead_ids))
    if not ids:
        return set()
    below = [name for name, rank in STATUS_ORDER.items() if rank < STATUS_ORDER[status]]
    c = LEADS.c
    changed = set(
        connection.execute(
            sa.select(c.id).where(
                c.id.in_(ids), sa.or_(c.lead_status.is_(None), c.lead_status.in_(below))
            )
        ).scalars()
    )
    if changed:
        connection.execute(
            sa.update(LEADS)
            .where(c.id.in_(sorted(changed)))
            .values(
                lead_status=status.value, status_reason=reason[:50], status_at=now, updated_at=now
            )
        )
    return changed
