"""Nurture planning split into partitions, and planners that overlap: no row twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.bulk import insert_skipping_conflicts
from leadops.core.settings import Settings
from leadops.models import ENROLLMENTS, TOUCHES
from leadops.nurture.plan import PlanReport, plan_all
from leadops.runtime import load_runtime
from leadops.testing.scenario import seed_leads
from tests.conftest import make_settings

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LEADS = 30


def _touch_keys(engine: Engine) -> Counter[tuple[int, int, str, str]]:
    t = TOUCHES.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.lead_id, t.campaign_version_id, t.step, t.channel)).all()
    return Counter((row[0], row[1], row[2], row[3]) for row in rows)


def test_partitions_together_plan_every_lead_once(engine: Engine, settings: Settings) -> None:
    seed_leads(engine, LEADS, NOW)
    runtime = load_runtime(settings, engine=engine)
    total = PlanReport()
    for k in range(3):
        part = plan_all(runtime, NOW, (k, 3))
        assert 0 < part.leads < LEADS
        total.merge(part)
    assert total.leads == LEADS
    assert total.planned == 2 * LEADS  # day 1 by email and WhatsApp
    assert total.enrolled == {"educate": LEADS}
    assert total.conflicts == 0
    keys = _touch_keys(engine)
    assert len(keys) == 2 * LEADS and set(keys.values()) == {1}
    # a whole run afterwards finds nothing left to plan
    again = plan_all(runtime, NOW)
    assert again.leads == LEADS and again.planned == 0 and again.conflicts == 0


def test_a_partition_must_be_k_of_n(engine: Engine, settings: Settings) -> None:
    runtime = load_runtime(settings, engine=engine)
    for bad in ((3, 3), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="partition must be"):
            plan_all(runtime, NOW, bad)


def test_planners_running_at_once_write_each_touch_once(engine: Engine, settings: Settings) -> None:
    """Four planners over the same leads at the same time (as when a partition is retried
    while its first run still works): no error, every touch and enrollment once."""
    seed_leads(engine, LEADS, NOW)
    runtime = load_runtime(settings, engine=engine)
    start = threading.Barrier(4)
    reports: list[PlanReport] = []
    errors: list[BaseException] = []

    def plan() -> None:
        start.wait()
        try:
            reports.append(plan_all(runtime, NOW))
        except BaseException as exc:  # collected: the test fails on any
            errors.append(exc)

    threads = [threading.Thread(target=plan) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    keys = _touch_keys(engine)
    assert len(keys) == 2 * LEADS and set(keys.values()) == {1}
    assert sum(r.planned for r in reports) == 2 * LEADS
    assert sum(sum(r.enrolled.values()) for r in reports) == LEADS
    with engine.connect() as conn:
        active = conn.execute(
            sa.select(ENROLLMENTS.c.lead_id, sa.func.count())
            .where(ENROLLMENTS.c.status == "active")
            .group_by(ENROLLMENTS.c.lead_id)
        ).all()
    assert len(active) == LEADS and {n for _, n in active} == {1}


def test_a_conflicting_touch_is_skipped_not_an_error(engine: Engine, settings: Settings) -> None:
    seed_leads(engine, 2, NOW)
    plan_all(load_runtime(settings, engine=engine), NOW)
    t = TOUCHES.c
    with engine.begin() as conn:
        row = conn.execute(sa.select(TOUCHES).order_by(t.id).limit(1)).mappings().one()
        copy = {key: value for key, value in row.items() if key != "id"}
        written = conn.execute(
            insert_skipping_conflicts(TOUCHES, engine.dialect.name).returning(t.id), [copy]
        ).all()
    assert written == []
    assert set(_touch_keys(engine).values()) == {1}


def test_partitions_default_by_database(tmp_path: Path) -> None:
    assert make_settings(tmp_path).resolved_plan_partitions == 1
    pg = make_settings(tmp_path, database_url="postgresql+psycopg://u@h/db")
    assert pg.resolved_plan_partitions == 4
    assert make_settings(tmp_path, plan_partitions=2).resolved_plan_partitions == 2
