"""Training and the time-based backtest (scikit-learn's logistic regression on
standardized features, one-hot categoricals).

The history: every lead whose window has closed by `now`, scored at its prediction date
(`after_days` after it was created), labelled 1 when it reached the label within
`window_days` after that date. Leads that had reached it already by the date are left out
(there is nothing left to predict). The backtest trains on the older leads (by prediction
date) and tests on the newest `test_share`, the model and the rule score on the same
leads; the stored model is then fitted on the whole history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadops.models import LEADS
from leadops.predictive import metrics
from leadops.predictive.config import PredictiveConfig
from leadops.predictive.features import LeadRow, lead_rows
from leadops.predictive.outcomes import outcome_times
from leadops.predictive.spec import Spec, encode, encoding, levels_of, probability


@dataclass
class Labelled:
    row: LeadRow
    label: int


@dataclass
class TrainingResult:
    """What one training run found: the gate, the backtest and the fitted spec."""

    leads: int
    positives: int
    gate_passed: bool
    reason: str | None
    train_from: datetime | None = None
    train_to: datetime | None = None
    spec: Spec | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    beats_rules: bool = False


def history(connection: Connection, config: PredictiveConfig, now: datetime) -> list[Labelled]:
    """The labelled history at `now`, oldest prediction date first."""
    after = timedelta(days=config.after_days)
    window = timedelta(days=config.window_days)
    outcomes = outcome_times(connection, config.label)
    as_of: dict[int, datetime] = {}
    for lead_id, created_at in connection.execute(
        sa.select(LEADS.c.id, LEADS.c.created_at).where(LEADS.c.created_at <= now - after - window)
    ):
        date = created_at + after
        if lead_id in outcomes and outcomes[lead_id] <= date:
            continue
        as_of[lead_id] = date
    rows = lead_rows(connection, as_of, exclude_properties=config.exclude_properties)
    labelled = [
        Labelled(row, int(row.lead_id in outcomes and outcomes[row.lead_id] <= row.as_of + window))
        for row in rows
    ]
    labelled.sort(key=lambda item: (item.row.as_of, item.row.lead_id))
    return labelled


def fit(items: Sequence[Labelled], config: PredictiveConfig) -> Spec:
    """A logistic regression on `items`, as a spec (columns, means, scales, coefficients)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    raw = [item.row.features for item in items]
    columns = encoding(raw, min_level_count=config.min_level_count)
    levels = levels_of(columns)
    x = np.array([encode(row, columns, levels) for row in raw], dtype=float)
    y = np.array([item.label for item in items])
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model = LogisticRegression(C=1.0, max_iter=2000, random_state=config.seed)
    model.fit((x - scaler.mean_) / scale, y)
    for column, mean, s, coef in zip(columns, scaler.mean_, scale, model.coef_[0], strict=True):
        column.update(mean=float(mean), scale=float(s), coef=float(coef))
    spec: Spec = {
        "columns": columns,
        "intercept": float(model.intercept_[0]),
        "exclude_properties": list(config.exclude_properties),
        "levels": levels,
    }
    probabilities = sorted((probability(spec, row) for row in raw), reverse=True)
    spec["bands"] = {
        "hot": probabilities[max(0, round(len(raw) * config.hot_share) - 1)],
        "warm": probabilities[max(0, round(len(raw) * config.warm_share) - 1)],
        "hot_share": config.hot_share,
        "warm_share": config.warm_share,
    }
    return spec


def _rule_probabilities(train: Sequence[Labelled], test: Sequence[Labelled]) -> list[float]:
    """The rule score mapped to a probability on the training leads (one-feature logistic
    regression), so its calibration can be read beside the model's."""
    from sklearn.linear_model import LogisticRegression

    x = np.array([[item.row.rule_score] for item in train], dtype=float)
    scale = float(x.std()) or 1.0
    model = LogisticRegression(max_iter=1000).fit(x / scale, [item.label for item in train])
    test_x = np.array([[item.row.rule_score] for item in test], dtype=float) / scale
    return [float(p) for p in model.predict_proba(test_x)[:, 1]]


def backtest(items: Sequence[Labelled], config: PredictiveConfig) -> dict[str, Any]:
    """Train on the older leads, test on the newest `test_share`; both scores measured."""
    cut = round(len(items) * (1 - config.test_share))
    train, test = items[:cut], items[cut:]
    labels = [item.label for item in test]
    if len({item.label for item in train}) < 2 or len(set(labels)) < 2:
        return {"error": "the training or test leads hold only one outcome"}
    spec = fit(train, config)
    model_p = [probability(spec, item.row.features) for item in test]
    rules = [item.row.rule_score for item in test]
    low, high = metrics.auc_gain_interval(model_p, rules, labels, seed=config.seed)
    return {
        "train_leads": len(train),
        "train_positives": sum(item.label for item in train),
        "train_from": train[0].row.as_of.isoformat(),
        "train_to": train[-1].row.as_of.isoformat(),
        "test_leads": len(test),
        "test_positives": sum(labels),
        "test_from": test[0].row.as_of.isoformat(),
        "test_to": test[-1].row.as_of.isoformat(),
        "model": metrics.score_summary(model_p, labels),
        "rules": metrics.score_summary(_rule_probabilities(train, test), labels, rules),
        "auc_gain_low": round(low, 4),
        "auc_gain_high": round(high, 4),
    }


def beats(card: dict[str, Any], config: PredictiveConfig) -> bool:
    """The model beats the rules: its AUC is at least `min_auc` and the whole 95%
    interval of its gain over the rule score's AUC is above zero."""
    if "model" not in card:
        return False
    return card["model"]["auc"] >= config.min_auc and card["auc_gain_low"] > 0


def train(connection: Connection, config: PredictiveConfig, now: datetime) -> TrainingResult:
    """The gate, the backtest and the model fitted on the whole history."""
    items = history(connection, config, now)
    positives = sum(item.label for item in items)
    result = TrainingResult(leads=len(items), positives=positives, gate_passed=False, reason=None)
    if items:
        result.train_from, result.train_to = items[0].row.as_of, items[-1].row.as_of
    if len(items) < config.min_leads or positives < config.min_positives:
        result.reason = (
            f"not enough history: {len(items)} labelled leads and {positives} positive "
            f"outcomes ({config.label}), the gate needs {config.min_leads} and "
            f"{config.min_positives}; the rule score stays in use"
        )
        return result
    result.metrics = backtest(items, config)
    if "error" in result.metrics:
        result.reason = f"backtest impossible: {result.metrics['error']}; the rules stay in use"
        return result
    result.gate_passed = True
    result.beats_rules = beats(result.metrics, config)
    if not result.beats_rules:
        result.reason = "the backtest does not beat the rule score: it may not be made active"
    result.spec = fit(items, config)
    return result
