"""Predictive-score tables: each trained model (its coefficients as JSON, its backtest and
its mode) and each lead's latest predictive score."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from leadops.models.types import ts


class PredictiveModel(SQLModel, table=True):
    """One training run. `spec` holds everything applying it needs (the encoded columns,
    their means, scales and coefficients, the intercept, the band thresholds), so applying
    needs neither pickle nor scikit-learn; `metrics` is the backtest (the model card).
    A run that did not pass the minimum-data gate is kept too (mode off, `reason` says
    why), so the card can say why the rules are still in use."""

    __tablename__ = "predictive_models"

    id: int | None = Field(default=None, primary_key=True)
    version: int = Field(unique=True)
    algorithm: str = Field(default="logistic_regression", max_length=40)
    label: str = Field(max_length=20)  # accepted, opportunity, won
    window_days: int
    after_days: int  # the prediction date: this many days after the lead was created
    train_from: datetime | None = ts()  # the first and last prediction date trained on
    train_to: datetime | None = ts()
    leads: int = 0  # labelled leads in the history
    positives: int = 0
    gate_passed: bool = False
    beats_rules: bool = False
    mode: str = Field(default="off", max_length=10)  # off, shadow, active
    reason: str | None = Field(default=None, max_length=300)
    spec: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    metrics: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    seed: int = 0
    trained_at: datetime = ts(nullable=False)
    mode_changed_at: datetime | None = ts()


class LeadPrediction(SQLModel, table=True):
    """A lead's latest predictive score: the probability of the model's label within its
    window, the mode it was made in, and its top factors."""

    __tablename__ = "lead_predictions"

    lead_id: int = Field(foreign_key="leads.id", primary_key=True)
    model_version: int
    probability: float
    mode: str = Field(max_length=10)
    factors: list[dict[str, Any]] = Field(sa_type=sa.JSON, nullable=False)
    scored_at: datetime = ts(nullable=False)


# Core table handles, for set-based statements that bypass the ORM's per-object overhead.
PREDICTIVE_MODELS = cast(sa.Table, PredictiveModel.__table__)  # type: ignore[attr-defined]
LEAD_PREDICTIONS = cast(sa.Table, LeadPrediction.__table__)  # type: ignore[attr-defined]
