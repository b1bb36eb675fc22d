"""junit.xml: one testcase per rule, for CI test-report widgets (GitHub, GitLab, Jenkins).

Mapping, chosen so that CI fails exactly when the verdict does:

    failed  (a MUST rule)  -> <failure message=... type="MUST">details</failure>
    warning (a SHOULD rule) -> a passing testcase whose <system-out> starts "WARNING (SHOULD): ..."
                               (not <skipped>: the rule *was* judged, and skipped would hide that)
    skipped                 -> <skipped message="why"/>
    passed                  -> an empty testcase

A testcase's `time` is the rule's own (what the runner spent judging it). A warning's testcase also
carries <properties> `level` (SHOULD) and `outcome` (warning), so a warning, which passes, is still
found by widgets that show only pass, fail and skip. With a baseline (conformance.baseline),
a testcase whose rule has an entry also carries `baseline` (accepted, expired, stale or not_judged),
`baseline_reason` and, when set, `baseline_expires`; and

    failed or warning, accepted -> <skipped type="accepted" message="Accepted by the baseline until
                                   DATE: reason — the finding">details</skipped>: CI stays green
                                   (the verdict ignores it), the widget shows it apart from the
                                   passes, and the details keep every request of the failure
    failed, entry expired       -> <failure> as above, its message starting with the expiry
    passed, entry stale         -> a passing testcase whose <system-out> says the entry can go

and, only when the verdict is INCOMPLETE (exit 3), one more testcase `verdict` (classname
`enginy.run`) holding an <error type="INCOMPLETE"> that lists the MUST rules not judged: the job fails
on exit 3, and a CI widget would otherwise show nothing but green and grey.

The shape follows the common JUnit XML schema (testsuites > testsuite > testcase, counts as
attributes); `errors` is 1 for an INCOMPLETE run and 0 otherwise (tool errors end a run before any
report is written).
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Final

from conformance.baseline import describe_mark
from conformance.report._common import curl_command, family, key_header, markup_safe, not_judged_reason
from conformance.results import Evidence, Result, RunReport

__all__ = ["SUITE_NAME", "to_element", "write_junit"]

SUITE_NAME: Final = "enginy-conformance"
_MAX_TEXT: Final = 20000  # per testcase body; the HTML and JSON reports hold everything


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _details(result: Result, items: tuple[Evidence, ...], header: str) -> str:
    rule = result.rule
    lines = [
        f"{rule.id} ({rule.level}): {rule.statement}",
        f'Source: {rule.source.document}: "{rule.source.quote}"',
    ]
    for item in items:
        lines += ["", f"[{item.outcome}] {item.message} (from {item.source})"]
        if item.expected:
            lines.append(f"Expected: {item.expected}")
        if item.actual:
            lines.append(f"Actual:   {item.actual}")
        for exchange in item.exchanges:
            response = exchange.response
            got = f"{response.status}" if response is not None else f"no answer ({exchange.error})"
            lines += [f"{exchange.request.method} {exchange.request.url} -> {got}", "Reproduce with:"]
            lines.append(curl_command(exchange.request, key_header=header))
    text = "\n".join(lines)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "\n… (cut; see report.html)"


def _reason(result: Result) -> str:
    if result.failures:
        item = result.failures[0]
        return _one_line(f"{item.message} Got: {item.actual}" if item.actual else item.message)
    messages = [item.message for item in result.evidence if item.message]
    return _one_line(messages[0]) if messages else "Not judged."


def _marked(result: Result, reason: str) -> str:
    # The baseline's word first: a CI widget cuts long messages, and this is what explains the colour.
    if result.baseline is None:
        return reason
    if result.baseline.status in ("accepted", "expired"):
        return _one_line(f"{describe_mark(result.baseline)} — {reason}")
    return _one_line(f"{reason} {describe_mark(result.baseline)}.")


def _case_properties(case: ET.Element, result: Result) -> None:
    # A SHOULD warning passes; a widget that shows only pass/fail/skip (GitHub's JUnit actions) still
    # finds it by these properties, and GitLab shows its <system-out>.
    values: list[tuple[str, str]] = []
    if result.outcome == "warning":
        values += [("level", result.rule.level), ("outcome", result.outcome)]
    mark = result.baseline
    if mark is not None:
        values += [("baseline", mark.status), ("baseline_reason", mark.reason)]
        if mark.expires is not None:
            values.append(("baseline_expires", mark.expires.isoformat()))
    if not values:
        return
    properties = ET.SubElement(case, "properties")
    for name, value in values:
        ET.SubElement(properties, "property", {"name": name, "value": value})


def to_element(report: RunReport) -> ET.Element:
    header = key_header(report)
    incomplete = report.verdict == "incomplete"
    accepted = len(report.accepted)
    failures = sum(1 for result in report.results if result.outcome == "failed" and not result.accepted)
    counts = {
        "tests": str(len(report.results) + (1 if incomplete else 0)),
        "failures": str(failures),
        "errors": "1" if incomplete else "0",
        "skipped": str(report.count("skipped") + accepted),
        "time": f"{report.duration_s:.3f}",
    }
    root = ET.Element("testsuites", {"name": SUITE_NAME, **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": SUITE_NAME, **counts, "timestamp": report.started_at, "hostname": socket.gethostname()},
    )
    properties = ET.SubElement(suite, "properties")
    values = [
        ("target", report.target),
        ("profile", report.profile),
        *([("interrupted", "true")] if report.interrupted else []),
        ("verdict", report.verdict),
        ("warnings", str(report.count("warning"))),
    ]
    if report.baseline is not None:
        values += [("baseline", report.baseline.path), ("accepted", str(accepted))]
    for name, value in values:
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for result in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "name": result.rule.id,
                "classname": f"enginy.{family(result.rule.id)}",
                # The rule's own time (conformance.runner measures it; the generated pass's time is
                # shared among the rules it judges).
                "time": f"{result.duration_s:.3f}",
            },
        )
        _case_properties(case, result)
        if result.accepted:
            skipped = ET.SubElement(
                case, "skipped", {"type": "accepted", "message": _marked(result, _reason(result))}
            )
            skipped.text = _details(result, result.failures, header)
        elif result.outcome == "failed":
            failure = ET.SubElement(
                case, "failure", {"message": _marked(result, _reason(result)), "type": result.rule.level}
            )
            failure.text = _details(result, result.failures, header)
        elif result.outcome == "warning":
            out = ET.SubElement(case, "system-out")
            out.text = f"WARNING ({result.rule.level}): {_marked(result, _reason(result))}\n\n" + _details(
                result, result.failures, header
            )
        elif result.outcome == "skipped":
            ET.SubElement(case, "skipped", {"message": _marked(result, _reason(result))})
        elif result.baseline is not None:  # passed, and the entry about it is stale
            ET.SubElement(case, "system-out").text = describe_mark(result.baseline) + "."
    if incomplete:
        missing = report.not_judged
        case = ET.SubElement(suite, "testcase", {"name": "verdict", "classname": "enginy.run", "time": "0"})
        error = ET.SubElement(
            case,
            "error",
            {
                "type": "INCOMPLETE",
                "message": f"INCOMPLETE: {len(missing)} MUST rules could not be judged, so the run cannot "
                "say PASSED (exit 3).",
            },
        )
        error.text = "\n".join(f"{result.rule.id}: {not_judged_reason(result)}" for result in missing)
    return root


def _make_safe(element: ET.Element) -> None:
    # ElementTree escapes <, & and quotes but writes control characters as they are, which makes the
    # file unparseable; server text goes into messages and bodies, so clean every string.
    for node in element.iter():
        if node.text:
            node.text = markup_safe(node.text)
        for name, value in node.attrib.items():
            node.attrib[name] = markup_safe(value)


def write_junit(report: RunReport, path: Path) -> Path:
    root = to_element(report)
    _make_safe(root)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path
