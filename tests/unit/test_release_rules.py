"""Which rules a quarantined record is released with: its source's, as at its import."""

from __future__ import annotations

from leadops.intake.config import IntakeConfig
from leadops.intake.mapping import load_mapping, map_values, release_rules
from tests.conftest import ROOT

CONFIG = IntakeConfig.model_validate(
    {
        "csv": {
            "column_mapping": {"Land": "country"},
            "values": {"country": {"deutschland": "DE"}},
            "date_formats": ["%d.%m.%Y"],
        },
        "hubspot": {"source": "crm", "lifecycle_stages": {"marketingqualifiedlead": "mql"}},
        "forms": [
            {
                "key": "demo",
                "secret_env": "DEMO_SECRET",
                "fields": {"email": "email"},
                "values": {"country": {"españa": "ES"}},
            }
        ],
        "industries": {"software": ["saas"]},
    }
)
RAW = {
    "country": "Deutschland",
    "lifecycle_stage": "marketingqualifiedlead",
    "created_at": "22.11.2026",
    "industry": "SaaS",
}


def test_a_csv_record_is_read_with_the_csv_columns_values_and_dates() -> None:
    columns, rules = release_rules(CONFIG, ROOT / "config", "csv:leads.csv")
    assert columns == {"Land": "country"}
    mapped = map_values(RAW, rules).data
    assert (mapped["country"], mapped["industry"]) == ("DE", "software")
    assert str(mapped["created_at"]).startswith("2026-11-22")
    assert mapped["lifecycle_stage"] == "marketingqualifiedlead"  # HubSpot's, not csv's


def test_hubspot_and_form_records_are_read_with_their_own_values() -> None:
    columns, rules = release_rules(CONFIG, ROOT / "config", "crm")
    assert columns == {} and map_values(RAW, rules).data["lifecycle_stage"] == "mql"
    assert map_values(RAW, rules).data["country"] == "Deutschland"

    columns, rules = release_rules(CONFIG, ROOT / "config", "web-form:demo")
    assert columns == {}
    assert map_values({"country": "España"}, rules).data["country"] == "ES"


def test_a_ready_mapping_given_reads_csv_records_only() -> None:
    hubspot = load_mapping("hubspot", ROOT / "config")
    columns, rules = release_rules(CONFIG, ROOT / "config", "csv:export.csv", hubspot)
    assert columns == hubspot.columns
    assert rules.values is not None and rules.values.values == hubspot.values
    columns, rules = release_rules(CONFIG, ROOT / "config", "crm", hubspot)
    assert columns == {} and map_values(RAW, rules).data["lifecycle_stage"] == "mql"
