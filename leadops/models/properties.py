"""Custom lead properties (config/properties.yaml): their declarations, how a source's
value is read into one, and the property tests that segments, scoring, the SQL gate and
routing share.

A property holds one value per lead in `leads.properties` (name -> value). Only declared
properties are ever stored, each read by its type: `text`, `number`, `boolean`, `choice`
(one of `values`) or `date` (ISO 8601, stored as YYYY-MM-DD). A value that cannot be read
is refused with a reason naming the property, never stored as given.

A test names a property and what it must hold:
  known / unknown          the lead has (or has not) a value for it
  [a, b, ...]              the value is one of these (text and choice compare ignoring case)
  {at_least: n, below: m}  a number within bounds
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadops.core.configfile import ConfigError, line_of, load_model, read_yaml

PropertyType = Literal["text", "number", "boolean", "choice", "date"]
TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "0"})
Value = str | int | float | bool


class PropertyDef(BaseModel):
    """One declared property."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    type: PropertyType = "text"
    values: tuple[str, ...] | None = Field(
        default=None, description="the allowed values of a choice property"
    )
    max_length: int = Field(default=200, ge=1, le=2000)
    label: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _choices(self) -> PropertyDef:
        if self.type == "choice" and not self.values:
            raise ValueError("values: a choice property lists its allowed values")
        if self.type != "choice" and self.values is not None:
            raise ValueError("values: only a choice property lists allowed values")
        return self

    def read(self, given: object) -> Value | None:
        """The value as stored, or None for a blank one; ValueError says why it cannot be read."""
        if given is None or (isinstance(given, str) and not given.strip()):
            return None
        text = " ".join(str(given).split())
        if self.type == "number":
            if isinstance(given, bool):
                raise ValueError(f"{self.name} {text[:100]!r} is not a number")
            try:
                number = float(text.replace(",", "")) if not isinstance(given, int) else given
            except ValueError:
                raise ValueError(f"{self.name} {text[:100]!r} is not a number") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(f"{self.name} {text[:100]!r} is not a number")
            return int(number) if float(number).is_integer() else number
        if self.type == "boolean":
            word = text.lower()
            if word in TRUE_WORDS or given is True:
                return True
            if word in FALSE_WORDS or given is False:
                return False
            raise ValueError(f"{self.name} {text[:100]!r} is not true/false")
        if self.type == "date":
            try:
                return date.fromisoformat(text[:10]).isoformat()
            except ValueError:
                raise ValueError(f"{self.name} {text[:100]!r} is not a date (YYYY-MM-DD)") from None
        if self.type == "choice":
            assert self.values is not None
            for allowed in self.values:
                if allowed.lower() == text.lower():
                    return allowed
            raise ValueError(f"{self.name} {text[:100]!r} is not one of {', '.join(self.values)}")
        if len(text) > self.max_length:
            raise ValueError(f"{self.name} is {len(text)} characters (max {self.max_length})")
        return text


class PropertiesConfig(BaseModel):
    """config/properties.yaml: the declared properties."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    properties: tuple[PropertyDef, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> PropertiesConfig:
        names = [p.name for p in self.properties]
        for index, name in enumerate(names):
            if names.index(name) != index:
                raise ValueError(f"properties.{index}.name: {name!r} is declared twice")
        return self

    def get(self, name: str) -> PropertyDef | None:
        return next((p for p in self.properties if p.name == name), None)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.properties]


def load_properties(config_dir: Path) -> PropertiesConfig:
    """config/properties.yaml, or no properties without it."""
    path = config_dir / "properties.yaml"
    if not path.exists():
        return PropertiesConfig()
    return load_model(path, PropertiesConfig)


# -- tests ---------------------------------------------------------------------------------


class Bounds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at_least: float | None = None
    below: float | None = None


PropertyTest = Literal["known", "unknown"] | tuple[Value, ...] | Bounds
PropertyTests = dict[str, PropertyTest]


def property_mismatch(tests: PropertyTests | None, values: Mapping[str, Any] | None) -> str | None:
    """The first test the lead's property values fail, in words; None when all hold."""
    values = values or {}
    for name, test in (tests or {}).items():
        value = values.get(name)
        if test == "known":
            if value is None:
                return f"{name} is not known"
        elif test == "unknown":
            if value is not None:
                return f"{name} is {value!r}, not unknown"
        elif isinstance(test, Bounds):
            number = None if isinstance(value, bool) else value
            if not isinstance(number, int | float):
                return f"{name} is {value!r}, not a number"
            if test.at_least is not None and number < test.at_least:
                return f"{name} is {value!r}, below {test.at_least:g}"
            if test.below is not None and number >= test.below:
                return f"{name} is {value!r}, not below {test.below:g}"
        elif not any(_same(value, allowed) for allowed in test):
            return f"{name} is {value!r}, not one of {', '.join(str(a) for a in test)}"
    return None


def _same(value: Any, allowed: Value) -> bool:
    if value is None:
        return False
    if isinstance(value, str) and isinstance(allowed, str):
        return value.lower() == allowed.lower()
    return bool(value == allowed)


def check_tests(
    path: Path, declared: PropertiesConfig, tests: Iterable[tuple[tuple[int | str, ...], Any]]
) -> None:
    """Refuse tests on undeclared properties, and listed values a choice does not allow;
    `tests` are (location in the file, PropertyTests). Errors name the file and line."""
    node = None
    for loc, group in tests:
        for name, test in (group or {}).items():
            definition = declared.get(name)
            reason = None
            if definition is None:
                known = ", ".join(declared.names) or "none: see config/properties.yaml"
                reason = f"unknown property {name!r} (declared: {known})"
            elif isinstance(test, tuple) and definition.values is not None:
                wrong = [v for v in test if not any(_same(v, a) for a in definition.values)]
                if wrong:
                    reason = f"{name}: {wrong[0]!r} is not one of {', '.join(definition.values)}"
            elif isinstance(test, Bounds) and definition.type != "number":
                reason = f"{name}: at_least / below need a number property"
            if reason is not None:
                if node is None:
                    _, node = read_yaml(path)
                where = ".".join(str(part) for part in (*loc, name))
                raise ConfigError(path, line_of(node, (*loc, name)), f"{where}: {reason}")
