"""Report → reproduction: the rules a run found broken become a mock that breaks exactly those.

Round trip, with real processes on real ports: the suite against a mock under several faults (a
custom key header and a slow answer included) writes report.json; `enginy-conformance scenario` turns
it into a scenario file, `enginy-mock --from-report` starts a mock from it; the suite against either
fails exactly the rules the first run failed, and warns on exactly the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from conformance.cli import cli
from enginy_spec import load_catalogue
from enginy_spec.reproduction import scenario_from_report

from .conftest import start_mock, stop_mock
from .test_mock_faults import ALL_RULE_FAULTS

KEY = "canary-repro-KEY-5a1c93"
HEADER = "X-CRM-Token"
FAULTS = ("TASK-BATCH-ROUTE", "ACTIVITY-RETURNS-ID", "CONTACT-SYNC-MATCHES-EMAIL")
# The faults' rules, a knock-on (ACTIVITY-RETURNS-ID's answer breaks RESPONSE-SCHEMA) and one that holds.
ONLY = ",".join((*FAULTS, "RESPONSE-SCHEMA", "TASK-GET", "HEALTH-OK"))


def _run(url: str, reports: Path) -> tuple[int, dict[str, str]]:
    result = CliRunner().invoke(
        cli,
        ["run", "--base-url", url, "--api-key-header", HEADER, "--only", ONLY, "--report-dir", str(reports)],
        env={"ENGINY_API_KEY": KEY},
        catch_exceptions=False,
    )
    document = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    broken = {r["rule"]: r["outcome"] for r in document["results"] if r["outcome"] in ("failed", "warning")}
    return result.exit_code, broken


def test_a_report_becomes_a_mock_that_breaks_exactly_the_same_rules(tmp_path: Path) -> None:
    faults = [arg for fault in FAULTS for arg in ("--fault", fault)]
    original = start_mock(*faults, "--fault", "latency:ms=60", "--api-key-header", HEADER, key=KEY)
    try:
        code, broken = _run(original.url, tmp_path / "first")
    finally:
        stop_mock(original)
    assert code == 1
    assert broken == {
        "TASK-BATCH-ROUTE": "failed",
        "ACTIVITY-RETURNS-ID": "failed",
        "RESPONSE-SCHEMA": "failed",
        "CONTACT-SYNC-MATCHES-EMAIL": "warning",
    }
    report = tmp_path / "first" / "report.json"

    scenario_file = tmp_path / "ticket.yaml"
    wrote = CliRunner().invoke(
        cli, ["scenario", str(report), "-o", str(scenario_file)], catch_exceptions=False
    )
    assert wrote.exit_code == 0, wrote.output
    text = scenario_file.read_text(encoding="utf-8")
    assert KEY not in text and str(report) in text  # names its report, holds no key
    scenario = yaml.safe_load(text)
    assert scenario["api_key_header"] == HEADER
    # RESPONSE-SCHEMA's evidence names ACTIVITY-RETURNS-ID as its root cause: that fault reproduces it.
    assert set(scenario["faults"]) == set(broken) - {"RESPONSE-SCHEMA"}
    assert scenario["latency"]["ms"] >= 50  # the median answer time the report shows

    for how in (("--from-report", str(report)), ("--scenario", str(scenario_file))):
        reproduction = start_mock(*how, key=KEY)
        try:
            code_again, broken_again = _run(reproduction.url, tmp_path / how[0].strip("-"))
        finally:
            stop_mock(reproduction)
        assert (code_again, broken_again) == (code, broken), how


def test_from_report_refuses_what_is_not_a_report_in_one_line(tmp_path: Path) -> None:
    not_a_report = tmp_path / "journal.json"
    not_a_report.write_text('{"entries": []}', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mock_server", "--api-key", KEY, "--from-report", str(not_a_report)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "not a report.json of enginy-conformance" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    scenario = CliRunner().invoke(cli, ["scenario", str(not_a_report)])
    assert scenario.exit_code == 2 and "not a report.json" in scenario.output


def test_every_rule_has_a_mock_fault_of_its_id() -> None:
    # What scenario_from_report rests on: a broken rule is always a fault the mock can switch on.
    assert {rule.id for rule in load_catalogue()} <= {fault["id"] for fault in ALL_RULE_FAULTS}


def test_a_passing_report_reproduces_a_conformant_server_and_a_fast_one_no_latency() -> None:
    document: dict[str, Any] = {
        "format": "enginy-conformance-report",
        "target": "https://crm.example.com",
        "started_at": "2026-12-01T10:00:00+00:00",
        "settings": {"api_key_header": "X-API-Key"},
        "results": [
            {
                "rule": "TASK-GET",
                "outcome": "passed",
                "evidence": [{"exchanges": [{"response": {"elapsed_ms": 3.0}}]}],
            }
        ],
    }
    scenario = scenario_from_report(document, source="r.json")
    assert scenario["faults"] == [] and "latency" not in scenario and "api_key_header" not in scenario
    assert "r.json" in scenario["description"] and "no rule broken" in scenario["description"]


def test_a_knock_on_is_reproduced_by_its_root_cause_not_by_a_fault_of_its_own() -> None:
    def result(rule: str, outcome: str, *causes: str | None) -> dict[str, Any]:
        evidence = [{"outcome": outcome, "root_cause": cause} for cause in causes]
        return {"rule": rule, "outcome": outcome, "evidence": evidence}

    document: dict[str, Any] = {
        "format": "enginy-conformance-report",
        "results": [
            result("TASK-BATCH-ROUTE", "failed", None),
            # a 405 on /tasks/batch seen by the generated pass: TASK-BATCH-ROUTE's doing
            result("INPUT-VALID-ACCEPTED", "warning", "TASK-BATCH-ROUTE"),
            # partly its own: one piece of evidence has no other cause
            result("RESPONSE-SCHEMA", "failed", "TASK-BATCH-ROUTE", None),
            # names a cause that did not fail in this report: kept
            result("SERVER-NO-5XX", "failed", "TASK-GET"),
        ],
    }
    faults = scenario_from_report(document, source="r.json")["faults"]
    assert faults == ["TASK-BATCH-ROUTE", "RESPONSE-SCHEMA", "SERVER-NO-5XX"]
