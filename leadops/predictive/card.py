"""The model card: what the latest model learned, on how much history, and how its
time-based backtest compares with the rule score on the same leads. One dict (JSON as
is), its rows for tables, and Markdown for the Prefect artifact."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from leadops.predictive.config import PredictiveConfig
from leadops.predictive.store import current

TOP_COEFFICIENTS = 12


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def model_card(connection: Connection, config: PredictiveConfig) -> dict[str, Any]:
    """The card of the latest model; without one, the gate it will have to pass."""
    model = current(connection)
    gate = {"min_leads": config.min_leads, "min_positives": config.min_positives}
    if model is None:
        return {
            "model": None,
            "mode": "off",
            "gate": gate,
            "note": "no model yet: `leadops model train` trains one; the rule score is in use",
        }
    spec = model.spec or {}
    coefficients = sorted(
        (
            {"column": c["name"], "coefficient": round(c["coef"], 4)}
            for c in spec.get("columns", [])
        ),
        key=lambda row: -abs(row["coefficient"]),
    )
    return {
        "model": {
            "version": model.version,
            "algorithm": model.algorithm,
            "label": model.label,
            "window_days": model.window_days,
            "after_days": model.after_days,
            "train_from": _iso(model.train_from),
            "train_to": _iso(model.train_to),
            "trained_at": _iso(model.trained_at),
            "seed": model.seed,
            "leads": model.leads,
            "positives": model.positives,
        },
        "mode": model.mode,
        "gate": {**gate, "passed": model.gate_passed},
        "beats_rules": model.beats_rules,
        "reason": model.reason,
        "bands": spec.get("bands"),
        "backtest": model.metrics,
        "coefficients": coefficients[:TOP_COEFFICIENTS],
    }


def comparison_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per score (model, rules): AUC, top-decile lift, Brier, calibration error."""
    backtest = card.get("backtest") or {}
    rows = []
    for name in ("model", "rules"):
        if name in backtest:
            m = backtest[name]
            rows.append(
                {
                    "score": "predictive model" if name == "model" else "rule score",
                    "auc": m["auc"],
                    "top_decile_lift": m["top_decile_lift"],
                    "brier": m["brier"],
                    "calibration_error": m["calibration_error"],
                }
            )
    return rows


def calibration_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Per decile of each score's probability: leads, mean predicted, observed rate."""
    backtest = card.get("backtest") or {}
    return [
        {"score": name, **row}
        for name in ("model", "rules")
        if name in backtest
        for row in backtest[name]["calibration"]
    ]


def summary_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's facts as field/value rows."""
    model = card.get("model") or {}
    backtest = card.get("backtest") or {}
    gate = card["gate"]
    window = f"{model.get('train_from')} .. {model.get('train_to')}" if model else None
    facts: dict[str, Any] = {
        "version": model.get("version"),
        "mode": card["mode"],
        "label": model.get("label"),
        "window_days": model.get("window_days"),
        "prediction_date": f"{model['after_days']} days after creation" if model else None,
        "training_window": window,
        "labelled_leads": model.get("leads"),
        "positives": model.get("positives"),
        "gate": "passed" if gate.get("passed") else "not passed",
        "gate_needs": f"{gate['min_leads']} leads, {gate['min_positives']} positives",
        "backtest_train": backtest.get("train_leads"),
        "backtest_test": backtest.get("test_leads"),
        "test_window": f"{backtest.get('test_from')} .. {backtest.get('test_to')}"
        if backtest.get("test_from")
        else None,
        "auc_gain_95": f"{backtest['auc_gain_low']} .. {backtest['auc_gain_high']}"
        if "auc_gain_low" in backtest
        else None,
        "beats_rules": card.get("beats_rules"),
        "note": card.get("reason") or card.get("note"),
    }
    return [{"field": k, "value": v} for k, v in facts.items() if v is not None]


def _md_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_none_\n"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def markdown(card: dict[str, Any]) -> str:
    """The card as Markdown (the training flow's artifact)."""
    parts = ["# Predictive model card\n", _md_table(summary_rows(card))]
    parts += ["\n## Backtest: model and rule score on the same newest leads\n"]
    parts += [_md_table(comparison_rows(card)), "\n## Largest coefficients\n"]
    parts += [_md_table(card.get("coefficients") or [])]
    return "".join(parts)
