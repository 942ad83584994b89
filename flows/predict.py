"""The weekly predictive-score flow: train on the database's own history, backtest
against the rule score, store the model (shadow mode first), score every lead, and
publish the model card as an artifact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import RETRIES, RETRY_DELAYS, flow_settings, retry_if_transient, run_name
from leadops.core.clock import SystemClock, ensure_utc
from leadops.predictive import card
from leadops.predictive.run import train_and_score
from leadops.runtime import Runtime, build_runtime


@task(
    name="train-and-score",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def train_task(runtime: Runtime, now: datetime) -> dict[str, Any]:
    return train_and_score(runtime.engine, runtime.settings.config_dir, now)


@flow(name="predict", flow_run_name=lambda: run_name("predict", "now", "%Y-%m-%d"))
def predict_flow(now: datetime | None = None) -> dict[str, Any]:
    """Train, backtest, store and apply the predictive model; publish its card."""
    logger = get_run_logger()
    runtime = build_runtime(flow_settings())
    at = ensure_utc(now) if now is not None else SystemClock().now()
    try:
        result = train_task(runtime, at)
    finally:
        runtime.dispose()
    model_card = result["card"]
    create_markdown_artifact(
        key="leadops-model-card", markdown=card.markdown(model_card), description="Model card"
    )
    create_table_artifact(
        key="leadops-model-backtest",
        table=card.comparison_rows(model_card) or [{"backtest": "none: the gate was not passed"}],
        description="Backtest AUC, lift and calibration: model and rule score, same leads",
    )
    logger.info(
        "model v%s %s; %d leads scored", result["version"], result["mode"], result["scored"]
    )
    return {k: v for k, v in result.items() if k != "card"}
