"""What the write-back writes to a HubSpot contact, and the pass that queues what changed.

Each lead with a CRM id gets these contact properties (created by `leadops crm setup`):

    leadops_fit_score, leadops_engagement_score, leadops_score   numbers (as text)
    leadops_grade, leadops_band, leadops_stage, leadops_lead_status  text
    leadops_escalation_status, leadops_owner   the latest escalation's status and rep

Values go as strings (HubSpot returns every property value as a string); an empty
string clears a value. The queue pass reads every lead's values in one statement (fit and
engagement sums grouped in the database, the latest escalation per lead) and compares
them with `crm_contacts.written` and `.pending`; only a contact whose values differ from
both is queued, so a contact update with the same values is never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import CRM_CONTACTS, ESCALATIONS, LEADS, SCORE_LEDGER

GROUP = "leadops"
# name -> (label, HubSpot type, field type)
CONTACT_PROPERTIES: dict[str, tuple[str, str, str]] = {
    "leadops_fit_score": ("leadops fit score", "number", "number"),
    "leadops_engagement_score": ("leadops engagement score", "number", "number"),
    "leadops_score": ("leadops score", "number", "number"),
    "leadops_grade": ("leadops grade", "string", "text"),
    "leadops_band": ("leadops band", "string", "text"),
    "leadops_stage": ("leadops stage", "string", "text"),
    "leadops_lead_status": ("leadops lead status", "string", "text"),
    "leadops_escalation_status": ("leadops escalation status", "string", "text"),
    "leadops_owner": ("leadops owner (rep)", "string", "text"),
}
DEAL_KEY_PROPERTY = "leadops_key"


def _text(value: object) -> str:
    return "" if value is None else str(value)


def current_values(connection: Connection) -> dict[str, tuple[int, dict[str, str]]]:
    """crm_id -> (lead id, the properties to write), for every lead with a CRM id (the
    lowest lead id when two leads share one)."""
    fit = (
        sa.select(SCORE_LEDGER.c.lead_id, sa.func.sum(SCORE_LEDGER.c.points).label("points"))
        .where(SCORE_LEDGER.c.kind == "fit")
        .group_by(SCORE_LEDGER.c.lead_id)
        .subquery()
    )
    engagement = (
        sa.select(SCORE_LEDGER.c.lead_id, sa.func.sum(SCORE_LEDGER.c.points).label("points"))
        .where(SCORE_LEDGER.c.kind != "fit")
        .group_by(SCORE_LEDGER.c.lead_id)
        .subquery()
    )
    latest = (
        sa.select(ESCALATIONS.c.lead_id, sa.func.max(ESCALATIONS.c.id).label("id"))
        .group_by(ESCALATIONS.c.lead_id)
        .subquery()
    )
    escalation = ESCALATIONS.alias("latest_escalation")
    query = (
        sa.select(
            LEADS.c.id,
            LEADS.c.crm_id,
            LEADS.c.score,
            LEADS.c.grade,
            LEADS.c.band,
            LEADS.c.lifecycle_stage,
            LEADS.c.lead_status,
            fit.c.points.label("fit"),
            engagement.c.points.label("engagement"),
            escalation.c.status.label("escalation_status"),
            escalation.c.rep_key,
        )
        .outerjoin(fit, fit.c.lead_id == LEADS.c.id)
        .outerjoin(engagement, engagement.c.lead_id == LEADS.c.id)
        .outerjoin(latest, latest.c.lead_id == LEADS.c.id)
        .outerjoin(escalation, escalation.c.id == latest.c.id)
        .where(LEADS.c.crm_id.is_not(None), LEADS.c.crm_id != "")
        .order_by(LEADS.c.id.desc())  # the lowest id is kept: it comes last
    )
    values: dict[str, tuple[int, dict[str, str]]] = {}
    for row in connection.execute(query):
        values[row.crm_id] = (
            row.id,
            {
                "leadops_fit_score": _text(int(row.fit or 0)),
                "leadops_engagement_score": _text(int(row.engagement or 0)),
                "leadops_score": _text(row.score),
                "leadops_grade": _text(row.grade),
                "leadops_band": _text(row.band),
                "leadops_stage": _text(row.lifecycle_stage),
                "leadops_lead_status": _text(row.lead_status),
                "leadops_escalation_status": _text(row.escalation_status),
                "leadops_owner": _text(row.rep_key),
            },
        )
    return values


@dataclass
class QueueReport:
    queued: int = 0  # contacts with new values to send
    unchanged: int = 0
    settled: int = 0  # queued values that went back to what was written: nothing to send


def queue_changes(connection: Connection, *, now: datetime) -> QueueReport:
    """Queue every contact whose values differ from what was written and what is queued."""
    report = QueueReport()
    values = current_values(connection)
    known = {
        row.crm_id: row
        for row in connection.execute(
            sa.select(
                CRM_CONTACTS.c.id,
                CRM_CONTACTS.c.crm_id,
                CRM_CONTACTS.c.lead_id,
                CRM_CONTACTS.c.written,
                CRM_CONTACTS.c.pending,
            ).where(CRM_CONTACTS.c.crm == "hubspot")
        )
    }
    new: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    settle: list[int] = []
    for crm_id, (lead_id, props) in values.items():
        row = known.get(crm_id)
        if row is None:
            new.append(_queued(crm_id, lead_id, props, now))
            report.queued += 1
        elif props == row.pending or (props == row.written and row.pending is None):
            report.unchanged += 1
        elif props == row.written:
            settle.append(row.id)
            report.settled += 1
        else:
            updates.append({"row_id": row.id, **_queued(crm_id, lead_id, props, now)})
            report.queued += 1
    if new:
        connection.execute(CRM_CONTACTS.insert(), new)
    if updates:
        connection.execute(
            CRM_CONTACTS.update()
            .where(CRM_CONTACTS.c.id == sa.bindparam("row_id"))
            .values(
                lead_id=sa.bindparam("lead_id"),
                status=sa.bindparam("status"),
                pending=sa.bindparam("pending"),
                queued_at=sa.bindparam("queued_at"),
                attempts=sa.bindparam("attempts"),
                not_before=sa.bindparam("not_before"),
                last_error=sa.bindparam("last_error"),
            ),
            updates,
        )
    if settle:
        connection.execute(
            CRM_CONTACTS.update()
            .where(CRM_CONTACTS.c.id.in_(settle))
            .values(status="idle", pending=None, attempts=0, not_before=None, last_error=None)
        )
    return report


def _queued(crm_id: str, lead_id: int, props: dict[str, str], now: datetime) -> dict[str, Any]:
    return {
        "crm": "hubspot",
        "crm_id": crm_id,
        "lead_id": lead_id,
        "status": "pending",
        "pending": props,
        "queued_at": now,
        "attempts": 0,
        "not_before": None,
        "last_error": None,
    }
