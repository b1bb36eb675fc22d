"""Baselines (conformance.baseline) end to end: `enginy-conformance run --baseline` against the real mock.

One mock, started the way a user starts it, breaks two MUST rules and one SHOULD rule:

    TASK-GET-UNKNOWN        MUST    rule A: the failure the baselines accept
    TASK-CREATE-RETURNS-ID  MUST    rule B: a second failure, which a baseline for A must not hide
    AUTH-401-NOT-403        SHOULD  a warning
    HEALTH-OK               MUST    holds: an entry for it is stale

Every run selects a few scripted rules with --only, so it takes well under a second.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from conformance.cli import cli
from conformance.report import REPORT_SCHEMA_PATH

A = "TASK-GET-UNKNOWN"
B = "TASK-CREATE-RETURNS-ID"
WARNS = "AUTH-401-NOT-403"
HOLDS = "HEALTH-OK"
REASON = "Off-by-one lookup in our task router, fixed by CRM-812 <b>&</b>"
CLEAN_ENV = {name: None for name in os.environ if name.startswith("ENGINY_")}


@pytest.fixture(scope="module")
def broken(start_mocks):
    return start_mocks("--fault", A, "--fault", B, "--fault", WARNS)


def run(broken, tmp_path: Path, *only: str, args: tuple[str, ...] = (), **env: str):
    """`enginy-conformance run` against the broken mock, reports in tmp_path/reports."""
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--base-url",
            broken.url,
            "--report-dir",
            str(tmp_path / "reports"),
            "--only",
            ",".join(only),
            *args,
        ],
        env={**CLEAN_ENV, "ENGINY_API_KEY": broken.key, **env},
        catch_exceptions=False,
    )
    assert "Traceback" not in result.output
    return result


def write_baseline(path: Path, *entries: dict[str, Any], version: Any = 1) -> Path:
    path.write_text(json.dumps({"version": version, "accepted": list(entries)}), encoding="utf-8")
    return path


def report_json(tmp_path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((tmp_path / "reports" / "report.json").read_text(encoding="utf-8"))
    schema = json.loads(REPORT_SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert [error.message for error in validator.iter_errors(document)] == []
    return document


def result_of(document: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(entry for entry in document["results"] if entry["rule"] == rule_id)


def junit_cases(tmp_path: Path) -> dict[str, ET.Element]:
    root = ET.parse(tmp_path / "reports" / "junit.xml").getroot()
    return {case.attrib["name"]: case for case in root.iter("testcase")}


def one_clean_line(result) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.stderr
    return errors[0]


# --- accepting ------------------------------------------------------------------------------------------


def test_without_a_baseline_the_must_fault_fails_the_run(broken, tmp_path):
    # The control for every test below: the fault is on, and fails the run by itself.
    result = run(broken, tmp_path, A, HOLDS)
    assert result.exit_code == 1, result.output
    assert f"✗ {A}" in result.output
    assert report_json(tmp_path)["baseline"] is None


def test_a_baseline_accepting_the_failure_passes_and_every_report_shows_it_accepted(broken, tmp_path):
    known = write_baseline(tmp_path / "known.json", {"rule": A, "reason": REASON, "expires": "2099-12-31"})
    result = run(broken, tmp_path, A, HOLDS, args=("--baseline", str(known)))
    assert result.exit_code == 0, result.output
    # The terminal: the finding as it was judged, then the table and the verdict say it is accepted.
    assert f"✗ {A}" in result.output
    assert "~ failed, accepted" in _table_row(result.output, A)
    assert "Accepted by the baseline until 2099-12-31: Off-by-one" in _table_row(result.output, A)
    assert "PASSED" in result.output and f"The baseline accepts 1 MUST failure ({A})" in result.output

    # report.json: the outcome stays what the run saw, the mark says why it does not count, and the
    # evidence of the failure is all there.
    document = report_json(tmp_path)
    assert (document["verdict"], document["exit_code"]) == ("passed", 0)
    entry = result_of(document, A)
    assert entry["outcome"] == "failed"
    assert entry["baseline"] == {
        "status": "accepted",
        "reason": REASON,
        "expires": "2099-12-31",
        "note": f"Accepted by the baseline until 2099-12-31: {REASON}",
    }
    evidence = entry["evidence"][0]
    assert evidence["outcome"] == "failed" and "did not answer 4xx" in evidence["message"]
    assert evidence["exchanges"] and evidence["exchanges"][-1]["response"]["status"] == 200
    assert result_of(document, HOLDS)["baseline"] is None
    assert document["summary"]["failed"] == 1 and document["summary"]["accepted"] == 1
    assert document["baseline"] == {
        "path": str(known),
        "accepted": [A],
        "expired": [],
        "stale": [],
        "not_judged": [],
        "not_selected": [],
    }

    # junit.xml: green for CI, but the case is skipped as accepted, with the reason and the details.
    root = ET.parse(tmp_path / "reports" / "junit.xml").getroot()
    assert root.attrib["failures"] == "0" and root.attrib["skipped"] == "1"
    case = junit_cases(tmp_path)[A]
    assert case.find("failure") is None
    skipped = case.find("skipped")
    assert skipped is not None and skipped.attrib["type"] == "accepted"
    assert skipped.attrib["message"].startswith(f"Accepted by the baseline until 2099-12-31: {REASON} — ")
    assert "did not answer 4xx" in (skipped.text or "") and "curl" in (skipped.text or "")
    properties = {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}
    assert properties == {"baseline": "accepted", "baseline_reason": REASON, "baseline_expires": "2099-12-31"}

    # summary.md: the row is marked accepted, the reason escaped for GitHub's Markdown.
    summary = (tmp_path / "reports" / "summary.md").read_text(encoding="utf-8")
    assert "PASSED" in summary
    line = next(line for line in summary.splitlines() if f"`{A}`" in line)
    assert "failed, accepted" in line and "CRM-812 &lt;b&gt;&amp;&lt;/b&gt;" in line

    # report.html: its own section, the reason escaped, the failing request still shown.
    page = (tmp_path / "reports" / "report.html").read_text(encoding="utf-8")
    assert '<section id="accepted"><h2>Accepted by the baseline (1)</h2>' in page
    assert "CRM-812 &lt;b&gt;&amp;&lt;/b&gt;" in page and "<b>&</b>" not in page
    article = page.split(f'id="rule-{A}"', 1)[1].split("</article>", 1)[0]
    assert '<span class="badge accepted">accepted</span>' in article
    assert "task-missing" in article and "Reproduce" in article


def test_an_expired_entry_does_not_accept_and_says_so(broken, tmp_path):
    known = write_baseline(tmp_path / "known.json", {"rule": A, "reason": REASON, "expires": "2020-01-01"})
    result = run(broken, tmp_path, A, HOLDS, args=("--baseline", str(known)))
    assert result.exit_code == 1, result.output
    assert f"The baseline entry for {A} expired on 2020-01-01" in result.output
    assert "FAILED" in result.output
    document = report_json(tmp_path)
    assert document["verdict"] == "failed" and document["baseline"]["expired"] == [A]
    assert result_of(document, A)["baseline"]["status"] == "expired"
    failure = junit_cases(tmp_path)[A].find("failure")
    assert failure is not None
    assert failure.attrib["message"].startswith("The baseline entry for it expired on 2020-01-01")


def test_an_entry_valid_through_today_still_accepts(broken, tmp_path):
    from datetime import UTC, datetime

    today = datetime.now(UTC).date().isoformat()
    known = write_baseline(tmp_path / "known.json", {"rule": A, "reason": REASON, "expires": today})
    assert run(broken, tmp_path, A, args=("--baseline", str(known))).exit_code == 0


def test_accepting_one_failure_does_not_hide_another(broken, tmp_path):
    known = write_baseline(tmp_path / "known.json", {"rule": A, "reason": REASON})
    result = run(broken, tmp_path, A, B, args=("--baseline", str(known)))
    assert result.exit_code == 1, result.output
    assert f"FAILED: a MUST rule does not hold. The baseline accepts 1 MUST failure ({A})." in result.output
    document = report_json(tmp_path)
    assert result_of(document, A)["baseline"]["status"] == "accepted"
    assert result_of(document, B)["outcome"] == "failed" and result_of(document, B)["baseline"] is None
    cases = junit_cases(tmp_path)
    assert cases[B].find("failure") is not None and cases[A].find("failure") is None


def test_a_should_warning_can_be_accepted_too(broken, tmp_path):
    known = write_baseline(tmp_path / "known.json", {"rule": WARNS, "reason": "our gateway answers 403"})
    result = run(broken, tmp_path, WARNS, args=("--baseline", str(known)))
    assert result.exit_code == 0, result.output
    assert "The baseline accepts 1 SHOULD warning (AUTH-401-NOT-403)" in result.output
    entry = result_of(report_json(tmp_path), WARNS)
    assert (entry["outcome"], entry["baseline"]["status"]) == ("warning", "accepted")


def test_a_stale_entry_is_reported_never_an_error(broken, tmp_path):
    known = write_baseline(
        tmp_path / "known.json",
        {"rule": A, "reason": REASON},
        {"rule": HOLDS, "reason": "health was down in March"},
    )
    # Through the environment this time: ENGINY_BASELINE is the same setting as --baseline.
    result = run(broken, tmp_path, A, HOLDS, ENGINY_BASELINE=str(known))
    assert result.exit_code == 0, result.output
    assert f"{HOLDS} holds now: its entry in the baseline {known} can be removed" in result.output
    document = report_json(tmp_path)
    assert document["baseline"]["stale"] == [HOLDS] and document["baseline"]["accepted"] == [A]
    assert result_of(document, HOLDS)["outcome"] == "passed"
    summary = (tmp_path / "reports" / "summary.md").read_text(encoding="utf-8")
    assert f"- `{HOLDS}`: The rule holds now: its baseline entry can be removed" in summary
    case = junit_cases(tmp_path)[HOLDS]
    assert case.find("skipped") is None and case.find("failure") is None
    assert "can be removed" in (case.findtext("system-out") or "")


def test_an_entry_for_a_rule_not_selected_is_ignored_quietly(broken, tmp_path):
    known = write_baseline(tmp_path / "known.json", {"rule": B, "reason": "ids come with CRM-900"})
    result = run(broken, tmp_path, HOLDS, args=("--baseline", str(known)))
    assert result.exit_code == 0, result.output
    assert B not in result.output
    assert report_json(tmp_path)["baseline"]["not_selected"] == [B]


def test_an_entry_never_turns_a_rule_not_judged_into_a_pass(broken, tmp_path):
    # --max-writes 0 leaves B unjudged: the run is INCOMPLETE whatever the baseline says about B.
    known = write_baseline(tmp_path / "known.json", {"rule": B, "reason": "ids come with CRM-900"})
    result = run(broken, tmp_path, B, args=("--baseline", str(known), "--max-writes", "0"))
    assert result.exit_code == 3, result.output
    assert f"The baseline accepts failures of {B}, but this run did not judge it" in result.output
    document = report_json(tmp_path)
    assert document["verdict"] == "incomplete" and document["not_judged"][0]["rule"] == B
    assert document["baseline"]["not_judged"] == [B] and document["summary"]["accepted"] == 0


# --- --baseline-update ----------------------------------------------------------------------------------


def test_update_accepts_new_failures_keeps_reasons_drops_stale_entries(broken, tmp_path):
    known = write_baseline(
        tmp_path / "known.json",
        {"rule": A, "reason": REASON, "expires": "2099-12-31"},
        {"rule": HOLDS, "reason": "health was down in March"},
    )
    result = run(broken, tmp_path, A, B, WARNS, HOLDS, args=("--baseline", str(known), "--baseline-update"))
    assert result.exit_code == 0, result.output
    assert f"Wrote the baseline {known}: 2 entries (1 kept; 1 added ({B}); 1 dropped" in result.output
    assert f"gives no reason yet for {B}" in result.output
    written = json.loads(known.read_text(encoding="utf-8"))
    assert written["version"] == 1
    entries = {entry["rule"]: entry for entry in written["accepted"]}
    # A keeps its reason and expiry; B is new, with a reason to replace; HOLDS holds, so it went; the
    # SHOULD warning is not added (it never fails a run).
    assert set(entries) == {A, B}
    assert entries[A] == {"rule": A, "reason": REASON, "expires": "2099-12-31"}
    assert entries[B]["reason"].startswith("TODO: say why") and "expires" not in entries[B]
    run_id = report_json(tmp_path)["settings"]["run_id"]
    assert f"from run {run_id}" in entries[B]["reason"]
    assert not list(tmp_path.glob(".known.json.*"))  # no temporary file left behind
    # The reports of the updating run show what the written file does.
    assert report_json(tmp_path)["baseline"]["accepted"] == [B, A]  # catalogue order

    # The next run, without --baseline-update, passes on that file.
    again = run(broken, tmp_path, A, B, WARNS, HOLDS, args=("--baseline", str(known)))
    assert again.exit_code == 0, again.output
    assert json.loads(known.read_text(encoding="utf-8")) == written


def test_update_creates_a_missing_file(broken, tmp_path):
    known = tmp_path / "new-baseline.json"
    result = run(broken, tmp_path, A, HOLDS, args=("--baseline", str(known), "--baseline-update"))
    assert result.exit_code == 0, result.output
    assert [entry["rule"] for entry in json.loads(known.read_text(encoding="utf-8"))["accepted"]] == [A]


def test_update_never_moves_an_expiry_so_the_run_still_fails(broken, tmp_path):
    known = write_baseline(tmp_path / "known.json", {"rule": A, "reason": REASON, "expires": "2020-01-01"})
    result = run(broken, tmp_path, A, args=("--baseline", str(known), "--baseline-update"))
    assert result.exit_code == 1, result.output
    assert "--baseline-update never moves it" in result.output
    assert json.loads(known.read_text(encoding="utf-8"))["accepted"] == [
        {"rule": A, "reason": REASON, "expires": "2020-01-01"}
    ]


def test_update_keeps_entries_of_rules_not_selected(broken, tmp_path):
    known = write_baseline(tmp_path / "known.json", {"rule": B, "reason": "ids come with CRM-900"})
    assert run(broken, tmp_path, A, args=("--baseline", str(known), "--baseline-update")).exit_code == 0
    rules = [entry["rule"] for entry in json.loads(known.read_text(encoding="utf-8"))["accepted"]]
    assert rules == [B, A]  # catalogue order, whatever order they were found in


# --- bad files and bad flags: one line, exit 2, before anything is sent ------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "does not exist; check the path, or write it with --baseline-update"),
        ('{"version": 1, "accepted": [', "is not valid JSON (Expecting value at line 1, column 29)"),
        ("[]", "must hold a JSON object with version and accepted, not a list"),
        ('{"version": 2, "accepted": []}', "has version 2; this enginy-conformance reads version 1"),
        ('{"accepted": []}', "has no version"),
        ('{"version": 1, "accepted": {}}', "accepted must be a list of entries"),
        ('{"version": 1, "acepted": []}', "unknown key 'acepted' (did you mean accepted?)"),
        (
            '{"version": 1, "accepted": [{"rule": "TASK-GET-UNKNWN", "reason": "x"}]}',
            "accepted[0] (TASK-GET-UNKNWN) names a rule the catalogue does not have (did you mean "
            "TASK-GET-UNKNOWN?)",
        ),
        ('{"version": 1, "accepted": [{"reason": "x"}]}', "accepted[0] has no rule"),
        (
            '{"version": 1, "accepted": [{"rule": "TASK-GET"}]}',
            "accepted[0] (TASK-GET) has no reason: say in a sentence why its failure is accepted",
        ),
        ('{"version": 1, "accepted": [{"rule": "TASK-GET", "reason": "  "}]}', "(TASK-GET) has no reason"),
        (
            '{"version": 1, "accepted": [{"rule": "TASK-GET", "reason": "x", "expires": "31/03/2027"}]}',
            "(TASK-GET) has expires '31/03/2027'; give a date as YYYY-MM-DD",
        ),
        (
            '{"version": 1, "accepted": [{"rule": "TASK-GET", "reason": "x", "expires": "2027-02-30"}]}',
            "has expires '2027-02-30'",
        ),
        (
            '{"version": 1, "accepted": [{"rule": "TASK-GET", "reason": "x", "expiry": "2027-03-31"}]}',
            "(TASK-GET) has an unknown key 'expiry' (did you mean expires?)",
        ),
        (
            '{"version": 1, "accepted": [{"rule": "TASK-GET", "reason": "x"}, '
            '{"rule": "task-get", "reason": "y"}]}',
            "lists TASK-GET twice (accepted[0] and accepted[1]); keep one entry per rule",
        ),
    ],
    ids=[
        "missing",
        "not-json",
        "not-an-object",
        "other-version",
        "no-version",
        "accepted-not-a-list",
        "unknown-top-key",
        "unknown-rule",
        "no-rule",
        "no-reason",
        "blank-reason",
        "bad-date",
        "no-such-day",
        "misspelt-key",
        "duplicate",
    ],
)
def test_a_bad_baseline_file_is_one_line_exit_2_before_anything_is_sent(tmp_path, closed_port, text, message):
    known = tmp_path / "known.json"
    if text is not None:
        known.write_text(text, encoding="utf-8")
    # Nothing listens at the base URL: the baseline's error, not "could not connect", shows it was read
    # before any request went out.
    result = CliRunner().invoke(
        cli,
        ["run", "--base-url", f"http://127.0.0.1:{closed_port}", "--baseline", str(known)],
        env={**CLEAN_ENV, "ENGINY_API_KEY": "k"},
    )
    line = one_clean_line(result)
    assert str(known) in line and message in line, line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline-update"], "--baseline-update needs the file to write: pass --baseline FILE"),
        (
            ["--baseline", "known.json", "--baseline-update", "--dry-run"],
            "--baseline-update and --dry-run cannot go together",
        ),
    ],
)
def test_baseline_update_flags_that_cannot_work_are_one_line_exit_2(args, message):
    result = CliRunner().invoke(
        cli, ["run", "--base-url", "http://127.0.0.1:9", *args], env={**CLEAN_ENV, "ENGINY_API_KEY": "k"}
    )
    assert message in one_clean_line(result)


def test_dry_run_reads_the_baseline_and_names_what_it_accepts(tmp_path):
    known = write_baseline(tmp_path / "known.json", {"rule": A, "reason": REASON})
    result = CliRunner().invoke(
        cli, ["run", "--base-url", "http://127.0.0.1:9", "--dry-run", "--baseline", str(known)], env=CLEAN_ENV
    )
    assert result.exit_code == 0, result.output
    assert f"Baseline {known}: it accepts failures of {A}." in result.output


def _table_row(output: str, rule: str) -> str:
    """The end table's row of `rule`, its wrapped continuation lines joined (the Reason column wraps)."""
    lines = output.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(f"{rule} "))
    row = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith(" ") or not line.strip():
            break
        row.append(line)
    return " ".join(" ".join(part.split()) for part in row)
