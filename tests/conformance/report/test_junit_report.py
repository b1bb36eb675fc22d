"""junit.xml: one testcase per rule, counts right, MUST failures fail and SHOULD warnings do not."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conformance.report import write_reports
from conformance.report._junit import to_element
from conformance.results import RunReport


@pytest.fixture
def root(report: RunReport, tmp_path: Path) -> ET.Element:
    return ET.parse(write_reports(report, tmp_path)["junit"]).getroot()  # parses: control characters are gone


def cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.attrib["name"]: case for case in root.iter("testcase")}


def test_suite_counts_match_the_testcases(root: ET.Element) -> None:
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    testcases = suite.findall("testcase")
    for element in (root, suite):
        assert element.attrib["tests"] == str(len(testcases)) == "6"
        assert (
            element.attrib["failures"]
            == str(sum(1 for c in testcases if c.find("failure") is not None))
            == "2"
        )
        assert (
            element.attrib["skipped"]
            == str(sum(1 for c in testcases if c.find("skipped") is not None))
            == "2"
        )
        assert element.attrib["errors"] == "0"
        assert float(element.attrib["time"]) == 12.5
    assert suite.attrib["timestamp"] == "2026-11-22T05:00:00+00:00"
    properties = {p.attrib["name"]: p.attrib["value"] for p in suite.find("properties").iter("property")}
    assert properties == {
        "target": "http://crm.test",
        "profile": "quick",
        "verdict": "failed",
        "warnings": "1",
    }


def test_testcase_names_and_classnames(root: ET.Element) -> None:
    found = cases(root)
    assert set(found) == {
        "HEALTH-OK",
        "SERVER-NO-5XX",
        "ERROR-BODY-JSON",
        "AUTH-MISSING-KEY",
        "USERS-OPTIONAL",
        "TASK-GET",
    }
    assert found["TASK-GET"].attrib["classname"] == "enginy.tasks"
    assert found["AUTH-MISSING-KEY"].attrib["classname"] == "enginy.auth"
    assert found["HEALTH-OK"].attrib["classname"] == "enginy.health"


def test_must_failure_is_a_failure_with_details(root: ET.Element, hostile: str) -> None:
    failure = cases(root)["SERVER-NO-5XX"].find("failure")
    assert failure is not None
    assert failure.attrib["type"] == "MUST"
    assert failure.attrib["message"].startswith("Server error [ST101] on POST /tasks")
    text = failure.text or ""
    assert '500 server error"' in text
    assert "Expected: a 2xx or 4xx answer" in text
    assert '-H "X-API-Key: $ENGINY_API_KEY"' in text
    assert "<script>" in text  # ElementTree escaped it on the way out and the parser restored it


def test_should_warning_passes_with_system_out(root: ET.Element) -> None:
    case = cases(root)["ERROR-BODY-JSON"]
    assert case.find("failure") is None and case.find("skipped") is None and case.find("error") is None
    out = case.find("system-out")
    assert out is not None and (out.text or "").startswith("WARNING (SHOULD): Undocumented Content-Type")


def test_skipped_and_passed(root: ET.Element) -> None:
    found = cases(root)
    skipped = found["USERS-OPTIONAL"].find("skipped")
    assert skipped is not None and skipped.attrib["message"] == "Excluded by --only."
    assert found["TASK-GET"].find("skipped") is not None
    assert list(found["HEALTH-OK"]) == []


def test_a_passing_run_has_no_failures(make_report: Any, tmp_path: Path) -> None:
    report = make_report()
    report = make_report(results=tuple(r for r in report.results if r.outcome in ("passed", "warning")))
    root = ET.parse(write_reports(report, tmp_path)["junit"]).getroot()
    assert root.attrib["failures"] == "0" and root.attrib["tests"] == "2"


def test_a_warning_passes_but_says_so_in_properties_and_each_case_has_its_rules_own_time(
    make_report: Any,
) -> None:
    report = make_report()
    timed = tuple(
        replace(result, evidence=tuple(replace(item, duration_s=0.25 * n) for item in result.evidence))
        for n, result in enumerate(report.results, start=1)
    )
    root = to_element(replace(report, results=timed))
    cases = {case.attrib["name"]: case for case in root.iter("testcase")}
    times = [float(case.attrib["time"]) for case in cases.values()]
    expected = [round(result.duration_s, 3) for result in timed]
    assert times == expected and len(set(times)) > 1
    warned = [result.rule.id for result in timed if result.outcome == "warning"]
    assert warned
    for rule_id, case in cases.items():
        properties = case.find("properties")
        shown = {p.attrib["name"]: p.attrib["value"] for p in properties} if properties is not None else {}
        if rule_id in warned:
            assert case.find("failure") is None and shown == {"level": "SHOULD", "outcome": "warning"}
        else:
            assert shown == {}
