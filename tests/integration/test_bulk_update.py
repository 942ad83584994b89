"""bulk_update: each row gets its own values and the shared ones, only where the extra
conditions hold, on SQLite (executemany) and PostgreSQL (one UPDATE ... FROM unnest)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.bulk import bulk_update
from leadops.models import UTCDateTime

METADATA = sa.MetaData()
ITEMS = sa.Table(
    "bulk_items",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("owner", sa.String(20)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("note", sa.String(100)),
    sa.Column("done_at", UTCDateTime()),
    sa.Column("tries", sa.Integer, nullable=False),
)
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


class Status(StrEnum):
    NEW = "new"
    DONE = "done"


@pytest.fixture
def items(engine: Engine) -> Engine:
    METADATA.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(ITEMS),
            [
                {"id": n, "owner": "me" if n < 5 else "other", "status": "new", "tries": 0}
                for n in range(1, 7)
            ],
        )
    return engine


def _rows(engine: Engine) -> dict[int, tuple[object, ...]]:
    with engine.connect() as conn:
        result = conn.execute(sa.select(ITEMS).order_by(ITEMS.c.id))
        return {row.id: tuple(row)[2:] for row in result}


def test_each_row_gets_its_values_and_the_shared_ones(items: Engine) -> None:
    rows = [
        {"id": 1, "note": "first", "done_at": NOW},
        {"id": 2, "note": None, "done_at": None},
        {"id": 3, "note": "ünïcode, 'quotes'", "done_at": NOW + timedelta(hours=1)},
        {"id": 5, "note": "not mine", "done_at": NOW},  # owner is not "me": untouched
    ]
    with items.begin() as conn:
        updated = bulk_update(
            conn,
            ITEMS,
            rows,
            shared={"status": Status.DONE, "tries": 3},
            where=[ITEMS.c.owner == "me"],
        )
    assert updated == 3
    after = _rows(items)
    assert after[1] == ("done", "first", NOW, 3)
    assert after[2] == ("done", None, None, 3)
    assert after[3] == ("done", "ünïcode, 'quotes'", NOW + timedelta(hours=1), 3)
    assert after[4] == after[5] == after[6] == ("new", None, None, 0)


def test_enum_values_are_stored_plain_and_nothing_for_no_rows(items: Engine) -> None:
    with items.begin() as conn:
        assert bulk_update(conn, ITEMS, [], shared={"tries": 1}) == 0
        bulk_update(
            conn,
            ITEMS,
            [{"id": 4, "status": Status.DONE}, {"id": 6, "status": Status.NEW}],
            shared={},
        )
    after = _rows(items)
    assert after[4][0] == "done" and after[6][0] == "new"
    assert all(row[3] == 0 for row in after.values())


def test_a_naive_datetime_is_refused(items: Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive"), items.begin() as conn:
        bulk_update(conn, ITEMS, [{"id": 1, "done_at": datetime(2026, 12, 1)}], shared={})
