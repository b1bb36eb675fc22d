"""Fixtures for the mock's tests: an app with injected clock and ids, a client, a real waitress server.

Test modules cannot import this file (pytest runs with --import-mode=importlib), so everything they
need comes through fixtures: ``mock`` / ``make_mock`` (in-process, falcon TestClient) and ``live`` /
``make_live`` (the same app served by waitress on a free port).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import falcon
import falcon.testing
import pytest

from mock_server import MemoryStore, MockConfig, MockServer, Store, create_app
from mock_server.serving import ConnectionLimits

API_KEY = "test-key-0123"
ADMIN_TOKEN = "admin-token-0123"


@dataclass
class FixedClock:
    """A clock that stands still until told to move."""

    now: datetime = field(default_factory=lambda: datetime(2024, 1, 15, 10, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class CountingIds:
    """Predictable ids: task-1, task-2, contact-3, ..."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}-{next(self._counter)}"


def make_config(**overrides: Any) -> MockConfig:
    settings: dict[str, Any] = {"api_keys": (API_KEY,), "admin_token": ADMIN_TOKEN}
    settings.update(overrides)
    return MockConfig(**settings)


@dataclass
class Mock:
    """An app under test with its collaborators and a client that sends the key."""

    app: falcon.App[falcon.Request, falcon.Response]
    store: Store
    clock: FixedClock
    client: falcon.testing.TestClient
    api_key: str = API_KEY
    admin_token: str = ADMIN_TOKEN

    @property
    def bare(self) -> falcon.testing.TestClient:
        """A client that sends no key unless told to."""
        return falcon.testing.TestClient(self.app)

    def admin(self, method: str, path: str, **kwargs: Any) -> falcon.testing.Result:
        headers = {"X-Admin-Token": ADMIN_TOKEN, **kwargs.pop("headers", {})}
        return self.client.simulate_request(method, f"/__admin/{path}", headers=headers, **kwargs)

    def set_faults(self, *specs: str, seed: int | None = None) -> None:
        body: dict[str, Any] = {"faults": list(specs)}
        if seed is not None:
            body["seed"] = seed
        result = self.admin("PUT", "faults", json=body)
        assert result.status_code == 200, result.text

    def journal(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.admin("GET", "journal").json["entries"]
        return entries

    def create_task(self, **fields: Any) -> dict[str, Any]:
        result = self.client.simulate_post("/tasks", json={"subject": "Follow up", **fields})
        assert result.status_code == 201, result.text
        task: dict[str, Any] = result.json
        return task

    def create(self, family: str, *items: dict[str, Any]) -> list[str]:
        result = self.client.simulate_post(f"/{family}", json={family: list(items)})
        assert result.status_code == 200, result.text
        return [item["crmId"] for item in result.json["results"]]


MockFactory = Callable[..., Mock]


class Forked:
    """Work run in a forked process, as a worker of --workers is; a failure there fails the test here."""

    def start(self, work: Callable[[], object]) -> int:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                work()
                code = 0
            finally:
                os._exit(code)
        return pid

    def wait(self, pid: int) -> None:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0

    def __call__(self, work: Callable[[], object]) -> None:
        self.wait(self.start(work))


@pytest.fixture
def in_child() -> Forked:
    """``in_child(work)``: run ``work()`` in a forked child and wait; ``start``/``wait`` to overlap."""
    return Forked()


@pytest.fixture
def make_mock() -> MockFactory:
    """Build a mock from config overrides; ``store=`` injects a store, ``faults=`` switches faults on."""

    def build(
        *,
        store: Store | None = None,
        faults: tuple[str, ...] = (),
        ids: Callable[[str], str] | None = None,
        **overrides: Any,
    ) -> Mock:
        clock = FixedClock()
        chosen = store if store is not None else MemoryStore()
        config = make_config(fault_specs=faults, **overrides)
        app = create_app(config, store=chosen, clock=clock, ids=ids or CountingIds())
        client = falcon.testing.TestClient(app, headers={"X-API-Key": API_KEY})
        return Mock(app=app, store=chosen, clock=clock, client=client)

    return build


@pytest.fixture
def mock(make_mock: MockFactory) -> Mock:
    return make_mock()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Live:
    """A mock served by waitress; ``request`` sends the API key unless told otherwise."""

    mock: Mock
    server: MockServer

    @property
    def url(self) -> str:
        return self.server.url

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.server.host, self.server.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        key: bool = True,
        connection: http.client.HTTPConnection | None = None,
    ) -> Reply:
        sent = {"Content-Type": "application/json"} if json_body is not None or body is not None else {}
        if key:
            sent["X-API-Key"] = API_KEY
        sent.update(headers or {})
        data = json.dumps(json_body).encode() if json_body is not None else body
        conn = connection or self.connection()
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            if connection is None:
                conn.close()

    def admin(self, method: str, path: str, json_body: Any = None) -> Reply:
        return self.request(
            method, f"/__admin/{path}", json_body=json_body, key=False, headers={"X-Admin-Token": ADMIN_TOKEN}
        )


@contextmanager
def serving(app: Any, *, threads: int = 4, limits: ConnectionLimits | None = None) -> Iterator[MockServer]:
    """Serve ``app`` with the mock's waitress integration on a free port, in a background thread."""
    server = MockServer(app, host="127.0.0.1", port=0, threads=threads, limits=limits)
    thread = threading.Thread(target=server.serve_forever, name="mock-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the server did not stop"


@pytest.fixture
def make_live(make_mock: MockFactory) -> Iterator[Callable[..., Live]]:
    """Serve a mock built like ``make_mock(**overrides)``; stopped at the end of the test."""
    stack: list[Any] = []

    def build(*, threads: int = 4, limits: ConnectionLimits | None = None, **overrides: Any) -> Live:
        built = make_mock(**overrides)
        context = serving(built.app, threads=threads, limits=limits)
        server = context.__enter__()
        stack.append(context)
        return Live(mock=built, server=server)

    yield build
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture
def live(make_live: Callable[..., Live]) -> Live:
    return make_live()
