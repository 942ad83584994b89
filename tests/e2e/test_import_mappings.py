"""`leadops leads import --mapping hubspot|salesforce` with real-looking CRM exports,
`--dry-run`, the import's warnings and exit codes, and one quarantine record per row."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from leadops.cli import app
from leadops.core.db import make_engine
from leadops.core.settings import get_settings
from tests.conftest import ROOT

runner = CliRunner()
DATA = ROOT / "tests" / "data"
NOW = "2026-12-01T08:00Z"
TABLES = ("leads", "quarantine", "imported_files", "score_ledger", "lead_source_records")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    monkeypatch.setenv("LEADOPS_CONFIG_FILE", str(tmp_path / "config" / "leadops.toml"))
    get_settings.cache_clear()
    assert runner.invoke(app, ["init"]).exit_code == 0
    yield tmp_path
    get_settings.cache_clear()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.stdout


def counts() -> dict[str, int]:
    engine = make_engine(get_settings().resolved_database_url)
    with engine.connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in TABLES
        }


def leads() -> dict[str, dict[str, object]]:
    engine = make_engine(get_settings().resolved_database_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM leads")).mappings()
        return {str(row["email"]): dict(row) for row in rows}


def test_a_hubspot_export_dry_runs_then_imports_with_no_row_quarantined(workdir: Path) -> None:
    export = str(DATA / "hubspot_contacts_export.csv")
    before = counts()
    preview = json.loads(
        run(
            "leads",
            "import",
            export,
            "--mapping",
            "hubspot",
            "--dry-run",
            "--now",
            NOW,
            "--format",
            "json",
        )
    )
    assert counts() == before  # a dry run writes nothing
    (source,) = preview["sources"]
    assert preview["dry_run"] is True and preview["exit_code"] == 0
    assert (source["read"], source["created"], source["quarantined"]) == (8, 8, 0)
    assert source["unknown_industries"] == {"Shipbuilding": 1}

    out = run("leads", "import", export, "--mapping", "hubspot", "--now", NOW)
    assert "kept as given: 'Shipbuilding'" in out
    assert counts()["quarantine"] == 0
    by_email = leads()
    amelia = by_email["amelia.clarke@northwind-health.example"]
    assert (amelia["lifecycle_stage"], amelia["email_consent"], amelia["country"]) == (
        "mql",
        1,
        "GB",
    )
    assert str(amelia["created_at"]).startswith("2026-11-22 14:03")  # day first
    assert amelia["industry"] == "healthcare" and amelia["crm_id"] == "50101"
    assert by_email["sofia@aperture-retail.example"]["email_consent"] == 0  # non-marketing
    assert by_email["lucas.moreau@atelier-conseil.example"]["lifecycle_stage"] == "customer"
    assert by_email["emma@fjord-energy.example"]["industry"] == "Shipbuilding"  # kept
    # fit points are in place at once, and the score is their sum
    engine = make_engine(get_settings().resolved_database_url)
    with engine.connect() as connection:
        sums = dict(
            connection.execute(
                sa.text("SELECT lead_id, sum(points) FROM score_ledger GROUP BY lead_id")
            ).all()
        )
        given = connection.execute(
            sa.text("SELECT data FROM lead_source_records WHERE lead_id = :id"),
            {"id": amelia["id"]},
        ).scalar_one()
    assert amelia["score"] > 0 and all(
        lead["score"] == sums.get(lead["id"], 0) for lead in by_email.values()
    )
    assert json.loads(given)["_industry_given"] == "Hospital & Health Care"


def test_a_salesforce_report_imports_with_opt_out_read_as_no_consent(workdir: Path) -> None:
    run(
        "leads",
        "import",
        str(DATA / "salesforce_leads_report.csv"),
        "--mapping",
        "salesforce",
        "--now",
        NOW,
    )
    assert counts()["quarantine"] == 0
    by_email = leads()
    assert len(by_email) == 6
    grace = by_email["grace.miller@harborfreight.example"]
    assert (grace["email_consent"], grace["lifecycle_stage"], grace["country"]) == (1, "lead", "US")
    assert str(grace["created_at"]).startswith("2026-11-22 14:03")
    assert by_email["oliver@brownpartners.example"]["email_consent"] == 0  # opted out
    assert by_email["ava.taylor@lakeside.example"]["email_consent"] == 0
    assert by_email["mia.schulz@alpenbank.example"]["lifecycle_stage"] == "sql"
    assert by_email["henry@davieshotels.example"]["industry"] == "hospitality"


def test_without_the_mapping_most_rows_fail_and_the_import_says_so(workdir: Path) -> None:
    bad = workdir / "bad.csv"
    bad.write_text(
        "email,lifecycle_stage,email_consent\n"
        "a@x.io,Prospect,yes\n"
        "b@x.io,Evangelist,yes\n"
        "c@x.io,lead,Marketing contact\n"
        "d@x.io,lead,yes\n"
    )
    out = run("leads", "import", "bad.csv", "--dry-run", "--now", NOW, code=4)
    assert "most rows failed: 3 of 4 quarantined" in out
    assert "invalid_lifecycle_stage: bad.csv:2: lifecycle_stage 'prospect'" in out
    assert "invalid_lifecycle_stage: bad.csv:3: lifecycle_stage 'evangelist'" in out
    assert "invalid_consent: bad.csv:4: email_consent 'Marketing contact'" in out
    assert counts()["quarantine"] == 0
    run("leads", "import", "bad.csv", "--now", NOW, code=4)
    assert counts()["quarantine"] == 3
    # read again: the same bad rows stay the same three quarantine records
    run("leads", "import", "bad.csv", "--force", "--now", "2026-12-01T09:00Z", code=4)
    assert counts()["quarantine"] == 3


def test_leads_created_without_consent_columns_exit_5_and_say_so(workdir: Path) -> None:
    (workdir / "no-consent.csv").write_text("email,first_name\na@x.io,Ann\nb@x.io,Bo\n")
    out = run("leads", "import", "no-consent.csv", "--now", NOW, code=5)
    assert "none of the 2 created leads has consent on any channel" in out
    assert counts()["leads"] == 2  # created all the same


def test_an_unknown_mapping_is_a_clear_error(workdir: Path) -> None:
    result = runner.invoke(
        app,
        ["leads", "import", str(DATA / "hubspot_contacts_export.csv"), "--mapping", "pipedrive"],
    )
    assert result.exit_code != 0
    assert "unknown mapping 'pipedrive'" in result.output + str(result.exception)


def test_the_drop_folder_reads_files_with_the_configured_ready_mapping(workdir: Path) -> None:
    config = workdir / "config" / "intake.yaml"
    config.write_text(config.read_text().replace("  mapping:\n", "  mapping: hubspot\n", 1))
    inbox = workdir / "data" / "inbox"
    inbox.mkdir(parents=True)
    shutil.copy(DATA / "hubspot_contacts_export.csv", inbox / "contacts.csv")
    (row,) = json.loads(run("intake", "run", "--now", NOW, "--format", "json"))
    assert (row["source"], row["created"], row["quarantined"]) == ("csv:contacts.csv", 8, 0)
    assert leads()["amelia.clarke@northwind-health.example"]["lifecycle_stage"] == "mql"
