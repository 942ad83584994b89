"""An A/B test that stays valid however often it is looked at: the mixture sequential
probability ratio test (mSPRT) with a normal mixture, as in Johari, Pekelis and Walsh,
"Always valid inference" (2017), on the difference of two conversion rates.

Pure arithmetic, no database. Reading a fixed-horizon z-test every day and stopping at
the first p < 0.05 declares a false winner several times more often than 5%. The mSPRT
instead compares the likelihood of the data under "no difference" with its likelihood
averaged over differences drawn from N(0, tau^2); by Ville's inequality the chance that
this ratio ever reaches 1/alpha under no difference is at most alpha, at every look, so a
marketer may read the result daily and stop whenever it says so. Inverting the test
gives an always-valid confidence interval (a confidence sequence) for the difference,
which is also how the campaign's lift over its holdout is shown.

The variance of the difference is estimated from the data (the plug-in version of the
paper's section 4), so the guarantee holds once each arm has a reasonable sample; below
`MIN_SAMPLE` leads per arm no verdict is given. A result that does not reach the bound
is "inconclusive", and the control is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05
# The mixture's spread: the size of difference the test is most sensitive to (2 points of
# conversion). Any tau keeps the test valid; it only moves power between small and large
# differences.
TAU = 0.02
MIN_SAMPLE = 200  # leads per arm before any verdict

TOO_EARLY = "too early"
INCONCLUSIVE = "inconclusive"
WINNER = "winner"


@dataclass(frozen=True)
class Arm:
    """One arm of a test: leads counted and how many of them converted."""

    key: str
    n: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.n if self.n else 0.0


@dataclass(frozen=True)
class Comparison:
    """A challenger against the control: the difference of rates (challenger minus
    control), its always-valid interval, and whether it is proven either way."""

    control: str
    challenger: str
    difference: float
    low: float
    high: float
    likelihood_ratio: float
    p_value: float  # always valid: 1 / likelihood ratio, capped at 1


def _variance(a: Arm, b: Arm) -> float:
    return a.rate * (1 - a.rate) / a.n + b.rate * (1 - b.rate) / b.n


def compare(control: Arm, challenger: Arm, *, alpha: float = ALPHA, tau: float = TAU) -> Comparison:
    """The mSPRT of challenger against control, and the (1 - alpha) confidence sequence
    of the difference of their rates."""
    difference = challenger.rate - control.rate
    if not control.n or not challenger.n:
        return Comparison(control.key, challenger.key, difference, -1.0, 1.0, 1.0, 1.0)
    variance = _variance(control, challenger)
    if variance <= 0:  # no conversions at all, or all converted, on both arms
        return Comparison(control.key, challenger.key, difference, -1.0, 1.0, 1.0, 1.0)
    spread = variance + tau * tau
    exponent = tau * tau * difference * difference / (2 * variance * spread)
    log_ratio = 0.5 * math.log(variance / spread) + exponent
    half = math.sqrt(
        variance * spread / (tau * tau) * (2 * math.log(1 / alpha) + math.log(spread / variance))
    )
    ratio = math.exp(min(log_ratio, 700.0))
    return Comparison(
        control=control.key,
        challenger=challenger.key,
        difference=difference,
        low=max(-1.0, difference - half),
        high=min(1.0, difference + half),
        likelihood_ratio=ratio,
        p_value=min(1.0, 1 / ratio),
    )


@dataclass(frozen=True)
class Verdict:
    """What the test says now: `status` is too early, inconclusive or winner; `keep` is
    the variant to send (the control unless a winner is proven)."""

    status: str
    keep: str
    comparisons: tuple[Comparison, ...]
    reason: str


def verdict(
    arms: list[Arm], *, alpha: float = ALPHA, tau: float = TAU, min_sample: int = MIN_SAMPLE
) -> Verdict:
    """Judge an A/B(/n) test. `arms[0]` is the control; each challenger is compared with
    it at alpha / (number of challengers) (Bonferroni), so the chance of any false
    winner stays at most alpha. A challenger wins when its interval is above zero (the
    best such one); the control wins when every challenger's is below zero."""
    if len(arms) < 2:
        raise ValueError("a test needs a control and at least one challenger")
    control, challengers = arms[0], arms[1:]
    each = alpha / len(challengers)
    comparisons = tuple(compare(control, arm, alpha=each, tau=tau) for arm in challengers)
    small = [arm.key for arm in arms if arm.n < min_sample]
    if small:
        return Verdict(
            TOO_EARLY,
            control.key,
            comparisons,
            f"fewer than {min_sample} leads on {', '.join(small)}",
        )
    better = [c for c in comparisons if c.low > 0]
    if better:
        best = max(better, key=lambda c: c.difference)
        return Verdict(
            WINNER,
            best.challenger,
            comparisons,
            f"{best.challenger} beats {control.key} by {best.difference:+.2%} "
            f"({best.low:+.2%} to {best.high:+.2%})",
        )
    if all(c.high < 0 for c in comparisons):
        return Verdict(WINNER, control.key, comparisons, f"{control.key} beats every challenger")
    return Verdict(
        INCONCLUSIVE, control.key, comparisons, f"no difference proven; keep {control.key}"
    )
