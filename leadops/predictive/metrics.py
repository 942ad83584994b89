"""Backtest measures of a score against outcomes: AUC (ties count half), lift in the top
decile, calibration by decile (mean predicted probability against the observed rate),
Brier score, and a seeded paired bootstrap of the AUC difference between two scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

DECILES = 10
BOOTSTRAP = 400


def auc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """The probability that a random positive scores above a random negative."""
    y = np.asarray(labels, dtype=bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return 0.5
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _top_share(scores: np.ndarray, share: float) -> np.ndarray:
    """The indices of the highest `share` of scores (stable: ties by position)."""
    order = np.argsort(-scores, kind="stable")
    return order[: max(1, round(len(scores) * share))]


def top_decile_lift(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The positive rate of the top 10% by score over the overall rate."""
    y = np.asarray(labels, dtype=float)
    if not len(y) or y.mean() == 0:
        return 0.0
    top = _top_share(np.asarray(scores, dtype=float), 0.1)
    return float(y[top].mean() / y.mean())


def calibration(probabilities: Sequence[float], labels: Sequence[int]) -> list[dict[str, Any]]:
    """One row per decile of predicted probability, lowest first."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    order = np.argsort(p, kind="stable")
    rows = []
    for number, part in enumerate(np.array_split(order, DECILES), start=1):
        if len(part):
            rows.append(
                {
                    "decile": number,
                    "leads": len(part),
                    "predicted": round(float(p[part].mean()), 4),
                    "observed": round(float(y[part].mean()), 4),
                }
            )
    return rows


def calibration_error(rows: Sequence[dict[str, Any]]) -> float:
    """Expected calibration error: |predicted - observed| weighted by decile size."""
    total = sum(row["leads"] for row in rows)
    if not total:
        return 0.0
    return sum(abs(r["predicted"] - r["observed"]) * r["leads"] for r in rows) / total


def brier(probabilities: Sequence[float], labels: Sequence[int]) -> float:
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    return float(np.mean((p - y) ** 2)) if len(y) else 0.0


def auc_gain_interval(
    model: Sequence[float], rules: Sequence[float], labels: Sequence[int], *, seed: int
) -> tuple[float, float]:
    """A 95% paired bootstrap interval of AUC(model) - AUC(rules) on the same leads."""
    m, r, y = (np.asarray(v, dtype=float) for v in (model, rules, labels))
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, len(y), len(y))
        gains.append(auc(m[pick], y[pick]) - auc(r[pick], y[pick]))
    low, high = np.percentile(gains, [2.5, 97.5])
    return float(low), float(high)


def score_summary(
    probabilities: Sequence[float], labels: Sequence[int], raw: Sequence[float] | None = None
) -> dict[str, Any]:
    """AUC and lift of the ranking (`raw` if given, else the probabilities), calibration
    and Brier of the probabilities."""
    ranking = raw if raw is not None else probabilities
    rows = calibration(probabilities, labels)
    return {
        "auc": round(auc(ranking, labels), 4),
        "top_decile_lift": round(top_decile_lift(ranking, labels), 3),
        "brier": round(brier(probabilities, labels), 5),
        "calibration_error": round(calibration_error(rows), 4),
        "calibration": rows,
    }
