"""The app behind real waitress sockets: raw header names, dropped connections, waitress's own errors,
hostile input, and concurrency with both stores."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import time

import pytest

from mock_server import MemoryStore, MockConfig, MockServer, SqliteStore, create_app
from mock_server.runtime import uuid_ids
from mock_server.serving import ConnectionLimits

KEY = "test-key-0123"


def raw_exchange(live, data: bytes, *, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; read one response (to Content-Length, or to the close). Status 0 if none came."""
    with socket.create_connection((live.server.host, live.server.port), timeout=timeout) as sock:
        # The server may answer and close before it has read everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                return (0, {}, received) if not received else _parse(received)
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        headers = _headers(head)
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(head.split(b" ", 2)[1]), headers, body


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}


def _parse(received: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), _headers(head), body


def request_bytes(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
    head += f"Content-Length: {len(body)}\r\n{headers}\r\n"
    return head.encode("latin-1") + body


# --- what only the waitress integration can do ------------------------------------------------------


def test_header_names_are_case_insensitive_over_the_wire(live):
    for name in ("X-API-Key", "x-api-key", "X-API-KEY"):
        assert live.request("GET", "/health", key=False, headers={name: KEY}).status == 200, name


def test_the_case_fault_sees_header_names_as_sent(make_live):
    live = make_live(faults=("AUTH-HEADER-CASE-INSENSITIVE",))
    assert live.request("GET", "/health", key=False, headers={"X-API-Key": KEY}).status == 200
    refused = live.request("GET", "/health", key=False, headers={"x-api-key": KEY})
    assert refused.status == 401 and refused.json()["message"] == "The X-API-Key header is missing."


def test_drop_connection_closes_without_an_answer_and_is_journaled(make_live):
    live = make_live(faults=("drop-connection:rate=1",))
    with pytest.raises(http.client.RemoteDisconnected):
        live.request("GET", "/health")
    assert raw_exchange(live, request_bytes("GET", "/health")) == (0, {}, b"")
    (entry, _) = live.admin("GET", "journal").json()["entries"]
    assert entry["status"] == 0 and entry["why"] == "fault drop-connection"
    live.admin("PUT", "faults", {"faults": ["drop-connection:rate=0.5"], "seed": 1})
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append(live.request("GET", "/health").status)
        except http.client.RemoteDisconnected:
            outcomes.append(0)
    assert set(outcomes) == {0, 200}


def test_waitress_rejections_get_the_json_error_body(live):
    status, headers, body = raw_exchange(
        live, request_bytes("GET", "/health", headers="X-Big: " + "a" * 300_000 + "\r\n")
    )
    assert status == 431 and headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": "Request header fields too large",
        "message": "The request headers are larger than this server accepts.",
    }
    status, headers, body = raw_exchange(
        live, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
    )
    assert status == 400 and json.loads(body)["error"] == "Bad request"


def test_a_chunked_body_over_the_limit_is_413(make_live):
    live = make_live(max_body_bytes=1000)
    chunk = b"x" * 800
    data = (
        b"POST /tasks HTTP/1.1\r\nHost: x\r\nX-API-Key: "
        + KEY.encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"320\r\n" + chunk + b"\r\n") * 2
        + b"0\r\n\r\n"
    )
    status, _, body = raw_exchange(live, data)
    assert status == 413 and json.loads(body)["error"] == "Payload too large"


# --- idle and slow sockets ---------------------------------------------------------------------------


def _slow_sockets(live, count: int) -> list[socket.socket]:
    """Connections that began a request and send its head one header line at a time (slowloris)."""
    opened = []
    for _ in range(count):
        sock = socket.create_connection((live.server.host, live.server.port), timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        opened.append(sock)
    return opened


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.sendall(b"X-More: 1\r\n")
        sock.settimeout(0.05)
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:  # reset: closed all the same
        return True


def test_200_slow_header_sockets_neither_lock_a_client_out_nor_outlive_the_request_deadline(make_live):
    live = make_live(limits=ConnectionLimits(request_timeout=1.0))
    kept_alive = live.connection()
    assert live.request("GET", "/health", connection=kept_alive).status == 200
    slow = _slow_sockets(live, 200)
    silent = socket.create_connection((live.server.host, live.server.port), timeout=5)
    try:
        for _ in range(5):  # during the attack, fresh clients are answered at once
            started = time.perf_counter()
            assert live.request("GET", "/health").status == 200
            assert time.perf_counter() - started < 2
        time.sleep(1.8)  # the deadline (1 s) plus the sweep's period (0.5 s), with room to spare
        assert all(_closed_by_server(sock) for sock in slow)
        assert silent.recv(1) == b""  # a connection that never sent a byte is closed too
        # A keep-alive connection idle between requests is not held to the deadline (only to the
        # idle timeout): pooled clients keep their connections.
        assert live.request("GET", "/health", connection=kept_alive).status == 200
    finally:
        for sock in [*slow, silent, kept_alive]:
            sock.close()


# --- hostile input ----------------------------------------------------------------------------------

NESTED = b'{"subject": "x", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
CORPUS = [
    ("bad JSON", request_bytes("POST", "/tasks", b'{"subject": ')),
    ("JSON with NaN", request_bytes("POST", "/activities", b'{"type": "EMAIL", "metadata": {"a": NaN}}')),
    ("wrong types", request_bytes("POST", "/contacts", b'{"contacts": {"externalId": 5}}')),
    ("body is a string", request_bytes("PUT", "/companies", b'"companies"')),
    (
        "10 MB body",
        request_bytes("POST", "/contacts", b'{"contacts": [' + b'{"externalId": "x"},' * 500_000 + b"{}]}"),
    ),
    ("100,000 nested brackets", request_bytes("POST", "/tasks", NESTED)),
    ("invalid UTF-8", request_bytes("POST", "/tasks", b'{"subject": "\xff\xfe\xc3"}')),
    ("raw NUL byte in JSON", request_bytes("POST", "/tasks", b'{"subject": "a\x00b"}')),
    ("NUL in the path", request_bytes("GET", "/tasks/%00")),
    ("encoded slash in an id", request_bytes("GET", "/tasks/a%2Fb")),
    ("dot-dot in an id", request_bytes("PATCH", "/tasks/..", b"{}")),
    ("encoded dot-dot", request_bytes("GET", "/tasks/%2e%2e%2fhealth")),
    ("dot-dot path", request_bytes("GET", "/tasks/../health")),
    ("invalid UTF-8 in the path", request_bytes("GET", "/tasks/%ff%fe")),
    ("unknown method", request_bytes("BREW", "/tasks")),
    ("WebDAV method", request_bytes("PROPFIND", "/tasks")),
    ("undeclared method", request_bytes("DELETE", "/tasks/batch")),
    ("huge header", request_bytes("GET", "/health", headers="X-Big: " + "a" * 300_000 + "\r\n")),
    ("huge path", request_bytes("GET", "/tasks/" + "a" * 300_000)),
    ("NUL in a header", request_bytes("GET", "/users", headers="X-Odd: a\x00b\r\n")),
    ("bad Content-Length", b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
    ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
    (
        "batch of a million ids",
        request_bytes("POST", "/tasks/batch", b'{"ids": [' + b"1," * 1_000_000 + b"1]}"),
    ),
    ("taskId batch via PATCH body", request_bytes("PATCH", "/tasks/batch", b'{"completed": true}')),
    ("huge integer", request_bytes("POST", "/tasks", b'{"subject": "x", "n": ' + b"9" * 10_000 + b"}")),
    ("missing key", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
]


@pytest.fixture(scope="module")
def hostile_live():
    """One server for the whole corpus, so the test also shows it keeps answering."""
    app = create_app(MockConfig(api_keys=(KEY,), admin_token="admin-token-0123"))
    server = MockServer(app, port=0, threads=4)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Live:
        pass

    live = Live()
    live.server = server
    yield live
    server.stop()
    thread.join(10)


@pytest.mark.parametrize(("name", "data"), CORPUS, ids=[name for name, _ in CORPUS])
def test_hostile_input_is_a_4xx_json_answer(hostile_live, name, data, caplog):
    with caplog.at_level(logging.WARNING):
        status, headers, body = raw_exchange(hostile_live, data)
    assert 400 <= status < 500, (name, status, body[:200])
    assert headers.get("content-type") == "application/json"
    assert isinstance(json.loads(body)["error"], str)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_after_the_corpus_the_server_still_answers_and_never_reached_the_catch_all(hostile_live):
    status, _, body = raw_exchange(hostile_live, request_bytes("GET", "/health"))
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    admin = b"GET /__admin/journal HTTP/1.1\r\nHost: x\r\nX-Admin-Token: admin-token-0123\r\n\r\n"
    _, _, body = raw_exchange(hostile_live, admin)
    entries = json.loads(body)["entries"]
    assert len(entries) >= 15
    assert all(entry["status"] < 500 for entry in entries)
    assert not any(entry["why"].startswith("unhandled") for entry in entries)


# --- concurrency ------------------------------------------------------------------------------------


def _hammer(live, threads: int = 8, per_thread: int = 200) -> list[str]:
    ids: list[list[str]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            conn = live.connection(timeout=30)
            for n in range(per_thread):
                reply = live.request("POST", "/tasks", json_body={"subject": f"{slot}-{n}"}, connection=conn)
                assert reply.status == 201, reply.body
                ids[slot].append(reply.json()["id"])
            conn.close()
        except BaseException as ex:  # surfaced below, in the test thread
            errors.append(ex)

    workers = [threading.Thread(target=work, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors[0]
    return [task_id for chunk in ids for task_id in chunk]


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_8_threads_x_200_creates_give_1600_distinct_readable_tasks(make_live, tmp_path, store_kind):
    store = SqliteStore(tmp_path / "mock.db") if store_kind == "sqlite" else MemoryStore()
    live = make_live(store=store, threads=8, ids=uuid_ids)  # the production id source
    started = time.perf_counter()
    ids = _hammer(live)
    assert len(ids) == len(set(ids)) == 1600
    reply = live.request("POST", "/tasks/batch", json_body={"ids": ids})
    assert reply.status == 200
    tasks = reply.json()
    assert [task["id"] for task in tasks] == ids
    assert {task["subject"] for task in tasks} == {f"{s}-{n}" for s in range(8) for n in range(200)}
    store.close()
    assert time.perf_counter() - started < 60


def test_requests_waiting_for_a_thread_are_reported_once_in_a_while_not_once_each(make_live, caplog):
    live = make_live(threads=1, faults=("latency:ms=250",))
    replies: list[int] = []

    def get() -> None:
        conn = http.client.HTTPConnection(live.server.host, live.server.port, timeout=30)
        conn.request("GET", "/health", headers={"X-API-Key": live.mock.api_key})
        replies.append(conn.getresponse().status)
        conn.close()

    with caplog.at_level(logging.WARNING, logger="mock_server"):
        clients = [threading.Thread(target=get) for _ in range(6)]  # 1.5 s of work for one thread
        for client in clients:
            client.start()
        for client in clients:
            client.join()
    assert replies == [200] * 6
    waiting = [r.getMessage() for r in caplog.records if r.name == "mock_server" and "waiting" in r.message]
    assert len(waiting) == 1, waiting
    assert "all 1 threads are busy" in waiting[0]


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="SO_REUSEPORT is not available")
def test_groups_bound_with_reuse_port_share_one_port():
    from mock_server.serving import bind_sockets

    first = bind_sockets("127.0.0.1", 0, reuse_port=True)
    port = first[0].getsockname()[1]
    second = bind_sockets("127.0.0.1", port, reuse_port=True)
    try:
        assert second[0].getsockname()[1] == port
        with pytest.raises(OSError):
            bind_sockets("127.0.0.1", port)  # a socket without the option cannot join them
    finally:
        for sock in first + second:
            sock.close()
