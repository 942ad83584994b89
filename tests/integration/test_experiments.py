"""A/B variants and a holdout on a real database: a simulated campaign with the seeded
engagement model, re-run from scratch, and its results (leadops.reporting.experiments)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.core.db import make_engine, upgrade
from leadops.core.settings import Settings
from leadops.delivery.campaigns import register_versions
from leadops.engagement.simulated import EngagementModel, engage
from leadops.models import (
    ENROLLMENTS,
    INBOX,
    LEADS,
    SENT_TOUCH_STATUSES,
    STAGE_CHANGES,
    TOUCHES,
)
from leadops.nurture.experiments import HOLDOUT, arm_for, variant_for
from leadops.nurture.tick import simulate
from leadops.reporting.experiments import all_results, campaign_results
from leadops.reporting.html import render
from leadops.reporting.kpi_figures import KpiReport
from leadops.reporting.stuck import StuckReport
from leadops.runtime import load_runtime
from leadops.testing.scenario import seed_leads
from tests.conftest import ROOT, make_settings

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a Tuesday, in the send window
DAYS = 2  # day 1 goes out (the experiment), and the engagement answers it
LEADS_N = 40
MODEL = EngagementModel.model_validate(
    {
        "seed": 11,
        "default": {"open": 0.3, "click": 0.1, "reply": 0.1},
        "steps": {"re-engage/day-1/b": {"open": 0.6, "click": 0.5, "reply": 0.3}},
    }
)


def _config(tmp_path: Path) -> Path:
    """The sample config with a bigger holdout, so a few dozen leads show both arms."""
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    path = folder / "campaigns" / "re-engage.yaml"
    path.write_text(path.read_text().replace("holdout: 0.1", "holdout: 0.3"))
    return folder


def _run(engine: Engine, settings: Settings) -> dict[str, list[tuple[str, str, str | None]]]:
    """Seed the leads, simulate DAYS days with engagement, and return each lead's touches
    (by email: step, channel, variant)."""
    seed_leads(engine, LEADS_N, START)
    with engine.begin() as conn:  # recycled leads: the segments send them to re-engage
        conn.execute(sa.update(LEADS).values(lifecycle_stage="recycled"))
    runtime = load_runtime(settings, engine=engine)
    for day in range(DAYS):
        begin = START + timedelta(days=day)
        simulate(runtime, begin, begin + timedelta(days=1))
        engage(runtime, MODEL, begin, begin + timedelta(days=1))
    t = TOUCHES.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(LEADS.c.email, t.step, t.channel, t.variant)
            .join(LEADS, LEADS.c.id == t.lead_id)
            .order_by(LEADS.c.email, t.step, t.channel)
        ).all()
        events = conn.execute(
            sa.select(LEADS.c.email, INBOX.c.event)
            .join(LEADS, LEADS.c.id == INBOX.c.lead_id)
            .order_by(LEADS.c.email, INBOX.c.event)
        ).all()
    touches: dict[str, list[tuple[str, str, str | None]]] = {}
    for email, step, channel, variant in rows:
        touches.setdefault(email, []).append((step, channel, variant))
    for email, event in events:  # the simulated answers, in the same lists
        touches[email].append(("event", event, None))
    return touches


def test_holdout_gets_nothing_variants_stick_and_results_count_them(
    engine: Engine, tmp_path: Path
) -> None:
    """On SQLite, and on PostgreSQL where reachable."""
    settings = make_settings(tmp_path, config_dir=_config(tmp_path))
    touches = _run(engine, settings)
    runtime = load_runtime(settings, engine=engine)
    campaign = runtime.campaigns["re-engage"]
    e, t = ENROLLMENTS.c, TOUCHES.c
    with engine.connect() as conn:
        enrollments = conn.execute(
            sa.select(e.lead_id, e.arm).where(e.campaign == "re-engage")
        ).all()
        held = {lead for lead, arm in enrollments if arm == HOLDOUT}
        assert {lead for lead, arm in enrollments} == set(range(1, LEADS_N + 1))
        assert held == {lead for lead, _ in enrollments if arm_for(campaign, lead) == HOLDOUT}
        assert 5 <= len(held) <= 20
        rows = conn.execute(
            sa.select(t.lead_id, t.step, t.variant, t.status, t.subject, t.channel)
        ).all()
        results = campaign_results(conn, campaign)
    assert not [row for row in rows if row.lead_id in held]  # never planned, never sent
    day1 = [row for row in rows if row.step == "day-1"]
    assert {row.lead_id for row in day1} == set(range(1, LEADS_N + 1)) - held
    for row in day1:
        assert row.variant == variant_for("re-engage", campaign.steps[0], row.lead_id)
        assert row.status in SENT_TOUCH_STATUSES
        if row.channel == "email":
            ideas = "we keep sending you reporting ideas?"
            assert (ideas in row.subject) == (row.variant == "b")
    assert all(row.variant is None for row in rows if row.step != "day-1")
    assert len(touches) == LEADS_N - len(held)
    assert {event for lists in touches.values() for step, event, _ in lists if step == "event"} >= {
        "delivered",
        "clicked",
        "opened",
    }

    (experiment,) = results.experiments
    by_key = {counts.key: counts for counts in experiment.variants}
    assert set(by_key) == {"a", "b"}
    for key, counts in by_key.items():
        assigned = {r.lead_id for r in day1 if r.variant == key}
        assert counts.leads["assigned"] == counts.leads["sent"] == assigned
        assert counts.leads["delivered"] == assigned  # the simulated SendGrid delivered
    assert by_key["b"].count("clicked") > by_key["a"].count("clicked")
    assert experiment.verdict.status == "too early" and experiment.verdict.keep == "a"
    treated, holdout = results.arms
    assert holdout.count("assigned") == len(held)
    assert holdout.count("sent") == holdout.count("clicked") == 0
    assert treated.count("sent") == LEADS_N - len(held)
    assert results.lift == {}  # fewer than 200 leads in the holdout: too early
    rows_out = results.rows()
    assert [(r["kind"], r["arm"]) for r in rows_out] == [
        ("variant", "a"),
        ("variant", "b"),
        ("arm", "campaign"),
        ("arm", "holdout"),
    ]
    assert rows_out[1]["difference"] is None and rows_out[1]["verdict"] == "too early"


def test_a_rerun_from_scratch_gives_every_lead_the_same_variant(tmp_path: Path) -> None:
    runs = []
    for name in ("first", "second"):
        folder = tmp_path / name
        settings = make_settings(folder, config_dir=_config(folder))
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        runs.append(_run(engine, settings))
        engine.dispose()
    assert runs[0] == runs[1]
    variants = {v for lists in runs[0].values() for step, _, v in lists if step == "day-1"}
    assert variants == {"a", "b"}


def test_the_report_shows_the_lift_over_the_holdout_with_its_interval(
    engine: Engine, tmp_path: Path
) -> None:
    """Outcome rows written directly (a campaign's worth of leads, no simulation): 300
    held-out leads of whom 10% reach SQL, 900 treated of whom 30% do."""
    settings = make_settings(tmp_path, config_dir=_config(tmp_path))
    seed_leads(engine, 1200, START)
    runtime = load_runtime(settings, engine=engine)
    campaign = runtime.campaigns["re-engage"]
    with Session(engine) as session:
        version = register_versions(session, {"re-engage": campaign}, START)["re-engage"]
        session.commit()
        version_id = version.id
    enrollments, changes = [], []
    for lead in range(1, 1201):
        held = lead <= 300
        enrollments.append(
            {
                "lead_id": lead,
                "campaign": "re-engage",
                "campaign_version_id": version_id,
                "status": "active",
                "started_at": START,
                "arm": HOLDOUT if held else None,
            }
        )
        if lead % 10 < (1 if held else 3):
            changes.append(
                {
                    "lead_id": lead,
                    "from_stage": "mql",
                    "to_stage": "sql",
                    "score": 60,
                    "reason": "score 60 reached the SQL threshold",
                    "changed_at": START + timedelta(days=5),
                }
            )
    with engine.begin() as conn:
        conn.execute(sa.insert(ENROLLMENTS), enrollments)
        conn.execute(sa.insert(STAGE_CHANGES), changes)
    (results,) = [r for r in all_results(engine, runtime.campaigns) if r.campaign == "re-engage"]
    treated, holdout = results.arms
    assert (treated.count("assigned"), treated.count("sql")) == (900, 270)
    assert (holdout.count("assigned"), holdout.count("sql")) == (300, 30)
    lift = results.lift["sql"]
    assert lift.difference == pytest.approx(0.2)
    assert 0 < lift.low < 0.2 < lift.high < 0.4
    page = render(
        KpiReport(now=START),
        StuckReport(now=START, threshold=0, findings=[]),
        experiments=[results],
    )
    assert "Experiments and holdouts" in page
    assert f"{lift.low:+.2%} to {lift.high:+.2%}" in page and "+20.00%" in page
