"""Output people can use: exact previews, whole tables, honest limits, machine formats."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from leadops.cli import app
from leadops.core.db import make_engine
from leadops.core.settings import get_settings
from leadops.delivery.campaigns import load_campaigns
from leadops.delivery.compose import template_context, unsubscribe_url
from leadops.delivery.render import Renderer
from leadops.models import QuarantinedRecord
from leadops.views.leads import lead_template_context
from tests.conftest import ROOT

runner = CliRunner()
NOW = "2026-12-02T15:00Z"


# One test process runs the module: its sample project is built once.
pytestmark = pytest.mark.xdist_group("output_cli")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The sample project with the sample leads imported and one nurture tick run."""
    folder = tmp_path_factory.mktemp("output")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        shutil.copytree(ROOT / "config", folder / "config")
        shutil.copytree(ROOT / "templates", folder / "templates")
        patch.setenv("LEADOPS_CONFIG_FILE", str(folder / "config" / "leadops.toml"))
        get_settings.cache_clear()
        run("init")
        run("leads", "import", "config/sample_leads.csv", "--now", "2026-12-01T08:00Z")
        run("run", "--now", NOW, "--no-prefect")
        yield folder
        get_settings.cache_clear()


def run(*args: str, code: int = 0) -> Result:
    """Run a command; a user error (printed by `main` in real use) is `result.exception`."""
    result = runner.invoke(app, list(args), catch_exceptions=code == 1)
    assert result.exit_code == code, result.output
    return result


def test_preview_out_writes_the_rendered_html_byte_for_byte(project: Path) -> None:
    result = run(
        "templates",
        "preview",
        "educate",
        "day-1",
        "--lead",
        "1",
        "--part",
        "html",
        "--out",
        "m.html",
    )
    settings = get_settings()
    campaign = load_campaigns(settings.config_dir)["educate"]
    context = template_context(
        lead=lead_template_context(make_engine(settings.resolved_database_url), 1) or {},
        campaign=campaign,
        step_key="day-1",
        settings=settings,
        unsubscribe=unsubscribe_url(settings, 1),
    )
    expected = Renderer(settings.templates_dir).email("educate", "day-1", context).html
    written = (project / "m.html").read_bytes()
    assert written == expected.encode("utf-8")
    assert max(len(line) for line in expected.splitlines()) > 80  # would have been wrapped
    assert f"wrote {len(written)} bytes to m.html" in result.stderr
    piped = run("templates", "preview", "educate", "day-1", "--lead", "1", "--part", "html")
    assert piped.stdout == expected + "\n"
    subject = run("templates", "preview", "educate", "day-1", "--part", "subject").stdout
    assert subject.count("\n") == 1 and not subject.startswith("Subject:")
    every = run("templates", "preview", "educate", "day-1", "--part", "all").stdout
    assert (
        every.startswith(f"--- subject ---\n{subject}--- txt ---\n") and "--- html ---\n<" in every
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--part", "pdf"], "--part 'pdf' is not one of subject, txt, html, all"),
        (["--channel", "fax"], "--channel 'fax' is not one of email, whatsapp, sms"),
        (
            ["--channel", "sms"],
            "step day-1 of educate has no sms message (its channels: email, whatsapp)",
        ),
        (["--channel", "whatsapp", "--part", "html"], "only a text part"),
        (["--part", "all", "--out", "x"], "--out writes one part"),
    ],
)
def test_preview_refuses_unknown_parts(project: Path, args: list[str], message: str) -> None:
    result = run("templates", "preview", "educate", "day-1", *args, code=1)
    assert message in str(result.exception)


def test_templates_check_names_every_missing_part_of_a_step(project: Path) -> None:
    folder = project / "templates" / "email" / "offer"
    saved = {p: p.read_bytes() for p in (folder / "day-10.html.j2", folder / "day-10.txt.j2")}
    try:
        for path in saved:
            path.unlink()
        out = run("templates", "check", code=1).output
    finally:
        for path, data in saved.items():
            path.write_bytes(data)
    assert "email/offer/day-10.html.j2" in out and "email/offer/day-10.txt.j2" in out


def test_piped_tables_are_never_cut(project: Path) -> None:
    out = run("outbox", "list", "--limit", "0").stdout
    assert "…" not in out
    assert "outside_send_window" in out and "re-engage" in out
    assert max(len(line) for line in out.splitlines()) > 80


def test_a_list_cut_by_limit_says_so_and_limit_0_means_all(project: Path) -> None:
    everyone = json.loads(run("leads", "list", "--limit", "0", "--format", "json").stdout)
    assert len(everyone) == 222
    cut = run("leads", "list", "--limit", "5", "--format", "json")
    assert len(json.loads(cut.stdout)) == 5
    assert "showing 5 of 222; --limit 0 for all" in cut.stderr
    assert run("leads", "list").stderr == "showing 100 of 222; --limit 0 for all\n"
    assert run("leads", "list", "--limit", "0").stderr == ""
    touches = run("outbox", "list", "--limit", "3", "--format", "csv")
    assert touches.stdout.count("\n") == 4 and "showing 3 of " in touches.stderr
    escalated = run("escalations", "run", "--now", NOW, "--format", "json").stdout
    [counts] = json.loads(escalated)
    assert counts["escalated"] > 1
    some = run("escalations", "list", "--limit", "1", "--format", "json")
    assert len(json.loads(some.stdout)) == 1
    assert f"showing 1 of {counts['escalated']}" in some.stderr


def test_report_json_carries_every_section_with_numbers(project: Path) -> None:
    result = run("report", "--now", NOW, "--format", "json", code=2)  # quarantine is stuck
    data = json.loads(result.stdout)
    for section in (
        "report",
        "kpis",
        "funnel",
        "cost_per_lead",
        "steps",
        "escalations",
        "stuck_work",
        "sends_per_day",
        "not_available",
    ):
        assert section in data, section
    figures = {row["name"]: row for row in data["kpis"]}
    assert figures["leads_total"] == {"name": "leads_total", "value": 222, "unit": "count"}
    assert figures["response_avg_hours"]["unit"] == "h"
    assert isinstance(figures["response_avg_hours"]["value"], float)
    assert 0 <= figures["nurture_conversion"]["value"] <= 1
    assert figures["nurture_conversion"]["unit"] == "ratio"
    assert all(isinstance(row["reached"], int) for row in data["funnel"])
    assert sum(row["sent"] for row in data["steps"]) == sum(
        row["sent"] for row in data["sends_per_day"]
    )
    stuck = {row["check"]: row["count"] for row in data["stuck_work"]}
    assert stuck["open_quarantine"] == 5 == data["report"][0]["stuck_total"]


def test_report_csv_is_one_line_per_cell(project: Path) -> None:
    result = run("report", "--now", NOW, "--format", "csv", code=2)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["section", "row", "column", "value"]
    cells = {(r["section"], r["row"], r["column"]): r["value"] for r in rows}
    assert cells[("kpis", "1", "name")] == "leads_total"
    assert cells[("kpis", "1", "value")] == "222"
    assert cells[("funnel", "1", "stage")] == "subscriber"
    assert {r["section"] for r in rows} >= {"funnel", "steps", "escalations", "stuck_work"}


def test_stats_and_rescore_take_a_format(project: Path) -> None:
    stats = json.loads(run("stats", "--format", "json").stdout)
    assert sum(row["leads"] for row in stats["leads"]) == 222
    assert {row["status"] for row in stats["touches"]} >= {"sent"}
    rows = list(csv.reader(io.StringIO(run("stats", "--format", "csv").stdout)))
    assert rows[0] == ["section", "row", "column", "value"]
    rescored = run("rescore", "--now", NOW, "--no-prefect", "--format", "json").stdout
    data = json.loads(rescored)
    assert set(data) == {"counts", "sales_ready"} and len(data["counts"]) == 1


def test_quarantine_show_lists_fields_in_one_order(project: Path) -> None:
    shown = json.loads(run("quarantine", "show", "1", "--format", "json").stdout)
    assert list(shown[0]) == list(QuarantinedRecord.model_fields)
    table = run("quarantine", "show", "1").stdout
    assert table.index("source_ref") < table.index("reasons") < table.index("created_at")
