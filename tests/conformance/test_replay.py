"""enginy-conformance replay: the three readers, what is (never) re-sent, the judges, output and exit codes.

Servers are real and local (127.0.0.1, port 0): the bundled mock as a subprocess (conformant, and with
the TASK-BATCH-ROUTE fault), the tiny FakeCRM of conftest.py bent per test, and raw sockets for the
connection failures. Every mock and FakeCRM runs with a canary key that must appear in no output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from conformance.cli import cli
from conformance.client import Client
from conformance.errors import UsageError
from conformance.replay import read_recording, replay
from conformance.report import REPORT_SCHEMA_PATH

CANARY = "canary-7e2d-KEY-must-never-leak"
CLEAN_ENV = {name: None for name in os.environ if name.startswith("ENGINY_")}
ORIGIN = "https://crm.example.com/enginy"


# --- helpers ------------------------------------------------------------------------------------------------


def entry(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    status: int = 200,
    answer: Any = None,
    origin: str = ORIGIN,
) -> dict[str, Any]:
    """One HAR 1.2 entry; `body` is JSON-encoded unless it is already a string."""
    sent = {"X-API-Key": "[REDACTED]"} if headers is None else headers
    request: dict[str, Any] = {
        "method": method,
        "url": origin + path,
        "httpVersion": "HTTP/1.1",
        "headers": [{"name": name, "value": value} for name, value in sent.items()],
        "queryString": [],
        "cookies": [],
        "headersSize": -1,
        "bodySize": -1,
    }
    if body is not None:
        text = body if isinstance(body, str) else json.dumps(body)
        request["postData"] = {"mimeType": "application/json", "text": text}
    content = {"size": -1, "mimeType": "application/json"}
    if answer is not None:
        content["text"] = answer if isinstance(answer, str) else json.dumps(answer)
    return {
        "startedDateTime": "2026-01-15T10:00:00.000Z",
        "time": 1,
        "request": request,
        "response": {"status": status, "statusText": "", "headers": [], "content": content},
    }


def har(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"log": {"version": "1.2", "creator": {"name": "hand", "version": "1"}, "entries": list(entries)}}


def write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


# A session as Enginy runs it: health, a task created, read, read in a batch and completed in a batch,
# contacts exported and synced, a malformed body, users, a probe without the key, and a path the contract
# does not have. The recorded ids are the recording server's; the replay maps them to the new server's.
SESSION = (
    entry(
        "GET", "/health", headers={"X-API-Key": "[REDACTED]", "X-Request-Id": "r-1"}, answer={"status": "ok"}
    ),
    entry(
        "POST",
        "/tasks",
        {"subject": "Follow up with John", "dueDate": "2024-01-15T10:00:00Z"},
        status=201,
        answer={
            "id": "task-abc123",
            "subject": "Follow up with John",
            "completed": False,
            "completedAt": None,
        },
    ),
    entry("GET", "/tasks/task-abc123"),
    entry("POST", "/tasks/batch", {"ids": ["task-abc123", "task-unknown"]}),
    entry("PATCH", "/tasks/batch", {"ids": ["task-abc123"], "completed": True}),
    entry("POST", "/contacts", {"contacts": [{"externalId": "lead-1", "email": "ada@example.invalid"}]}),
    entry(
        "POST",
        "/contacts/sync",
        {"contacts": [{"externalId": "lead-1", "email": "ADA@example.invalid"}, {"externalId": "lead-2"}]},
    ),
    entry("POST", "/tasks", '{"subject": ', status=400),
    entry("GET", "/users"),
    entry("GET", "/health", headers={}, status=401),
    entry("GET", "/metrics", status=404),
)


def invoke(*args: str, key: str | None = CANARY, **env: str) -> Any:
    environment = {**CLEAN_ENV, **env}
    if key is not None:
        environment["ENGINY_API_KEY"] = key
    return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)


def one_clean_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors: list[str] = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.stderr
    return errors[0]


def step_lines(output: str) -> dict[int, str]:
    return {int(m.group(1)): line for line in output.splitlines() if (m := re.match(r"#(\d+) ", line))}


# --- the bundled mock, started the way a user starts it -----------------------------------------------------


@pytest.fixture(scope="module")
def conformant(start_mocks) -> Any:
    return start_mocks(key=CANARY)


@pytest.fixture(scope="module")
def second(start_mocks) -> Any:
    return start_mocks(key=CANARY)


@pytest.fixture(scope="module")
def batch_route_fault(start_mocks) -> Any:
    return start_mocks("--fault", "TASK-BATCH-ROUTE", key=CANARY)


@pytest.fixture
def session_har(tmp_path: Path) -> Path:
    return write(tmp_path / "session.har", har(*SESSION))


# --- reading: detected by content ---------------------------------------------------------------------------


def test_a_har_is_read_by_content_whatever_its_name(tmp_path):
    document = har(
        entry(
            "GET", "/health", headers={"X-API-Key": "old-raw-key", "Host": "crm.example.com", "X-Trace": "t1"}
        ),
        entry("GET", "/font.woff", headers={}, origin="https://fonts.example.net"),
        entry("POST", "/tasks", {"subject": "x"}),
    )
    recording = read_recording(write(tmp_path / "capture.txt", document))
    assert recording.kind == "har"
    assert [(s.method, s.path) for s in recording.steps] == [("GET", "/health"), ("POST", "/tasks")]
    assert recording.base == "https://crm.example.com/enginy"
    assert recording.steps[0].headers == {"X-Trace": "t1"}  # no key, no Host
    assert recording.steps[1].body == '{"subject": "x"}'
    assert any("fonts.example.net" in note and "left out" in note for note in recording.notes)
    assert any("/enginy" in note for note in recording.notes)


def test_credentials_and_hop_by_hop_headers_are_never_kept(tmp_path):
    recorded = {
        "x-api-key": "old-raw-key",
        "X-Custom-Key": "[REDACTED]",
        "Authorization": "Bearer abc",
        "Cookie": "session=1",
        "X-Session-Token": "abc",
        "Connection": "keep-alive",
        "Transfer-Encoding": "chunked",
        "Content-Length": "12",
        ":authority": "crm.example.com",
        "Content-Type": "application/json; charset=utf-8",
        "X-Masked": "[Filtered]",
        "Accept-Language": "en",
    }
    recording = read_recording(write(tmp_path / "h.har", har(entry("GET", "/health", headers=recorded))))
    assert recording.steps[0].headers == {"Accept-Language": "en"}
    assert recording.steps[0].sent_key


def test_secret_query_parameters_are_dropped_and_said_so(tmp_path):
    url_entry = entry("GET", "/users?api_key=abc&page=2&token=[REDACTED]")
    recording = read_recording(write(tmp_path / "q.har", har(url_entry)))
    step = recording.steps[0]
    assert step.path == "/users?page=2"
    assert "api_key" in step.note and "token" in step.note


def test_redacted_or_cut_bodies_and_urls_are_listed_but_not_sent(tmp_path):
    cut = entry("POST", "/tasks", '{"subject": "x' + "y" * 50 + "... [9000 bytes in all]")
    flagged = entry("POST", "/tasks", '{"subject": "xy')
    flagged["request"]["postData"]["_truncated"] = True
    document = har(
        entry("POST", "/tasks", {"subject": "[REDACTED]"}),
        cut,
        flagged,
        entry("GET", "/tasks/%5BREDACTED%5D"),
        entry("POST", "/tasks", {"subject": "fine"}),
    )
    steps = read_recording(write(tmp_path / "r.har", document)).steps
    assert [s.not_sendable is not None for s in steps] == [True, True, True, True, False]
    assert "redacted" in (steps[0].not_sendable or "")
    assert "cut the body short" in (steps[1].not_sendable or "")
    assert "URL holds a redacted value" in (steps[3].not_sendable or "")


def test_the_journal_object_is_newest_first_and_jsonl_oldest_first(tmp_path):
    older = {"time": "2026-01-15T10:00:00.000Z", "method": "GET", "path": "/health", "status": 200}
    newer = {"time": "2026-01-15T10:00:01.000Z", "method": "POST", "path": "/tasks", "status": 201}
    newer |= {"request_headers": {"X-API-KEY": "[REDACTED]"}, "request_body": '{"subject": "s"}'}
    older |= {"request_headers": {"X-API-KEY": "[REDACTED]"}, "request_body": None}
    as_object = read_recording(write(tmp_path / "j.json", {"entries": [newer, older]}))
    as_array = read_recording(write(tmp_path / "a.json", [newer, older]))
    lines = tmp_path / "j.jsonl"
    lines.write_text(json.dumps(older) + "\n\n" + json.dumps(newer) + "\n", encoding="utf-8")
    as_lines = read_recording(lines)
    for recording in (as_object, as_array, as_lines):
        assert recording.kind == "journal"
        assert [(s.method, s.path) for s in recording.steps] == [("GET", "/health"), ("POST", "/tasks")]
        assert recording.steps[1].body == '{"subject": "s"}' and recording.steps[1].headers == {}


def test_a_request_recorded_without_the_key_is_replayed_without_it_only_when_the_key_shows_elsewhere(
    tmp_path,
):
    probes = read_recording(
        write(tmp_path / "p.har", har(entry("GET", "/health"), entry("GET", "/health", headers={})))
    )
    assert [s.sent_key for s in probes.steps] == [True, False]
    # No request carries X-API-Key: the recording used another header, so none is taken for a probe.
    other = read_recording(
        write(
            tmp_path / "o.har", har(entry("GET", "/health", headers={}), entry("GET", "/users", headers={}))
        )
    )
    assert [s.sent_key for s in other.steps] == [True, True]
    assert any("every request is replayed with the key" in note for note in other.notes)
    # The recording's header named by --api-key-header counts as the key header too.
    named = read_recording(
        write(
            tmp_path / "n.har",
            har(entry("GET", "/health", headers={"X-Crm-Key": "k"}), entry("GET", "/users", headers={})),
        ),
        api_key_header="X-Crm-Key",
    )
    assert [s.sent_key for s in named.steps] == [True, False]


def _report_document(target: str) -> dict[str, Any]:
    def exchange(method: str, path: str, body: str | None, status: int) -> dict[str, Any]:
        return {
            "request": {
                "method": method,
                "url": target + path,
                "headers": {"X-API-Key": "[REDACTED]"},
                "body": body,
            },
            "response": {"status": status, "headers": {}, "body": "", "elapsed_ms": 1.0},
            "error": None,
            "curl": "curl ...",
        }

    batch = exchange("POST", "/tasks/batch", '{"ids": ["t-1"]}', 405)
    return {
        "format": "enginy-conformance-report",
        "version": 1,
        "target": target,
        "settings": {"api_key_header": "X-API-Key"},
        "results": [
            {
                "rule": "HEALTH-OK",
                "outcome": "passed",
                "evidence": [{"outcome": "passed", "exchanges": [exchange("GET", "/health", None, 200)]}],
            },
            {
                "rule": "TASK-BATCH-ROUTE",
                "outcome": "failed",
                "evidence": [
                    {"outcome": "passed", "exchanges": [exchange("GET", "/tasks/t-1", None, 200)]},
                    {"outcome": "failed", "exchanges": [batch]},
                ],
            },
            {
                "rule": "TASK-BATCH-GET-ARRAY",
                "outcome": "failed",
                "evidence": [{"outcome": "failed", "exchanges": [batch]}],  # the same exchange: once
            },
            {
                "rule": "ERROR-BODY-JSON",
                "outcome": "warning",
                "evidence": [
                    {"outcome": "warning", "exchanges": [exchange("GET", "/tasks/x?a=1", None, 404)]}
                ],
            },
        ],
    }


def test_a_report_gives_only_its_failing_and_warning_exchanges_each_once(tmp_path):
    recording = read_recording(
        write(tmp_path / "report.json", _report_document("https://crm.example.com/api"))
    )
    assert recording.kind == "report"
    assert [(s.method, s.path, s.recorded_status) for s in recording.steps] == [
        ("POST", "/tasks/batch", 405),
        ("GET", "/tasks/x?a=1", 404),
    ]
    assert recording.steps[0].body == '{"ids": ["t-1"]}'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("not json\nat all", "neither JSON nor JSON lines (line 1"),
        ('{"hello": "world"}', "none of what replay reads"),
        ('{"log": {"entries": [{"response": {}}]}}', "malformed HAR entry 0"),
        ('{"entries": [{"method": "GET", "path": "health"}]}', "does not start with /"),
        ('{"format": "enginy-conformance-report", "results": []}', "needs a target"),
    ],
)
def test_an_unreadable_file_is_one_usage_line_naming_it(tmp_path, content, message):
    path = tmp_path / "recording.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        read_recording(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    line = one_clean_line(invoke("replay", str(path), "--base-url", "http://127.0.0.1:9"))
    assert message in line and str(path) in line


def test_a_binary_file_and_a_directory_are_usage_errors(tmp_path):
    binary = tmp_path / "x.har"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in one_clean_line(invoke("replay", str(binary), "--dry-run"))
    assert "is a directory" in one_clean_line(invoke("replay", str(tmp_path), "--dry-run"))


# --- matching requests to operations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("POST", "/tasks/batch", "getTasksBatch"),
        ("PATCH", "/tasks/batch", "completeTasksBatch"),
        ("GET", "/tasks/batch", "getTask"),  # GET has no batch route: it is the task "batch"
        ("GET", "/tasks/task-1?x=1", "getTask"),
        ("PATCH", "/tasks/a%2Fb", "updateTask"),
        ("get", "/health", "checkHealth"),
        ("GET", "/tasks/", None),
        ("GET", "/tasks/a/b", None),
        ("DELETE", "/tasks/t-1", None),
        ("GET", "/metrics", None),
    ],
)
def test_requests_match_operations_by_method_and_path_template(tmp_path, method, path, operation):
    # No base path: a request the spec does not know cannot tell where the API's root is.
    recording = read_recording(
        write(tmp_path / "m.har", har(entry(method, path, origin="https://crm.example.com")))
    )
    lines = "\n".join(
        line
        for line in invoke("replay", str(tmp_path / "m.har"), "--dry-run").output.splitlines()
        if line.startswith("#1")
    )
    assert recording.steps[0].path == path
    assert (operation or "not in the contract") in lines


# --- against the bundled mock -------------------------------------------------------------------------------


def test_a_hand_written_har_against_the_conformant_mock_exits_0(conformant, session_har):
    result = invoke("replay", str(session_har), "--base-url", conformant.url)
    assert result.exit_code == 0, result.output
    lines = step_lines(result.output)
    assert len(lines) == len(SESSION)
    assert lines[1].startswith("#1 GET /health → 200 (") and "✓" in lines[1]
    # The task the replay created is the one read back: the recorded id was replaced by the new one.
    assert re.match(r"#3 GET /tasks/task-[0-9a-f]{32} → 200", lines[3]), lines[3]
    assert "→ 400" in lines[8] and "✓" in lines[8]  # malformed JSON refused, as it must be
    assert "[no key, as recorded]" in lines[10] and "→ 401" in lines[10]
    assert "not in the contract" in lines[11]
    assert "11 requests replayed" in result.output and "0 with MUST violations" in result.output
    assert "PASSED" in result.output
    assert CANARY not in result.output


def test_the_same_har_against_the_batch_route_fault_exits_1_naming_it(batch_route_fault, session_har):
    result = invoke("replay", str(session_har), "--base-url", batch_route_fault.url)
    assert result.exit_code == 1, result.output
    lines = step_lines(result.output)
    assert "#4 POST /tasks/batch → 405" in lines[4] and "✗ TASK-BATCH-ROUTE: expected" in lines[4]
    assert "#5 PATCH /tasks/batch → 404" in lines[5] and "✗ TASK-BATCH-ROUTE" in lines[5]
    assert "recorded 200" in lines[4]
    assert "✓" in lines[1] and "✗" not in lines[2]
    assert "MUST rules broken: TASK-BATCH-ROUTE (#4, #5)" in result.output
    assert "FAILED" in result.output and CANARY not in result.output


def _journal_of(mock: Any, export: str) -> bytes:
    status, body = mock.admin("GET", f"/__admin/{export}")
    if status == 404:
        pytest.skip(f"the mock does not export /__admin/{export} yet")
    assert status == 200
    return body


@pytest.fixture
def recorded_on_conformant(conformant: Any, session_har: Path) -> Any:
    """The conformant mock with a clean journal holding one replay of SESSION."""
    conformant.reset()
    assert invoke("replay", str(session_har), "--base-url", conformant.url).exit_code == 0
    return conformant


@pytest.mark.parametrize("export", ["journal.jsonl", "journal.har", "journal"])
def test_a_journal_exported_from_one_mock_replays_into_another(
    recorded_on_conformant, second, tmp_path, export
):
    path = tmp_path / export.replace("journal", "exported")
    path.write_bytes(_journal_of(recorded_on_conformant, export))
    second.reset()
    result = invoke("replay", str(path), "--base-url", second.url, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["recording"]["kind"] == ("har" if export.endswith(".har") else "journal")
    steps = document["steps"]
    assert [(s["method"], s["path"].split("/")[1]) for s in steps] == [
        (e["request"]["method"], e["request"]["url"][len(ORIGIN) :].split("/")[1]) for e in SESSION
    ]
    read = next(s for s in steps if s["operation"] == "getTask")
    assert read["status"] == 200 and read["ids_remapped"]  # the second mock's own task
    assert [s["state"] for s in steps].count("not-in-contract") == 1
    assert next(s for s in steps if not s["sent_key"])["status"] == 401
    # What reached the second mock is the session again, in order.
    _, body = second.admin("GET", "/__admin/journal")
    replayed = list(reversed(json.loads(body)["entries"]))
    assert [(e["method"], e["path"].split("/")[1]) for e in replayed] == [
        (s["method"], s["path"].split("/")[1]) for s in steps
    ]
    assert CANARY not in result.output


def test_the_failing_cases_of_a_run_report_replay_against_any_server(batch_route_fault, conformant, tmp_path):
    reports = tmp_path / "run"
    ran = invoke(
        "run",
        "--base-url",
        batch_route_fault.url,
        "--only",
        "TASK-BATCH-ROUTE,TASK-CREATE-RETURNS-ID",
        "--report-dir",
        str(reports),
    )
    assert ran.exit_code == 1, ran.output
    against_fault = invoke("replay", str(reports / "report.json"), "--base-url", batch_route_fault.url)
    assert against_fault.exit_code == 1, against_fault.output
    assert "✗ TASK-BATCH-ROUTE" in against_fault.output
    # TASK-CREATE-RETURNS-ID passed on that mock: its POST /tasks exchanges are not replayed.
    assert not re.search(r"^#\d+ POST /tasks ", against_fault.output, re.M), against_fault.output
    against_conformant = invoke("replay", str(reports / "report.json"), "--base-url", conformant.url)
    assert against_conformant.exit_code == 0, against_conformant.output
    assert "recorded 405" in against_conformant.output or "recorded 404" in against_conformant.output


def test_a_rule_that_needs_a_sequence_is_not_judged_by_replay_never_passed(start_mocks, tmp_path):
    # Completion that does not persist shows only in complete-then-read: replayed one request at a
    # time, every exchange looks fine. That is "not judged" (exit 3), with the run that judges it.
    broken = start_mocks("--fault", "TASK-COMPLETION-PERSISTS", key=CANARY)
    reports = tmp_path / "run"
    ran = invoke(
        "run", "--base-url", broken.url, "--only", "TASK-COMPLETION-PERSISTS", "--report-dir", str(reports)
    )
    assert ran.exit_code == 1, ran.output
    out = tmp_path / "replayed"
    again = invoke("replay", str(reports / "report.json"), "--base-url", broken.url, "--report-dir", str(out))
    assert again.exit_code == 3, again.output
    assert "Not judged by replay: TASK-COMPLETION-PERSISTS" in again.output
    assert f"enginy-conformance run --base-url {broken.url} --only TASK-COMPLETION-PERSISTS" in again.output
    assert "PASSED" not in again.output and "INCOMPLETE" in again.output
    document = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert document["verdict"] == "incomplete" and document["exit_code"] == 3
    result = next(item for item in document["results"] if item["rule"] == "TASK-COMPLETION-PERSISTS")
    assert result["outcome"] == "skipped"
    as_json = json.loads(
        invoke("replay", str(reports / "report.json"), "--base-url", broken.url, "--json").output
    )
    assert as_json["not_judged"] == ["TASK-COMPLETION-PERSISTS"] and as_json["exit_code"] == 3


def test_report_dir_writes_valid_reports_that_replay_again(batch_route_fault, session_har, tmp_path):
    out = tmp_path / "replay-reports"
    result = invoke("replay", str(session_har), "--base-url", batch_route_fault.url, "--report-dir", str(out))
    assert result.exit_code == 1
    document = json.loads((out / "report.json").read_text(encoding="utf-8"))
    schema = json.loads(REPORT_SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)
    outcomes = {r["rule"]: r["outcome"] for r in document["results"]}
    assert outcomes["TASK-BATCH-ROUTE"] == "failed" and outcomes["HEALTH-OK"] == "passed"
    route = next(r for r in document["results"] if r["rule"] == "TASK-BATCH-ROUTE")
    failed = [e for e in route["evidence"] if e["outcome"] == "failed"]
    assert [e["source"] for e in failed] == ["replay #4", "replay #5"] and failed[0]["exchanges"]
    assert document["profile"] == "replay" and document["verdict"] == "failed"
    for name in ("junit.xml", "report.html", "summary.md"):
        assert CANARY not in (out / name).read_text(encoding="utf-8")
    again = invoke("replay", str(out / "report.json"), "--base-url", batch_route_fault.url)
    assert again.exit_code == 1 and "✗ TASK-BATCH-ROUTE" in again.output
    assert "Reports:" in result.output


def test_as_a_real_subprocess(conformant, session_har, tmp_path):
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}
    env.update(ENGINY_API_KEY=CANARY, ENGINY_BASE_URL=conformant.url)
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "replay", str(session_har)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "#11 GET /metrics" in done.stdout and done.stderr == ""
    assert CANARY not in done.stdout


# --- judges, one rule at a time (FakeCRM bent for the rule under test) --------------------------------------

KEY = "fake-key-0123456789"  # FakeCRM's key


def _stub(method: str, path: str, status: int, body: Any):
    def override(request, _app):
        if request.method == method and request.path.split("?")[0] == path and "X-API-Key" in request.headers:
            return status, body
        return None

    return override


@pytest.mark.parametrize(
    ("recorded", "answer", "broken", "exit_code"),
    [
        (
            entry("POST", "/tasks", {"subject": "s"}),
            (201, {"subject": "s"}),
            {"TASK-CREATE-RETURNS-ID", "RESPONSE-SCHEMA"},
            1,
        ),
        (
            entry("POST", "/tasks", {"subject": "s"}),
            (500, {"error": "boom"}),
            {"TASK-CREATE-RETURNS-ID", "SERVER-NO-5XX"},
            1,
        ),
        (
            entry("POST", "/activities", {"type": "EMAIL", "contactCRMId": "c-1", "subject": "s"}),
            (201, {"type": "EMAIL"}),
            {"ACTIVITY-RETURNS-ID", "RESPONSE-SCHEMA"},
            1,
        ),
        (
            entry("POST", "/tasks/batch", {"ids": ["t-9"]}),
            # An object holding the tasks reached a batch handler of the wrong shape: not the route.
            (200, {"tasks": []}),
            {"TASK-BATCH-GET-ARRAY", "RESPONSE-SCHEMA"},
            1,
        ),
        (
            entry("POST", "/tasks/batch", {"ids": ["t-9"]}),
            (400, {"error": "Unknown id"}),
            {"TASK-BATCH-GET-OMITS-UNKNOWN"},
            1,
        ),
        (
            entry("POST", "/tasks/batch", {"ids": ["t-9"]}),
            (200, [{"id": "t-1", "subject": "s"}]),
            {"TASK-BATCH-GET-OMITS-UNKNOWN"},
            1,
        ),
        (
            entry("PATCH", "/tasks/batch", {"ids": ["t-9"], "completed": True}),
            (200, {"id": "batch", "subject": "s"}),
            {"TASK-BATCH-ROUTE", "RESPONSE-SCHEMA"},
            1,
        ),
        (
            entry("POST", "/contacts", {"contacts": [{"externalId": "e-1"}, {"externalId": "e-2"}]}),
            (
                201,
                {"results": [{"externalId": "e-1", "crmId": "c-1"}, {"externalId": "c-2", "crmId": "c-2"}]},
            ),
            {"CONTACT-CREATE-MAPS-EXTERNAL-IDS"},
            1,
        ),
        (
            entry("POST", "/companies", {"companies": [{"externalId": "e-1", "name": "Acme"}]}),
            (200, {"results": []}),
            {"COMPANY-CREATE-MAPS-EXTERNAL-IDS"},
            1,
        ),
        (
            entry("POST", "/contacts/sync", {"contacts": [{"externalId": "e-1"}]}),
            (
                200,
                {"results": [{"externalId": "e-1", "crmId": "c-1"}, {"externalId": "e-9", "crmId": "c-9"}]},
            ),
            {"CONTACT-SYNC-OMITS-UNMATCHED"},
            1,
        ),
        (
            entry("POST", "/companies/sync", {"companies": [{"externalId": "e-1"}]}),
            (404, {"error": "No match"}),
            {"COMPANY-SYNC-OMITS-UNMATCHED"},
            1,
        ),
        (entry("GET", "/users"), (500, {"error": "boom"}), {"USERS-OPTIONAL", "SERVER-NO-5XX"}, 1),
        (entry("GET", "/users"), (200, {"users": []}), {"USERS-OPTIONAL", "RESPONSE-SCHEMA"}, 1),
        (entry("GET", "/users"), (501, b"not implemented"), set(), 0),
        (entry("GET", "/users"), (404, b"<html>no</html>"), set(), 0),  # documented as any body
        (entry("GET", "/health"), (500, {"error": "down"}), {"HEALTH-OK", "SERVER-NO-5XX"}, 1),
        (
            entry("POST", "/tasks", '{"subject": '),
            (201, {"id": "t-1", "subject": ""}),
            {"INPUT-MALFORMED-JSON"},
            1,
        ),
        (
            entry("POST", "/tasks", '{"subject": '),
            (500, b"oops"),
            {"INPUT-MALFORMED-JSON", "SERVER-NO-5XX"},
            1,
        ),
        (entry("GET", "/tasks/t-404"), (404, b"Not found"), {"ERROR-BODY-JSON"}, 0),  # SHOULD: a warning
        # {"message": ...} or {"detail": ...} carries a message; a body with no text in it does not.
        (entry("GET", "/tasks/t-404"), (404, {"message": "no error field"}), set(), 0),
        (entry("GET", "/tasks/t-404"), (404, {"code": 404}), {"ERROR-BODY-JSON"}, 0),
        # JSON labelled otherwise is still JSON to RESPONSE-SCHEMA; the label alone warns.
        (entry("GET", "/health"), (200, b'{"status": "ok"}'), {"RESPONSE-CONTENT-TYPE-JSON"}, 0),
    ],
    ids=lambda value: None,
)
def test_each_judge_names_its_rule(fake_crm, tmp_path, recorded, answer, broken, exit_code):
    method = recorded["request"]["method"]
    path = recorded["request"]["url"][len(ORIGIN) :]
    crm = fake_crm(override=_stub(method, path, *answer))
    result = invoke(
        "replay", str(write(tmp_path / "one.har", har(recorded))), "--base-url", crm.url, "--json", key=KEY
    )
    assert result.exit_code == exit_code, result.output
    (step,) = json.loads(result.output)["steps"]
    found = {j["rule"] for j in step["judgements"] if j["outcome"] != "passed"}
    assert found == broken
    for judgement in step["judgements"]:
        if judgement["outcome"] != "passed":
            assert judgement["expected"] and judgement["actual"] and judgement["message"]


def test_a_probe_without_the_key_is_judged_by_the_auth_rules(fake_crm, tmp_path):
    seen_keys: list[str | None] = []

    def open_door(request, _app):
        seen_keys.append(request.headers.get("X-API-Key"))
        if request.path == "/users":
            return 403, {"error": "Forbidden"}
        return (200, {"status": "ok"}) if "X-API-Key" not in request.headers else None

    crm = fake_crm(override=open_door)
    recording = write(
        tmp_path / "p.har",
        har(entry("GET", "/health"), entry("GET", "/health", headers={}), entry("GET", "/users", headers={})),
    )
    result = invoke("replay", str(recording), "--base-url", crm.url, key=KEY)
    assert result.exit_code == 1, result.output
    lines = step_lines(result.output)
    assert "✗ AUTH-MISSING-KEY" in lines[2] and "[no key, as recorded]" in lines[2]
    assert "! AUTH-401-NOT-403" in lines[3] and "✗" not in lines[3]
    assert seen_keys == [KEY, None, None]


def test_recorded_keys_are_never_resent_and_the_key_given_now_is(fake_crm, tmp_path):
    recorded = {"X-API-Key": "old-recorded-key", "Authorization": "Bearer old-token", "X-Request-Id": "r-9"}
    crm = fake_crm()
    recording = write(tmp_path / "k.har", har(entry("GET", "/health", headers=recorded)))
    result = invoke("replay", str(recording), "--base-url", crm.url, key=KEY)
    assert result.exit_code == 0, result.output
    (request,) = crm.app.seen
    assert request.headers["X-API-Key"] == KEY and request.headers["X-Request-Id"] == "r-9"
    assert "Authorization" not in request.headers
    assert "old-recorded-key" not in json.dumps(request.headers) and "old-token" not in json.dumps(
        request.headers
    )


def test_ids_are_remapped_unless_keep_ids(fake_crm, tmp_path):
    recording = write(tmp_path / "ids.har", har(*SESSION[1:3]))
    crm = fake_crm()
    remapped = invoke("replay", str(recording), "--base-url", crm.url, key=KEY)
    assert "#2 GET /tasks/task-1 → 200" in remapped.output, remapped.output
    kept = invoke("replay", str(recording), "--base-url", crm.url, "--keep-ids", key=KEY)
    assert "#2 GET /tasks/task-abc123 → 404" in kept.output and kept.exit_code == 0


def test_a_canary_key_echoed_back_appears_in_no_output(fake_crm, tmp_path, session_har):
    def echo(request, answer):
        status, body = answer
        if isinstance(body, dict):
            return status, {
                **body,
                "echo": request.headers,
                "note": f"key was {request.headers.get('X-API-Key')}",
            }
        return answer

    crm = fake_crm(key=CANARY, transform=echo)
    reports = tmp_path / "reports"
    outputs = [
        invoke("replay", str(session_har), "--base-url", crm.url, "--report-dir", str(reports)),
        invoke("replay", str(session_har), "--base-url", crm.url, "--json"),
        invoke("replay", str(session_har), "--dry-run", "--json"),
        invoke("replay", str(session_har), "--base-url", crm.url, "--api-key", CANARY, key=None),
    ]
    for result in outputs:
        assert result.exit_code in (0, 1), result.output
        assert CANARY not in result.output and CANARY not in result.stderr
    assert "[REDACTED]" in outputs[1].output
    for path in reports.iterdir():
        assert CANARY not in path.read_text(encoding="utf-8"), path.name


def test_dry_run_lists_the_steps_and_sends_nothing(hostile, answer, session_har):
    server = hostile(lambda conn, _: conn.sendall(answer("200 OK", b"{}")))
    result = invoke("replay", str(session_har), "--base-url", server.url, "--dry-run", key=None)
    assert result.exit_code == 0, result.output
    assert (
        "Dry run: nothing will be sent. 11 requests" in result.output and "6 of them writes" in result.output
    )
    assert "#4 POST /tasks/batch  (getTasksBatch)" in result.output
    assert "#10 GET /health  (checkHealth; sent without the key, as recorded)" in result.output
    assert "#11 GET /metrics  (not in the contract)" in result.output
    time.sleep(0.1)
    assert server.received == []
    listing = json.loads(invoke("replay", str(session_har), "--dry-run", "--json", key=None).output)
    assert listing["dry_run"] is True and len(listing["steps"]) == 11


def test_json_output_is_one_document_with_a_summary(conformant, session_har):
    result = invoke("replay", str(session_har), "--base-url", conformant.url, "--json")
    assert result.exit_code == 0
    document = json.loads(result.output)
    assert document["format"] == "enginy-conformance-replay" and document["verdict"] == "passed"
    assert document["summary"]["requests"] == 11 and document["summary"]["not_in_contract"] == 1
    assert {"index", "method", "path", "operation", "status", "elapsed_ms", "judgements"} <= set(
        document["steps"][0]
    )


# --- exit 2: connection problems and a key the server refuses -----------------------------------------------


def test_an_unreachable_server_is_one_line_exit_2(closed_port, session_har):
    line = one_clean_line(invoke("replay", str(session_har), "--base-url", f"http://127.0.0.1:{closed_port}"))
    assert "connection refused" in line and CANARY not in line


def test_a_missing_base_url_or_key_is_one_line(session_har):
    assert "No server to judge" in one_clean_line(invoke("replay", str(session_har)))
    assert "No API key" in one_clean_line(
        invoke("replay", str(session_har), "--base-url", "http://x", key=None)
    )
    assert "--delay-ms" in one_clean_line(
        invoke("replay", str(session_har), "--base-url", "http://x", "--delay-ms", "-1")
    )


def test_a_key_refused_on_every_request_is_exit_2(conformant, session_har):
    result = invoke("replay", str(session_har), "--base-url", conformant.url, key="not-the-key")
    line = one_clean_line(result)
    assert "refused the key on every request (401)" in line
    assert "the server refused the key (401)" in result.output


def test_a_request_without_an_answer_is_reported_and_the_replay_goes_on(hostile, answer, tmp_path):
    def handler(conn, raw):
        if raw.startswith(b"POST"):
            conn.close()  # the request arrived; no answer comes back
            return
        conn.sendall(answer("200 OK", b'{"status": "ok"}'))

    server = hostile(handler)
    recording = write(
        tmp_path / "drop.har", har(entry("POST", "/tasks", {"subject": "s"}), entry("GET", "/health"))
    )
    result = invoke("replay", str(recording), "--base-url", server.url)
    line = one_clean_line(result)
    assert "1 of 2 requests got no usable answer" in line
    lines = step_lines(result.output)
    assert "→ no answer" in lines[1] and "✓" in lines[2]


def test_delay_is_waited_between_requests_not_before_the_first(fake_crm, tmp_path):
    crm = fake_crm()
    recording = read_recording(write(tmp_path / "d.har", har(*SESSION[:3])))
    waits: list[float] = []
    client = Client(base_url=crm.url, api_key=KEY, timeout=5)
    try:
        outcome = replay(recording, client, delay_s=0.25, sleep=waits.append)
    finally:
        client.close()
    assert waits == [0.25, 0.25]
    assert outcome.exit_code == 0 and len(outcome.results) == 3


def test_a_recording_with_nothing_to_send_is_one_line(tmp_path):
    passing = _report_document("http://crm.example.com")
    passing["results"] = passing["results"][:1]  # only a passed rule
    line = one_clean_line(
        invoke("replay", str(write(tmp_path / "ok.json", passing)), "--base-url", "http://x")
    )
    assert "holds nothing to replay" in line and "failed or warning rule" in line
    redacted = write(tmp_path / "r.har", har(entry("POST", "/tasks", {"subject": "[REDACTED]"})))
    assert "can be re-sent" in one_clean_line(invoke("replay", str(redacted), "--base-url", "http://x"))
    assert invoke("replay", str(redacted), "--dry-run").exit_code == 0  # listing it is fine


def test_a_replay_that_judged_nothing_is_exit_2(fake_crm, tmp_path):
    crm = fake_crm()
    outside = write(tmp_path / "o.har", har(entry("GET", "/metrics", origin="http://crm.example.com")))
    result = invoke("replay", str(outside), "--base-url", crm.url, key=KEY)
    assert "nothing was judged" in one_clean_line(result)
    assert "not in the contract" in result.output


def test_gateway_errors_everywhere_are_exit_2_not_a_verdict(hostile, answer, session_har):
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    server = hostile(lambda conn, _: conn.sendall(answer("502 Bad Gateway", page, "text/html")))
    result = invoke("replay", str(session_har), "--base-url", server.url)
    assert "a proxy or gateway answered" in one_clean_line(result)
    assert "FAILED" not in result.output and "PASSED" not in result.output
