"""Fit points right after an import: the leads a batch created or changed get the fit
rows their profile earns (config/scoring.yaml `fit`) and the score those rows add up to,
in the import's transaction, so no lead waits for a rescore at a score of 0. The rescore
run keeps them in line afterwards (a later profile change takes points back)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from leadops.engagement.scoring import FitFacts, ScoringConfig, fit_adjustments, fit_points
from leadops.models import LEADS, SCORE_LEDGER, ScoreKind

BATCH = 1000


def score_fit(
    session: Session, lead_ids: Iterable[int], config: ScoringConfig, now: datetime
) -> int:
    """Add the fit rows these leads are missing and set their scores to their ledger sums.
    Returns the number of ledger rows written."""
    ids = sorted(set(lead_ids))
    s, lead = SCORE_LEDGER.c, LEADS.c
    written = 0
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        leads = session.execute(
            sa.select(
                lead.id, lead.seniority, lead.industry, lead.country, lead.company_size
            ).where(lead.id.in_(chunk))
        ).all()
        recorded: dict[int, dict[str, int]] = defaultdict(dict)
        for lead_id, rule, points in session.execute(
            sa.select(s.lead_id, s.rule, sa.func.sum(s.points))
            .where(s.kind == ScoreKind.FIT, s.lead_id.in_(chunk))
            .group_by(s.lead_id, s.rule)
        ).all():
            recorded[lead_id][rule] = int(points)
        rows = []
        for r in leads:
            desired = fit_points(
                config, FitFacts(r.seniority, r.industry, r.country, r.company_size)
            )
            for rule, delta in fit_adjustments(desired, recorded[r.id]).items():
                verb = "matches" if rule in desired else "no longer matches"
                rows.append(
                    {
                        "lead_id": r.id,
                        "kind": ScoreKind.FIT,
                        "rule": rule,
                        "points": delta,
                        "reason": f"fit: {verb} {rule}",
                        "inbox_id": None,
                        "event_at": now,
                        "created_at": now,
                    }
                )
        if not rows:
            continue
        session.execute(sa.insert(SCORE_LEDGER), rows)
        written += len(rows)
        changed = sorted({row["lead_id"] for row in rows})
        total = (
            sa.select(sa.func.coalesce(sa.func.sum(s.points), 0))
            .where(s.lead_id == LEADS.c.id)
            .scalar_subquery()
        )
        session.execute(sa.update(LEADS).where(LEADS.c.id.in_(changed)).values(score=total))
    return written
