"""Dead letters from the command line: listed, counted in webhook stats and the stuck-work
report, and retried once after the fix."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from leadops.cli import app
from leadops.cli.common import CliError
from leadops.core.clock import parse_instant
from leadops.core.db import make_engine
from leadops.core.settings import get_settings
from leadops.engagement import inbox
from leadops.models import INBOX
from leadops.providers import inbound

runner = CliRunner()
AT = "2026-12-01T09:30Z"


@pytest.fixture
def workdir(project_dir: Path) -> Path:
    return project_dir  # tests/e2e/conftest.py


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_a_dead_letter_is_listed_reported_and_retried_once(workdir: Path) -> None:
    invoke("init")
    invoke("leads", "import", "config/sample_leads.csv", "--now", "2026-12-01T08:00Z")
    email = json.loads(invoke("leads", "show", "1", "--format", "json"))[0]["email"]
    engine = make_engine(get_settings().resolved_database_url)
    event = {"id": "d1", "type": "demo_requested", "email": email, "occurred_at": "yesterday"}
    # accepted by an older version of the endpoint
    inbox.store(
        engine,
        [inbound.InboxRecord(inbound.SITE, "demo_requested", "site:d1", event)],
        parse_instant(AT),
    )

    out = invoke("rescore", "--no-prefect", "--now", AT)
    assert "events 0" in out and "dead_letters 1" in out
    (letter,) = json.loads(invoke("deadletters", "list", "--format", "json"))
    assert (letter["item"], letter["stage"], letter["status"], letter["item_status"]) == (
        "inbox",
        "rescore",
        "open",
        "dead_letter",
    )
    assert "yesterday" in letter["error"]
    rows = list(csv.DictReader(io.StringIO(invoke("deadletters", "list", "--format", "csv"))))
    assert [r["id"] for r in rows] == [str(letter["id"])]
    stats = invoke("webhooks", "stats")
    assert "Dead letters" in stats and "dead_letter" in stats
    report = runner.invoke(app, ["report", "--now", AT], catch_exceptions=False)
    assert report.exit_code == 2  # the default threshold is 0 stuck items
    assert "dead_letters 1" in report.output

    # the fix, then the retry: applied once
    with engine.begin() as connection:
        connection.execute(
            sa.update(INBOX).values(payload={**event, "occurred_at": "2026-12-01T09:00:00Z"})
        )
    out = invoke("deadletters", "retry", str(letter["id"]), "--format", "json")
    assert json.loads(out)[0]["outcome"] == "requeued"
    assert "events 1" in invoke("rescore", "--no-prefect", "--now", AT)
    out = invoke("deadletters", "retry", str(letter["id"]), "--format", "json")
    assert json.loads(out)[0]["outcome"] == "not_retried"
    assert "events 0" in invoke("rescore", "--no-prefect", "--now", AT)
    assert json.loads(invoke("deadletters", "list", "--format", "json")) == []
    retried = json.loads(invoke("deadletters", "list", "--status", "all", "--format", "json"))
    assert [(r["status"], r["item_status"], r["retries"]) for r in retried] == [
        ("retried", "processed", 1)
    ]


def test_retry_needs_ids_or_all_and_known_ids(workdir: Path) -> None:
    invoke("init")
    for args, message in (
        (["deadletters", "retry"], "give dead letter ids or --all"),
        (["deadletters", "retry", "7"], "no dead letter with id 7"),
        (["deadletters", "list", "--status", "closed"], "--status must be"),
    ):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, CliError) and message in str(result.exception)
