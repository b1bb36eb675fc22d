"""The journal: redaction, truncation, the ring buffer, and what the app records in it."""

from __future__ import annotations

import json

import pytest

from mock_server.journal import (
    REDACTED,
    Journal,
    JournalEntry,
    PendingEntry,
    Redactor,
    redact,
    redact_headers,
    truncate_body,
)


def entry(n: int) -> JournalEntry:
    return JournalEntry(
        time="t",
        method="GET",
        path=f"/{n}",
        status=200,
        request_headers={},
        request_body=None,
        response_body=None,
        why="ok",
        duration_ms=0.0,
    )


def test_redact_replaces_every_secret_longest_first():
    assert (
        redact("key=secret-key; other=secret-key2", ["secret-key", "secret-key2"])
        == f"key={REDACTED}; other={REDACTED}"
    )
    # A secret that could be part of ordinary words is left in free text (it would blank them out) ...
    assert redact("a k b", ["k"]) == "a k b"
    assert redact("a test task", ["test"]) == "a test task"
    # ... but not where it stands as a value: after a key-like name, or as a whole JSON string.
    assert redact("X-API-Key: test; token=k", ["test", "k"]) == f"X-API-Key: {REDACTED}; token={REDACTED}"
    echoed = '{"echo": "k", "word": "kk"}'
    assert redact(echoed, ["k"]) == echoed.replace('"k"', f'"{REDACTED}"')


def test_the_prepared_redactor_skips_only_text_without_a_secret_in_any_form():
    # The journal's Redactor returns text in which no secret occurs at once; a secret spelled with
    # JSON escapes (a non-ASCII key) or standing after a key name must still be found.
    redactor = Redactor(["clé-secrète-123", "k"])
    assert not redactor.could_hold("nothing to see") and redactor.text("nothing to see") == "nothing to see"
    assert redactor.text('{"a": "cl\\u00e9-secr\\u00e8te-123"}') == f'{{"a": "{REDACTED}"}}'
    assert redactor.text("token=k; kk") == f"token={REDACTED}; kk"
    assert redactor.words("Bearer k") == f"Bearer {REDACTED}"
    assert redactor.body('{"x": "clé-secrète-123"}'.encode(), 100) == f'{{"x": "{REDACTED}"}}'


def test_redact_headers_by_name_and_by_value():
    headers = {
        "X-API-KEY": "abc",
        "AUTHORIZATION": "Bearer zzz",
        "X-OTHER": "k",
        "X-FINE": "hello",
        "X-EMBED": "x secret-1 y",
    }
    redacted = redact_headers(headers, sensitive=["x-api-key"], secrets=["k", "secret-1"])
    assert redacted == {
        "X-API-KEY": REDACTED,
        "AUTHORIZATION": REDACTED,
        "X-OTHER": REDACTED,  # ...but a header holding exactly a secret is redacted whatever its length
        "X-FINE": "hello",
        "X-EMBED": f"x {REDACTED} y",
    }


def test_truncate_body():
    assert truncate_body(None, 10, []) is None
    assert truncate_body(b"\xff abc", 10, []) == "\ufffd abc"
    assert truncate_body(b"x" * 30, 10, []) == "xxxxxxxxxx... [30 bytes in all]"


def test_journal_is_a_bounded_ring_read_newest_first():
    journal = Journal(3)
    for n in range(5):
        journal.record(entry(n))
    assert [e.path for e in journal.entries()] == ["/4", "/3", "/2"]
    assert [e.path for e in journal.entries(limit=1)] == ["/4"]
    journal.clear()
    assert journal.entries() == []


def test_a_pending_entry_is_built_once_when_first_read_and_kept_in_order():
    built: list[int] = []

    def pending(n: int) -> PendingEntry:
        return PendingEntry(lambda: built.append(n) or entry(n))

    journal = Journal(size=3)
    journal.record(entry(0))
    for n in (1, 2, 3):
        journal.record_later(pending(n))
    assert built == []  # nothing built while recording
    assert [e.path for e in journal.entries(limit=2)] == ["/3", "/2"]
    assert built == [3, 2]  # only what was read
    assert [e.path for e in journal.entries()] == ["/3", "/2", "/1"]
    assert built == [3, 2, 1]  # each built once


def test_an_entry_read_later_tells_the_time_of_the_exchange_not_of_the_reading(mock):
    mock.client.simulate_get("/health")
    when = mock.clock.now
    mock.clock.advance(hours=1)
    assert mock.journal()[0]["time"] == when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_the_app_journals_api_exchanges_with_secrets_redacted(make_mock):
    mock = make_mock(journal_body_chars=40)
    mock.client.simulate_post(
        "/tasks",
        json={"subject": f"mentions {mock.api_key} and " + "y" * 100},
        headers={"Authorization": "Bearer anything", "X-Trace": "t-1"},
    )
    mock.bare.simulate_get("/health", headers={"X-API-Key": "wrong-guess"})
    newest, older = mock.journal()
    assert newest["status"] == 401 and newest["why"] == "auth: wrong key"
    assert newest["request_headers"]["X-API-KEY"] == REDACTED
    assert older["method"] == "POST" and older["path"] == "/tasks" and older["status"] == 201
    assert older["why"] == "ok"
    assert older["request_headers"]["X-API-KEY"] == REDACTED
    assert older["request_headers"]["AUTHORIZATION"] == REDACTED
    assert older["request_headers"]["X-TRACE"] == "t-1"
    assert older["request_body"].startswith(f'{{"subject": "mentions {REDACTED}')
    assert older["request_body"].endswith("bytes in all]")
    assert older["response_body"].startswith('{"id":"task-1"')
    assert older["time"] == "2024-01-15T10:00:00.000Z"
    assert mock.api_key not in str(mock.journal())


def test_admin_requests_are_not_journaled_and_the_journal_is_bounded(make_mock):
    mock = make_mock(journal_size=5)
    for _ in range(8):
        mock.client.simulate_get("/health")
    mock.admin("GET", "records")
    assert len(mock.journal()) == 5
    assert {e["path"] for e in mock.journal()} == {"/health"}


def test_journal_says_why_for_validation_errors(mock):
    mock.client.simulate_post("/contacts", json={"contacts": [{}]})
    mock.client.simulate_post("/tasks", body=b"{oops")
    assert [e["why"] for e in mock.journal()] == [
        "malformed body: The body is not valid JSON: "
        "Expecting property name enclosed in double quotes at line 1 column 2",
        "validation error: contacts[0].externalId is required",
    ]


def test_the_access_log_is_one_line_per_request_even_for_hostile_paths(mock, caplog):
    with caplog.at_level("INFO", logger="mock_server.access"):
        mock.client.simulate_get("/tasks/a%0Ab%00c")
        mock.client.simulate_get("/health")
    assert [record.getMessage().split(" (")[0] for record in caplog.records] == [
        "GET /tasks/a\\nb\\x00c -> 404",
        "GET /health -> 200",
    ]


@pytest.mark.parametrize(
    ("faults", "method", "path", "headers", "status"),
    [
        (("TASK-BATCH-ROUTE",), "POST", "/tasks/batch", None, 405),  # a fault that answers first
        ((), "POST", "/tasks", {"X-API-Key": "wrong-guess"}, 401),  # refused before the body is read
        (("rate-limit:rate=1",), "POST", "/tasks", None, 429),  # a transport fault, before everything
    ],
    ids=["rule-fault", "refused-key", "transport-fault"],
)
def test_a_request_answered_before_its_body_was_read_keeps_its_body(
    make_mock, faults, method, path, headers, status
):
    # Otherwise the journal, its HAR and a replay of that HAR would say the request had no body.
    mock = make_mock()
    if faults:
        mock.set_faults(*faults)
    body = {"ids": ["task-1"], "completed": True} if path == "/tasks/batch" else {"subject": "kept"}
    client = mock.bare if headers else mock.client
    result = client.simulate_request(method, path, json=body, headers=headers)
    assert result.status_code == status
    newest = mock.journal()[0]
    assert json.loads(newest["request_body"]) == body
    har = mock.admin("GET", "journal.har").json
    assert json.loads(har["log"]["entries"][-1]["request"]["postData"]["text"]) == body


def test_the_key_is_redacted_however_the_client_encoded_it(make_mock):
    mock = make_mock()
    key = mock.api_key
    encoded = "".join(f"%{byte:02X}" for byte in key.encode())  # every character percent-encoded
    mock.client.simulate_get(f"/tasks/{key}")  # the key sent as a task id: 404, "No task ... ID: <key>"
    mock.client.simulate_get("/health", query_string=f"k={encoded}")
    mock.client.simulate_get(f"/tasks/{encoded}")
    escaped = "".join(f"\\u{ord(char):04x}" for char in key)
    mock.client.simulate_post(
        "/tasks", body=f'{{"description": "{escaped}"}}', headers={"Content-Type": "application/json"}
    )
    journal = json.dumps(mock.journal(), ensure_ascii=False)
    har = mock.admin("GET", "journal.har").text
    lines = mock.admin("GET", "journal.jsonl").text
    for shown in (journal, har, lines):
        assert key not in shown and encoded not in shown and escaped not in shown
    # Decoded the way a HAR viewer decodes it, too.
    assert key not in json.dumps(json.loads(har), ensure_ascii=False)
    har_entries = json.loads(har)["log"]["entries"]
    assert [q["value"] for e in har_entries for q in e["request"]["queryString"]] == [REDACTED]
