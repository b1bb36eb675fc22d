"""summary.md: a short Markdown summary for a CI job page ($GITHUB_STEP_SUMMARY, a GitLab MR note).

A verdict line, the counts, a table of the failed and warning rules with a one-line reason each (those
the baseline accepts last, marked accepted, with its reason and expiry), the baseline's stale entries,
and a pointer to report.html for the requests, responses and curl commands. Server text is escaped: GitHub
renders inline HTML in Markdown, so `<`, `>` and `&` become entities and `|` cannot break the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from conformance.baseline import accepted_summary, describe_mark
from conformance.report._common import not_judged_reason, ordered, unicode_safe
from conformance.results import Result, RunReport

__all__ = ["render_markdown", "write_markdown"]

_ICONS: Final = {"failed": "❌", "warning": "⚠️", "skipped": "⏭️", "passed": "✅", "accepted": "☑️"}
_VERDICT_ICONS: Final = {"failed": "❌", "incomplete": "🟡", "passed": "✅"}
_MAX_REASON: Final = 160


def _cell(text: str) -> str:
    flat = " ".join(unicode_safe(text).split())
    if len(flat) > _MAX_REASON:
        flat = flat[: _MAX_REASON - 1] + "…"
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "\\`")):
        flat = flat.replace(raw, escaped)
    return flat


def _reason(result: Result) -> str:
    item = result.failures[0]
    finding = f"{item.message} Got: {item.actual}" if item.actual else item.message
    if result.baseline is not None:  # accepted or expired: the baseline's word first, the cell is cut
        return f"{describe_mark(result.baseline)} — {finding}"
    return finding


def _outcome(result: Result) -> str:
    if result.accepted:
        return f"{_ICONS['accepted']} {result.outcome}, accepted"
    return f"{_ICONS[result.outcome]} {result.outcome}"


def render_markdown(report: RunReport, *, html_name: str = "report.html") -> str:
    verdict = report.verdict
    icon = _VERDICT_ICONS[verdict]
    counts = " · ".join(
        f"{report.count(outcome)} {outcome}" for outcome in ("failed", "warning", "skipped", "passed")
    )
    lines = [
        f"## {icon} Enginy conformance: {verdict.upper()}",
        "",
        f"Target `{_cell(report.target)}` · profile `{_cell(report.profile)}` · "
        f"{len(report.results)} {'rule' if len(report.results) == 1 else 'rules'}: {counts} · "
        f"{report.duration_s:.1f} s",
        "",
    ]
    flagged = [result for result in ordered(report.results) if result.outcome in ("failed", "warning")]
    if flagged:
        lines += ["| Rule | Level | Outcome | Reason |", "|---|---|---|---|"]
        for result in flagged:
            lines.append(
                f"| `{result.rule.id}` | {result.rule.level} | {_outcome(result)} "
                f"| {_cell(_reason(result))} |"
            )
        lines.append("")
    else:
        lines += ["No rule failed or warned.", ""]
    if report.baseline is not None:
        lines += _baseline_lines(report)
    if verdict == "failed":
        lines.append("MUST rules failed, so the suite exits 1. SHOULD rules only warn.")
    elif verdict == "incomplete":
        missing = report.not_judged
        lines += [
            f"No MUST rule failed, but {len(missing)} could not be judged, so the run is INCOMPLETE and the "
            "suite exits 3:",
            "",
            *(f"- `{result.rule.id}`: {_cell(not_judged_reason(result))}" for result in missing),
        ]
    elif any(result.outcome == "failed" for result in report.accepted):
        lines.append(
            "Every selected MUST rule was judged and holds, apart from the failures the baseline accepts, so "
            "the suite exits 0. Warnings, if any, are SHOULD rules and do not fail the run."
        )
    else:
        lines.append(
            "Every selected MUST rule was judged and holds. Warnings, if any, are SHOULD rules and do not "
            "fail the run."
        )
    lines += [
        "",
        f"Requests, responses and a curl command for every finding are in `{html_name}`: it is in the job's "
        "artifacts, so download it and open it in a browser.",
    ]
    if report.created:
        untagged = f", {report.untagged} of them untagged" if report.untagged else ""
        lines.append(
            f"The run created {len(report.created)} record{'' if len(report.created) == 1 else 's'} on the "
            f"server{untagged}; report.json lists them for cleanup."
        )
    return "\n".join(lines) + "\n"


def _baseline_lines(report: RunReport) -> list[str]:
    assert report.baseline is not None
    accepted = accepted_summary(report) or "It accepts no failure of this run."
    lines = [f"Baseline file `{_cell(report.baseline.path)}`. {_cell(accepted)}"]
    for result in report.results:
        if result.baseline is not None and result.baseline.status in ("stale", "not_judged"):
            lines.append(f"- `{result.rule.id}`: {_cell(describe_mark(result.baseline))}.")
    return [*lines, ""]


def write_markdown(report: RunReport, path: Path) -> Path:
    path.write_text(render_markdown(report), encoding="utf-8")
    return path
