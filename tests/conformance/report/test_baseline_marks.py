"""A baseline applied to a hand-built RunReport: the marks, the verdict, and what each report shows.

The report (conftest.build_report) holds one rule of each outcome; the baseline below has an entry of
every kind, so each writer is seen showing each status.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance.baseline import (
    Baseline,
    Entry,
    apply_baseline,
    load_baseline,
    to_document,
    updated_baseline,
    write_baseline,
)
from conformance.errors import UsageError
from conformance.report import REPORT_SCHEMA_PATH, render_html, render_markdown
from conformance.report import to_document as report_document
from conformance.report._junit import to_element
from conformance.results import RunReport

TODAY = date(2026, 12, 2)
REASON = 'Known: the proxy answers 500 on <script>alert("x")</script> | `tick`'
ENTRIES = (
    Entry(rule="HEALTH-OK", reason="health was down in March"),  # passed: stale
    Entry(rule="SERVER-NO-5XX", reason=REASON, expires=date(2099, 12, 31)),  # failed: accepted
    Entry(rule="ERROR-BODY-JSON", reason="framework default, ticket CRM-77"),  # warning: accepted
    Entry(rule="AUTH-MISSING-KEY", reason="fixed soon", expires=date(2026, 12, 1)),  # failed: expired
    Entry(rule="USERS-OPTIONAL", reason="no users endpoint yet"),  # skipped: not judged
    Entry(rule="TASK-CREATE-RETURNS-ID", reason="not in this run"),  # not selected
)


@pytest.fixture
def baseline() -> Baseline:
    return Baseline(path=Path("known.json"), entries=ENTRIES)


@pytest.fixture
def marked(report: RunReport, baseline: Baseline) -> RunReport:
    return apply_baseline(report, baseline, today=TODAY)


def statuses(report: RunReport) -> dict[str, str | None]:
    return {r.rule.id: (r.baseline.status if r.baseline else None) for r in report.results}


def test_each_entry_gets_the_status_its_rule_earns_and_outcomes_stay_as_seen(report, marked):
    assert statuses(marked) == {
        "HEALTH-OK": "stale",
        "SERVER-NO-5XX": "accepted",
        "ERROR-BODY-JSON": "accepted",
        "AUTH-MISSING-KEY": "expired",
        "USERS-OPTIONAL": "not_judged",
        "TASK-GET": None,
    }
    # Accepting hides nothing: every outcome and every piece of evidence is the run's own.
    assert [(r.outcome, r.evidence) for r in marked.results] == [
        (r.outcome, r.evidence) for r in report.results
    ]
    assert marked.baseline is not None and marked.baseline.not_selected == ("TASK-CREATE-RETURNS-ID",)
    assert [r.rule.id for r in marked.accepted] == ["SERVER-NO-5XX", "ERROR-BODY-JSON"]


def test_an_entry_accepts_through_its_expiry_day_and_not_after(report):
    entry = Entry(rule="SERVER-NO-5XX", reason="x", expires=TODAY)
    until_today = Baseline(path=Path("b.json"), entries=(entry,))
    on_the_day = apply_baseline(report, until_today, today=TODAY)
    day_after = apply_baseline(report, until_today, today=date(2026, 12, 3))
    assert statuses(on_the_day)["SERVER-NO-5XX"] == "accepted"
    assert statuses(day_after)["SERVER-NO-5XX"] == "expired"


def test_the_verdict_ignores_accepted_failures_only(report, marked, baseline):
    assert report.verdict == "failed"
    assert marked.verdict == "failed"  # AUTH-MISSING-KEY's entry expired
    renewed = replace(baseline, entries=tuple(replace(e, expires=None) for e in ENTRIES))
    every_failure_accepted = apply_baseline(report, renewed, today=TODAY)
    # TASK-GET (MUST) was not judged: no baseline turns that into a pass.
    assert every_failure_accepted.verdict == "incomplete"
    judged = replace(report, results=tuple(r for r in report.results if r.rule.id != "TASK-GET"))
    assert apply_baseline(judged, renewed, today=TODAY).verdict == "passed"


def test_applying_again_replaces_the_marks(marked):
    cleared = apply_baseline(marked, Baseline(path=Path("empty.json")), today=TODAY)
    assert set(statuses(cleared).values()) == {None} and cleared.verdict == "failed"
    assert cleared.baseline is not None and cleared.baseline.path == "empty.json"


def test_report_json_marks_every_rule_and_stays_valid(marked):
    document = json.loads(json.dumps(report_document(marked), default=str))
    schema = json.loads(REPORT_SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert [e.message for e in validator.iter_errors(document)] == []
    assert document["baseline"] == {
        "path": "known.json",
        "accepted": ["SERVER-NO-5XX", "ERROR-BODY-JSON"],
        "expired": ["AUTH-MISSING-KEY"],
        "stale": ["HEALTH-OK"],
        "not_judged": ["USERS-OPTIONAL"],
        "not_selected": ["TASK-CREATE-RETURNS-ID"],
    }
    assert document["summary"]["accepted"] == 2 and document["summary"]["failed"] == 2
    by_rule = {entry["rule"]: entry for entry in document["results"]}
    assert by_rule["AUTH-MISSING-KEY"]["baseline"]["note"].startswith(
        "The baseline entry for it expired on 2026-12-01, so this failure counts again"
    )
    assert by_rule["ERROR-BODY-JSON"]["baseline"]["expires"] is None
    assert by_rule["TASK-GET"]["baseline"] is None
    # The schema refuses a mark it does not know.
    by_rule["HEALTH-OK"]["baseline"]["status"] = "forgiven"
    assert len(list(validator.iter_errors(document))) == 1


def test_junit_skips_accepted_cases_and_fails_the_expired_one(marked):
    root = to_element(marked)
    cases = {case.attrib["name"]: case for case in root.iter("testcase")}
    assert root.attrib["failures"] == "1"  # AUTH-MISSING-KEY; SERVER-NO-5XX is accepted
    assert root.attrib["skipped"] == "4"  # USERS-OPTIONAL and TASK-GET not judged, two accepted
    for rule_id in ("SERVER-NO-5XX", "ERROR-BODY-JSON"):
        skipped = cases[rule_id].find("skipped")
        assert skipped is not None and skipped.attrib["type"] == "accepted", rule_id
        assert skipped.attrib["message"].startswith("Accepted by the baseline"), rule_id
        assert cases[rule_id].find("failure") is None and cases[rule_id].find("system-out") is None
    assert "Reproduce with:" in (cases["SERVER-NO-5XX"].find("skipped").text or "")  # type: ignore[union-attr]
    failure = cases["AUTH-MISSING-KEY"].find("failure")
    assert failure is not None and failure.attrib["message"].startswith("The baseline entry for it expired")
    assert "can be removed" in (cases["HEALTH-OK"].findtext("system-out") or "")
    assert "accepts nothing" in cases["USERS-OPTIONAL"].find("skipped").attrib["message"]  # type: ignore[union-attr]
    assert cases["TASK-GET"].find("properties") is None
    suite = {p.attrib["name"]: p.attrib["value"] for p in root.find("testsuite").find("properties")}  # type: ignore[union-attr]
    assert (suite["baseline"], suite["accepted"]) == ("known.json", "2")


def test_junit_without_a_baseline_is_unchanged(report):
    root = to_element(report)
    assert (root.attrib["failures"], root.attrib["skipped"]) == ("2", "2")
    with_properties = [case for case in root.iter("testcase") if case.find("properties") is not None]
    # only the warnings' own level and outcome, no baseline property
    assert all(
        {p.attrib["name"] for p in case.find("properties")} == {"level", "outcome"}
        for case in with_properties
    )


def test_html_has_an_accepted_section_between_warnings_and_skipped(marked):
    page = render_html(marked, settings={})
    order = [page.index(f'<section id="{name}">') for name in ("failed", "accepted", "skipped", "passed")]
    assert order == sorted(order) and '<section id="warning">' not in page  # the one warning is accepted
    assert "Accepted by the baseline (2)" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    stale = page.split('id="rule-HEALTH-OK"', 1)[1].split("</article>", 1)[0]
    assert '<p class="baseline">The rule holds now: its baseline entry can be removed' in stale
    accepted = page.split('id="rule-SERVER-NO-5XX"', 1)[1].split("</article>", 1)[0]
    assert 'class="rule accepted"' in page and "Reproduce" in accepted and "HTTP 500" in accepted
    assert "The baseline accepts 1 MUST failure (SERVER-NO-5XX) and 1 SHOULD warning" in page
    # The first screen is what to fix: accepted failures are known, so only the expired entry's is there.
    cards = re.findall(r'<article class="finding (\w+)" id="finding-([A-Z0-9-]+)"', page)
    assert cards == [("failed", "AUTH-MISSING-KEY")]


def test_markdown_lists_accepted_rows_after_the_failure_and_the_stale_entry(marked):
    text = render_markdown(marked)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["AUTH-MISSING-KEY", "SERVER-NO-5XX", "ERROR-BODY-JSON"]
    assert "❌ failed | The baseline entry for it expired on 2026-12-01" in rows[0]
    assert "☑️ failed, accepted | Accepted by the baseline until 2099-12-31" in rows[1]
    assert "<script>" not in text and "&lt;script&gt;" in text and "\\|" in rows[1]
    assert "- `HEALTH-OK`: The rule holds now" in text
    assert "- `USERS-OPTIONAL`: Not judged in this run" in text
    # The findings follow the table's order, the accepted ones last and saying so.
    headings = re.findall(r"^#### (.+)$", text, re.M)
    assert headings == [
        "❌ `AUTH-MISSING-KEY` (MUST)",
        "☑️ `SERVER-NO-5XX` (MUST, accepted by the baseline)",
        "☑️ `ERROR-BODY-JSON` (SHOULD, accepted by the baseline)",
    ]


# --- --baseline-update: what is written ---------------------------------------------------------------


def test_update_keeps_what_still_fails_drops_what_holds_and_adds_must_failures(report, baseline):
    report = replace(report, settings={**report.settings, "run_id": "feedc0de"})
    kept_only = replace(baseline, entries=tuple(e for e in ENTRIES if e.rule != "SERVER-NO-5XX"))
    update = updated_baseline(kept_only, report, today=TODAY)
    rules = [entry.rule for entry in update.baseline.entries]
    # HEALTH-OK holds: dropped. SERVER-NO-5XX failed with no entry: added. ERROR-BODY-JSON still warns,
    # AUTH-MISSING-KEY still fails (expired all the same), USERS-OPTIONAL was not judged and
    # TASK-CREATE-RETURNS-ID not selected: all kept as they were.
    assert update.dropped == ("HEALTH-OK",) and update.added == ("SERVER-NO-5XX",)
    assert set(rules) == {"SERVER-NO-5XX", "ERROR-BODY-JSON", "AUTH-MISSING-KEY", "USERS-OPTIONAL"} | {
        "TASK-CREATE-RETURNS-ID"
    }
    assert {e.rule: e for e in update.baseline.entries}["AUTH-MISSING-KEY"] == ENTRIES[3]
    added = update.baseline.get("SERVER-NO-5XX")
    assert added is not None and added.expires is None
    assert added.reason == (
        "TODO: say why this failure is accepted (added by --baseline-update on 2026-12-02 from run feedc0de)"
    )


def test_the_written_file_reads_back_the_same_and_keeps_its_permissions(tmp_path, baseline):
    path = tmp_path / "known.json"
    path.write_text("{}", encoding="utf-8")
    path.chmod(0o640)
    write_baseline(replace(baseline, path=path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert set(load_baseline(path).entries) == set(ENTRIES)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document == to_document(baseline)
    assert document["accepted"][0] == {"rule": "HEALTH-OK", "reason": "health was down in March"}
    assert os.listdir(tmp_path) == ["known.json"]


def test_a_baseline_that_cannot_be_written_is_one_usage_error(tmp_path, baseline):
    with pytest.raises(
        UsageError, match=r"^Could not write the baseline .*missing/known.json \(No such file"
    ):
        write_baseline(replace(baseline, path=tmp_path / "missing" / "known.json"))


def test_loading_reorders_entries_to_catalogue_order_and_tidies_them(tmp_path):
    path = tmp_path / "known.json"
    entries: list[dict[str, Any]] = [
        {"rule": "server-no-5xx", "reason": "  a\n reason  ", "expires": None},
        {"rule": "HEALTH-OK", "reason": "b", "expires": "2027-03-31"},
    ]
    path.write_text(json.dumps({"version": 1, "accepted": entries}), encoding="utf-8")
    loaded = load_baseline(path).entries
    assert loaded == (
        Entry(rule="HEALTH-OK", reason="b", expires=date(2027, 3, 31)),
        Entry(rule="SERVER-NO-5XX", reason="a reason"),
    )
