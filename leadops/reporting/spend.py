"""Marketing spend per lead source (config/spend.yaml) and the cost per lead it gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection

from leadops.core.configfile import ConfigError
from leadops.models import LEADS
from leadops.reporting.kpi_figures import KpiReport, SourceCost
from leadops.reporting.kpi_sql import NO_SOURCE


@dataclass(frozen=True)
class LifetimeValue:
    """A customer's lifetime value: per source where given, else the deal amount times
    `multiplier` (1: the first deal is all it is worth)."""

    multiplier: float = 1.0
    sources: dict[str, float] = field(default_factory=dict)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(path, None, f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(path, None, "expected a mapping with `currency` and `sources`")
    return data


def _amount(path: Path, where: str, amount: object) -> float:
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
        raise ConfigError(path, None, f"{where}: must be a number >= 0, got {amount!r}")
    return float(amount)


def load_lifetime_value(config_dir: Path) -> LifetimeValue:
    """`lifetime_value:` of config/spend.yaml (absent: each deal is worth its amount)."""
    path = config_dir / "spend.yaml"
    if not path.exists():
        return LifetimeValue()
    section = _read(path).get("lifetime_value") or {}
    if not isinstance(section, dict) or set(section) - {"multiplier", "sources"}:
        raise ConfigError(
            path, None, "lifetime_value: expected a mapping with `multiplier` and `sources`"
        )
    multiplier = _amount(path, "lifetime_value.multiplier", section.get("multiplier", 1.0))
    sources = section.get("sources") or {}
    if not isinstance(sources, dict):
        raise ConfigError(path, None, "lifetime_value.sources must map a source to a value")
    values = {str(k): _amount(path, f"lifetime_value.sources.{k}", v) for k, v in sources.items()}
    return LifetimeValue(multiplier, values)


def load_spend(config_dir: Path) -> tuple[str, dict[str, float]]:
    """Marketing spend per lead source from config/spend.yaml (absent file: no spend)."""
    path = config_dir / "spend.yaml"
    if not path.exists():
        return "USD", {}
    data = _read(path)
    currency = str(data.get("currency", "USD"))
    sources = data.get("sources") or {}
    if not isinstance(sources, dict):
        raise ConfigError(path, None, "`sources` must map a lead source to its spend")
    spend: dict[str, float] = {}
    for source, amount in sources.items():
        spend[str(source)] = _amount(path, f"sources.{source}: spend", amount)
    return currency, spend


def costs(conn: Connection, spend: dict[str, float], report: KpiReport) -> None:
    rows = conn.execute(sa.select(LEADS.c.source, sa.func.count()).group_by(LEADS.c.source)).all()
    leads = {source or NO_SOURCE: int(n) for source, n in rows}
    for source in sorted(set(leads) | set(spend)):
        n = leads.get(source, 0)
        amount = spend.get(source)
        cpl = amount / n if amount is not None and n else None
        report.costs.append(SourceCost(source, n, amount, cpl))
