"""A local fake of the HubSpot CRM API, from HubSpot's public API documentation, for
tests: contacts (search, batch/update), deals (create, read by a unique property, search,
associations to contacts), tasks (create, search by associated deal), properties
(create; 409 when it exists), owners and deal pipelines.

It checks each request's shape the way HubSpot does: a bearer token, at most 100 inputs
per batch request, only known properties written and never read-only ones (400
VALIDATION_ERROR), a unique property refused twice (409). Writes bump
`lastmodifieddate` / `hs_lastmodifieddate`. `fail` queues injected faults per path
prefix: "429" (with Retry-After and HubSpot's 429 body), "500", "hang" (no answer until
past the client's timeout, then a 504; nothing applied) and "applied-500" (the request is
applied, then the answer is lost as a 500: what a retry after a timeout meets).
Serve it with `pytest_httpserver`: `fake.serve(httpserver)`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from typing import Any

from werkzeug import Request, Response

READ_ONLY = {"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate"}
CONTACT_BUILTIN = {
    "email", "firstname", "lastname", "phone", "company", "jobtitle", "numemployees",
    "industry", "country", "lifecyclestage", "hubspot_owner_id",
} | READ_ONLY  # fmt: skip
DEAL_BUILTIN = {
    "dealname", "dealstage", "pipeline", "amount", "deal_currency_code", "closedate",
    "hubspot_owner_id",
} | READ_ONLY  # fmt: skip
TASK_BUILTIN = {
    "hs_timestamp", "hs_task_subject", "hs_task_body", "hs_task_status", "hs_task_priority",
    "hubspot_owner_id",
}  # fmt: skip
RATE_LIMIT_BODY = {
    "status": "error",
    "message": "You have reached your secondly limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "00000000-0000-0000-0000-000000000000",
    "policyName": "SECONDLY",
}
PIPELINES = {
    "results": [
        {
            "id": "default",
            "label": "Sales Pipeline",
            "stages": [
                {"id": s, "metadata": {"isClosed": closed, "probability": p}}
                for s, closed, p in (
                    ("appointmentscheduled", "false", "0.2"),
                    ("closedwon", "true", "1.0"),
                    ("closedlost", "true", "0.0"),
                )
            ],
        }
    ]
}


def _json(document: object, status: int = 200) -> Response:
    return Response(json.dumps(document), status=status, content_type="application/json")


def _error(status: int, message: str, category: str = "VALIDATION_ERROR") -> Response:
    return _json({"status": "error", "message": message, "category": category}, status)


class FakeHubSpot:
    def __init__(
        self,
        token: str = "test-token",  # noqa: S107 - a test value, never a real token
        hang_seconds: float = 1.0,
        clock_ms: int = 1_764_000_000_000,
    ) -> None:
        self.token = token
        self.hang_seconds = hang_seconds
        self.clock = clock_ms  # HubSpot's time in ms; each write moves it on a second
        self.contacts: dict[str, dict[str, str]] = {}
        self.deals: dict[str, dict[str, str]] = {}
        self.deal_contacts: dict[str, list[str]] = {}
        self.tasks: dict[str, dict[str, str]] = {}
        self.task_deals: dict[str, list[str]] = {}
        self.properties: dict[str, dict[str, dict[str, Any]]] = {"contacts": {}, "deals": {}}
        self.owners: list[dict[str, Any]] = []
        self.groups: set[str] = set()
        self.faults: dict[str, list[str]] = {}
        self.log: list[tuple[str, str, Any]] = []  # (method, path, body), faults included
        self.updates: Counter[str] = Counter()  # contact id -> updates applied
        self._ids = 1000
        self._lock = threading.Lock()

    # -- set-up --------------------------------------------------------------------------
    def serve(self, httpserver: Any) -> None:
        httpserver.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    def add_contact(self, contact_id: str, **properties: str) -> None:
        self.contacts[contact_id] = {"hs_object_id": contact_id, **properties}
        self._touch(self.contacts[contact_id], "lastmodifieddate")

    def fail(self, path_prefix: str, *kinds: str) -> None:
        """Queue faults ("429", "500", "hang") for the next requests under `path_prefix`."""
        self.faults.setdefault(path_prefix, []).extend(kinds)

    def _next_id(self) -> str:
        self._ids += 1
        return str(self._ids)

    def _touch(self, record: dict[str, str], field: str) -> None:
        self.clock += 1000
        record[field] = str(self.clock)

    # -- dispatch ------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        body = json.loads(request.get_data() or b"null")
        path = request.path
        with self._lock:
            self.log.append((request.method, path, body))
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return _error(
                    401, "Authentication credentials not found.", "INVALID_AUTHENTICATION"
                )
            fault = next((p for p in self.faults if path.startswith(p) and self.faults[p]), None)
            kind = self.faults[fault].pop(0) if fault else None
        if kind == "429":
            return Response(
                json.dumps(RATE_LIMIT_BODY),
                status=429,
                headers={"Retry-After": "1"},
                content_type="application/json",
            )
        if kind == "500":
            return _error(500, "internal error", "INTERNAL_ERROR")
        if kind == "hang":
            time.sleep(self.hang_seconds)  # the client gives up first
            return _error(504, "gateway timeout", "TIMEOUT")
        with self._lock:
            answer = self._route(request.method, path, body, request.args)
        return _error(500, "internal error", "INTERNAL_ERROR") if kind == "applied-500" else answer

    def _route(self, method: str, path: str, body: Any, args: Any) -> Response:
        if path == "/crm/v3/objects/contacts/batch/update":
            return self._batch_update(body)
        if path.endswith("/search"):
            return self._search(path.split("/")[4], body)
        if path == "/crm/v3/objects/deals" and method == "POST":
            return self._create_deal(body)
        if path.startswith("/crm/v3/objects/deals/") and method == "GET":
            return self._read_deal(path.rsplit("/", 1)[1], args.get("idProperty"))
        if path == "/crm/v3/objects/tasks" and method == "POST":
            return self._create_task(body)
        if path == "/crm/v4/associations/deals/contacts/batch/read":
            results = [
                {
                    "from": {"id": i["id"]},
                    "to": [{"toObjectId": int(c)} for c in self.deal_contacts.get(i["id"], [])],
                }
                for i in body["inputs"]
            ]
            return _json({"status": "COMPLETE", "results": results})
        if path.startswith("/crm/v3/properties/"):
            return self._create_property(path.split("/")[4], path.endswith("/groups"), body)
        if path == "/crm/v3/owners":
            return _json({"results": self.owners})
        if path == "/crm/v3/pipelines/deals":
            return _json(PIPELINES)
        return _error(404, f"no route {method} {path}", "OBJECT_NOT_FOUND")

    # -- endpoints -----------------------------------------------------------------------
    def _check_properties(
        self, kind: str, properties: dict[str, Any], builtin: set[str]
    ) -> str | None:
        for name in properties:
            if name in READ_ONLY:
                return f'Property "{name}" is read-only'
            if name not in builtin and name not in self.properties.get(kind, {}):
                return f'Property "{name}" does not exist'
        return None

    def _batch_update(self, body: dict[str, Any]) -> Response:
        inputs = body.get("inputs") or []
        if not 1 <= len(inputs) <= 100:
            return _error(400, f"batch of {len(inputs)} inputs; between 1 and 100 allowed")
        missing = [i["id"] for i in inputs if i["id"] not in self.contacts]
        for entry in inputs:
            problem = self._check_properties("contacts", entry["properties"], CONTACT_BUILTIN)
            if problem:
                return _error(400, problem)
        results = []
        for entry in inputs:
            if entry["id"] in missing:
                continue
            contact = self.contacts[entry["id"]]
            contact.update({k: str(v) for k, v in entry["properties"].items()})
            self._touch(contact, "lastmodifieddate")
            self.updates[entry["id"]] += 1
            results.append({"id": entry["id"], "properties": contact})
        document: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            error = {"status": "error", "category": "OBJECT_NOT_FOUND"}
            document["errors"] = [
                error | {"message": "Object not found", "context": {"ids": missing}}
            ]
            return _json(document, 207)
        return _json(document)

    def _matches(
        self, kind: str, object_id: str, record: dict[str, str], f: dict[str, str]
    ) -> bool:
        name, op, value = f["propertyName"], f["operator"], f.get("value", "")
        if name == "associations.deal":
            return value in self.task_deals.get(object_id, [])
        have = record.get(name)
        if op == "EQ":
            return have == value
        if op == "GT":
            return have is not None and int(have) > int(value)
        raise AssertionError(f"operator {op} not supported by the fake")

    def _search(self, kind: str, body: dict[str, Any]) -> Response:
        limit = int(body.get("limit", 10))
        if not 1 <= limit <= 200:
            return _error(400, "limit must be between 1 and 200")
        store = {"contacts": self.contacts, "deals": self.deals, "tasks": self.tasks}[kind]
        ids = sorted(store, key=int)
        for group in body.get("filterGroups") or []:
            ids = [
                i for i in ids if all(self._matches(kind, i, store[i], f) for f in group["filters"])
            ]
        after = int(body.get("after", "0"))
        page = ids[after : after + limit]
        document: dict[str, Any] = {
            "total": len(ids),
            "results": [{"id": i, "properties": dict(store[i])} for i in page],
        }
        if after + limit < len(ids):
            document["paging"] = {"next": {"after": str(after + limit)}}
        return _json(document)

    def _create_deal(self, body: dict[str, Any]) -> Response:
        properties = body.get("properties") or {}
        problem = self._check_properties("deals", properties, DEAL_BUILTIN)
        if problem:
            return _error(400, problem)
        key = properties.get("leadops_key")
        unique = self.properties["deals"].get("leadops_key", {}).get("hasUniqueValue")
        if unique and key and any(d.get("leadops_key") == key for d in self.deals.values()):
            return _error(409, f"A deal with leadops_key {key} already exists", "CONFLICT")
        deal_id = self._next_id()
        self.deals[deal_id] = {
            "hs_object_id": deal_id,
            **{k: str(v) for k, v in properties.items()},
        }
        self._touch(self.deals[deal_id], "hs_lastmodifieddate")
        self.deal_contacts[deal_id] = [a["to"]["id"] for a in body.get("associations") or []]
        return _json({"id": deal_id, "properties": self.deals[deal_id]}, 201)

    def _read_deal(self, key: str, id_property: str | None) -> Response:
        if id_property:
            found = [i for i, d in self.deals.items() if d.get(id_property) == key]
        else:
            found = [key] if key in self.deals else []
        if not found:
            return _error(404, "Object not found", "OBJECT_NOT_FOUND")
        return _json({"id": found[0], "properties": self.deals[found[0]]})

    def _create_task(self, body: dict[str, Any]) -> Response:
        properties = body.get("properties") or {}
        problem = self._check_properties("tasks", properties, TASK_BUILTIN)
        if problem or "hs_timestamp" not in properties:
            return _error(400, problem or "hs_timestamp is required")
        task_id = self._next_id()
        self.tasks[task_id] = {
            "hs_object_id": task_id,
            **{k: str(v) for k, v in properties.items()},
        }
        deal_type = 216
        self.task_deals[task_id] = [
            a["to"]["id"]
            for a in body.get("associations") or []
            if a["types"][0]["associationTypeId"] == deal_type
        ]
        return _json({"id": task_id, "properties": self.tasks[task_id]}, 201)

    def _create_property(self, kind: str, group: bool, body: dict[str, Any]) -> Response:
        if group:
            if body.get("name") in self.groups:
                return _error(409, "Group already exists.", "OBJECT_ALREADY_EXISTS")
            self.groups.add(str(body.get("name")))
            return _json(body, 201)
        for field in ("name", "label", "type", "fieldType", "groupName"):
            if not body.get(field):
                return _error(400, f"{field} is required")
        if body["name"] in self.properties[kind]:
            return _error(
                409, f"Property named '{body['name']}' already exists.", "OBJECT_ALREADY_EXISTS"
            )
        self.properties[kind][body["name"]] = body
        return _json(body, 201)

    # -- a deal moved in HubSpot ---------------------------------------------------------
    def move_deal(self, deal_id: str, stage: str, amount: str, closedate: str) -> None:
        deal = self.deals[deal_id]
        deal.update(
            {
                "dealstage": stage,
                "amount": amount,
                "closedate": closedate,
                "deal_currency_code": "EUR",
            }
        )
        self._touch(deal, "hs_lastmodifieddate")
