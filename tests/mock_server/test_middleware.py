"""The shortcut for GET /health: taken only in the plain case, and indistinguishable from Falcon's path."""

from __future__ import annotations

import logging

import falcon.testing
import pytest


@pytest.fixture(autouse=True)
def access_log_off(caplog):
    # The shortcut stands aside while the access log is on; another test in this process may have
    # left it on (the CLI's --log-level debug), so each test here starts with it off.
    caplog.set_level(logging.WARNING, logger="mock_server.access")


def _shortcut_answers(mock, method: str = "GET", path: str = "/health", **environ) -> bool:
    """Does the shortcut itself answer this request (rather than leaving it to Falcon)?"""
    headers = environ.pop("headers", {"X-API-Key": mock.api_key})
    env = falcon.testing.create_environ(path=path, method=method, headers=headers, **environ)
    return mock.app.shortcut(env, lambda status, headers, exc_info=None: None) is not None


def _without_duration(entry: dict) -> dict:
    return {name: value for name, value in entry.items() if name != "duration_ms"}


def test_the_shortcut_answers_and_journals_exactly_as_falcon_does(make_mock):
    plain = make_mock()
    assert _shortcut_answers(plain)
    # Any fault switched on sends /health through Falcon; this one does not touch /health.
    full = make_mock(faults=("TASK-BATCH-ROUTE",))
    assert not _shortcut_answers(full)
    headers = {"X-API-Key": plain.api_key, "Accept": "application/json", "User-Agent": "monitor/1.0"}
    short, long = (mock.client.simulate_get("/health", headers=headers) for mock in (plain, full))
    assert (short.status, short.headers, short.content) == (long.status, long.headers, long.content)
    assert short.json == {"status": "ok"}
    assert _without_duration(plain.journal()[0]) == _without_duration(full.journal()[0])


KEY = {"X-API-Key": "test-key-0123"}


@pytest.mark.parametrize(
    ("method", "path", "environ"),
    [
        ("GET", "/health", {"query_string": "probe=1"}),
        ("GET", "/health/", {}),
        ("HEAD", "/health", {}),
        ("POST", "/health", {}),
        ("GET", "/health", {"body": "{}"}),
        ("GET", "/health", {"headers": {**KEY, "Transfer-Encoding": "chunked"}}),
        ("GET", "/health", {"headers": {"X-API-Key": "wrong-key"}}),
        ("GET", "/health", {"headers": {"Authorization": "Bearer test-key-0123"}}),
        ("GET", "/tasks/health", {}),
    ],
    ids=[
        "query",
        "trailing slash",
        "HEAD",
        "POST",
        "body",
        "chunked",
        "wrong key",
        "key elsewhere",
        "other path",
    ],
)
def test_anything_but_the_plain_case_goes_through_falcon(mock, method, path, environ):
    assert mock.api_key == KEY["X-API-Key"]
    assert not _shortcut_answers(mock, method, path, **{"headers": KEY, **environ})


def test_a_fault_or_the_access_log_sends_health_through_falcon(make_mock, caplog):
    mock = make_mock()
    mock.set_faults("HEALTH-OK")
    assert not _shortcut_answers(mock)
    assert mock.client.simulate_get("/health").status_code == 404  # the fault still acts
    mock.set_faults()
    assert _shortcut_answers(mock)
    with caplog.at_level(logging.INFO, logger="mock_server.access"):
        assert not _shortcut_answers(mock)
        mock.client.simulate_get("/health")
    assert any("GET /health -> 200" in record.getMessage() for record in caplog.records)


def test_a_shortcut_exchange_is_journaled_with_every_secret_redacted(mock):
    headers = {"X-API-Key": mock.api_key, "X-Trace": f"sent {mock.api_key} twice", "Cookie": "session=1"}
    assert mock.client.simulate_get("/health", headers=headers).status_code == 200
    entry = mock.journal()[0]
    assert mock.api_key not in str(entry)
    assert entry["request_headers"]["X-API-KEY"] == entry["request_headers"]["COOKIE"] == "[REDACTED]"
    assert entry["path"] == "/health" and entry["status"] == 200 and entry["why"] == "ok"
