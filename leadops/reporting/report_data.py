"""The report as data for `leadops report --format json|csv`: every section, numbers as
numbers (a ratio is 0.25, not "25.0%"; a duration is 1363.1 with its unit "h").

The sections are read off the report's data classes field by field, not off the display
tables, so a figure added to `KpiReport` (or `EscalationStats`) appears here by itself:
a number lands in `kpis` (or `escalations`) as a (name, value, unit) row, a list of data
classes becomes a section of its own, a mapping or a list of pairs a section of
(key, value) rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from leadops.reporting import lift
from leadops.reporting.kpi_figures import KpiReport
from leadops.reporting.revenue import ATTRIBUTION
from leadops.reporting.stuck import StuckReport

# Section names for the report's list fields (others keep their field name).
SECTION_NAMES = {"costs": "cost_per_lead", "missing": "not_available"}
# Read-only text the report carries beside its figures (the revenue attribution rule).
NOTES = {"revenue_attribution": ATTRIBUTION}
# Column names of the (key, value) sections (others: key, value).
PAIR_COLUMNS = {
    "score_histogram": ("score", "leads"),
    "sends_per_day": ("day", "sent"),
    "never_followed_up_by_stage": ("stage", "leads"),
    "flagged_by_reason": ("reason", "leads"),
    "lead_status": ("status", "leads"),
    "bands": ("band", "leads"),
    "missing": ("figure", "why"),
}
# Read-only figures computed from the fields (properties of KpiReport).
DERIVED = ("nurture_conversion",)
META = ("now", "currency")
RATIO_WORDS = ("conversion", "within", "rate", "share")
DIGITS = 4


def unit_of(name: str, currency: str = "currency") -> str:
    """The unit of a figure, from its name: h, min, ratio (0 to 1), points, the currency
    (an amount) or count."""
    if name.endswith("_hours"):
        return "h"
    if name.endswith("_minutes"):
        return "min"
    if name.endswith("_days"):
        return "d"
    if any(word in name for word in RATIO_WORDS):
        return "ratio"
    if name.startswith("score"):
        return "points"
    if "_amount_" in name:
        return currency
    return "count"


def _number(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, DIGITS)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _flat(row: Mapping[str, Any]) -> dict[str, Any]:
    """A data class row with nested mappings spread into `field_key` columns."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            flat |= {f"{key}_{k}": _number(v) for k, v in value.items()}
        else:
            flat[key] = _number(value)
    return flat


def _pairs(name: str, value: Mapping[Any, Any] | list[Any]) -> list[dict[str, Any]]:
    key_column, value_column = PAIR_COLUMNS.get(name, ("key", "value"))
    items = value.items() if isinstance(value, Mapping) else value
    return [{key_column: _number(k), value_column: _number(v)} for k, v in items]


def _figures(
    source: Any, currency: str, exclude: tuple[str, ...] = ()
) -> tuple[list[dict[str, Any]], dict]:
    """(name, value, unit) rows of a data class's numbers, and its other fields by name."""
    rows: list[dict[str, Any]] = []
    others: dict[str, Any] = {}
    for item in dataclasses.fields(source):
        value = getattr(source, item.name)
        if item.name in exclude:
            continue
        if value is None or isinstance(value, int | float):
            unit = unit_of(item.name, currency)
            rows.append({"name": item.name, "value": _number(value), "unit": unit})
        else:
            others[item.name] = value
    return rows, others


def report_sections(kpis: KpiReport, stuck: StuckReport) -> dict[str, list[dict[str, Any]]]:
    """Every section of the report by name, each a list of rows of plain values."""
    figures, others = _figures(kpis, kpis.currency, exclude=META)
    figures += [
        {"name": name, "value": _number(getattr(kpis, name)), "unit": unit_of(name)}
        for name in DERIVED
    ]
    sections: dict[str, list[dict[str, Any]]] = {
        "report": [
            {
                "generated_at": kpis.now.isoformat(),
                "currency": kpis.currency,
                "stuck_total": stuck.total,
                "stuck_threshold": stuck.threshold,
                "stuck_over_threshold": stuck.over_threshold,
            }
        ],
        "kpis": figures,
    }
    for name, value in others.items():
        section = SECTION_NAMES.get(name, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            rows, nested = _figures(value, kpis.currency)
            for sub, sub_value in nested.items():
                rows += [
                    {"name": f"{sub}_{r[0]}", "value": r[1], "unit": "count"}
                    for r in (sub_value.items() if isinstance(sub_value, Mapping) else sub_value)
                ]
            sections[section] = rows
        elif isinstance(value, Mapping) or (value and not dataclasses.is_dataclass(value[0])):
            sections[section] = _pairs(name, value)
        else:
            sections[section] = [_flat(dataclasses.asdict(item)) for item in value]
    sections["notes"] = [{"note": name, "text": text} for name, text in NOTES.items()]
    sections["stuck_work"] = [
        {
            "check": f.check.key,
            "count": f.count,
            "counts_toward_total": f.check.counts,
            "what": f.check.title,
            "action": f.check.action,
        }
        for f in stuck.findings
    ]
    return sections


def calibration_sections(kpis: KpiReport) -> dict[str, list[dict[str, Any]]]:
    """The calibration alone (`leadops scoring calibration --format json|csv`): who is in
    it and the rules of its verdicts, conversion by group and the lift of each rule."""
    return {
        "calibration_summary": [
            {
                "generated_at": kpis.now.isoformat(),
                "leads": kpis.calibration_leads,
                "not_scored": kpis.calibration_not_scored,
                "confidence": lift.CONFIDENCE,
                "min_group": lift.MIN_GROUP,
                "min_conversions": lift.MIN_CONVERSIONS,
            }
        ],
        "calibration": [_flat(dataclasses.asdict(g)) for g in kpis.calibration],
        "rule_lift": [_flat(dataclasses.asdict(r)) for r in kpis.rule_lift],
    }
