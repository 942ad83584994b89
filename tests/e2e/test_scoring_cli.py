"""`leadops scoring calibration` and the report's calibration sections, as a user runs them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from leadops.cli import app
from leadops.core.db import make_engine
from leadops.core.settings import get_settings
from tests.e2e.test_ops_cli import invoke, runner, workdir  # noqa: F401 (the fixture)
from tests.integration.test_calibration import generate

NOW = "2026-12-01T09:00Z"


def test_calibration_as_table_json_and_csv_and_in_the_report(workdir: Path) -> None:  # noqa: F811
    invoke("init")
    engine = make_engine(get_settings().resolved_database_url)
    generate(engine)
    engine.dispose()

    table = invoke("scoring", "calibration", "--now", NOW)
    words = " ".join(table.split())  # the summary wraps at the terminal's width
    assert "400 leads" in words and "1 left out, handed off before any score" in words
    rules = {line.split()[1]: line for line in table.splitlines() if "engagement" in line}
    assert "predicts" in rules["pricing_page"] and "no evidence" in rules["email_open"]

    data = json.loads(invoke("scoring", "calibration", "--now", NOW, "--format", "json"))
    assert data["calibration_summary"][0]["leads"] == 400
    lift = {(r["rule"], r["outcome"]): r for r in data["rule_lift"]}
    assert lift[("pricing_page", "sal")]["verdict"] == "lift"
    assert isinstance(lift[("pricing_page", "sal")]["lift_low"], float)
    assert lift[("email_open", "sal")]["verdict"] == "none"
    assert {r["by"] for r in data["calibration"]} == {"decile", "band", "grade"}

    rows = list(
        csv.DictReader(io.StringIO(invoke("scoring", "calibration", "--now", NOW, "-f", "csv")))
    )
    assert {r["section"] for r in rows} == {"calibration_summary", "calibration", "rule_lift"}

    # The daily report carries the same sections (it exits 2: the escalations wait).
    result = runner.invoke(app, ["report", "--now", NOW, "--format", "json"])
    assert result.exit_code in (0, 2), result.output
    report = json.loads(result.stdout)
    assert report["rule_lift"] == data["rule_lift"]
    figures = {row["name"]: row["value"] for row in report["kpis"]}
    assert figures["calibration_leads"] == 400
