"""The predictive score on synthetic histories with a known truth: the backtest beats the
rule score when there is signal, keeps the rules when there is none, names the true
drivers, never reads after the prediction date, and applies from JSON alone."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import make_engine
from leadops.models import INBOX, LEAD_PREDICTIONS, LEADS
from leadops.predictive import card as cards
from leadops.predictive.config import Mode, PredictiveConfig
from leadops.predictive.features import lead_rows
from leadops.predictive.spec import band_of, probability
from leadops.predictive.store import ModeError, current, save, score_leads, set_mode
from leadops.predictive.synthetic import END, synthesize
from leadops.predictive.train import history, train
from leadops.reporting.predictive_section import predictive_html

CONFIG = PredictiveConfig()
TRUE = {"seniority", "pricing_page_views"}
NOISE = {"company_size_log", "industry", "opens"}


def _trained(tmp: Path, template: Path, *, independent: bool) -> Iterator[Engine]:
    path = tmp / "leadops.db"
    shutil.copyfile(template, path)
    engine = make_engine(f"sqlite:///{path}")
    synthesize(engine, independent=independent)
    with engine.connect() as connection:
        result = train(connection, CONFIG, END)
    with engine.begin() as connection:
        save(connection, result, CONFIG, END)
    score_leads(engine, None, END)
    yield engine
    engine.dispose()


# One test process runs the module: its two synthesized histories are built once.
pytestmark = pytest.mark.xdist_group("predictive")


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Engine]:
    """One synthesized history with signal, trained and scored, for the whole module."""
    yield from _trained(tmp_path_factory.mktemp("truth"), sqlite_template, independent=False)


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Engine]:
    """The same history with outcomes independent of every feature."""
    yield from _trained(tmp_path_factory.mktemp("noise"), sqlite_template, independent=True)


def _model(engine: Engine) -> Any:
    with engine.connect() as connection:
        return current(connection)


def test_on_the_known_truth_the_backtest_beats_the_rule_score(truth: Engine) -> None:
    model = _model(truth)
    backtest = model.metrics
    assert model.gate_passed and model.beats_rules and model.mode == Mode.SHADOW
    assert backtest["model"]["auc"] >= 0.75
    assert backtest["model"]["auc"] > backtest["rules"]["auc"]
    assert backtest["model"]["top_decile_lift"] > backtest["rules"]["top_decile_lift"]
    # time-based: every test lead was scored after every training lead
    assert backtest["train_to"] <= backtest["test_from"]
    assert 0.06 <= model.positives / model.leads <= 0.10  # the base rate of about 8%
    with truth.connect() as connection:
        card = cards.model_card(connection, CONFIG)
    assert [row["score"] for row in cards.comparison_rows(card)] == [
        "predictive model",
        "rule score",
    ]
    assert len(cards.calibration_rows(card)) == 20
    assert "Predictive model card" in cards.markdown(card)
    section = predictive_html(card)
    assert "Predictive score (mode: shadow)" in section and "rule score" in section


def test_independent_outcomes_score_about_chance_and_keep_the_rules(noise: Engine) -> None:
    model = _model(noise)
    assert 0.4 <= model.metrics["model"]["auc"] <= 0.6
    assert not model.beats_rules and model.mode == Mode.SHADOW
    with noise.begin() as connection, pytest.raises(ModeError, match="does not beat"):
        set_mode(connection, Mode.ACTIVE, END)
    assert _model(noise).mode == Mode.SHADOW


def test_factors_name_the_true_drivers_more_often_than_the_noise(truth: Engine) -> None:
    with truth.connect() as connection:
        factor_lists = connection.execute(sa.select(LEAD_PREDICTIONS.c.factors)).scalars().all()
    # each lead's two largest factors, raising or lowering its odds
    named = Counter(
        f["feature"]
        for factors in factor_lists
        for f in sorted(factors, key=lambda f: -abs(f["contribution"]))[:2]
    )
    assert len(factor_lists) == 5000
    assert sum(named[name] for name in TRUE) > 10 * sum(named[name] for name in NOISE)
    assert min(named[name] for name in TRUE) > max(named[name] for name in NOISE)


def test_nothing_after_the_prediction_date_is_learned(truth: Engine) -> None:
    # Accepted leads click three emails after the outcome: a leak, were it read.
    with truth.connect() as connection:
        items = history(connection, CONFIG, END)
    assert items and all(item.row.features["clicks"] == 0 for item in items)
    spec = _model(truth).spec
    assert {c["name"]: c["coef"] for c in spec["columns"]}["clicks"] == 0.0


def test_a_feature_changing_after_the_date_leaves_the_training_row_alone(engine: Engine) -> None:
    created = datetime(2026, 10, 1, tzinfo=UTC)
    date = created + timedelta(days=7)
    with engine.begin() as connection:
        lead = connection.execute(
            LEADS.insert()
            .values(
                email="ada@example.com",
                seniority="vp",
                timezone="UTC",
                lifecycle_stage="lead",
                score=0,
                email_consent=True,
                whatsapp_consent=False,
                sms_consent=False,
                created_at=created,
                updated_at=created,
            )
            .returning(LEADS.c.id)
        ).scalar_one()

        def page_view(key: str, at: datetime) -> None:
            connection.execute(
                INBOX.insert().values(
                    source="site",
                    kind="page_view",
                    dedupe_key=key,
                    payload={"properties": {"url": "https://example.com/pricing"}},
                    received_at=at,
                    status="processed",
                    lead_id=lead,
                    event="activity",
                )
            )

        page_view("before", date - timedelta(days=2))
        (before,) = lead_rows(connection, {lead: date})
        page_view("after", date + timedelta(hours=1))
        (after,) = lead_rows(connection, {lead: date})
        (later,) = lead_rows(connection, {lead: date + timedelta(days=1)})
    assert before.features == after.features
    assert after.features["pricing_page_views"] == 1
    assert after.features["days_since_engaged"] == pytest.approx(2.0)
    assert later.features["pricing_page_views"] == 2


def test_too_little_history_fails_the_gate_and_keeps_the_rules(engine: Engine) -> None:
    synthesize(engine, leads=400)
    with engine.connect() as connection:
        result = train(connection, CONFIG, END)
    assert not result.gate_passed and result.spec is None
    assert result.reason is not None and "the gate needs 1000 and 100" in result.reason
    with engine.begin() as connection:
        model = save(connection, result, CONFIG, END)
        assert model.mode == Mode.OFF and model.version == 1
        with pytest.raises(ModeError, match="did not pass the gate"):
            set_mode(connection, Mode.SHADOW, END)
    assert score_leads(engine, None, END).leads == 0


def test_active_mode_sets_bands_from_the_stored_json_and_is_reproducible(truth: Engine) -> None:
    with truth.begin() as connection:
        model = set_mode(connection, Mode.ACTIVE, END)
    try:
        with truth.connect() as connection:
            newest = sa.select(LEADS.c.id).order_by(LEADS.c.id.desc()).limit(300)
            ids = connection.execute(newest).scalars().all()
        scored = score_leads(truth, ids, END)
        assert scored.leads == scored.bands_set == 300
        with truth.connect() as connection:
            rows = lead_rows(connection, dict.fromkeys(ids, END))
            bands = dict(
                connection.execute(sa.select(LEADS.c.id, LEADS.c.band).where(LEADS.c.id.in_(ids)))
                .tuples()
                .all()
            )
            # the same history trains the same model (seeded, nothing downloaded)
            again = train(connection, CONFIG, END)
        for row in rows:
            assert bands[row.lead_id] == band_of(model.spec, probability(model.spec, row.features))
        assert Counter(bands.values())["hot"] > 0
        assert again.spec == model.spec
    finally:
        with truth.begin() as connection:
            set_mode(connection, Mode.SHADOW, END)
