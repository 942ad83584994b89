"""The rescore run applies the stored model (JSON only, no scikit-learn) to the leads it
touched: shadow mode stores the score; active mode also sets the band."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.models import LEAD_PREDICTIONS, PREDICTIVE_MODELS
from leadops.predictive.config import Mode
from leadops.predictive.store import set_mode
from tests.engagement import T0, Harness, engagement_settings, new_signing_key, sg_event

# A hand-written model: opens raise the odds; hot from a probability of 0.5.
SPEC = {
    "columns": [
        {"name": "opens", "feature": "opens", "impute": 0.0, "mean": 0.0, "scale": 1.0, "coef": 1.5}
    ],
    "intercept": -1.0,
    "bands": {"hot": 0.5, "warm": 0.2},
    "levels": {},
}


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), engine, key)


def _prediction(h: Harness, lead_id: int) -> sa.Row | None:
    with h.engine.connect() as connection:
        return connection.execute(
            sa.select(LEAD_PREDICTIONS).where(LEAD_PREDICTIONS.c.lead_id == lead_id)
        ).first()


def test_rescore_scores_the_touched_leads_and_active_mode_sets_their_band(h: Harness) -> None:
    with h.engine.begin() as connection:
        connection.execute(
            PREDICTIVE_MODELS.insert().values(
                version=1,
                label="accepted",
                window_days=30,
                after_days=7,
                leads=2000,
                positives=200,
                gate_passed=True,
                beats_rules=True,
                mode="shadow",
                spec=SPEC,
                metrics={},
                seed=0,
                trained_at=T0,
            )
        )
    opened, quiet = h.add_lead("ada@example.com"), h.add_lead("bob@example.com")
    h.tick()
    h.clock.advance(timedelta(hours=1))
    touch = h.touch(opened, "email")
    assert h.sendgrid([sg_event("open", opened, touch["id"], h.clock.now())]).status_code == 200
    h.clock.advance(timedelta(minutes=1))  # features are what was received before now
    h.rescore()
    scored = _prediction(h, opened)
    assert scored is not None and scored.mode == "shadow" and scored.model_version == 1
    assert scored.probability == pytest.approx(1 / (1 + 2.718281828**-0.5), rel=1e-6)
    assert scored.factors[0]["feature"] == "opens" and scored.factors[0]["value"] == 1
    assert _prediction(h, quiet) is None  # not touched by this run
    band_before = h.lead(opened)["band"]

    with h.engine.begin() as connection:
        set_mode(connection, Mode.ACTIVE, h.clock.now())
    h.clock.advance(timedelta(minutes=5))
    assert (
        h.sendgrid(
            [sg_event("open", opened, touch["id"], h.clock.now(), sg_event_id="second")]
        ).status_code
        == 200
    )
    h.clock.advance(timedelta(minutes=1))
    h.rescore()
    again = _prediction(h, opened)
    assert again is not None and again.mode == "active" and again.probability > 0.8
    assert h.lead(opened)["band"] == "hot" != band_before
