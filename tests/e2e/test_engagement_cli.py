"""Engagement from the command line: rescore, an explained score, webhook stats."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadops.cli import app
from leadops.core.settings import get_settings
from leadops.engagement.site import site_signature
from leadops.web.app import create_app
from tests.conftest import ROOT

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    monkeypatch.setenv("LEADOPS_CONFIG_FILE", str(tmp_path / "config" / "leadops.toml"))
    monkeypatch.setenv("LEADOPS_SITE_EVENTS_SECRET", "cli-site-secret")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_rescore_explains_the_score_and_lists_sales_ready_leads(workdir: Path) -> None:
    invoke("init")
    invoke("leads", "import", "config/sample_leads.csv", "--now", "2026-12-01T08:00Z")
    lead = json.loads(invoke("leads", "show", "1", "--format", "json"))[0]
    body = json.dumps(
        {
            "id": "demo-1",
            "type": "demo_requested",
            "email": lead["email"],
            "occurred_at": "2026-12-01T09:30:00Z",
            "properties": {"form": "contact-sales"},
        }
    ).encode()
    client = TestClient(create_app(get_settings()))
    response = client.post(
        "/events/site",
        content=body,
        headers={"X-Leadops-Signature": site_signature("cli-site-secret", body)},
    )
    assert response.status_code == 202
    out = invoke("rescore", "--no-prefect", "--now", "2026-12-01T09:35Z")
    assert "events 1" in out and "Sales-ready" in out and "demo_requested" in out
    shown = invoke("leads", "show", "1")
    assert "Score" in shown and "Timeline" in shown
    assert "demo_requested" in shown and "demo requested" in shown
    stats = invoke("webhooks", "stats")
    assert "site" in stats and "processed" in stats
