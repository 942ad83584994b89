"""The nurture, simulate, rescore, escalate and intake flows run through Prefect (one test
harness for the module, no server); intake publishes its report."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from leadops.core.settings import get_settings
from leadops.models import LEADS
from tests.conftest import ROOT

# One test process runs the module, so its one harness serves every test.
pytestmark = [pytest.mark.prefect, pytest.mark.xdist_group("prefect_harness")]


@pytest.fixture(scope="module")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("prefect-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("PREFECT_HOME", str(home))
    patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    patch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
    patch.undo()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A leadops home in tmp_path (its own config and templates), the working directory of
    the flows, with the process settings read afresh and forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_flows_plan_send_and_publish_artifacts(
    prefect_harness: None, home: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import get_client

    from flows.nurture import nurture_flow, simulate_flow
    from leadops.core.db import make_engine, session_scope, upgrade
    from leadops.intake.csv_source import read_csv
    from leadops.intake.importer import import_records

    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    lines = (ROOT / "config" / "sample_leads.csv").read_text().splitlines()[:41]
    (tmp_path / "leads.csv").write_text("\n".join(lines) + "\n")
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        import_records(
            session,
            read_csv(tmp_path / "leads.csv"),
            source="csv",
            now=start,
            default_region="US",
            default_timezone="UTC",
        )

    # planned in three partitions, each its own task run; together every lead once
    result = nurture_flow(now=datetime(2026, 12, 2, 15, 0, tzinfo=UTC), partitions=3)
    assert result["sent"] > 0
    with engine.connect() as conn:
        leads = conn.execute(sa.select(sa.func.count()).select_from(LEADS)).scalar_one()
    assert result["leads"] == leads
    from leadops.nurture.calendar import pause_campaign
    from leadops.runtime import load_runtime

    campaigns = load_runtime(settings, engine=engine).campaigns
    paused_at = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    pause_campaign(engine, campaigns, "offer", by="maya", reason="pricing review", now=paused_at)
    again = nurture_flow(now=datetime(2026, 12, 2, 15, 0, tzinfo=UTC))
    assert again["sent"] == 0

    summary = simulate_flow(start=datetime(2026, 12, 3, 0, 0, tzinfo=UTC), days=3)
    assert summary["days"] == 3 and summary["ticks"] >= 3

    import asyncio

    async def artifact_keys() -> set[str]:
        async with get_client() as client:
            return {a.key for a in await client.read_artifacts() if a.key}

    async def plan_task_runs() -> int:
        async with get_client() as client:
            return sum(1 for r in await client.read_task_runs() if r.name.startswith("plan-"))

    async def artifact_data(key: str) -> list[str]:
        async with get_client() as client:
            return [str(a.data) for a in await client.read_artifacts() if a.key == key]

    keys = asyncio.run(artifact_keys())
    ticks = asyncio.run(artifact_data("nurture-tick"))
    assert any(
        "offer: since 2026-12-02T14:00:00+00:00 by maya (pricing review)" in t for t in ticks
    )
    assert any('"campaign": "educate"' in f for f in asyncio.run(artifact_data("nurture-forecast")))
    assert asyncio.run(plan_task_runs()) == 3 + 1  # three partitions, then one whole run
    assert {"nurture-tick", "nurture-summary", "nurture-forecast", "simulation-summary"} <= keys

    async def descriptions(key: str) -> list[str]:
        async with get_client() as client:
            return [a.description or "" for a in await client.read_artifacts() if a.key == key]

    # the summaries carry the legend of the reason codes they show
    assert all("- `no_consent`: " in d for d in asyncio.run(descriptions("simulation-summary")))
    get_settings.cache_clear()


def test_overlapping_nurture_run_is_skipped_and_report_flow_fails_on_stuck_work(
    prefect_harness: None, home: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from prefect import get_client

    from flows.nurture import nurture_flow
    from flows.report import report_flow
    from leadops.core.db import make_engine, session_scope, upgrade
    from leadops.core.locks import run_lock
    from leadops.intake.csv_source import read_csv
    from leadops.intake.importer import import_records
    from leadops.reporting.stuck import StuckWorkError

    engine = make_engine(get_settings().resolved_database_url)
    upgrade(engine)
    (tmp_path / "bad.csv").write_text("email,lifecycle_stage\nnot-an-email,lead\n")
    with session_scope(engine) as session:
        import_records(
            session,
            read_csv(tmp_path / "bad.csv"),
            source="csv",
            now=datetime(2026, 12, 1, tzinfo=UTC),
            default_region="US",
            default_timezone="UTC",
        )

    with run_lock(engine, "nurture"):
        assert nurture_flow(now=datetime(2026, 12, 2, 15, 0, tzinfo=UTC)) == {"skipped_overlap": 1}

    with pytest.raises(StuckWorkError, match="open_quarantine 1"):
        report_flow(now=datetime(2026, 12, 2, 16, 0, tzinfo=UTC))
    assert (tmp_path / "data" / "reports" / "report-2026-12-02.html").exists()

    async def report_runs() -> list[tuple[str, str, set[str]]]:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            found = []
            for run in runs:
                if run.name == "report-2026-12-02":
                    artifacts = await client.read_artifacts()
                    keys = {a.key for a in artifacts if a.flow_run_id == run.id and a.key}
                    found.append((run.name, run.state_type.value, keys))
            return found

    runs = asyncio.run(report_runs())
    assert runs and runs[0][1] == "FAILED"
    assert {
        "leadops-report",
        "leadops-stuck-work",
        "leadops-engagement",
        "leadops-experiments",
        "leadops-report-html",
    } <= runs[0][2]

    monkeypatch.setenv("LEADOPS_STUCK_THRESHOLD", "1")
    get_settings.cache_clear()
    assert report_flow(now=datetime(2026, 12, 2, 16, 0, tzinfo=UTC))["stuck"] == 1
    get_settings.cache_clear()


def test_rescore_flow_applies_the_inbox_and_publishes_sales_ready_leads(
    prefect_harness: None, home: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import sqlalchemy as sa
    from prefect import get_client

    from flows.rescore import rescore_flow
    from leadops.core.db import make_engine, upgrade
    from leadops.engagement import inbox
    from leadops.engagement.site import site_records
    from leadops.models import LEADS

    engine = make_engine(get_settings().resolved_database_url)
    upgrade(engine)
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            LEADS.insert().values(email="ada@example.com", created_at=at, updated_at=at)
        )
    body = (
        b'{"id": "d1", "type": "demo_requested", "email": "ada@example.com",'
        b' "occurred_at": "2026-12-01T10:00:00Z"}'
    )
    inbox.store(engine, site_records(body), at)

    result = rescore_flow(now=at)
    assert result["events"] == 1 and result["sales_ready"] == 1

    async def artifact_keys() -> set[str]:
        async with get_client() as client:
            return {a.key for a in await client.read_artifacts() if a.key}

    assert {"rescore-run", "sales-ready"} <= asyncio.run(artifact_keys())
    with engine.connect() as connection:
        assert connection.execute(sa.select(LEADS.c.score)).scalar_one() == 25
    get_settings.cache_clear()


def test_escalate_flow_escalates_sql_leads_once_and_notifies(
    prefect_harness: None, home: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.escalate import escalate_flow
    from leadops.core.db import make_engine, session_scope, upgrade
    from leadops.models import Lead

    engine = make_engine(get_settings().resolved_database_url)
    upgrade(engine)
    now = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        session.add(
            Lead(
                email="olivia@harbor.example",
                first_name="Olivia",
                country="GB",
                lifecycle_stage="sql",
                score=70,
                created_at=now,
                updated_at=now,
            )
        )
    result = escalate_flow(now=now)
    assert result["escalated"] == 1 and result["sent"] == 2  # james: email and WhatsApp
    assert len(list((tmp_path / "data" / "outbox").rglob("escalations/rep/*"))) == 2
    again = escalate_flow(now=now)
    assert again["escalated"] == 0 and again["sent"] == 0
    get_settings.cache_clear()


def test_intake_flow_imports_the_drop_folder_and_publishes_the_report(
    prefect_harness: None, home: None, tmp_path: Path
) -> None:
    from prefect import get_client

    from flows.intake import intake_flow
    from leadops.core.db import make_engine, upgrade

    upgrade(make_engine(get_settings().resolved_database_url))
    inbox = tmp_path / "data" / "inbox"
    inbox.mkdir(parents=True)
    shutil.copy(ROOT / "config" / "sample_leads.csv", inbox / "sample.csv")
    (inbox / "broken.csv").write_bytes(b"email,first\rname\nbo@example.com,Bo\n")

    totals = intake_flow(now=datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    assert (totals["read"], totals["created"], totals["merged"], totals["quarantined"]) == (
        228,
        222,
        1,
        5,
    )
    assert totals["files_quarantined"] == 1  # a warning in the run, not a failure
    again = intake_flow(now=datetime(2026, 12, 1, 8, 15, tzinfo=UTC))
    assert again["read"] == 0

    async def artifacts() -> list[tuple[str, str]]:
        async with get_client() as client:
            return [(a.key, str(a.data)) for a in await client.read_artifacts() if a.key]

    published = asyncio.run(artifacts())
    runs = [data for key, data in published if key == "intake-run"]
    assert len(runs) == 2 and any("invalid_email 2" in data for data in runs)
    assert any(
        "file quarantined: broken.csv (quarantined file 1): malformed_header" in data
        for data in runs
    )
    assert any(key == "intake-sources" and "csv:sample.csv" in data for key, data in published)
    get_settings.cache_clear()
