"""INCOMPLETE: no MUST rule failed, but one was not judged; every report says so, with the rules and why."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance.exit_codes import for_verdict
from conformance.report import REPORT_SCHEMA_PATH, render_html, render_markdown, to_document, write_reports
from conformance.results import Evidence, Result, RunReport
from enginy_spec import load_catalogue

WHY = "The write budget of 10 POST/PUT/PATCH requests (--max-writes) is spent."


def _result(rule_id: str, outcome: str, message: str = "") -> Result:
    evidence = (Evidence(rule_id=rule_id, outcome=outcome, source="scripted", message=message),)  # type: ignore[arg-type]
    return Result(rule=load_catalogue().get(rule_id), outcome=outcome, evidence=evidence)  # type: ignore[arg-type]


@pytest.fixture
def incomplete(make_report: Any) -> RunReport:
    return make_report(
        results=(
            _result("HEALTH-OK", "passed"),
            _result("TASK-GET", "skipped", WHY),
            _result("USERS-OPTIONAL", "skipped", "Excluded by --only."),
            _result("ERROR-BODY-JSON", "warning", "An error answer is not JSON."),
        )
    )


def test_a_must_rule_not_judged_makes_the_run_incomplete_exit_3(incomplete: RunReport) -> None:
    assert incomplete.verdict == "incomplete"
    assert [result.rule.id for result in incomplete.not_judged] == ["TASK-GET"]
    assert for_verdict(incomplete.verdict) == 3


def test_skipped_should_rules_and_warnings_leave_the_run_passed(make_report: Any) -> None:
    report = make_report(
        results=(
            _result("HEALTH-OK", "passed"),
            _result("USERS-OPTIONAL", "skipped", "Not judged."),
            _result("ERROR-BODY-JSON", "warning", "Not JSON."),
        )
    )
    assert report.verdict == "passed" and report.not_judged == ()


def test_a_failure_outranks_what_was_not_judged(make_report: Any) -> None:
    report = make_report(results=(_result("HEALTH-OK", "failed", "404"), _result("TASK-GET", "skipped", WHY)))
    assert report.verdict == "failed" and for_verdict(report.verdict) == 1


def test_report_json_names_the_rules_not_judged_and_why(incomplete: RunReport) -> None:
    document = to_document(incomplete)
    schema = json.loads(REPORT_SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(document)))
    assert document["verdict"] == "incomplete" and document["exit_code"] == 3
    assert document["not_judged"] == [{"rule": "TASK-GET", "reason": WHY}]


def test_junit_shows_an_error_testcase_for_the_verdict(incomplete: RunReport, tmp_path: Path) -> None:
    paths = write_reports(incomplete, tmp_path)
    root = ET.parse(paths["junit"]).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("errors") == "1" and suite.get("failures") == "0"
    verdict = next(case for case in suite.iter("testcase") if case.get("name") == "verdict")
    error = verdict.find("error")
    assert error is not None and error.get("type") == "INCOMPLETE"
    assert error.text == f"TASK-GET: {WHY}"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["verdict"] == "incomplete"


def test_a_passed_run_has_no_verdict_testcase(make_report: Any, tmp_path: Path) -> None:
    paths = write_reports(make_report(results=(_result("HEALTH-OK", "passed"),)), tmp_path)
    suite = ET.parse(paths["junit"]).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "0"
    assert [case.get("name") for case in suite.iter("testcase")] == ["HEALTH-OK"]


def test_summary_md_heads_with_incomplete_and_lists_what_was_not_judged(incomplete: RunReport) -> None:
    text = render_markdown(incomplete)
    assert text.splitlines()[0] == "## 🟡 Enginy conformance: INCOMPLETE"
    assert "exits 3" in text and f"- `TASK-GET`: {WHY}" in text


def test_report_html_badge_and_list(incomplete: RunReport) -> None:
    page = render_html(incomplete, settings={})
    assert '<span class="verdict incomplete">INCOMPLETE</span>' in page
    assert '<ul class="not-judged"><li><a href="#rule-TASK-GET">TASK-GET</a>: ' in page
    # The reason for the verdict, so in the header, above the warning's card (the only finding).
    assert (
        page.index('<ul class="not-judged">')
        < page.index("</header>")
        < page.index('id="finding-ERROR-BODY-JSON"')
    )
