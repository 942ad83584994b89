"""One training run end to end, as the weekly flow and `leadops model train --no-prefect`
run it: train and backtest, store the model, score every lead, return the card."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from leadops.predictive.card import model_card
from leadops.predictive.config import load_predictive
from leadops.predictive.store import save, score_leads
from leadops.predictive.train import train


def train_and_score(engine: Engine, config_dir: Path, now: datetime) -> dict[str, Any]:
    """Train at `now` on the history, store the model, score every lead; the card too."""
    config = load_predictive(config_dir)
    with engine.connect() as connection:
        result = train(connection, config, now)
    with engine.begin() as connection:
        model = save(connection, result, config, now)
    scored = score_leads(engine, None, now)
    with engine.connect() as connection:
        card = model_card(connection, config)
    return {
        "version": model.version,
        "mode": model.mode,
        "gate_passed": model.gate_passed,
        "beats_rules": model.beats_rules,
        "leads": result.leads,
        "positives": result.positives,
        "scored": scored.leads,
        "card": card,
    }
