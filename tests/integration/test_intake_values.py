"""Value mapping, industries and fit points at import, through every source: a CSV file
with csv values and date formats, HubSpot (fake search API) and a web form."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import Engine
from werkzeug import Request, Response

from leadops.core.clock import SimulatedClock
from leadops.core.configfile import ConfigError, load_model
from leadops.core.settings import Settings
from leadops.intake.config import HubSpotSource, IntakeConfig, ValueMapping
from leadops.intake.hubspot import HubSpotClient
from leadops.intake.mapping import Industries, SourceRules, map_values
from leadops.intake.run import run_intake
from leadops.web.app import create_app

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _leads(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM leads")).mappings()
        return {str(r["email"]): dict(r) for r in rows}


def _ledger_sums(engine: Engine) -> dict[int, int]:
    with engine.connect() as connection:
        query = sa.text("SELECT lead_id, sum(points) FROM score_ledger GROUP BY lead_id")
        return {int(a): int(b) for a, b in connection.execute(query).all()}


def test_map_values_reads_listed_values_dates_and_industries() -> None:
    values = ValueMapping(
        values={
            "lifecycle_stage": {"Marketing Qualified Lead": "mql"},
            "email_consent": {"Ja": True},
        },
        date_formats=["%d/%m/%Y %H:%M", "%d/%m/%Y"],
    )
    rules = SourceRules(values, Industries({"hospital & health care": "healthcare"}))
    mapped = map_values(
        {
            "lifecycle_stage": "  marketing   qualified LEAD ",
            "email_consent": "JA",
            "created_at": "22/11/2026",
            "industry": "Hospital and Health Care",
        },
        rules,
    )
    assert mapped.data == {
        "lifecycle_stage": "mql",
        "email_consent": "true",
        "created_at": "2026-11-22T00:00:00+00:00",
        "industry": "healthcare",
    }
    assert mapped.industry_given == "Hospital and Health Care"
    left = map_values(
        {
            "lifecycle_stage": "prospect",
            "created_at": "2026-11-22T08:00Z",
            "industry": "Shipbuilding",
        },
        rules,
    )
    assert left.data["lifecycle_stage"] == "prospect"  # not listed: validation refuses it
    assert left.data["created_at"] == "2026-11-22T08:00Z"  # ISO 8601 stays as given
    assert left.unknown_industry == "Shipbuilding"


def test_a_mapping_to_a_value_leads_cannot_hold_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("csv:\n  values:\n    lifecycle_stage:\n      Hot: warm\n")
    with pytest.raises(
        ConfigError, match=r"bad.yaml:3: csv.values.lifecycle_stage: 'warm' is not one of"
    ):
        load_model(path, IntakeConfig)
    path.write_text("industries:\n  health: [pharma]\n  pharma: []\n")
    with pytest.raises(ConfigError, match="listed under both health and pharma"):
        load_model(path, IntakeConfig)


def test_hubspot_values_are_mapped_and_fit_points_scored_at_import(
    sqlite_engine: Engine, httpserver: HTTPServer, settings: Settings
) -> None:
    contact = {
        "id": "77",
        "properties": {
            "email": "ines@clinic.example",
            "jobtitle": "Chief Medical Officer",
            "numemployees": "120",
            "industry": "HOSPITAL_HEALTH_CARE",
            "country": "Deutschland",
            "lifecyclestage": "marketingqualifiedlead",
        },
    }

    def handle(request: Request) -> Response:
        return Response(
            json.dumps({"total": 1, "results": [contact]}), content_type="application/json"
        )

    httpserver.expect_request("/crm/v3/objects/contacts/search").respond_with_handler(handle)
    hubspot = HubSpotSource(
        enabled=True,
        values={"country": {"Deutschland": "DE"}},
    )
    config = IntakeConfig(hubspot=hubspot, industries={"healthcare": ["hospital_health_care"]})
    config.csv.enabled = False
    client = HubSpotClient(base_url=httpserver.url_for("/"), token="t", sleep=lambda _: None)
    run = run_intake(
        sqlite_engine, settings, now=NOW, sources=["hubspot"], config=config, hubspot=client
    )
    assert run.rows()[0]["created"] == 1
    lead = _leads(sqlite_engine)["ines@clinic.example"]
    assert (lead["lifecycle_stage"], lead["country"], lead["industry"]) == (
        "mql",
        "DE",
        "healthcare",
    )
    # fit: c-level, 50-199 employees, target industry, served country (config/scoring.yaml)
    assert lead["score"] > 0 and lead["score"] == _ledger_sums(sqlite_engine)[int(lead["id"])]


def test_a_form_lead_gets_its_fit_points_at_once(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADOPS_FORM_WEBINAR_SECRET", "webinar-secret-0123456789")
    monkeypatch.setenv("LEADOPS_FORM_CONTACT_US_SECRET", "contact-secret-0123456789")
    client = TestClient(create_app(settings, engine, SimulatedClock(NOW)))
    response = client.post(
        "/forms/lead?form=contact-us",
        json={"email": "ceo@acme.example", "job_title": "CEO", "country": "United Kingdom"},
        headers={"X-Leadops-Form-Secret": "contact-secret-0123456789"},
    )
    assert response.status_code < 300, response.text
    lead = _leads(engine)["ceo@acme.example"]
    assert lead["score"] > 0 and lead["score"] == _ledger_sums(engine)[int(lead["id"])]


def test_industry_aliases_read_and_as_ampersand_both_ways() -> None:
    config = IntakeConfig(industries={"logistics": ["logistics and supply chain"]})
    known = Industries.of(config)
    assert known.name("Logistics & Supply Chain") == "logistics"
    assert known.name("logistics and  supply chain") == "logistics"
    with pytest.raises(ValueError, match="listed under both"):
        IntakeConfig(industries={"logistics": ["supply and demand"], "retail": ["Supply & Demand"]})
