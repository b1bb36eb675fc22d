"""summary.md: a short Markdown summary for a CI job page ($GITHUB_STEP_SUMMARY, a GitLab MR note).

A verdict line, the counts, a table of the failed and warning rules with a one-line reason each, and a
pointer to report.html for the requests, responses and curl commands. Server text is escaped: GitHub
renders inline HTML in Markdown, so `<`, `>` and `&` become entities and `|` cannot break the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from conformance.report._common import not_judged_reason, ordered, unicode_safe
from conformance.results import Result, RunReport

__all__ = ["render_markdown", "write_markdown"]

_ICONS: Final = {"failed": "❌", "warning": "⚠️", "skipped": "⏭️", "passed": "✅"}
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
    return f"{item.message} Got: {item.actual}" if item.actual else item.message


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
        f"{len(report.results)} rules: {counts} · {report.duration_s:.1f} s",
        "",
    ]
    flagged = [result for result in ordered(report.results) if result.outcome in ("failed", "warning")]
    if flagged:
        lines += ["| Rule | Level | Outcome | Reason |", "|---|---|---|---|"]
        for result in flagged:
            lines.append(
                f"| `{result.rule.id}` | {result.rule.level} | {_ICONS[result.outcome]} {result.outcome} "
                f"| {_cell(_reason(result))} |"
            )
        lines.append("")
    else:
        lines += ["No rule failed or warned.", ""]
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


def write_markdown(report: RunReport, path: Path) -> Path:
    path.write_text(render_markdown(report), encoding="utf-8")
    return path
