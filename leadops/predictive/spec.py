"""A trained model as plain JSON, and applying it in pure Python (no scikit-learn, no
pickle): the rescore run scores leads with this module alone.

The spec lists the encoded columns: a number (missing values imputed with the training
median) or one level of a categorical feature (one-hot; rare levels fold into "(other)",
missing ones are "(none)"). Each column is standardized with the training mean and scale
and carries its coefficient. A lead's factor for a feature is the sum of coefficient x
standardized value over that feature's columns: positive factors raise its odds, negative
ones lower them, against an average lead of the training history.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

NONE_LEVEL = "(none)"
OTHER_LEVEL = "(other)"
TOP_FACTORS = 3

Spec = dict[str, Any]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _level(value: Any, levels: Sequence[str]) -> str:
    if value is None or value == "":
        return NONE_LEVEL
    text = str(value).strip().lower()
    return text if text in levels else OTHER_LEVEL


def encoding(rows: Sequence[Mapping[str, Any]], *, min_level_count: int) -> list[dict[str, Any]]:
    """The columns (without mean, scale or coefficient yet) the training rows call for."""
    names = sorted({name for row in rows for name in row})
    columns: list[dict[str, Any]] = []
    for name in names:
        values = [row.get(name) for row in rows]
        present = [v for v in values if v is not None and v != ""]
        if present and all(_is_number(v) for v in present):
            ordered = sorted(float(v) for v in present)
            columns.append({"name": name, "feature": name, "impute": ordered[len(ordered) // 2]})
            continue
        counts = Counter(str(v).strip().lower() for v in present)
        kept = sorted(level for level, n in counts.items() if n >= min_level_count)
        levels = [*kept, OTHER_LEVEL, NONE_LEVEL]
        seen = Counter(_level(v, kept) for v in values)
        for level in levels:
            if seen[level]:
                columns.append({"name": f"{name}={level}", "feature": name, "level": level})
    return columns


def levels_of(columns: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for column in columns:
        level = column.get("level")
        if level is not None and level not in (OTHER_LEVEL, NONE_LEVEL):
            found.setdefault(column["feature"], []).append(level)
    return found


def encode(
    row: Mapping[str, Any],
    columns: Sequence[Mapping[str, Any]],
    levels: Mapping[str, list[str]] | None = None,
) -> list[float]:
    """The row's encoded values, one per column (before standardizing); `levels` is
    `levels_of(columns)`, passed in when encoding many rows."""
    levels = levels if levels is not None else levels_of(columns)
    seen: dict[str, str] = {}
    values: list[float] = []
    for column in columns:
        feature = column["feature"]
        if "level" in column:
            level = seen.get(feature)
            if level is None:
                level = seen[feature] = _level(row.get(feature), levels.get(feature, []))
            values.append(1.0 if level == column["level"] else 0.0)
        else:
            raw = row.get(feature)
            values.append(float(raw) if raw is not None and _is_number(raw) else column["impute"])
    return values


def contributions(spec: Spec, row: Mapping[str, Any]) -> dict[str, float]:
    """Feature -> coefficient x standardized value, summed over the feature's columns."""
    columns = spec["columns"]
    levels = spec.get("levels")
    found: dict[str, float] = {}
    for column, value in zip(columns, encode(row, columns, levels), strict=True):
        z = (value - column["mean"]) / column["scale"]
        found[column["feature"]] = found.get(column["feature"], 0.0) + column["coef"] * z
    return found


def probability(spec: Spec, row: Mapping[str, Any]) -> float:
    logit = spec["intercept"] + sum(contributions(spec, row).values())
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    return math.exp(logit) / (1.0 + math.exp(logit))


def _shown(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


def factors(spec: Spec, row: Mapping[str, Any], top: int = TOP_FACTORS) -> list[dict[str, Any]]:
    """The top positive then the top negative factors, largest first."""
    parts = contributions(spec, row)
    ranked = sorted(parts.items(), key=lambda item: -abs(item[1]))
    positive = [(n, c) for n, c in ranked if c > 0][:top]
    negative = [(n, c) for n, c in ranked if c < 0][:top]
    return [
        {"feature": name, "value": _shown(row.get(name)), "contribution": round(c, 4)}
        for name, c in positive + negative
    ]


def band_of(spec: Spec, p: float) -> str:
    """hot, warm or cold by the model's thresholds (the training history's top shares)."""
    bands = spec["bands"]
    if p >= bands["hot"]:
        return "hot"
    return "warm" if p >= bands["warm"] else "cold"
