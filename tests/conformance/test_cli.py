"""enginy-conformance on the command line: documented commands, exit codes, hostile servers, secrets.

Every hostile server must end in a clean verdict (exit 1) or one clean line (exit 2), never a traceback,
and in bounded time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from conformance.cli import cli
from enginy_spec import load_catalogue
from tests.conformance.conftest import Answer, FakeCRM, Request, Trickle

KEY = "fake-key-0123456789"  # FakeCRM's key
# Rules the Schemathesis pass does not judge: runs limited to them stay scripted, and fast.
SCRIPTED_ONLY = "HEALTH-OK,TASK-CREATE-RETURNS-ID,AUTH-401-NOT-403"
CANARY = "canary-9c1f-KEY-must-never-leak"
CLEAN_ENV = {name: None for name in os.environ if name.startswith("ENGINY_")}


def invoke(*args: str, key: str | None = KEY, **env: str):
    environment = {**CLEAN_ENV, **env}
    if key is not None:
        environment["ENGINY_API_KEY"] = key
    return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)


def one_clean_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.stderr
    return errors[0]


# --- documentation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ("run", "--profile", "turbo"),
            "'turbo' is not one of 'quick', 'full'. (see 'enginy-conformance run --help')",
        ),
        (("run", "--bogus"), "No such option '--bogus'"),
        (("nope",), "No such command 'nope'. (see 'enginy-conformance --help')"),
        (("--bogus",), "No such option '--bogus'. (see 'enginy-conformance --help')"),
        (("replay",), "Missing argument 'FILE'"),
    ],
)
def test_every_usage_mistake_is_one_line_naming_the_help_to_read(args, fragment):
    line = one_clean_line(CliRunner().invoke(cli, list(args), env=CLEAN_ENV, prog_name="enginy-conformance"))
    assert fragment in line and "Usage:" not in line


def test_the_version_names_the_suite_the_spec_and_schemathesis():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert (
        result.output.startswith("enginy-conformance ")
        and "(spec 1.0.0, 57 rules: 32 MUST, 25 SHOULD;" in result.output
    )
    assert "schemathesis 4." in result.output


def test_a_report_dir_that_cannot_be_written_is_refused_before_anything_is_sent(fake_crm, tmp_path):
    crm = fake_crm()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    line = one_clean_line(invoke("run", "--base-url", crm.url, "--report-dir", str(blocker / "reports")))
    assert "Cannot write the reports to" in line and "Nothing was sent." in line
    assert crm.app.seen == []


def test_replay_help_says_what_is_never_re_sent_in_its_own_words():
    text = CliRunner().invoke(cli, ["replay", "--help"]).output
    assert "[REDACTED]" not in text and "cookies and tokens are never re-sent" in " ".join(text.split())


def test_every_command_is_documented_with_an_example():
    assert set(cli.commands) == {"run", "rules", "demo", "replay", "scenario", "proxy", "load"}
    for name, command in [("enginy-conformance", cli), *cli.commands.items()]:
        doc = command.help or ""
        summary = doc.strip().splitlines()[0] if doc.strip() else ""
        assert summary.endswith("."), f"{name} has no one-line summary"
        assert "\b\nExample:" in doc or "\b\n    Example:" in doc, f"{name} has no Example in a \\b block"
        help_text = CliRunner().invoke(cli, [*([] if command is cli else [name]), "--help"]).output
        assert "Example:" in help_text
        for param in command.params:
            if isinstance(param, click.Option) and param.name not in ("help", "version"):
                assert param.help, f"{name} {param.opts} is undocumented"


def test_help_says_to_prefer_the_environment_for_the_key():
    assert "ENGINY_API_KEY" in CliRunner().invoke(cli, ["run", "--help"]).output


def test_run_help_documents_the_baseline_and_its_update():
    text = " ".join(CliRunner().invoke(cli, ["run", "--help"]).output.split())
    assert "--baseline FILE" in text and "[env ENGINY_BASELINE]" in text
    assert "--baseline-update" in text and "Exits 0 when the file written accepts every failure" in text
    assert "--base-url http://localhost:8080 --baseline known.json --baseline-update" in text  # the example


# --- rules ---------------------------------------------------------------------------------------------


def test_rules_lists_the_catalogue():
    result = invoke("rules")
    assert result.exit_code == 0
    for rule in load_catalogue():
        assert rule.id in result.output
    # The one rule run leaves out says which command judges it.
    (line,) = [line for line in result.output.splitlines() if "(judged by enginy-conformance load" in line]
    assert line.startswith("LOAD-P95-LATENCY") and line.endswith(
        "(judged by enginy-conformance load, not run)"
    )


def test_rules_json_and_level():
    data = json.loads(invoke("rules", "--json", "--level", "should").output)
    assert data and {item["level"] for item in data} == {"SHOULD"}
    assert {"id", "level", "operations", "statement", "source", "judged_by"} <= set(data[0])
    judged_by = {item["id"]: item["judged_by"] for item in json.loads(invoke("rules", "--json").output)}
    assert set(judged_by.values()) == {"scripted", "schemathesis", "load"}
    assert [rule_id for rule_id, by in judged_by.items() if by == "load"] == ["LOAD-P95-LATENCY"]


# --- run against a conformant server and a broken one -------------------------------------------------


def test_run_against_a_conformant_server_exits_0_and_writes_reports(fake_crm, tmp_path):
    crm = fake_crm()
    result = invoke(
        "run",
        "--base-url",
        crm.url,
        "--report-dir",
        str(tmp_path / "r"),
        "--only",
        "HEALTH-OK,TASK-CREATE-RETURNS-ID",
        "--only",
        "AUTH-401-NOT-403",
    )
    assert result.exit_code == 0, result.output
    assert "3 rules passed" in result.output and "HEALTH-OK" not in result.output  # collapsed, not listed
    assert "PASSED: every selected MUST rule was judged and holds" in result.output
    assert "key from ENGINY_API_KEY" in result.output
    assert (tmp_path / "r" / "report.json").is_file()
    assert str(tmp_path / "r") in result.output


def test_a_must_failure_exits_1_and_a_should_failure_exits_0(fake_crm, tmp_path):
    def bare_tasks(request, answer):
        if request.method == "GET" and "/tasks/" in request.path:
            return (200, {"id": "stub"}) if answer[0] == 404 else (answer[0], {"id": answer[1]["id"]})
        return answer

    crm = fake_crm(transform=bare_tasks)
    failing = invoke(
        "run", "--base-url", crm.url, "--report-dir", str(tmp_path), "--only", "TASK-GET-UNKNOWN"
    )
    assert failing.exit_code == 1
    assert "✗ TASK-GET-UNKNOWN" in failing.output and "FAILED" in failing.output
    warning = invoke(
        "run", "--base-url", crm.url, "--report-dir", str(tmp_path), "--only", "TASK-GET-COMPLETION-FIELDS"
    )
    assert warning.exit_code == 0
    assert "! TASK-GET-COMPLETION-FIELDS" in warning.output


def test_dry_run_prints_the_plan_and_sends_nothing(hostile, answer):
    server = hostile(lambda conn, _: conn.sendall(answer("200 OK", b"{}")))
    result = invoke("run", "--base-url", server.url, "--dry-run", key=None)
    assert result.exit_code == 0
    assert "Dry run: nothing will be sent" in result.output
    assert "POST /tasks x5" in result.output and "writes" in result.output
    assert server.received == []


# --- usage errors: exit 2, one line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["run"], {}, "No server to judge"),
        (["run", "--base-url", "http://x", "--only", "TASK-GTE"], {}, "did you mean TASK-GET"),
        (["run", "--base-url", "http://x"], {"ENGINY_TIMEOUT": "soon"}, "ENGINY_TIMEOUT in the environment"),
        (["run", "--base-url", "not a url"], {}, "--base-url must be an http"),
        (["run", "--base-url", "http://x", "--config", "/nonexistent/c.toml"], {}, "does not exist"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, env, message):
    line = one_clean_line(invoke(*args, **env))
    assert message in line


def test_a_missing_key_says_to_use_the_environment(fake_crm):
    line = one_clean_line(invoke("run", "--base-url", fake_crm().url, key=None))
    assert "ENGINY_API_KEY" in line


def test_a_refused_key_is_exit_2(fake_crm, tmp_path):
    line = one_clean_line(
        invoke("run", "--base-url", fake_crm().url, "--report-dir", str(tmp_path), key="wrong")
    )
    assert "refused the key (401)" in line


# --- hostile servers ------------------------------------------------------------------------------------


def test_refused_connection(closed_port):
    line = one_clean_line(invoke("run", "--base-url", f"http://127.0.0.1:{closed_port}"))
    assert "connection refused" in line


def test_a_server_that_never_answers_is_bounded_by_timeout(hostile):
    server = hostile(lambda conn, _: time.sleep(10))
    started = time.monotonic()
    line = one_clean_line(invoke("run", "--base-url", server.url, "--timeout", "0.5"))
    assert time.monotonic() - started < 5
    assert "within 0.5 s (--timeout)" in line


def test_an_answer_trickled_past_the_timeout_leaves_its_rules_not_judged(fake_crm, tmp_path):
    # One byte every 0.3 s: no read ever times out, so only a deadline on the whole answer ends it.
    def trickle_batches(request: Request, _app: FakeCRM) -> Answer | None:
        if request.method == "POST" and request.path == "/tasks/batch":
            return 200, Trickle([{"id": "task-1", "subject": "a task", "completed": False}], every_s=0.3)
        return None

    crm = fake_crm(override=trickle_batches)
    result = invoke(
        "run", "--base-url", crm.url, "--only", "TASK-BATCH-GET-ARRAY,HEALTH-OK", "--timeout", "1",
        "--report-dir", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "INCOMPLETE" in result.output
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    outcome = next(item for item in report["results"] if item["rule"] == "TASK-BATCH-GET-ARRAY")
    assert outcome["outcome"] == "skipped"
    assert "within 1 s (--timeout)" in json.dumps(outcome["evidence"])


def test_max_time_ends_a_slow_run_incomplete_with_its_reports(mock_starter, tmp_path):
    slow = mock_starter("--fault", "latency:ms=300", "--threads", "32", key=KEY)
    started = time.monotonic()
    result = invoke("run", "--base-url", slow.url, "--max-time", "4s", "--report-dir", str(tmp_path))
    # A whole quick run at 300 ms an answer takes well over a minute; this one ends near its limit.
    assert time.monotonic() - started < 30
    assert result.exit_code == 3, result.output
    assert "--max-time (4 s) passed" in result.output
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["verdict"] == "incomplete"
    assert any("--max-time" in json.dumps(item["evidence"]) for item in report["results"])


def test_html_502_pages(hostile, answer):
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    server = hostile(lambda conn, _: conn.sendall(answer("502 Bad Gateway", page, "text/html")))
    line = one_clean_line(invoke("run", "--base-url", server.url))
    assert "502 with a non-JSON page" in line


def test_200_with_non_json_everywhere_is_a_clean_verdict(hostile, answer, tmp_path):
    server = hostile(lambda conn, _: conn.sendall(answer("200 OK", b"OK, thanks!", "text/plain")))
    result = invoke("run", "--base-url", server.url, "--report-dir", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Internal error" not in result.output
    assert "✗ TASK-CREATE-RETURNS-ID (MUST, failed)" in result.output  # its block
    assert "HEALTH-OK" not in result.output  # passed: in the "N rules passed" row


def test_a_10_mb_answer_everywhere_is_a_clean_verdict_in_bounded_time(hostile, tmp_path):
    blob = b'{"id": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(blob)}\r\n\r\n".encode()
    )

    def huge(conn, _):
        conn.sendall(head)
        conn.sendall(blob)

    server = hostile(huge)
    started = time.monotonic()
    result = invoke("run", "--base-url", server.url, "--report-dir", str(tmp_path), "--timeout", "5")
    assert time.monotonic() - started < 60
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Internal error" not in result.output
    assert "larger than 1024 KiB" in result.output
    assert (tmp_path / "report.json").stat().st_size < 5 * 1024 * 1024


def test_a_redirect_to_another_host_is_not_followed_and_the_key_stays_home(hostile, answer):
    other = hostile(lambda conn, _: conn.sendall(answer("200 OK", b'{"status": "ok"}')))
    target = f"http://localhost:{other.port}/health"  # another host name for the same machine
    redirecting = hostile(
        lambda conn, _: conn.sendall(answer("302 Found", b"", extra=f"Location: {target}\r\n"))
    )
    result = invoke("run", "--base-url", redirecting.url, key=CANARY)
    line = one_clean_line(result)
    assert "redirect" in line and "never follows redirects" in line
    assert other.received == []
    assert all(CANARY.encode() not in raw for raw in other.received)
    assert CANARY not in result.output


def test_max_writes_10_is_incomplete_exit_3_with_every_report_saying_so(fake_crm, tmp_path):
    crm = fake_crm()
    result = invoke("run", "--base-url", crm.url, "--max-writes", "10", "--report-dir", str(tmp_path))
    assert result.exit_code == 3, result.output
    assert "INCOMPLETE: no MUST rule failed, but" in result.output
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert document["verdict"] == "incomplete" and document["exit_code"] == 3
    assert {item["rule"] for item in document["not_judged"]} >= {"TASK-CREATE-RETURNS-ID", "ASSOC-CREATE"}
    assert "INCOMPLETE" in (tmp_path / "summary.md").read_text(encoding="utf-8").splitlines()[0]
    assert 'type="INCOMPLETE"' in (tmp_path / "junit.xml").read_text(encoding="utf-8")
    assert 'class="verdict incomplete"' in (tmp_path / "report.html").read_text(encoding="utf-8")


# --- a target that is not a Custom CRM API: exit 2 in seconds -------------------------------------------


def test_python_http_server_is_not_a_custom_crm_exit_2_within_seconds(tmp_path):
    from tests.conformance.conftest import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        started = time.monotonic()
        result = invoke("run", "--base-url", f"http://127.0.0.1:{port}", "--report-dir", str(tmp_path / "r"))
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(5)
    line = one_clean_line(result)
    assert "does not look like a Custom CRM API" in line and "--base-url" in line
    assert "GET /health → 404 (text/html)" in line and "POST /tasks/batch → 501 (text/html)" in line
    assert elapsed < 10
    assert not (tmp_path / "r").exists()  # nothing was judged, so nothing is reported


def test_a_json_api_at_the_wrong_path_prefix_is_not_a_custom_crm(fake_crm):
    # A framework answering its own JSON 404 for every path (e.g. FastAPI mounted under /api).
    crm = fake_crm(override=lambda request, app: (404, {"detail": "Not Found"}))
    line = one_clean_line(invoke("run", "--base-url", crm.url))
    assert "does not look like a Custom CRM API" in line
    assert "POST /contacts/sync → 404 (application/json)" in line


def test_a_crm_whose_health_is_missing_is_still_judged(fake_crm, tmp_path):
    def no_health(request, app):
        return (404, b"<html>Not Found</html>") if request.path == "/health" else None

    crm = fake_crm(override=no_health)
    result = invoke(
        "run",
        "--base-url",
        crm.url,
        "--only",
        "HEALTH-OK,TASK-CREATE-RETURNS-ID",
        "--report-dir",
        str(tmp_path),
    )
    assert result.exit_code == 1, result.output
    assert "✗ HEALTH-OK (MUST, failed)" in result.output and "1 rule passed" in result.output


# --- the key never appears -------------------------------------------------------------------------------


def test_a_canary_key_echoed_by_the_server_appears_nowhere(fake_crm, tmp_path):
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
    result = invoke("run", "--base-url", crm.url, "--report-dir", str(reports), key=CANARY)
    assert result.exit_code in (0, 1)
    assert CANARY not in result.output
    files = list(reports.iterdir())
    assert files, "no reports were written"
    for path in files:
        assert CANARY not in path.read_text(encoding="utf-8"), path.name
    assert "[REDACTED]" in (reports / "report.json").read_text(encoding="utf-8")


# --- as a real process --------------------------------------------------------------------------------------


def test_as_a_real_subprocess(fake_crm, tmp_path):
    crm = fake_crm(key=CANARY)
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}
    env.update(ENGINY_API_KEY=CANARY, ENGINY_BASE_URL=crm.url, ENGINY_ONLY=SCRIPTED_ONLY)
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--report-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 rules passed" in done.stdout and "PASSED:" in done.stdout
    assert CANARY not in done.stdout + done.stderr


def test_a_real_subprocess_exits_2_without_traceback(closed_port, tmp_path):
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}
    env["ENGINY_API_KEY"] = CANARY
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--base-url", f"http://127.0.0.1:{closed_port}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == "" or "judging" in done.stdout
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_demo_without_the_mock_installed_is_one_line(tmp_path):
    hide_mock = "import sys; sys.modules['mock_server'] = None; from conformance.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", hide_mock, "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path.cwd(),
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("Error: The bundled mock (mock_server) is not installed")
    assert "Traceback" not in done.stderr


def test_ctrl_c_exits_130_and_writes_reports_marked_interrupted_with_what_was_created(start_mocks, tmp_path):
    slow = start_mocks("--fault", "latency:ms=150")
    reports = tmp_path / "reports"
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance", "run", "--base-url", slow.url, "--report-dir", str(reports)],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("ENGINY_")},
            "ENGINY_API_KEY": slow.key,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Stop it once the scripted checks are under way and the mock has answered some of their requests
    # (HEALTH-OK's first among them), while the rest still runs.
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(2)]
    assert lines[-1].startswith("▸ scripted checks:"), "".join(lines) + process.stderr.read()
    while len(json.loads(slow.admin("GET", "/__admin/journal?limit=100")[1])["entries"]) < 30:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert "Interrupted (Ctrl-C): exit 130" in out
    document = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    assert document["interrupted"] is True and document["exit_code"] == 130
    outcomes = {r["rule"]: r["outcome"] for r in document["results"]}
    assert outcomes["HEALTH-OK"] == "passed"  # judged before the stop, kept
    stopped = [r for r in document["results"] if "interrupted (Ctrl-C)" in json.dumps(r["evidence"])]
    assert stopped, "no rule says it was not judged because of the interrupt"
    assert document["created"], "the records created before the stop are listed for cleanup"
    assert "Interrupted (Ctrl-C)" in (reports / "summary.md").read_text(encoding="utf-8")
    assert "Interrupted (Ctrl-C)." in (reports / "report.html").read_text(encoding="utf-8")
    assert slow.key not in out + err + (reports / "report.json").read_text(encoding="utf-8")
