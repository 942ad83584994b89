"""The report's predictive-score section: the model card (mode, gate, the backtest of
the model and of the rule score on the same leads, calibration by decile)."""

from __future__ import annotations

from html import escape
from typing import Any

from sqlalchemy.engine import Engine

from leadops.predictive import card as cards
from leadops.predictive.config import PredictiveConfig
from leadops.reporting.html import _table

NOTE = (
    '<p class="sub">Trained on this database&rsquo;s own history; tested on the newest leads '
    "after training on the older ones. Shadow: scored and reported, not used; active: the "
    "probability sets each lead&rsquo;s band. AUC 0.5 is chance; lift is the top "
    "tenth&rsquo;s rate over the average; calibration compares the predicted and observed "
    "rates by decile (the rule score mapped to a probability on the training leads).</p>"
)


def predictive_card(engine: Engine, config: PredictiveConfig) -> dict[str, Any]:
    with engine.connect() as connection:
        return cards.model_card(connection, config)


def predictive_html(card: dict[str, Any] | None) -> str:
    """The section as HTML ('' without a card)."""
    if card is None:
        return ""
    return (
        f"<h2>Predictive score (mode: {escape(str(card['mode']))})</h2>{NOTE}"
        f"{_table(cards.summary_rows(card))}"
        f"<h3>Backtest: model and rule score on the same leads</h3>"
        f"{_table(cards.comparison_rows(card), 'no backtest yet')}"
        f"<h3>Calibration by decile</h3>{_table(cards.calibration_rows(card), 'no backtest yet')}"
    )
