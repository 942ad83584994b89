"""`leadops leads list|show` carry grade, band, lead status and custom properties in
every format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from leadops.cli import app

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_grade_band_status_and_properties_in_list_and_show(project_dir: Path) -> None:
    invoke("init")
    (project_dir / "bant.csv").write_text(
        "email,job_title,company_size,industry,country,email_consent,Budget,Need\n"
        "nora@helix-bio.example,VP Sales,500,software,GB,true,Approved,high\n"
    )
    invoke("leads", "import", "bant.csv", "--now", "2026-12-01T09:00Z")
    (listed,) = json.loads(invoke("leads", "list", "--format", "json"))
    # fit 35 (profile) + 20 (BANT budget and need): A; no engagement: 3
    assert (listed["score"], listed["grade"], listed["band"], listed["lead_status"]) == (
        55,
        "A3",
        "warm",
        None,
    )
    (shown,) = json.loads(invoke("leads", "show", "1", "--format", "json"))
    assert shown["properties"] == {"budget": "approved", "need": "high"}
    assert (shown["grade"], shown["band"]) == ("A3", "warm")
    (row,) = csv.DictReader(io.StringIO(invoke("leads", "show", "1", "--format", "csv")))
    assert json.loads(row["properties"]) == {"budget": "approved", "need": "high"}
    table = invoke("leads", "show", "1")
    assert "properties.budget" in table and "approved" in table
