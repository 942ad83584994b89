"""Value mapping, shared by every source: a source's values as lead values (stage names,
consent words, yes/no, country names), its dates in the formats it declares, industries
under their configured names, and the ready mappings for CRM exports (`--mapping`).

A ready mapping is a YAML file (see `MappingFile`): `hubspot` and `salesforce` ship in
leadops/intake/mappings/; a file of that name in <config dir>/mappings/ takes its place,
and any path to a .yaml file works too.
"""

from __future__ import annotations

import importlib.resources
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from leadops.core.clock import parse_instant
from leadops.core.configfile import load_model
from leadops.intake.config import IntakeConfig, MappingFile, ValueMapping, fold, industry_key
from leadops.models.properties import PropertiesConfig, load_properties

if TYPE_CHECKING:
    from leadops.engagement.scoring import ScoringConfig

SHIPPED = ("hubspot", "salesforce")


class MappingError(ValueError):
    """A mapping name or file that cannot be used; the message says which and why."""


def load_mapping(name: str, config_dir: Path) -> MappingFile:
    """A ready mapping by name (<config dir>/mappings/NAME.yaml, else the shipped one) or
    by path. Raises MappingError for an unknown name, ConfigError for a bad file."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise MappingError(f"mapping file {name}: no such file")
        return load_model(path, MappingFile)
    local = config_dir / "mappings" / f"{name}.yaml"
    if local.is_file():
        return load_model(local, MappingFile)
    if name not in SHIPPED:
        raise MappingError(
            f"unknown mapping {name!r}: use {', '.join(SHIPPED)}, a file in "
            f"{config_dir / 'mappings'}, or a path to a .yaml mapping file"
        )
    resource = importlib.resources.files("leadops.intake") / "mappings" / f"{name}.yaml"
    with importlib.resources.as_file(resource) as shipped:
        return load_model(shipped, MappingFile)


@dataclass(frozen=True)
class Industries:
    """Industry aliases (folded) -> the industry's configured name."""

    names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, config: IntakeConfig) -> Industries:
        names: dict[str, str] = {}
        for industry, aliases in config.industries.items():
            for alias in [industry, *aliases]:
                names[industry_key(alias)] = industry
        return cls(names)

    def name(self, text: str) -> str | None:
        """The configured industry `text` names, or None when it names none."""
        return self.names.get(industry_key(text))


@dataclass(frozen=True)
class SourceRules:
    """How a source's records are read before validation, and what follows an import:
    its value mapping, the industry list, and the fit rules scored right after."""

    values: ValueMapping | None = None
    industries: Industries | None = None
    scoring: ScoringConfig | None = None
    properties: PropertiesConfig | None = None  # the declared custom properties


@dataclass
class Mapped:
    """A record's data with the source's values mapped, and the industry it gave when
    that is not one of the configured industries."""

    data: dict[str, object]
    unknown_industry: str | None = None
    industry_given: str | None = None


def _date(text: str, formats: list[str]) -> str | None:
    """`text` read with the first format that fits, as ISO 8601 (UTC without a zone)."""
    for pattern in formats:
        try:
            when = datetime.strptime(text, pattern)  # noqa: DTZ007  (no zone given: UTC)
        except ValueError:
            continue
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
    return None


def map_values(data: dict[str, object], rules: SourceRules | None) -> Mapped:
    """The record's values as lead values: each mapped column's listed values replaced,
    `created_at` in a declared format turned into ISO 8601, the industry named as
    configured. Values that are not listed are left as they are, for validation."""
    if rules is None:
        return Mapped(dict(data))
    out = dict(data)
    mapping = rules.values
    if mapping is not None:
        for column, pairs in mapping.values.items():
            value = out.get(column)
            if value is not None and fold(value) in pairs:
                out[column] = pairs[fold(value)]
        created = out.get("created_at")
        if mapping.date_formats and isinstance(created, str) and created.strip():
            text = " ".join(created.split())
            try:
                parse_instant(text)
            except (ValueError, OverflowError):
                out["created_at"] = _date(text, mapping.date_formats) or created
    result = Mapped(out)
    industry = out.get("industry")
    known = rules.industries.names if rules.industries is not None else {}
    if known and isinstance(industry, str) and industry.strip():
        name = rules.industries.name(industry) if rules.industries else None
        if name is None:
            result.unknown_industry = " ".join(industry.split())
        elif name != industry:
            out["industry"] = name
            result.industry_given = industry
    return result


def count_unknown(counter: Counter[str], mapped: Mapped) -> None:
    if mapped.unknown_industry:
        counter[mapped.unknown_industry[:100]] += 1


def scoring_rules(config_dir: Path) -> ScoringConfig | None:
    """The fit rules scored right after an import (None without config/scoring.yaml)."""
    from leadops.engagement.scoring import load_scoring

    return load_scoring(config_dir) if (config_dir / "scoring.yaml").is_file() else None


def csv_rules(
    config: IntakeConfig, config_dir: Path, mapping: MappingFile | None = None
) -> tuple[dict[str, str], SourceRules]:
    """A CSV file's header mapping and rules: `mapping` (a ready one) when given, else
    csv.mapping when set, else csv.column_mapping, values and date_formats."""
    if mapping is None and config.csv.mapping:
        mapping = load_mapping(config.csv.mapping, config_dir)
    if mapping is not None:
        return mapping.columns, source_rules(mapping, config, config_dir)
    return config.csv.column_mapping, source_rules(config.csv, config, config_dir)


def source_rules(values: ValueMapping, config: IntakeConfig, config_dir: Path) -> SourceRules:
    """The rules for a source (a CSV mapping, HubSpot, a form): its value mapping, the
    industries, fit scoring, the declared properties."""
    return SourceRules(
        values, Industries.of(config), scoring_rules(config_dir), load_properties(config_dir)
    )


def release_rules(
    config: IntakeConfig, config_dir: Path, source: str, mapping: MappingFile | None = None
) -> tuple[dict[str, str], SourceRules]:
    """The header mapping and rules a quarantined record of `source` is read with on
    release, the same as its import's: HubSpot's values for the HubSpot source (its
    properties are lead columns already), a form's for the form's source, else the CSV
    rules (`mapping`, the ready mapping the file was imported with, when given)."""
    if source == config.hubspot.source:
        return {}, source_rules(config.hubspot.value_mapping(), config, config_dir)
    form = next((form for form in config.forms if form.source_name == source), None)
    if form is not None:
        return {}, source_rules(form, config, config_dir)
    return csv_rules(config, config_dir, mapping)
