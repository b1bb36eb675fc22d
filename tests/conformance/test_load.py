"""`enginy-conformance load` against the real mock: real Locust processes, real ports, a few seconds each.

Clean, it passes and writes its reports, the timeline CSV and the chart; a fault only concurrency shows
(clock-ids) fails TASK-CREATE-RETURNS-ID; the latency and error-rate transport faults show as
LOAD-P95-LATENCY (a warning: the p95 over --p95-ms) and SERVER-NO-5XX; the mock's LOAD-P95-LATENCY
fault (slow only while requests overlap) is over the default budget; a non-loopback target is refused
before any request; --max-writes holds; a master with two workers gives one merged verdict.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Never imported here: importing Locust patches this very process with gevent.
if importlib.util.find_spec("locust") is None:
    pytest.skip("the [load] extra is not installed", allow_module_level=True)

DURATION = "4"


def load(mock, tmp_path: Path, *args: str, name: str = "reports", timeout: float = 90):
    """Run the command as a user does, in a process of its own; (exit code, output, report.json)."""
    reports = tmp_path / name
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "load",
            "--base-url",
            mock.url,
            "--report-dir",
            str(reports),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**_clean_env(), "ENGINY_API_KEY": mock.key},
    )
    output = done.stdout + done.stderr
    assert mock.key not in output
    path = reports / "report.json"
    document = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return done.returncode, output, document


def _clean_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}


def outcomes(document) -> dict[str, str]:
    return {result["rule"]: result["outcome"] for result in document["results"]}


def bad(document) -> dict[str, str]:
    return {rule: outcome for rule, outcome in outcomes(document).items() if outcome in ("failed", "warning")}


def test_a_clean_load_passes_and_writes_reports_timeline_and_chart(mock_starter, tmp_path):
    mock = mock_starter()
    code, output, document = load(mock, tmp_path, "--users", "4", "--duration", DURATION)
    assert code == 0, output
    assert "No MUST rule broke under load" in output and "load: " in output  # progress lines
    assert set(outcomes(document).values()) == {"passed"}
    # Judged only what the traffic spoke about: the rest is "not seen", never passed.
    assert {"SERVER-NO-5XX", "TASK-CREATE-RETURNS-ID", "TASK-BATCH-GET-OMITS-UNKNOWN"} <= set(
        outcomes(document)
    )
    assert "AUTH-MISSING-KEY" in document["settings"]["not_seen"]
    assert document["load"]["requests"] > 50 and document["load"]["p95_within_budget"] is True
    latency = next(r for r in document["results"] if r["rule"] == "LOAD-P95-LATENCY")["evidence"][0]
    assert re.search(
        r"within the budget of 1000 ms \(--p95-ms\); slowest: \S+ /\S+ \(p95 \d+ ms\)\.$", latency["message"]
    )
    reports = tmp_path / "reports"
    rows = (reports / "load-timeline.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "second,requests_per_s,failures,p50_ms,p95_ms,p99_ms" and len(rows) >= 4
    html = (reports / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 2 and "Latency percentiles" in html and "<script" not in html
    assert all((reports / name).is_file() for name in ("junit.xml", "summary.md"))
    # Everything it created is tagged with the run and listed.
    prefix = f"enginy-conformance-{document['settings']['run_id']}"
    status, body = mock.admin("GET", "/__admin/records")
    tasks = json.loads(body)["tasks"]
    assert status == 200 and tasks and all(task["subject"].startswith(prefix) for task in tasks)
    listed = {(item["kind"], item["id"]) for item in document["created"]}
    assert {("task", task["id"]) for task in tasks} <= listed


def test_ids_drawn_from_a_clock_fail_task_create_returns_id_under_load(mock_starter, tmp_path):
    mock = mock_starter("--fault", "clock-ids")
    code, output, document = load(mock, tmp_path, "--users", "6", "--spawn-rate", "6", "--duration", DURATION)
    assert code == 1, output
    assert outcomes(document)["TASK-CREATE-RETURNS-ID"] == "failed"
    assert "✗ TASK-CREATE-RETURNS-ID" in output and "FAILED: a MUST rule broke under load." in output
    finding = next(r for r in document["results"] if r["rule"] == "TASK-CREATE-RETURNS-ID")["evidence"][0]
    assert len(finding["exchanges"]) == 2  # both creates that were answered the one id


def test_latency_and_server_errors_show_as_the_budget_and_server_no_5xx(mock_starter, tmp_path):
    mock = mock_starter("--fault", "latency:ms=120", "--fault", "error-rate:rate=0.1")
    code, output, document = load(mock, tmp_path, "--users", "4", "--duration", DURATION, "--p95-ms", "80")
    assert code == 1, output
    assert outcomes(document)["SERVER-NO-5XX"] == "failed"
    assert document["load"]["p95_within_budget"] is False and document["load"]["p95_ms"] >= 120
    # Over the budget is LOAD-P95-LATENCY's finding, a SHOULD: a warning with its evidence, never a failure.
    assert outcomes(document)["LOAD-P95-LATENCY"] == "warning"
    latency = next(r for r in document["results"] if r["rule"] == "LOAD-P95-LATENCY")
    finding = latency["evidence"][0]
    assert finding["expected"] == "p95 latency at most 80 ms"
    assert finding["actual"].startswith(f"p95 {document['load']['p95_ms']:.0f} ms (p50 ")
    assert re.search(r"; slowest: (GET|POST|PATCH|PUT) /\S+ p95 \d+ ms over \d+ requests?", finding["actual"])
    assert "! LOAD-P95-LATENCY (SHOULD, 1 finding): Under load, the p95 latency was" in output
    assert re.search(r"over the budget of 80 ms \(--p95-ms\); slowest: \S+ /\S+ \(p95 \d+ ms\)", output)
    reports = tmp_path / "reports"
    junit = (reports / "junit.xml").read_text(encoding="utf-8")
    assert 'name="LOAD-P95-LATENCY' in junit and "WARNING (SHOULD)" in junit
    assert "LOAD-P95-LATENCY" in (reports / "summary.md").read_text(encoding="utf-8")
    assert "LOAD-P95-LATENCY" in (reports / "report.html").read_text(encoding="utf-8")
    # A 503 says nothing about the operation's own rules: only SERVER-NO-5XX judged it.
    assert outcomes(document).get("TASK-CREATE-RETURNS-ID") == "passed"


def test_the_mocks_load_p95_latency_fault_is_over_the_default_budget_only_under_load(mock_starter, tmp_path):
    # One request at a time (the probe, run's checks) is answered at once; overlapping users wait 1200 ms.
    mock = mock_starter("--fault", "LOAD-P95-LATENCY")
    # Eight users: the mock answers in about a millisecond, and users that spend their time judging in
    # one busy process rarely overlap; one overlap is enough (every request during its wait overlaps).
    code, output, document = load(mock, tmp_path, "--users", "8", "--spawn-rate", "8", "--duration", "3")
    assert code == 0, output  # a SHOULD rule: it warns, never fails the load
    assert bad(document) == {"LOAD-P95-LATENCY": "warning"}
    assert document["load"]["p95_ms"] >= 1200 and document["settings"]["p95_ms"] == 1000


def test_a_target_that_is_not_loopback_is_refused_before_any_request(tmp_path):
    # TEST-NET-1: a connection attempt would hang for the connect timeout; the refusal is immediate.
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "load", "--base-url", "http://192.0.2.10:8080"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_clean_env(), "ENGINY_API_KEY": "canary-not-shown-0123"},
        cwd=tmp_path,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a loopback address" in lines[0] and "--i-own-this-server" in lines[0]
    assert "Traceback" not in done.stderr and "canary-not-shown" not in done.stdout + done.stderr
    assert time.monotonic() - started < 8 and not (tmp_path / "reports").exists()


def test_max_writes_caps_every_write_of_the_load(mock_starter, tmp_path):
    # A journal long enough for every read of the 3 s too: the writes must still be in it at the end.
    mock = mock_starter("--journal-size", "100000")
    code, output, document = load(mock, tmp_path, "--users", "4", "--duration", "3", "--max-writes", "25")
    assert code == 0, output
    assert document["settings"]["writes"] == 25 and document["settings"]["writes_capped"] is True
    assert "--max-writes 25 was reached" in output
    status, body = mock.admin("GET", "/__admin/journal")
    entries = json.loads(body)
    entries = entries.get("entries", entries) if isinstance(entries, dict) else entries
    reads = {"/tasks/batch", "/contacts/sync", "/companies/sync"}
    writes = [
        e
        for e in entries
        if e["method"] in ("POST", "PUT", "PATCH") and not (e["method"] == "POST" and e["path"] in reads)
    ]
    assert status == 200 and len(writes) == 25


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_master_and_two_workers_give_one_merged_verdict(mock_starter, tmp_path):
    mock = mock_starter("--fault", "clock-ids")
    port = str(_free_port())
    env = {**_clean_env(), "ENGINY_API_KEY": mock.key}
    command = [sys.executable, "-m", "conformance", "load", "--base-url", mock.url, "--master-port", port]
    master = subprocess.Popen(
        [
            *command,
            "--master",
            "--expect-workers",
            "2",
            "--users",
            "6",
            "--spawn-rate",
            "6",
            "--duration",
            DURATION,
            "--report-dir",
            str(tmp_path / "reports"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    workers = [
        subprocess.Popen(
            [*command, "--worker", "--master-host", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        output, _ = master.communicate(timeout=90)
        for worker in workers:
            assert worker.wait(30) == 0  # the master's quit ends them
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
                process.wait(10)
    document = json.loads((tmp_path / "reports" / "report.json").read_text(encoding="utf-8"))
    assert master.returncode == 1, output
    assert document["load"]["workers"] == 2 and "2 processes" in output
    assert outcomes(document)["TASK-CREATE-RETURNS-ID"] == "failed"
    # The workers' records are one list, each tagged with the one run id the master sent them.
    prefix = f"enginy-conformance-{document['settings']['run_id']}"
    status, body = mock.admin("GET", "/__admin/records")
    subjects = [task["subject"] for task in json.loads(body)["tasks"]]
    assert status == 200 and subjects and all(subject.startswith(prefix) for subject in subjects)
