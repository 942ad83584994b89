"""Qualification beside the funnel: leads by lead status (IQL, PQL, SAL, disqualified),
by band (hot, warm, cold) and the leads sunset (suppressed for not engaging)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import LEADS
from leadops.models.vocab import Band, LeadStatus, SuppressionReason
from leadops.reporting.kpi_figures import KpiReport


def qualification(conn: Connection, report: KpiReport) -> None:
    c = LEADS.c
    statuses = dict(
        conn.execute(
            sa.select(c.lead_status, sa.func.count())
            .where(c.lead_status.is_not(None))
            .group_by(c.lead_status)
        )
        .tuples()
        .all()
    )
    report.lead_status = {s.value: int(statuses.get(s.value, 0)) for s in LeadStatus}
    bands = dict(
        conn.execute(sa.select(c.band, sa.func.count()).where(c.band.is_not(None)).group_by(c.band))
        .tuples()
        .all()
    )
    report.bands = {band.value: int(bands.get(band.value, 0)) for band in Band}
    sunset = sa.or_(
        c.email_suppression_reason == SuppressionReason.SUNSET,
        c.whatsapp_suppression_reason == SuppressionReason.SUNSET,
        c.sms_suppression_reason == SuppressionReason.SUNSET,
    )
    report.sunset = int(conn.execute(sa.select(sa.func.count()).where(sunset)).scalar_one())


def qualification_rows(report: KpiReport) -> list[dict[str, Any]]:
    """Leads per lead status, per band, and sunset, as (what, leads, note) rows."""
    notes = {
        LeadStatus.IQL: "gave their details for content (a content form)",
        LeadStatus.PQL: "used the product (scoring.yaml pql_events)",
        LeadStatus.SAL: "a rep acknowledged the escalation",
        LeadStatus.DISQUALIFIED: "a rep disqualified them; marketing stopped",
    }
    rows = [
        {"what": f"status {name}", "leads": n, "note": notes[LeadStatus(name)]}
        for name, n in report.lead_status.items()
    ]
    rows += [
        {"what": f"band {band}", "leads": n, "note": "by grade (scoring.yaml bands)"}
        for band, n in report.bands.items()
    ]
    rows.append(
        {
            "what": "sunset",
            "leads": report.sunset,
            "note": "finished re-engage without engaging: marketing suppressed until they engage",
        }
    )
    return rows
