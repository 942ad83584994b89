"""The stored models and the leads' predictive scores.

A new model starts in shadow mode when it passes the gate, or stays active when the
model before it was active and the new backtest beats the rules too; a run that fails
the gate is stored with mode off. Only the latest model scores leads. `set_mode` is the
explicit switch: active is refused unless the stored backtest beats the rule score.
In active mode scoring also sets each scored lead's band from its probability.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops.models import LEAD_PREDICTIONS, LEADS, PREDICTIVE_MODELS
from leadops.predictive.config import Mode, PredictiveConfig
from leadops.predictive.features import lead_rows
from leadops.predictive.spec import band_of, factors, probability

if TYPE_CHECKING:  # training needs scikit-learn; scoring needs only the spec
    from leadops.predictive.train import TrainingResult

CHUNK = 500


class ModeError(ValueError):
    """A mode switch that is refused, with the reason."""


@dataclass
class Scored:
    leads: int
    mode: str
    version: int | None
    bands_set: int = 0


def current(connection: Connection) -> Any | None:
    """The latest model row, or None before the first training run."""
    m = PREDICTIVE_MODELS.c
    return connection.execute(
        sa.select(PREDICTIVE_MODELS).order_by(m.version.desc()).limit(1)
    ).first()


def save(
    connection: Connection, result: TrainingResult, config: PredictiveConfig, now: datetime
) -> Any:
    """Store a training run as the next version; returns its row."""
    before = current(connection)
    mode = Mode.OFF
    if result.gate_passed:
        keep_active = before is not None and before.mode == Mode.ACTIVE and result.beats_rules
        mode = Mode.ACTIVE if keep_active else Mode.SHADOW
    version = (before.version if before is not None else 0) + 1
    connection.execute(
        PREDICTIVE_MODELS.insert().values(
            version=version,
            label=str(config.label),
            window_days=config.window_days,
            after_days=config.after_days,
            train_from=result.train_from,
            train_to=result.train_to,
            leads=result.leads,
            positives=result.positives,
            gate_passed=result.gate_passed,
            beats_rules=result.beats_rules,
            mode=str(mode),
            reason=result.reason,
            spec=result.spec,
            metrics=result.metrics or None,
            seed=config.seed,
            trained_at=now,
            mode_changed_at=now,
        )
    )
    return current(connection)


def set_mode(connection: Connection, mode: Mode, now: datetime) -> Any:
    """Switch the latest model to `mode`; ModeError says why a switch is refused."""
    model = current(connection)
    if model is None:
        raise ModeError("no model yet: run `leadops model train` first")
    if mode != Mode.OFF and not model.gate_passed:
        raise ModeError(f"model v{model.version} did not pass the gate: {model.reason}")
    if mode == Mode.ACTIVE and not model.beats_rules:
        gain = (model.metrics or {}).get("auc_gain_low")
        raise ModeError(
            f"model v{model.version} may not be made active: its backtest does not beat the "
            f"rule score (lower bound of the AUC gain {gain}); it stays {model.mode}"
        )
    connection.execute(
        PREDICTIVE_MODELS.update()
        .where(PREDICTIVE_MODELS.c.id == model.id)
        .values(mode=str(mode), mode_changed_at=now)
    )
    if mode == Mode.OFF:
        connection.execute(LEAD_PREDICTIONS.delete())
    return current(connection)


def score_leads(engine: Engine, lead_ids: Iterable[int] | None, now: datetime) -> Scored:
    """Score `lead_ids` (None: every lead) with the latest model at `now`; nothing when
    there is no model or it is off. Active mode also sets the scored leads' bands."""
    with engine.connect() as connection:
        model = current(connection)
        if model is None or model.mode == Mode.OFF or model.spec is None:
            return Scored(0, str(model.mode) if model else str(Mode.OFF), None)
        ids = (
            sorted(set(lead_ids))
            if lead_ids is not None
            else list(connection.execute(sa.select(LEADS.c.id).order_by(LEADS.c.id)).scalars())
        )
    spec, scored = model.spec, Scored(0, model.mode, model.version)
    exclude = spec.get("exclude_properties", [])
    for start in range(0, len(ids), CHUNK):
        with engine.begin() as connection:
            rows = lead_rows(
                connection,
                dict.fromkeys(ids[start : start + CHUNK], now),
                exclude_properties=exclude,
            )
            values = []
            for row in rows:
                p = probability(spec, row.features)
                values.append(
                    {
                        "lead_id": row.lead_id,
                        "model_version": model.version,
                        "probability": p,
                        "mode": model.mode,
                        "factors": factors(spec, row.features),
                        "scored_at": now,
                        "band": band_of(spec, p),
                    }
                )
            if not values:
                continue
            done = [v["lead_id"] for v in values]
            connection.execute(
                LEAD_PREDICTIONS.delete().where(LEAD_PREDICTIONS.c.lead_id.in_(done))
            )
            connection.execute(
                LEAD_PREDICTIONS.insert(),
                [{k: v for k, v in r.items() if k != "band"} for r in values],
            )
            if model.mode == Mode.ACTIVE:
                connection.execute(
                    LEADS.update()
                    .where(LEADS.c.id == sa.bindparam("lid"))
                    .values(band=sa.bindparam("new_band")),
                    [{"lid": v["lead_id"], "new_band": v["band"]} for v in values],
                )
                scored.bands_set += len(values)
            scored.leads += len(values)
    return scored


def prediction_of(connection: Connection, lead_id: int) -> dict[str, Any] | None:
    """A lead's stored predictive score, mode, model version and factors."""
    row = connection.execute(
        sa.select(LEAD_PREDICTIONS).where(LEAD_PREDICTIONS.c.lead_id == lead_id)
    ).first()
    if row is None:
        return None
    return {
        "predictive_score": round(row.probability, 4),
        "predictive_mode": row.mode,
        "model_version": row.model_version,
        "factors": row.factors,
        "scored_at": row.scored_at,
    }


def predictions_of(connection: Connection, lead_ids: Iterable[int]) -> dict[int, Any]:
    """Lead id -> (probability, mode) for the leads that have a predictive score."""
    ids = list(lead_ids)
    p = LEAD_PREDICTIONS.c
    return {
        row.lead_id: row
        for row in connection.execute(
            sa.select(p.lead_id, p.probability, p.mode, p.model_version).where(p.lead_id.in_(ids))
        )
    }


def with_predictions(engine: Engine, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` (lead dicts with an `id`) with `predictive_score` and `predictive_mode`
    (None and "off" for a lead without a predictive score)."""
    with engine.connect() as connection:
        found = predictions_of(connection, [row["id"] for row in rows])
    for row in rows:
        hit = found.get(row["id"])
        row["predictive_score"] = round(hit.probability, 4) if hit is not None else None
        row["predictive_mode"] = hit.mode if hit is not None else "off"
    return rows


def factor_rows(prediction: dict[str, Any]) -> list[dict[str, Any]]:
    """A lead's factors for a table: feature, its value, raises/lowers, contribution."""
    return [
        {
            "factor": f["feature"],
            "value": f["value"],
            "effect": "raises" if f["contribution"] > 0 else "lowers",
            "contribution": f["contribution"],
        }
        for f in prediction["factors"]
    ]
