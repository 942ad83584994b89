"""A lead's score explained: points per rule, and the timeline of ledger rows, inbox
events and stage changes behind them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.models import INBOX, SCORE_LEDGER, STAGE_CHANGES


def explain(engine: Engine, lead_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A lead's score breakdown (points per rule) and timeline (ledger rows, inbox events
    and stage changes, oldest first)."""
    s, i, c = SCORE_LEDGER.c, INBOX.c, STAGE_CHANGES.c
    with engine.connect() as connection:
        breakdown = [
            {"rule": rule, "kind": kind, "points": int(points), "rows": rows}
            for rule, kind, points, rows in connection.execute(
                sa.select(s.rule, s.kind, sa.func.sum(s.points), sa.func.count())
                .where(s.lead_id == lead_id)
                .group_by(s.rule, s.kind)
                .order_by(sa.func.sum(s.points).desc(), s.rule)
            ).all()
        ]
        timeline: list[dict[str, Any]] = [
            {"at": at, "what": f"score {rule} {points:+d}", "detail": reason, "event": inbox_id}
            for at, rule, points, reason, inbox_id in connection.execute(
                sa.select(s.event_at, s.rule, s.points, s.reason, s.inbox_id)
                .where(s.lead_id == lead_id)
                .order_by(s.id)
            ).all()
        ]
        scored = {row["event"] for row in timeline if row["event"] is not None}
        timeline += [
            {"at": at, "what": f"{source} {kind}", "detail": result or status, "event": event_id}
            for event_id, at, source, kind, status, result in connection.execute(
                sa.select(i.id, i.received_at, i.source, i.kind, i.status, i.result)
                .where(i.lead_id == lead_id)
                .order_by(i.id)
            ).all()
            if event_id not in scored
        ]
        timeline += [
            {"at": at, "what": f"stage {old} -> {new}", "detail": reason, "event": None}
            for at, old, new, reason in connection.execute(
                sa.select(c.changed_at, c.from_stage, c.to_stage, c.reason)
                .where(c.lead_id == lead_id)
                .order_by(c.id)
            ).all()
        ]
    timeline.sort(key=lambda row: row["at"])
    return breakdown, timeline
