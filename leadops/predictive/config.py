"""config/predictive.yaml: what the model learns (label and window), when a lead is
scored for training (days after creation), the minimum-data gate and the bands of active
mode. The file is optional: without it every default below applies."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadops.core.configfile import load_model

FILE_NAME = "predictive.yaml"


class Label(StrEnum):
    ACCEPTED = "accepted"  # a rep acknowledged the lead or logged a first contact
    OPPORTUNITY = "opportunity"  # a CRM deal was opened (or the escalation closed won)
    WON = "won"  # a won CRM deal or an escalation closed won


class Mode(StrEnum):
    OFF = "off"  # not scored
    SHADOW = "shadow"  # scored and reported, not used
    ACTIVE = "active"  # the probability sets the band (and so band routing)


class PredictiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Label = Label.ACCEPTED
    window_days: int = Field(default=30, ge=1, le=365)
    after_days: int = Field(default=7, ge=0, le=365)
    min_leads: int = Field(default=1000, ge=10)
    min_positives: int = Field(default=100, ge=5)
    test_share: float = Field(default=0.25, gt=0.05, lt=0.6)
    min_auc: float = Field(default=0.6, ge=0.5, le=1.0)
    hot_share: float = Field(default=0.10, gt=0.0, lt=1.0)
    warm_share: float = Field(default=0.30, gt=0.0, lt=1.0)
    min_level_count: int = Field(default=20, ge=1)
    exclude_properties: tuple[str, ...] = ()
    seed: int = 0

    @model_validator(mode="after")
    def _shares(self) -> PredictiveConfig:
        if self.warm_share <= self.hot_share:
            raise ValueError("warm_share: must be larger than hot_share (hot leads are warm too)")
        return self


def load_predictive(config_dir: Path) -> PredictiveConfig:
    """The predictive settings of `config_dir`, or the defaults without the file."""
    path = config_dir / FILE_NAME
    if not path.exists():
        return PredictiveConfig()
    return load_model(path, PredictiveConfig)
