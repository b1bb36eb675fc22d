"""Fixtures for the conformance suite's own tests: a tiny conformant fake CRM, hostile servers' plumbing,
and the bundled mock started as a subprocess.

FakeCRM is deliberately small and independent of the mock: a plain `http.server` on 127.0.0.1, port 0,
in a thread. A test bends one behaviour with `override` (answer this request differently) to make a
check fail, or pass, for exactly the reason under test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conformance.checks import SpecSchemas
from conformance.runner import RunOutcome, run
from conformance.settings import RunSettings

KEY = "fake-key-0123456789"


def pytest_configure(config: pytest.Config) -> None:
    # The plugin tests need `pytester`. `pytest_plugins = ["pytester"]` is refused in a conftest below
    # the rootdir, and this one is not loaded early when pytest runs from the repository root, so it is
    # registered here, with the two options its own pytest_addoption would have added (that hook has
    # already run). The clean fix is one line in a top-level tests/conftest.py.
    if not config.pluginmanager.has_plugin("pytester"):
        for name, default in (("lsof", False), ("runpytest", "inprocess")):
            if not hasattr(config.option, name):
                setattr(config.option, name, default)
        config.pluginmanager.import_plugin("pytester")


Answer = tuple[int, Any]  # (status, JSON-able body, or bytes for a raw body)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeCRM:
    """A conformant in-memory CRM.

    `override(request, app) -> Answer | None` is consulted before anything else (None: carry on);
    `transform(request, answer) -> answer` bends the conformant answer afterwards.
    """

    key: str = KEY
    header: str = "X-API-Key"
    override: Callable[[Request, FakeCRM], Answer | None] | None = None
    transform: Callable[[Request, Answer], Answer] | None = None
    seen: list[Request] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: set[tuple[str, str]] = field(default_factory=set)
    counter: int = 0

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    # --- dispatch -----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Answer:
        self.seen.append(request)
        answer = self._handle(request)
        return self.transform(request, answer) if self.transform is not None else answer

    def _handle(self, request: Request) -> Answer:
        if self.override is not None:
            answer = self.override(request, self)
            if answer is not None:
                return answer
        supplied = {name.lower(): value for name, value in request.headers.items()}.get(self.header.lower())
        if supplied != self.key:
            return 401, {"error": "Unauthorized", "message": "Missing or invalid API key."}
        route = self.route(request.method, request.path)
        if route is None:
            return 404, {"error": "Not found", "message": f"No route {request.path}."}
        if isinstance(route, int):
            return route, {"error": "Method not allowed", "message": "Use another method."}
        operation, handler, args = route
        body: Any = None
        if SCHEMAS.request_schema(operation) is not None:
            try:
                body = json.loads(request.body or b"")
            except ValueError:
                return 400, {"error": "Bad request", "message": "The body is not valid JSON."}
            problems = SCHEMAS.request_errors(operation, body)
            if problems:
                return 400, {"error": "Bad request", "message": problems[0]}
        return handler(body, *args)

    def route(
        self, method: str, path: str
    ) -> tuple[str, Callable[..., Answer], tuple[str, ...]] | int | None:
        path = path.split("?", 1)[0]
        table: dict[str, dict[str, tuple[str, Callable[..., Answer]]]] = {
            "/health": {"GET": ("checkHealth", lambda _b: (200, {"status": "ok"}))},
            "/contacts": {
                "POST": ("createContacts", self.create_contacts),
                "PUT": ("updateContacts", self.update_contacts),
            },
            "/contacts/sync": {"POST": ("syncContacts", self.sync_contacts)},
            "/companies": {
                "POST": ("createCompanies", self.create_companies),
                "PUT": ("updateCompanies", self.update_companies),
            },
            "/companies/sync": {"POST": ("syncCompanies", self.sync_companies)},
            "/associations": {"POST": ("createAssociations", self.associate)},
            "/activities": {"POST": ("createActivity", self.create_activity)},
            "/tasks": {"POST": ("createTask", self.create_task)},
            "/tasks/batch": {
                "POST": ("getTasksBatch", self.batch_get),
                "PATCH": ("completeTasksBatch", self.batch_complete),
            },
            "/users": {
                "GET": ("listUsers", lambda _b: (200, [{"id": "user-1", "name": "Ada", "email": None}]))
            },
        }
        if path in table:
            methods = table[path]
            if method not in methods:
                return 405
            operation, handler = methods[method]
            return operation, handler, ()
        match = re.fullmatch(r"/tasks/([^/]+)", path)
        if match:
            from urllib.parse import unquote

            task_id = unquote(match.group(1))
            if method == "GET":
                return "getTask", self.get_task, (task_id,)
            if method == "PATCH":
                return "updateTask", self.update_task, (task_id,)
            return 405
        return None

    # --- handlers -----------------------------------------------------------------------------------

    def _create(self, store: dict[str, dict[str, Any]], prefix: str, items: list[dict[str, Any]]) -> Answer:
        results = []
        for item in items:
            crm_id = self.next_id(prefix)
            store[crm_id] = dict(item)
            results.append({"externalId": item["externalId"], "crmId": crm_id})
        return 201, {"results": results}

    def create_contacts(self, body: Any) -> Answer:
        return self._create(self.contacts, "crm-contact", body["contacts"])

    def create_companies(self, body: Any) -> Answer:
        return self._create(self.companies, "crm-company", body["companies"])

    def _update(self, store: dict[str, dict[str, Any]], items: list[dict[str, Any]]) -> Answer:
        results = []
        for item in items:
            if item["crmId"] in store:
                store[item["crmId"]].update(item)
                results.append({"crmId": item["crmId"], "success": True})
            else:
                results.append({"crmId": item["crmId"], "success": False, "error": "Not found"})
        return 200, {"results": results}

    def update_contacts(self, body: Any) -> Answer:
        return self._update(self.contacts, body["contacts"])

    def update_companies(self, body: Any) -> Answer:
        return self._update(self.companies, body["companies"])

    def sync_contacts(self, body: Any) -> Answer:
        results = []
        for item in body["contacts"]:
            for crm_id, stored in self.contacts.items():
                if (
                    stored.get("externalId") == item["externalId"]
                    or (item.get("email") and str(stored.get("email", "")).lower() == item["email"].lower())
                    or (
                        item.get("linkedinUrl")
                        and str(stored.get("linkedinUrl", "")).rstrip("/") == item["linkedinUrl"].rstrip("/")
                    )
                ):
                    results.append(
                        {"externalId": item["externalId"], "crmId": crm_id, "properties": {"leadScore": 1}}
                    )
                    break
        return 200, {"results": results}

    @staticmethod
    def _domain(value: Any) -> str:
        text = str(value or "").strip().lower()
        text = re.sub(r"^https?://", "", text)
        text = re.sub(r"^www\.", "", text)
        return text.split("/", 1)[0].strip()

    def sync_companies(self, body: Any) -> Answer:
        results = []
        for item in body["companies"]:
            for crm_id, stored in self.companies.items():
                if stored.get("externalId") == item["externalId"] or (
                    item.get("domain") and self._domain(stored.get("domain")) == self._domain(item["domain"])
                ):
                    results.append({"externalId": item["externalId"], "crmId": crm_id})
                    break
        return 200, {"results": results}

    def associate(self, body: Any) -> Answer:
        created = 0
        errors = []
        for pair in body["associations"]:
            contact, company = pair["contactCRMId"], pair["companyCRMId"]
            if contact not in self.contacts or company not in self.companies:
                errors.append({**pair, "error": "Contact or company not found"})
            elif (contact, company) not in self.links:
                self.links.add((contact, company))
                created += 1
        answer: dict[str, Any] = {"success": True, "created": created}
        if errors:
            answer["errors"] = errors
        return 200, answer

    def create_activity(self, body: Any) -> Answer:
        return 201, {"id": self.next_id("activity"), **body}

    def create_task(self, body: Any) -> Answer:
        task = {"id": self.next_id("task"), **body, "completed": False, "completedAt": None}
        self.tasks[task["id"]] = task
        return 201, task

    def get_task(self, _body: Any, task_id: str) -> Answer:
        if task_id not in self.tasks:
            return 404, {"error": "Task not found", "message": f"No task exists with ID: {task_id}"}
        return 200, self.tasks[task_id]

    def _complete(self, task: dict[str, Any], completed: bool) -> None:
        task["completed"] = completed
        task["completedAt"] = (
            datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if completed else None
        )

    def update_task(self, body: Any, task_id: str) -> Answer:
        if task_id not in self.tasks:
            return 404, {"error": "Task not found", "message": f"No task exists with ID: {task_id}"}
        task = self.tasks[task_id]
        for name, value in body.items():
            if name == "completed":
                self._complete(task, value)
            else:
                task[name] = value
        return 200, task

    def batch_get(self, body: Any) -> Answer:
        return 200, [self.tasks[i] for i in body["ids"] if i in self.tasks]

    def batch_complete(self, body: Any) -> Answer:
        found = [self.tasks[i] for i in body["ids"] if i in self.tasks]
        for task in found:
            self._complete(task, body["completed"])
        return 200, found


SCHEMAS = SpecSchemas()


@dataclass
class Trickle:
    """An answer body sent one byte every `every_s` seconds: a read never times out, the answer never ends."""

    payload: Any
    every_s: float = 0.5


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
        with self.server.lock:
            status, payload = self.server.app.handle(request)
        trickle = payload if isinstance(payload, Trickle) else None
        if trickle is not None:
            payload = trickle.payload
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        if not isinstance(payload, bytes):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if trickle is None:
            self.wfile.write(data)
            return
        for offset in range(len(data)):
            self.wfile.write(data[offset : offset + 1])
            self.wfile.flush()
            time.sleep(trickle.every_s)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The checks send 16 creates at once; the default backlog of 5 would reset some of them.
    request_queue_size = 64

    def __init__(self, app: FakeCRM) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app = app
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (the timeout tests) leaves a broken pipe: expected, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@dataclass
class Running:
    app: FakeCRM
    url: str


@pytest.fixture
def fake_crm() -> Iterator[Callable[..., Running]]:
    """Start FakeCRMs: `fake_crm(override=...)` → Running(app, url); all stopped after the test."""
    servers: list[_Server] = []

    def start(**kwargs: Any) -> Running:
        app = FakeCRM(**kwargs)
        server = _Server(app)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        return Running(app=app, url=f"http://127.0.0.1:{server.server_address[1]}")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def settings_for(url: str, key: str = KEY, **kwargs: Any) -> RunSettings:
    base = RunSettings(base_url=url, api_key=key, timeout=5.0)
    return replace(base, **kwargs)


@pytest.fixture
def judge(tmp_path: Path) -> Callable[..., RunOutcome]:
    """Run the scripted suite (no Schemathesis, no report files) and return the outcome."""

    def go(url: str, *only: str, key: str = KEY, lines: list[str] | None = None, **kwargs: Any) -> RunOutcome:
        settings = settings_for(url, key, only=tuple(only), report_dir=tmp_path / "reports", **kwargs)
        sink = lines if lines is not None else []
        return run(settings, out=sink.append, engine=False, write=False)

    return go


def _outcomes(outcome: RunOutcome) -> dict[str, str]:
    return {result.rule.id: result.outcome for result in outcome.report.results}


@pytest.fixture
def outcomes() -> Callable[[RunOutcome], dict[str, str]]:
    """`outcomes(run_outcome)` → {rule id: outcome}."""
    return _outcomes


# --- the bundled mock, as a subprocess ----------------------------------------------------------------

MOCK_AVAILABLE = importlib.util.find_spec("mock_server") is not None


@dataclass
class Mock:
    """A running `python -m mock_server`; `switch(...)` replaces its faults and resets its records."""

    url: str
    key: str
    process: subprocess.Popen[str]
    admin_token: str

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Call the mock's admin API; its status and body (errors included, not raised)."""
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"X-Admin-Token": self.admin_token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as ex:
            return ex.code, ex.read()

    def reset(self) -> None:
        assert self.admin("POST", "/__admin/reset", {})[0] == 200

    def switch(self, *faults: str) -> None:
        assert self.admin("PUT", "/__admin/faults", {"faults": list(faults)})[0] == 200
        self.reset()


def start_mock(*extra: str, key: str | None = None, wait_s: float = 30.0) -> Mock:
    """Start the mock the way a user does (its CLI, port 0) and read its one listening line."""
    if not MOCK_AVAILABLE:
        pytest.skip("mock_server is not installed")
    key = key or "canary-" + secrets.token_hex(8)
    token = secrets.token_hex(8)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mock_server",
            "--port",
            "0",
            "--api-key",
            key,
            "--admin-token",
            token,
            "--log-level",
            "warning",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        # The developer's own ENGINY_* settings (a scenario, faults, a key) must not reach test mocks.
        env={name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")},
    )
    stdout = process.stdout
    assert stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(wait_s)
    match = re.search(r"listening on (http://\S+)", lines[0]) if lines else None
    if not match:
        process.kill()
        process.wait(5)
        raise RuntimeError(f"The mock did not start: first line {lines[:1]!r}")
    return Mock(url=match.group(1), key=key, process=process, admin_token=token)


def stop_mock(mock: Mock) -> None:
    """Stop the mock by its own pid: terminate, then kill if it lingers."""
    mock.process.terminate()
    try:
        mock.process.wait(5)
    except subprocess.TimeoutExpired:
        mock.process.kill()
        mock.process.wait(5)


@pytest.fixture(scope="session")
def mock() -> Iterator[Mock]:
    """The conformant mock, once per session. Its key is a canary: it must never appear in any output."""
    running = start_mock()
    yield running
    stop_mock(running)


@pytest.fixture(scope="module")
def start_mocks() -> Iterator[Callable[..., Mock]]:
    """Start more mocks for one test module: `start_mocks("--fault", "TASK-BATCH-ROUTE", key=K)`.

    Every mock it started is stopped when the module's tests are done.
    """
    started: list[Mock] = []

    def start(*extra: str, key: str | None = None) -> Mock:
        started.append(start_mock(*extra, key=key))
        return started[-1]

    yield start
    for running in started:
        stop_mock(running)


@pytest.fixture(scope="session")
def faulty_mock() -> Iterator[Mock]:
    """A second mock whose faults tests switch with `faulty_mock.switch("RULE-ID")`."""
    running = start_mock()
    yield running
    stop_mock(running)


@pytest.fixture
def mock_starter() -> Iterator[Callable[..., Mock]]:
    """`mock_starter("--fault", "X")`: a mock of the test's own, stopped after the test."""
    started: list[Mock] = []

    def start(*extra: str, key: str | None = None) -> Mock:
        running = start_mock(*extra, key=key)
        started.append(running)
        return running

    yield start
    for running in started:
        stop_mock(running)


# --- hostile servers: raw sockets, so a test controls every byte (or the lack of them) ---------------

RawHandler = Callable[[socket.socket, bytes], None]


@dataclass
class Hostile:
    url: str
    port: int
    received: list[bytes]


class _RawServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


@pytest.fixture
def hostile() -> Iterator[Callable[[RawHandler], Hostile]]:
    """Start raw TCP servers on 127.0.0.1:0: `hostile(handler)` where handler(conn, request_bytes) answers
    (or not). Every request's raw bytes are kept in `received`, to check what reached the server."""
    servers: list[_RawServer] = []

    def start(handler: RawHandler) -> Hostile:
        received: list[bytes] = []

        class Handle(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                conn.settimeout(10)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    head, _, rest = data.partition(b"\r\n\r\n")
                    match = re.search(rb"content-length:\s*(\d+)", head, re.I)
                    length = int(match.group(1)) if match else 0
                    while len(rest) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        rest += chunk
                    received.append(head + b"\r\n\r\n" + rest)
                    handler(conn, head + b"\r\n\r\n" + rest)
                except OSError:
                    pass  # the client went away (e.g. it stopped reading a huge answer)

        server = _RawServer(("127.0.0.1", 0), Handle)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        port = server.server_address[1]
        return Hostile(url=f"http://127.0.0.1:{port}", port=port, received=received)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def http_answer(status: str, body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n{extra}\r\n"
    ).encode() + body


@pytest.fixture
def answer() -> Callable[..., bytes]:
    """`answer("200 OK", b"{}", content_type=..., extra="Location: ...\\r\\n")` → raw HTTP bytes."""
    return http_answer


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    return free_port()
