"""``GET /__admin/inspector``: a read-only HTML page of what the mock holds and what it saw.

The page shows the active faults and settings, the stored records by kind, and the journal newest
first: per exchange the time, method, path, status, duration and the "why this answer" line, with
the (already redacted) headers and bodies in a collapsible ``<details>``. It is one self-contained
document: inline CSS, no scripts, no external assets, every value HTML-escaped, and a
Content-Security-Policy that would block anything else.

Authentication (decided here, enforced by ``middleware.Authentication``): a browser cannot send
``X-Admin-Token`` on a plain navigation, so the page also takes ``?token=TOKEN`` once. It answers
that with ``303 See Other`` to the same page *without* the token, setting an HttpOnly,
SameSite=Strict cookie scoped to ``/__admin``, so the token leaves the address bar (and any
screenshot of it) at once, and reloads and the page's download links work without it. The cookie
holds an HMAC of the token, not the token, and is only good for the read-only pages (the
inspector and the journal downloads); every admin write still needs the header. The token itself
never appears in the page or its links.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import falcon

from mock_server.journal import JournalEntry
from mock_server.middleware import ADMIN_PREFIX, INSPECTOR_COOKIE, INSPECTOR_PATH, inspector_cookie_value
from mock_server.runtime import Runtime
from mock_server.storage import KINDS

__all__ = ["CONTENT_SECURITY_POLICY", "Inspector", "render_inspector"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:12px 20px}
header h1{font-size:18px;margin:0 0 4px}
header p{margin:2px 0;color:#d0d7de}
header a{color:#9ecbff}
main{padding:12px 20px}
h2{font-size:16px;margin:18px 0 8px}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{white-space:pre-wrap;word-break:break-all;background:#fff;border:1px solid #d0d7de;padding:6px;
margin:4px 0;max-height:320px;overflow:auto}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eaeef2;font-weight:600}
tr.detail td{border-bottom:2px solid #d0d7de;padding-top:0}
.status{font-weight:700}
.s2{color:#1a7f37}.s3{color:#0969da}.s4{color:#9a6700}.s5{color:#cf222e}.s0{color:#6e7781}
.why{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.fault{background:#fff8c5}
.chips span{display:inline-block;background:#ddf4ff;color:#0a3069;border:1px solid #54aeff;
border-radius:10px;padding:0 8px;margin:2px 4px 2px 0;font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:12px}
header .chips span.muted{background:none;border:none;color:#d0d7de}
.muted{color:#6e7781}
details summary{cursor:pointer;color:#0969da}
.kv{display:grid;grid-template-columns:1fr 1fr;gap:8px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pretty(text: str | None) -> str:
    """A body as it was, or indented when it is (untruncated) JSON."""
    if text is None:
        return "(no body)"
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to indent: shown as it came
        return text


def _headers(headers: Mapping[str, str]) -> str:
    if not headers:
        return "(none)"
    return "\n".join(f"{name}: {value}" for name, value in sorted(headers.items()))


def _status_class(status: int) -> str:
    return f"s{min(status // 100, 5)}" if status else "s0"


def _entry_rows(entry: JournalEntry, number: int) -> str:
    status = str(entry.status) if entry.status else "dropped"
    fault = " fault" if "fault " in entry.why else ""
    return (
        f'<tr class="entry" id="e{number}" data-method="{_e(entry.method)}" data-path="{_e(entry.path)}" '
        f'data-status="{entry.status}">'
        f'<td class="mono">{_e(entry.time)}</td>'
        f'<td class="mono">{_e(entry.method)}</td>'
        f'<td class="mono path">{_e(entry.path)}</td>'
        f'<td class="status {_status_class(entry.status)}">{_e(status)}</td>'
        f'<td class="why{fault}">{_e(entry.why)}</td>'
        f'<td class="mono">{entry.duration_ms:.1f}&nbsp;ms</td></tr>\n'
        f'<tr class="detail"><td colspan="6"><details><summary>headers and bodies</summary>'
        f'<div class="kv"><div><strong>Request headers</strong>'
        f"<pre>{_e(_headers(entry.request_headers))}</pre>"
        f"<strong>Request body</strong><pre>{_e(_pretty(entry.request_body))}</pre></div>"
        f"<div><strong>Response headers</strong><pre>{_e(_headers(entry.response_headers))}</pre>"
        f"<strong>Response body</strong><pre>{_e(_pretty(entry.response_body))}</pre></div></div>"
        f"</details></td></tr>\n"
    )


def _records_section(records: Mapping[str, list[dict[str, Any]]]) -> str:
    parts = ['<section id="records"><h2>Stored records</h2>']
    for kind, items in records.items():
        parts.append(
            f'<details class="kind" data-kind="{_e(kind)}" data-count="{len(items)}">'
            f"<summary>{_e(kind)} ({len(items)})</summary>"
        )
        if items:
            parts.append("<table><tr><th>id</th><th>record</th></tr>")
            for record in items:
                body = json.dumps(record, indent=2, ensure_ascii=False)
                parts.append(
                    f'<tr class="record"><td class="mono">{_e(record.get("id", ""))}</td>'
                    f"<td><pre>{_e(body)}</pre></td></tr>"
                )
            parts.append("</table>")
        parts.append("</details>")
    parts.append("</section>")
    return "".join(parts)


def render_inspector(
    *,
    entries: Iterable[JournalEntry],
    records: Mapping[str, list[dict[str, Any]]],
    faults: Iterable[str],
    fault_seed: int,
    settings: Mapping[str, object],
    generated_at: str,
) -> str:
    """The whole page. ``entries`` newest first. Every value is escaped here, nowhere else."""
    newest_first = list(entries)
    fault_chips = "".join(f"<span>{_e(spec)}</span>" for spec in faults) or '<span class="muted">none</span>'
    setting_text = " · ".join(f"{_e(name)}: <code>{_e(value)}</code>" for name, value in settings.items())
    rows = "".join(_entry_rows(entry, len(newest_first) - index) for index, entry in enumerate(newest_first))
    journal = (
        '<table id="journal"><thead><tr><th>time</th><th>method</th><th>path</th><th>status</th>'
        f"<th>why this answer</th><th>took</th></tr></thead><tbody>{rows}</tbody></table>"
        if newest_first
        else '<p class="muted" id="journal-empty">No requests yet.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>enginy-mock inspector</title>
<style>{_CSS}</style></head>
<body>
<header><h1>enginy-mock inspector</h1>
<p>Read-only, as of <span class="mono" id="generated-at">{_e(generated_at)}</span>; reload for news.
Download the journal, oldest first: <a href="{ADMIN_PREFIX}/journal.har" download>HAR</a> ·
<a href="{ADMIN_PREFIX}/journal.jsonl" download>JSON lines</a></p>
<p class="chips" id="faults">Faults (seed {fault_seed}): {fault_chips}</p>
<p id="settings">{setting_text}</p></header>
<main>
<section id="requests"><h2>Requests, newest first ({len(newest_first)})</h2>
<p class="muted">API keys and the admin token show as [REDACTED]; long bodies are cut.</p>
{journal}</section>
{_records_section(records)}
</main></body></html>
"""


class Inspector:
    """``GET /__admin/inspector[?limit=N]``; ``?token=`` is traded for the cookie (see the module doc)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.cache_control = ["no-store"]
        resp.set_header("Referrer-Policy", "no-referrer")
        if getattr(req.context, "admin_auth", None) == "query":
            resp.set_cookie(
                INSPECTOR_COOKIE,
                inspector_cookie_value(self._rt.config.admin_token),
                path=ADMIN_PREFIX,
                secure=False,  # the mock serves plain HTTP (usually on localhost)
                http_only=True,
                same_site="Strict",
            )
            rest = [(name, value) for name, value in req.params.items() if name != "token"]
            resp.status = falcon.HTTP_303
            resp.location = INSPECTOR_PATH + (f"?{urlencode(rest, doseq=True)}" if rest else "")
            return
        rt = self._rt
        limit = req.get_param_as_int("limit", min_value=1)
        config = rt.config
        resp.content_type = falcon.MEDIA_HTML
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("X-Frame-Options", "DENY")
        resp.text = render_inspector(
            entries=rt.journal.entries(limit),
            records={kind: rt.store.list(kind) for kind in KINDS},
            faults=[str(selection) for selection in rt.faults.selections],
            fault_seed=rt.faults.seed,
            settings={
                "key header": config.api_key_header,
                "GET /users": "on" if config.users_enabled else "off (404)",
                "body limit": f"{config.max_body_bytes} bytes",
                "journal": f"last {config.journal_size} requests",
            },
            generated_at=rt.now(),
        )
