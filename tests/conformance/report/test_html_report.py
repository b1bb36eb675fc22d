"""report.html: self-contained, failures first, server text escaped, curl reading $ENGINY_API_KEY."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conformance.baseline import Baseline, Entry, apply_baseline
from conformance.report import render_html, write_reports
from conformance.report._common import scrub_settings
from conformance.results import RunReport


@pytest.fixture
def page(report: RunReport, tmp_path: Path) -> str:
    return write_reports(report, tmp_path)["html"].read_text(encoding="utf-8")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []  # character references resolved: what a browser shows

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    parser.close()
    return parser


def tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    return parsed(page).tags


def test_server_html_is_escaped(page: str) -> None:
    assert "<script>" not in page and "<b>bold</b>" not in page
    # Shown as text: which character references the escaper picks (&#34; or &quot;) does not matter.
    assert '<script>alert("x")</script>' in "".join(parsed(page).text)
    assert "\x1b" not in page  # control characters replaced
    assert all(tag != "script" for tag, _ in tags(page))


def test_self_contained(page: str) -> None:
    found = tags(page)
    assert ("style", {}) in found
    for tag, attrs in found:
        assert tag not in ("script", "link", "img", "iframe", "object")
        assert not any(name.startswith("on") for name in attrs)  # no inline event handlers
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith("#"), (tag, attrs)


def test_failures_first_then_warnings_skipped_passed(page: str) -> None:
    order = re.findall(r'<article class="rule (\w+)" id="rule-([A-Z0-9-]+)"', page)
    assert [outcome for outcome, _ in order] == [
        "failed",
        "failed",
        "warning",
        "skipped",
        "skipped",
        "passed",
    ]
    assert [rule for _, rule in order][:2] == ["SERVER-NO-5XX", "AUTH-MISSING-KEY"]  # catalogue order within


def test_failure_shows_the_doc_sentence_expected_actual_and_exchanges(page: str) -> None:
    article = page[page.index('id="rule-SERVER-NO-5XX"') : page.index('id="rule-AUTH-MISSING-KEY"')]
    assert "MUST" in article
    assert "500 server error”" in article and "Reference §1.5, Generic error convention" in article
    assert "No request Enginy may send" in article
    assert "<th>Expected</th><td>a 2xx or 4xx answer</td>" in article
    assert "<th>Actual</th><td>HTTP 500: &lt;script&gt;</td>" in article
    assert "POST http://crm.test/tasks" in article and "HTTP 500" in article
    assert "<h4>Reproduce</h4>" in article
    assert '-H "X-API-Key: $ENGINY_API_KEY"' in html.unescape(article)
    assert "Content-Length" not in article.split("<h4>Reproduce</h4>")[1].split("</pre>")[0]


def test_curl_for_a_keyless_probe_has_no_key(page: str) -> None:
    article = page[page.index('id="rule-AUTH-MISSING-KEY"') :].split("</article>")[0]
    curls = re.findall(r'<pre class="curl">(.*?)</pre>', article, re.S)
    assert len(curls) == 2
    assert "ENGINY_API_KEY" in curls[0]  # the accepted original carried the key
    assert "X-API-Key" not in curls[1] and "ENGINY_API_KEY" not in curls[1]  # the probe did not


def test_configured_header_name_is_used(make_report: Any, make_exchange: Any, tmp_path: Path) -> None:
    report = make_report()
    result = report.results[1]
    item = result.evidence[0]
    headers = {"X-CRM-Token": "[REDACTED]", "Content-Type": "application/json"}
    moved = type(item)(
        rule_id=item.rule_id,
        outcome=item.outcome,
        source=item.source,
        message=item.message,
        exchanges=(make_exchange(headers=headers),),
    )
    report = make_report(
        results=(type(result)(rule=result.rule, outcome="failed", evidence=(moved,)),),
        settings={"api_key_header": "X-CRM-Token"},
    )
    page = write_reports(report, tmp_path)["html"].read_text(encoding="utf-8")
    # The same command twice: on the failure's card up top, and with the exchange in the rule's section.
    card, full = re.findall(r'<pre class="curl">(.*?)</pre>', page, re.S)
    assert card == full
    assert '-H "X-CRM-Token: $ENGINY_API_KEY"' in html.unescape(card)
    assert "X-API-Key" not in card


def test_settings_and_cleanup_are_shown_without_secrets(page: str, canary: str) -> None:
    assert canary not in page
    created = page.split('<section id="created">', 1)[1].split("</section>", 1)[0]
    assert "<tr><td>task</td><td>task-1</td><td>POST /tasks</td></tr>" in created


# --- the first screen: the verdict, then every failure with what reproducing it needs -----------------


def cards(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<article class="finding (\w+)" id="finding-([A-Z0-9-]+)"', page)


def card_of(page: str, rule_id: str) -> str:
    return page.split(f'id="finding-{rule_id}"', 1)[1].split("</article>", 1)[0]


def test_the_verdict_then_each_failure_then_the_table_of_all_rules(page: str) -> None:
    order = [
        page.index('<span class="verdict failed">FAILED</span>'),
        page.index('<section id="findings">'),
        page.index('<nav id="all-rules">'),
        page.index('<section id="failed">'),
    ]
    assert order == sorted(order)
    # Failures before warnings, catalogue order within; a card per rule, not per piece of evidence.
    assert cards(page) == [
        ("failed", "SERVER-NO-5XX"),
        ("failed", "AUTH-MISSING-KEY"),
        ("warning", "ERROR-BODY-JSON"),
    ]
    assert "<h2>Failures (2) and warnings (1)</h2>" in page


def test_a_failure_card_has_the_finding_the_answer_and_the_curl(page: str) -> None:
    card = card_of(page, "SERVER-NO-5XX")
    text = html.unescape(re.sub(r"<[^>]+>", " ", card))
    for shown in (
        "SERVER-NO-5XX",
        "MUST",
        'Server error [ST101] on POST /tasks: <script>alert("x")</script>',
        "Expected a 2xx or 4xx answer",
        "Actual HTTP 500: <script>",
        "HTTP 500 · text/html · 4 ms to POST http://crm.test/tasks",  # 3.5 ms, rounded
    ):
        assert shown in " ".join(text.split()), shown
    assert '<a href="#rule-SERVER-NO-5XX">' in card  # everything else is in the rule's section
    (curl,) = re.findall(r'<pre class="curl">(.*?)</pre>', card, re.S)
    section = page.split('id="rule-SERVER-NO-5XX"', 1)[1].split("</article>", 1)[0]
    assert curl in section and "$ENGINY_API_KEY" in curl


def test_the_card_replays_the_request_that_broke_the_rule(page: str) -> None:
    # AUTH-MISSING-KEY's evidence holds the accepted original, then the keyless probe: the card shows
    # the probe (the last exchange), replayed without a key.
    (curl,) = re.findall(r'<pre class="curl">(.*?)</pre>', card_of(page, "AUTH-MISSING-KEY"), re.S)
    assert "X-API-Key" not in curl and "ENGINY_API_KEY" not in curl
    assert "HTTP 201" in card_of(page, "AUTH-MISSING-KEY")


def test_the_card_quotes_the_first_lines_of_the_answer_json_indented(
    make_report: Any, make_exchange: Any
) -> None:
    body = json.dumps({"error": "Bad", "message": "x" * 400, "items": list(range(10))})  # one long line
    report = make_report()
    failed = report.results[1]
    item = replace(failed.evidence[0], exchanges=(make_exchange(response_body=body),))
    report = make_report(results=(replace(failed, evidence=(item,)),))
    page = render_html(report, settings={})
    card = card_of(page, "SERVER-NO-5XX")
    (excerpt,) = re.findall(r'<pre class="excerpt">(.*?)</pre>', card, re.S)
    lines = html.unescape(excerpt).splitlines()
    assert lines[:2] == ["{", '  "error": "Bad",']
    assert len(lines) == 6 and len(lines[2]) == 160 and lines[2].endswith("…")  # a long line is cut
    hidden = len(json.dumps(json.loads(body), indent=2).splitlines()) - 6
    assert f"… {hidden} more lines: the whole answer is in" in card
    section = page.split('id="rule-SERVER-NO-5XX"', 1)[1].split("</article>", 1)[0]
    assert body in "".join(parsed(section).text)  # the rule's section has the answer as received


def test_a_card_for_a_request_that_got_no_answer_says_why(make_report: Any, make_exchange: Any) -> None:
    report = make_report()
    failed = report.results[1]
    item = replace(failed.evidence[0], exchanges=(make_exchange(status=None),))
    page = render_html(make_report(results=(replace(failed, evidence=(item,)),)), settings={})
    card = card_of(page, "SERVER-NO-5XX")
    assert "<b>No answer: Read timed out</b>" in card and "excerpt" not in card
    assert '<pre class="curl">curl -sS -i -X POST' in card  # still worth replaying


def test_a_passing_run_says_nothing_failed(make_report: Any) -> None:
    report = make_report()
    page = render_html(make_report(results=report.results[:1]), settings={})
    assert '<span class="verdict passed">PASSED</span>' in page
    assert cards(page) == [] and "<p>No rule failed or warned.</p>" in page


def test_beside_a_failure_what_was_not_judged_comes_after_the_failures(page: str) -> None:
    # TASK-GET (MUST) was not judged; the failures decide the verdict, so they come first.
    header = page.split("<header>", 1)[1].split("</header>", 1)[0]
    assert "not-judged" not in header
    section = page.index('<section id="not-judged"><h2>Not judged (1)</h2>')
    assert page.index('<section id="findings">') < section < page.index('<nav id="all-rules">')
    assert '<ul class="not-judged"><li><a href="#rule-TASK-GET">TASK-GET</a>: ' in page


# --- well-formed enough for any browser ---------------------------------------------------------------

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


class Balance(HTMLParser):
    """Every element closed, in order; ids unique; every in-page link lands on one of them."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []
        self.ids: list[str] = []
        self.links: list[str] = []
        self.declarations: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.declarations.append(decl)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if (found.get("href") or "").startswith("#"):
            self.links.append(str(found["href"])[1:])
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> at line {self.getpos()[0]} while {self.open[-1:]} is open")
        else:
            self.open.pop()


def well_formed(page: str) -> Balance:
    checker = Balance()
    checker.feed(page)
    checker.close()
    return checker


@pytest.mark.parametrize("kind", ["failed", "accepted", "passed"])
def test_the_page_is_well_formed(make_report: Any, kind: str) -> None:
    report = make_report()
    if kind == "accepted":
        entry = Entry(rule="SERVER-NO-5XX", reason="known <b>bug</b>")
        report = apply_baseline(
            report, Baseline(path=Path("known.json"), entries=(entry,)), today=date.today()
        )
    elif kind == "passed":
        report = make_report(results=report.results[:1], created=())
    page = render_html(report, settings=scrub_settings(report.settings))
    checker = well_formed(page)
    assert checker.declarations == ["DOCTYPE html"]
    assert checker.problems == [] and checker.open == []
    assert len(checker.ids) == len(set(checker.ids)), "an id is used twice"
    assert set(checker.links) <= set(checker.ids), "an in-page link leads nowhere"


def test_the_balance_check_sees_a_stray_tag() -> None:
    # The check above is only worth something if it can fail.
    checker = well_formed("<!DOCTYPE html><html><body><p><b>x</p></body></html>")
    assert checker.problems and checker.problems[0].startswith("</p> at line 1 while ['b'] is open")
