"""`leads why`, `reasons` and `segments test` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadops.cli import app
from leadops.cli.common import CliError
from leadops.core.configfile import ConfigError
from leadops.delivery.policy import REASON_MEANINGS
from tests.conftest import ROOT

runner = CliRunner()


@pytest.fixture
def workdir(project_dir: Path) -> Path:
    return project_dir  # tests/e2e/conftest.py


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_why_json_reasons_and_segments_test(workdir: Path) -> None:
    lines = (ROOT / "config" / "sample_leads.csv").read_text(encoding="utf-8").splitlines()
    (workdir / "sample.csv").write_text("\n".join(lines[:21]) + "\n", encoding="utf-8")
    invoke("init")
    invoke("leads", "import", "sample.csv", "--now", "2026-12-01T08:00Z")
    invoke("run", "--now", "2026-12-01T09:00Z", "--no-prefect")

    why = json.loads(invoke("leads", "why", "16", "--format", "json", "--now", "2026-12-01T10:00Z"))
    held = why["steps"][0]
    assert (held["state"], held["reason"], held["at"]) == (
        "held",
        "outside_send_window",
        "2026-12-01T17:00:00+00:00",
    )
    assert why["enrollments"][0]["campaign"] == "educate"
    assert {row["code"] for row in why["legend"]} >= {"outside_send_window"}

    codes = {row["code"] for row in json.loads(invoke("reasons", "--format", "json"))}
    assert codes == set(REASON_MEANINGS)

    report = json.loads(
        invoke("segments", "test", "--format", "json", "--now", "2026-12-01T10:00Z")
    )
    assert report["leads"] == 19
    assert all(row["change"] == "unchanged" for row in report["enrolled"])  # the live rules

    with pytest.raises(CliError, match="lead 999 not found"):
        invoke("leads", "why", "999")
    with pytest.raises(CliError, match=r"no-such\.yaml: no such file"):
        invoke("segments", "test", "--file", "no-such.yaml")
    (workdir / "bad.yaml").write_text("rules:\n  - segment: x\n    campaign: nope\n")
    with pytest.raises(ConfigError, match="unknown campaign 'nope'"):
        invoke("segments", "test", "--file", "bad.yaml")
