"""`templates check` and `templates preview --channel sms`: the segments an SMS costs, and
a warning above LEADOPS_SMS_MAX_SEGMENTS."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadops.cli import app
from leadops.delivery.sms_text import OPT_OUT_LINE, sms_segments

runner = CliRunner()


def test_check_lists_segments_and_warns_above_the_limit(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offer = project_dir / "templates" / "sms" / "offer" / "day-1.txt.j2"
    offer.write_text("Hi {{ lead.first_name or 'there' }} 👋 a demo? {{ links.demo_url }}\n")
    monkeypatch.setenv("LEADOPS_SMS_MAX_SEGMENTS", "2")
    result = runner.invoke(app, ["templates", "check"])
    assert result.exit_code == 0, result.output  # a warning, not an error
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "2 " in rows["connect/day-1"].split("│")[2] and "GSM-7" in rows["connect/day-1"]
    assert "UCS-2" in rows["offer/day-1"]  # the emoji makes it UCS-2: 67 per segment
    assert rows["offer/day-1"].split("│")[2].strip() == "3"
    assert result.stderr.count("warning:") == 1
    assert "offer/day-1 takes 3 segments (UCS-2" in result.stderr
    assert "LEADOPS_SMS_MAX_SEGMENTS=2" in result.stderr


def test_preview_prints_the_first_sms_and_its_segments(project_dir: Path) -> None:
    result = runner.invoke(app, ["templates", "preview", "offer", "day-1", "--channel", "sms"])
    assert result.exit_code == 0, result.output
    text = result.stdout.removesuffix("\n")
    assert text.startswith("Northwind Analytics: Hi Amara, Maya here.")
    later = text.removeprefix("Northwind Analytics: ").removesuffix(f"\n{OPT_OUT_LINE}")
    assert later != text
    first_cost, later_cost = sms_segments(text), sms_segments(later)
    assert result.stderr == f"first SMS to a lead: {first_cost}; later SMS: {later_cost}\n"
    assert first_cost.segments == 2
