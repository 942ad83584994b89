"""The webhook inbox and refused requests, counted: events by source, kind and status, and
refusals by source and reason."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.models import INBOX, WEBHOOK_REJECTIONS


def rejection_counts(engine: Engine) -> list[dict[str, Any]]:
    r = WEBHOOK_REJECTIONS.c
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(r.source, r.reason, r["count"], r.last_at).order_by(r.source, r.reason)
        ).all()
    return [
        {"source": s, "reason": reason, "count": n, "last_at": last} for s, reason, n, last in rows
    ]


def inbox_counts(engine: Engine) -> list[dict[str, Any]]:
    i = INBOX.c
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(i.source, i.kind, i.status, sa.func.count())
            .group_by(i.source, i.kind, i.status)
            .order_by(i.source, i.kind, i.status)
        ).all()
    return [{"source": s, "kind": k, "status": st, "events": n} for s, k, st, n in rows]
