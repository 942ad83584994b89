"""The CLI as a user runs it: exit codes and output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from leadops.cli import app
from leadops.core.settings import Settings
from tests.conftest import ROOT

runner = CliRunner()


@pytest.fixture
def workdir(project_dir: Path) -> Path:
    return project_dir  # tests/e2e/conftest.py


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_import_run_and_list_as_json(workdir: Path) -> None:
    assert "database ready" in invoke("init")
    out = invoke("leads", "import", "config/sample_leads.csv", "--now", "2026-12-01T08:00Z")
    row = next(line for line in out.splitlines() if "│ csv:sample" in line)
    cells = [c.strip() for c in row.split("│")]
    assert cells[2:6] == ["228", "222", "1", "5"]  # read, created, merged, quarantined
    assert cells[6] == "2"  # flagged: imported, the bad value kept
    assert "flagged 2, imported with the bad value kept (invalid_created_at 1, unknown_t" in out
    again = invoke("leads", "import", "config/sample_leads.csv", "--now", "2026-12-01T09:00Z")
    assert "import again" in again  # and the quarantine count below is still 7
    invoke("run", "--now", "2026-12-02T15:00Z", "--no-prefect")
    touches = json.loads(invoke("outbox", "list", "--format", "json", "--limit", "0"))
    assert touches
    for key in ("email", "phone", "campaign", "step", "channel", "status", "due_at", "sent_at"):
        assert key in touches[0]
    sent = [t for t in touches if t["status"] == "sent"]
    assert sent and all(t["sent_at"] for t in sent)
    assert len(list((workdir / "data" / "outbox").rglob("t*.*"))) == len(sent)
    again = invoke("run", "--now", "2026-12-02T15:00Z", "--no-prefect")
    assert "sent 0" in again

    lead_id = str(touches[0]["lead_id"])
    assert "Enrollments" in invoke("leads", "show", lead_id)
    csv_out = invoke("quarantine", "list", "--format", "csv")
    assert csv_out.count("\n") == 6  # header + 5 quarantined rows


def test_templates_check_passes_and_reports_broken_template_with_line(workdir: Path) -> None:
    assert "all templates render" in invoke("templates", "check")
    path = workdir / "templates" / "email" / "offer" / "day-10.txt.j2"
    path.write_text("Hello\n{{ lead.first_name }\n")
    result = runner.invoke(app, ["templates", "check"])
    assert result.exit_code == 1
    assert "email/offer/day-10.txt.j2" in result.output
    assert "2" in result.output


def test_invalid_campaign_file_names_file_and_line(workdir: Path) -> None:
    path = workdir / "config" / "campaigns" / "offer.yaml"
    path.write_text(path.read_text().replace("channels: [email, whatsapp]", "channels: [fax]", 1))
    result = runner.invoke(app, ["init"])
    assert result.exit_code != 0
    message = str(result.exception) + result.output
    assert "offer.yaml:" in message and "channels" in message


def test_commands_without_database_fail_clearly(workdir: Path) -> None:
    result = runner.invoke(app, ["leads", "list"])
    assert result.exit_code != 0
    assert "leadops init" in str(result.exception)


def test_every_command_has_help_with_an_example() -> None:
    group = typer.main.get_command(app)

    def walk(command, path):  # type: ignore[no-untyped-def]
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                yield from walk(sub, [*path, name])
        else:
            yield path, command

    commands = list(walk(group, []))
    assert len(commands) >= 12
    for path, command in commands:
        assert "Example" in (command.help or ""), " ".join(path)
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    missing = [name for name in Settings.model_fields if f"LEADOPS_{name.upper()}" not in text]
    assert missing == []
