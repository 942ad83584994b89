"""The lift of a scoring rule and its verdict (leadops.reporting.lift), on counts."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from leadops.reporting import calibration
from leadops.reporting.kpi_figures import KpiReport, RuleLift
from leadops.reporting.lift import MIN_GROUP, Verdict, lift, rate, z_for

Z95 = z_for(1)


def test_z_widens_with_the_number_of_rules_compared() -> None:
    assert pytest.approx(1.95996, abs=1e-4) == Z95
    assert z_for(20) == pytest.approx(3.0233, abs=1e-3)  # 0.05 / 20 two-sided


def test_katz_interval_by_hand() -> None:
    # 20 of 100 against 10 of 100: lift 2, se sqrt(1/20 - 1/100 + 1/10 - 1/100) = 0.3606
    result = lift(20, 100, 10, 100, Z95)
    se = math.sqrt(0.13)
    assert result.lift == pytest.approx(2.0)
    assert result.low == pytest.approx(2.0 * math.exp(-Z95 * se))  # 0.986: holds 1
    assert result.high == pytest.approx(2.0 * math.exp(Z95 * se))
    assert result.verdict == Verdict.NONE
    assert lift(40, 100, 10, 100, Z95).verdict == Verdict.LIFT
    assert lift(5, 200, 60, 200, Z95).verdict == Verdict.NEGATIVE


def test_a_zero_cell_adds_half_a_lead_to_each_cell() -> None:
    result = lift(10, 50, 0, 50, Z95)
    assert result.lift == pytest.approx((10.5 / 51) / (0.5 / 51))
    assert result.low is not None and result.low > 1.0
    assert result.verdict == Verdict.LIFT


def test_small_groups_and_rare_outcomes_get_no_verdict() -> None:
    assert lift(10, MIN_GROUP - 1, 1, 300, Z95).verdict == Verdict.TOO_FEW  # 10 of 29
    assert lift(3, 100, 0, 100, Z95).verdict == Verdict.TOO_FEW  # 3 conversions in all
    nothing = lift(0, 100, 0, 100, Z95)
    assert (nothing.lift, nothing.verdict) == (None, Verdict.TOO_FEW)
    assert lift(5, 5, 0, 0, Z95).verdict == Verdict.TOO_FEW  # every lead fired it
    assert rate(0, 0) is None
    with pytest.raises(ValueError, match="between 0"):
        lift(11, 10, 0, 10, Z95)


def test_rules_that_predict_nothing_rarely_show_lift_together() -> None:
    """500 seeded reports of 10 rules that change nothing (20% convert either way): the
    share of reports with any rule shown as lift or against stays near 5%."""
    rng = random.Random(24)
    rules, z = 10, z_for(10)
    wrong = 0
    for _ in range(500):
        verdicts = []
        for _ in range(rules):
            a = sum(rng.random() < 0.2 for _ in range(80))
            c = sum(rng.random() < 0.2 for _ in range(120))
            verdicts.append(lift(a, 80, c, 120, z).verdict)
        wrong += any(v in (Verdict.LIFT, Verdict.NEGATIVE) for v in verdicts)
    assert wrong / 500 <= 0.08


def test_the_table_shows_no_numbers_without_a_verdict() -> None:
    def row(rule: str, verdict: str) -> RuleLift:
        return RuleLift(rule, "engagement", "sal", 20, 8, 200, 20, 0.4, 0.1, 4.0, 1.9, 8.3, verdict)

    report = KpiReport(now=datetime(2026, 12, 1, tzinfo=UTC))
    report.rule_lift = [row("reply", "too_few"), row("pricing_page", "lift")]
    cells = {r["rule"]: r["sal lift"] for r in calibration.rule_rows(report)}
    assert cells == {"reply": "too few leads", "pricing_page": "4.00x (1.90 to 8.30) predicts"}
