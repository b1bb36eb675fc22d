"""report.html: one self-contained page for people (inline CSS, no scripts, no external assets).

The first screen answers "did it pass, and if not, what do I fix": the verdict as a large coloured
badge, then one card per failed or warning rule the baseline does not accept (rule id, level, the
finding, expected against actual, the status and first lines of the answer that showed it, and the
curl that replays it). Below them the table of every rule, then every rule in full, grouped failures,
warnings, failures the baseline accepts (each with the baseline's reason and expiry, and its evidence
in full), skipped and passed: the sentence of the docs it rests on, every request and response, and a
curl command for each, the key read from $ENGINY_API_KEY. Then the records created, for cleanup.

The page is the Jinja2 template templates/report.html.j2; this module decides what goes in it (order,
groups, wording) and the template lays it out. The environment escapes every value (autoescape), and
`_finalize` first makes it fit for HTML (no control characters, no lone surrogates): a report must never
run, or break on, what a server answered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from conformance.baseline import accepted_summary, describe_mark
from conformance.report._common import (
    ENV_KEY,
    curl_command,
    family,
    group_of,
    key_header,
    markup_safe,
    not_judged_reason,
    ordered,
)
from conformance.results import (
    Evidence,
    Exchange,
    LoadSummary,
    RecordedRequest,
    RecordedResponse,
    Result,
    RunReport,
    TimePoint,
)

__all__ = ["render_html", "write_html"]

TEMPLATE: Final = "report.html.j2"

# By group (conformance.report._common.group_of), in reading order.
_TITLES: Final[Mapping[str, str]] = {
    "failed": "Failed (MUST)",
    "warning": "Warnings (SHOULD)",
    "accepted": "Accepted by the baseline",
    "skipped": "Skipped",
    "passed": "Passed",
}
_MAX_INDEX_FINDING: Final = 200  # characters of the first finding in the table of all rules

# A finding's card must fit on the first screen beside the verdict, so what it quotes is bounded: a few
# lines of the answer, each cut, and sentences cut; the rule's section below holds everything.
_CARD_LINES: Final = 6
_CARD_LINE_WIDTH: Final = 160
_CARD_TEXT: Final = 300


@dataclass(frozen=True, slots=True)
class _RuleView:
    """One rule as the page shows it: which evidence in full, which folded away."""

    result: Result
    group: str
    family: str
    baseline_note: str
    detailed: bool  # expected/actual and the exchanges are shown
    shown: tuple[Evidence, ...]
    others: tuple[Evidence, ...]
    finding: str  # the first finding, cut, for the table of all rules


@dataclass(frozen=True, slots=True)
class _Finding:
    """A failed or warning rule as the first screen shows it: its first finding and the answer to it."""

    result: Result
    message: str
    expected: str
    actual: str
    exchange: Exchange | None  # the last one of the finding: the request that broke the rule
    answer: str  # "HTTP 405 · application/json · 3 ms", or why no answer came
    excerpt: str  # the first lines of the answer's body
    hidden_lines: int  # lines of the body the excerpt leaves out
    more: int  # further findings about the same rule, shown in its section


@dataclass(frozen=True, slots=True)
class _Section:
    name: str
    title: str
    rules: tuple[_RuleView, ...]


def _rule_view(result: Result) -> _RuleView:
    # Accepted failures are detailed as failures are: accepting one must not hide what failed.
    detailed = result.outcome in ("failed", "warning")
    shown = result.failures if detailed else result.evidence
    return _RuleView(
        result=result,
        group=group_of(result),
        family=family(result.rule.id),
        baseline_note=describe_mark(result.baseline) if result.baseline is not None else "",
        detailed=detailed,
        shown=shown,
        others=tuple(item for item in result.evidence if item not in shown),
        finding=result.failures[0].message[:_MAX_INDEX_FINDING] if result.failures else "",
    )


def _cut(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _body_lines(body: str) -> list[str]:
    """The body as lines to read: JSON indented (an API answers one long line), anything else as it came."""
    try:
        value = json.loads(body)
        if isinstance(value, dict | list) and value:
            body = json.dumps(value, indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, cut short, or nested too deep to print
        pass
    return body.splitlines()


def _finding(result: Result) -> _Finding:
    first, *rest = result.failures
    exchange = first.exchanges[-1] if first.exchanges else None
    answer, lines = "", []
    if exchange is not None and exchange.response is None:
        answer = f"No answer: {exchange.error or 'the request failed'}"
    elif exchange is not None and exchange.response is not None:
        response = exchange.response
        content_type = next(
            (value for name, value in response.headers.items() if name.lower() == "content-type"), ""
        )
        answer = " · ".join(
            part
            for part in (f"HTTP {response.status}", content_type, f"{response.elapsed_ms:.0f} ms")
            if part
        )
        lines = _body_lines(response.body)
    shown = [line if len(line) <= _CARD_LINE_WIDTH else line[: _CARD_LINE_WIDTH - 1] + "…" for line in lines]
    return _Finding(
        result=result,
        message=_cut(first.message, _CARD_TEXT),
        expected=_cut(first.expected, _CARD_TEXT),
        actual=_cut(first.actual, _CARD_TEXT),
        exchange=exchange,
        answer=answer,
        excerpt="\n".join(shown[:_CARD_LINES]),
        hidden_lines=max(0, len(shown) - _CARD_LINES),
        more=len(rest),
    )


def _findings_title(findings: list[_Finding]) -> str:
    failed = sum(1 for finding in findings if finding.result.outcome == "failed")
    warned = len(findings) - failed
    parts = ([f"Failures ({failed})"] if failed else []) + ([f"warnings ({warned})"] if warned else [])
    return " and ".join(parts).capitalize() if parts else "Failures"


def _request_text(request: RecordedRequest) -> str:
    head = [
        f"{request.method} {request.url}",
        *(f"{name}: {value}" for name, value in request.headers.items()),
    ]
    return "\n".join(head) + (f"\n\n{request.body}" if request.body else "")


def _response_text(response: RecordedResponse) -> str:
    lines = [f"HTTP {response.status}  ({response.elapsed_ms:g} ms)"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    return "\n".join(lines) + (f"\n\n{response.body}" if response.body else "")


def _answered(exchange: Exchange) -> str:
    return "no answer" if exchange.response is None else str(exchange.response.status)


def _meaning(report: RunReport) -> str:
    if report.verdict == "failed":
        return "A MUST rule does not hold (exit 1)."
    if report.verdict == "incomplete":
        return "No MUST rule failed, but some could not be judged, so the run cannot say PASSED (exit 3)."
    if any(result.outcome == "failed" for result in report.accepted):
        return (
            "Every selected MUST rule was judged and holds, apart from failures the baseline accepts "
            "(exit 0)."
        )
    return "Every selected MUST rule was judged and holds (exit 0)."


def _finalize(value: object) -> object:
    # Runs on every {{ value }} before autoescape. A value with __html__ (markupsafe's protocol) is a
    # macro's output, already escaped and made safe piece by piece: rewrapping it as str would escape twice.
    return value if hasattr(value, "__html__") else markup_safe(str(value))


def _environment(header: str) -> Environment:
    # Built per page: a run writes one, and a module-level environment would be shared state for nothing.
    environment = Environment(
        loader=PackageLoader("conformance.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.globals.update(
        curl=lambda request: curl_command(request, key_header=header),
        request_text=_request_text,
        response_text=_response_text,
        answered=_answered,
        not_judged_reason=not_judged_reason,
    )
    return environment


_CHART_W: Final = 720
_CHART_H: Final = 150
_PAD: Final = 40


def _polyline(points: list[tuple[float, float]], *, colour: str, dash: str = "") -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dashed} points="{coords}"/>'


def _chart(
    title: str,
    points: tuple[TimePoint, ...],
    series: list[tuple[str, str, list[float]]],
    unit: str,
    *,
    line: float | None = None,
) -> str:
    """One inline SVG line chart over the seconds of the run; only numbers and fixed words go in it."""
    top = max([max(values, default=0.0) for _, _, values in series] + [line or 0.0, 1.0]) * 1.1
    last = max(1, len(points) - 1)

    def xy(index: int, value: float) -> tuple[float, float]:
        x = _PAD + (_CHART_W - 2 * _PAD) * index / last
        return x, _CHART_H - _PAD / 2 - (_CHART_H - _PAD) * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{_CHART_W}" height="{_CHART_H}" '
        f'viewBox="0 0 {_CHART_W} {_CHART_H}" class="load-chart"><title>{title}</title>',
        f'<text x="{_PAD}" y="14" font-size="12">{title}</text>',
        f'<text x="4" y="{_CHART_H - _PAD / 2:.0f}" font-size="10">0</text>',
        f'<text x="4" y="{_PAD / 2 + 10:.0f}" font-size="10">{top / 1.1:.0f} {unit}</text>',
        f'<text x="{_CHART_W - _PAD}" y="{_CHART_H - 4}" font-size="10">{len(points)} s</text>',
    ]
    for name, colour, values in series:
        parts.append(_polyline([xy(i, v) for i, v in enumerate(values)], colour=colour))
        parts.append(
            f'<text x="{_CHART_W - _PAD - 120}" y="{14 + 12 * len(parts) % 48}" font-size="10" '
            f'fill="{colour}">{name}</text>'
        )
    if line is not None:
        parts.append(_polyline([xy(0, line), xy(last, line)], colour="#b00020", dash="6 4"))
        parts.append(
            f'<text x="{_PAD + 4}" y="{xy(0, line)[1] - 4:.1f}" font-size="10" fill="#b00020">'
            f"budget {line:g} {unit}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def load_chart(load: LoadSummary) -> Markup:
    """Requests/s and latency percentiles over the run, as two inline SVG charts (no external assets)."""
    points = load.points
    throughput = _chart(
        "Requests per second",
        points,
        [
            ("req/s", "#1f5fa8", [float(p.requests) for p in points]),
            ("failed/s", "#b00020", [float(p.failures) for p in points]),
        ],
        "req/s",
    )
    latency = _chart(
        "Latency percentiles",
        points,
        [
            ("p50", "#2e7d32", [p.p50_ms for p in points]),
            ("p95", "#ef6c00", [p.p95_ms for p in points]),
            ("p99", "#6a1b9a", [p.p99_ms for p in points]),
        ],
        "ms",
        line=load.p95_budget_ms,
    )
    # Built from numbers and fixed words only, so it is safe as markup.
    return Markup(throughput + "<br>" + latency)


def render_html(report: RunReport, *, settings: Mapping[str, object]) -> str:
    """The page as text; `settings` are the already scrubbed run settings."""
    results = ordered(report.results)
    views = tuple(_rule_view(result) for result in results)
    sections = [
        _Section(name=name, title=title, rules=group)
        for name, title in _TITLES.items()
        if (group := tuple(view for view in views if view.group == name))
    ]
    counts = ", ".join(
        f"{report.count(outcome)} {outcome}" for outcome in ("failed", "warning", "skipped", "passed")
    )
    # What the baseline accepts is known and has a reason: it is not on the first screen, only below.
    findings = [
        _finding(result)
        for result in results
        if result.outcome in ("failed", "warning") and not result.accepted and result.failures
    ]
    template = _environment(key_header(report)).get_template(TEMPLATE)
    return template.render(
        report=report,
        verdict=report.verdict,
        meaning=_meaning(report),
        counts=counts,
        accepted_line=accepted_summary(report) or "It accepts no failure of this run.",
        findings=findings,
        findings_title=_findings_title(findings),
        rules=views,
        sections=sections,
        settings=settings,
        env_key=ENV_KEY,
        load=report.load,
        load_chart=load_chart(report.load) if report.load is not None else "",
    )


def write_html(report: RunReport, path: Path, *, settings: Mapping[str, object]) -> Path:
    path.write_text(render_html(report, settings=settings), encoding="utf-8")
    return path
