"""Goal conversion per campaign and step: of the enrollments in a campaign version with a
goal (campaign file `goal:`), how many the goal ended (status goal_reached), and per step,
of the enrollments sent that step, how many reached the goal after it went out."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import CAMPAIGN_VERSIONS, ENROLLMENTS, TOUCHES, EnrollmentStatus
from leadops.reporting.kpi_figures import GoalRates, KpiReport
from leadops.reporting.kpi_sql import SENT


def _goal_versions(conn: Connection) -> dict[int, str]:
    """The campaign versions that have a goal: id -> the goal's name."""
    v = CAMPAIGN_VERSIONS.c
    return {
        version_id: definition["goal"]["name"]
        for version_id, definition in conn.execute(sa.select(v.id, v.definition)).all()
        if (definition or {}).get("goal")
    }


def goal_rates(conn: Connection, report: KpiReport) -> None:
    versions = _goal_versions(conn)
    if not versions:
        return
    e, t = ENROLLMENTS.c, TOUCHES.c
    reached = e.status == EnrollmentStatus.GOAL_REACHED
    on_goal = e.campaign_version_id.in_(list(versions))
    goal_of = {
        campaign: versions[version_id]
        for campaign, version_id in conn.execute(
            sa.select(e.campaign, e.campaign_version_id).where(on_goal).distinct()
        ).all()
    }
    campaigns = conn.execute(
        sa.select(e.campaign, sa.func.count(), sa.func.sum(sa.case((reached, 1), else_=0)))
        .where(on_goal)
        .group_by(e.campaign)
        .order_by(e.campaign)
    ).all()
    after = sa.and_(reached, t.sent_at <= e.ended_at)
    steps = conn.execute(
        sa.select(
            t.campaign,
            t.step,
            sa.func.min(t.step_day),
            sa.func.count(sa.distinct(t.enrollment_id)),
            sa.func.count(sa.distinct(sa.case((after, t.enrollment_id)))),
        )
        .select_from(TOUCHES.join(ENROLLMENTS, e.id == t.enrollment_id))
        .where(on_goal, t.status.in_(SENT))
        .group_by(t.campaign, t.step)
    ).all()
    by_campaign: dict[str, list[GoalRates]] = {}
    for campaign, step, day, sent, converted in sorted(steps, key=lambda r: (r[0], r[2], r[1])):
        by_campaign.setdefault(campaign, []).append(
            GoalRates(campaign, goal_of[campaign], step, int(day), int(sent), int(converted))
        )
    for campaign, enrolled, converted in campaigns:
        goal = goal_of[campaign]
        report.goals.append(
            GoalRates(campaign, goal, None, None, int(enrolled), int(converted or 0))
        )
        report.goals += by_campaign.get(campaign, [])
