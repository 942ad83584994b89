"""`leadops escalations ...` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from leadops.cli import app
from tests.e2e.test_cli import invoke, workdir

runner = CliRunner()
__all__ = ["workdir"]


def test_run_list_show_ack_close_and_route(workdir: Path) -> None:
    assert "4 sales reps" in invoke("init")
    invoke("leads", "import", "config/sample_leads.csv", "--now", "2026-12-01T08:00Z")
    out = invoke("escalations", "run", "--now", "2026-12-01T14:00Z")
    assert "escalated 22" in out
    rows = json.loads(invoke("escalations", "list", "--format", "json"))
    assert len(rows) == 22 and {row["status"] for row in rows} == {"open"}
    first = rows[-1]
    # the sample leads come in at the SQL stage: the import set it, not a score
    assert first["trigger"] == "imported_sql" and first["why"].startswith("was imported as")
    assert first["assignee"] in {
        "james",
        "sofia",
        "diego",
        "amelie",
    }
    shown = invoke("escalations", "show", str(first["id"]))
    assert "Assignments" in shown and "Notifications" in shown and "lifecycle stage is SQL" in shown
    assert "rerouted 0" not in invoke("escalations", "run", "--now", "2026-12-01T14:05Z")

    assert "acknowledged by" in invoke("escalations", "ack", str(first["id"]), "--by", "james")
    out = invoke("escalations", "close", str(first["id"]), "--outcome", "not-ready")
    assert "recycled" in out
    recycled = json.loads(invoke("escalations", "list", "--status", "recycled", "--format", "json"))
    assert [row["id"] for row in recycled] == [first["id"]]
    lead = json.loads(invoke("leads", "show", str(first["lead_id"]), "--format", "json"))
    assert lead[0]["lifecycle_stage"] == "recycled"
    shown = invoke("leads", "show", str(first["lead_id"]))
    assert "Escalations" in shown
    line = next(line for line in shown.splitlines() if line.startswith(f"│ {first['id']} "))
    assert "imported_sql" in line and "recycled" in line and first["assignee"] in line

    later = invoke("escalations", "run", "--now", "2026-12-01T14:30Z")
    assert "re-routed" in later and "re-routed 0" not in later  # nobody acknowledged the rest
    assert "->" in invoke(
        "escalations", "route", str(first["lead_id"]), "--now", "2026-12-01T14:30Z"
    )

    missing = runner.invoke(app, ["escalations", "ack", "9999", "--by", "x"])
    assert missing.exit_code != 0 and "no escalation with id 9999" in str(missing.exception)
    bad = runner.invoke(app, ["escalations", "close", str(first["id"]), "--outcome", "won"])
    assert bad.exit_code != 0 and "already recycled" in str(bad.exception)


def test_broken_routing_file_names_file_and_line(workdir: Path) -> None:
    path = workdir / "config" / "routing.yaml"
    path.write_text(path.read_text().replace("timezone: Europe/Berlin", "timezone: Europe/Bonn"))
    result = runner.invoke(app, ["init"])
    assert result.exit_code != 0
    assert "routing.yaml:" in str(result.exception) and "Europe/Bonn" in str(result.exception)


def test_without_a_routing_file_init_works_and_escalation_says_why_not(workdir: Path) -> None:
    (workdir / "config" / "routing.yaml").unlink()
    assert "escalation stays off" in invoke("init")
    result = runner.invoke(app, ["escalations", "run"])
    assert result.exit_code != 0 and "routing.yaml: file not found" in str(result.exception)
