"""Fit points right after an import: the leads a batch created or changed get the fit
rows their profile earns (config/scoring.yaml `fit`), the score those rows add up to and
their grade and band, in the import's transaction, so no lead waits for a rescore at a
score of 0. The rescore
run keeps them in line afterwards (a later profile change takes points back)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from leadops.engagement.grading import grade_leads
from leadops.engagement.ledger import fit_columns, fit_rows
from leadops.engagement.scoring import ScoringConfig
from leadops.models import LEADS, SCORE_LEDGER

BATCH = 1000


def score_fit(
    session: Session, lead_ids: Iterable[int], config: ScoringConfig, now: datetime
) -> int:
    """Add the fit rows these leads are missing, set their scores to their ledger sums and
    grade them. Returns the number of ledger rows written."""
    ids = sorted(set(lead_ids))
    s = SCORE_LEDGER.c
    written = 0
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        leads = session.execute(sa.select(*fit_columns()).where(LEADS.c.id.in_(chunk))).all()
        rows = fit_rows(session.connection(), config, leads, now)
        if not rows:
            grade_leads(session.connection(), config, chunk)
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
        grade_leads(session.connection(), config, chunk)
    return written
