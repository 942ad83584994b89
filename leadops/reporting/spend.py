"""Marketing spend per lead source (config/spend.yaml) and the cost per lead it gives."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection

from leadops.core.configfile import ConfigError
from leadops.models import LEADS
from leadops.reporting.kpi_figures import KpiReport, SourceCost
from leadops.reporting.kpi_sql import NO_SOURCE


def load_spend(config_dir: Path) -> tuple[str, dict[str, float]]:
    """Marketing spend per lead source from config/spend.yaml (absent file: no spend)."""
    path = config_dir / "spend.yaml"
    if not path.exists():
        return "USD", {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(path, None, f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(path, None, "expected a mapping with `currency` and `sources`")
    currency = str(data.get("currency", "USD"))
    sources = data.get("sources") or {}
    if not isinstance(sources, dict):
        raise ConfigError(path, None, "`sources` must map a lead source to its spend")
    spend: dict[str, float] = {}
    for source, amount in sources.items():
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            raise ConfigError(
                path, None, f"sources.{source}: spend must be a number >= 0, got {amount!r}"
            )
        spend[str(source)] = float(amount)
    return currency, spend


def costs(conn: Connection, spend: dict[str, float], report: KpiReport) -> None:
    rows = conn.execute(sa.select(LEADS.c.source, sa.func.count()).group_by(LEADS.c.source)).all()
    leads = {source or NO_SOURCE: int(n) for source, n in rows}
    for source in sorted(set(leads) | set(spend)):
        n = leads.get(source, 0)
        amount = spend.get(source)
        cpl = amount / n if amount is not None and n else None
        report.costs.append(SourceCost(source, n, amount, cpl))
