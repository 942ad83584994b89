"""`leadops campaigns` from the command line: the forecast as JSON and CSV, pause and
resume recorded with who and why, and mistakes named."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadops.cli import app
from leadops.cli.common import CliError
from leadops.core.settings import get_settings
from tests.conftest import ROOT

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    monkeypatch.setenv("LEADOPS_CONFIG_FILE", str(tmp_path / "config" / "leadops.toml"))
    monkeypatch.setenv("LEADOPS_SECRET_KEY", "test-secret-key-0123456789")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_forecast_formats_and_pause_resume_records(workdir: Path) -> None:
    invoke("init")
    invoke("leads", "import", "config/sample_leads.csv", "--now", "2026-12-01T08:00Z")
    rows = json.loads(
        invoke("campaigns", "forecast", "--days", "3", "--now", "2026-12-01T08:00Z", "-f", "json")
    )
    assert rows and all(isinstance(row["messages"], int) for row in rows)
    assert {row["day"] for row in rows} <= {"2026-12-01", "2026-12-02", "2026-12-03"}
    table = list(
        csv.DictReader(
            io.StringIO(
                invoke(
                    "campaigns",
                    "forecast",
                    "--days",
                    "3",
                    "--now",
                    "2026-12-01T08:00Z",
                    "-f",
                    "csv",
                )
            )
        )
    )
    assert [dict(row) for row in table] == [{k: str(v) for k, v in row.items()} for row in rows]

    invoke(
        "campaigns",
        "pause",
        "educate",
        "--reason",
        "typo",
        "--by",
        "maya",
        "--now",
        "2026-12-02T08:00Z",
    )
    with pytest.raises(CliError, match="already paused since 2026-12-02 08:00 UTC by maya"):
        runner.invoke(
            app,
            ["campaigns", "pause", "educate", "--now", "2026-12-02T09:00Z"],
            catch_exceptions=False,
        )
    listed = json.loads(invoke("campaigns", "list", "--now", "2026-12-02T09:00Z", "-f", "json"))
    educate = next(row for row in listed if row["campaign"] == "educate")
    assert (educate["state"], educate["paused_by"]) == ("paused", "maya")
    out = invoke(
        "campaigns", "resume", "educate", "--reason", "fixed", "--now", "2026-12-03T08:00Z"
    )
    assert "after 1 d 0 h" in out
    shown = json.loads(invoke("campaigns", "show", "educate", "--format", "json"))[0]
    assert shown["pauses"][0]["pause_reason"] == "typo"
    assert shown["pauses"][0]["resume_reason"] == "fixed"
    with pytest.raises(CliError, match="unknown campaign 'nope'"):
        runner.invoke(app, ["campaigns", "pause", "nope"], catch_exceptions=False)
    with pytest.raises(CliError, match="is not paused"):
        runner.invoke(app, ["campaigns", "resume", "educate"], catch_exceptions=False)


def test_results_and_promote_a_winner(workdir: Path) -> None:
    invoke("init")
    invoke("leads", "import", "config/sample_leads.csv", "--now", "2026-12-01T08:00Z")
    invoke("simulate", "--days", "1", "--start", "2026-12-01T08:00Z", "--no-prefect",
           "--engagement", "config/engagement.yaml")  # fmt: skip
    rows = json.loads(invoke("campaigns", "results", "re-engage", "--format", "json"))
    assert [(row["kind"], row["arm"]) for row in rows] == [
        ("variant", "a"),
        ("variant", "b"),
        ("arm", "campaign"),
        ("arm", "holdout"),
    ]
    assert all(isinstance(row["sent"], int) for row in rows)
    assert rows[0]["verdict"] == "too early" and rows[0]["keep"] == "a"
    assert rows[3]["assigned"] > 0 and rows[3]["sent"] == 0  # the holdout got nothing
    path = workdir / "config" / "campaigns" / "re-engage.yaml"
    before = path.read_text()
    printed = invoke("campaigns", "promote", "re-engage", "day-1", "b")
    assert "-        weight: 1\n+        weight: 0\n" in printed and "not written" in printed
    assert path.read_text() == before
    written = invoke("campaigns", "promote", "re-engage", "day-1", "b", "--write")
    assert "new leads get b on day-1 from the next" in written
    assert "weight: 0" in path.read_text() and "# A/B tests and the holdout" in path.read_text()
    with pytest.raises(CliError, match=r"re-engage\.yaml: step 'day-1' has no variant 'z'"):
        invoke("campaigns", "promote", "re-engage", "day-1", "z")
    with pytest.raises(CliError, match="unknown campaign 'nope'"):
        invoke("campaigns", "results", "nope")
