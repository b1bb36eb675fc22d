"""summary.md: verdict, counts, failed and warning rules with a reason, pointer to report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.report import render_markdown, write_reports
from conformance.results import RunReport


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
