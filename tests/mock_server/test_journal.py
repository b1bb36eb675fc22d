"""The journal: redaction, truncation, the ring buffer, and what the app records in it."""

from __future__ import annotations

from mock_server.journal import REDACTED, Journal, JournalEntry, redact, redact_headers, truncate_body


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
