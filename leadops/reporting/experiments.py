"""Results of a campaign's A/B tests and holdout: per variant and per arm, leads assigned,
sent, delivered, clicked, replied, goal reached and SQL reached, with the always-valid
test of leadops.reporting.sequential.

Counts are of leads, not messages: a lead sent a step by email and WhatsApp counts once.
A variant's "assigned" leads are those its step was planned for; the test's rates are of
the leads it was sent to. A lead reached the goal when its enrollment ended with a reason
starting "goal" (the campaign's `goal:`), and SQL when scoring moved it to SQL or beyond
after it enrolled. The holdout's lift is measured on goal and SQL reached (a held-out
lead cannot click what it was never sent). Below the test's minimum sample (MIN_SAMPLE
leads in each variant or arm) no difference or interval is given.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops.core.clock import ensure_utc
from leadops.delivery.campaigns import Campaign, ExperimentMetric
from leadops.models import ENROLLMENTS, INBOX, STAGE_CHANGES, TOUCHES, InboxStatus
from leadops.models.events import DELIVERED_EVENTS, EventType
from leadops.models.vocab import FUNNEL_ORDER, LifecycleStage
from leadops.nurture.experiments import HOLDOUT
from leadops.reporting.kpi_sql import SENT
from leadops.reporting.sequential import (
    MIN_SAMPLE,
    TOO_EARLY,
    Arm,
    Comparison,
    Verdict,
    compare,
    verdict,
)

GOAL_PREFIX = "goal"  # enrollments.end_reason of a lead that reached the campaign's goal
TREATED = "campaign"  # the arm of leads who get the campaign
SQL_STAGES = [
    str(s) for s, rank in FUNNEL_ORDER.items() if rank >= FUNNEL_ORDER[LifecycleStage.SQL]
]
COUNTS = ("assigned", "sent", "delivered", "clicked", "replied", "goal", "sql")


@dataclass
class ArmCounts:
    """Leads per outcome in one variant (or one campaign arm)."""

    key: str
    leads: dict[str, set[int]] = field(default_factory=lambda: {c: set() for c in COUNTS})

    def count(self, name: str) -> int:
        return len(self.leads[name])

    def arm(self, metric: str, base: str = "sent") -> Arm:
        """The test's view: of the `base` leads, how many had `metric`."""
        return Arm(self.key, self.count(base), len(self.leads[metric] & self.leads[base]))


@dataclass
class ExperimentResult:
    step: str
    metric: ExperimentMetric
    variants: list[ArmCounts]
    verdict: Verdict


@dataclass
class CampaignResults:
    campaign: str
    holdout_share: float
    arms: list[ArmCounts]  # the treated leads, then the holdout
    lift: dict[str, Comparison]  # goal / sql: treated minus holdout
    experiments: list[ExperimentResult]

    def rows(self) -> list[dict[str, Any]]:
        """One row per variant and per arm (machine formats: every number as a number)."""
        rows = []
        for experiment in self.experiments:
            early = experiment.verdict.status == TOO_EARLY  # no interval to trust yet
            tests = {} if early else {c.challenger: c for c in experiment.verdict.comparisons}
            for counts in experiment.variants:
                test = tests.get(counts.key)
                arm = counts.arm(experiment.metric)
                rows.append(
                    {
                        "kind": "variant",
                        "step": experiment.step,
                        "arm": counts.key,
                        **{name: counts.count(name) for name in COUNTS},
                        "metric": experiment.metric,
                        "rate": round(arm.rate, 6),
                        "difference": None if test is None else round(test.difference, 6),
                        "low": None if test is None else round(test.low, 6),
                        "high": None if test is None else round(test.high, 6),
                        "p_value": None if test is None else round(test.p_value, 6),
                        "verdict": experiment.verdict.status,
                        "keep": experiment.verdict.keep,
                    }
                )
        for counts in self.arms:
            lift = self.lift.get("goal") if counts.key == TREATED else None
            sql = self.lift.get("sql") if counts.key == TREATED else None
            rows.append(
                {
                    "kind": "arm",
                    "step": None,
                    "arm": counts.key,
                    **{name: counts.count(name) for name in COUNTS},
                    "metric": "sql",
                    "rate": round(counts.arm("sql", "assigned").rate, 6),
                    "difference": None if sql is None else round(sql.difference, 6),
                    "low": None if sql is None else round(sql.low, 6),
                    "high": None if sql is None else round(sql.high, 6),
                    "p_value": None if sql is None else round(sql.p_value, 6),
                    "verdict": None,
                    "keep": None,
                    "goal_lift": None if lift is None else round(lift.difference, 6),
                    "goal_low": None if lift is None else round(lift.low, 6),
                    "goal_high": None if lift is None else round(lift.high, 6),
                }
            )
        return rows


def _enrollments(conn: Connection, campaign: str) -> list[Any]:
    e = ENROLLMENTS.c
    return list(
        conn.execute(
            sa.select(e.id, e.lead_id, e.arm, e.end_reason, e.started_at).where(
                e.campaign == campaign
            )
        ).all()
    )


def _sql_reached(conn: Connection, enrollments: list[Any]) -> set[int]:
    """Leads scoring moved to SQL or beyond after they enrolled."""
    s = STAGE_CHANGES.c
    started = {row.lead_id: row.started_at for row in enrollments}
    reached: set[int] = set()
    ids = list(started)
    for start in range(0, len(ids), 1000):
        rows = conn.execute(
            sa.select(s.lead_id, sa.func.max(s.changed_at))
            .where(s.lead_id.in_(ids[start : start + 1000]), s.to_stage.in_(SQL_STAGES))
            .group_by(s.lead_id)
        ).all()
        reached |= {
            lead
            for lead, at in rows
            if at is not None and ensure_utc(at) >= ensure_utc(started[lead])
        }
    return reached


def _touches(conn: Connection, campaign: str) -> list[Any]:
    t = TOUCHES.c
    return list(
        conn.execute(
            sa.select(t.id, t.lead_id, t.step, t.variant, t.status).where(
                t.campaign == campaign, t.variant.is_not(None)
            )
        ).all()
    )


def _events(conn: Connection, touch_ids: list[int]) -> dict[int, set[str]]:
    """The processed engagement events of each touch."""
    i = INBOX.c
    found: dict[int, set[str]] = defaultdict(set)
    for start in range(0, len(touch_ids), 1000):
        rows = conn.execute(
            sa.select(i.touch_id, i.event).where(
                i.touch_id.in_(touch_ids[start : start + 1000]),
                i.status == InboxStatus.PROCESSED,
            )
        )
        for touch_id, event in rows:
            found[touch_id].add(event)
    return found


DELIVERED = {str(event) for event in DELIVERED_EVENTS}


def _variant_counts(
    touches: Iterable[Any], events: dict[int, set[str]], goal: set[int], sql: set[int]
) -> dict[tuple[str, str], ArmCounts]:
    by_variant: dict[tuple[str, str], ArmCounts] = {}
    for touch in touches:
        counts = by_variant.setdefault((touch.step, touch.variant), ArmCounts(touch.variant))
        lead, seen = touch.lead_id, events.get(touch.id, set())
        counts.leads["assigned"].add(lead)
        if touch.status in SENT:
            counts.leads["sent"].add(lead)
        if seen & DELIVERED:
            counts.leads["delivered"].add(lead)
        if EventType.CLICKED in seen:
            counts.leads["clicked"].add(lead)
        if EventType.REPLIED in seen:
            counts.leads["replied"].add(lead)
    for counts in by_variant.values():
        counts.leads["goal"] = counts.leads["assigned"] & goal
        counts.leads["sql"] = counts.leads["assigned"] & sql
    return by_variant


def _arm_counts(
    enrollments: list[Any], sent_leads: dict[str, set[int]], goal: set[int], sql: set[int]
) -> list[ArmCounts]:
    arms = {TREATED: ArmCounts(TREATED), HOLDOUT: ArmCounts(HOLDOUT)}
    for row in enrollments:
        arms[HOLDOUT if row.arm == HOLDOUT else TREATED].leads["assigned"].add(row.lead_id)
    for counts in arms.values():
        assigned = counts.leads["assigned"]
        for name, leads in sent_leads.items():
            counts.leads[name] = leads & assigned
        counts.leads["goal"] = goal & assigned
        counts.leads["sql"] = sql & assigned
    return list(arms.values())


def _campaign_sends(conn: Connection, campaign: str) -> dict[str, set[int]]:
    """Leads sent, delivered, clicked or replied on any step of the campaign."""
    t, i = TOUCHES.c, INBOX.c
    sent = set(
        conn.execute(
            sa.select(t.lead_id).where(t.campaign == campaign, t.status.in_(SENT)).distinct()
        ).scalars()
    )
    result = {"sent": sent, "delivered": set(), "clicked": set(), "replied": set()}
    rows = conn.execute(
        sa.select(t.lead_id, i.event)
        .select_from(INBOX.join(TOUCHES, t.id == i.touch_id))
        .where(t.campaign == campaign, i.status == InboxStatus.PROCESSED)
        .distinct()
    )
    for lead, event in rows:
        if event in DELIVERED:
            result["delivered"].add(lead)
        elif event in (EventType.CLICKED, EventType.REPLIED):
            result[str(event)].add(lead)
    return result


def campaign_results(conn: Connection, campaign: Campaign) -> CampaignResults:
    """The results of `campaign`'s experiments and holdout so far."""
    enrollments = _enrollments(conn, campaign.key)
    goal = {row.lead_id for row in enrollments if (row.end_reason or "").startswith(GOAL_PREFIX)}
    sql = _sql_reached(conn, enrollments)
    touches = _touches(conn, campaign.key)
    by_variant = _variant_counts(touches, _events(conn, [t.id for t in touches]), goal, sql)
    experiments = []
    for step_key in sorted({step for step, _ in by_variant}, key=_step_order(campaign)):
        step = next((s for s in campaign.steps if s.key == step_key), None)
        order = [v.key for v in step.variants] if step else []
        found = [counts for (s, _), counts in by_variant.items() if s == step_key]
        found.sort(key=lambda c: (order.index(c.key) if c.key in order else len(order), c.key))
        metric: ExperimentMetric = step.experiment_metric if step else "clicked"
        if len(found) < 2:
            continue
        result = verdict([counts.arm(metric) for counts in found])
        experiments.append(ExperimentResult(step_key, metric, found, result))
    arms = _arm_counts(enrollments, _campaign_sends(conn, campaign.key), goal, sql)
    treated, holdout = arms
    lift = {}  # once both arms have the minimum sample
    if min(holdout.count("assigned"), treated.count("assigned")) >= MIN_SAMPLE:
        for name in ("goal", "sql"):
            lift[name] = compare(holdout.arm(name, "assigned"), treated.arm(name, "assigned"))
    return CampaignResults(campaign.key, campaign.holdout, arms, lift, experiments)


def _step_order(campaign: Campaign) -> Any:
    keys = [step.key for step in campaign.steps]
    return lambda key: (keys.index(key) if key in keys else len(keys), key)


def all_results(engine: Engine, campaigns: Mapping[str, Campaign]) -> list[CampaignResults]:
    """The results of every campaign that has an A/B test or a holdout in its file."""
    tested = [
        campaign
        for campaign in campaigns.values()
        if campaign.holdout or any(step.variants for step in campaign.steps)
    ]
    with engine.connect() as conn:
        return [campaign_results(conn, campaign) for campaign in tested]


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:+.2%}"


def display_rows(results: Iterable[CampaignResults]) -> list[dict[str, Any]]:
    """The results for people (the HTML report, the report flow's table artifact): one
    row per variant and arm, rates and intervals as percentages."""
    rows = []
    for result in results:
        for row in result.rows():
            rows.append(
                {
                    "campaign": result.campaign,
                    "step": row["step"] or "(whole campaign)",
                    "arm": row["arm"],
                    **{name: row[name] for name in COUNTS},
                    "metric": row["metric"],
                    "rate": f"{row['rate']:.2%}",
                    "difference": _share(row["difference"]),
                    "interval": ""
                    if row["low"] is None
                    else f"{_share(row['low'])} to {_share(row['high'])}",
                    "verdict": ""
                    if row["verdict"] is None
                    else f"{row['verdict']}, send {row['keep']}",
                }
            )
    return rows
