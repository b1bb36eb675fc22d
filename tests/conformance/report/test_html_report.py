"""report.html: self-contained, failures first, server text escaped, curl reading $ENGINY_API_KEY."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conformance.report import write_reports
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
    (curl,) = re.findall(r'<pre class="curl">(.*?)</pre>', page, re.S)
    assert '-H "X-CRM-Token: $ENGINY_API_KEY"' in html.unescape(curl)
    assert "X-API-Key" not in curl


def test_settings_and_cleanup_are_shown_without_secrets(page: str, canary: str) -> None:
    assert canary not in page
    assert "task-1" in page and "POST /tasks" in page
