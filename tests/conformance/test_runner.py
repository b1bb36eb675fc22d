"""conformance.runner: order, plans, the write budget, and how failures of every kind end a run."""

from __future__ import annotations

import socketserver
import threading
import time
from dataclasses import replace

import pytest

from conformance.checks import CHECKS, LOAD_ONLY
from conformance.errors import TransportError, UsageError
from conformance.results import Evidence, fold
from conformance.runner import (
    SCRIPTED_STAGE,
    LineObserver,
    Progress,
    describe_plan,
    plan_run,
    run,
    select_rules,
    share_pass_time,
    summary_table,
)
from conformance.settings import RunSettings
from enginy_spec import load_catalogue

KEY = "fake-key-0123456789"


def test_rules_are_judged_in_catalogue_order_those_reading_every_answer_last(fake_crm, judge):
    lines: list[str] = []
    judge(fake_crm().url, lines=lines)
    judged = [line.split()[1] for line in lines if line[:1] in "✓✗!-" and line.split()[1] in CHECKS]
    in_catalogue = [rule.id for rule in load_catalogue() if rule.id in CHECKS]
    readers = [rule_id for rule_id in in_catalogue if CHECKS.get(rule_id).reads_log]
    assert readers == ["TIMESTAMPS-ISO8601", "ERROR-BODY-JSON"]
    assert judged == [rule_id for rule_id in in_catalogue if rule_id not in readers] + readers
    planned = plan_run(RunSettings(base_url="http://x", api_key=KEY)).scripted
    assert [item.rule_id for item in planned] == judged


def test_a_whole_run_sends_what_the_plan_says(fake_crm, judge):
    crm = fake_crm()
    judge(crm.url)
    plan = plan_run(RunSettings(base_url=crm.url, api_key=KEY))
    writes = sum(1 for r in crm.app.seen[1:] if r.method in ("POST", "PUT", "PATCH"))
    assert len(crm.app.seen) - 1 == plan.request_count
    assert writes == plan.write_count


def test_the_dry_run_text(fake_crm):
    settings = RunSettings(base_url="http://user:secret@crm.test/x", api_key="", max_writes=10)
    text = "\n".join(describe_plan(settings, plan_run(settings)))
    assert "nothing will be sent to http://crm.test/x" in text and "secret" not in text
    # 56 of the catalogue's 57: LOAD-P95-LATENCY is judged by `load` alone (test_only_load_judges_...).
    assert "Rules to judge: 56 (32 MUST, 24 SHOULD)" in text and "--max-writes: 10" in text
    assert "Then a Schemathesis pass (profile quick)" in text


def test_the_write_budget_skips_what_it_cannot_afford(fake_crm, judge):
    crm = fake_crm()
    outcome = judge(crm.url, max_writes=12)
    writes = [r for r in crm.app.seen if r.method in ("POST", "PUT", "PATCH")]
    assert len(writes) <= 12
    results = {r.rule.id: r for r in outcome.report.results}
    assert not [r for r in results.values() if r.outcome in ("failed", "warning")]
    budget = [
        r
        for r in results.values()
        if r.outcome == "skipped" and "write budget of 12" in r.evidence[0].message
    ]
    assert budget, "no rule was skipped for the budget"


def test_unknown_only_ids_are_a_usage_error_with_close_matches(fake_crm):
    settings = RunSettings(base_url=fake_crm().url, api_key=KEY, only=("TASK-BATCH-RUOTE",))
    with pytest.raises(UsageError, match="did you mean TASK-BATCH-ROUTE"):
        run(settings, out=lambda _: None, engine=False, write=False)


def test_only_load_judges_the_load_rules_so_run_never_reports_them_not_judged():
    selected = select_rules(RunSettings(base_url="http://x", api_key=KEY))
    assert set(load_catalogue().ids) - set(selected.ids) == LOAD_ONLY == {"LOAD-P95-LATENCY"}
    only = RunSettings(base_url="http://x", api_key=KEY, only=("HEALTH-OK", "LOAD-P95-LATENCY"))
    with pytest.raises(
        UsageError, match=r"^LOAD-P95-LATENCY is judged only under load: run enginy-conformance load"
    ):
        select_rules(only)


def test_a_crashing_check_is_reported_not_raised(fake_crm, judge):
    snapshot = CHECKS.snapshot()

    def health_check_with_a_bug(ctx):
        raise KeyError("oops")

    try:
        CHECKS.restore(
            {**snapshot, "HEALTH-OK": replace(snapshot["HEALTH-OK"], function=health_check_with_a_bug)}
        )
        outcome = judge(fake_crm().url, "HEALTH-OK", "TASK-GET")
    finally:
        CHECKS.restore(snapshot)
    results = {r.rule.id: r for r in outcome.report.results}
    assert results["HEALTH-OK"].outcome == "skipped"
    assert (
        "Internal error in the check health_check_with_a_bug (KeyError"
        in results["HEALTH-OK"].evidence[0].message
    )
    assert results["TASK-GET"].outcome == "passed"


def test_an_answer_slower_than_the_timeout_leaves_its_rule_not_judged_and_the_run_goes_on(fake_crm, judge):
    def slow_empty_batch(request, app):
        if request.path == "/tasks/batch" and request.body.replace(b" ", b"") == b'{"ids":[]}':
            time.sleep(1.5)
        return None

    outcome = judge(
        fake_crm(override=slow_empty_batch).url, "TASK-BATCH-GET-EMPTY", "TASK-GET", "HEALTH-OK", timeout=0.5
    )
    results = {r.rule.id: r for r in outcome.report.results}
    empty = results["TASK-BATCH-GET-EMPTY"]
    # The docs set no response time: too slow to wait for is not judged, neither passed nor failed.
    assert empty.outcome == "skipped"
    # Which of the client's two clocks notices first (the socket's read timeout or the whole-answer
    # deadline) depends on the machine's load; both name the setting to raise.
    assert "answer within 0.5 s (--timeout)" in empty.evidence[0].message
    assert empty.evidence[0].exchanges and empty.evidence[0].exchanges[0].response is None
    assert results["HEALTH-OK"].outcome == "passed" and results["TASK-GET"].outcome == "passed"
    assert outcome.report.verdict == "passed"  # TASK-BATCH-GET-EMPTY is a SHOULD


def test_each_scripted_rule_takes_its_own_checks_wall_time(fake_crm, judge):
    def slow_users(request, app):
        if request.path == "/users":
            time.sleep(0.4)
        return None

    # One check at a time: the fake CRM answers under a lock, so a check beside the slow one would wait too.
    outcome = judge(fake_crm(override=slow_users).url, "HEALTH-OK", "USERS-OPTIONAL", concurrency=1)
    seconds = {result.rule.id: result.duration_s for result in outcome.report.results}
    assert seconds["USERS-OPTIONAL"] >= 0.4
    assert 0 < seconds["HEALTH-OK"] < 0.2
    assert sum(seconds.values()) <= outcome.report.duration_s


def test_the_generated_pass_time_is_shared_evenly_by_the_rules_it_judged():
    catalogue = load_catalogue()
    found = [
        Evidence(rule_id="SERVER-NO-5XX", outcome="passed", source="schemathesis:examples"),
        Evidence(rule_id="RESPONSE-SCHEMA", outcome="warning", source="schemathesis:fuzzing"),
        Evidence(rule_id="RESPONSE-SCHEMA", outcome="passed", source="schemathesis:coverage"),
    ]
    shared = share_pass_time(found, 3.0)
    seconds = {
        rule_id: fold(catalogue.get(rule_id), shared).duration_s
        for rule_id in ("SERVER-NO-5XX", "RESPONSE-SCHEMA")
    }
    assert seconds == {"SERVER-NO-5XX": 1.5, "RESPONSE-SCHEMA": 1.5}
    assert [item.outcome for item in shared] == ["passed", "warning", "passed"]


def test_a_server_that_goes_away_mid_run_leaves_the_rest_not_judged_and_the_run_incomplete(tmp_path):
    class OneAnswer(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(65536)
            # Stop listening before answering, so that the next request finds nothing to connect to.
            server.shutdown()
            server.socket.close()
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), OneAnswer)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    settings = RunSettings(
        base_url=f"http://127.0.0.1:{server.server_address[1]}", api_key=KEY, report_dir=tmp_path
    )
    lines: list[str] = []
    outcome = run(settings, out=lines.append, engine=True, write=True)
    gone = [
        r
        for r in outcome.report.results
        if "stopped accepting connections" in " ".join(e.message for e in r.evidence)
    ]
    assert gone and all(r.outcome == "skipped" for r in gone)
    assert outcome.report.verdict == "incomplete" and outcome.exit_code == 3
    assert any("connection refused" in note for note in outcome.notes)
    assert (tmp_path / "report.json").is_file()
    assert "INCOMPLETE" in summary_table(outcome.report)[-1]


def test_gateway_and_redirect_answers_to_the_probe_are_transport_errors(hostile, answer):
    for raw in (
        answer("503 Service Unavailable", b"<html>down</html>", "text/html"),
        answer("301 Moved", b""),
    ):
        server = hostile(lambda conn, _, raw=raw: conn.sendall(raw))
        settings = RunSettings(base_url=server.url, api_key=KEY)
        with pytest.raises(TransportError):
            run(settings, out=lambda _: None, engine=False, write=False)


def test_the_summary_table(fake_crm, judge):
    def forbidden(request, answer):
        return (403, {"error": "Forbidden"}) if answer[0] == 401 else answer

    outcome = judge(fake_crm(transform=forbidden).url, "AUTH-MISSING-KEY", "AUTH-401-NOT-403", "TASK-GET")
    table = summary_table(outcome.report)
    assert table[0].split() == ["Rule", "Level", "Outcome", "Reason"]
    assert any(
        line.startswith("AUTH-401-NOT-403") and "! warning" in line and "403" in line for line in table
    )
    assert table[-1].startswith("2 passed, 0 failed, 1 warning, 0 skipped") and "PASSED" in table[-1]


def test_progress_tells_requests_done_of_planned_and_the_time_left() -> None:
    seen: list[str] = []
    progress = Progress(LineObserver(seen.append), started=0.0)
    progress.plan(SCRIPTED_STAGE, "scripted checks", 100, rules=3)
    progress.begin(SCRIPTED_STAGE)
    assert progress.line(now=5.0) == "… 0 of about 100 requests in 5 s"
    progress.count(25, SCRIPTED_STAGE)
    assert progress.line(now=10.0) == "… 25 of about 100 requests in 10 s; about 30 s left"
    progress.plan("coverage", "Schemathesis coverage", 50)  # each phase adds its estimate
    assert progress.line(now=10.0) == "… 25 of about 150 requests in 10 s; about 50 s left"
    progress.count(200, "coverage")  # more than planned: never "-10 s left"; the phase starts with it
    assert progress.line(now=20.0) == "… 225 of about 225 requests in 20 s; finishing"
    progress.plan("fuzzing", "Schemathesis fuzzing", 40)
    progress.end("fuzzing", skipped="The Schemathesis pass was turned off.")
    stages = {stage.key: stage for stage in progress.stages}
    assert [stages[key].state for key in (SCRIPTED_STAGE, "coverage", "fuzzing")] == [
        "running",
        "running",
        "skipped",
    ]
    assert stages["fuzzing"].note == "The Schemathesis pass was turned off."
    progress.stop()
