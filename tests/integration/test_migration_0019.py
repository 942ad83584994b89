"""Migration 0019 (predictive models and lead predictions) on a database holding leads
from before it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import downgrade, upgrade
from leadops.models import LEAD_PREDICTIONS, PREDICTIVE_MODELS

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
BEFORE = "0018"  # the revision 0019 follows


def test_upgrade_keeps_leads_and_downgrade_drops_only_the_predictive_tables(
    engine: Engine,
) -> None:
    downgrade(engine, BEFORE)
    assert "predictive_models" not in sa.inspect(engine).get_table_names()
    with engine.begin() as connection:
        lead = connection.execute(
            sa.text(
                "INSERT INTO leads (email, timezone, lifecycle_stage, score, email_consent, "
                "whatsapp_consent, created_at, updated_at) VALUES ('ada@example.com', 'UTC', "
                "'mql', 40, true, false, :t, :t) RETURNING id"
            ),
            {"t": T0},
        ).scalar_one()

    upgrade(engine)
    with engine.begin() as connection:
        assert connection.execute(sa.text("SELECT score FROM leads")).scalar_one() == 40
        connection.execute(
            PREDICTIVE_MODELS.insert().values(
                version=1,
                label="accepted",
                window_days=30,
                after_days=7,
                leads=1200,
                positives=110,
                gate_passed=True,
                beats_rules=True,
                mode="shadow",
                spec={"columns": [], "intercept": -2.0},
                metrics={"model": {"auc": 0.8}},
                trained_at=T0,
            )
        )
        connection.execute(
            LEAD_PREDICTIONS.insert().values(
                lead_id=lead,
                model_version=1,
                probability=0.12,
                mode="shadow",
                factors=[{"feature": "seniority", "value": "vp", "contribution": 0.4}],
                scored_at=T0,
            )
        )
    with engine.connect() as connection:
        (row,) = connection.execute(sa.select(LEAD_PREDICTIONS)).all()
        model = connection.execute(sa.select(PREDICTIVE_MODELS)).one()
    assert (row.probability, row.factors[0]["feature"], row.scored_at) == (0.12, "seniority", T0)
    assert model.spec["intercept"] == -2.0 and model.algorithm == "logistic_regression"

    downgrade(engine, BEFORE)
    tables = sa.inspect(engine).get_table_names()
    assert "predictive_models" not in tables and "lead_predictions" not in tables
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT email FROM leads")).scalar_one() == (
            "ada@example.com"
        )
    upgrade(engine)
    assert "lead_predictions" in sa.inspect(engine).get_table_names()
