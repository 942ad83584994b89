"""A broken template: the summary names the true reason, and its error is logged once."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from leadops.core.db import make_engine, session_scope, upgrade
from leadops.core.settings import Settings
from leadops.intake.csv_source import read_csv
from leadops.intake.importer import import_records
from leadops.models import Touch
from leadops.nurture.tick import simulate
from leadops.nurture.why import explain_lead
from leadops.reporting.summary import touch_summary
from leadops.runtime import load_runtime
from tests.conftest import ROOT, make_settings

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _project_with_leads(tmp_path: Path, settings: Settings) -> Engine:
    """A migrated database holding the first 15 sample leads."""
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    lines = (ROOT / "config" / "sample_leads.csv").read_text(encoding="utf-8").splitlines()
    small = tmp_path / "small.csv"
    small.write_text("\n".join(lines[:16]) + "\n", encoding="utf-8")
    with session_scope(engine) as session:
        import_records(
            session,
            read_csv(small),
            source="csv:test",
            now=START,
            default_region=settings.default_region,
            default_timezone=settings.default_timezone,
        )
    return engine


def test_broken_template_is_summarised_as_render_error_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "email" / "educate" / "day-1.subject.j2").write_text("{{ lead.no_such }}\n")
    settings = make_settings(tmp_path, templates_dir=templates)
    engine = _project_with_leads(tmp_path, settings)

    with caplog.at_level(logging.ERROR, logger="leadops.dispatch"):
        report = simulate(load_runtime(settings, engine=engine), START, START + timedelta(days=4))

    with Session(engine) as session:
        broken = session.exec(
            select(Touch).where(
                Touch.campaign == "educate", Touch.step == "day-1", Touch.channel == "email"
            )
        ).all()
    assert broken and {t.status for t in broken} == {"pending"}
    assert {t.hold_reason for t in broken} == {"render_error"}
    (row,) = [
        s
        for s in touch_summary(engine)
        if (s.campaign, s.step, s.channel) == ("educate", "day-1", "email")
    ]
    assert set(row.held) == {"render_error"}
    assert row.held["render_error"] == len(broken)

    errors = [r for r in caplog.records if "day-1.subject.j2" in r.getMessage()]
    assert report.ticks > 3
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert report.totals.held["render_error"] > len(broken)  # retried, but logged once

    runtime = load_runtime(settings, engine=engine)
    with Session(engine) as session:
        why = explain_lead(
            session,
            broken[0].lead_id,
            segments=runtime.segments,
            stored=runtime.stored,
            now=START + timedelta(days=4),
        )
    (step,) = [s for s in why.steps if (s.step, s.channel) == ("day-1", "email")]
    assert (step.state, step.reason) == ("held", "render_error")
    assert "the template failed to render" in step.explanation
    assert "email/educate/day-1.subject.j2:1" in step.explanation


def test_a_render_error_is_retried_inside_its_campaigns_own_send_window(tmp_path: Path) -> None:
    """The retry waits for the campaign's window, not the settings' one: retried inside
    the settings' window but outside the campaign's, the policy would hold the touch as
    outside_send_window and hide the render error."""
    templates, config = tmp_path / "templates", tmp_path / "config"
    shutil.copytree(ROOT / "templates", templates)
    shutil.copytree(ROOT / "config", config)
    (templates / "email" / "educate" / "day-1.subject.j2").write_text("{{ lead.no_such }}\n")
    with (config / "campaigns" / "educate.yaml").open("a", encoding="utf-8") as campaign:
        campaign.write('send_window: {start: "14:00", end: "15:00"}\n')
    settings = make_settings(tmp_path, templates_dir=templates, config_dir=config)
    engine = _project_with_leads(tmp_path, settings)

    simulate(load_runtime(settings, engine=engine), START, START + timedelta(days=3))

    with Session(engine) as session:
        broken = session.exec(
            select(Touch).where(
                Touch.campaign == "educate", Touch.step == "day-1", Touch.channel == "email"
            )
        ).all()
    assert broken and {t.hold_reason for t in broken} == {"render_error"}
