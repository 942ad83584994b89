"""The intake sources, from config/intake.yaml: CSV drop folder and column mapping,
HubSpot on/off and its property mapping, web forms and the env vars holding their secrets.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from leadops.core.configfile import ConfigError, line_of, load_model, read_yaml
from leadops.models.properties import load_properties

# The lead fields a CSV file may carry, in the order the sample file uses.
CANONICAL_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "company_size",
    "industry",
    "country",
    "timezone",
    "lifecycle_stage",
    "source",
    "email_consent",
    "whatsapp_consent",
    "sms_consent",
    "created_at",
)
# Every lead field a source column may map to.
LEAD_COLUMNS = frozenset({*CANONICAL_COLUMNS, "crm_id"})
# A custom property (config/properties.yaml) as a mapping target: properties.NAME.
PROPERTY_TARGET = re.compile(r"^properties\.[a-z][a-z0-9_]{0,39}$")


def is_target(name: str, columns: frozenset[str] = LEAD_COLUMNS) -> bool:
    """Whether a source field may map to `name`: one of `columns` or properties.NAME."""
    return name in columns or PROPERTY_TARGET.match(name) is not None


def property_targets(mapping: dict[str, str]) -> list[str]:
    """The property names a mapping's targets (source field -> target) set."""
    return [v.split(".", 1)[1] for v in mapping.values() if PROPERTY_TARGET.match(v)]


DEFAULT_HUBSPOT_PROPERTIES = {
    "email": "email",
    "first_name": "firstname",
    "last_name": "lastname",
    "phone": "phone",
    "company": "company",
    "job_title": "jobtitle",
    "company_size": "numemployees",
    "industry": "industry",
    "country": "country",
    "lifecycle_stage": "lifecyclestage",
    "created_at": "createdate",
}
DEFAULT_HUBSPOT_STAGES = {
    "subscriber": "subscriber",
    "lead": "lead",
    "marketingqualifiedlead": "mql",
    "salesqualifiedlead": "sql",
    "opportunity": "opportunity",
    "customer": "customer",
    "evangelist": "customer",
    "other": "lead",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _text(value: object) -> str:
    """A YAML scalar as text: `true`/`false` for booleans, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fold(value: object) -> str:
    """How source values are compared: spaces collapsed, case ignored."""
    return " ".join(_text(value).split()).lower()


def industry_key(value: object) -> str:
    """How industry names and aliases are compared: folded, and "and" the same as "&"
    ("Logistics & Supply Chain" is "logistics and supply chain")."""
    return fold(value).replace(" and ", " & ")


# What a mapped value must be, per lead column with a fixed vocabulary.
BOOLEAN_COLUMNS = frozenset({"email_consent", "whatsapp_consent", "sms_consent"})


class ValueMapping(_Strict):
    """Per lead column, source values and what they mean, and the date formats a source
    writes `created_at` in: one mapping for every source (CSV, HubSpot, forms)."""

    values: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="lead column -> {value as the source writes it -> lead value}; "
        "matched ignoring case and extra spaces; values not listed are read as they are",
    )
    date_formats: list[str] = Field(
        default_factory=list,
        description="strptime formats tried in order for created_at when it is not ISO "
        "8601, e.g. '%d/%m/%Y %H:%M' (day first); times without a zone are UTC",
    )

    @field_validator("values", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        return {
            column: (
                {fold(k): _text(v) for k, v in pairs.items()} if isinstance(pairs, dict) else pairs
            )
            for column, pairs in value.items()
        }

    @field_validator("values")
    @classmethod
    def _known_values(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        from leadops.models import LifecycleStage

        bad = sorted(column for column in value if not is_target(column))
        if bad:
            raise ValueError(
                f"values for unknown lead column(s) {', '.join(bad)}; "
                f"known: {', '.join(sorted(LEAD_COLUMNS))} and properties.NAME"
            )
        stages = {s.value for s in LifecycleStage}
        for column, pairs in value.items():
            allowed = (
                {"true", "false"}
                if column in BOOLEAN_COLUMNS
                else stages
                if column == "lifecycle_stage"
                else None
            )
            wrong = sorted({v for v in pairs.values() if allowed and v.lower() not in allowed})
            if wrong:
                raise ValueError(
                    f"{column}: {', '.join(repr(w) for w in wrong)} is not one of "
                    f"{', '.join(sorted(allowed or ()))}"
                )
        return value

    @field_validator("date_formats")
    @classmethod
    def _real_formats(cls, value: list[str]) -> list[str]:
        bad = [f for f in value if "%" not in f]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a strptime format (e.g. '%d/%m/%Y %H:%M')")
        return value


class MappingFile(ValueMapping):
    """A ready mapping for one kind of export (`leads import --mapping NAME|FILE`)."""

    description: str = Field(default="", description="what export this mapping reads")
    columns: dict[str, str] = Field(
        default_factory=dict, description="export header -> lead column (case-insensitive)"
    )

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_targets(value)


def _check_targets(mapping: dict[str, str]) -> dict[str, str]:
    bad = sorted(v for v in mapping.values() if not is_target(v))
    if bad:
        raise ValueError(
            f"maps to unknown lead column(s) {', '.join(bad)}; "
            f"known: {', '.join(sorted(LEAD_COLUMNS))} and properties.NAME (a declared "
            "property, config/properties.yaml)"
        )
    return mapping


class CsvSource(ValueMapping):
    enabled: bool = True
    drop_folder: Path | None = None  # default: <data dir>/inbox
    pattern: str = "*.csv"
    encoding: str = "utf-8"
    column_mapping: dict[str, str] = Field(default_factory=dict)
    mapping: str | None = Field(
        default=None,
        description="a ready mapping (hubspot, salesforce or a file) for the drop folder's "
        "files, used instead of column_mapping, values and date_formats",
    )

    @field_validator("column_mapping")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_targets(value)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc
        return value


class HubSpotSource(ValueMapping):
    enabled: bool = False
    source: str = "hubspot"
    page_size: int = Field(default=200, ge=1, le=200)
    result_cap: int = Field(default=10_000, ge=1, le=10_000)  # the search API's limit
    requests_per_second: float = Field(default=4.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    timeout_seconds: float = Field(default=30.0, gt=0)
    lag_seconds: int = Field(default=60, ge=0)
    properties: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_HUBSPOT_PROPERTIES))
    lifecycle_stages: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_HUBSPOT_STAGES))
    deals: bool = Field(
        default=False,
        description="also read deals modified since the last run into crm_deals (revenue)",
    )
    deal_stages: dict[str, Literal["open", "won", "lost"]] = Field(
        default_factory=dict,
        description="deal stage id -> open/won/lost; stages not listed follow the "
        "pipeline's own metadata (closed with probability 1: won, closed: lost)",
    )

    @field_validator("properties")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        _check_targets({v: k for k, v in value.items()})
        ours = sorted(name for name in value.values() if name.lower().startswith("leadops_"))
        if ours:
            raise ValueError(
                f"HubSpot properties {', '.join(ours)} are written by leadops itself "
                "(the CRM write-back) and cannot be read back as lead data"
            )
        return value

    def value_mapping(self) -> ValueMapping:
        """`values` with `lifecycle_stages` as the lifecycle_stage value map."""
        values = dict(self.values)
        values["lifecycle_stage"] = {
            **{fold(k): v for k, v in self.lifecycle_stages.items()},
            **values.get("lifecycle_stage", {}),
        }
        return ValueMapping(values=values, date_formats=self.date_formats)


# The lead fields a web form may never set: anyone who can post the form could otherwise
# move a lead's stage, consent or unsubscribe, or rewrite where and when it came from.
TRUSTED_ONLY_COLUMNS = frozenset(
    {
        "lifecycle_stage",
        "source",
        "email_consent",
        "whatsapp_consent",
        "sms_consent",
        "created_at",
        "crm_id",
    }
)
# The lead fields a web form may fill (only when empty on an existing lead).
FORM_COLUMNS = LEAD_COLUMNS - TRUSTED_ONLY_COLUMNS


class FormSource(ValueMapping):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    auth: Literal["secret", "signature"] = "secret"
    secret_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    source: str | None = None  # default web-form:<key>
    # form field -> lead column, for the columns in FORM_COLUMNS or a declared property
    # (properties.NAME); other fields are kept with the submission (and a hand-raise's
    # event) but never set on the lead
    fields: dict[str, str] = Field(default_factory=dict)
    double_opt_in: bool = True
    hand_raise: Literal["demo_requested", "contact_request"] | None = None

    @field_validator("fields")
    @classmethod
    def _form_columns(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({v for v in value.values() if not is_target(v, FORM_COLUMNS)})
        if bad:
            raise ValueError(
                f"a form may not set {', '.join(bad)}; "
                f"it may fill: {', '.join(sorted(FORM_COLUMNS))} and properties.NAME"
            )
        return {k.lower(): v for k, v in value.items()}

    @property
    def source_name(self) -> str:
        return self.source or f"web-form:{self.key}"

    def secret(self) -> str | None:
        """The form's shared secret from the environment variable it names."""
        value = os.environ.get(self.secret_env, "")
        return value or None


class IntakeConfig(_Strict):
    csv: CsvSource = Field(default_factory=CsvSource)
    hubspot: HubSpotSource = Field(default_factory=HubSpotSource)
    forms: list[FormSource] = Field(default_factory=list)
    confirmation_ttl_hours: int = Field(default=72, ge=1)
    industries: dict[str, list[str]] = Field(
        default_factory=dict,
        description="industry -> its aliases; every source's industry is stored as the "
        "industry it names (case and spaces ignored); others are kept as given and counted",
    )

    @field_validator("industries", mode="before")
    @classmethod
    def _alias_lists(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): [] if v is None else v for k, v in value.items()}
        return value

    @field_validator("industries")
    @classmethod
    def _one_industry_per_alias(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for industry, aliases in value.items():
            for alias in [industry, *aliases]:
                earlier = seen.setdefault(industry_key(alias), industry)
                if earlier != industry:
                    raise ValueError(f"{alias!r} is listed under both {earlier} and {industry}")
        return value

    def form(self, key: str) -> FormSource | None:
        return next((form for form in self.forms if form.key == key), None)


def load_intake_config(config_dir: Path) -> IntakeConfig:
    """config/intake.yaml, or the defaults (CSV drop folder on, HubSpot off) without it.
    Every properties.NAME it maps to must be declared in config/properties.yaml."""
    path = config_dir / "intake.yaml"
    if not path.exists():
        return IntakeConfig()
    config = load_model(path, IntakeConfig)
    declared = load_properties(config_dir).names
    hubspot = {v: k for k, v in config.hubspot.properties.items()}
    where: list[tuple[tuple[int | str, ...], dict[str, str]]] = [
        (("csv", "column_mapping"), config.csv.column_mapping),
        (("hubspot", "properties"), hubspot),
        *((("forms", i, "fields"), form.fields) for i, form in enumerate(config.forms)),
    ]
    for loc, mapping in where:
        for name in property_targets(mapping):
            if name not in declared:
                _, node = read_yaml(path)
                raise ConfigError(
                    path,
                    line_of(node, loc),
                    f"{'.'.join(map(str, loc))}: properties.{name} is not declared in "
                    f"config/properties.yaml (declared: {', '.join(declared) or 'none'})",
                )
    return config
