"""Custom properties: reading values by type, property tests, grades and bands, the trust
boundary of intake (declared only, typed, flagged), and config errors naming file:line."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadops.core.configfile import ConfigError
from leadops.engagement.scoring import Bands, Grades, band_of, grade_of, load_scoring
from leadops.intake.config import HubSpotSource, load_intake_config
from leadops.intake.hubspot import contact_record
from leadops.intake.merge import merged_properties
from leadops.intake.validate import normalise_record
from leadops.models.properties import (
    Bounds,
    PropertiesConfig,
    PropertyDef,
    load_properties,
    property_mismatch,
)
from leadops.nurture.segments import load_segments_file
from tests.conftest import ROOT

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BANT = load_properties(ROOT / "config")
DECLARED = PropertiesConfig(
    properties=(
        *BANT.properties,
        PropertyDef(name="seats", type="number"),
        PropertyDef(name="trial", type="boolean"),
        PropertyDef(name="renewal", type="date"),
        PropertyDef(name="note", max_length=5),
    )
)


@pytest.mark.parametrize(
    ("name", "given", "stored"),
    [
        ("timeline", " This_Quarter ", "this_quarter"),
        ("seats", "1,200", 1200),
        ("seats", "2.5", 2.5),
        ("trial", "Yes", True),
        ("trial", "no", False),
        ("renewal", "2027-03-01T00:00:00Z", "2027-03-01"),
        ("note", "  ", None),
    ],
)
def test_values_are_read_by_their_type(name: str, given: str, stored: object) -> None:
    definition = DECLARED.get(name)
    assert definition is not None and definition.read(given) == stored


@pytest.mark.parametrize(
    ("name", "given", "why"),
    [
        ("timeline", "tomorrow", "not one of now, this_quarter"),
        ("seats", "many", "not a number"),
        ("seats", "nan", "not a number"),
        ("trial", "perhaps", "not true/false"),
        ("renewal", "next year", "not a date"),
        ("note", "far too long", "max 5"),
    ],
)
def test_values_a_type_refuses_say_why(name: str, given: str, why: str) -> None:
    definition = DECLARED.get(name)
    assert definition is not None
    with pytest.raises(ValueError, match=why):
        definition.read(given)


def test_property_tests() -> None:
    values = {"need": "High", "seats": 40}
    assert property_mismatch({"need": "known", "timeline": "unknown"}, values) is None
    assert property_mismatch({"need": ("high", "medium")}, values) is None
    assert property_mismatch({"timeline": "known"}, values) == "timeline is not known"
    assert property_mismatch({"need": ("low",)}, values) == "need is 'High', not one of low"
    assert property_mismatch({"seats": Bounds(at_least=50)}, values) == "seats is 40, below 50"
    assert property_mismatch({"seats": Bounds(below=40)}, values) == "seats is 40, not below 40"
    assert property_mismatch({"need": "known"}, None) == "need is not known"


def test_grades_keep_fit_and_engagement_apart() -> None:
    grades, bands = Grades(), Bands()
    assert [grade_of(grades, fit, 50) for fit in (30, 20, 10, 9)] == ["A1", "B1", "C1", "D1"]
    assert [grade_of(grades, 30, e) for e in (40, 15, 14, -10)] == ["A1", "A2", "A3", "A3"]
    assert [band_of(bands, g) for g in ("A1", "B2", "D3")] == ["hot", "warm", "cold"]
    with pytest.raises(ValueError, match="more points than the next"):
        Grades(fit={"A": 10, "B": 20, "C": 5})
    with pytest.raises(ValueError, match="listed under hot too"):
        Bands(hot=("A1",), warm=("A1",))


def test_intake_stores_declared_properties_and_flags_the_rest() -> None:
    outcome = normalise_record(
        {
            "email": "ana@acme.example",
            "properties.need": "HIGH",
            "properties.timeline": "soonish",
            "properties.shoe_size": "42",
        },
        default_region="GB",
        default_timezone="Europe/London",
        now=NOW,
        properties=BANT,
    )
    assert outcome.record is not None and outcome.record.properties == {"need": "high"}
    assert sorted((i.field, i.reason) for i in outcome.issues) == [
        ("properties.shoe_size", "unknown_property"),
        ("properties.timeline", "invalid_property"),
    ]


def test_a_form_only_fills_properties_without_a_value() -> None:
    current = {"need": "low"}
    incoming = {"need": "high", "timeline": "now", "budget": "approved"}
    form = frozenset({"properties.need", "properties.timeline"})
    assert merged_properties(current, incoming, form) == {"need": "low", "timeline": "now"}
    assert merged_properties(current, incoming, None) == incoming  # CSV, CRM: they set them


def test_hubspot_properties_map_to_declared_properties() -> None:
    config = HubSpotSource(properties={"email": "email", "properties.budget": "bant_budget"})
    record = contact_record(
        {"id": "7", "properties": {"email": "a@b.example", "bant_budget": "x"}}, config
    )
    assert record.data["properties.budget"] == "x"


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    return folder


def test_config_naming_an_undeclared_property_names_file_and_line(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    scoring = folder / "scoring.yaml"
    scoring.write_text(scoring.read_text().replace("{need: [high]}", "{nede: [high]}"))
    with pytest.raises(
        ConfigError, match=r"scoring.yaml:\d+: fit.\d+.when.properties.nede: unknown"
    ):
        load_scoring(folder)

    segments = folder / "segments.yaml"
    segments.write_text(
        segments.read_text().replace(
            "      lifecycle_stage: [mql]\n",
            "      lifecycle_stage: [mql]\n      properties: {need: [urgent]}\n",
        )
    )
    with pytest.raises(
        ConfigError, match=r"segments.yaml:\d+: .*need: 'urgent' is not one of high"
    ):
        load_segments_file(segments, {"educate", "connect", "offer", "re-engage"})

    intake = folder / "intake.yaml"
    intake.write_text(intake.read_text().replace("properties.budget", "properties.budgett"))
    with pytest.raises(
        ConfigError, match=r"intake.yaml:\d+: csv.column_mapping: properties.budgett"
    ):
        load_intake_config(folder)
