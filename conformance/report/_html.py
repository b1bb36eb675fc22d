"""report.html: one self-contained page for people (inline CSS, no scripts, no external assets).

Failures come first, then warnings, failures the baseline accepts (each with the baseline's reason and
expiry, and its evidence in full), skipped and passed rules. Each failure shows the rule, its level,
the sentence of the docs it rests on, expected against actual, every request and response, and a curl
command that replays the request with the key read from $ENGINY_API_KEY. Everything that came from the
server (or from a check's message) is escaped: a report must never run what a server answered.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

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
from conformance.results import Evidence, Exchange, Result, RunReport

__all__ = ["render_html", "write_html"]

# By group (conformance.report._common.group_of), in reading order.
_TITLES: Final[Mapping[str, str]] = {
    "failed": "Failed (MUST)",
    "warning": "Warnings (SHOULD)",
    "accepted": "Accepted by the baseline",
    "skipped": "Skipped",
    "passed": "Passed",
}

_CSS: Final = """
:root { --fail: #b42318; --warn: #b54708; --skip: #475467; --pass: #067647; --accept: #6941c6;
        --line: #d0d5dd; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #101828;
       margin: 0 auto; max-width: 1100px; padding: 1.5rem; }
h1 { margin: 0 0 .25rem; font-size: 1.6rem; }
h2 { margin-top: 2rem; border-bottom: 2px solid var(--line); padding-bottom: .25rem; }
h3 { margin: 0 0 .5rem; font-size: 1.1rem; }
h4 { margin: .75rem 0 .25rem; font-size: .9rem; text-transform: uppercase; color: #475467; }
.verdict { display: inline-block; font-weight: 700; font-size: 1.2rem; padding: .2rem .8rem;
           border-radius: 4px; color: #fff; }
.verdict.failed { background: var(--fail); } .verdict.passed { background: var(--pass); }
.verdict.incomplete { background: var(--warn); }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .3rem .5rem; border-bottom: 1px solid var(--line); }
.badge { display: inline-block; min-width: 5.5em; text-align: center; font-size: .8rem; font-weight: 700;
         padding: 0 .4rem; border-radius: 3px; color: #fff; }
.badge.failed { background: var(--fail); } .badge.warning { background: var(--warn); }
.badge.skipped { background: var(--skip); } .badge.passed { background: var(--pass); }
.badge.accepted { background: var(--accept); }
.level { font-size: .8rem; border: 1px solid var(--line); border-radius: 3px; padding: 0 .3rem; }
article.rule { border: 1px solid var(--line); border-left-width: 6px; border-radius: 4px;
               padding: .75rem 1rem; margin: 1rem 0; }
article.failed { border-left-color: var(--fail); } article.warning { border-left-color: var(--warn); }
article.skipped { border-left-color: var(--skip); } article.passed { border-left-color: var(--pass); }
article.accepted { border-left-color: var(--accept); }
p.baseline { border-left: 3px solid var(--accept); padding: .25rem .75rem; background: #f4f3ff; }
blockquote { margin: .5rem 0; padding: .25rem .75rem; border-left: 3px solid var(--line); color: #344054; }
blockquote footer { font-size: .85rem; color: #667085; }
.evidence { margin-top: .75rem; padding-top: .5rem; border-top: 1px dashed var(--line); }
.source { font-size: .8rem; color: #667085; }
table.compare th { width: 7rem; }
pre { background: #f2f4f7; padding: .6rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all;
      border-radius: 4px; font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre.curl { background: #101828; color: #f2f4f7; }
details > summary { cursor: pointer; }
footer.page { margin-top: 2rem; color: #667085; font-size: .85rem; }
"""


def _e(text: object) -> str:
    return html.escape(markup_safe(str(text)), quote=True)


def _exchange(exchange: Exchange, header: str, *, open_: bool) -> str:
    request = exchange.request
    head = [
        f"{request.method} {request.url}",
        *(f"{name}: {value}" for name, value in request.headers.items()),
    ]
    request_text = "\n".join(head) + (f"\n\n{request.body}" if request.body else "")
    response = exchange.response
    if response is None:
        got = "no answer"
        response_html = f"<p>No answer: {_e(exchange.error or 'the request failed')}</p>"
    else:
        got = str(response.status)
        lines = [f"HTTP {response.status}  ({response.elapsed_ms:g} ms)"]
        lines += [f"{name}: {value}" for name, value in response.headers.items()]
        response_text = "\n".join(lines) + (f"\n\n{response.body}" if response.body else "")
        response_html = f"<pre>{_e(response_text)}</pre>"
    return (
        f"<details{' open' if open_ else ''}><summary>{_e(request.method)} {_e(request.url)} → {_e(got)}"
        "</summary>"
        f"<h4>Request</h4><pre>{_e(request_text)}</pre>"
        f"<h4>Response</h4>{response_html}"
        f'<h4>Reproduce</h4><pre class="curl">{_e(curl_command(request, key_header=header))}</pre>'
        "</details>"
    )


def _evidence(item: Evidence, header: str, *, detailed: bool) -> str:
    parts = [
        '<div class="evidence">',
        f'<p><span class="badge {_e(item.outcome)}">{_e(item.outcome)}</span> {_e(item.message)} '
        f'<span class="source">({_e(item.source)})</span></p>',
    ]
    if detailed and (item.expected or item.actual):
        parts.append(
            '<table class="compare">'
            f"<tr><th>Expected</th><td>{_e(item.expected)}</td></tr>"
            f"<tr><th>Actual</th><td>{_e(item.actual)}</td></tr></table>"
        )
    if detailed:
        # The last exchange is the one that shows the problem; earlier ones led up to it.
        last = len(item.exchanges) - 1
        parts += [
            _exchange(exchange, header, open_=index == last) for index, exchange in enumerate(item.exchanges)
        ]
    parts.append("</div>")
    return "".join(parts)


def _badges(result: Result) -> str:
    # An accepted failure keeps its own badge: the baseline accepts it, it does not make it pass.
    badge = f'<span class="badge {_e(result.outcome)}">{_e(result.outcome)}</span>'
    return badge + (' <span class="badge accepted">accepted</span>' if result.accepted else "")


def _rule(result: Result, header: str) -> str:
    rule = result.rule
    # Accepted failures are detailed as failures are: accepting one must not hide what failed.
    detailed = result.outcome in ("failed", "warning")
    shown = result.failures if detailed else result.evidence
    others = tuple(item for item in result.evidence if item not in shown)
    body = [
        f'<article class="rule {_e(group_of(result))}" id="rule-{_e(rule.id)}">',
        f"<h3>{_badges(result)} {_e(rule.id)} "
        f'<span class="level">{_e(rule.level)}</span> '
        f'<span class="source">enginy.{_e(family(rule.id))}</span></h3>',
        *(
            [f'<p class="baseline">{_e(describe_mark(result.baseline))}.</p>']
            if result.baseline is not None
            else []
        ),
        f"<p>{_e(rule.statement)}</p>",
        f"<blockquote><p>“{_e(rule.source.quote)}”</p><footer>{_e(rule.source.document)}</footer></blockquote>",
        f'<p class="source">Operations: {_e(", ".join(rule.operations))}</p>',
    ]
    if not result.evidence:
        body.append("<p>Nothing judged this rule in this run.</p>")
    body += [_evidence(item, header, detailed=detailed) for item in shown]
    if others:
        body.append(f"<details><summary>Other evidence ({len(others)})</summary>")
        body += [_evidence(item, header, detailed=False) for item in others]
        body.append("</details>")
    body.append("</article>")
    return "\n".join(body)


def _index(results: Iterable[Result]) -> str:
    rows = []
    for result in results:
        reason = result.failures[0].message if result.failures else ""
        rows.append(
            f'<tr><td><a href="#rule-{_e(result.rule.id)}">{_e(result.rule.id)}</a></td>'
            f"<td>{_e(result.rule.level)}</td>"
            f"<td>{_badges(result)}</td>"
            f"<td>{_e(reason[:200])}</td></tr>"
        )
    return (
        "<table><tr><th>Rule</th><th>Level</th><th>Outcome</th><th>Finding</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _key_values(values: Mapping[str, object]) -> str:
    rows = "".join(f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in values.items())
    return f"<table>{rows}</table>"


def render_html(report: RunReport, *, settings: Mapping[str, object]) -> str:
    """The page as text; `settings` are the already scrubbed run settings."""
    header = key_header(report)
    results = ordered(report.results)
    counts = ", ".join(
        f"{report.count(outcome)} {outcome}" for outcome in ("failed", "warning", "skipped", "passed")
    )
    sections = []
    for name, title in _TITLES.items():
        group = [result for result in results if group_of(result) == name]
        if group:
            sections.append(f'<section id="{name}"><h2>{_e(title)} ({len(group)})</h2>')
            sections += [_rule(result, header) for result in group]
            sections.append("</section>")
    created = "".join(
        f"<tr><td>{_e(record.kind)}</td><td>{_e(record.id)}</td><td>{_e(record.via)}</td></tr>"
        for record in report.created
    )
    created_html = (
        f"<table><tr><th>Kind</th><th>Id</th><th>Created by</th></tr>{created}</table>"
        if created
        else "<p>The run created no records.</p>"
    )
    if report.untagged:
        created_html = (
            f"<p>{report.untagged} of these were created by generated testing from bodies it could not tag "
            "(they broke the schema on purpose, and the server accepted them): find them by id.</p>"
            + created_html
        )
    verdict = report.verdict
    meaning = {
        "failed": "A MUST rule does not hold (exit 1).",
        "passed": "Every selected MUST rule was judged and holds (exit 0)."
        if not any(result.outcome == "failed" for result in report.accepted)
        else "Every selected MUST rule was judged and holds, apart from failures the baseline accepts "
        "(exit 0).",
        "incomplete": "No MUST rule failed, but some could not be judged, so the run cannot say PASSED "
        "(exit 3). Not judged:",
    }[verdict]
    missing = "".join(
        f'<li><a href="#rule-{_e(result.rule.id)}">{_e(result.rule.id)}</a>: {_e(not_judged_reason(result))}'
        "</li>"
        for result in report.not_judged
    )
    not_judged = f'<ul class="not-judged">{missing}</ul>' if missing else ""
    baseline = ""
    if report.baseline is not None:
        accepted = accepted_summary(report) or "It accepts no failure of this run."
        baseline = f"<dt>Baseline</dt><dd><code>{_e(report.baseline.path)}</code>. {_e(accepted)}</dd>\n"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Enginy conformance: {_e(verdict.upper())} · {_e(report.target)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>Enginy Custom CRM API conformance</h1>
<p><span class="verdict {_e(verdict)}">{_e(verdict.upper())}</span> {_e(meaning)}</p>{not_judged}
<dl class="meta">
<dt>Target</dt><dd>{_e(report.target)}</dd>
<dt>Profile</dt><dd>{_e(report.profile)}</dd>
<dt>Started</dt><dd>{_e(report.started_at)}</dd>
<dt>Duration</dt><dd>{report.duration_s:.1f} s</dd>
<dt>Rules</dt><dd>{len(report.results)}: {_e(counts)}</dd>
{baseline}</dl>
<p>MUST rules decide the verdict; SHOULD rules can only warn.</p>
</header>
<nav><h2>All rules</h2>{_index(results)}</nav>
<main>
{chr(10).join(sections)}
<section id="created"><h2>Records created (for cleanup)</h2>{created_html}</section>
<section id="run"><h2>Run</h2><h3>Settings</h3>{_key_values(settings)}
<h3>Tool versions</h3>{_key_values(report.tool_versions)}</section>
</main>
<footer class="page">The curl commands read the API key from the environment variable {ENV_KEY}
(<code>export {ENV_KEY}=…</code> first); this report never contains the key.</footer>
</body>
</html>
"""


def write_html(report: RunReport, path: Path, *, settings: Mapping[str, object]) -> Path:
    path.write_text(render_html(report, settings=settings), encoding="utf-8")
    return path
