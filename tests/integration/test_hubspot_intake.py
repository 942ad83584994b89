"""HubSpot intake against a local fake search API: paging, the 10,000 cap, 429, 500s,
records the database refuses and a locked database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select
from werkzeug import Request, Response

from leadops.core.db import make_engine, session_scope, upgrade
from leadops.core.settings import Settings
from leadops.intake.config import HubSpotSource, IntakeConfig
from leadops.intake.hubspot import HubSpotClient, HubSpotError, load_cursor, pull_contacts
from leadops.intake.importer import import_in_savepoints, import_records
from leadops.intake.quarantine import release
from leadops.intake.records import RawRecord
from leadops.intake.run import IntakeRun, run_intake
from leadops.models import Lead, LeadSourceRecord, QuarantinedRecord

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BASE_MS = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "customer"]


class FakeHubSpot:
    """Contacts 1..n generated on the fly; behaves like the search endpoint, including the
    cap on `after`, and fails on chosen request numbers."""

    def __init__(self, n: int, *, cap: int = 10_000) -> None:
        self.n = n
        self.cap = cap
        self.modified = {i: BASE_MS + (i % 97) * 1000 for i in range(1, n + 1)}  # many ties
        self.failures: dict[int, Callable[[], Response]] = {}
        self.deleted: dict[int, set[int]] = {}  # request number -> ids deleted before it
        self.gone: set[int] = set()
        self.fail_from: int | None = None
        self.requests: list[dict[str, Any]] = []
        self.first_names: dict[int, str] = {}

    def contact(self, i: int) -> dict[str, Any]:
        return {
            "id": str(i),
            "properties": {
                "hs_object_id": str(i),
                "email": f"contact{i}@example.com",
                "firstname": self.first_names.get(i, f"first{i}"),
                "lastname": "LAST",
                "company": f"Company {i % 50}",
                "jobtitle": "VP Marketing" if i % 3 else "Engineer",
                "numemployees": "51-200",
                "industry": "software",
                "country": "Germany" if i % 2 else "US",
                "lifecyclestage": STAGES[i % len(STAGES)],
                "createdate": "2026-10-01T10:00:00.000Z",
                "lastmodifieddate": str(self.modified[i]),
            },
        }

    def handle(self, request: Request) -> Response:
        number = len(self.requests) + 1
        body = json.loads(request.get_data())
        self.requests.append(body)
        assert request.headers["Authorization"] == "Bearer test-token"
        if number in self.failures:
            return self.failures[number]()
        if self.fail_from is not None and number >= self.fail_from:
            return Response("internal error", status=500)
        limit, after = int(body["limit"]), int(body.get("after", "0"))
        assert 1 <= limit <= 200
        if after + limit > self.cap:
            return Response(json.dumps({"message": "cannot page past 10000"}), status=400)
        assert body["sorts"] == [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        self.gone |= self.deleted.get(number, set())
        ids = [i for i in range(1, self.n + 1) if i not in self.gone]
        for group in body["filterGroups"]:
            for f in group["filters"]:
                assert f["operator"] == "GT"
                value = int(f["value"])
                if f["propertyName"] == "lastmodifieddate":
                    ids = [i for i in ids if self.modified[i] > value]
                else:
                    ids = [i for i in ids if i > value]
        ids = list(ids)
        page = ids[after : after + limit]
        document: dict[str, Any] = {
            "total": len(ids),
            "results": [self.contact(i) for i in page],
        }
        if after + limit < len(ids):
            document["paging"] = {"next": {"after": str(after + limit)}}
        return Response(json.dumps(document), content_type="application/json")


def _serve(httpserver: HTTPServer, fake: FakeHubSpot) -> None:
    httpserver.expect_request(
        "/crm/v3/objects/contacts/search", method="POST"
    ).respond_with_handler(fake.handle)


def _client(httpserver: HTTPServer, sleeps: list[float], **options: Any) -> HubSpotClient:
    return HubSpotClient(
        base_url=httpserver.url_for("/"),
        token="test-token",
        requests_per_second=options.pop("rps", 1000.0),
        sleep=sleeps.append,
        **options,
    )


def _pull(engine: Engine, client: HubSpotClient, config: HubSpotSource, now: datetime = NOW):
    return pull_contacts(
        engine, client, config, now=now, default_region="US", default_timezone="UTC"
    )


def _crm_ids(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return [str(v) for v in session.exec(select(Lead.crm_id)).all()]


def test_pages_past_the_cap_survive_429_and_500_without_losing_or_duplicating(
    engine: Engine, httpserver: HTTPServer
) -> None:
    fake = FakeHubSpot(2_450, cap=1_000)
    fake.failures[3] = lambda: Response("slow down", status=429, headers={"Retry-After": "7"})
    fake.failures[8] = lambda: Response("boom", status=500)
    _serve(httpserver, fake)
    sleeps: list[float] = []
    config = HubSpotSource(enabled=True, result_cap=1_000, lag_seconds=60)

    report = _pull(engine, _client(httpserver, sleeps), config)

    ids = _crm_ids(engine)
    assert len(ids) == 2_450 and set(ids) == {str(i) for i in range(1, 2_451)}
    assert report.read == 2_450 and report.created == 2_450 and report.merged == 0
    assert 7.0 in sleeps  # Retry-After honoured
    # re-anchored twice: after 1,000 and 2,000 results, with hs_object_id GT the last id
    anchors = [
        f["value"]
        for body in fake.requests
        for group in body["filterGroups"]
        for f in group["filters"]
        if f["propertyName"] == "hs_object_id"
    ]
    assert "1000" in anchors and "2000" in anchors
    assert all(int(b.get("after", "0")) + b["limit"] <= 1_000 for b in fake.requests)
    with Session(engine) as session:
        assert load_cursor(session, "hubspot") == {
            "since": int((NOW - timedelta(seconds=60)).timestamp() * 1000)
        }
        lead = session.exec(select(Lead).where(Lead.crm_id == "7")).one()
    assert lead.country == "DE" and lead.lifecycle_stage == "mql" and lead.company_size == 51
    assert lead.seniority == "vp" and lead.last_name == "Last" and lead.source == "hubspot"


def test_a_run_that_fails_midway_keeps_committed_pages_and_the_next_resumes(
    engine: Engine, httpserver: HTTPServer
) -> None:
    fake = FakeHubSpot(1_300)
    fake.fail_from = 4  # pages 1-3 arrive, then the API fails for good
    _serve(httpserver, fake)
    sleeps: list[float] = []
    config = HubSpotSource(enabled=True)

    with pytest.raises(HubSpotError, match="failed 3 times"):
        _pull(engine, _client(httpserver, sleeps, max_attempts=3), config)
    assert len(_crm_ids(engine)) == 600
    with Session(engine) as session:
        state = load_cursor(session, "hubspot")
    assert state["after_id"] == "600" and state["since"] is None

    fake.fail_from = None
    seen = len(fake.requests)
    report = _pull(engine, _client(httpserver, sleeps), config, NOW + timedelta(minutes=15))
    resumed = fake.requests[seen]
    assert {"propertyName": "hs_object_id", "operator": "GT", "value": "600"} in resumed[
        "filterGroups"
    ][0]["filters"]
    ids = _crm_ids(engine)
    assert len(ids) == 1_300 and len(set(ids)) == 1_300
    assert report.created == 700
    with Session(engine) as session:
        # the traversal started before the failure: its start time is the next cursor
        assert load_cursor(session, "hubspot") == {"since": state["next_since"]}

    # Next run reads only what changed since; changed contacts merge, nothing duplicates.
    # A contact modified with nothing intake maps changed (e.g. our own write-back) is
    # counted unchanged and not imported again.
    for i in (5, 900, 901):
        fake.modified[i] = state["next_since"] + 5_000
    fake.first_names.update({5: "Fifth", 900: "Ninehundredth"})
    report = _pull(engine, _client(httpserver, sleeps), config, NOW + timedelta(minutes=30))
    assert report.read == 2 and report.merged == 2 and report.created == 0
    assert report.unchanged == 1
    assert len(_crm_ids(engine)) == 1_300
    with Session(engine) as session:
        history = session.exec(
            select(func.count())
            .select_from(LeadSourceRecord)
            .where(col(LeadSourceRecord.action) == "merged")
        ).one()
    assert history == 2


def test_the_real_10000_result_cap_is_paged_past(
    sqlite_engine: Engine, httpserver: HTTPServer
) -> None:
    fake = FakeHubSpot(10_250)
    _serve(httpserver, fake)
    sleeps: list[float] = []
    report = _pull(sqlite_engine, _client(httpserver, sleeps), HubSpotSource(enabled=True))
    assert report.created == 10_250
    assert len(set(_crm_ids(sqlite_engine))) == 10_250
    assert max(int(b.get("after", "0")) for b in fake.requests) == 9_800


def test_requests_are_spaced_to_the_configured_rate(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/crm/v3/objects/contacts/search").respond_with_json({"results": []})
    sleeps: list[float] = []
    clock = iter([0.0, 0.0, 0.05, 0.25, 0.3, 0.5])
    client = _client(httpserver, sleeps, rps=4.0, monotonic=lambda: next(clock))
    client.search({})
    client.search({})
    client.search({})
    assert sleeps == [pytest.approx(0.2), pytest.approx(0.2)]


def test_an_unauthorised_token_fails_at_once_with_a_hint(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/crm/v3/objects/contacts/search").respond_with_data(
        "bad token", status=401
    )
    client = _client(httpserver, [])
    with pytest.raises(HubSpotError, match="LEADOPS_HUBSPOT_TOKEN"):
        client.search({})
    assert client.requests_made == 1


def test_contacts_deleted_mid_traversal_do_not_make_the_read_skip_others(
    sqlite_engine: Engine, httpserver: HTTPServer
) -> None:
    fake = FakeHubSpot(1_000)
    fake.deleted[3] = {10, 20}  # two contacts on page 1 vanish before page 3 is read
    _serve(httpserver, fake)
    report = _pull(sqlite_engine, _client(httpserver, []), HubSpotSource(enabled=True))
    assert report.created == 1_000  # 10 and 20 were read before they went
    assert len(set(_crm_ids(sqlite_engine))) == 1_000
    reanchored = fake.requests[3]
    assert "after" not in reanchored
    assert {"propertyName": "hs_object_id", "operator": "GT", "value": "400"} in reanchored[
        "filterGroups"
    ][0]["filters"]


def test_an_intake_run_reports_pages_committed_before_hubspot_failed(
    sqlite_engine: Engine, httpserver: HTTPServer, settings: Settings
) -> None:
    fake = FakeHubSpot(1_000)
    fake.fail_from = 3
    _serve(httpserver, fake)
    config = IntakeConfig(hubspot=HubSpotSource(enabled=True))
    config.csv.enabled = False
    run = run_intake(
        sqlite_engine,
        settings,
        now=NOW,
        sources=["hubspot"],
        config=config,
        hubspot=_client(httpserver, [], max_attempts=2),
    )
    [row] = run.rows()
    assert row["read"] == 400 and row["created"] == 400
    assert "failed 2 times" in row["note"] and run.errors


def _run_hubspot(
    engine: Engine, settings: Settings, httpserver: HTTPServer, now: datetime = NOW
) -> IntakeRun:
    config = IntakeConfig(hubspot=HubSpotSource(enabled=True, lag_seconds=60))
    config.csv.enabled = False
    return run_intake(
        engine,
        settings,
        now=now,
        sources=["hubspot"],
        config=config,
        hubspot=_client(httpserver, [], max_attempts=2),
    )


def _one_lead_per_crm_id(engine: Engine) -> None:
    """A rule of the operator's that validation knows nothing of: one lead per CRM id.
    Contact 250 was imported before (from a CRM export) under the address it had then;
    it has a new one in HubSpot now, so the two do not merge and its insert clashes."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE UNIQUE INDEX uq_leads_crm_id_ops ON leads (crm_id)")
    with session_scope(engine) as session:
        import_records(
            session,
            [RawRecord({"email": "old250@example.com", "crm_id": "250"}, "crm-export.csv:2")],
            source="csv:crm-export.csv",
            now=NOW - timedelta(days=30),
            default_region="US",
            default_timezone="UTC",
        )


def _count(engine: Engine, model: type[Any]) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_a_contact_the_database_refuses_is_quarantined_and_the_rest_go_in(
    engine: Engine, httpserver: HTTPServer, settings: Settings
) -> None:
    _one_lead_per_crm_id(engine)
    fake = FakeHubSpot(450)  # pages of 200, 200 and 50; contact 250 is on the second
    _serve(httpserver, fake)

    run = _run_hubspot(engine, settings, httpserver)

    assert run.errors == []
    [row] = run.rows()
    assert (row["read"], row["created"], row["merged"], row["quarantined"]) == (450, 449, 0, 1)
    assert row["reasons"] == "store_failed 1"
    ids = _crm_ids(engine)
    assert len(ids) == 450 and set(ids) == {str(i) for i in range(1, 451)}
    with Session(engine) as session:
        [refused] = session.exec(select(QuarantinedRecord)).all()
        kept = session.exec(select(Lead).where(Lead.crm_id == "250")).one()
        cursor = load_cursor(session, "hubspot")
    assert kept.email == "old250@example.com"
    assert refused.source == "hubspot" and refused.source_ref == "hubspot:contact/250"
    assert refused.reasons == ["store_failed"] and "refused it" in (refused.detail or "")
    assert refused.raw["email"] == "contact250@example.com" and refused.raw["crm_id"] == "250"
    assert refused.raw["first_name"] == "first250" and refused.raw["company"] == "Company 0"
    assert cursor == {"since": int((NOW - timedelta(seconds=60)).timestamp() * 1000)}
    assert [b.get("after") for b in fake.requests] == [None, "200", "400"]  # each page once

    history = _count(engine, LeadSourceRecord)
    again = _run_hubspot(engine, settings, httpserver, NOW + timedelta(minutes=15))
    assert again.errors == [] and again.rows()[0]["read"] == 0
    since = {"propertyName": "lastmodifieddate", "operator": "GT", "value": str(cursor["since"])}
    assert since in fake.requests[-1]["filterGroups"][0]["filters"]
    assert len(_crm_ids(engine)) == 450
    assert _count(engine, QuarantinedRecord) == 1
    assert _count(engine, LeadSourceRecord) == history

    # Told which address is current, the operator releases it into the lead it clashed with.
    fixed = release(
        engine,
        refused.id or 0,
        now=NOW,
        default_region="US",
        default_timezone="UTC",
        corrections={"email": "old250@example.com"},
    )
    assert fixed.released and fixed.action == "merged" and fixed.lead_id == kept.id
    assert len(_crm_ids(engine)) == 450


def test_a_locked_database_fails_the_run_without_quarantining_or_moving_the_cursor(
    settings: Settings, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADOPS_SQLITE_LOCK_WAIT_SECONDS", "0.2")
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    _one_lead_per_crm_id(engine)
    holder = sqlite3.connect(
        str(engine.url.database), isolation_level=None, check_same_thread=False
    )
    fake = FakeHubSpot(450)
    serve_page = fake.handle

    def lock_before_page_2(request: Request) -> Response:
        if len(fake.requests) == 1:
            holder.execute("BEGIN IMMEDIATE")  # another process writing, from now on
        return serve_page(request)

    httpserver.expect_request(
        "/crm/v3/objects/contacts/search", method="POST"
    ).respond_with_handler(lock_before_page_2)
    try:
        run = _run_hubspot(engine, settings, httpserver)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    [failed] = run.errors
    assert "is locked" in (failed.error or "") and "try again" in (failed.error or "")
    assert failed.report is not None and failed.report.created == 200  # page 1 committed
    with Session(engine) as session:
        assert load_cursor(session, "hubspot")["after_id"] == "200"
    assert _count(engine, QuarantinedRecord) == 0  # a lock is not the record's fault

    resumed = _run_hubspot(engine, settings, httpserver, NOW + timedelta(minutes=15))
    assert resumed.errors == []
    [row] = resumed.rows()
    assert (row["read"], row["created"], row["quarantined"]) == (250, 249, 1)
    assert {"propertyName": "hs_object_id", "operator": "GT", "value": "200"} in (
        fake.requests[2]["filterGroups"][0]["filters"]
    )
    assert len(set(_crm_ids(engine))) == 450 and len(_crm_ids(engine)) == 450
    engine.dispose()


@pytest.mark.parametrize("ids", [(249, 251), (249, 250, 251)], ids=["batch", "one-by-one"])
def test_a_page_applied_in_savepoints_is_one_transaction_with_its_cursor(
    engine: Engine, ids: tuple[int, ...]
) -> None:
    # SQLite starts a transaction at the first write; a savepoint opened before one would
    # commit on release, and a page could then stay without its cursor.
    _one_lead_per_crm_id(engine)
    records = [
        RawRecord({"email": f"p{i}@example.com", "crm_id": str(i)}, f"hubspot:contact/{i}")
        for i in ids
    ]
    with pytest.raises(RuntimeError, match="crash"), session_scope(engine) as session:
        part = import_in_savepoints(
            session,
            records,
            source="hubspot",
            now=NOW,
            default_region="US",
            default_timezone="UTC",
        )
        assert (part.created, part.quarantined_total) == (2, len(ids) - 2)
        raise RuntimeError("crash before the cursor commits")
    assert _crm_ids(engine) == ["250"] and _count(engine, QuarantinedRecord) == 0
