"""core.bulk.execute_many stores exactly what an ordinary executemany stores, and among
matches what IN matches, bound as one parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from leadops.core.bulk import among, execute_many
from leadops.core.db import make_engine, upgrade
from leadops.models import LEADS, SCORE_LEDGER, ScoreKind


def _lead(n: int, at: datetime) -> dict[str, object]:
    return {
        "email": f"lead{n}@example.com",
        "timezone": "UTC",
        "lifecycle_stage": "lead",
        "email_consent": n % 2 == 0,
        "properties": {"budget": "approved"} if n % 2 else None,
        "created_at": at,
        "updated_at": at,
        "last_engaged_at": None if n % 3 else at,
    }


def test_execute_many_stores_what_execute_stores(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bulk.db'}")
    upgrade(engine)
    at = datetime(2026, 3, 1, 12, 30, 15, 120, tzinfo=timezone(timedelta(hours=2)))
    columns = "email, email_consent, properties, created_at, updated_at, last_engaged_at"
    with engine.begin() as connection:
        rows = [_lead(n, at) for n in range(3)]
        connection.execute(LEADS.insert(), rows)
        again = [{**row, "email": f"again-{row['email']}"} for row in rows]
        assert execute_many(connection, LEADS.insert(), again) == 3
        stored = connection.exec_driver_sql(f"SELECT {columns} FROM leads ORDER BY id").all()
    plain = [row[1:] for row in stored[:3]]
    fast = [row[1:] for row in stored[3:]]
    assert plain == fast
    assert stored[0][3] == "2026-03-01 10:30:15.000120"  # UTC, as UTCDateTime stores it


def test_execute_many_updates_with_shared_values(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bulk.db'}")
    upgrade(engine)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(LEADS.insert(), [_lead(n, at) for n in range(3)])
        statement = (
            sa.update(LEADS)
            .where(LEADS.c.id == sa.bindparam("lid"))
            .values(score=sa.bindparam("points"), updated_at=at + timedelta(days=1))
        )
        rows = [{"lid": 1, "points": 7}, {"lid": 3, "points": 9}, {"lid": 99, "points": 1}]
        assert execute_many(connection, statement, rows) == 2
        scores = connection.execute(
            sa.select(LEADS.c.id, LEADS.c.score, LEADS.c.updated_at).order_by(LEADS.c.id)
        ).all()
    assert [tuple(row) for row in scores] == [
        (1, 7, at + timedelta(days=1)),
        (2, 0, at),
        (3, 9, at + timedelta(days=1)),
    ]


def test_among_matches_ids_and_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bulk.db'}")
    upgrade(engine)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(LEADS.insert(), [_lead(n, at) for n in range(4)])
        connection.execute(
            SCORE_LEDGER.insert(),
            [
                {
                    "lead_id": 2,
                    "kind": ScoreKind.FIT,
                    "rule": "r",
                    "points": 1,
                    "reason": "r",
                    "event_at": at,
                    "created_at": at,
                }
            ],
        )
        dialect = connection.dialect.name
        ids = connection.execute(
            sa.select(LEADS.c.id).where(among(dialect, LEADS.c.id, {2, 4, 40})).order_by("id")
        ).scalars()
        assert list(ids) == [2, 4]
        emails = connection.execute(
            sa.select(LEADS.c.email).where(among(dialect, LEADS.c.email, ["lead1@example.com"]))
        ).scalars()
        assert list(emails) == ["lead1@example.com"]
        kinds = connection.execute(
            sa.select(SCORE_LEDGER.c.lead_id).where(
                among(dialect, SCORE_LEDGER.c.kind, [ScoreKind.FIT])
            )
        ).scalars()
        assert list(kinds) == [2]
        assert (
            connection.execute(sa.select(LEADS.c.id).where(among(dialect, LEADS.c.id, []))).all()
            == []
        )
        with pytest.raises(OverflowError):
            among(dialect, LEADS.c.id, [10**30])
