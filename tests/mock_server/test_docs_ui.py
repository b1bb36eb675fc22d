"""Swagger UI at /docs: public, the installed spec unchanged, the bundle's assets only, and it renders."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from enginy_spec import load_spec
from mock_server.docs_ui import static_assets

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".map": "application/json",
}


class References(HTMLParser):
    """Every src and href of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


@pytest.mark.parametrize("path", ["/docs", "/docs/"])
def test_the_page_needs_no_key_and_loads_only_local_assets_that_exist(mock, path):
    result = mock.bare.simulate_get(path)
    assert result.status_code == 200
    assert result.headers["content-type"] == "text/html; charset=utf-8"
    urls = References(result.text).urls
    assert {
        "/docs/static/swagger-ui.css",
        "/docs/static/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
        "/docs/openapi.json",
    } <= set(urls)
    for url in urls:
        assert url.startswith("/docs/"), url  # nothing from elsewhere
        asset = mock.bare.simulate_get(url)
        assert asset.status_code == 200, url
        suffix = "." + url.rsplit(".", 1)[1]
        assert asset.headers["content-type"] == CONTENT_TYPES.get(suffix, "application/json"), url
        assert asset.headers["x-content-type-options"] == "nosniff"


def test_openapi_json_is_the_installed_spec(mock):
    result = mock.bare.simulate_get("/docs/openapi.json")
    assert result.status_code == 200 and result.headers["content-type"] == "application/json"
    assert result.json == load_spec()


def test_every_bundle_asset_is_served_with_its_type_and_the_demo_files_are_not(mock):
    assets = static_assets()
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "swagger-ui-bundle.js.map"} <= set(
        assets
    )
    for name, path in assets.items():
        result = mock.bare.simulate_get(f"/docs/static/{name}")
        assert result.status_code == 200, name
        assert result.headers["content-type"] == CONTENT_TYPES[path.suffix]
        assert result.content == path.read_bytes()
        assert result.headers["cache-control"] == "public, max-age=86400"
    for name in ("index.html", "swagger-initializer.js", "index.j2", "oauth2-redirect.html", "nope.js"):
        assert mock.bare.simulate_get(f"/docs/static/{name}").status_code == 404, name


def test_the_initializer_names_the_configured_key_header(make_mock):
    mock = make_mock(api_key_header="X-CRM-Token")
    script = mock.bare.simulate_get("/docs/swagger-initializer.js").text
    assert 'schemes[name].name = "X-CRM-Token";' in script
    assert 'fetch("/docs/openapi.json")' in script


TRAVERSALS = [
    "/docs/static/..",
    "/docs/static/../../etc/passwd",
    "/docs/static/..%2F..%2Fetc%2Fpasswd",
    "/docs/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/docs/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/docs/static/swagger-ui.css/../../../../etc/passwd",
    "/docs/static/....//....//etc/passwd",
    "/docs/static/%252e%252e%252fetc%252fpasswd",
    "/docs/static/\\..\\..\\etc\\passwd",
    "/docs/static//etc/passwd",
    "/docs/../etc/passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused_in_process(mock, path):
    result = mock.bare.simulate_get(path)
    assert result.status_code in {401, 404}, path  # 401: normalized to outside /docs, so a key is needed
    assert "root:" not in result.text


def test_path_traversal_is_refused_over_a_real_socket(live):
    # http.client sends the path as written: no client-side normalization of the dot segments.
    for path in TRAVERSALS:
        reply = live.request("GET", path.replace("\\", "%5C"), key=False)
        assert reply.status in {401, 404}, (path, reply.status)
        assert b"root:" not in reply.body and reply.headers["content-type"] == "application/json"


def test_docs_are_neither_journaled_nor_bent_by_faults(make_mock):
    mock = make_mock(faults=("error-rate:rate=1", "ERROR-BODY-JSON", "AUTH-401-NOT-403"))
    assert mock.bare.simulate_get("/docs").status_code == 200
    assert mock.bare.simulate_get("/docs/openapi.json").status_code == 200
    missing = mock.bare.simulate_get("/docs/static/nope.js")
    assert missing.status_code == 404 and missing.json["error"] == "Not found"  # JSON despite the fault
    assert mock.journal() == []
    # Paths that only look like /docs are API paths: the key is checked.
    assert mock.bare.simulate_get("/docsx").status_code == 503  # the error-rate fault acts first


def test_headless_chromium_renders_the_operations(live, chromium, tmp_path):
    dom = chromium.dump_dom(f"{live.url}/docs", virtual_time_ms=15_000)
    assert "Unable to render this definition" not in dom
    for operation_id in ("createTask", "getTasksBatch", "completeTasksBatch", "listUsers"):
        assert operation_id in dom, operation_id
    assert "/tasks/batch" in dom
    assert re.search(r"http://127\.0\.0\.1:\d+ - this enginy-mock", dom)
    shot = chromium.screenshot(f"{live.url}/docs", tmp_path / "docs.png", virtual_time_ms=15_000)
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_spec_shows_as_openapi_3_0_in_the_browser_only(mock):
    script = mock.bare.simulate_get("/docs/swagger-initializer.js").text
    assert 'spec.openapi = "3.0.3";' in script
    assert json.loads(mock.bare.simulate_get("/docs/openapi.json").text)["openapi"] == load_spec()["openapi"]
