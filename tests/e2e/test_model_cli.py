"""`leadops model` from the command line: synthesize a history, train without Prefect,
read the model card as JSON, switch modes (active refused or allowed by the backtest),
and the leads' predictive score in `leads list` and `leads show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadops.cli import app

runner = CliRunner()
NOW = "2026-12-01T00:00Z"


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_train_show_switch_and_the_leads_carry_the_score(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADOPS_SECRET_KEY", "test-secret-key-0123456789")
    invoke("init")
    before = json.loads(invoke("model", "show", "--format", "json"))
    assert before["model"] is None and before["mode"] == "off"
    with pytest.raises(Exception, match="no model yet"):
        runner.invoke(app, ["model", "mode", "active"], catch_exceptions=False)

    # a smaller gate (config/predictive.yaml), so a smaller history passes it
    (project_dir / "config" / "predictive.yaml").write_text("min_leads: 400\nmin_positives: 30\n")
    made = json.loads(invoke("model", "synthesize", "--leads", "800", "-f", "json"))[0]
    assert made["leads"] == 800 and isinstance(made["positives"], int)
    card = json.loads(invoke("model", "train", "--no-prefect", "--now", NOW, "-f", "json"))
    assert card["mode"] == "shadow" and card["gate"] == {
        "min_leads": 400,
        "min_positives": 30,
        "passed": True,
    }
    assert card["backtest"]["model"]["auc"] > card["backtest"]["rules"]["auc"]
    assert isinstance(card["model"]["leads"], int) and card["model"]["label"] == "accepted"
    assert card == json.loads(invoke("model", "show", "--format", "json"))
    assert "rule score" in invoke("model", "show")

    listed = json.loads(invoke("leads", "list", "--limit", "5", "--format", "json"))
    assert all(row["predictive_mode"] == "shadow" for row in listed)
    assert all(0 < row["predictive_score"] < 1 for row in listed)
    shown = json.loads(invoke("leads", "show", str(listed[0]["id"]), "--format", "json"))[0]
    assert shown["predictive_mode"] == "shadow" and shown["predictive_factors"]
    assert "its factors" in invoke("leads", "show", str(listed[0]["id"]))

    assert "is active" in invoke("model", "mode", "active", "--now", NOW)
    listed = json.loads(invoke("leads", "list", "--limit", "5", "--format", "json"))
    assert {row["predictive_mode"] for row in listed} == {"active"}
    assert "is shadow" in invoke("model", "mode", "shadow", "--now", NOW)
