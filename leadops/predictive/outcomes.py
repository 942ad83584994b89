"""The label: when each lead first reached the configured outcome.

- accepted: a rep acknowledged the escalation or logged a first contact (the escalation's
  own timestamps, or an acknowledged/contacted activity);
- opportunity: a CRM deal was opened for the lead, or an escalation closed won;
- won: a won CRM deal closed, or an escalation closed won.

Never "reached SQL": the rule score decides that by itself.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import CRM_DEALS, ESCALATION_ACTIVITIES, ESCALATIONS
from leadops.models.vocab import ActivityKind, DealStatus, EscalationStatus
from leadops.predictive.config import Label


def _earliest(found: dict[int, datetime], rows: sa.engine.Result[tuple[int, datetime]]) -> None:
    for lead_id, at in rows:
        if lead_id is not None and at is not None and (lead_id not in found or at < found[lead_id]):
            found[lead_id] = at


def outcome_times(connection: Connection, label: Label) -> dict[int, datetime]:
    """Lead id -> when it first reached `label`."""
    found: dict[int, datetime] = {}
    e, a, d = ESCALATIONS.c, ESCALATION_ACTIVITIES.c, CRM_DEALS.c
    won_escalation = sa.select(e.lead_id, e.closed_at).where(
        e.status == EscalationStatus.CLOSED_WON
    )
    if label == Label.ACCEPTED:
        _earliest(found, connection.execute(sa.select(e.lead_id, e.acknowledged_at)))
        _earliest(found, connection.execute(sa.select(e.lead_id, e.first_contact_at)))
        kinds = [ActivityKind.ACKNOWLEDGED, ActivityKind.CONTACTED]
        _earliest(
            found,
            connection.execute(
                sa.select(a.lead_id, a.at).where(a.kind.in_([str(k) for k in kinds]))
            ),
        )
    elif label == Label.OPPORTUNITY:
        _earliest(found, connection.execute(sa.select(d.lead_id, d.opened_at)))
        _earliest(found, connection.execute(won_escalation))
    else:
        _earliest(
            found,
            connection.execute(sa.select(d.lead_id, d.closed_at).where(d.status == DealStatus.WON)),
        )
        _earliest(found, connection.execute(won_escalation))
    return found
