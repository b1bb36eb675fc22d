"""enginy-conformance proxy: forwarding unchanged, judging on the way through, the reports and the HAR.

Everything runs as it would for a user: the bundled mock as a subprocess (conformant, or bent by one
rule fault), raw sockets where a test must see every byte the upstream receives, and the proxy itself
as a real `python -m conformance proxy` on a real port, stopped with a real SIGINT or SIGTERM. Clients
are `requests` sessions and raw sockets. The mocks' keys are canaries that must appear in no output.
"""

from __future__ import annotations

import gzip
import json
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from click.testing import CliRunner

from conformance.cli import cli
from conformance.report import REPORT_SCHEMA_PATH
from tests.conformance.conftest import Mock, free_port, http_answer, start_mock, stop_mock

CANARY = "canary-4b1d-proxy-KEY-must-never-leak"
CLEAN_ENV = {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}
LINE = re.compile(r"^#(\d+) (\S+) (\S+) → (\d+|no answer)")
START_S = 30.0


# --- the proxy as a subprocess --------------------------------------------------------------------------


@dataclass
class Proxy:
    """A running `python -m conformance proxy`: its URL, its lines as they come, its report dir."""

    process: subprocess.Popen[str]
    url: str
    report_dir: Path
    stderr_path: Path
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    output: list[str] = field(default_factory=list)

    def exchange_line(self, index: int, timeout: float = 10.0) -> str:
        """The line of exchange #index (waits for it: the proxy judges off the serving path)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(self.output) if line.startswith(f"#{index} ")]
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no line for exchange #{index}; output so far: {self.output}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> tuple[int, str, str]:
        """Signal the proxy by its pid; its exit code, all of stdout and stderr."""
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        return code, self.wait_output(), self.stderr_path.read_text(encoding="utf-8")

    def wait_output(self) -> str:
        self._reader.join(10)
        return "\n".join(self.output)

    _reader: threading.Thread = field(init=False)


def _start_proxy(upstream: str, report_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Proxy:
    stderr_path = report_dir.with_name(report_dir.name + ".stderr")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conformance",
            "proxy",
            "--upstream",
            upstream,
            "--port",
            "0",
            "--report-dir",
            str(report_dir),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("w", encoding="utf-8"),
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        env=env if env is not None else CLEAN_ENV,
        cwd=report_dir.parent,
    )
    proxy = Proxy(process=process, url="", report_dir=report_dir, stderr_path=stderr_path)
    stdout = process.stdout
    assert stdout is not None

    def read() -> None:
        for line in stdout:
            proxy.output.append(line.rstrip("\n"))
            proxy.lines.put(line)

    proxy._reader = threading.Thread(target=read, daemon=True)
    proxy._reader.start()
    try:
        first = proxy.lines.get(timeout=START_S)
    except queue.Empty:
        first = ""
    match = re.search(r"listening on (http://\S+), forwarding to (\S+)", first)
    if match is None:
        process.kill()
        process.wait(5)
        raise RuntimeError(f"the proxy did not start: {first!r} {stderr_path.read_text()!r}")
    assert match.group(2) == upstream.rstrip("/")
    proxy.url = match.group(1)
    return proxy


@pytest.fixture
def proxy_of(tmp_path: Path) -> Iterator[Callable[..., Proxy]]:
    """`proxy_of(upstream_url, *flags)` starts a proxy; any still running after the test is killed."""
    started: list[Proxy] = []

    def start(upstream: str, *extra: str, name: str = "reports", env: dict[str, str] | None = None) -> Proxy:
        started.append(_start_proxy(upstream, tmp_path / name, *extra, env=env))
        return started[-1]

    yield start
    for proxy in started:
        if proxy.process.poll() is None:
            proxy.process.kill()
            proxy.process.wait(5)


@pytest.fixture(scope="module")
def conformant(start_mocks: Callable[..., Mock]) -> Mock:
    return start_mocks(key=CANARY)


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def _key(key: str = CANARY) -> dict[str, str]:
    return {"X-API-Key": key, "Content-Type": "application/json"}


def _report(proxy: Proxy) -> dict[str, Any]:
    document = json.loads((proxy.report_dir / "report.json").read_text(encoding="utf-8"))
    schema = json.loads(REPORT_SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)
    return document


def _outcomes(document: dict[str, Any]) -> dict[str, str]:
    return {result["rule"]: result["outcome"] for result in document["results"]}


def _har(proxy: Proxy) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((proxy.report_dir / "traffic.har").read_text("utf-8"))["log"][
        "entries"
    ]
    return entries


# --- forwarding unchanged --------------------------------------------------------------------------------


# Date is the moment of the answer; waitress adds Via on the proxy's side (a proxy says it was one);
# Connection, Keep-Alive and Transfer-Encoding belong to each hop.
_PER_HOP = ("date", "via", "connection", "keep-alive", "transfer-encoding")


def _comparable(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items() if name.lower() not in _PER_HOP}


def test_answers_through_the_proxy_are_the_servers_own(conformant, proxy_of):
    proxy = proxy_of(conformant.url)
    session = _session()
    created = session.post(
        conformant.url + "/tasks", data=b'{"subject": "Call Ada", "type": "call"}', headers=_key()
    )
    task_id = created.json()["id"]
    cases = [
        ("GET", "/health", None, _key()),
        ("GET", "/health?probe=a%2Fb&x=%C3%A9", None, _key()),
        ("GET", f"/tasks/{task_id}", None, _key()),
        ("GET", "/tasks/no-such-task", None, _key()),
        ("POST", "/tasks/batch", json.dumps({"ids": [task_id, "task-unknown"]}).encode(), _key()),
        ("POST", "/tasks", b'{"subject": ', _key()),  # malformed: 400
        ("PATCH", "/health", None, _key()),  # 405
        ("GET", "/metrics", None, _key()),  # no such route: 404
        ("GET", "/health", None, {}),  # no key: 401
    ]
    for method, path, body, headers in cases:
        direct = session.request(method, conformant.url + path, data=body, headers=headers)
        proxied = session.request(method, proxy.url + path, data=body, headers=headers)
        where = f"{method} {path}"
        assert proxied.status_code == direct.status_code, where
        assert proxied.content == direct.content, where
        assert _comparable(proxied.headers) == _comparable(direct.headers), where
        assert proxied.headers["Server"] == "enginy-mock", where  # the server's, not the proxy's
    # What reached the mock through the proxy is what reached it directly: path, query and body.
    _, journal = conformant.admin("GET", "/__admin/journal")
    entries = list(reversed(json.loads(journal)["entries"]))[-2 * len(cases) :]
    for direct_entry, proxied_entry in zip(entries[::2], entries[1::2], strict=True):
        assert proxied_entry["path"] == direct_entry["path"]
        assert proxied_entry["request_body"] == direct_entry["request_body"]
    code, output, _ = proxy.stop()
    assert code == 0, output
    assert CANARY not in output


def test_the_request_goes_on_byte_for_byte_less_hop_by_hop_headers(hostile, proxy_of):
    answer = b'{"id":"task-1","subject":"Caf\xc3\xa9  \xe2\x80\x94  call"}'
    upstream = hostile(lambda conn, _request: conn.sendall(http_answer("201 Created", answer)))
    proxy = proxy_of(upstream.url + "/enginy")
    port = int(proxy.url.rsplit(":", 1)[1])
    body = '{"subject": "Café  —  call",\n "type": "call"}'.encode()
    request = (
        b"POST /tasks?x=a%2Fb&y=%E2%9C%93 HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"x-api-key: " + CANARY.encode() + b"\r\n"
        b"X-Trace: one\r\n"
        b"X-Trace: two\r\n"
        b"Connection: keep-alive, X-Hop\r\n"
        b"X-Hop: only for this hop\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        received = b""
        while not received.endswith(answer):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
    assert received.startswith(b"HTTP/1.1 201 Created") and received.endswith(answer)
    assert len(upstream.received) == 1
    head, _, forwarded_body = upstream.received[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    # The upstream's base path, then the target exactly as sent.
    assert lines[0] == b"POST /enginy/tasks?x=a%2Fb&y=%E2%9C%93 HTTP/1.1"
    assert forwarded_body == body
    assert lines[1:] == [
        f"Host: 127.0.0.1:{upstream.port}".encode(),
        b"x-api-key: " + CANARY.encode(),  # the name as the client spelled it
        b"X-Trace: one",  # repeats kept, in order
        b"X-Trace: two",
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(body)).encode(),
    ]  # no Connection, X-Hop or Keep-Alive; no User-Agent or Accept-Encoding of urllib3's own
    assert "#1 POST /tasks?x=a%2Fb&y=%E2%9C%93 → 201" in proxy.exchange_line(1)
    code, output, _ = proxy.stop()
    assert code == 0 and CANARY not in output, output


def test_answers_are_never_decompressed_and_redirects_never_followed(hostile, proxy_of):
    document = json.dumps([{"id": "task-1", "subject": "Call"}]).encode()
    packed = gzip.compress(document)

    def serve(conn: socket.socket, request: bytes) -> None:
        if request.startswith(b"GET /old-health"):
            conn.sendall(http_answer("302 Found", b"", extra="Location: http://elsewhere.invalid/health\r\n"))
        else:
            conn.sendall(http_answer("200 OK", packed, extra="Content-Encoding: gzip\r\n"))

    upstream = hostile(serve)
    proxy = proxy_of(upstream.url)
    session = _session()
    batch = session.post(
        proxy.url + "/tasks/batch", json={"ids": ["task-1"]}, headers={"X-API-Key": CANARY}, stream=True
    )
    assert batch.headers["Content-Encoding"] == "gzip"
    assert batch.raw.read(decode_content=False) == packed  # the server's bytes, still compressed
    moved = session.get(proxy.url + "/old-health", headers={"X-API-Key": CANARY}, allow_redirects=False)
    assert moved.status_code == 302 and moved.headers["Location"] == "http://elsewhere.invalid/health"
    assert len(upstream.received) == 2  # the redirect was passed back, not followed
    # The judges read the answer decompressed: the gzip batch is a conformant answer.
    assert "✓" in proxy.exchange_line(1) and "✗" not in proxy.exchange_line(1)
    code, _, _ = proxy.stop()
    assert code == 0


def test_header_names_reach_the_server_as_written(start_mocks, proxy_of):
    # The mock's AUTH-HEADER-CASE-INSENSITIVE fault counts the key header only when spelled X-API-Key.
    # Through a proxy that re-spelled header names (as plain WSGI does) both spellings would be equal.
    strict = start_mocks("--fault", "AUTH-HEADER-CASE-INSENSITIVE", key=CANARY)
    proxy = proxy_of(strict.url)
    session = _session()
    for spelling in ("X-API-Key", "x-api-key"):
        direct = session.get(strict.url + "/health", headers={spelling: CANARY})
        proxied = session.get(proxy.url + "/health", headers={spelling: CANARY})
        assert (spelling, proxied.status_code) == (spelling, direct.status_code)
    assert direct.status_code == 401  # the fault is on: lower case counts as missing
    proxy.stop()


# --- judging on the way through --------------------------------------------------------------------------


def test_a_conformant_exchange_prints_a_tick_with_its_timing(conformant, proxy_of):
    proxy = proxy_of(conformant.url)
    assert _session().get(proxy.url + "/health", headers=_key()).status_code == 200
    line = proxy.exchange_line(1)
    assert re.fullmatch(r"#1 GET /health → 200 \(\d+ ms\)  ✓ \d+ rules hold", line), line
    proxy.stop()


@pytest.mark.parametrize(
    ("fault", "method", "path", "body"),
    [
        ("TASK-CREATE-RETURNS-ID", "POST", "/tasks", {"subject": "Call Ada", "type": "call"}),
        ("TASK-BATCH-ROUTE", "POST", "/tasks/batch", {"ids": ["task-unknown-1"]}),
    ],
)
def test_a_broken_rule_is_named_on_its_line_in_the_reports_and_the_exit_code(
    start_mocks, proxy_of, fault, method, path, body
):
    broken = start_mocks("--fault", fault, key=CANARY)
    proxy = proxy_of(broken.url)
    session = _session()
    assert session.get(proxy.url + "/health", headers=_key()).status_code == 200
    session.request(method, proxy.url + path, json=body, headers=_key())
    assert "✗" not in proxy.exchange_line(1)
    line = proxy.exchange_line(2)
    assert re.match(rf"#2 {method} {path} → \d{{3}} \(\d+ ms\)  .*✗ {fault}: expected", line), line
    code, output, stderr = proxy.stop(signal.SIGINT)
    assert code == 1, output + stderr
    assert f"MUST rules broken: {fault} (#2" in output and "FAILED: an exchange broke a MUST rule." in output
    document = _report(proxy)
    outcomes = _outcomes(document)
    assert outcomes[fault] == "failed" and outcomes["HEALTH-OK"] == "passed"
    assert document["verdict"] == "failed" and document["profile"] == "proxy"
    failed = next(r for r in document["results"] if r["rule"] == fault)["evidence"][0]
    assert failed["source"] == "proxy #2" and failed["exchanges"][0]["request"]["url"] == broken.url + path
    assert f'name="{fault}"' in (proxy.report_dir / "junit.xml").read_text(encoding="utf-8")
    assert fault in (proxy.report_dir / "summary.md").read_text(encoding="utf-8")
    assert stderr == ""


def test_a_request_without_the_key_is_judged_by_auth_missing_key(conformant, start_mocks, proxy_of):
    refused = proxy_of(conformant.url, name="conformant")
    assert _session().get(refused.url + "/health").status_code == 401
    line = refused.exchange_line(1)
    assert "[no X-API-Key]" in line and "✓" in line
    assert refused.stop()[0] == 0
    assert _outcomes(_report(refused))["AUTH-MISSING-KEY"] == "passed"
    # A server that lets such a request in breaks the rule, and the proxy says so.
    open_door = start_mocks("--fault", "AUTH-MISSING-KEY", key=CANARY)
    let_in = proxy_of(open_door.url, name="open-door")
    assert _session().get(let_in.url + "/health").status_code == 200
    assert "✗ AUTH-MISSING-KEY" in let_in.exchange_line(1)
    code, output, _ = let_in.stop()
    assert code == 1 and "MUST rules broken: AUTH-MISSING-KEY (#1)" in output
    assert _outcomes(_report(let_in))["AUTH-MISSING-KEY"] == "failed"


def test_a_request_outside_the_contract_is_forwarded_and_listed_not_judged(conformant, proxy_of):
    proxy = proxy_of(conformant.url)
    answered = _session().get(proxy.url + "/tasks/", headers=_key())  # a trailing slash: no operation
    line = proxy.exchange_line(1)
    assert line.startswith(f"#1 GET /tasks/ → {answered.status_code} (")
    assert line.endswith("· not in the contract (not judged)")
    code, output, _ = proxy.stop()
    assert code == 0 and "1 not in the contract" in output
    assert _report(proxy)["results"] == []  # nothing judged, nothing claimed


def test_rules_no_exchange_spoke_about_are_not_seen_never_passed(conformant, proxy_of):
    proxy = proxy_of(conformant.url)
    assert _session().get(proxy.url + "/health", headers=_key()).status_code == 200
    code, output, _ = proxy.stop()
    assert code == 0  # no MUST rule broke; never 3, though most rules were not judged
    document = _report(proxy)
    judged = set(_outcomes(document))
    assert "HEALTH-OK" in judged and "TASK-BATCH-ROUTE" not in judged
    assert "TASK-BATCH-ROUTE" in document["settings"]["not_seen"]
    assert set(document["settings"]["not_seen"]).isdisjoint(judged)
    assert "Not seen (not judged, not passed):" in output and "TASK-BATCH-ROUTE" in output
    assert "That is not a PASSED verdict" in output


# --- no answer, stopping ----------------------------------------------------------------------------------


def test_an_upstream_that_is_down_gets_a_502_json_and_the_proxy_keeps_running(proxy_of, tmp_path):
    port = free_port()
    proxy = proxy_of(f"http://127.0.0.1:{port}")
    session = _session()
    down = session.get(proxy.url + "/health", headers=_key())
    assert down.status_code == 502 and down.headers["Content-Type"] == "application/json"
    assert set(down.json()) == {"error", "message"} and "connection refused" in down.json()["message"]
    assert "→ no answer  ✗ the proxy answered 502" in proxy.exchange_line(1)
    # The proxy is still there, and once the server is up the same request goes through.
    assert proxy.process.poll() is None
    back = start_mock("--port", str(port), key=CANARY)
    try:
        assert session.get(proxy.url + "/health", headers=_key()).status_code == 200
        assert "→ 200" in proxy.exchange_line(2)
    finally:
        stop_mock(back)
    code, output, _ = proxy.stop(signal.SIGTERM)
    assert code == 0, output  # a silence is nobody's verdict: the 502 was the proxy's, not the server's
    assert "1 without an answer" in output
    assert _outcomes(_report(proxy)).get("SERVER-NO-5XX") == "passed"  # judged on #2 alone
    first = _har(proxy)[0]
    assert first["response"]["status"] == 0 and "the proxy answered 502" in first["comment"]


def test_an_upstream_that_never_answers_gets_a_504_json_within_the_timeout(hostile, proxy_of):
    silent = hostile(lambda conn, _request: time.sleep(5))  # takes the request, never answers
    proxy = proxy_of(silent.url, "--timeout", "1")
    started = time.monotonic()
    late = _session().get(proxy.url + "/health", headers=_key(), timeout=10)
    assert late.status_code == 504 and time.monotonic() - started < 4
    assert late.json()["error"] == "Gateway timeout" and "within 1 s" in late.json()["message"]
    assert "→ no answer  ✗ the proxy answered 504" in proxy.exchange_line(1)
    code, output, _ = proxy.stop()
    assert code == 0 and "1 without an answer" in output


def test_a_key_sent_under_another_header_is_not_taken_for_a_missing_one(start_mocks, proxy_of):
    # The AUTH-MISSING-KEY fault lets in requests without the key header. A request with no credential
    # at all breaks the rule through it; one that carries Authorization may hold the key elsewhere (the
    # proxy does not know the key, so it cannot tell), and it does not blame the server for that one.
    open_door = start_mocks("--fault", "AUTH-MISSING-KEY", key=CANARY)
    proxy = proxy_of(open_door.url)
    session = _session()
    bearer = {"Authorization": "Bearer some-other-token-0123456789"}
    assert session.get(proxy.url + "/health", headers=bearer).status_code == 200
    assert session.get(proxy.url + "/health").status_code == 200
    elsewhere, missing = proxy.exchange_line(1), proxy.exchange_line(2)
    assert "AUTH-MISSING-KEY" not in elsewhere and "✓" in elsewhere
    assert "✗ AUTH-MISSING-KEY" in missing
    code, output, _ = proxy.stop()
    assert code == 1 and "MUST rules broken: AUTH-MISSING-KEY (#2)" in output
    har = (proxy.report_dir / "traffic.har").read_text(encoding="utf-8")
    assert "Bearer [REDACTED]" not in har and "some-other-token" not in har  # the whole value is secret


def test_max_exchanges_stops_by_itself_and_writes_everything(conformant, proxy_of):
    proxy = proxy_of(conformant.url, "--max-exchanges", "2")
    session = _session()
    session.get(proxy.url + "/health", headers=_key())
    session.post(proxy.url + "/tasks", json={"subject": "Call", "type": "call"}, headers=_key())
    assert proxy.process.wait(20) == 0
    output = proxy.wait_output()
    assert "2 exchanges went through the proxy" in output
    assert {path.name for path in proxy.report_dir.iterdir()} == {
        "report.json",
        "junit.xml",
        "report.html",
        "summary.md",
        "traffic.har",
    }
    assert [entry["request"]["method"] for entry in _har(proxy)] == ["GET", "POST"]
    assert _report(proxy)["requests"]["proxy"] == 2


# --- the HAR and redaction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["k", "tasks", "canary-" + secrets.token_hex(12)], ids=["letter", "word", "long"]
)
def test_the_key_is_redacted_everywhere_without_garbling_anything(start_mocks, proxy_of, key):
    mock = start_mocks(key=key)
    proxy = proxy_of(mock.url)
    session = _session()
    session.get(proxy.url + "/health", headers={"X-API-Key": key})
    created = session.post(
        proxy.url + "/tasks",
        json={"subject": "Ask about tasks", "type": "call"},
        headers={"X-API-Key": key, "Authorization": f"Bearer {key}"},
    )
    assert created.status_code == 201
    session.get(proxy.url + f"/tasks/{created.json()['id']}?api_key={key}", headers={"X-API-Key": key})
    session.get(proxy.url + "/health")  # without the key
    code, output, stderr = proxy.stop()
    assert code == 0, output + stderr
    entries = _har(proxy)
    assert len(entries) == 4
    for entry in entries:
        for header in entry["request"]["headers"]:
            if header["name"].lower() in ("x-api-key", "authorization"):
                assert header["value"] == "[REDACTED]", header
        for parameter in entry["request"]["queryString"]:
            assert parameter["value"] == "[REDACTED]", parameter
    assert "api_key=%5BREDACTED%5D" in entries[2]["request"]["url"]
    # Not garbled: what merely contains the key stays as it was.
    assert entries[1]["request"]["url"].endswith("/tasks")
    assert json.loads(entries[1]["request"]["postData"]["text"])["subject"] == "Ask about tasks"
    files = {path.name: path.read_text(encoding="utf-8") for path in proxy.report_dir.iterdir()}
    as_header = re.compile(rf"(?i)(x-api-key|authorization)\W+(bearer\s+)?{re.escape(key)}(?!\w)")
    as_query = re.compile(rf"=\s*{re.escape(key)}(?![\w-])")
    for name, text in [*files.items(), ("stdout", output)]:
        assert not re.search(r"\w\[REDACTED\]|\[REDACTED\]\w", text), name  # never inside a word
        assert not as_header.search(text) and not as_query.search(text), name
        if len(key) >= 16:
            assert key not in text, name
    assert f'"{key}"' not in files["traffic.har"]  # no JSON string is the key
    assert "#2 POST /tasks → 201" in output and "TASK-CREATE-RETURNS-ID" in files["report.json"]


# --- a replay through the proxy ---------------------------------------------------------------------------


def test_a_recording_of_the_proxy_replays_through_another_proxy(conformant, start_mocks, proxy_of, tmp_path):
    # The proxy's own traffic.har is a recording replay reads: what Enginy did against a good server,
    # replayed through a proxy in front of a broken one, is judged twice alike (by replay and proxy).
    first = proxy_of(conformant.url, name="recorded")
    session = _session()
    task = session.post(first.url + "/tasks", json={"subject": "Call", "type": "call"}, headers=_key()).json()
    session.post(first.url + "/tasks/batch", json={"ids": [task["id"], "task-unknown"]}, headers=_key())
    assert first.stop()[0] == 0
    broken = start_mocks("--fault", "TASK-BATCH-ROUTE", key=CANARY)
    second = proxy_of(broken.url, name="replayed")
    replayed = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "replay",
            str(first.report_dir / "traffic.har"),
            "--base-url",
            second.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**CLEAN_ENV, "ENGINY_API_KEY": CANARY},
        cwd=tmp_path,
        check=False,
    )
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    assert "✗ TASK-BATCH-ROUTE" in replayed.stdout
    assert "✗ TASK-BATCH-ROUTE" in second.exchange_line(2)
    code, output, _ = second.stop()
    assert code == 1 and "MUST rules broken: TASK-BATCH-ROUTE (#2)" in output
    assert CANARY not in replayed.stdout + output


# --- usage errors: one line, exit 2 -----------------------------------------------------------------------


def _one_line(*args: str, **env: str) -> str:
    result = CliRunner().invoke(
        cli, ["proxy", *args], env={"ENGINY_UPSTREAM": None, **env}, catch_exceptions=False
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: ") and "Traceback" not in result.output
    return errors[0]


def test_a_bad_or_missing_upstream_is_one_line(tmp_path):
    assert "--upstream must be an http:// or https:// URL" in _one_line("--upstream", "ftp://crm.example")
    assert "ENGINY_UPSTREAM in the environment must be" in _one_line(ENGINY_UPSTREAM="crm.example")
    assert "No server to forward to" in _one_line("--report-dir", str(tmp_path / "r"))
    assert "must not hold a user or password" in _one_line("--upstream", "http://ada:secret@crm.example")


def test_a_port_in_use_is_one_line_and_leaves_no_files(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line(
            "--upstream", "http://127.0.0.1:9", "--port", str(port), "--report-dir", str(tmp_path / "r")
        )
    assert f"Cannot listen on 127.0.0.1:{port}" in line and "choose another --port" in line
    assert not (tmp_path / "r" / "traffic.har").exists()
