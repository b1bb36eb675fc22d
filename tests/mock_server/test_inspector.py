"""The inspector page: who may see it (header, ?token= traded for a cookie), what it shows, in a browser."""

from __future__ import annotations

import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

from mock_server.inspector import CONTENT_SECURITY_POLICY
from mock_server.middleware import inspector_cookie_value

ADMIN_TOKEN = "admin-token-0123"
CANARY = "canary-key-93f1c7"
COOKIE = "enginy_mock_inspector"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """The parts of the page the tests look at: journal rows, record kinds, tags that load anything."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.entries: list[dict[str, str]] = []
        self.kinds: dict[str, int] = {}
        self.loading: list[tuple[str, dict[str, str | None]]] = []  # script, img, link, iframe, ...
        self.links: list[str] = []
        self.text: list[str] = []
        self._cell: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "tr" and "entry" in classes:
            self.entries.append({key: value or "" for key, value in attributes.items()})
        elif tag == "td" and self.entries and self._cell is None and classes:
            self._cell = classes[0] if classes[0] != "mono" else (classes[1] if len(classes) > 1 else None)
        elif tag == "details" and "kind" in classes:
            self.kinds[attributes["data-kind"] or ""] = int(attributes["data-count"] or 0)
        if tag in {"script", "img", "link", "iframe", "object", "embed", "audio", "video", "source"}:
            self.loading.append((tag, attributes))
        if tag == "a":
            self.links.append(attributes.get("href") or "")

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell in {"why", "status", "path"} and self.entries:
            entry = self.entries[-1]
            entry[self._cell] = entry.get(self._cell, "") + data


def exercise(mock_or_client, *, key: str) -> None:
    """Three requests, oldest first: a create, an invalid body, and a hostile path."""
    mock_or_client("POST", "/tasks", {"subject": "<script>alert('x')</script> call back"}, key)
    mock_or_client("POST", "/contacts", {"contacts": [{}]}, key)
    mock_or_client("GET", "/tasks/<b>bold</b>", None, key)


def in_process(mock):
    def send(method, path, body, key):
        mock.bare.simulate_request(method, path, json=body, headers={"X-API-Key": key})

    return send


# --- who may see it ----------------------------------------------------------------------------------


def test_without_credentials_it_says_how_to_open_it(mock):
    result = mock.bare.simulate_get("/__admin/inspector")
    assert result.status_code == 401
    assert result.json["message"] == (
        "Open /__admin/inspector?token=TOKEN with the admin token once, or send the X-Admin-Token header."
    )
    with_key = mock.bare.simulate_get("/__admin/inspector", headers={"X-API-Key": mock.api_key})
    assert with_key.status_code == 401


def test_the_header_opens_it(mock):
    result = mock.bare.simulate_get("/__admin/inspector", headers={"X-Admin-Token": ADMIN_TOKEN})
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/html")
    assert result.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert result.headers["cache-control"] == "no-store"
    assert "set-cookie" not in result.headers
    wrong = mock.bare.simulate_get("/__admin/inspector", headers={"X-Admin-Token": "nope"})
    assert wrong.status_code == 401


def test_a_token_in_the_query_is_traded_for_a_cookie_and_leaves_the_address_bar(mock):
    result = mock.bare.simulate_get("/__admin/inspector", query_string=f"token={ADMIN_TOKEN}&limit=5")
    assert result.status_code == 303
    assert result.headers["location"] == "/__admin/inspector?limit=5"
    cookie = result.cookies[COOKIE]
    assert cookie.http_only and cookie.same_site == "Strict" and cookie.path == "/__admin"
    assert cookie.value == inspector_cookie_value(ADMIN_TOKEN) != ADMIN_TOKEN
    assert ADMIN_TOKEN not in str(result.headers) and ADMIN_TOKEN not in result.text
    page = mock.bare.simulate_get("/__admin/inspector", cookies={COOKIE: cookie.value})
    assert page.status_code == 200 and ADMIN_TOKEN not in page.text


def test_a_wrong_query_token_gets_no_cookie(mock):
    result = mock.bare.simulate_get("/__admin/inspector", params={"token": "guess"})
    assert result.status_code == 401 and COOKIE not in result.cookies
    assert result.json["message"] == "The token parameter is wrong."


def test_the_cookie_opens_only_the_read_only_pages(mock):
    cookies = {COOKIE: inspector_cookie_value(ADMIN_TOKEN)}
    for path in ("/__admin/inspector", "/__admin/journal.har", "/__admin/journal.jsonl"):
        assert mock.bare.simulate_get(path, cookies=cookies).status_code == 200, path
    # Writes and the other admin endpoints still need the header.
    assert mock.bare.simulate_post("/__admin/reset", cookies=cookies).status_code == 401
    assert mock.bare.simulate_put("/__admin/faults", json={"faults": []}, cookies=cookies).status_code == 401
    assert mock.bare.simulate_get("/__admin/records", cookies=cookies).status_code == 401
    assert mock.bare.simulate_get("/__admin/journal", cookies=cookies).status_code == 401
    # ...and a query token only works on the inspector itself.
    assert mock.bare.simulate_get("/__admin/journal.har", params={"token": ADMIN_TOKEN}).status_code == 401
    # The cookie is not the API key either.
    assert mock.bare.simulate_get("/health", cookies=cookies).status_code == 401


def test_a_cookie_from_another_token_is_stale(mock):
    stale = {COOKIE: inspector_cookie_value("old-token")}
    result = mock.bare.simulate_get("/__admin/inspector", cookies=stale)
    assert result.status_code == 401 and "out of date" in result.json["message"]


def test_the_inspector_is_not_journaled(mock):
    mock.admin("GET", "inspector")
    mock.bare.simulate_get("/__admin/inspector")
    assert mock.journal() == []


# --- what it shows -----------------------------------------------------------------------------------


def test_the_page_lists_requests_newest_first_with_why_and_escapes_everything(make_mock):
    mock = make_mock(api_keys=("test-key-0123", CANARY), faults=("TASK-GET",))
    exercise(in_process(mock), key=CANARY)
    mock.clock.advance(seconds=1)
    task_id = mock.create_task(subject="seen")["id"]
    mock.client.simulate_get(f"/tasks/{task_id}")
    result = mock.admin("GET", "inspector")
    page = Page(result.text)
    assert [(e["data-method"], e["data-status"]) for e in page.entries] == [
        ("GET", "200"),
        ("POST", "201"),
        ("GET", "404"),
        ("POST", "400"),
        ("POST", "201"),
    ]
    assert page.entries[0]["why"] == "fault TASK-GET"
    assert page.entries[3]["why"] == "validation error: contacts[0].externalId is required"
    assert page.entries[2]["path"] == "/tasks/<b>bold</b>"
    assert page.kinds == {
        "tasks": 2,
        "contacts": 0,
        "companies": 0,
        "activities": 0,
        "associations": 0,
        "users": 3,
    }
    # Self-contained and inert: nothing is loaded or run, user data never becomes markup.
    assert page.loading == []
    assert set(page.links) == {"/__admin/journal.har", "/__admin/journal.jsonl"}
    assert "<script>" not in result.text and "<b>bold</b>" not in result.text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in result.text
    assert "TASK-GET" in "".join(page.text)
    assert CANARY not in result.text and ADMIN_TOKEN not in result.text
    assert "[REDACTED]" in result.text


def test_limit_and_an_empty_journal(mock):
    assert "No requests yet." in mock.admin("GET", "inspector").text
    for _ in range(3):
        mock.client.simulate_get("/health")
    assert len(Page(mock.admin("GET", "inspector", params={"limit": 2}).text).entries) == 2
    assert mock.admin("GET", "inspector", params={"limit": 0}).status_code == 400


# --- in a real browser -------------------------------------------------------------------------------


def test_headless_chromium_renders_the_inspector(make_live, chromium, tmp_path):
    live = make_live(api_keys=("test-key-0123", CANARY), faults=("TASK-GET",))

    def send(method, path, body, key):
        live.request(method, path, json_body=body, key=False, headers={"X-API-Key": key})

    exercise(send, key=CANARY)
    task = live.request("POST", "/tasks", json_body={"subject": "seen"}).json()
    assert live.request("GET", f"/tasks/{task['id']}").status == 200

    url = f"{live.url}/__admin/inspector?token={ADMIN_TOKEN}"
    dom = chromium.dump_dom(url)
    page = Page(dom)
    # The browser followed the 303 with its new cookie: this is the page, not an error.
    assert [(e["data-method"], e["data-status"]) for e in page.entries] == [
        ("GET", "200"),
        ("POST", "201"),
        ("GET", "404"),
        ("POST", "400"),
        ("POST", "201"),
    ]
    assert page.entries[0]["why"] == "fault TASK-GET"
    assert page.entries[3]["why"] == "validation error: contacts[0].externalId is required"
    assert all(entry.get("why") for entry in page.entries)
    assert CANARY not in dom and ADMIN_TOKEN not in dom
    assert page.kinds["tasks"] == 2

    shot = chromium.screenshot(url, tmp_path / "inspector.png")
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    # For docs/img/: ENGINY_SCREENSHOT_DIR=docs/img pytest -k headless_chromium_renders_the_inspector
    if os.environ.get("ENGINY_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["ENGINY_SCREENSHOT_DIR"]) / "inspector.png")


def test_no_request_breaks_the_page_a_body_nested_2000_deep_included(mock):
    # Answered 400 (too deep), and kept in the journal as it came; the page must still render.
    deep = mock.client.simulate_post(
        "/tasks", body="[" * 2000 + "]" * 2000, headers={"Content-Type": "application/json"}
    )
    assert deep.status_code == 400
    page = mock.bare.simulate_get("/__admin/inspector", headers={"X-Admin-Token": ADMIN_TOKEN})
    assert page.status_code == 200
    assert "[[[[" in page.text


def test_a_key_spelled_with_json_escapes_is_not_decoded_onto_the_page(mock):
    escaped = "".join(f"\\u{ord(char):04x}" for char in mock.api_key)
    # No subject: answered 400 and not stored, so only the journal holds the body.
    refused = mock.client.simulate_post(
        "/tasks", body=f'{{"description": "{escaped}"}}', headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 400
    page = mock.bare.simulate_get("/__admin/inspector", headers={"X-Admin-Token": ADMIN_TOKEN})
    assert page.status_code == 200
    assert mock.api_key not in page.text and escaped not in page.text
