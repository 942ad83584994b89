"""The always-valid A/B test (leadops.reporting.sequential), checked on simulated outcome
counts: its false-winner rate under daily looks, its power, and its verdict rules."""

from __future__ import annotations

import random

import pytest

from leadops.reporting.sequential import (
    INCONCLUSIVE,
    TOO_EARLY,
    WINNER,
    Arm,
    compare,
    verdict,
)

SIMULATIONS = 200
LEADS = 10_000
DAYS = 30


def first_winner(seed: int, rate_a: float, rate_b: float, leads: int = LEADS) -> str | None:
    """Leads arrive evenly over DAYS days, each to A or B at random, and convert with
    their arm's rate; the test is read every day and the first winner declared returned."""
    rng = random.Random(seed)
    per_day = leads // DAYS
    n = {"a": 0, "b": 0}
    wins = {"a": 0, "b": 0}
    for _ in range(DAYS):
        for _ in range(per_day):
            arm = "a" if rng.random() < 0.5 else "b"
            n[arm] += 1
            wins[arm] += rng.random() < (rate_a if arm == "a" else rate_b)
        result = verdict([Arm("a", n["a"], wins["a"]), Arm("b", n["b"], wins["b"])])
        if result.status == WINNER:
            return result.keep
    return None


def test_aa_tests_read_daily_declare_few_false_winners() -> None:
    winners = [first_winner(seed, 0.04, 0.04) for seed in range(SIMULATIONS)]
    false_rate = sum(w is not None for w in winners) / SIMULATIONS
    assert false_rate <= 0.05 + 0.03


def test_a_planted_lift_is_found() -> None:
    winners = [first_winner(1000 + seed, 0.04, 0.06) for seed in range(SIMULATIONS)]
    assert sum(w == "b" for w in winners) / SIMULATIONS >= 0.80
    assert winners.count("a") <= SIMULATIONS * 0.01


def test_a_naive_daily_z_test_would_fail_the_same_check() -> None:
    """The reason for the sequential test: a 5% z-test read daily over the same A/A data
    declares far more than 5% winners (so the A/A check above can fail)."""

    def z_winner(seed: int) -> bool:
        rng = random.Random(seed)
        n, wins = [0, 0], [0, 0]
        for _ in range(DAYS):
            for _ in range(LEADS // DAYS):
                arm = int(rng.random() < 0.5)
                n[arm] += 1
                wins[arm] += rng.random() < 0.04
            a, b = Arm("a", n[0], wins[0]), Arm("b", n[1], wins[1])
            se = (a.rate * (1 - a.rate) / a.n + b.rate * (1 - b.rate) / b.n) ** 0.5
            if se and abs(b.rate - a.rate) / se > 1.96:
                return True
        return False

    assert sum(z_winner(seed) for seed in range(100)) / 100 > 0.10


def test_below_the_minimum_sample_there_is_no_verdict() -> None:
    result = verdict([Arm("a", 150, 0), Arm("b", 150, 60)])
    assert result.status == TOO_EARLY and result.keep == "a"
    assert "fewer than 200 leads on a, b" in result.reason


def test_inconclusive_keeps_the_control() -> None:
    result = verdict([Arm("a", 1000, 40), Arm("b", 1000, 45)])
    assert result.status == INCONCLUSIVE and result.keep == "a"
    (comparison,) = result.comparisons
    assert comparison.low < 0 < comparison.high
    assert comparison.difference == pytest.approx(0.005)


def test_a_clear_winner_and_a_clear_loser() -> None:
    assert verdict([Arm("a", 5000, 200), Arm("b", 5000, 400)]).keep == "b"
    lost = verdict([Arm("a", 5000, 400), Arm("b", 5000, 200)])
    assert lost.status == WINNER and lost.keep == "a"


def test_three_arms_split_alpha_and_pick_the_best() -> None:
    arms = [Arm("a", 5000, 200), Arm("b", 5000, 330), Arm("c", 5000, 420)]
    result = verdict(arms)
    assert result.status == WINNER and result.keep == "c"
    two = compare(arms[0], arms[1], alpha=0.05)
    three = verdict(arms).comparisons[0]
    assert three.high - three.low > two.high - two.low  # alpha / 2: a wider interval


def test_no_conversions_anywhere_is_inconclusive() -> None:
    result = verdict([Arm("a", 500, 0), Arm("b", 500, 0)])
    assert result.status == INCONCLUSIVE
    assert result.comparisons[0].p_value == 1.0
