"""`leadops report`, `leadops doctor` and `leadops deploy` as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadops.cli import app
from leadops.core.settings import get_settings
from tests.conftest import ROOT

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    monkeypatch.setenv("LEADOPS_CONFIG_FILE", str(tmp_path / "config" / "leadops.toml"))
    monkeypatch.setenv("LEADOPS_SECRET_KEY", "test-secret-key-0123456789")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_report_prints_kpis_writes_html_and_fails_on_stuck_work(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("init")
    invoke("leads", "import", "config/sample_leads.csv", "--now", "2026-12-01T08:00Z")
    invoke("run", "--now", "2026-12-02T15:00Z", "--no-prefect")
    # The quarantined sample rows are stuck work above the default threshold of 0.
    out = invoke("report", "--now", "2026-12-02T16:00Z", "--html", "out/r.html", code=2)
    for kpi in (
        "lead response time",
        "nurture conversion rate",
        "average lead score",
        "leads never followed up",
        "Cost per lead",
        "Conversion by stage",
        "Campaign steps",
        "Engagement per step",
        "speed to lead",
        "SQL to rep acknowledgement",
        "Sales outcomes",
        "Escalations",
        "escalations_past_sla",
        "open_quarantine",
    ):
        assert kpi in out
    assert "not available: email engagement rates (no sendgrid events received yet" in out
    html = (workdir / "out" / "r.html").read_text()
    assert "<svg" in html and "222 leads" in html

    monkeypatch.setenv("LEADOPS_STUCK_THRESHOLD", "8")
    get_settings.cache_clear()
    assert "KPIs" in invoke("report", "--now", "2026-12-02T16:00Z")
    rows = invoke("report", "--format", "csv", "--now", "2026-12-02T16:00Z")
    assert rows.startswith("section,row,column,value\n")
    data = json.loads(invoke("report", "--format", "json", "--now", "2026-12-02T16:00Z"))
    figures = {r["name"]: r["value"] for r in data["kpis"]}
    assert figures["leads_total"] == 222 and figures["flagged_leads"] == 2


def test_doctor_passes_on_a_fresh_install_and_explains_failures(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["doctor", "--format", "json"])
    assert result.exit_code == 1 and "leadops db upgrade" in result.output  # not migrated yet
    invoke("init")
    out = invoke("doctor", "--format", "json")
    assert '"check": "templates"' in out and '"status": "fail"' not in out
    assert "is local" in out  # the default public URL works only on this machine

    (workdir / "templates" / "email" / "offer" / "day-10.txt.j2").write_text(
        "{{ lead.first_name }\n"
    )
    monkeypatch.setenv("LEADOPS_PUBLIC_URL", "http://hooks.example.com")
    get_settings.cache_clear()
    result = runner.invoke(app, ["doctor", "--format", "csv"])
    assert result.exit_code == 1
    lines = {line.split(",")[0]: line for line in result.output.splitlines()}
    assert (
        lines["templates"].startswith("templates,fail")
        and "offer/day-10.txt.j2" in lines["templates"]
    )
    assert lines["public url"].startswith("public url,fail") and "plain http" in lines["public url"]

    monkeypatch.setenv("LEADOPS_CAP_PER_DAY", "many")
    get_settings.cache_clear()
    result = runner.invoke(app, ["doctor", "--format", "json"])
    assert result.exit_code == 1 and "LEADOPS_CAP_PER_DAY" in result.output


def test_deploy_needs_a_prefect_api(workdir: Path) -> None:
    result = runner.invoke(app, ["deploy"])
    assert result.exit_code == 1
    assert "PREFECT_API_URL is not set" in str(result.exception) + result.output
