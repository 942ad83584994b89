"""Step conditions, a wait for an event and a campaign goal in a 30-day simulation on a
real database: webhook and site events are stored in the inbox as the providers post
them and applied by the quick rescore pass, while the simulation runs its ticks."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.core.clock import SimulatedClock, ensure_utc
from leadops.delivery.campaigns import StoredCampaigns
from leadops.engagement.inbox import store
from leadops.engagement.rescore import run_inbox
from leadops.engagement.site import site_records
from leadops.models import ENROLLMENTS, LEADS, TOUCHES
from leadops.nurture.calendar import pause_campaign, resume_campaign
from leadops.nurture.segments import load_segments
from leadops.nurture.tick import TickReport, run_tick, simulate
from leadops.nurture.why import explain_lead
from leadops.providers.inbound import InboxRecord
from leadops.providers.sendgrid.events import sendgrid_records
from leadops.reporting.html import render
from leadops.reporting.kpis import compute, goal_rows
from leadops.reporting.report_data import report_sections
from leadops.reporting.stuck import StuckReport
from leadops.runtime import load_runtime
from tests.conftest import ROOT, make_settings
from tests.engagement import T0, sg_event


def _config(tmp_path: Path) -> Path:
    """The sample config, where educate's day-10 waits for a click on day-1 (and goes
    out two days after it); here its day-20 goes only to leads who did not click day-1,
    its goal is a started trial and it sends on every day of the week."""
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    path = folder / "campaigns" / "educate.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new in (
        ("wait_for: {clicked: day-1, days_after: 2}\n", None),
        (
            "goal: {name: Became MQL, stage: mql}\n",
            "goal: {name: Trial started, events: [trial_started]}\n"
            "send_days: [mon, tue, wed, thu, fri, sat, sun]\n",
        ),
        (
            "name: Industry benchmark report\n    channels: [email, whatsapp]\n",
            "name: Industry benchmark report\n    channels: [email, whatsapp]\n"
            "    unless: {clicked: day-1}\n",
        ),
    ):
        assert old in text, old
        text = text.replace(old, new or old)
    path.write_text(text, encoding="utf-8")
    return folder


def _lead(engine: Engine, email: str) -> int:
    values: dict[str, Any] = {
        "email": email,
        "first_name": "Ada",
        "timezone": "UTC",
        "lifecycle_stage": "lead",
        "email_consent": True,
        "created_at": T0,
        "updated_at": T0,
        "last_engaged_at": T0,
    }
    with engine.begin() as connection:
        return int(connection.execute(LEADS.insert().values(values)).inserted_primary_key[0])


def _touches(engine: Engine, lead_id: int) -> dict[str, dict[str, Any]]:
    t = TOUCHES.c
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(TOUCHES).where(t.lead_id == lead_id, t.campaign == "educate")
        ).all()
    return {row.step: row._asdict() for row in rows}


def test_a_condition_a_wait_and_a_goal_behave_as_declared(engine: Engine, tmp_path: Path) -> None:
    """On SQLite, and on PostgreSQL where reachable."""
    settings = make_settings(tmp_path, config_dir=_config(tmp_path))
    runtime = load_runtime(settings, engine=engine)
    emails = {
        _lead(engine, f"{name}@example.com"): f"{name}@example.com"
        for name in ("clicker", "quiet", "trial", "both")
    }
    clicker, quiet, trial, both = emails
    # (day, lead, event): the clicker clicks day-1 a day after it went out; the trial
    # lead starts a trial on day 5, before its day-10 step; the last lead clicks, which
    # schedules its day-10 for two days later, and starts a trial the day before that.
    plan = [(1, clicker, "click"), (4, trial, "trial"), (1, both, "click"), (2, both, "trial")]
    done: list[tuple[int, int, str]] = []
    goals: list[int] = []

    def record(lead_id: int, kind: str, now: datetime) -> list[InboxRecord]:
        email = emails[lead_id]
        if kind == "click":
            touch = _touches(engine, lead_id)["day-1"]
            event = sg_event("click", lead_id, touch["id"], now, email=email, url="https://x.ex/g")
            return sendgrid_records(json.dumps([event]).encode())
        body = {"type": "trial_started", "email": email, "occurred_at": now.isoformat()}
        return site_records(json.dumps(body).encode())

    def engage(tick: TickReport) -> None:
        goals.append(tick.plan.goals_reached)
        due = [e for e in plan if e not in done and tick.now >= T0 + timedelta(days=e[0])]
        records = [r for _, lead_id, kind in due for r in record(lead_id, kind, tick.now)]
        done.extend(due)
        if records:
            store(engine, records, tick.now)
            run_inbox(runtime, tick.now)

    simulate(runtime, T0, T0 + timedelta(days=30), on_tick=engage)
    assert sorted(done) == sorted(plan)
    assert sum(goals) == 2  # the ticks' plans ended two enrollments by their goal

    clicked = _touches(engine, clicker)
    click_at = T0 + timedelta(days=1)
    # day-10 waited for the click and went out two days after it, not on day 10
    assert clicked["day-10"]["status"] == "sent"
    assert ensure_utc(clicked["day-10"]["sent_at"]) - click_at < timedelta(days=2, hours=1)
    assert ensure_utc(clicked["day-10"]["sent_at"]) >= click_at + timedelta(days=2)
    # day-20 excludes the leads who clicked day-1: skipped, with why
    assert clicked["day-20"]["status"] == "skipped"
    assert clicked["day-20"]["hold_reason"] == "condition_not_met"

    quiet_steps = _touches(engine, quiet)
    assert {step: row["status"] for step, row in quiet_steps.items()} == {
        "day-1": "sent",
        "day-10": "sent",
        "day-20": "sent",
    }
    # no click: the wait timed out and day-10 went out on its own day
    assert ensure_utc(quiet_steps["day-10"]["sent_at"]).date() == (T0 + timedelta(days=9)).date()

    # the goal ended the campaign for the trial lead: nothing more from it
    trial_steps = _touches(engine, trial)
    assert [step for step, row in trial_steps.items() if row["sent_at"]] == ["day-1"]
    e = ENROLLMENTS.c
    with engine.connect() as connection:
        status, reason = connection.execute(
            sa.select(e.status, e.end_reason).where(e.lead_id == trial, e.campaign == "educate")
        ).one()
    assert status == "goal_reached"
    assert reason == "goal reached: Trial started (trial_started)"
    # a step already scheduled (it waited for the click) is skipped when the goal comes
    scheduled = _touches(engine, both)["day-10"]
    assert (scheduled["status"], scheduled["hold_reason"]) == ("skipped", "goal_reached")
    assert scheduled["sent_at"] is None

    with Session(engine) as session:
        why = explain_lead(
            session,
            clicker,
            segments=load_segments(settings.config_dir, set(runtime.campaigns)),
            stored=StoredCampaigns(),
            now=T0 + timedelta(days=30),
        )
    day20 = next(s for s in why.steps if s.campaign == "educate" and s.step == "day-20")
    assert day20.state == "skipped"
    assert day20.explanation.endswith("(unless: clicked day-1)")

    # the report: goal conversion of the campaign, and of each step sent before the goal
    kpis = compute(engine, T0 + timedelta(days=30), config_dir=settings.config_dir)
    rows = [(g.step, g.enrollments, g.goal_reached) for g in kpis.goals]
    assert rows == [(None, 4, 2), ("day-1", 4, 2), ("day-10", 2, 0), ("day-20", 1, 0)]
    assert goal_rows(kpis)[0]["conversion"] == "50.0%"
    stuck = StuckReport(now=kpis.now, threshold=0, findings=[])
    page = render(kpis, stuck)
    assert "<h2>Goal conversion</h2>" in page and "<td>Trial started</td>" in page
    goals = report_sections(kpis, stuck)["goals"]
    assert goals[0] == {
        "campaign": "educate",
        "goal": "Trial started",
        "step": None,
        "step_day": None,
        "enrollments": 4,
        "goal_reached": 2,
        "conversion": 0.5,
    }


def test_what_the_lead_did_before_a_pause_still_counts_after_it(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """Resuming a paused campaign moves its enrollments' start later; a trial started
    before the pause still reaches the goal after it."""
    settings = make_settings(tmp_path, config_dir=_config(tmp_path))
    runtime = load_runtime(settings, engine=sqlite_engine)
    lead = _lead(sqlite_engine, "trial@example.com")
    clock = SimulatedClock(T0)
    run_tick(runtime, clock)
    pause_campaign(sqlite_engine, runtime.campaigns, "educate", by="ops", reason="t", now=T0)
    at = T0 + timedelta(hours=2)
    body = {"type": "trial_started", "email": "trial@example.com", "occurred_at": at.isoformat()}
    store(sqlite_engine, site_records(json.dumps(body).encode()), at)
    run_inbox(runtime, at)
    clock.set(T0 + timedelta(days=3))
    resume_campaign(
        sqlite_engine, runtime.campaigns, "educate", by="ops", reason="t", now=clock.now()
    )
    assert run_tick(runtime, clock).plan.goals_reached == 1
    e = ENROLLMENTS.c
    with sqlite_engine.connect() as connection:
        started, status = connection.execute(
            sa.select(e.started_at, e.status).where(e.lead_id == lead)
        ).one()
    assert ensure_utc(started) > at  # the resume moved the start past the trial
    assert status == "goal_reached"
