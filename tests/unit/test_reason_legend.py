"""Every hold and skip reason code has one line of meaning in the one legend."""

from __future__ import annotations

import re

from leadops.delivery.policy import REASON_MEANINGS, Reason, legend, reason_meaning
from leadops.delivery.suppression import OPT_IN_CLEARS
from leadops.models.vocab import SuppressionReason
from tests.conftest import ROOT


def test_every_policy_reason_has_a_meaning() -> None:
    for reason in Reason:
        assert reason.value in REASON_MEANINGS, reason
        assert REASON_MEANINGS[reason.value].strip()


def test_every_code_written_to_hold_reason_has_a_meaning() -> None:
    """Literal codes written to touches.hold_reason, and the suppression events that end
    a sequence or skip pending touches (their event name becomes the reason)."""
    literals = set()
    for path in (ROOT / "leadops").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        literals.update(re.findall(r'hold_reason="([a-z_]+)"', text))
        literals.update(re.findall(r'leave_nurture\((?:[^()]|\([^()]*\))*?"([a-z_]+)"', text))
        literals.update(re.findall(r'batch\.suppress\(lead_id, "([a-z_]+)"', text))
        literals.update(re.findall(r'batch\.stop\(lead_id, "([a-z_]+)"', text))
    assert {"escalated", "enrollment_ended", "bounce", "whatsapp_opt_out", "replied"} <= literals
    # every suppression code also ends up as the reason of the touches it skips
    for code in literals | OPT_IN_CLEARS | set(SuppressionReason) | {"dead_letter"}:
        assert code in REASON_MEANINGS, code


def test_legend_lists_the_given_codes_once_sorted() -> None:
    rows = legend(["render_error", "no_consent", "render_error"])
    assert [row["code"] for row in rows] == ["no_consent", "render_error"]
    assert rows[1]["meaning"] == reason_meaning("render_error")
    assert reason_meaning("something_new") == "no legend entry for this code"
