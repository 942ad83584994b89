"""The intake flow runs through Prefect (test harness, no server) and publishes its report."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadops.core.settings import get_settings
from tests.conftest import ROOT

pytestmark = pytest.mark.prefect


@pytest.fixture
def prefect_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_intake_flow_imports_the_drop_folder_and_publishes_the_report(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import get_client

    from flows.intake import intake_flow
    from leadops.core.db import make_engine, upgrade

    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    get_settings.cache_clear()
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
