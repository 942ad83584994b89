"""`leadops intake run` and `leadops quarantine show|release|drop` as a user runs them."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadops.cli import app
from tests.conftest import ROOT

runner = CliRunner()


@pytest.fixture
def workdir(project_dir: Path) -> Path:
    return project_dir  # tests/e2e/conftest.py


def invoke(*args: str, code: int = 0) -> str:
    """Run a command; user errors (printed by `main` in real use) come back as text."""
    result = runner.invoke(app, list(args), catch_exceptions=code != 0)
    assert result.exit_code == code, result.output
    return result.output + ("" if result.exception is None else str(result.exception))


def test_intake_run_reads_the_drop_folder_once_and_reports_per_source(workdir: Path) -> None:
    invoke("init")
    inbox = workdir / "data" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "de.csv").write_text(
        "E-Mail;Vorname;Land;Telefon;Lieblingsfarbe\n"
        "hans@example.de;HANS;Germany;030 1234567;blau\n"
        "HANS@example.de;;DE;;\n"
        "kaputt@@example.de;Eva;DE;;\n"
        "=cmd|' /C calc'!A0@x.io;=cmd|' /C calc'!A0;DE;;\n",
        encoding="utf-8-sig",
    )
    shutil.copy(ROOT / "config" / "sample_leads.csv", workdir / "extra.csv")
    # de.csv has no consent column: the lead it creates can never be messaged (exit 5)
    result = runner.invoke(
        app, ["intake", "run", "extra.csv", "--now", "2026-12-01T08:00Z", "--format", "json"]
    )
    assert result.exit_code == 5, result.output
    report = json.loads(result.stdout)
    by_source = {row["source"]: row for row in report}
    assert by_source["csv:de.csv"] == {
        "source": "csv:de.csv",
        "read": 4,
        "created": 1,
        "merged": 1,
        "quarantined": 2,
        "reasons": "invalid_email 2",
        "flagged": 0,
        "flagged_reasons": "-",
        "note": "unmapped columns: Lieblingsfarbe",
    }
    assert by_source["csv:extra.csv"]["created"] == 222
    again = json.loads(invoke("intake", "run", "--now", "2026-12-01T08:15Z", "--format", "json"))
    assert again == []  # nothing new in the folder

    listing = invoke("quarantine", "list", "--source", "csv:de.csv", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(listing)))
    assert len(rows) == 2
    assert rows[1]["email"] == "'=cmd|' /C calc'!A0@x.io"  # neutralised for spreadsheets
    first = rows[0]["id"]
    assert "kaputt@@example.de" in invoke("quarantine", "show", first)
    assert "no" in invoke("quarantine", "release", first, code=1)
    out = invoke("quarantine", "release", first, "--set", "email=eva@example.de")
    assert "created" in out
    invoke("quarantine", "drop", rows[1]["id"])
    assert "already dropped" in invoke("quarantine", "drop", rows[1]["id"], code=1)
    leads = json.loads(invoke("leads", "list", "--format", "json", "--limit", "500"))
    hans = [lead for lead in leads if lead["email"] == "hans@example.de"]
    assert len(hans) == 1 and hans[0]["first_name"] == "Hans" and hans[0]["phone"] == "+49301234567"


def test_intake_run_reports_a_failing_hubspot_and_exits_1(workdir: Path) -> None:
    invoke("init")
    path = workdir / "config" / "intake.yaml"
    path.write_text(path.read_text().replace("  enabled: false", "  enabled: true", 1))
    out = invoke("intake", "run", "--source", "hubspot", code=1)
    assert "LEADOPS_HUBSPOT_TOKEN" in out
    bad = invoke("intake", "run", "--source", "ftp", code=1)
    assert "unknown intake source" in bad


def test_leads_import_quarantines_an_unreadable_file_and_reads_the_others(
    workdir: Path,
) -> None:
    invoke("init")
    (workdir / "cr.csv").write_bytes(b"email,first\rname\nann@example.com,Ann\n")
    (workdir / "good.csv").write_text(
        "email,phone,timezone\nbo@example.com,12,Mars/Base\ncy@example.com,,\n"
    )
    out = invoke("leads", "import", "cr.csv", "good.csv", "--now", "2026-12-01T08:00Z", code=3)
    assert "file quarantined: cr.csv (quarantined file 1): malformed_header:" in out
    assert "release-file 1`" in out
    assert "csv:good.csv: flagged 1, imported with the bad value kept (invalid_phone 1, " in out
    files = json.loads(invoke("quarantine", "files", "--format", "json"))
    assert [(f["id"], f["name"], f["reason"]) for f in files] == [(1, "cr.csv", "malformed_header")]
    assert Path(files[0]["stored_path"]).read_bytes() == (workdir / "cr.csv").read_bytes()

    # The lead with a bad phone is in, reachable by email; `leads show` tells what was bad.
    leads = json.loads(invoke("leads", "list", "--format", "json"))
    bo = next(lead for lead in leads if lead["email"] == "bo@example.com")
    shown = invoke("leads", "show", str(bo["id"]))
    assert "Flagged data (2 open;" in shown and "invalid_phone" in shown and "Mars/Base" in shown
    [as_json] = json.loads(invoke("leads", "show", str(bo["id"]), "--format", "json"))
    assert {(i["field"], i["value"]) for i in as_json["data_issues"]} == {
        ("phone", "12"),
        ("timezone", "Mars/Base"),
    }
    report = json.loads(invoke("report", "--now", "2026-12-01T09:00Z", "--format", "json"))
    figures = {r["name"]: r["value"] for r in report["kpis"]}
    assert figures["flagged_leads"] == 1
    assert (figures["quarantined_open"], figures["quarantined_files_open"]) == (0, 1)

    still = invoke("quarantine", "release-file", "1", code=1)
    assert "stays open" in still and "carriage return" in still
    (workdir / "fixed.csv").write_text("email,first_name\nann@example.com,Ann\n")
    released = invoke("quarantine", "release-file", "1", "--path", "fixed.csv")
    assert "Released file 1" in released
    assert invoke("quarantine", "files", "--format", "json") == "[]\n"
    assert "already released" in invoke("quarantine", "drop-file", "1", code=1)
    # Given again, the bad bytes are skipped: their fix was imported.
    again = invoke("leads", "import", "cr.csv", "--now", "2026-12-01T10:00Z")
    assert "skipped: quarantined file 1, released" in again
