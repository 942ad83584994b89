"""Grades and bands stored on the leads: the fit letter and engagement digit of each
lead's ledger sums (config/scoring.yaml grades) and the band of that grade."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops.core.bulk import among, execute_many
from leadops.engagement.scoring import ScoringConfig, band_of, grade_of
from leadops.models import LEADS, SCORE_LEDGER, ScoreKind

GRADE_BATCH = 5000  # leads graded per transaction


def grade_ungraded(engine: Engine, config: ScoringConfig) -> int:
    """Grade the leads that have no grade yet (stored before grades existed, or never
    rescored), GRADE_BATCH at a time; returns how many."""
    with engine.connect() as connection:
        ids = list(
            connection.execute(sa.select(LEADS.c.id).where(LEADS.c.grade.is_(None))).scalars()
        )
    for start in range(0, len(ids), GRADE_BATCH):
        with engine.begin() as connection:
            grade_leads(connection, config, ids[start : start + GRADE_BATCH])
    return len(ids)


def grade_leads(connection: Connection, config: ScoringConfig, chunk: list[int]) -> None:
    """Store each lead's grade (fit and engagement points apart) and band."""
    if not chunk:
        return
    s = SCORE_LEDGER.c
    points: dict[int, dict[str, int]] = {lead_id: {"fit": 0, "engagement": 0} for lead_id in chunk}
    for lead_id, kind, total in connection.execute(
        sa.select(s.lead_id, s.kind, sa.func.sum(s.points))
        .where(among(connection.dialect.name, s.lead_id, chunk))
        .group_by(s.lead_id, s.kind)
    ).all():
        points[lead_id]["fit" if kind == ScoreKind.FIT else "engagement"] += int(total)
    rows = []
    for lead_id, p in points.items():
        grade = grade_of(config.grades, p["fit"], p["engagement"])
        rows.append({"lid": lead_id, "grade": grade, "band": band_of(config.bands, grade)})
    execute_many(
        connection,
        sa.update(LEADS)
        .where(LEADS.c.id == sa.bindparam("lid"))
        .values(grade=sa.bindparam("grade"), band=sa.bindparam("band")),
        rows,
    )
