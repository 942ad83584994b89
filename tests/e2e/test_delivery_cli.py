"""Delivery from the command line: provider settings checked at start, ambiguous touches
listed and settled by an operator."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from leadops.cli import app
from leadops.core.db import make_engine
from leadops.core.settings import get_settings
from leadops.models import TOUCHES, TouchStatus
from tests.conftest import ROOT

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    monkeypatch.setenv("LEADOPS_CONFIG_FILE", str(tmp_path / "config" / "leadops.toml"))
    monkeypatch.setenv("LEADOPS_SECRET_KEY", "cli-test-secret-key-0123456789")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str, code: int = 0) -> str:
    """Run a command; errors (printed by `leadops`'s main) are returned with the output."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output + ("" if result.exception is None else str(result.exception))


def test_provider_without_credentials_fails_at_start(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from leadops.cli import main

    monkeypatch.setenv("LEADOPS_EMAIL_CHANNEL", "sendgrid")
    monkeypatch.setattr("sys.argv", ["leadops", "run", "--no-prefect"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    assert "LEADOPS_SENDGRID_API_KEY" in capsys.readouterr().err


def test_ambiguous_touch_is_listed_and_resolved_with_an_audit_reason(workdir: Path) -> None:
    invoke("init")
    invoke("leads", "import", "config/sample_leads.csv", "--now", "2026-12-01T08:00Z")
    invoke("run", "--now", "2026-12-02T15:00Z", "--no-prefect")
    touches = json.loads(invoke("outbox", "list", "--format", "json", "--limit", "0"))
    touch_id = next(t["id"] for t in touches if t["status"] == "sent")
    engine = make_engine(f"sqlite:///{workdir / 'data' / 'leadops.db'}")
    with engine.begin() as conn:
        conn.execute(
            update(TOUCHES)
            .where(TOUCHES.c.id == touch_id)
            .values(status=TouchStatus.AMBIGUOUS, error="no answer from SendGrid")
        )
    engine.dispose()

    listed = json.loads(invoke("outbox", "list", "--status", "ambiguous", "--format", "json"))
    assert [t["id"] for t in listed] == [touch_id]
    assert listed[0]["error"] == "no answer from SendGrid"

    assert "--sent or --not-sent" in invoke("outbox", "resolve", str(touch_id), code=1)
    assert "reason" in invoke("outbox", "resolve", str(touch_id), "--sent", code=1)
    out = invoke(
        "outbox",
        "resolve",
        str(touch_id),
        "--sent",
        "--reason",
        "seen in activity feed",
        "--provider-message-id",
        "abc123",
        "--actor",
        "maya",
    )
    assert "ambiguous -> sent" in out
    row = json.loads(
        invoke("outbox", "list", "--status", "sent", "--format", "json", "--limit", "0")
    )
    resolved = next(t for t in row if t["id"] == touch_id)
    assert resolved["provider_message_id"] == "abc123"
    assert "maya" in resolved["error"]
    assert "only ambiguous" in invoke(
        "outbox", "resolve", str(touch_id), "--not-sent", "--reason", "x", code=1
    )
    assert "no touch" in invoke("outbox", "resolve", "999999", "--sent", "--reason", "x", code=1)


def test_run_with_two_dispatcher_workers_sends_each_touch_once(workdir: Path) -> None:
    invoke("init")
    invoke("leads", "import", "config/sample_leads.csv", "--now", "2026-12-01T08:00Z")
    output = invoke("run", "--now", "2026-12-02T15:00Z", "--no-prefect", "--workers", "2")
    touches = json.loads(invoke("outbox", "list", "--format", "json", "--limit", "0"))
    sent = [touch for touch in touches if touch["status"] == TouchStatus.SENT]
    assert sent and f"sent {len(sent)}," in output
    files = [path for path in (workdir / "data" / "outbox").rglob("*") if path.is_file()]
    assert len(files) == len(sent)  # one outbox file per touch: nothing written twice
    again = invoke("run", "--now", "2026-12-02T15:00Z", "--no-prefect", "--workers", "2")
    assert "sent 0," in again
