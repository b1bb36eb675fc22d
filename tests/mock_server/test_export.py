"""The journal exports: HAR 1.2 and JSON lines, oldest first, secrets redacted, readable by HAR tools."""

from __future__ import annotations

import json

import jsonschema
import pytest

from mock_server.export import journal_har
from mock_server.journal import REDACTED, JournalEntry

CANARY = "canary-key-5be1d0"
CANARY_ADMIN = "canary-admin-77e2aa"

# The fields HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/) marks as required, with their
# types: what browser devtools and HAR viewers rely on when they import a file.
_NAME_VALUES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "value"],
        "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
    },
}
HAR_SCHEMA = {
    "type": "object",
    "required": ["log"],
    "properties": {
        "log": {
            "type": "object",
            "required": ["version", "creator", "entries"],
            "properties": {
                "version": {"const": "1.2"},
                "creator": {
                    "type": "object",
                    "required": ["name", "version"],
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                },
                "entries": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["startedDateTime", "time", "request", "response", "cache", "timings"],
                        "properties": {
                            "startedDateTime": {
                                "type": "string",
                                "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$",
                            },
                            "time": {"type": "number", "minimum": 0},
                            "request": {
                                "type": "object",
                                "required": [
                                    "method",
                                    "url",
                                    "httpVersion",
                                    "cookies",
                                    "headers",
                                    "queryString",
                                    "headersSize",
                                    "bodySize",
                                ],
                                "properties": {
                                    "method": {"type": "string"},
                                    "url": {"type": "string", "pattern": "^https?://"},
                                    "httpVersion": {"type": "string"},
                                    "cookies": {"type": "array"},
                                    "headers": _NAME_VALUES,
                                    "queryString": _NAME_VALUES,
                                    "postData": {
                                        "type": "object",
                                        "required": ["mimeType", "text"],
                                        "properties": {
                                            "mimeType": {"type": "string"},
                                            "text": {"type": "string"},
                                        },
                                    },
                                    "headersSize": {"type": "integer"},
                                    "bodySize": {"type": "integer"},
                                },
                            },
                            "response": {
                                "type": "object",
                                "required": [
                                    "status",
                                    "statusText",
                                    "httpVersion",
                                    "cookies",
                                    "headers",
                                    "content",
                                    "redirectURL",
                                    "headersSize",
                                    "bodySize",
                                ],
                                "properties": {
                                    "status": {"type": "integer"},
                                    "statusText": {"type": "string"},
                                    "headers": _NAME_VALUES,
                                    "content": {
                                        "type": "object",
                                        "required": ["size", "mimeType"],
                                        "properties": {
                                            "size": {"type": "integer", "minimum": 0},
                                            "mimeType": {"type": "string"},
                                            "text": {"type": "string"},
                                        },
                                    },
                                    "redirectURL": {"type": "string"},
                                    "headersSize": {"type": "integer"},
                                    "bodySize": {"type": "integer"},
                                },
                            },
                            "cache": {"type": "object"},
                            "timings": {
                                "type": "object",
                                "required": ["send", "wait", "receive"],
                                "properties": {
                                    name: {"type": "number", "minimum": -1}
                                    for name in ("send", "wait", "receive")
                                },
                            },
                            "_why": {"type": "string", "minLength": 1},
                        },
                    },
                },
            },
        }
    },
}


def exercise(mock) -> None:
    """Four exchanges, oldest first: a create, an invalid body, a miss, a query with the key in it."""
    mock.clock.advance(seconds=1)
    mock.create_task(dueDate="2024-02-01T09:00:00Z")
    mock.clock.advance(seconds=1)
    mock.client.simulate_post("/contacts", json={"contacts": [{}]})
    mock.clock.advance(seconds=1)
    mock.client.simulate_get("/tasks/task-404")
    mock.clock.advance(seconds=1)
    mock.client.simulate_get("/health", params={"api_key": mock.api_key, "x": "1"})


def test_har_is_valid_oldest_first_and_says_why(mock):
    exercise(mock)
    result = mock.admin("GET", "journal.har")
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json"
    assert result.headers["content-disposition"].startswith('attachment; filename="enginy-mock-journal-')
    har = result.json
    jsonschema.validate(har, HAR_SCHEMA)
    log = har["log"]
    assert log["creator"]["name"] == "enginy-mock"
    entries = log["entries"]
    assert [(e["request"]["method"], e["response"]["status"]) for e in entries] == [
        ("POST", 201),
        ("POST", 400),
        ("GET", 404),
        ("GET", 200),
    ]
    assert [e["startedDateTime"] for e in entries] == sorted(e["startedDateTime"] for e in entries)
    assert entries[0]["_why"] == "ok"
    assert entries[1]["_why"] == "validation error: contacts[0].externalId is required"
    assert entries[2]["_why"].startswith("not found")

    created = entries[0]
    assert created["request"]["url"].endswith("/tasks")
    assert created["request"]["postData"]["mimeType"] == "application/json"
    assert json.loads(created["request"]["postData"]["text"])["subject"] == "Follow up"
    assert created["request"]["bodySize"] == len(created["request"]["postData"]["text"])
    content = created["response"]["content"]
    assert content["mimeType"] == "application/json"
    assert json.loads(content["text"])["id"] == "task-1"
    assert content["size"] == len(content["text"]) == created["response"]["bodySize"]
    assert created["response"]["statusText"] == "Created"
    assert {h["name"].lower(): h["value"] for h in created["request"]["headers"]}["x-api-key"] == REDACTED

    health = entries[3]["request"]
    assert "postData" not in health and health["bodySize"] == 0
    assert health["queryString"] == [{"name": "api_key", "value": REDACTED}, {"name": "x", "value": "1"}]


def test_jsonl_is_the_journal_oldest_first(mock):
    exercise(mock)
    result = mock.admin("GET", "journal.jsonl")
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/x-ndjson"
    assert result.text.endswith("\n")
    lines = [json.loads(line) for line in result.text.splitlines()]
    assert lines == list(reversed(mock.journal()))
    assert [line["path"] for line in lines][:3] == ["/tasks", "/contacts", "/tasks/task-404"]


@pytest.mark.parametrize("fmt", ["har", "jsonl"])
def test_limit_keeps_the_newest_and_still_lists_them_oldest_first(mock, fmt):
    exercise(mock)
    result = mock.admin("GET", f"journal.{fmt}", params={"limit": 2})
    if fmt == "har":
        paths = [e["request"]["url"].split("://")[1].split("/", 1)[1] for e in result.json["log"]["entries"]]
    else:
        paths = [json.loads(line)["path"] for line in result.text.splitlines()]
    assert [path.split("?")[0].lstrip("/") for path in paths] == ["tasks/task-404", "health"]
    assert mock.admin("GET", f"journal.{fmt}", params={"limit": 0}).status_code == 400


@pytest.mark.parametrize("fmt", ["har", "jsonl"])
def test_exports_need_the_admin_token(mock, fmt):
    assert mock.bare.simulate_get(f"/__admin/journal.{fmt}").status_code == 401
    wrong = mock.bare.simulate_get(f"/__admin/journal.{fmt}", headers={"X-Admin-Token": "nope"})
    assert wrong.status_code == 401
    assert (
        mock.bare.simulate_get(f"/__admin/journal.{fmt}", headers={"X-API-Key": mock.api_key}).status_code
        == 401
    )


def test_exports_of_an_empty_journal(mock):
    assert mock.admin("GET", "journal.har").json["log"]["entries"] == []
    assert mock.admin("GET", "journal.jsonl").text == ""


def test_a_canary_key_and_admin_token_appear_in_neither_export(make_mock):
    mock = make_mock(api_keys=("test-key-0123", CANARY), admin_token=CANARY_ADMIN)
    sneaky = {
        "X-API-Key": CANARY,
        "Authorization": f"Bearer {CANARY}",
        "X-Forwarded-Token": f"key={CANARY};admin={CANARY_ADMIN}",
        "Cookie": f"session={CANARY}",
    }
    mock.bare.simulate_post("/tasks", json={"subject": f"about {CANARY} and {CANARY_ADMIN}"}, headers=sneaky)
    mock.bare.simulate_get(f"/health?key={CANARY}&k2={CANARY.upper()}", headers={"X-API-Key": CANARY})
    mock.bare.simulate_get("/health", headers={"X-API-Key": CANARY_ADMIN})  # the token as a key: 401
    mock.bare.simulate_post("/activities", body=f"not json {CANARY}", headers={"X-API-Key": CANARY})
    admin = {"X-Admin-Token": CANARY_ADMIN}
    har = mock.bare.simulate_get("/__admin/journal.har", headers=admin).text
    jsonl = mock.bare.simulate_get("/__admin/journal.jsonl", headers=admin).text
    for export in (har, jsonl):
        assert CANARY not in export and CANARY_ADMIN not in export
        assert REDACTED in export
    assert len(json.loads(har)["log"]["entries"]) == len(jsonl.splitlines()) == 4


def test_cut_bodies_are_marked_and_sized_in_full(make_mock):
    mock = make_mock(journal_body_chars=20)
    mock.create_task(description="x" * 500)
    (entry,) = mock.admin("GET", "journal.har").json["log"]["entries"]
    post = entry["request"]["postData"]
    assert post["_truncated"] is True and post["text"].endswith("bytes in all]")
    assert entry["request"]["bodySize"] > 500
    assert entry["response"]["content"]["_truncated"] is True
    assert entry["response"]["content"]["size"] > 500


def test_a_dropped_connection_is_status_0_in_the_har(make_live):
    live = make_live(faults=("drop-connection:rate=1",))
    conn = live.connection()
    try:
        conn.request("GET", "/health", headers={"X-API-Key": "test-key-0123"})
        with pytest.raises(OSError):
            conn.getresponse()
    finally:
        conn.close()
    har = live.admin("GET", "journal.har").json()
    jsonschema.validate(har, HAR_SCHEMA)
    (entry,) = har["log"]["entries"]
    assert entry["request"]["url"] == f"{live.url}/health"
    assert entry["response"]["status"] == 0 and entry["response"]["statusText"] == ""
    assert entry["response"]["bodySize"] == -1 and entry["response"]["content"]["size"] == 0
    assert entry["_why"] == "fault drop-connection"


def test_journal_har_uses_the_given_base_url_and_order():
    def entry(path: str, time: str) -> JournalEntry:
        return JournalEntry(
            time=time,
            method="GET",
            path=path,
            status=204,
            request_headers={},
            request_body=None,
            response_body=None,
            why="ok",
            duration_ms=1500.0,
        )

    har = journal_har(
        [entry("/a?q=1&q=2&e=", "2024-01-15T10:00:02.000Z"), entry("/b", "2024-01-15T10:00:03.000Z")],
        base_url="http://mock.example:8080/",
    )
    jsonschema.validate(har, HAR_SCHEMA)
    first, second = har["log"]["entries"]
    assert first["request"]["url"] == "http://mock.example:8080/a?q=1&q=2&e="
    assert first["request"]["queryString"] == [
        {"name": "q", "value": "1"},
        {"name": "q", "value": "2"},
        {"name": "e", "value": ""},
    ]
    assert first["startedDateTime"] == "2024-01-15T10:00:00.500Z"  # answered minus duration
    assert first["timings"] == {"send": 0, "wait": 1500.0, "receive": 0}
    assert first["response"]["statusText"] == "No Content" and first["response"]["bodySize"] == 0
    assert second["request"]["url"] == "http://mock.example:8080/b"
