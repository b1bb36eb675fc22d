"""summary.md: a short Markdown summary for a CI job page ($GITHUB_STEP_SUMMARY, a GitLab MR note).

A verdict line, the counts, a table of the failed and warning rules with a one-line reason each (those
the baseline accepts last, marked accepted, with its reason and expiry), the baseline's stale entries,
and a pointer to report.html. Then, for each rule of the table in the same order, its first finding:
expected against actual, and the curl that replays it as a fenced block, so the job page alone is
enough to reproduce a failure.

Server text is escaped: GitHub renders inline HTML in Markdown, so `<`, `>` and `&` become entities and
`|` cannot break the table. A curl command is the exception, since it must be copied exactly: it stays
verbatim inside its fenced block, where GitHub renders nothing, and the fence is longer than any run of
backticks in the command, so nothing in it can close the block early.

GitHub refuses a step summary over 1 MiB (and shows none of it), so the file stops at MAX_SUMMARY_BYTES,
60 KiB: the part above the findings is bounded by construction (at most one cut row per rule), and
findings are added whole, in order, while they fit; a line then says how many more are in report.html.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from conformance.baseline import accepted_summary, describe_mark
from conformance.report._common import (
    curl_command,
    key_header,
    markup_safe,
    not_judged_reason,
    ordered,
    unicode_safe,
)
from conformance.results import Result, RunReport

__all__ = ["MAX_SUMMARY_BYTES", "render_markdown", "write_markdown"]

# Well under GitHub's 1 MiB per step summary: a job often has other steps writing theirs, and a page
# of 60 KiB is already more than anyone reads there; report.html has the rest.
MAX_SUMMARY_BYTES: Final = 60 * 1024

_ICONS: Final = {"failed": "❌", "warning": "⚠️", "skipped": "⏭️", "passed": "✅", "accepted": "☑️"}
_VERDICT_ICONS: Final = {"failed": "❌", "incomplete": "🟡", "passed": "✅"}
_MAX_REASON: Final = 160
_MAX_COMPARED: Final = 500  # characters of expected and of actual in a finding
_BACKTICKS = re.compile("`+")


def _cell(text: str, *, limit: int = _MAX_REASON) -> str:
    flat = " ".join(unicode_safe(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
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


def _fenced(text: str, info: str = "") -> list[str]:
    """`text` as a fenced code block whose fence no run of backticks inside it can match."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", markup_safe(text), fence]


def _text(text: str) -> str:
    return _cell(text, limit=_MAX_COMPARED) if text else "(not stated)"


def _finding_block(result: Result, header: str, html_name: str) -> str:
    """One rule's first finding: what was found, expected against actual, and the curl to replay it."""
    first, *rest = result.failures
    accepted = ", accepted by the baseline" if result.accepted else ""
    lines = [
        f"#### {_ICONS['accepted' if result.accepted else result.outcome]} `{result.rule.id}` "
        f"({result.rule.level}{accepted})",
        "",
        _cell(first.message),
        "",
    ]
    if first.expected or first.actual:
        # As text, escaped like the table: a server's words, unlike a curl, need not be copied whole.
        lines += [f"- **Expected:** {_text(first.expected)}", f"- **Actual:** {_text(first.actual)}", ""]
    if first.exchanges:
        lines += [*_fenced(curl_command(first.exchanges[-1].request, key_header=header), "bash"), ""]
    if rest:
        lines += [
            f"{len(rest)} more {'finding' if len(rest) == 1 else 'findings'} about it in `{html_name}`.",
            "",
        ]
    return "\n".join(lines) + "\n"  # ends with a blank line: blocks follow one another


def _more_note(left: list[Result], html_name: str) -> str:
    failed = sum(1 for result in left if result.outcome == "failed")
    warned = len(left) - failed
    parts = ([f"{failed} more {'failure' if failed == 1 else 'failures'}"] if failed else []) + (
        [f"{warned} more {'warning' if warned == 1 else 'warnings'}"] if warned else []
    )
    return (
        f"{' and '.join(parts)} in `{html_name}`: this summary stops at {MAX_SUMMARY_BYTES // 1024} KiB, "
        "under GitHub's limit for a job summary.\n"
    )


def _with_findings(head: str, flagged: list[Result], header: str, html_name: str) -> str:
    """`head`, then each rule's finding while the whole stays within MAX_SUMMARY_BYTES."""
    if not flagged:
        return head
    text = head + "\n### Findings\n\n"
    # Room for the closing note at its longest (every finding left), so it can never push the file over.
    note = len(_more_note(flagged, html_name).encode("utf-8"))
    budget = MAX_SUMMARY_BYTES - len(text.encode("utf-8")) - note
    for index, result in enumerate(flagged):
        block = _finding_block(result, header, html_name)
        size = len(block.encode("utf-8"))
        if size > budget:
            return text + _more_note(flagged[index:], html_name)
        text += block
        budget -= size
    return text


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
    if report.interrupted:
        lines += [
            "**Interrupted (Ctrl-C)**: these are the rules judged before the stop; the rest are not judged, "
            "and the run exits 130.",
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
    return _with_findings("\n".join(lines) + "\n", flagged, key_header(report), html_name)


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
