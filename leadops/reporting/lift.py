"""Whether a scoring rule predicts an outcome: the lift of the leads that fired it over
those that did not, with an interval, and a verdict that small groups cannot earn.

Pure functions, no database (leadops.reporting.calibration counts the leads).

The lift is the risk ratio: the conversion rate of the leads that fired the rule over the
rate of those that did not (2.0: twice as likely to convert). Its interval is Katz's log
interval, exp(ln(lift) +- z * sqrt(1/a - 1/n1 + 1/c - 1/n2)); when a cell of the 2x2 table
is zero, half a lead is added to each of the four cells (Haldane), so the interval stays
finite. The interval is simultaneous over the rules of one report (Bonferroni: the error
rate is split over them), so with twenty rules chance alone rarely shows as lift.

A verdict needs at least MIN_GROUP leads on each side and MIN_CONVERSIONS conversions in
all; below that the rule is "too_few", whatever its rates look like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

CONFIDENCE = 0.95  # of all the intervals of one report together
MIN_GROUP = 30  # leads that fired the rule, and leads that did not
MIN_CONVERSIONS = 5  # conversions of both groups together


class Verdict(StrEnum):
    LIFT = "lift"  # the whole interval is above 1: the rule predicts the outcome
    NEGATIVE = "negative"  # the whole interval is below 1: it predicts the outcome will not come
    NONE = "none"  # the interval holds 1: no evidence either way
    TOO_FEW = "too_few"  # too few leads or conversions to tell


VERDICT_WORDS = {
    Verdict.LIFT: "predicts",
    Verdict.NEGATIVE: "predicts against",
    Verdict.NONE: "no evidence",
    Verdict.TOO_FEW: "too few leads",
}


@dataclass(frozen=True)
class Lift:
    lift: float | None  # None: no lead converted on either side
    low: float | None
    high: float | None
    verdict: Verdict


def z_for(comparisons: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided normal quantile for `comparisons` simultaneous intervals."""
    alpha = (1.0 - confidence) / max(1, comparisons)
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


def rate(converted: int, leads: int) -> float | None:
    return converted / leads if leads else None


def lift(fired_converted: int, fired: int, other_converted: int, other: int, z: float) -> Lift:
    """The lift of `fired_converted` of `fired` leads over `other_converted` of `other`."""
    if not 0 <= fired_converted <= fired or not 0 <= other_converted <= other:
        raise ValueError("converted leads must be between 0 and the leads of their group")
    if fired_converted + other_converted == 0 or not fired or not other:
        return Lift(None, None, None, Verdict.TOO_FEW)
    a, n1, c, n2 = float(fired_converted), float(fired), float(other_converted), float(other)
    if 0 in (fired_converted, other_converted, fired - fired_converted, other - other_converted):
        a, c, n1, n2 = a + 0.5, c + 0.5, n1 + 1.0, n2 + 1.0
    log_lift = math.log((a / n1) / (c / n2))
    spread = z * math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
    low, high = math.exp(log_lift - spread), math.exp(log_lift + spread)
    if min(fired, other) < MIN_GROUP or fired_converted + other_converted < MIN_CONVERSIONS:
        verdict = Verdict.TOO_FEW
    elif low > 1.0:
        verdict = Verdict.LIFT
    elif high < 1.0:
        verdict = Verdict.NEGATIVE
    else:
        verdict = Verdict.NONE
    return Lift(math.exp(log_lift), low, high, verdict)
