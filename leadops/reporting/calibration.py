"""Calibration: do the scores and the scoring rules predict sales?

Conversion to SQL, SAL and customer by score decile, by band and by grade, and the lift
of each scoring rule (leadops.reporting.lift), over the leads the score ledger scored
before their hand-off to sales.

- **Hand-off**: a lead's first move to SQL or beyond by scoring (stage_changes), or its
  first escalation, whichever came first. A lead imported as SQL (an `imported_sql`
  escalation), or at SQL or beyond with neither, was handed off when it was created.
  A lead never handed off is looked at up to now.
- **The score of a lead** is the highest score its ledger reached up to the hand-off
  (running sum of its rows by event time, from 0), so what happened after (meetings, replies to
  the rep, decay) never leaks into it: a converted lead is scored as marketing saw it
  when it passed the lead on, a lead never handed off at its best. A lead handed off
  without a ledger row before it (imported as a sales lead) is left out, and counted.
- **A rule fired** for a lead when the lead has a ledger row of it up to the hand-off
  (a fit rule: with points still standing then). Decay is not a rule.
- **Outcomes**: SQL reached (the funnel's peak stage: stage now, stage changes, any
  escalation); SAL: lead status `sal`, an acknowledged or won escalation, or a customer;
  customer: the customer stage reached or an escalation closed won.
- **Deciles** rank the leads by that score; leads with the same score share a decile
  (so a decile may hold more or fewer than a tenth of the leads, or none).
- **Band and grade** are the lead's columns now (stored on every rescore, no history);
  a lead without one is in the "(not graded)" group.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops.models import (
    ESCALATIONS,
    FUNNEL_ORDER,
    LEADS,
    SCORE_LEDGER,
    STAGE_CHANGES,
    EscalationStatus,
    LifecycleStage,
    ScoreKind,
    UTCDateTime,
)
from leadops.models.vocab import Band, LeadStatus
from leadops.reporting import lift as stats
from leadops.reporting.kpi_figures import CalibrationGroup, KpiReport, RuleLift
from leadops.reporting.lead_kpis import _peak_rank
from leadops.sales.triggers import IMPORTED_SQL

OUTCOMES = ("sql", "sal", "customer")
NOT_GRADED = "(not graded)"
SAL_STATUS = LeadStatus.SAL  # leads.lead_status of a lead a rep accepted
DECILES = 10
SQL_RANK = FUNNEL_ORDER[LifecycleStage.SQL]
CUSTOMER_RANK = FUNNEL_ORDER[LifecycleStage.CUSTOMER]
SALES_STAGES = [str(stage) for stage, rank in FUNNEL_ORDER.items() if rank >= SQL_RANK]
BAND_ORDER: dict[str, int] = {Band.COLD: 0, Band.WARM: 1, Band.HOT: 2}


def _handoffs() -> Any:
    """(lead_id, at): each handed-off lead's first hand-off to sales."""
    c, e, lead = STAGE_CHANGES.c, ESCALATIONS.c, LEADS.c
    moved = sa.select(c.lead_id, c.changed_at.label("at")).where(c.to_stage.in_(SALES_STAGES))
    escalated = sa.select(
        e.lead_id,
        sa.case((e.trigger == IMPORTED_SQL, lead.created_at), else_=e.created_at).label("at"),
    ).select_from(ESCALATIONS.join(LEADS, lead.id == e.lead_id))
    any_move = sa.select(c.id).where(c.lead_id == lead.id, c.to_stage.in_(SALES_STAGES)).exists()
    any_escalation = sa.select(e.id).where(e.lead_id == lead.id).exists()
    imported = sa.select(lead.id, lead.created_at).where(
        lead.lifecycle_stage.in_(SALES_STAGES), ~any_move, ~any_escalation
    )
    union = sa.union_all(moved, escalated, imported).subquery("handoff_times")
    return (
        sa.select(union.c.lead_id, sa.func.min(union.c.at).label("at"))
        .group_by(union.c.lead_id)
        .subquery("handoffs")
    )


def _before_handoff(handoffs: Any, now: datetime) -> Any:
    """The ledger rows of each lead up to its hand-off (or now), with the running score."""
    s = SCORE_LEDGER.c
    cutoff = sa.func.coalesce(handoffs.c.at, sa.literal(now, UTCDateTime()))
    running = sa.func.sum(s.points).over(partition_by=s.lead_id, order_by=(s.event_at, s.id))
    return (
        sa.select(s.lead_id, s.kind, s.rule, s.points, running.label("running"))
        .select_from(SCORE_LEDGER.outerjoin(handoffs, handoffs.c.lead_id == s.lead_id))
        .where(s.event_at <= cutoff)
        .cte("before_handoff")
        .prefix_with("MATERIALIZED")
    )


def _frame(handoffs: Any, before: Any) -> Any:
    """Per lead in the calibration: its score, decile, band, grade and the outcomes (1 or
    0). A lead starts at 0 points; one handed off before any ledger row is left out."""
    scored = (
        sa.select(before.c.lead_id, sa.func.max(before.c.running).label("peak"))
        .group_by(before.c.lead_id)
        .subquery("scored")
    )
    lead = LEADS.c
    peak = sa.func.coalesce(scored.c.peak, 0)
    score = sa.case((peak > 0, peak), else_=0)
    ranked = (
        sa.select(
            lead.id.label("lead_id"),
            score.label("score"),
            sa.func.rank().over(order_by=score).label("rk"),
            sa.func.count().over().label("n"),
        )
        .select_from(
            LEADS.outerjoin(scored, scored.c.lead_id == lead.id).outerjoin(
                handoffs, handoffs.c.lead_id == lead.id
            )
        )
        .where(sa.or_(handoffs.c.at.is_(None), scored.c.peak.is_not(None)))
        .subquery("ranked")
    )
    e, peaks = ESCALATIONS.c, _peak_rank()
    won = sa.select(e.id).where(e.lead_id == lead.id, e.status == EscalationStatus.CLOSED_WON)
    acked = sa.select(e.id).where(e.lead_id == lead.id, e.acknowledged_at.is_not(None))
    customer = sa.or_(peaks.c.peak >= CUSTOMER_RANK, won.exists())
    decile = sa.literal_column("1", sa.Integer) + (
        sa.literal_column(str(DECILES), sa.Integer) * (ranked.c.rk - 1) // ranked.c.n
    )
    sal = sa.or_(lead.lead_status == SAL_STATUS, acked.exists(), customer)
    return (
        sa.select(
            ranked.c.lead_id,
            ranked.c.score,
            decile.label("decile"),
            sa.func.coalesce(lead.band, NOT_GRADED).label("band"),
            sa.func.coalesce(lead.grade, NOT_GRADED).label("grade"),
            sa.case((peaks.c.peak >= SQL_RANK, 1), else_=0).label("sql"),
            sa.case((sal, 1), else_=0).label("sal"),
            sa.case((customer, 1), else_=0).label("customer"),
        )
        .select_from(
            ranked.join(LEADS, lead.id == ranked.c.lead_id).join(
                peaks, peaks.c.lead_id == ranked.c.lead_id
            )
        )
        .cte("calibration")
        .prefix_with("MATERIALIZED")
    )


def _group_order(group: CalibrationGroup) -> tuple[int, int, str]:
    by = ("decile", "band", "grade").index(group.by)
    if group.by == "decile":
        return by, int(group.group), ""
    rank = BAND_ORDER.get(group.group, len(BAND_ORDER)) if group.by == "band" else 0
    return by, rank + (10 if group.group == NOT_GRADED else 0), group.group


def _fired(before: Any) -> Any:
    """(lead_id, kind, rule): the rules each lead fired before its hand-off."""
    b = before.c
    return (
        sa.select(b.lead_id, b.kind, b.rule)
        .where(b.kind != ScoreKind.DECAY)
        .group_by(b.lead_id, b.kind, b.rule)
        .having(sa.or_(b.kind != ScoreKind.FIT, sa.func.sum(b.points) != 0))
        .subquery("fired")
    )


def _counts(now: datetime) -> sa.CompoundSelect:
    """One statement, each per-lead step computed once (materialized): rows of (by, kind,
    key, leads, lowest and highest score, then the leads of each outcome), for all the
    leads (`all`), each decile, band and grade, and each rule fired (`rule`, by kind)."""
    handoffs = _handoffs()
    before = _before_handoff(handoffs, now)
    frame = _frame(handoffs, before)
    f, fired = frame.c, _fired(before)
    sums = [sa.func.coalesce(sa.func.sum(f[name]), 0) for name in OUTCOMES]
    scores = [sa.func.min(f.score), sa.func.max(f.score)]
    none = sa.literal("", sa.String)

    def labelled(by: str) -> Any:
        return sa.literal(by, sa.String).label("by")

    parts = [sa.select(labelled("all"), none, none, sa.func.count(), *scores, *sums)]
    for by in ("decile", "band", "grade"):
        key = sa.cast(f[by], sa.String)
        parts.append(
            sa.select(labelled(by), none, key, sa.func.count(), *scores, *sums).group_by(f[by])
        )
    parts.append(
        sa.select(labelled("rule"), fired.c.kind, fired.c.rule, sa.func.count(), *scores, *sums)
        .select_from(fired.join(frame, f.lead_id == fired.c.lead_id))
        .group_by(fired.c.kind, fired.c.rule)
    )
    return sa.union_all(*parts)


def compute(conn: Connection, now: datetime, report: KpiReport) -> None:
    """Fill the report's calibration: its groups and the lift of every rule that fired."""
    rows = conn.execute(_counts(now)).all()
    totals = next(r for r in rows if r.by == "all")
    report.calibration_leads = n = int(totals[3])
    leads = int(conn.execute(sa.select(sa.func.count()).select_from(LEADS)).scalar_one())
    report.calibration_not_scored = leads - n
    rules = [r for r in rows if r.by == "rule"]
    z = stats.z_for(len(rules))
    for by, kind, key, count, low, high, *done in rows:
        if by == "rule":
            _rule_lift(report, kind, key, int(count), [int(d) for d in done], totals, z)
        elif by != "all":
            report.calibration.append(_group(by, key, int(count), low, high, done))
    report.calibration.sort(key=_group_order)
    report.rule_lift.sort(key=_rule_order)


def _group(by: str, key: str, count: int, low: Any, high: Any, done: list[Any]) -> CalibrationGroup:
    sql, sal, customer = (int(d) for d in done)
    return CalibrationGroup(
        by=by,
        group=key,
        leads=count,
        score_min=int(low),
        score_max=int(high),
        sql=sql,
        sal=sal,
        customer=customer,
        sql_conversion=stats.rate(sql, count),
        sal_conversion=stats.rate(sal, count),
        customer_conversion=stats.rate(customer, count),
        few=count < stats.MIN_GROUP,
    )


def _rule_lift(
    report: KpiReport, kind: str, rule: str, n: int, done: list[int], totals: Any, z: float
) -> None:
    """The rule's lift on each outcome: the `n` leads that fired it against the others."""
    leads = int(totals[3])
    for outcome, a, total in zip(OUTCOMES, done, totals[6:], strict=True):
        c = int(total) - a
        result = stats.lift(a, n, c, leads - n, z)
        report.rule_lift.append(
            RuleLift(
                rule=rule,
                kind=kind,
                outcome=outcome,
                fired=n,
                fired_converted=a,
                not_fired=leads - n,
                not_fired_converted=c,
                fired_conversion=stats.rate(a, n),
                not_fired_conversion=stats.rate(c, leads - n),
                lift=result.lift,
                lift_low=result.low,
                lift_high=result.high,
                verdict=str(result.verdict),
            )
        )


def calibration_report(engine: Engine, now: datetime) -> KpiReport:
    """A report holding the calibration alone (`leadops scoring calibration`)."""
    report = KpiReport(now=now)
    with engine.connect() as conn:
        compute(conn, now, report)
    return report


def _rule_order(row: RuleLift) -> tuple[bool, str, int]:
    """Fit rules first, then by name, each rule's outcomes in funnel order."""
    return row.kind != ScoreKind.FIT, row.rule, OUTCOMES.index(row.outcome)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def score_range(group: CalibrationGroup) -> str:
    """The scores of a group's leads: "15" or "15 to 30"."""
    low, high = group.score_min, group.score_max
    return str(low) if low == high else f"{low} to {high}"


def group_label(group: CalibrationGroup) -> str:
    """A group's leads for a chart label: "40 leads", "12 leads, few"."""
    return f"{group.leads} leads" + (", few" if group.few else "")


def group_rows(report: KpiReport) -> list[dict[str, Any]]:
    """Conversion by decile, band and grade, as table rows ("rate (leads)")."""
    return [
        {
            "by": g.by,
            "group": g.group,
            "leads": g.leads,
            "scores": score_range(g),
            **{o: f"{_pct(g.rate(o))} ({getattr(g, o)})" for o in OUTCOMES},
            "note": f"under {stats.MIN_GROUP} leads: read with care" if g.few else "",
        }
        for g in report.calibration
    ]


def _lift_cell(r: RuleLift) -> str:
    """A lift for people, e.g. "2.10x (1.40 to 3.20) predicts"; only the words when there
    is no verdict (the machine formats keep the numbers)."""
    words = stats.VERDICT_WORDS[stats.Verdict(r.verdict)]
    if r.verdict == stats.Verdict.TOO_FEW or None in (r.lift, r.lift_low, r.lift_high):
        return words
    return f"{r.lift:.2f}x ({r.lift_low:.2f} to {r.lift_high:.2f}) {words}"


def rule_rows(report: KpiReport) -> list[dict[str, Any]]:
    """One row per rule: how many leads fired it, and its lift on each outcome."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in report.rule_lift:
        row = rows.setdefault(
            (r.kind, r.rule),
            {"rule": r.rule, "kind": r.kind, "fired": r.fired, "not fired": r.not_fired},
        )
        row[f"{r.outcome} lift"] = _lift_cell(r)
    return list(rows.values())
