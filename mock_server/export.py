"""The journal as files other tools read: HAR 1.2 (browser devtools, HAR viewers) and JSON lines.

Both list the exchanges **oldest first**, the order to replay them in (``GET /__admin/journal``
answers newest first, for reading). Both carry exactly what the journal holds, so every secret is
already ``[REDACTED]`` and bodies longer than the journal's limit are cut (``... [N bytes in all]``).

* JSON lines: one ``JournalEntry.to_json()`` object per line, the same shape as the entries of
  ``GET /__admin/journal``.
* HAR: one ``log`` with an entry per exchange. Where the journal has no answer to a HAR field the
  HAR spec's "unknown" value is used (``-1`` for sizes, ``HTTP/1.1`` as the version). Custom fields,
  allowed by HAR with a leading underscore: ``_why`` (the journal's one line saying why the mock
  answered so) on every entry, and ``_truncated`` on a ``postData``/``content`` whose text was cut.
  A connection the mock dropped on purpose has ``response.status`` 0, as browsers record it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from http import HTTPStatus
from importlib import metadata
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mock_server.journal import JournalEntry
from mock_server.runtime import format_timestamp

__all__ = ["HAR_VERSION", "MOCK_NAME", "journal_har", "journal_jsonl", "mock_version"]

HAR_VERSION = "1.2"
MOCK_NAME = "enginy-mock"
_HTTP_VERSION = "HTTP/1.1"  # waitress speaks HTTP/1.x; the journal does not record which minor version


def mock_version() -> str:
    """The installed distribution's version (``0+unknown`` when run from a bare checkout)."""
    try:
        return metadata.version("enginy-crm-contract")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def journal_jsonl(entries: Iterable[JournalEntry]) -> bytes:
    """One JSON object per line, in the order given (pass them oldest first)."""
    # ensure_ascii: a path may hold lone surrogates, which UTF-8 cannot encode but \\u escapes can.
    return b"".join(json.dumps(entry.to_json()).encode("ascii") + b"\n" for entry in entries)


def _header_list(headers: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in headers.items()]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _is_cut(text: str, size: int | None) -> bool:
    return size is not None and text.endswith(f"... [{size} bytes in all]")


def _started(entry: JournalEntry) -> str:
    # The journal stamps an entry when the answer was ready; HAR wants the moment the request began.
    try:
        answered = datetime.fromisoformat(entry.time)
    except ValueError:
        return entry.time
    return format_timestamp(answered - timedelta(milliseconds=entry.duration_ms))


def _request(entry: JournalEntry, base_url: str) -> dict[str, Any]:
    request: dict[str, Any] = {
        "method": entry.method,
        "url": base_url + entry.path,
        "httpVersion": _HTTP_VERSION,
        "cookies": [],
        "headers": _header_list(entry.request_headers),
        "queryString": [
            {"name": name, "value": value}
            for name, value in parse_qsl(urlsplit(entry.path).query, keep_blank_values=True)
        ],
        "headersSize": -1,
        "bodySize": entry.request_bytes if entry.request_bytes is not None else 0,
    }
    if entry.request_body is not None:
        post_data: dict[str, Any] = {
            "mimeType": _header(entry.request_headers, "Content-Type") or "",
            "text": entry.request_body,  # HAR: text and params are mutually exclusive
        }
        if _is_cut(entry.request_body, entry.request_bytes):
            post_data["_truncated"] = True
        request["postData"] = post_data
    return request


def _response(entry: JournalEntry) -> dict[str, Any]:
    text = entry.response_body or ""
    content: dict[str, Any] = {
        "size": entry.response_bytes or 0,
        "mimeType": _header(entry.response_headers, "Content-Type") or "",
        "text": text,
    }
    if _is_cut(text, entry.response_bytes):
        content["_truncated"] = True
    try:
        status_text = HTTPStatus(entry.status).phrase
    except ValueError:
        status_text = ""  # 0: no answer at all
    return {
        "status": entry.status,
        "statusText": status_text,
        "httpVersion": _HTTP_VERSION,
        "cookies": [],
        "headers": _header_list(entry.response_headers),
        "content": content,
        "redirectURL": _header(entry.response_headers, "Location") or "",
        "headersSize": -1,
        "bodySize": entry.response_bytes if entry.response_bytes is not None else (0 if entry.status else -1),
    }


def _har_entry(entry: JournalEntry, base_url: str) -> dict[str, Any]:
    return {
        "startedDateTime": _started(entry),
        "time": entry.duration_ms,
        "request": _request(entry, base_url),
        "response": _response(entry),
        "cache": {},
        # The mock only knows the whole handling time; it is all "wait" (send and receive are local).
        "timings": {"send": 0, "wait": entry.duration_ms, "receive": 0},
        "_why": entry.why,
    }


def journal_har(entries: Sequence[JournalEntry], *, base_url: str) -> dict[str, Any]:
    """A HAR 1.2 document of these exchanges, in the order given (pass them oldest first).

    ``base_url`` (``http://host:port``, no trailing slash) makes the journal's paths absolute URLs.
    """
    return {
        "log": {
            "version": HAR_VERSION,
            "creator": {"name": MOCK_NAME, "version": mock_version()},
            "comment": "Exchanges oldest first; API keys and the admin token are [REDACTED]; "
            "long bodies are cut as the journal keeps them.",
            "entries": [_har_entry(entry, base_url.rstrip("/")) for entry in entries],
        }
    }
