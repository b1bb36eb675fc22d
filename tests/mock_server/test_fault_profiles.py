"""Every fault profile breaks the rule it is named after, and the other rules still hold under it.

``RULE_CHECKS`` is a small in-process judge: one function per catalogue rule, each raising
AssertionError when the mock breaks that rule (it is deliberately independent of the conformance
package, which is developed separately). The matrix test runs every check under every rule fault:
the fault's own rule must fail, and every rule not listed in the fault's ``also_breaks`` must pass.
The scenario tests below then pin each fault's exact misbehaviour.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from enginy_spec import load_catalogue, load_spec
from mock_server.faults import FAULTS, OVERLAP_DELAY_MS
from mock_server.middleware import RAW_HEADER_NAMES

_serial = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_serial)}"


# --- an independent response-schema judge, straight from the spec -----------------------------------

_SPEC = load_spec()
_REGISTRY: Registry[Any] = Registry().with_resource(
    "urn:spec", Resource.from_contents(_SPEC, default_specification=DRAFT202012)
)
_FORMATS = jsonschema.FormatChecker()  # rfc3339-validator is installed, so date-time is really checked


def assert_response_schema(path: str, method: str, result: Any) -> None:
    if not 200 <= result.status_code < 300:
        return  # the rule judges success answers
    responses = _SPEC["paths"][path][method]["responses"]
    status = str(result.status_code)
    assert status in responses, f"{method.upper()} {path} answered undocumented {status}"
    content = responses[status].get("content", {}).get("application/json")
    if content is None:
        return
    pointer = "/".join(p.replace("~", "~0").replace("/", "~1") for p in (path, method, "responses", status))
    schema = {"$ref": f"urn:spec#/paths/{pointer}/content/application~1json/schema"}
    validator = jsonschema.Draft202012Validator(schema, registry=_REGISTRY, format_checker=_FORMATS)
    errors = [error.message for error in validator.iter_errors(result.json)]
    assert not errors, f"{method.upper()} {path} {status}: {errors}"


def is_iso(value: object) -> bool:
    return value is None or _FORMATS.conforms(value, "date-time")


# --- one check per catalogue rule --------------------------------------------------------------------

RuleCheck = Callable[[Any], None]
RULE_CHECKS: dict[str, RuleCheck] = {}


def rule(rule_id: str) -> Callable[[RuleCheck], RuleCheck]:
    def register(check: RuleCheck) -> RuleCheck:
        assert rule_id not in RULE_CHECKS
        RULE_CHECKS[rule_id] = check
        return check

    return register


def new_task(mock: Any, **fields: Any) -> dict[str, Any]:
    result = mock.client.simulate_post("/tasks", json={"subject": unique("subject"), **fields})
    assert result.status_code in (200, 201), result.text
    return dict(result.json)


def new_records(mock: Any, family: str, *items: dict[str, Any]) -> list[str]:
    """Create one record per request and read results[0].crmId, which needs no externalId mapping."""
    crm_ids = []
    for item in items:
        result = mock.client.simulate_post(f"/{family}", json={family: [item]})
        assert result.status_code in (200, 201), result.text
        crm_ids.append(result.json["results"][0]["crmId"])
    return crm_ids


def stored_task_ids(mock: Any) -> list[str]:
    return [task["id"] for task in mock.admin("GET", "records", params={"kind": "tasks"}).json["tasks"]]


def refused(result: Any) -> bool:
    return result.status_code in (401, 403)


@rule("HEALTH-OK")
def _(mock):
    assert 200 <= mock.client.simulate_get("/health").status_code < 300


@rule("AUTH-MISSING-KEY")
def _(mock):
    assert refused(mock.bare.simulate_get("/health"))
    assert refused(mock.bare.simulate_post("/tasks", json={"subject": "x"}))


@rule("AUTH-WRONG-KEY")
def _(mock):
    assert refused(mock.bare.simulate_get("/health", headers={"X-API-Key": "wrong-key"}))
    assert refused(mock.bare.simulate_post("/tasks", json={"subject": "x"}, headers={"X-API-Key": "wrong"}))


@rule("AUTH-OTHER-HEADER")
def _(mock):
    for value in (mock.api_key, f"Bearer {mock.api_key}"):
        assert refused(mock.bare.simulate_get("/health", headers={"Authorization": value}))
    assert refused(
        mock.bare.simulate_post("/tasks", json={"subject": "x"}, headers={"X-Token": mock.api_key})
    )


@rule("AUTH-HEADER-CASE-INSENSITIVE")
def _(mock):
    for name in ("x-api-key", "X-API-KEY", "X-API-Key"):
        # The raw names are what the mock's waitress integration reports; TestClient cannot spell them.
        result = mock.bare.simulate_get(
            "/health", headers={name: mock.api_key}, extras={RAW_HEADER_NAMES: (name,)}
        )
        assert not refused(result), name


@rule("AUTH-401-NOT-403")
def _(mock):
    # Judges refusals only: letting a request in is the business of AUTH-MISSING-KEY / AUTH-WRONG-KEY.
    for result in (
        mock.bare.simulate_get("/health"),
        mock.bare.simulate_get("/users", headers={"X-API-Key": "w"}),
    ):
        assert result.status_code != 403


@rule("TASK-CREATE-RETURNS-ID")
def _(mock):
    ids = [mock.client.simulate_post("/tasks", json={"subject": "x"}).json.get("id") for _ in range(2)]
    assert all(isinstance(task_id, str) and task_id for task_id in ids), ids
    assert ids[0] != ids[1]


@rule("TASK-CREATE-OPEN")
def _(mock):
    subject = unique("open")
    answer = mock.client.simulate_post("/tasks", json={"subject": subject}).json
    assert answer.get("subject") == subject
    assert answer.get("completed", False) is False


@rule("TASK-GET")
def _(mock):
    for _ in range(2):  # two tasks, so that an off-by-one lookup has another to answer
        subject = unique("get")
        mock.client.simulate_post("/tasks", json={"subject": subject})
        task_id = stored_task_ids(mock)[-1]
        result = mock.client.simulate_get(f"/tasks/{task_id}")
        assert result.status_code == 200
        assert result.json["id"] == task_id and result.json.get("subject") == subject


@rule("TASK-GET-COMPLETION-FIELDS")
def _(mock):
    mock.client.simulate_post("/tasks", json={"subject": "x"})
    answer = mock.client.simulate_get(f"/tasks/{stored_task_ids(mock)[-1]}").json
    assert answer.get("completed") is False and "completedAt" in answer and answer["completedAt"] is None


@rule("TASK-GET-UNKNOWN")
def _(mock):
    assert mock.client.simulate_get(f"/tasks/{unique('never')}").status_code == 404


@rule("TASK-UPDATE-UNKNOWN")
def _(mock):
    assert (
        400
        <= mock.client.simulate_patch(f"/tasks/{unique('never')}", json={"completed": True}).status_code
        < 500
    )


@rule("TASK-COMPLETE")
def _(mock):
    mock.client.simulate_post("/tasks", json={"subject": "x"})
    result = mock.client.simulate_patch(f"/tasks/{stored_task_ids(mock)[-1]}", json={"completed": True})
    assert result.status_code == 200 and result.json.get("completed") is True


@rule("TASK-COMPLETED-AT")
def _(mock):
    mock.client.simulate_post("/tasks", json={"subject": "a"})
    mock.client.simulate_post("/tasks", json={"subject": "b"})
    first, second = stored_task_ids(mock)[-2:]
    single = mock.client.simulate_patch(f"/tasks/{first}", json={"completed": True}).json
    batch = mock.client.simulate_patch("/tasks/batch", json={"ids": [second], "completed": True}).json
    for task in [single, *batch]:
        assert task.get("completedAt") and is_iso(task["completedAt"]), task


@rule("TASK-COMPLETION-PERSISTS")
def _(mock):
    mock.client.simulate_post("/tasks", json={"subject": "a"})
    mock.client.simulate_post("/tasks", json={"subject": "b"})
    first, second = stored_task_ids(mock)[-2:]
    mock.client.simulate_patch(f"/tasks/{first}", json={"completed": True})
    mock.client.simulate_patch("/tasks/batch", json={"ids": [second], "completed": True})
    assert mock.admin("GET", "records", params={"kind": "tasks"}).json["tasks"][-2]["completed"] is True
    stored = {
        task["id"]: task for task in mock.admin("GET", "records", params={"kind": "tasks"}).json["tasks"]
    }
    assert stored[first]["completed"] is True and stored[second]["completed"] is True


@rule("TIMESTAMPS-ISO8601")
def _(mock):
    mock.client.simulate_post("/tasks", json={"subject": "x", "dueDate": "2024-01-15T10:00:00Z"})
    task_id = stored_task_ids(mock)[-1]
    answers = [
        mock.client.simulate_patch(f"/tasks/{task_id}", json={"completed": True}).json,
        mock.client.simulate_get(f"/tasks/{task_id}").json,
    ]
    for answer in answers:
        assert is_iso(answer.get("dueDate")) and is_iso(answer.get("completedAt")), answer


@rule("TASK-BATCH-GET-ARRAY")
def _(mock):
    mock.client.simulate_post("/tasks", json={"subject": "x"})
    result = mock.client.simulate_post("/tasks/batch", json={"ids": stored_task_ids(mock)[-1:]})
    assert result.status_code == 200 and isinstance(result.json, list)


@rule("TASK-BATCH-GET-OMITS-UNKNOWN")
def _(mock):
    mock.client.simulate_post("/tasks", json={"subject": "x"})
    known = stored_task_ids(mock)[-1]
    result = mock.client.simulate_post("/tasks/batch", json={"ids": [known, unique("never")]})
    assert result.status_code == 200
    assert [task["id"] for task in result.json] == [known]


@rule("TASK-BATCH-GET-EMPTY")
def _(mock):
    result = mock.client.simulate_post("/tasks/batch", json={"ids": []})
    assert result.status_code == 200 and result.json == []


@rule("TASK-BATCH-GET-LARGE")
def _(mock):
    for _ in range(3):
        mock.client.simulate_post("/tasks", json={"subject": "x"})
    known = stored_task_ids(mock)[-3:]
    result = mock.client.simulate_post(
        "/tasks/batch", json={"ids": known + [unique("never") for _ in range(97)]}
    )
    assert result.status_code == 200
    assert {task["id"] for task in result.json} >= set(known)


@rule("TASK-BATCH-COMPLETE")
def _(mock):
    mock.client.simulate_post("/tasks", json={"subject": "x"})
    known = stored_task_ids(mock)[-1]
    result = mock.client.simulate_patch("/tasks/batch", json={"ids": [known], "completed": True})
    assert result.status_code == 200 and isinstance(result.json, list)
    assert result.json and all(task.get("completed") is True for task in result.json)


@rule("TASK-BATCH-COMPLETE-OMITS-UNKNOWN")
def _(mock):
    mock.client.simulate_post("/tasks", json={"subject": "x"})
    known = stored_task_ids(mock)[-1]
    result = mock.client.simulate_patch(
        "/tasks/batch", json={"ids": [known, unique("never")], "completed": True}
    )
    assert result.status_code == 200
    assert [task["id"] for task in result.json] == [known]


@rule("TASK-BATCH-ROUTE")
def _(mock):
    mock.client.simulate_post("/tasks", json={"subject": "x"})
    ids = stored_task_ids(mock)[-1:]
    assert isinstance(mock.client.simulate_post("/tasks/batch", json={"ids": ids}).json, list)
    assert isinstance(
        mock.client.simulate_patch("/tasks/batch", json={"ids": ids, "completed": True}).json, list
    )


@rule("ACTIVITY-RETURNS-ID")
def _(mock):
    answers = [mock.client.simulate_post("/activities", json={"type": "EMAIL"}) for _ in range(2)]
    ids = [answer.json.get("id") for answer in answers]
    assert all(answer.status_code in (200, 201) for answer in answers)
    assert all(isinstance(i, str) and i for i in ids) and ids[0] != ids[1]


@rule("ACTIVITY-ALL-TYPES")
def _(mock):
    for kind in ("EMAIL", "LINKEDIN", "LINKEDIN_CONNECTION", "LINKEDIN_INMAIL"):
        for direction in ("INBOUND", "OUTBOUND"):
            result = mock.client.simulate_post("/activities", json={"type": kind, "direction": direction})
            assert result.status_code in (200, 201), (kind, direction)


@rule("ACTIVITY-RICH-CONTENT")
def _(mock):
    body = {
        "type": "EMAIL",
        "body": "<p>Hola, ¿qué tal? 你好</p>",
        "metadata": {"messageId": "m-1", "sequenceIndex": 1, "sequenceMessageCount": 3},
    }
    assert mock.client.simulate_post("/activities", json=body).status_code in (200, 201)


@rule("ACTIVITY-SUBJECT-VERBATIM")
def _(mock):
    subject = "[1/3] [FROM Acme Corp] John Smith"
    answer = mock.client.simulate_post("/activities", json={"type": "LINKEDIN", "subject": subject}).json
    assert answer.get("subject", subject) == subject


def _maps_external_ids(mock, family):
    items = [{"externalId": unique(f"{family}-ext")} for _ in range(3)]
    result = mock.client.simulate_post(f"/{family}", json={family: items})
    assert result.status_code in (200, 201)
    assert sorted(r["externalId"] for r in result.json["results"]) == sorted(i["externalId"] for i in items)
    assert all(isinstance(r["crmId"], str) and r["crmId"] for r in result.json["results"])


rule("CONTACT-CREATE-MAPS-EXTERNAL-IDS")(lambda mock: _maps_external_ids(mock, "contacts"))
rule("COMPANY-CREATE-MAPS-EXTERNAL-IDS")(lambda mock: _maps_external_ids(mock, "companies"))


@rule("CONTACT-CREATE-BATCH-100")
def _(mock):
    items = [{"externalId": unique("batch")} for _ in range(100)]
    result = mock.client.simulate_post("/contacts", json={"contacts": items})
    assert result.status_code in (200, 201) and len(result.json["results"]) == 100


def _unknown_fields(mock, family):
    item = {"externalId": unique("x"), "location": "Madrid", "campaigns": [{"id": 1, "tags": {"a": [1]}}]}
    assert mock.client.simulate_post(f"/{family}", json={family: [item]}).status_code in (200, 201)


rule("CONTACT-CREATE-UNKNOWN-FIELDS")(lambda mock: _unknown_fields(mock, "contacts"))
rule("COMPANY-CREATE-UNKNOWN-FIELDS")(lambda mock: _unknown_fields(mock, "companies"))


@rule("CONTACT-CREATE-EMPTY")
def _(mock):
    result = mock.client.simulate_post("/contacts", json={"contacts": []})
    assert 200 <= result.status_code < 300 and result.json["results"] == []


def _sync_omits_unmatched(mock, family):
    (crm_id,) = new_records(mock, family, {"externalId": unique("known")})
    known = mock.admin("GET", "records", params={"kind": family}).json[family][-1]["externalId"]
    result = mock.client.simulate_post(
        f"/{family}/sync", json={family: [{"externalId": known}, {"externalId": unique("never")}]}
    )
    assert result.status_code == 200
    assert result.json["results"] == [{"externalId": known, "crmId": crm_id}]


rule("CONTACT-SYNC-OMITS-UNMATCHED")(lambda mock: _sync_omits_unmatched(mock, "contacts"))
rule("COMPANY-SYNC-OMITS-UNMATCHED")(lambda mock: _sync_omits_unmatched(mock, "companies"))


@rule("CONTACT-SYNC-MATCHES-EMAIL")
def _(mock):
    email = unique("john") + "@acme.com"
    (crm_id,) = new_records(mock, "contacts", {"externalId": unique("e"), "email": email})
    result = mock.client.simulate_post(
        "/contacts/sync", json={"contacts": [{"externalId": "z", "email": email.upper()}]}
    )
    assert [r["crmId"] for r in result.json["results"]] == [crm_id]


@rule("CONTACT-SYNC-MATCHES-LINKEDIN")
def _(mock):
    url = f"https://linkedin.com/in/{unique('jane')}"
    (crm_id,) = new_records(mock, "contacts", {"externalId": unique("l"), "linkedinUrl": url})
    result = mock.client.simulate_post(
        "/contacts/sync", json={"contacts": [{"externalId": "z", "linkedinUrl": url + "/"}]}
    )
    assert [r["crmId"] for r in result.json["results"]] == [crm_id]


@rule("COMPANY-SYNC-MATCHES-DOMAIN")
def _(mock):
    name = unique("example")
    (crm_id,) = new_records(mock, "companies", {"externalId": unique("d"), "domain": f"{name}.com"})
    domain = f"https://www.{name.capitalize()}.com/about"
    result = mock.client.simulate_post(
        "/companies/sync", json={"companies": [{"externalId": "z", "domain": domain}]}
    )
    assert [r["crmId"] for r in result.json["results"]] == [crm_id]


def _update(mock, family):
    (crm_id,) = new_records(mock, family, {"externalId": unique("u")})
    result = mock.client.simulate_put(f"/{family}", json={family: [{"crmId": crm_id, "ownerId": "user-123"}]})
    assert result.status_code == 200
    (answer,) = [r for r in result.json["results"] if r["crmId"] == crm_id]
    assert answer.get("success", True) is True


def _update_partial(mock, family):
    (crm_id,) = new_records(mock, family, {"externalId": unique("u")})
    items = [{"crmId": crm_id, "title": "CTO"}, {"crmId": unique("never")}]
    result = mock.client.simulate_put(f"/{family}", json={family: items})
    assert result.status_code == 200
    by_id = {r["crmId"]: r for r in result.json["results"]}
    if family == "contacts":  # only the contacts rule says "the known one succeeds"
        assert by_id[crm_id].get("success", True) is True
    assert by_id.get(items[1]["crmId"], {"success": False})["success"] is False


rule("CONTACT-UPDATE")(lambda mock: _update(mock, "contacts"))
rule("COMPANY-UPDATE")(lambda mock: _update(mock, "companies"))
rule("CONTACT-UPDATE-UNKNOWN-PARTIAL")(lambda mock: _update_partial(mock, "contacts"))
rule("COMPANY-UPDATE-UNKNOWN-PARTIAL")(lambda mock: _update_partial(mock, "companies"))


def _pairs(mock):
    first, second = new_records(mock, "contacts", {"externalId": unique("c")}, {"externalId": unique("c")})
    (company,) = new_records(mock, "companies", {"externalId": unique("co")})
    return first, second, company


@rule("ASSOC-CREATE")
def _(mock):
    first, second, company = _pairs(mock)
    pairs = [
        {"contactCRMId": first, "companyCRMId": company},
        {"contactCRMId": second, "companyCRMId": company},
    ]
    result = mock.client.simulate_post("/associations", json={"associations": pairs})
    assert result.status_code == 200 and result.json["success"] is True


@rule("ASSOC-UPSERT")
def _(mock):
    first, _, company = _pairs(mock)
    pair = {"contactCRMId": first, "companyCRMId": company}
    mock.client.simulate_post("/associations", json={"associations": [pair]})
    result = mock.client.simulate_post("/associations", json={"associations": [pair]})
    assert result.status_code == 200 and result.json["success"] is True
    assert result.json.get("created", 0) == 0


@rule("ASSOC-PARTIAL-SUCCESS")
def _(mock):
    first, _, company = _pairs(mock)
    pairs = [
        {"contactCRMId": first, "companyCRMId": company},
        {"contactCRMId": "contact_invalid", "companyCRMId": company},
    ]
    result = mock.client.simulate_post("/associations", json={"associations": pairs})
    assert result.status_code == 200 and result.json["success"] is True


@rule("ASSOC-ERRORS-NAME-PAIR")
def _(mock):
    first, _, company = _pairs(mock)
    pairs = [
        {"contactCRMId": first, "companyCRMId": company},
        {"contactCRMId": "contact_invalid", "companyCRMId": company},
    ]
    errors = mock.client.simulate_post("/associations", json={"associations": pairs}).json.get("errors", [])
    assert {(e["contactCRMId"], e["companyCRMId"]) for e in errors} == {("contact_invalid", company)}


@rule("USERS-OPTIONAL")
def _(mock):
    result = mock.client.simulate_get("/users")
    assert (200 <= result.status_code < 300 and isinstance(result.json, list)) or result.status_code in (
        404,
        405,
        501,
    )


BODY_OPERATIONS = [
    ("POST", "/contacts"),
    ("PUT", "/contacts"),
    ("POST", "/contacts/sync"),
    ("POST", "/companies"),
    ("PUT", "/companies"),
    ("POST", "/companies/sync"),
    ("POST", "/associations"),
    ("POST", "/activities"),
    ("POST", "/tasks"),
    ("PATCH", "/tasks/task-does-not-matter"),
    ("POST", "/tasks/batch"),
    ("PATCH", "/tasks/batch"),
]
# Bodies without a field the request itself needs (INPUT-MISSING-REQUIRED) ...
MISSING_REQUIRED = {
    "/contacts": {},
    "/contacts/sync": {},
    "/companies": {},
    "/companies/sync": {},
    "/associations": {},
    "/activities": {"subject": "no type"},
    "/tasks": {"description": "no subject"},
    "/tasks/batch": {"completed": True},
}
# ... and bodies whose list item lacks its key (INPUT-ITEM-MISSING-REQUIRED).
ITEM_MISSING_REQUIRED = {
    "/contacts": {"contacts": [{"email": "a@b.c"}]},
    "/contacts/sync": {"contacts": [{}]},
    "/companies": {"companies": [{"name": "x"}]},
    "/associations": {"associations": [{"contactCRMId": "a"}]},
}
WRONG_TYPES = {
    "/contacts": {"contacts": {"externalId": "x"}},
    "/contacts/sync": {"contacts": [{"externalId": 7}]},
    "/companies": {"companies": [{"externalId": "x", "numberOfEmployees": "many"}]},
    "/companies/sync": {"companies": "all"},
    "/associations": {"associations": [{"contactCRMId": 1, "companyCRMId": 2}]},
    "/activities": {"type": "CALL"},
    "/tasks": {"subject": 42},
    "/tasks/batch": {"ids": "task-1", "completed": True},
    "/tasks/task-does-not-matter": {"completed": "yes"},
}


@rule("INPUT-MALFORMED-JSON")
def _(mock):
    for method, path in BODY_OPERATIONS:
        result = mock.client.simulate_request(
            method, path, body=b'{"subject": ', content_type="application/json"
        )
        assert 400 <= result.status_code < 500, (method, path, result.status_code)


@rule("INPUT-MISSING-REQUIRED")
def _(mock):
    for method, path in BODY_OPERATIONS:
        body = MISSING_REQUIRED.get(path)
        if body is not None:
            result = mock.client.simulate_request(method, path, json=body)
            assert 400 <= result.status_code < 500, (method, path, result.status_code)


@rule("INPUT-ITEM-MISSING-REQUIRED")
def _(mock):
    for method, path in BODY_OPERATIONS:
        body = ITEM_MISSING_REQUIRED.get(path)
        if body is not None and method == "POST":
            result = mock.client.simulate_request(method, path, json=body)
            assert 400 <= result.status_code < 500, (method, path, result.status_code)


@rule("INPUT-INVALID-REJECTED")
def _(mock):
    for method, path in BODY_OPERATIONS:
        body = WRONG_TYPES.get(path)
        if body is not None:
            result = mock.client.simulate_request(method, path, json=body)
            assert 400 <= result.status_code < 500, (method, path, result.status_code)


@rule("INPUT-VALID-ACCEPTED")
def _(mock):
    assert mock.client.simulate_post("/tasks", json={"subject": "x", "description": ""}).status_code in (
        200,
        201,
    )
    assert (
        mock.client.simulate_post(
            "/contacts", json={"contacts": [{"externalId": "a", "email": ""}]}
        ).status_code
        == 200
    )


@rule("SERVER-NO-5XX")
def _(mock):
    probes = [
        ("POST", "/tasks", {"subject": "", "type": ""}),
        ("POST", "/activities", {"type": "EMAIL", "subject": "", "metadata": {}}),
        ("POST", "/contacts/sync", {"contacts": [{"externalId": "x", "email": "", "linkedinUrl": ""}]}),
        ("PATCH", "/tasks/batch", {"ids": ["", "batch"], "completed": False}),
    ]
    for method, path, body in probes:
        assert mock.client.simulate_request(method, path, json=body).status_code < 500, (method, path)


@rule("RESPONSE-SCHEMA")
def _(mock):
    task = mock.client.simulate_post("/tasks", json={"subject": "x", "dueDate": "2024-01-15T10:00:00Z"})
    assert_response_schema("/tasks", "post", task)
    task_id = stored_task_ids(mock)[-1]
    assert_response_schema("/tasks/{taskId}", "get", mock.client.simulate_get(f"/tasks/{task_id}"))
    assert_response_schema(
        "/tasks/batch", "post", mock.client.simulate_post("/tasks/batch", json={"ids": [task_id]})
    )
    for kind in ("EMAIL", "LINKEDIN"):
        activity = mock.client.simulate_post("/activities", json={"type": kind, "direction": "INBOUND"})
        assert_response_schema("/activities", "post", activity)
    contacts = mock.client.simulate_post("/contacts", json={"contacts": [{"externalId": unique("s")}]})
    assert_response_schema("/contacts", "post", contacts)
    assert_response_schema("/users", "get", mock.client.simulate_get("/users"))


@rule("RESPONSE-CONTENT-TYPE-JSON")
def _(mock):
    for result in (
        mock.client.simulate_get("/health"),
        mock.client.simulate_post("/tasks", json={"subject": "x"}),
    ):
        assert result.headers["content-type"].startswith("application/json"), result.headers


@rule("ERROR-BODY-JSON")
def _(mock):
    for result in (
        mock.client.simulate_get("/tasks/never-created"),
        mock.client.simulate_post("/tasks", json={}),
        mock.bare.simulate_get("/health"),
    ):
        if result.status_code < 400:
            continue  # judges error answers only
        assert result.headers["content-type"].startswith("application/json")
        assert isinstance(result.json.get("error"), str) and result.json["error"]


class HeldBody(io.BytesIO):
    """A request body that arrives only when released: its request stays in flight until then."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reading = threading.Event()
        self.release = threading.Event()

    def read(self, size: int | None = -1) -> bytes:
        self.reading.set()
        self.release.wait(10)
        return super().read(size)


def while_in_flight(mock: Any, send: Callable[[], Any]) -> tuple[Any, float]:
    """`send()` (its answer and seconds) while a POST /tasks is being handled: the mock has counted it
    and waits for its body, so the two requests overlap for certain, as under load."""
    body = json.dumps({"subject": unique("held")}).encode()
    held = HeldBody(body)
    other = threading.Thread(
        target=lambda: mock.client.simulate_post(
            "/tasks", body=body, content_type="application/json", extras={"wsgi.input": held}
        )
    )
    other.start()
    try:
        assert held.reading.wait(5), "POST /tasks never read its body"
        started = time.perf_counter()
        answer = send()
        return answer, time.perf_counter() - started
    finally:
        held.release.set()
        other.join(10)


@rule("LOAD-P95-LATENCY")
def _(mock):
    # Only load judges the rule (many users at once); its in-process stand-in: a request that overlaps
    # another is answered well within load's default p95 budget of 1000 ms.
    _, seconds = while_in_flight(mock, lambda: mock.client.simulate_get("/health"))
    assert seconds < 1.0, f"GET /health beside another request took {seconds:.2f} s"


RULE_FAULTS = [fault for fault in FAULTS if fault.kind == "rule"]


def test_there_is_a_check_for_every_catalogue_rule():
    assert set(RULE_CHECKS) == set(load_catalogue().ids)


def test_every_check_passes_on_the_conformant_mock(make_mock):
    mock = make_mock()
    failures = {}
    for rule_id, check in RULE_CHECKS.items():
        try:
            check(mock)
        except AssertionError as ex:
            failures[rule_id] = str(ex)
    assert failures == {}


@pytest.mark.parametrize("fault", RULE_FAULTS, ids=lambda fault: fault.id)
def test_the_fault_breaks_its_rule_and_only_the_rules_it_declares(make_mock, fault):
    mock = make_mock(faults=(fault.id,))
    broken = set()
    for rule_id, check in RULE_CHECKS.items():
        try:
            check(mock)
        except Exception:  # an answer of the wrong shape breaks a check as surely as a failed assert
            broken.add(rule_id)
    assert fault.rule in broken, f"{fault.id} did not break its own rule"
    assert broken - {fault.rule} <= set(fault.also_breaks), (
        f"{fault.id} also broke {sorted(broken - {fault.rule})}"
    )


# --- each fault's exact misbehaviour ----------------------------------------------------------------

SCENARIOS: set[str] = set()


def scenario(fault_id: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a test as pinning this fault's misbehaviour; the test receives a mock with the fault on."""

    def mark(test: Callable[..., None]) -> Callable[..., None]:
        assert fault_id in FAULTS, fault_id
        SCENARIOS.add(fault_id)
        return pytest.mark.parametrize("fault_id", [fault_id])(test)

    return mark


@pytest.fixture
def faulty(make_mock, fault_id):
    return make_mock(faults=(fault_id,))


def last_why(mock: Any) -> str:
    return str(mock.journal()[0]["why"])


@scenario("HEALTH-OK")
def test_health_ok(faulty, fault_id):
    assert faulty.client.simulate_get("/health").status_code == 404
    assert faulty.bare.simulate_get("/health").status_code == 401
    assert last_why(faulty) == "auth: missing key"


@scenario("AUTH-MISSING-KEY")
def test_auth_missing_key(faulty, fault_id):
    assert faulty.bare.simulate_get("/health").status_code == 200
    assert last_why(faulty) == "fault AUTH-MISSING-KEY"
    assert faulty.bare.simulate_get("/health", headers={"X-API-Key": "wrong"}).status_code == 401
    assert faulty.bare.simulate_get("/health", headers={"Authorization": faulty.api_key}).status_code == 401


@scenario("AUTH-WRONG-KEY")
def test_auth_wrong_key(faulty, fault_id):
    assert faulty.bare.simulate_get("/health", headers={"X-API-Key": "anything"}).status_code == 200
    assert faulty.bare.simulate_get("/health", headers={"X-API-Key": " "}).status_code == 401
    assert faulty.bare.simulate_get("/health").status_code == 401


@scenario("AUTH-OTHER-HEADER")
def test_auth_other_header(faulty, fault_id):
    for headers in (
        {"Authorization": faulty.api_key},
        {"Authorization": f"Bearer {faulty.api_key}"},
        {"X-Token": faulty.api_key},
    ):
        assert faulty.bare.simulate_get("/health", headers=headers).status_code == 200, headers
    assert faulty.bare.simulate_get("/health", headers={"Authorization": "Bearer nope"}).status_code == 401


@scenario("AUTH-HEADER-CASE-INSENSITIVE")
def test_auth_header_case(faulty, fault_id):
    def get(name):
        return faulty.bare.simulate_get(
            "/health", headers={name: faulty.api_key}, extras={RAW_HEADER_NAMES: (name,)}
        )

    assert get("X-API-Key").status_code == 200
    assert get("x-api-key").status_code == 401
    assert get("X-API-KEY").status_code == 401
    assert "fault AUTH-HEADER-CASE-INSENSITIVE" in last_why(faulty)


@scenario("AUTH-401-NOT-403")
def test_auth_403(faulty, fault_id):
    result = faulty.bare.simulate_get("/tasks/x")
    assert result.status_code == 403
    assert result.json == {"error": "Forbidden", "message": "The X-API-Key header is missing."}


@scenario("TASK-CREATE-RETURNS-ID")
def test_task_create_returns_id(faulty, fault_id):
    answer = faulty.client.simulate_post("/tasks", json={"subject": "x"}).json
    assert "id" not in answer and answer["subject"] == "x"
    assert faulty.client.simulate_get("/tasks/task-1").json["subject"] == "x"


@scenario("clock-ids")
def test_clock_ids(faulty, fault_id):
    # Two creates in the same millisecond (the test clock stands still): one id, the later task lost.
    first = faulty.client.simulate_post("/tasks", json={"subject": "first"}).json
    second = faulty.client.simulate_post("/tasks", json={"subject": "second"}).json
    assert first["id"] == second["id"] == f"task-{int(faulty.clock.now.timestamp() * 1000)}"
    assert faulty.client.simulate_get(f"/tasks/{first['id']}").json["subject"] == "first"
    faulty.clock.advance(milliseconds=1)  # one at a time, a millisecond apart, ids stay distinct
    assert faulty.client.simulate_post("/tasks", json={"subject": "third"}).json["id"] != first["id"]


@scenario("LOAD-P95-LATENCY")
def test_load_p95_latency(faulty, fault_id):
    # Alone, an answer is at once; beside a request in flight, it waits; alone again, at once again.
    started = time.perf_counter()
    assert faulty.client.simulate_get("/health").status_code == 200
    assert time.perf_counter() - started < 0.5
    answer, seconds = while_in_flight(faulty, lambda: faulty.client.simulate_get("/health"))
    assert answer.status_code == 200 and seconds >= OVERLAP_DELAY_MS / 1000
    health = [entry for entry in faulty.journal() if entry["path"] == "/health"]
    assert health[0]["why"] == f"fault LOAD-P95-LATENCY ({OVERLAP_DELAY_MS} ms: 1 other request(s) in flight)"
    started = time.perf_counter()
    assert faulty.client.simulate_get("/health").status_code == 200
    assert time.perf_counter() - started < 0.5  # the overlapped requests are no longer counted


@scenario("TASK-CREATE-OPEN")
def test_task_create_open(faulty, fault_id):
    answer = faulty.client.simulate_post("/tasks", json={"subject": "x"}).json
    assert answer["completed"] is True and answer["completedAt"] == "2024-01-15T10:00:00.000Z"
    assert faulty.client.simulate_get(f"/tasks/{answer['id']}").json["completed"] is False


@scenario("TASK-GET")
def test_task_get(faulty, fault_id):
    first = faulty.create_task(subject="first")
    second = faulty.create_task(subject="second")
    # An off-by-one lookup: each read answers the other task (the first reads the second).
    assert faulty.client.simulate_get(f"/tasks/{second['id']}").json["id"] == first["id"]
    assert faulty.client.simulate_get(f"/tasks/{first['id']}").json["subject"] == "second"
    assert {
        task["subject"]
        for task in faulty.client.simulate_post(
            "/tasks/batch", json={"ids": [first["id"], second["id"]]}
        ).json
    } == {"first", "second"}


@scenario("TASK-GET-COMPLETION-FIELDS")
def test_task_get_completion_fields(faulty, fault_id):
    task = faulty.create_task()
    answer = faulty.client.simulate_get(f"/tasks/{task['id']}").json
    assert "completed" not in answer and "completedAt" not in answer
    faulty.client.simulate_patch(f"/tasks/{task['id']}", json={"completed": True})
    assert faulty.client.simulate_get(f"/tasks/{task['id']}").json["completed"] is True


@scenario("TASK-GET-UNKNOWN")
def test_task_get_unknown(faulty, fault_id):
    result = faulty.client.simulate_get("/tasks/task-xyz")
    assert result.status_code == 200
    assert result.json == {"id": "task-xyz", "completed": False, "completedAt": None}
    assert faulty.client.simulate_patch("/tasks/task-xyz", json={}).status_code == 404


@scenario("TASK-UPDATE-UNKNOWN")
def test_task_update_unknown(faulty, fault_id):
    result = faulty.client.simulate_patch("/tasks/task-xyz", json={"completed": True, "subject": "s"})
    assert result.status_code == 200
    assert (
        result.json["id"] == "task-xyz" and result.json["completed"] is True and result.json["subject"] == "s"
    )
    assert faulty.client.simulate_get("/tasks/task-xyz").status_code == 404


@scenario("TASK-COMPLETE")
def test_task_complete(faulty, fault_id):
    task = faulty.create_task()
    answer = faulty.client.simulate_patch(f"/tasks/{task['id']}", json={"completed": True}).json
    assert answer["completed"] is False and answer["completedAt"] == "2024-01-15T10:00:00.000Z"
    assert faulty.client.simulate_get(f"/tasks/{task['id']}").json["completed"] is True


@scenario("TASK-COMPLETED-AT")
def test_task_completed_at(faulty, fault_id):
    first, second = faulty.create_task(), faulty.create_task()
    assert (
        faulty.client.simulate_patch(f"/tasks/{first['id']}", json={"completed": True}).json["completedAt"]
        is None
    )
    batch = faulty.client.simulate_patch("/tasks/batch", json={"ids": [second["id"]], "completed": True}).json
    assert batch[0]["completed"] is True and batch[0]["completedAt"] is None
    assert faulty.client.simulate_get(f"/tasks/{first['id']}").json["completedAt"] is None


@scenario("TASK-COMPLETION-PERSISTS")
def test_task_completion_persists(faulty, fault_id):
    first, second = faulty.create_task(), faulty.create_task()
    assert (
        faulty.client.simulate_patch(f"/tasks/{first['id']}", json={"completed": True}).json["completed"]
        is True
    )
    assert faulty.client.simulate_patch("/tasks/batch", json={"ids": [second["id"]], "completed": True}).json[
        0
    ]["completed"]
    stored = faulty.client.simulate_post("/tasks/batch", json={"ids": [first["id"], second["id"]]}).json
    assert [task["completed"] for task in stored] == [False, False]
    assert "fault TASK-COMPLETION-PERSISTS" in faulty.journal()[1]["why"]


@scenario("TIMESTAMPS-ISO8601")
def test_timestamps(faulty, fault_id):
    task = faulty.create_task(dueDate="2024-01-15T10:00:00+01:00")
    assert task["dueDate"] == "Mon, 15 Jan 2024 09:00:00 GMT"
    completed = faulty.client.simulate_patch(f"/tasks/{task['id']}", json={"completed": True}).json
    assert completed["completedAt"] == "2024-01-15T10:00:00.000Z"
    activity = faulty.client.simulate_post(
        "/activities", json={"type": "EMAIL", "occurredAt": "2024-12-31T10:00:00Z"}
    )
    assert activity.json["occurredAt"] == "Tue, 31 Dec 2024 10:00:00 GMT"
    # An instant RFC 2822 cannot express stays as sent rather than failing.
    assert faulty.create_task(dueDate="2024-06-30T23:59:60Z")["dueDate"] == "2024-06-30T23:59:60Z"


@scenario("TASK-BATCH-GET-ARRAY")
def test_batch_get_array(faulty, fault_id):
    task = faulty.create_task()
    assert faulty.client.simulate_post("/tasks/batch", json={"ids": [task["id"]]}).json == {"tasks": [task]}


@scenario("TASK-BATCH-GET-OMITS-UNKNOWN")
def test_batch_get_omits_unknown(faulty, fault_id):
    task = faulty.create_task()
    ids = [task["id"], "nope", "nope", ""]
    answer = faulty.client.simulate_post("/tasks/batch", json={"ids": ids}).json
    # No stub for an id a task cannot have ("" breaks the Task schema).
    assert answer == [task, {"id": "nope", "completed": False, "completedAt": None}]


@scenario("TASK-BATCH-GET-EMPTY")
def test_batch_get_empty(faulty, fault_id):
    result = faulty.client.simulate_post("/tasks/batch", json={"ids": []})
    assert result.status_code == 400 and result.json["message"] == "ids must not be empty."


@scenario("TASK-BATCH-GET-LARGE")
def test_batch_get_large(faulty, fault_id):
    assert faulty.client.simulate_post("/tasks/batch", json={"ids": ["x"] * 50}).status_code == 200
    assert faulty.client.simulate_post("/tasks/batch", json={"ids": ["x"] * 51}).status_code == 413


@scenario("TASK-BATCH-COMPLETE")
def test_batch_complete(faulty, fault_id):
    task = faulty.create_task()
    answer = faulty.client.simulate_patch("/tasks/batch", json={"ids": [task["id"]], "completed": True}).json
    assert answer[0]["completed"] is False and answer[0]["completedAt"]
    assert faulty.client.simulate_get(f"/tasks/{task['id']}").json["completed"] is True


@scenario("TASK-BATCH-COMPLETE-OMITS-UNKNOWN")
def test_batch_complete_omits_unknown(faulty, fault_id):
    task = faulty.create_task()
    answer = faulty.client.simulate_patch(
        "/tasks/batch", json={"ids": [task["id"], "ghost", ""], "completed": True}
    ).json
    assert [t["id"] for t in answer] == [task["id"], "ghost"]
    assert answer[1]["completed"] is True
    assert faulty.client.simulate_get("/tasks/ghost").status_code == 404


@scenario("TASK-BATCH-ROUTE")
def test_batch_route(faulty, fault_id):
    post = faulty.client.simulate_post("/tasks/batch", json={"ids": []})
    assert post.status_code == 405 and set(post.headers["allow"].split(", ")) == {"GET", "PATCH", "OPTIONS"}
    patch = faulty.client.simulate_patch("/tasks/batch", json={"ids": [], "completed": True})
    assert patch.status_code == 404
    assert patch.json == {"error": "Task not found", "message": "No task exists with ID: batch"}


@scenario("ACTIVITY-RETURNS-ID")
def test_activity_returns_id(faulty, fault_id):
    answer = faulty.client.simulate_post("/activities", json={"type": "EMAIL"}).json
    assert answer == {"type": "EMAIL"}
    assert (
        faulty.admin("GET", "records", params={"kind": "activities"}).json["activities"][0]["id"]
        == "activity-1"
    )


@scenario("ACTIVITY-ALL-TYPES")
def test_activity_all_types(faulty, fault_id):
    assert faulty.client.simulate_post("/activities", json={"type": "LINKEDIN_INMAIL"}).status_code == 400
    assert faulty.client.simulate_post("/activities", json={"type": "LINKEDIN_CONNECTION"}).status_code == 201


@scenario("ACTIVITY-RICH-CONTENT")
def test_activity_rich_content(faulty, fault_id):
    assert (
        faulty.client.simulate_post("/activities", json={"type": "EMAIL", "body": "<p>hi</p>"}).status_code
        == 400
    )
    assert (
        faulty.client.simulate_post("/activities", json={"type": "EMAIL", "body": "hi ✓"}).status_code == 201
    )


@scenario("ACTIVITY-SUBJECT-VERBATIM")
def test_activity_subject(faulty, fault_id):
    answer = faulty.client.simulate_post(
        "/activities", json={"type": "EMAIL", "subject": "[1/3] [FROM Acme] J"}
    ).json
    assert answer["subject"] == "1/3 FROM Acme J"


@pytest.mark.parametrize("family", ["contacts", "companies"])
def test_create_maps_external_ids_faults(make_mock, family):
    prefix = "CONTACT" if family == "contacts" else "COMPANY"
    mock = make_mock(faults=(f"{prefix}-CREATE-MAPS-EXTERNAL-IDS",))
    answer = mock.client.simulate_post(f"/{family}", json={family: [{"externalId": "lead-1"}]}).json
    assert answer["results"][0]["externalId"] == answer["results"][0]["crmId"] != "lead-1"


SCENARIOS.update({"CONTACT-CREATE-MAPS-EXTERNAL-IDS", "COMPANY-CREATE-MAPS-EXTERNAL-IDS"})


@scenario("CONTACT-CREATE-BATCH-100")
def test_contact_batch(faulty, fault_id):
    items = [{"externalId": str(n)} for n in range(51)]
    assert faulty.client.simulate_post("/contacts", json={"contacts": items[:50]}).status_code == 200
    assert faulty.client.simulate_post("/contacts", json={"contacts": items}).status_code == 413
    assert faulty.client.simulate_post("/companies", json={"companies": items}).status_code == 200


@pytest.mark.parametrize("family", ["contacts", "companies"])
def test_create_unknown_fields_faults(make_mock, family):
    prefix = "CONTACT" if family == "contacts" else "COMPANY"
    mock = make_mock(faults=(f"{prefix}-CREATE-UNKNOWN-FIELDS",))
    result = mock.client.simulate_post(
        f"/{family}",
        json={family: [{"externalId": "a", "ownerId": "u"}, {"externalId": "b", "location": "M"}]},
    )
    assert result.status_code == 400
    assert result.json["message"] == f"{family}[1].location is not a known field."


SCENARIOS.update({"CONTACT-CREATE-UNKNOWN-FIELDS", "COMPANY-CREATE-UNKNOWN-FIELDS"})


@scenario("CONTACT-CREATE-EMPTY")
def test_contact_create_empty(faulty, fault_id):
    assert faulty.client.simulate_post("/contacts", json={"contacts": []}).status_code == 400
    assert faulty.client.simulate_post("/companies", json={"companies": []}).status_code == 200


@pytest.mark.parametrize("family", ["contacts", "companies"])
def test_sync_omits_unmatched_faults(make_mock, family):
    prefix = "CONTACT" if family == "contacts" else "COMPANY"
    mock = make_mock(faults=(f"{prefix}-SYNC-OMITS-UNMATCHED",))
    results = mock.client.simulate_post(f"/{family}/sync", json={family: [{"externalId": "never"}]}).json[
        "results"
    ]
    assert results == [
        {"externalId": "never", "crmId": f"{family[:-1] if family == 'contacts' else 'company'}-unmatched-1"}
    ]


SCENARIOS.update({"CONTACT-SYNC-OMITS-UNMATCHED", "COMPANY-SYNC-OMITS-UNMATCHED"})


@scenario("CONTACT-SYNC-MATCHES-EMAIL")
def test_sync_email(faulty, fault_id):
    (crm_id,) = faulty.create("contacts", {"externalId": "a", "email": "John@Acme.com"})
    sync = faulty.client.simulate_post
    assert (
        sync("/contacts/sync", json={"contacts": [{"externalId": "z", "email": "john@acme.com"}]}).json[
            "results"
        ]
        == []
    )
    exact = sync("/contacts/sync", json={"contacts": [{"externalId": "z", "email": "John@Acme.com"}]}).json
    assert exact["results"] == [{"externalId": "z", "crmId": crm_id}]


@scenario("CONTACT-SYNC-MATCHES-LINKEDIN")
def test_sync_linkedin(faulty, fault_id):
    faulty.create("contacts", {"externalId": "a", "linkedinUrl": "https://linkedin.com/in/x"})
    body = {"contacts": [{"externalId": "z", "linkedinUrl": "https://linkedin.com/in/x/"}]}
    assert faulty.client.simulate_post("/contacts/sync", json=body).json["results"] == []


@pytest.mark.parametrize("family", ["contacts", "companies"])
def test_update_unknown_partial_faults(make_mock, family):
    prefix = "CONTACT" if family == "contacts" else "COMPANY"
    mock = make_mock(faults=(f"{prefix}-UPDATE-UNKNOWN-PARTIAL",))
    (crm_id,) = mock.create(family, {"externalId": "a"})
    result = mock.client.simulate_put(
        f"/{family}", json={family: [{"crmId": crm_id, "ownerId": "u"}, {"crmId": "nope"}]}
    )
    assert result.status_code == 404
    assert "ownerId" not in mock.admin("GET", "records", params={"kind": family}).json[family][0]
    assert mock.client.simulate_put(f"/{family}", json={family: [{"crmId": crm_id}]}).status_code == 200


SCENARIOS.update({"CONTACT-UPDATE-UNKNOWN-PARTIAL", "COMPANY-UPDATE-UNKNOWN-PARTIAL"})


@scenario("COMPANY-SYNC-MATCHES-DOMAIN")
def test_sync_domain(faulty, fault_id):
    (crm_id,) = faulty.create("companies", {"externalId": "a", "domain": "acme.com"})
    sync = faulty.client.simulate_post
    assert (
        sync(
            "/companies/sync", json={"companies": [{"externalId": "z", "domain": "https://www.acme.com"}]}
        ).json["results"]
        == []
    )
    assert (
        sync("/companies/sync", json={"companies": [{"externalId": "z", "domain": "acme.com"}]}).json[
            "results"
        ][0]["crmId"]
        == crm_id
    )


def _linked(mock):
    first, second = mock.create("contacts", {"externalId": "a"}, {"externalId": "b"})
    (company,) = mock.create("companies", {"externalId": "c"})
    return first, second, company


@scenario("ASSOC-CREATE")
def test_assoc_create(faulty, fault_id):
    first, second, company = _linked(faulty)
    one = {"contactCRMId": first, "companyCRMId": company}
    two = {"contactCRMId": second, "companyCRMId": company}
    assert faulty.client.simulate_post("/associations", json={"associations": [one, two]}).json == {
        "success": False,
        "created": 0,
    }
    assert faulty.client.simulate_post("/associations", json={"associations": [one]}).json == {
        "success": True,
        "created": 1,
    }


@scenario("ASSOC-UPSERT")
def test_assoc_upsert(faulty, fault_id):
    first, _, company = _linked(faulty)
    pair = {"contactCRMId": first, "companyCRMId": company}
    faulty.client.simulate_post("/associations", json={"associations": [pair]})
    assert faulty.client.simulate_post("/associations", json={"associations": [pair]}).json == {
        "success": True,
        "created": 1,
    }
    assert len(faulty.admin("GET", "records", params={"kind": "associations"}).json["associations"]) == 1


@scenario("ASSOC-PARTIAL-SUCCESS")
def test_assoc_partial(faulty, fault_id):
    first, _, company = _linked(faulty)
    pairs = [
        {"contactCRMId": first, "companyCRMId": company},
        {"contactCRMId": "bad", "companyCRMId": company},
    ]
    answer = faulty.client.simulate_post("/associations", json={"associations": pairs}).json
    assert answer["success"] is False and answer["created"] == 1 and len(answer["errors"]) == 1


@scenario("ASSOC-ERRORS-NAME-PAIR")
def test_assoc_errors(faulty, fault_id):
    _, _, company = _linked(faulty)
    answer = faulty.client.simulate_post(
        "/associations", json={"associations": [{"contactCRMId": "bad", "companyCRMId": company}]}
    ).json
    assert answer == {"success": True, "created": 0}


@scenario("USERS-OPTIONAL")
def test_users(faulty, fault_id):
    result = faulty.client.simulate_get("/users")
    assert result.status_code == 500 and result.json["error"] == "Internal server error"


@scenario("INPUT-MALFORMED-JSON")
def test_malformed(faulty, fault_id):
    assert (
        faulty.client.simulate_post("/tasks", body=b"{nope", content_type="application/json").status_code
        == 500
    )
    assert faulty.client.simulate_post("/tasks", body=b"").status_code == 400  # no body is not malformed JSON


@scenario("INPUT-MISSING-REQUIRED")
def test_missing_required(faulty, fault_id):
    task = faulty.client.simulate_post("/tasks", json={})
    assert task.status_code == 201 and task.json["subject"] == ""
    activity = faulty.client.simulate_post("/activities", json={})
    assert activity.status_code == 201 and activity.json["type"] == "EMAIL"
    assert faulty.client.simulate_post("/contacts", json={}).json == {"results": []}
    # Only the request's own fields: an item's key is INPUT-ITEM-MISSING-REQUIRED's.
    assert faulty.client.simulate_post("/contacts", json={"contacts": [{"email": "x"}]}).status_code == 400
    # Not on /tasks/batch: that literal path is also Schemathesis's invalid taskId "batch".
    assert faulty.client.simulate_patch("/tasks/batch", json={"completed": True}).status_code == 400
    assert "filled subject" in faulty.journal()[-1]["why"]
    # Types are still checked.
    assert faulty.client.simulate_post("/tasks", json={"subject": 5}).status_code == 400


@scenario("INPUT-ITEM-MISSING-REQUIRED")
def test_item_missing_required(faulty, fault_id):
    contacts = faulty.client.simulate_post("/contacts", json={"contacts": [{"email": "x"}]})
    (result,) = contacts.json["results"]
    assert result["externalId"] == "missing" and result["crmId"].startswith("contact-")
    assert "filled contacts[0].externalId" in faulty.journal()[-1]["why"]
    # The request's own fields are still required.
    assert faulty.client.simulate_post("/tasks", json={}).status_code == 400


@scenario("RESPONSE-CONTENT-TYPE-JSON")
def test_response_content_type(faulty, fault_id):
    result = faulty.client.simulate_post("/tasks", json={"subject": "labelled"})
    assert result.status_code == 201 and result.headers["content-type"] == "text/plain; charset=utf-8"
    assert result.json["subject"] == "labelled"  # still the JSON it always was
    missing = faulty.client.simulate_get("/tasks/never-created")
    assert missing.headers["content-type"].startswith("application/json")  # errors keep their label


@scenario("INPUT-INVALID-REJECTED")
def test_invalid_rejected(faulty, fault_id):
    task = faulty.client.simulate_post("/tasks", json={"subject": 42, "dueDate": "soon"})
    assert (
        task.status_code == 201
        and task.json["subject"] == "42"
        and task.json["dueDate"] == "1970-01-01T00:00:00Z"
    )
    activity = faulty.client.simulate_post("/activities", json={"type": "CALL", "metadata": [1]})
    assert (
        activity.status_code == 201 and activity.json["type"] == "EMAIL" and activity.json["metadata"] == {}
    )
    batch = faulty.client.simulate_post("/tasks/batch", json={"ids": "task-1"})
    assert batch.status_code == 200 and batch.json[0]["id"] == "task-1"
    contacts = faulty.client.simulate_post("/contacts", json={"contacts": [{"externalId": ""}]})
    assert contacts.json["results"][0]["externalId"] == "-"
    # Required fields are still checked.
    assert faulty.client.simulate_post("/tasks", json={"description": "no subject"}).status_code == 400
    assert faulty.client.simulate_post("/tasks", json=[1, 2]).status_code == 400


@scenario("INPUT-VALID-ACCEPTED")
def test_valid_accepted(faulty, fault_id):
    result = faulty.client.simulate_post(
        "/contacts", json={"contacts": [{"externalId": "a", "tags": ["x", ""]}]}
    )
    assert result.status_code == 400 and result.json["message"] == "contacts[0].tags[1] must not be empty."
    assert faulty.client.simulate_post("/tasks", json={"subject": "fine"}).status_code == 201


@scenario("SERVER-NO-5XX")
def test_server_no_5xx(faulty, fault_id):
    for kind in ("", "0", "café", "follow-up"):
        assert faulty.client.simulate_post("/tasks", json={"subject": "x", "type": kind}).status_code == 500
    assert faulty.client.simulate_post("/tasks", json={"subject": "x", "type": "call"}).status_code == 201
    assert faulty.client.simulate_post("/tasks", json={"subject": "x"}).status_code == 201
    assert faulty.journal()[-1]["why"].startswith("fault SERVER-NO-5XX")


@scenario("RESPONSE-SCHEMA")
def test_response_schema(faulty, fault_id):
    answer = faulty.client.simulate_post("/activities", json={"type": "LINKEDIN_INMAIL"}).json
    assert answer["type"] == "linkedin_inmail"
    assert (
        faulty.admin("GET", "records", params={"kind": "activities"}).json["activities"][0]["type"]
        == "LINKEDIN_INMAIL"
    )


@scenario("ERROR-BODY-JSON")
def test_error_body(faulty, fault_id):
    result = faulty.client.simulate_get("/tasks/none")
    assert result.headers["content-type"].startswith("text/plain")
    assert result.text == "Task not found: No task exists with ID: none"
    # The admin API keeps its JSON errors.
    assert faulty.bare.simulate_get("/__admin/journal").json["error"] == "Unauthorized"


def test_every_fault_has_a_scenario():
    transport = {fault.id for fault in FAULTS if fault.kind == "transport"}
    # Transport faults are pinned in test_faults.py and test_serving.py (drop-connection needs a socket).
    assert SCENARIOS | transport == set(FAULTS.ids)


@pytest.mark.parametrize("family", ["contacts", "companies"])
def test_update_faults(make_mock, family):
    prefix = "CONTACT" if family == "contacts" else "COMPANY"
    mock = make_mock(faults=(f"{prefix}-UPDATE",))
    (crm_id,) = mock.create(family, {"externalId": "a"})
    result = mock.client.simulate_put(
        f"/{family}", json={family: [{"crmId": crm_id, "ownerId": "u"}, {"crmId": "x"}]}
    )
    assert result.status_code == 200
    assert result.json["results"][0] == {"crmId": crm_id, "success": False, "error": "Update failed"}
    assert result.json["results"][1]["success"] is False
    assert "ownerId" not in mock.admin("GET", "records", params={"kind": family}).json[family][0]


SCENARIOS.update({"CONTACT-UPDATE", "COMPANY-UPDATE"})
