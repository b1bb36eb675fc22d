"""summary.md: verdict, counts, failed and warning rules with a reason, each finding's curl, within 60 KiB."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from conformance.report import render_markdown, to_document, write_reports
from conformance.report._markdown import MAX_SUMMARY_BYTES
from conformance.results import Evidence, Result, RunReport
from enginy_spec import load_catalogue


def test_contents(report: RunReport, tmp_path: Path) -> None:
    text = write_reports(report, tmp_path)["markdown"].read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "## ❌ Enginy conformance: FAILED"
    assert "6 rules: 2 failed · 1 warning · 2 skipped · 1 passed" in text
    rows = [line for line in lines if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["SERVER-NO-5XX", "AUTH-MISSING-KEY", "ERROR-BODY-JSON"]
    assert "| MUST | ❌ failed |" in rows[0] and "| SHOULD | ⚠️ warning |" in rows[2]
    assert "report.html" in text
    assert "exits 1" in text


def test_server_text_cannot_break_the_table_or_inject_html(report: RunReport) -> None:
    text = render_markdown(report)
    row = next(line for line in text.splitlines() if line.startswith("| `SERVER-NO-5XX`"))
    assert row.count(" | ") == 3 and row.endswith(" |")  # the '|' from the server is escaped
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "\\`tick\\`" in text


def test_passing_run(make_report: Any) -> None:
    report = make_report()
    report = make_report(results=tuple(r for r in report.results if r.outcome == "passed"), created=())
    text = render_markdown(report)
    assert text.startswith("## ✅ Enginy conformance: PASSED")
    assert "No rule failed or warned." in text
    assert "| Rule |" not in text


def test_one_rule_is_counted_in_the_singular(make_report: Any) -> None:
    report = make_report()
    report = make_report(results=report.results[:1], created=())
    assert "1 rule: " in render_markdown(report) and "1 rules" not in render_markdown(report)


# --- each finding, to reproduce from the job page -----------------------------------------------------


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, content) of every fenced block, read as CommonMark does: a fence of N backticks
    closes only at a line of at least N backticks."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        opening = re.match(r"^(`{3,})(\w*)$", lines[index])
        index += 1
        if opening:
            fence, body = opening.group(1), []
            while not re.match(rf"^{fence}`*$", lines[index]):
                body.append(lines[index])
                index += 1
            index += 1
            blocks.append((opening.group(2), "\n".join(body)))
    return blocks


def test_each_finding_has_expected_actual_and_the_curl(report: RunReport) -> None:
    text = render_markdown(report)
    findings = text.split("\n### Findings\n", 1)[1]
    headings = re.findall(r"^#### \S+ `([A-Z0-9-]+)` \((MUST|SHOULD)\)$", findings, re.M)
    assert headings == [
        ("SERVER-NO-5XX", "MUST"),
        ("AUTH-MISSING-KEY", "MUST"),
        ("ERROR-BODY-JSON", "SHOULD"),
    ]
    first = findings.split("#### ", 2)[1]
    assert "- **Expected:** a 2xx or 4xx answer\n- **Actual:** HTTP 500: &lt;script&gt;\n" in first
    # The curl of the exchange that broke each rule (the last one), exactly as report.json has it.
    by_rule = {
        result["rule"]: next(e for e in result["evidence"] if e["outcome"] != "passed")["exchanges"][-1][
            "curl"
        ]
        for result in to_document(report)["results"]
        if result["outcome"] in ("failed", "warning")
    }
    assert fenced_blocks(findings) == [("bash", by_rule[rule]) for rule, _ in headings]


def test_a_curl_cannot_close_its_block_early(make_report: Any, make_exchange: Any) -> None:
    body = '{"subject": "```\\n````oops"}'  # backticks a fuzzer may send, at the start of a line too
    report = make_report()
    failed = report.results[1]
    item = replace(failed.evidence[0], exchanges=(make_exchange(body=body),))
    text = render_markdown(make_report(results=(replace(failed, evidence=(item,)),)))
    assert "\n`````bash\n" in text  # one backtick more than the longest run in the command
    ((info, content),) = fenced_blocks(text)
    assert info == "bash" and content.endswith(f"--data-raw '{body}'")


def test_a_passing_run_has_no_findings_section(make_report: Any) -> None:
    report = make_report()
    text = render_markdown(make_report(results=report.results[:1], created=()))
    assert "### Findings" not in text and "```" not in text


def many_failures(make_report: Any, make_exchange: Any, failed: int, warned: int) -> RunReport:
    """A run where `failed` MUST and `warned` SHOULD rules failed, each on a 6 KB request body."""
    catalogue = load_catalogue()
    musts = [rule for rule in catalogue if rule.level == "MUST"][:failed]
    shoulds = [rule for rule in catalogue if rule.level == "SHOULD"][:warned]
    results = []
    for rule in musts + shoulds:
        outcome = "failed" if rule.level == "MUST" else "warning"
        item = Evidence(
            rule_id=rule.id,
            outcome=outcome,
            source="scripted",
            message=f"{rule.id} broke.",
            expected="e",
            actual="a",
            exchanges=(make_exchange(body='{"subject": "' + "x" * 6000 + '"}'),),
        )
        results.append(Result(rule=rule, outcome=outcome, evidence=(item,)))
    return make_report(results=tuple(results))


def test_the_summary_stops_at_60_kib_with_whole_findings_and_says_how_many_more(
    make_report: Any, make_exchange: Any
) -> None:
    report = many_failures(make_report, make_exchange, failed=20, warned=5)
    text = render_markdown(report)
    assert MAX_SUMMARY_BYTES == 60 * 1024 and len(text.encode("utf-8")) <= MAX_SUMMARY_BYTES
    shown = re.findall(r"^#### ", text, re.M)
    assert 0 < len(shown) < 20  # some findings, not all: each is about 6 KB
    assert len(fenced_blocks(text)) == len(shown)  # none cut in the middle
    assert text.endswith(
        f"{20 - len(shown)} more failures and 5 more warnings in `report.html`: this summary stops at "
        "60 KiB, under GitHub's limit for a job summary.\n"
    )
    assert len([line for line in text.splitlines() if line.startswith("| `")]) == 25  # the table is whole


def test_one_more_failure_is_counted_in_the_singular(make_report: Any, make_exchange: Any) -> None:
    fits = len(re.findall(r"^#### ", render_markdown(many_failures(make_report, make_exchange, 30, 0)), re.M))
    text = render_markdown(many_failures(make_report, make_exchange, fits + 1, 0))
    assert "\n1 more failure in `report.html`" in text
