"""The rescore run: apply the webhook inbox, score, decay, move stages, re-segment.

`run_rescore` is what flows/rescore.py (every 5 minutes), `leadops rescore` and the tests
call; `run_inbox` is the every-minute quick pass. The inbox is applied by
`leadops.engagement.apply`, the ledger and stages kept by `leadops.engagement.ledger`.
Leads that become sales-ready (reach SQL, or raise a hand: demo request, reply) are
returned in `RescoreReport.sales_ready` for escalation.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from leadops.engagement.apply import process_inbox
from leadops.engagement.grading import grade_ungraded
from leadops.engagement.ledger import (
    apply_decay,
    apply_fit,
    apply_no_opens,
    apply_scores_and_stages,
)
from leadops.engagement.report import RescoreReport
from leadops.engagement.scoring import ScoringConfig, load_scoring
from leadops.models import ENROLLMENTS, LEADS, EnrollmentStatus
from leadops.nurture.plan import plan_leads
from leadops.nurture.runtime import Runtime
from leadops.predictive.store import score_leads

log = logging.getLogger("leadops.rescore")


def inactive_unenrolled(runtime: Runtime, now: datetime) -> set[int]:
    """Leads without an active enrollment that an inactivity segment rule (re-engage) may
    now enrol: inactive long enough, in the rule's stages, never in its campaign."""
    e = ENROLLMENTS.c
    active = sa.select(e.lead_id).where(e.status == EnrollmentStatus.ACTIVE)
    found: set[int] = set()
    with runtime.engine.connect() as connection:
        for rule in runtime.segments.rules:
            days = rule.when.inactive_days_at_least
            if days is None:
                continue
            been = sa.select(e.lead_id).where(e.campaign == rule.campaign)
            query = sa.select(LEADS.c.id).where(
                sa.func.coalesce(LEADS.c.last_engaged_at, LEADS.c.created_at)
                <= now - timedelta(days=days),
                LEADS.c.id.not_in(active),
                LEADS.c.id.not_in(been),
            )
            if rule.when.lifecycle_stage is not None:
                query = query.where(
                    LEADS.c.lifecycle_stage.in_([str(s) for s in rule.when.lifecycle_stage])
                )
            found |= set(connection.execute(query).scalars())
    return found


def run_rescore(
    runtime: Runtime, now: datetime, *, config: ScoringConfig | None = None
) -> RescoreReport:
    """One rescore run at `now`: inbox, fit, no-opens, decay, scores, grades, stages,
    re-segment."""
    config = config or load_scoring(runtime.settings.config_dir)
    report = RescoreReport(now=now)
    engine = runtime.engine
    touched, hand_raised = process_inbox(engine, config, now, report)
    touched |= apply_fit(engine, config, now, report)
    touched |= apply_no_opens(engine, config, now, report)
    touched |= apply_decay(engine, config, now, report)
    moved = apply_scores_and_stages(engine, config, touched, hand_raised, now, report)
    grade_ungraded(engine, config)
    # The predictive score of the leads that changed (shadow: stored; active: sets bands).
    score_leads(engine, touched | moved, now)
    report.plan = plan_leads(runtime, moved | inactive_unenrolled(runtime, now), now)
    log.info(
        "rescore %s: %d events, %d ignored, %d ledger rows, %d stage changes, %d sales-ready",
        now.isoformat(),
        report.events_total,
        sum(report.ignored.values()),
        report.ledger_rows + report.fit_rows + report.decay_rows,
        sum(report.stage_changes.values()),
        len(report.sales_ready),
    )
    return report


def run_inbox(
    runtime: Runtime, now: datetime, *, config: ScoringConfig | None = None
) -> RescoreReport:
    """The quick pass: apply pending inbox events, rescore and move only the leads they
    touched (no fit, no-opens or decay scans). The every-minute escalate flow runs it so a
    hand-raise reaches a rep within a minute; the 5-minute rescore does the rest."""
    config = config or load_scoring(runtime.settings.config_dir)
    report = RescoreReport(now=now)
    touched, hand_raised = process_inbox(runtime.engine, config, now, report)
    moved = apply_scores_and_stages(runtime.engine, config, touched, hand_raised, now, report)
    if touched:  # the predictive score before escalation routes on the band
        score_leads(runtime.engine, touched | moved, now)
    if moved:
        report.plan = plan_leads(runtime, moved, now)
    return report
