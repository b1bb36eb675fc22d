"""The admin API: its own token, reset, seed, records, journal, faults."""

from __future__ import annotations

import pytest


def test_admin_needs_the_admin_token_and_refuses_the_api_key(mock):
    assert mock.bare.simulate_get("/__admin/records").status_code == 401
    result = mock.bare.simulate_get("/__admin/records", headers={"X-API-Key": mock.api_key})
    assert result.json == {"error": "Unauthorized", "message": "The X-Admin-Token header is missing."}
    wrong = mock.bare.simulate_get("/__admin/records", headers={"X-Admin-Token": mock.api_key})
    assert wrong.status_code == 401 and wrong.json["message"] == "The X-Admin-Token header is wrong."
    assert mock.bare.simulate_get("/__admin/nope").status_code == 401
    assert mock.admin("GET", "nope").status_code == 404


def test_admin_is_unaffected_by_faults_on_errors_and_auth(make_mock):
    mock = make_mock(faults=("ERROR-BODY-JSON", "AUTH-MISSING-KEY", "error-rate:rate=1"))
    assert mock.bare.simulate_get("/__admin/records").json["error"] == "Unauthorized"
    assert mock.admin("GET", "records").status_code == 200


def test_seed_inserts_or_replaces_and_reports_ids(mock):
    seed = {
        "tasks": [{"subject": "generated id"}, {"id": "task-x", "subject": "fixed id", "completed": True}],
        "contacts": [{"crmId": "c-1", "externalId": "lead-1", "email": "a@x.com"}],
        "companies": [{"externalId": "co-1", "domain": "acme.com"}],
        "activities": [{"type": "EMAIL"}],
        "associations": [{"contactCRMId": "c-1", "companyCRMId": "company-3"}],
        "users": [{"id": "u-9", "name": "Nine"}],
    }
    result = mock.admin("POST", "seed", json=seed)
    assert result.status_code == 200
    assert result.json["seeded"] == {k: len(v) for k, v in seed.items()}
    assert result.json["ids"]["tasks"] == ["task-1", "task-x"]
    assert mock.client.simulate_get("/tasks/task-1").json["completed"] is False
    assert mock.client.simulate_get("/tasks/task-x").json["completed"] is True
    assert mock.client.simulate_post(
        "/contacts/sync", json={"contacts": [{"externalId": "z", "email": "A@X.COM"}]}
    ).json["results"] == [{"externalId": "z", "crmId": "c-1"}]
    assert {"id": "u-9", "name": "Nine"} in mock.client.simulate_get("/users").json
    mock.admin("POST", "seed", json={"tasks": [{"id": "task-x", "subject": "replaced"}]})
    assert mock.client.simulate_get("/tasks/task-x").json["subject"] == "replaced"


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ([], "Seed data must be a JSON object"),
        ({"widgets": []}, "Unknown kind 'widgets'; use one of tasks, contacts"),
        ({"tasks": {}}, "Seed tasks must be an array of records."),
        ({"tasks": [1]}, r"Seed tasks\[0\] must be an object."),
        ({"tasks": [{"subject": "s", "dueDate": "soon"}]}, r"Seed tasks\[0\]: dueDate must be an ISO 8601"),
        (
            {"tasks": [{"subject": "s", "completed": "yes"}]},
            r"Seed tasks\[0\]: completed must be true or false",
        ),
        ({"users": [{"id": "u"}]}, r"Seed users\[0\]: name is required."),
        ({"contacts": [{"crmId": "", "externalId": "e"}]}, "crmId must be a non-empty string"),
        ({"activities": [{"id": 5, "type": "EMAIL"}]}, "id must be a non-empty string"),
    ],
)
def test_bad_seeds_are_400_naming_the_record(mock, seed, message):
    result = mock.admin("POST", "seed", json=seed)
    assert result.status_code == 400
    assert result.json["error"] == "Invalid body"
    assert pytest.importorskip("re").search(message, result.json["message"])


def test_records_by_kind(mock):
    mock.create_task()
    assert set(mock.admin("GET", "records").json) == {
        "tasks",
        "contacts",
        "companies",
        "activities",
        "associations",
        "users",
    }
    assert list(mock.admin("GET", "records", params={"kind": "tasks"}).json) == ["tasks"]
    assert mock.admin("GET", "records", params={"kind": "nope"}).status_code == 400


def test_reset_clears_records_and_journal_but_keeps_users(mock):
    mock.create_task()
    mock.create("contacts", {"externalId": "a"})
    result = mock.admin("POST", "reset")
    assert result.json == {
        "reset": True,
        "records": {
            "tasks": 0,
            "contacts": 0,
            "companies": 0,
            "activities": 0,
            "associations": 0,
            "users": 3,
        },
    }
    assert mock.journal() == []


def test_journal_limit(mock):
    for _ in range(3):
        mock.client.simulate_get("/health")
    assert len(mock.admin("GET", "journal", params={"limit": 2}).json["entries"]) == 2
    assert mock.admin("GET", "journal", params={"limit": 0}).status_code == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"faults": ["TASK-BATCH-ROTE"]}, "Did you mean TASK-BATCH-ROUTE"),
        ({"faults": "TASK-GET"}, 'The body must be {"faults"'),
        ({"faults": [1]}, "Every entry of faults must be a string"),
        ({"faults": [], "seed": "x"}, "seed must be an integer."),
        ({"faults": ["latency:ms=-1"]}, "ms must be at least 0"),
    ],
)
def test_put_faults_refuses_bad_selections_and_keeps_the_old_ones(make_mock, body, message):
    mock = make_mock(faults=("TASK-GET",))
    result = mock.admin("PUT", "faults", json=body)
    assert result.status_code == 400 and message in result.json["message"]
    assert [f["id"] for f in mock.admin("GET", "faults").json["faults"]] == ["TASK-GET"]


def test_admin_bodies_are_parsed_strictly(mock):
    result = mock.admin("PUT", "faults", body=b"{nope")
    assert result.status_code == 400 and result.json["error"] == "Malformed body"
