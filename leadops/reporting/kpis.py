"""Lead-management KPIs: `compute` assembles the report, and the `*_rows` functions turn
it into the tables `leadops report`, the report flow and the HTML page show.

Every figure is one or a few aggregate queries (no per-lead Python loops), so the
report costs the same on 200 leads as on 200,000: lead KPIs in leadops.reporting.lead_kpis,
cost per lead in leadops.reporting.spend, per-step delivery and engagement rates in
leadops.reporting.step_kpis, goal conversion per campaign and step in
leadops.reporting.goal_kpis, the hand-offs to sales (acknowledgement, speed to lead,
outcomes) in leadops.reporting.sales_kpis, revenue per source and campaign in
leadops.reporting.revenue, whether scores and rules predict sales in
leadops.reporting.calibration. A figure
the database cannot support is listed in `KpiReport.missing`, never estimated.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from leadops.reporting import (
    calibration,
    goal_kpis,
    lead_kpis,
    qualification,
    revenue,
    sales_kpis,
    spend,
    step_kpis,
)
from leadops.reporting.kpi_figures import KpiReport


def compute(engine: Engine, now: datetime, *, config_dir: Path) -> KpiReport:
    """Every KPI as of `now`."""
    currency, spend_by_source = spend.load_spend(config_dir)
    report = KpiReport(now=now, currency=currency)
    dialect = engine.dialect.name
    with engine.connect() as conn:
        lead_kpis.funnel(conn, report)
        lead_kpis.response_time(conn, dialect, report)
        lead_kpis.nurture_conversion(conn, report)
        lead_kpis.scores(conn, report)
        spend.costs(conn, spend_by_source, report)
        lead_kpis.never_followed_up(conn, now, report)
        lead_kpis.data_quality(conn, report)
        qualification.qualification(conn, report)
        step_kpis.step_rates(conn, report)
        goal_kpis.goal_rates(conn, report)
        sales_kpis.escalations(conn, dialect, now, report)
        sales_kpis.speed_to_lead(conn, dialect, now, report)
        sales_kpis.outcomes(conn, now, report)
        step_kpis.sends_per_day(conn, dialect, now, report)
        calibration.compute(conn, now, report)
        revenue.compute(
            conn,
            dialect,
            now,
            report,
            spend=spend_by_source,
            ltv=spend.load_lifetime_value(config_dir),
        )
    return report


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def duration(minutes: float | None) -> str:
    """A duration for people: 45 s, 12.5 min, 3.2 h, 4.1 d ("-" when unknown)."""
    if minutes is None:
        return "-"
    if minutes < 1:
        return f"{60 * minutes:.0f} s"
    if minutes < 60:
        return f"{minutes:.1f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


def headline_rows(report: KpiReport) -> list[dict[str, str]]:
    """The headline KPIs as (kpi, value, note) rows for a table."""
    esc = report.escalations
    speed = report.speed_to_lead[0] if report.speed_to_lead else None
    return [
        {"kpi": "leads", "value": str(report.leads_total), "note": ""},
        {
            "kpi": "lead response time (created to first message)",
            "value": f"{_num(report.response_avg_hours)} h avg",
            "note": f"{_pct(report.response_within_day)} within 24 h, "
            f"{report.response_leads} leads reached",
        },
        {
            "kpi": "speed to lead (to a rep's first contact)",
            "value": f"{duration(speed.median_minutes if speed else None)} median",
            "note": f"p90 {duration(speed.p90_minutes if speed else None)} over "
            f"{speed.contacted if speed else 0} escalation(s) contacted; "
            f"{speed.waiting if speed else 0} not contacted yet",
        },
        {
            "kpi": "SQL to rep acknowledgement",
            "value": f"{_num(esc.response_median_hours)} h median",
            "note": f"{_num(esc.response_avg_hours)} h avg over {esc.response_count} "
            f"acknowledged escalation(s); {esc.awaiting} waiting for a rep",
        },
        {
            "kpi": "nurture conversion rate",
            "value": _pct(report.nurture_conversion),
            "note": f"{report.nurture_converted} of {report.nurtured} leads nurtured from "
            "below SQL reached SQL or beyond",
        },
        {
            "kpi": "average lead score",
            "value": _num(report.score_avg),
            "note": "fit + engagement points (the score ledger), over all leads",
        },
        {
            "kpi": "leads never followed up",
            "value": str(report.never_followed_up),
            "note": "target 0; created over a day ago, reachable on a channel, no message sent"
            + (
                ": "
                + ", ".join(
                    f"{s} {n}" for s, n in sorted(report.never_followed_up_by_stage.items())
                )
                if report.never_followed_up
                else ""
            ),
        },
        {
            "kpi": "leads no channel can reach",
            "value": str(report.uncontactable),
            "note": "never sent a message: no address with consent on any channel, or "
            "suppressed on every one",
        },
        {"kpi": "unsubscribed leads", "value": str(report.unsubscribed), "note": ""},
        {
            "kpi": "data quality: leads with flagged fields",
            "value": str(report.flagged_leads),
            "note": "imported for the channels they can be reached on, bad value kept "
            "(`leadops leads show ID`)"
            + "".join(f"; {r} {n}" for r, n in sorted(report.flagged_by_reason.items()))
            + f"; quarantine open: {report.quarantined_open} record(s), "
            f"{report.quarantined_files_open} file(s)",
        },
    ]


def funnel_rows(report: KpiReport) -> list[dict[str, Any]]:
    return [
        {
            "stage": f.stage,
            "leads now": f.current,
            "reached": f.reached,
            "to next stage": _pct(f.conversion),
        }
        for f in report.funnel
    ]


def cost_rows(report: KpiReport) -> list[dict[str, Any]]:
    return [
        {
            "source": c.source,
            "leads": c.leads,
            f"spend ({report.currency})": _num(c.spend, 2),
            "cost per lead": _num(c.cost_per_lead, 2),
        }
        for c in report.costs
    ]


def step_rows(report: KpiReport) -> list[dict[str, Any]]:
    """Per campaign step and channel: what was attempted and how it ended."""
    return [
        {
            "campaign": s.campaign,
            "step": s.step,
            "channel": s.channel,
            "attempted": s.attempted,
            "sent": s.sent,
            "failed": _pct(s.failed / s.attempted if s.attempted else None),
            "ambiguous": _pct(s.ambiguous / s.attempted if s.attempted else None),
        }
        for s in report.steps
    ]


def engagement_rows(report: KpiReport) -> list[dict[str, Any]]:
    """Per campaign step and channel: engagement rates of the messages sent (accepted by
    the channel), as "rate (unique touches)"; "-" where the channel does not report it."""
    rows = []
    for s in report.steps:
        if not s.accepted:
            continue
        row: dict[str, Any] = {
            "campaign": s.campaign,
            "step": s.step,
            "channel": s.channel,
            "sent": s.accepted,
        }
        for name, count in s.engagement.items():
            row[name] = "-" if count is None else f"{_pct(s.rate(count))} ({count})"
        rows.append(row)
    return rows


def goal_rows(report: KpiReport) -> list[dict[str, Any]]:
    """Per campaign with a goal, then per step: enrollments and how many reached the goal."""
    return [
        {
            "campaign": g.campaign,
            "goal": g.goal,
            "step": g.step or "(campaign)",
            "enrollments": g.enrollments,
            "goal reached": g.goal_reached,
            "conversion": _pct(g.conversion),
        }
        for g in report.goals
    ]


def escalation_rows(report: KpiReport) -> list[dict[str, str]]:
    """The escalations section as (figure, value) rows."""
    esc = report.escalations
    statuses = ", ".join(f"{status} {n}" for status, n in esc.by_status.items()) or "none"
    minutes = f"{_num(esc.ack_median_minutes)} min median, {_num(esc.ack_avg_minutes)} min avg"
    return [
        {"figure": "escalations", "value": f"{esc.total} ({statuses})"},
        {"figure": "waiting for a rep (open or re-routed)", "value": str(esc.awaiting)},
        {"figure": "of which in the fallback queue", "value": str(esc.in_queue)},
        {"figure": "of which past their SLA", "value": str(esc.past_sla)},
        {"figure": "acknowledged", "value": str(esc.acknowledged)},
        {"figure": "time to acknowledge", "value": minutes},
        {"figure": "acknowledged within the first rep's SLA", "value": _pct(esc.within_sla)},
    ]


def speed_rows(report: KpiReport) -> list[dict[str, Any]]:
    """Speed to lead, overall then per rep and per source, as table rows."""
    return [
        {
            "by": s.by,
            "rep or source": "" if s.by == "all" else s.key,
            "contacted": s.contacted,
            "median": duration(s.median_minutes),
            "p90": duration(s.p90_minutes),
            "not contacted yet": s.waiting,
            "oldest waiting": duration(
                None if s.oldest_waiting_hours is None else 60 * s.oldest_waiting_hours
            ),
            "closed, never contacted": s.closed_uncontacted,
        }
        for s in report.speed_to_lead
    ]


def outcome_rows(report: KpiReport) -> list[dict[str, Any]]:
    """How the escalations ended, by outcome and reason, as (outcome, reason, escalations,
    note) rows: won with its amounts, then each reason of lost, not ready, disqualified."""
    o, money = report.outcomes, report.currency
    rows: list[dict[str, Any]] = [
        {
            "outcome": "won",
            "reason": "",
            "escalations": o.won,
            "note": f"{_num(o.won_amount_total, 2)} {money} total, "
            f"{_num(o.won_amount_average, 2)} {money} average"
            + (f"; {o.won_without_amount} without an amount" if o.won_without_amount else ""),
        }
    ]
    notes = {
        "not_ready": f"retry scheduled {o.not_ready_retry_scheduled}, "
        f"due and not escalated again {o.not_ready_retry_due}"
    }
    for outcome, total in (
        ("lost", o.lost),
        ("not_ready", o.not_ready),
        ("disqualified", o.disqualified),
    ):
        rows.append(
            {
                "outcome": outcome,
                "reason": "all",
                "escalations": total,
                "note": notes.get(outcome, ""),
            }
        )
        rows += [
            {"outcome": outcome, "reason": r.reason, "escalations": r.escalations, "note": ""}
            for r in report.outcome_reasons
            if r.outcome == outcome
        ]
    return rows
