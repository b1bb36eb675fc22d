"""conformance.client: the key, redaction, bounded waits and reads, no redirects, retries, write budget."""

from __future__ import annotations

import json
import time

import pytest
import requests
import urllib3.exceptions
from requests.adapters import BaseAdapter

from conformance.client import MAX_BODY_BYTES, NOT_JSON, REDACTED, WRONG_KEY, Client, OutOfTime, _retry_after
from conformance.errors import AnswerTimeout, ServerUnreachable, TransportError
from conformance.results import NotApplicable

KEY = 'canary-KEY-\u00e9/+ "quoted"'  # needs JSON escaping and URL quoting: every form must be redacted


def client_for(url: str, **kwargs) -> Client:
    kwargs.setdefault("retry_pauses", (0.01, 0.01))
    return Client(base_url=url, api_key=KEY, timeout=kwargs.pop("timeout", 2.0), **kwargs)


def echo_headers(request, app):
    """Answer every request with its own headers (in the body and in a response header)."""
    return 200, {"headers": request.headers, "note": f"your key is {request.headers.get('X-API-Key')}"}


def everything_recorded(client: Client) -> str:
    return json.dumps(
        [
            [
                r.exchange.request.headers,
                r.exchange.request.url,
                r.exchange.request.body,
                r.exchange.response.headers,
                r.exchange.response.body,
                r.text,
                r.json,
            ]
            for r in client.log
        ],
        ensure_ascii=False,
    )


def test_sends_the_key_and_json_headers_under_the_configured_name(fake_crm):
    crm = fake_crm(override=echo_headers)
    client = client_for(crm.url, api_key_header="X-Custom-Key")
    client.post("/tasks", {"subject": "x"}, operation="createTask")
    sent = crm.app.seen[-1].headers
    assert sent["X-Custom-Key"] == KEY.encode("utf-8").decode("latin-1") or sent["X-Custom-Key"] == KEY
    assert sent["Content-Type"] == "application/json"
    assert sent["Accept"] == "application/json"
    assert "X-API-Key" not in sent


def test_header_helpers(fake_crm):
    crm = fake_crm(override=echo_headers)
    client = client_for(crm.url)
    client.without_key("GET", "/health")
    assert "X-API-Key" not in crm.app.seen[-1].headers
    client.with_wrong_key("GET", "/health")
    assert crm.app.seen[-1].headers["X-API-Key"] == WRONG_KEY
    client.with_key_under("Authorization", "GET", "/health", scheme="Bearer")
    assert crm.app.seen[-1].headers["Authorization"].startswith("Bearer ")
    assert "X-API-Key" not in crm.app.seen[-1].headers
    client.with_key_under("x-api-key", "GET", "/health", valid=True)
    raw_names = [name for name in crm.app.seen[-1].headers]
    assert "x-api-key" in raw_names  # the case is sent as given


def test_key_is_redacted_everywhere_even_when_echoed(fake_crm):
    crm = fake_crm(override=echo_headers)
    client = client_for(crm.url)
    reply = client.get("/health")
    client.with_key_under("Authorization", "GET", "/health", scheme="Bearer")
    client.with_key_under("X-Other", "GET", "/health")
    recorded = everything_recorded(client)
    for form in (KEY, json.dumps(KEY)[1:-1], requests.utils.quote(KEY, safe="")):
        assert form not in recorded
    assert REDACTED in reply.text
    assert reply.exchange.request.headers["X-API-Key"] == REDACTED
    assert client.log[1].exchange.request.headers["Authorization"] == REDACTED
    assert client.log[2].exchange.request.headers["X-Other"] == REDACTED


def test_checks_judge_the_answer_as_given_while_the_record_is_redacted(fake_crm):
    # A key can occur inside real data (a one-letter key inside an id): redacting the parsed answer
    # would make checks judge something the server never said.
    crm = fake_crm(override=echo_headers)
    client = client_for(crm.url)
    reply = client.get("/health")
    assert reply.json["note"] == f"your key is {KEY}"
    assert KEY not in everything_recorded(client)


def test_non_json_body_is_a_sentinel_not_an_error(hostile, answer):
    server = hostile(lambda conn, _: conn.sendall(answer("200 OK", b"<html>hello</html>", "text/html")))
    reply = client_for(server.url).get("/health")
    assert reply.json is NOT_JSON and not reply.is_json
    assert reply.status == 200 and "hello" in reply.text


def test_a_10_mb_answer_is_cut_at_the_cap(hostile):
    def huge(conn, _):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n")
        chunk = b"[" + b"1," * 32767 + b"1"
        sent = 0
        while sent < 10 * 1024 * 1024:
            conn.sendall(chunk)
            sent += len(chunk)

    server = hostile(huge)
    started = time.monotonic()
    reply = client_for(server.url).get("/health")
    assert time.monotonic() - started < 5
    assert reply.truncated and reply.json is NOT_JSON
    assert len(reply.text) <= MAX_BODY_BYTES
    assert len(reply.exchange.response.body) < 20_000  # recordings keep an excerpt only


def test_redirects_are_answers_never_followed(hostile, answer):
    other = hostile(lambda conn, _: conn.sendall(answer("200 OK", b"{}")))
    redirecting = hostile(
        lambda conn, _: conn.sendall(answer("302 Found", b"", extra=f"Location: {other.url}/health\r\n"))
    )
    reply = client_for(redirecting.url).get("/health")
    assert reply.status == 302
    assert other.received == []


def test_refused_connection_is_unreachable_after_bounded_retries(closed_port):
    client = client_for(f"http://127.0.0.1:{closed_port}")
    started = time.monotonic()
    with pytest.raises(ServerUnreachable, match="connection refused"):
        client.get("/health")
    assert time.monotonic() - started < 3
    assert client.failures and client.failures[0].error


def test_unresolvable_host_is_unreachable():
    with pytest.raises(ServerUnreachable, match=r"resolve|connection"):
        client_for("http://enginy-conformance.invalid").get("/health")


def test_a_server_that_never_answers_times_out(hostile):
    server = hostile(lambda conn, _: time.sleep(5))
    started = time.monotonic()
    with pytest.raises(AnswerTimeout, match=r"did not answer within 0\.5 s \(--timeout\)"):
        client_for(server.url, timeout=0.5).get("/health")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    "status_line",
    [b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 200 OK\r\nConnection: close"],
    ids=["keep-alive", "http-1.0", "connection-close"],  # the last two detach the socket from its connection
)
def test_an_answer_trickled_a_byte_at_a_time_is_cut_at_the_deadline(hostile, status_line):
    def trickle(conn, _):
        # Every byte arrives well within any read timeout, so only a deadline for the whole answer stops it.
        conn.sendall(status_line + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            conn.sendall(b" ")
            time.sleep(0.1)

    server = hostile(trickle)
    client = client_for(server.url, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(AnswerTimeout, match=r"did not finish its answer within 1 s"):
        client.get("/health")
    assert 0.9 < time.monotonic() - started < 2.5
    assert client.failures[-1].error == "deadline passed"


def test_headers_trickled_a_line_at_a_time_are_cut_at_the_deadline(hostile):
    def slow_head(conn, _):
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for n in range(100):
            conn.sendall(f"X-Slow-{n}: 1\r\n".encode())
            time.sleep(0.1)

    server = hostile(slow_head)
    started = time.monotonic()
    with pytest.raises(AnswerTimeout):
        client_for(server.url, timeout=1.0).get("/health")
    assert time.monotonic() - started < 2.5


def test_a_429_is_waited_out_for_its_retry_after_then_sent_again(hostile, answer):
    calls: list[float] = []

    def limited(conn, _):
        calls.append(time.monotonic())
        if len(calls) == 1:
            slow_down = answer("429 Too Many Requests", b'{"error": "slow down"}', extra="Retry-After: 1\r\n")
            conn.sendall(slow_down)
        else:
            conn.sendall(answer("200 OK", b'{"status": "ok"}'))

    server = hostile(limited)
    client = client_for(server.url)
    reply = client.get("/health")
    assert reply.status == 200 and len(calls) == 2
    assert calls[1] - calls[0] >= 0.95
    assert client.rate_limited == 1 and len(client.log) == 1


def test_a_server_that_keeps_answering_429_gets_its_429_judged_after_three_waits(hostile, answer):
    calls: list[float] = []

    def always_limited(conn, _):
        calls.append(time.monotonic())
        conn.sendall(answer("429 Too Many Requests", b'{"error": "slow down"}', extra="Retry-After: 0\r\n"))

    server = hostile(always_limited)
    reply = client_for(server.url).get("/health")
    assert reply.status == 429 and len(calls) == 4


def test_a_429_without_retry_after_is_an_answer_like_any_other(hostile, answer):
    server = hostile(lambda conn, _: conn.sendall(answer("429 Too Many Requests", b'{"error": "no"}')))
    client = client_for(server.url)
    assert client.get("/health").status == 429 and len(server.received) == 1 and client.rate_limited == 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), (" 0 ", 0.0), ("", None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(value, seconds):
    assert _retry_after(value) == seconds


def test_nothing_is_sent_once_the_runs_max_time_has_passed(hostile, answer):
    server = hostile(lambda conn, _: conn.sendall(answer("200 OK", b"{}")))
    client = client_for(server.url, run_deadline=time.monotonic() - 1)
    with pytest.raises(OutOfTime, match="--max-time"):
        client.get("/health")
    assert server.received == []


def test_a_request_gets_no_more_time_than_the_run_has_left(hostile):
    server = hostile(lambda conn, _: time.sleep(5))
    client = client_for(server.url, timeout=10.0, run_deadline=time.monotonic() + 0.5)
    started = time.monotonic()
    with pytest.raises(AnswerTimeout):
        client.get("/health")
    assert time.monotonic() - started < 2


class FlakyAdapter(BaseAdapter):
    """Fails the first `connect_failures` sends as a refused connection, then as `then`."""

    def __init__(self, connect_failures: int, then: Exception | None = None) -> None:
        super().__init__()
        self.calls = 0
        self.connect_failures = connect_failures
        self.then = then

    def send(self, request, **kwargs):
        self.calls += 1
        if self.calls <= self.connect_failures:
            refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")
            raise requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", refused))
        if self.then is not None:
            raise self.then
        response = requests.Response()
        response.status_code = 201
        response.raw = __import__("io").BytesIO(b'{"id": "t-1"}')
        response.headers["Content-Type"] = "application/json"
        response.request = request
        return response

    def close(self):
        pass


def test_connect_failures_are_retried_twice_even_for_a_post():
    adapter = FlakyAdapter(connect_failures=2)
    session = requests.Session()
    session.mount("http://", adapter)
    client = Client(base_url="http://crm.test", api_key=KEY, session=session, retry_pauses=(0, 0))
    reply = client.post("/tasks", {"subject": "x"})
    assert reply.status == 201 and adapter.calls == 3


def test_a_post_that_may_have_been_received_is_never_resent():
    reset = requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("Connection reset by peer"))
    adapter = FlakyAdapter(connect_failures=0, then=reset)
    session = requests.Session()
    session.mount("http://", adapter)
    with pytest.raises(TransportError, match="broke") as raised:
        Client(base_url="http://crm.test", api_key=KEY, session=session).post("/tasks", {"subject": "x"})
    assert not isinstance(raised.value, ServerUnreachable)
    assert adapter.calls == 1


def test_write_budget_counts_post_put_patch_only(fake_crm):
    crm = fake_crm()
    client = Client(base_url=crm.url, api_key=crm.app.key, max_writes=2)
    client.post("/tasks", {"subject": "a"})
    client.get("/health")
    client.patch("/tasks/batch", {"ids": [], "completed": True})
    with pytest.raises(NotApplicable, match="write budget of 2"):
        client.put("/contacts", {"contacts": []})
    client.get("/health")  # reads are never limited
    assert client.writes == 2


def test_transport_messages_never_hold_the_key(hostile, closed_port):
    for url in (f"http://127.0.0.1:{closed_port}", "http://enginy-conformance.invalid"):
        with pytest.raises(TransportError) as raised:
            client_for(url).get("/health")
        assert KEY not in str(raised.value)


def test_credentials_in_the_base_url_are_not_recorded(fake_crm):
    crm = fake_crm()
    url = crm.url.replace("http://", "http://proxy-user:proxy-secret@")
    reply = client_for(url).get("/health")
    assert "proxy-secret" not in reply.exchange.request.url
    assert (
        reply.exchange.request.headers.get("Authorization") == REDACTED
    )  # requests turned them into Basic auth
