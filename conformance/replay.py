"""enginy-conformance replay: re-send a recorded session to a server and judge each answer on its own.

    read_recording(FILE) → Recording (Steps) → replay(recording, client) → ReplayOutcome
        → step lines and a summary (`step_line`, `summary_lines`), `to_json`, or `to_run_report` for the
          report writers

Recordings, detected by content (never by file name):

* HAR 1.2 (a browser's devtools, a proxy, or the mock's ``GET /__admin/journal.har``): every
  ``log.entries[].request`` (method, url, headers, postData.text). When the file holds requests to
  several origins, the one with the most requests the contract knows is replayed; the others are left
  out and said so. A base path common to the requests (``/enginy`` in ``https://crm.example.com/enginy
  /tasks``) is found from the spec's paths and dropped, since ``--base-url`` says where the API lives now.
* The mock's journal: ``GET /__admin/journal`` (``{"entries": [...]}``, newest first), a bare array of
  its entries, or ``GET /__admin/journal.jsonl`` (one entry per line, oldest first).
* A ``report.json`` of ``enginy-conformance run``: the exchanges of the failing and warning evidence
  only (what needs reproducing), each once, in report order.

What is re-sent, and what never is:

* The key given now (``--api-key``/``ENGINY_API_KEY``, under ``--api-key-header``) and nothing recorded
  in its place: recorded key headers, ``Authorization``, cookies and any header or query parameter whose
  name smells of a credential are dropped, as are values recorded as ``[REDACTED]`` or ``[Filtered]``.
  A request whose body or URL still holds such a placeholder, or whose body the recorder cut short, is
  listed but not sent: it could only be re-sent as a different request.
* A request recorded *without* the key header is an authentication probe, and is replayed without the
  key (and judged by AUTH-MISSING-KEY); this is only inferred when the recording shows the key header
  on other requests, or when it names it (report.json).
* Hop-by-hop headers (Connection, Transfer-Encoding, ...), Host and Content-Length are left to the HTTP
  stack; Content-Type, Accept and User-Agent are the suite's own (what Enginy sends). Other recorded
  headers are re-sent as they are.
* Everything goes through the suite's one HTTP client (`conformance.client.Client`), so its timeouts,
  body cap, refusal to follow redirects and redaction hold. `Client.send` takes no extra headers, so the
  recorded ones travel as the session's default headers, which requests merges under the client's own.
* Ids: when a request created something (POST /tasks, /activities, /contacts, /companies and the
  syncs) and both the recording and the server under test answered with its id, later requests get
  the new id in their path and JSON body in place of the recorded one, so that a session's reads and
  updates reach what the replay created. ``remap_ids=False`` (``--keep-ids``) sends ids as recorded.

Each answer is judged by `conformance.judges` (the rules one exchange can show). A request for a
path the spec does not document is sent and reported as "not in the contract", never judged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import requests

from conformance.checks._spec import SpecSchemas
from conformance.client import Client, Reply
from conformance.errors import ServerUnreachable, TransportError, UsageError
from conformance.judgements import (
    Judged,
    Judgement,
    State,
    broken_rule_lines,
    exchange_line,
    judge_reply,
    run_report,
    shown_path,
    tally_phrase,
)
from conformance.judges import NOT_JSON_BODY, operation_matcher, parse_body
from conformance.redaction import PLACEHOLDERS, looks_secret
from conformance.results import Evidence, Exchange, RunReport
from enginy_spec import Catalogue, load_catalogue

__all__ = [
    "FORMAT",
    "VERSION",
    "Recording",
    "RecordingKind",
    "ReplayOutcome",
    "Step",
    "StepResult",
    "describe_steps",
    "dry_run_json",
    "lines_of",
    "parse_delay_ms",
    "read_recording",
    "replay",
    "require_steps",
    "step_line",
    "summary_lines",
    "to_json",
    "to_run_report",
]

FORMAT: Final = "enginy-conformance-replay"
VERSION: Final = 1
RecordingKind = Literal["har", "journal", "report"]
Out = Callable[[str], None]

MAX_RECORDING_BYTES: Final = 256 * 1024 * 1024
MAX_DELAY_MS: Final = 60_000
DEFAULT_KEY_HEADER: Final = "X-API-Key"
EXPECTED: Final = (
    "a HAR 1.2 file (log.entries), the mock's journal (GET /__admin/journal as JSON, or journal.jsonl) "
    "or a report.json written by 'enginy-conformance run'"
)

# Left to the HTTP stack (RFC 9110 §7.6.1 hop-by-hop, and what requests computes itself).
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
        "expect",
    }
)
# What the suite's client always sets itself: Enginy's own headers.
_CLIENT_OWNED: Final = frozenset({"content-type", "accept", "user-agent"})
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# How recorders mark a body they cut: the mock's journal, the suite's client, the Schemathesis recording.
_CUT_MARKERS: Final = (
    re.compile(r"\.\.\. \[\d+ bytes in all\]$"),
    re.compile(r"… \[\d+ more characters not shown\]$"),
    re.compile(r"… \[truncated: \d+ characters in all\]"),
    re.compile(r"… \[answer larger than \d+ bytes"),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Statuses that say a gateway answered because the server behind it did not.
_GATEWAY: Final = frozenset({502, 503, 504})


# --- the recording ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One recorded request, ready to be re-sent.

    `path` is the path and query relative to the recorded base URL, as recorded (percent-encoded);
    `headers` are the recorded headers worth re-sending (no credentials, no hop-by-hop headers);
    `sent_key` is False for a request recorded without the key header; `not_sendable` says why the
    request cannot be re-sent as recorded (then it is listed, never sent).
    """

    index: int
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    sent_key: bool = True
    recorded_status: int | None = None
    recorded_body: str | None = None
    note: str = ""
    not_sendable: str | None = None


@dataclass(frozen=True, slots=True)
class Recording:
    """The steps of a recording file, oldest first, and what reading it left out."""

    source: Path
    kind: RecordingKind
    steps: tuple[Step, ...]
    base: str = ""  # the recorded origin and base path the steps are relative to, when known
    notes: tuple[str, ...] = ()
    # For a report: the rules it found broken (failed or warning), in its order. Replay judges one
    # exchange at a time, so a rule that needs a sequence is "not judged" here, never "passed".
    broken_rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Raw:
    """A request as a reader found it, before it becomes a Step."""

    method: str
    target: str  # an absolute URL (HAR, report) or a path (journal)
    headers: tuple[tuple[str, str], ...]
    body: str | None
    status: int | None = None
    response_body: str | None = None
    note: str = ""
    cut: bool = False
    not_sendable: str | None = None


def require_steps(recording: Recording) -> None:
    """UsageError when the recording holds nothing to send (a replay must rest on something sent)."""
    if any(step.not_sendable is None for step in recording.steps):
        return
    if recording.kind == "report":
        why = "it lists no exchange of a failed or warning rule, and those are all a report's replay sends"
    elif recording.steps:
        why = "none of its requests can be re-sent as recorded (see --dry-run)"
    else:
        why = "it lists no request" + (f" ({' '.join(recording.notes)})" if recording.notes else "")
    raise UsageError(f"The recording {recording.source} holds nothing to replay: {why}.")


def read_recording(path: Path, *, api_key_header: str = DEFAULT_KEY_HEADER) -> Recording:
    """Read a recording file and turn it into steps; UsageError (one sentence) when it cannot be read.

    `api_key_header` is the header the key goes under now; a recorded header of that name (or X-API-Key)
    is a recorded key, never re-sent.
    """
    data = _load(path)
    kind, raws, key_header, base, notes = _detect(path, data)
    key_names = {api_key_header.lower(), DEFAULT_KEY_HEADER.lower()}
    if key_header:
        key_names.add(key_header.lower())
    steps, more = _steps(raws, key_names, trust_missing_key=kind == "report")
    broken: tuple[str, ...] = ()
    if kind == "report":
        broken = tuple(
            str(result["rule"])
            for result in data["results"]
            if isinstance(result, dict) and result.get("outcome") in ("failed", "warning")
        )
    return Recording(
        source=path, kind=kind, steps=steps, base=base, notes=tuple(notes + more), broken_rules=broken
    )


def _load(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_RECORDING_BYTES:
            raise UsageError(
                f"The recording {path} is {size // (1024 * 1024)} MiB, more than replay reads "
                f"({MAX_RECORDING_BYTES // (1024 * 1024)} MiB); cut it down to the requests to replay."
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"The recording {path} does not exist; give the path of {EXPECTED}.") from None
    except IsADirectoryError:
        raise UsageError(f"The recording {path} is a directory; give the path of {EXPECTED}.") from None
    except OSError as ex:
        raise UsageError(f"The recording {path} cannot be read ({ex.strerror}); check the path.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"The recording {path} is not UTF-8 text; replay reads {EXPECTED}.") from None
    if not text.strip():
        raise UsageError(f"The recording {path} is empty; replay reads {EXPECTED}.")
    try:
        return json.loads(text)
    except ValueError:
        pass
    lines: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise UsageError(
                f"The recording {path} is neither JSON nor JSON lines (line {number} does not parse); "
                f"replay reads {EXPECTED}."
            ) from None
    return _JsonLines(lines)


class _JsonLines(list[Any]):
    """Values read one per line (the journal's JSON lines export), oldest first."""


def _detect(path: Path, data: Any) -> tuple[RecordingKind, list[_Raw], str | None, str, list[str]]:
    """(kind, raw requests oldest first, the recording's key header if known, base URL, notes)."""
    if isinstance(data, dict) and isinstance(data.get("log"), dict) and "entries" in data["log"]:
        raws, base, notes = _read_har(path, data["log"]["entries"])
        return "har", raws, None, base, notes
    if isinstance(data, dict) and data.get("format") == "enginy-conformance-report":
        raws, key_header, base = _read_report(path, data)
        return "report", raws, key_header, base, []
    if isinstance(data, dict) and isinstance(data.get("entries"), list):
        # GET /__admin/journal answers newest first.
        return "journal", _read_journal(path, list(reversed(data["entries"]))), None, "", []
    if isinstance(data, _JsonLines) or (isinstance(data, list) and all(_is_entry(e) for e in data)):
        entries = list(data)
        if not isinstance(data, _JsonLines) and _newest_first(entries):
            entries.reverse()  # e.g. `jq .entries` of GET /__admin/journal
        return "journal", _read_journal(path, entries), None, "", []
    if _is_entry(data):
        return "journal", _read_journal(path, [data]), None, "", []
    raise UsageError(f"The recording {path} is JSON but none of what replay reads: {EXPECTED}.")


def _is_entry(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("method"), str)
        and isinstance(value.get("path"), str)
    )


def _newest_first(entries: list[Any]) -> bool:
    times = [e.get("time") for e in entries if isinstance(e, dict)]
    first, last = (times[0], times[-1]) if len(times) >= 2 else (None, None)
    return isinstance(first, str) and isinstance(last, str) and first > last


def _object(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (for optional parts of a recording)."""
    return value if isinstance(value, dict) else {}


def _bad(path: Path, where: str, what: str) -> UsageError:
    return UsageError(f"The recording {path} has a malformed {where}: {what}; replay reads {EXPECTED}.")


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _is_cut(text: str | None) -> bool:
    return text is not None and any(marker.search(text) for marker in _CUT_MARKERS)


# --- HAR ------------------------------------------------------------------------------------------------


def _read_har(path: Path, entries: Any) -> tuple[list[_Raw], str, list[str]]:
    if not isinstance(entries, list):
        raise _bad(path, "HAR log", "log.entries is not an array")
    raws: list[_Raw] = []
    origins: list[str] = []
    foreign: Counter[str] = Counter()
    for number, entry in enumerate(entries):
        where = f"HAR entry {number}"
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict):
            raise _bad(path, where, "it has no request object")
        method, url = request.get("method"), request.get("url")
        if not isinstance(method, str) or not isinstance(url, str):
            raise _bad(path, where, "request.method and request.url must be strings")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            foreign[parts.scheme or url[:20]] += 1
            continue
        headers = request.get("headers", [])
        if not isinstance(headers, list) or not all(
            isinstance(h, dict) and isinstance(h.get("name"), str) and isinstance(h.get("value"), str)
            for h in headers
        ):
            raise _bad(path, where, "request.headers must be an array of {name, value}")
        body, cut, not_sendable = _har_body(request)
        response = _object(entry.get("response"))
        status = response.get("status")
        content = _object(response.get("content"))
        response_body = _text_or_none(content.get("text"))
        if response_body is not None and content.get("encoding") == "base64":
            try:
                response_body = base64.b64decode(response_body).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                response_body = None
        if content.get("_truncated"):
            response_body = None
        why = entry.get("_why")
        raws.append(
            _Raw(
                method=method,
                target=url,
                headers=tuple((h["name"], h["value"]) for h in headers),
                body=body,
                status=status if isinstance(status, int) and status > 0 else None,
                response_body=response_body,
                note=why if isinstance(why, str) else "",
                cut=cut,
                not_sendable=not_sendable,
            )
        )
        origins.append(_origin(url))
    notes: list[str] = []
    if foreign:
        listed = ", ".join(f"{count} {scheme}:" for scheme, count in foreign.most_common())
        notes.append(
            f"{sum(foreign.values())} entries that are not http(s) requests were left out ({listed})."
        )
    return _one_origin(raws, origins, notes)


def _har_body(request: Mapping[str, Any]) -> tuple[str | None, bool, str | None]:
    """(body text, whether the recorder cut it, why it cannot be re-sent)."""
    post = request.get("postData")
    size = request.get("bodySize")
    if not isinstance(post, dict):
        if isinstance(size, int) and size > 0:
            return None, False, "the HAR did not capture the request body"
        return None, False, None
    text = post.get("text")
    if isinstance(text, str):
        return text, bool(post.get("_truncated")), None
    if post.get("params"):
        return None, False, "the HAR holds the body as form parameters only, not as text"
    if isinstance(size, int) and size > 0:
        return None, False, "the HAR did not capture the request body"
    return None, False, None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}" + (f":{parts.port}" if parts.port else "")


def _one_origin(raws: list[_Raw], origins: list[str], notes: list[str]) -> tuple[list[_Raw], str, list[str]]:
    """Keep the origin with the most requests the contract knows (then the most requests)."""
    if not raws:
        return [], "", notes
    matcher = _matcher()
    by_origin: dict[str, list[_Raw]] = {}
    for raw, origin in zip(raws, origins, strict=True):
        by_origin.setdefault(origin, []).append(raw)

    def score(origin: str) -> tuple[int, int]:
        items = [(raw.method, _path_of(raw.target)) for raw in by_origin[origin]]
        _, matched = _base_path(items, matcher)
        return matched, len(items)

    chosen = max(by_origin, key=score)
    left = {origin: len(items) for origin, items in by_origin.items() if origin != chosen}
    if left:
        listed = ", ".join(f"{origin} ({count})" for origin, count in sorted(left.items()))
        total = sum(left.values())
        notes.append(
            f"Only the requests to {chosen} are replayed; {_plural(total, 'request')} to other origins "
            f"{'was' if total == 1 else 'were'} left out: {listed}."
        )
    kept = by_origin[chosen]
    prefix, _ = _base_path([(raw.method, _path_of(raw.target)) for raw in kept], matcher)
    if prefix:
        notes.append(f"The recorded base path {prefix} is dropped: --base-url says where the API lives now.")
    relative = [replace(raw, target=_strip_prefix(_path_of(raw.target), prefix)) for raw in kept]
    return relative, chosen + prefix, notes


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path or "/"
    return path + (f"?{parts.query}" if parts.query else "")


def _strip_prefix(path: str, prefix: str) -> str:
    if prefix and (path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?")):
        rest = path[len(prefix) :]
        return rest if rest.startswith("/") else "/" + rest
    return path


def _base_path(
    items: Iterable[tuple[str, str]], matcher: Callable[[str, str], str | None]
) -> tuple[str, int]:
    """The base path most requests share before a path of the spec, and how many requests it explains."""
    counts: Counter[str] = Counter()
    for method, path in items:
        segments = path.split("?", 1)[0].split("/")
        for cut in range(1, len(segments)):
            prefix = "/".join(segments[:cut])
            if matcher(method, "/" + "/".join(segments[cut:])) is not None:
                counts[prefix] += 1
    if not counts:
        return "", 0
    best = max(counts.values())
    prefix = min((p for p, n in counts.items() if n == best), key=len)
    return prefix, best


# --- the mock's journal ---------------------------------------------------------------------------------


def _read_journal(path: Path, entries: list[Any]) -> list[_Raw]:
    raws: list[_Raw] = []
    for number, entry in enumerate(entries):
        where = f"journal entry {number}"
        if not _is_entry(entry):
            raise _bad(path, where, "each entry needs string fields method and path")
        target = entry["path"]
        if not target.startswith("/"):
            raise _bad(path, where, f"path {target[:60]!r} does not start with /")
        headers = entry.get("request_headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise _bad(path, where, "request_headers must be an object of strings")
        body = entry.get("request_body")
        if body is not None and not isinstance(body, str):
            raise _bad(path, where, "request_body must be a string or null")
        status = entry.get("status")
        why = entry.get("why")
        raws.append(
            _Raw(
                method=entry["method"],
                target=target,
                headers=tuple((str(k), v) for k, v in headers.items()),
                body=body,
                status=status if isinstance(status, int) and status > 0 else None,
                response_body=_text_or_none(entry.get("response_body")),
                note=why if isinstance(why, str) else "",
            )
        )
    return raws


# --- report.json ----------------------------------------------------------------------------------------


def _read_report(path: Path, data: Mapping[str, Any]) -> tuple[list[_Raw], str | None, str]:
    target = data.get("target")
    results = data.get("results")
    if not isinstance(target, str) or not isinstance(results, list):
        raise _bad(path, "report", "it needs a target string and a results array")
    key_header = _object(data.get("settings")).get("api_key_header")
    base = target.rstrip("/")
    raws: list[_Raw] = []
    seen: set[str] = set()
    for result in results:
        if not isinstance(result, dict) or result.get("outcome") not in ("failed", "warning"):
            continue
        for evidence in result.get("evidence") or []:
            if not isinstance(evidence, dict) or evidence.get("outcome") not in ("failed", "warning"):
                continue
            for exchange in evidence.get("exchanges") or []:
                raw = _report_exchange(path, result.get("rule"), exchange, base)
                identity = json.dumps(exchange, sort_keys=True, default=str)
                if raw is not None and identity not in seen:
                    seen.add(identity)
                    raws.append(raw)
    return raws, key_header if isinstance(key_header, str) else None, base


def _report_exchange(path: Path, rule: Any, exchange: Any, base: str) -> _Raw | None:
    where = f"exchange of {rule}"
    request = exchange.get("request") if isinstance(exchange, dict) else None
    if not isinstance(request, dict):
        raise _bad(path, where, "it has no request object")
    method, url = request.get("method"), request.get("url")
    headers = request.get("headers") or {}
    if not isinstance(method, str) or not isinstance(url, str) or not isinstance(headers, dict):
        raise _bad(path, where, "request.method, request.url and request.headers are required")
    if url == base or url.startswith(base + "/") or url.startswith(base + "?"):
        target = url[len(base) :] or "/"
    else:
        target = _path_of(url)
    if not target.startswith("/"):
        target = "/" + target
    response = _object(exchange.get("response"))
    status = response.get("status")
    body = _text_or_none(request.get("body"))
    return _Raw(
        method=method,
        target=target,
        headers=tuple((str(k), str(v)) for k, v in headers.items()),
        body=body,
        status=status if isinstance(status, int) and status > 0 else None,
        response_body=_text_or_none(response.get("body")),
        note=f"evidence for {rule}" if isinstance(rule, str) else "",
    )


# --- raw requests → steps -------------------------------------------------------------------------------


def _steps(
    raws: list[_Raw], key_names: set[str], *, trust_missing_key: bool
) -> tuple[tuple[Step, ...], list[str]]:
    carries_key = [any(name.lower() in key_names for name, _ in raw.headers) for raw in raws]
    # Without a key header anywhere, the recording's key header is some other name: every request had it.
    trust = trust_missing_key or any(carries_key)
    notes: list[str] = []
    if raws and not trust:
        notes.append(
            f"No recorded request carries the key header ({', '.join(sorted(key_names))}), so none is taken "
            "for an authentication probe: every request is replayed with the key."
        )
    steps = [
        _step(index, raw, key_names, sent_key=carried or not trust)
        for index, (raw, carried) in enumerate(zip(raws, carries_key, strict=True), start=1)
    ]
    return tuple(steps), notes


def _step(index: int, raw: _Raw, key_names: set[str], *, sent_key: bool) -> Step:
    method = raw.method.upper()
    path, dropped_query = _clean_query(raw.target)
    headers = {name: value for name, value in raw.headers if _resendable(name, value, key_names)}
    response_body = None if _is_cut(raw.response_body) else raw.response_body
    problem = raw.not_sendable
    if problem is None and not _TOKEN.match(method):
        problem = f"{method[:20]!r} is not an HTTP method"
    if problem is None and (raw.cut or _is_cut(raw.body)):
        problem = "the recorder cut the body short, so it could only be re-sent as a different request"
    if problem is None and raw.body is not None and any(p in raw.body for p in PLACEHOLDERS):
        problem = "the recorded body holds a redacted value ([REDACTED]), which is never re-sent"
    if problem is None and any(p in unquote(path) for p in PLACEHOLDERS):
        problem = "the recorded URL holds a redacted value ([REDACTED]), which is never re-sent"
    if problem is None and (_CONTROL.search(path) or " " in path):
        problem = "the recorded URL holds spaces or control characters that cannot be sent as they are"
    note = raw.note
    if dropped_query:
        note = (note + "; " if note else "") + f"query parameters left out: {', '.join(dropped_query)}"
    return Step(
        index=index,
        method=method,
        path=path,
        headers=headers,
        body=raw.body if raw.body != "" else None,
        sent_key=sent_key,
        recorded_status=raw.status,
        recorded_body=response_body,
        note=note,
        not_sendable=problem,
    )


def _resendable(name: str, value: str, key_names: set[str]) -> bool:
    lowered = name.lower()
    if lowered.startswith(":") or lowered in _HOP_BY_HOP or lowered in _CLIENT_OWNED:
        return False
    if lowered in key_names or looks_secret(name) or not _TOKEN.match(name):
        return False
    return not any(p in value for p in PLACEHOLDERS) and not any(ch in value for ch in "\r\n\x00")


def _clean_query(target: str) -> tuple[str, list[str]]:
    """The path with credential-looking or redacted query parameters removed, and their names."""
    path, sep, query = target.partition("?")
    if not sep:
        return target, []
    pairs = parse_qsl(query, keep_blank_values=True)
    dropped = [name for name, value in pairs if looks_secret(name) or any(p in value for p in PLACEHOLDERS)]
    if not dropped:
        return target, []
    kept = [(name, value) for name, value in pairs if name not in dropped]
    return path + (f"?{urlencode(kept)}" if kept else ""), dropped


# --- replaying --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepResult:
    """A step as it was replayed (`step`, ids remapped) and what came back and the rules say (`judged`)."""

    step: Step
    judged: Judged
    remapped: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    recording: Recording
    target: str
    results: tuple[StepResult, ...]
    started_at: str
    duration_s: float

    @property
    def stream(self) -> tuple[Judged, ...]:
        return tuple(result.judged for result in self.results)

    def count(self, state: State) -> int:
        return sum(1 for judged in self.stream if judged.state == state)

    @property
    def with_must_violations(self) -> int:
        return sum(1 for judged in self.stream if judged.broken)

    @property
    def warnings(self) -> int:
        return sum(len(judged.warnings) for judged in self.stream)

    @property
    def not_judged(self) -> tuple[str, ...]:
        """Rules the report found broken that no replayed exchange judged (they need a sequence)."""
        judged = {j.rule_id for result in self.stream for j in result.judgements}
        return tuple(rule for rule in self.recording.broken_rules if rule not in judged)

    @property
    def verdict(self) -> Literal["passed", "failed", "incomplete"]:
        if self.with_must_violations:
            return "failed"
        catalogue = load_catalogue()
        if any(rule in catalogue and catalogue.get(rule).level == "MUST" for rule in self.not_judged):
            return "incomplete"
        return "passed"

    @property
    def problem(self) -> str | None:
        """Why the replay could not judge the server (exit 2) although it answered, else None."""
        judged = [r for r in self.stream if r.state in ("judged", "key-refused")]
        if judged and all(r.status in _GATEWAY for r in judged):
            return (
                f"Every request was answered {judged[0].status} or another gateway error: a proxy or gateway "
                "answered, not the server behind it; start the server (or fix the proxy) and replay again."
            )
        if self.verdict == "failed":
            return None
        keyed = [r for r in judged if r.sent_key]
        if keyed and all(r.state == "key-refused" for r in keyed):
            status = keyed[0].status
            return (
                f"The server refused the key on every request ({status}); check the key (ENGINY_API_KEY or "
                "--api-key) and the header it goes under (--api-key-header, default X-API-Key)."
            )
        unanswered = self.count("no-answer")
        if unanswered:
            first = next(r for r in self.stream if r.state == "no-answer")
            return (
                f"{unanswered} of {len(self.results)} requests got no usable answer (first: "
                f"#{first.index}: {first.note}); nothing else broke a MUST rule, but the replay is "
                "incomplete."
            )
        if not judged:
            return (
                "No replayed request reached an operation of the contract, so nothing was judged; check "
                "that the recording holds requests to the Enginy API and that --base-url is the API's root."
            )
        return None

    @property
    def exit_code(self) -> int:
        if self.problem is not None:
            return 2
        return {"failed": 1, "incomplete": 3, "passed": 0}[self.verdict]


@functools.cache
def _matcher() -> Callable[[str, str], str | None]:
    return operation_matcher(SpecSchemas().operations)


class _IdMap:
    """Ids the recording's server gave, mapped to the ids the server under test gave for the same request."""

    _CREATES: Final = frozenset({"createTask", "createActivity"})
    _MAPS: Final = frozenset({"createContacts", "createCompanies", "syncContacts", "syncCompanies"})

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}

    def learn(self, step: Step, operation: str | None, reply: Reply) -> None:
        if not reply.ok or step.recorded_body is None:
            return
        recorded = parse_body(step.recorded_body)
        if operation in self._CREATES:
            if isinstance(recorded, dict) and isinstance(reply.json, dict):
                self._add(recorded.get("id"), reply.json.get("id"))
        elif operation in self._MAPS:
            now = {item.get("externalId"): item.get("crmId") for item in _results(reply.json)}
            for item in _results(recorded):
                external = item.get("externalId")
                if isinstance(external, str):
                    self._add(item.get("crmId"), now.get(external))

    def _add(self, old: Any, new: Any) -> None:
        if isinstance(old, str) and isinstance(new, str) and old and new and old != new:
            self._ids[old] = new

    def apply(self, step: Step) -> tuple[Step, dict[str, str]]:
        """The step with every recorded id replaced (in path segments and JSON string values)."""
        if not self._ids:
            return step, {}
        used: dict[str, str] = {}
        path, sep, query = step.path.partition("?")
        segments = path.split("/")
        for number, segment in enumerate(segments):
            new = self._ids.get(unquote(segment))
            if new is not None:
                used[unquote(segment)] = new
                segments[number] = quote(new, safe="")
        body = step.body
        parsed = parse_body(body)
        if parsed is not None and parsed is not NOT_JSON_BODY:
            swapped = self._swap(parsed, used)
            if swapped != parsed:
                body = json.dumps(swapped, ensure_ascii=False)
        if not used:
            return step, {}
        return replace(step, path="/".join(segments) + sep + query, body=body), used

    def _swap(self, value: Any, used: dict[str, str]) -> Any:
        if isinstance(value, str) and value in self._ids:
            used[value] = self._ids[value]
            return self._ids[value]
        if isinstance(value, list):
            return [self._swap(item, used) for item in value]
        if isinstance(value, dict):
            return {key: self._swap(item, used) for key, item in value.items()}
        return value


def _results(body: Any) -> list[dict[str, Any]]:
    items = body.get("results") if isinstance(body, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def replay(
    recording: Recording,
    client: Client,
    *,
    out: Out | None = None,
    delay_s: float = 0.0,
    remap_ids: bool = True,
    catalogue: Catalogue | None = None,
    schemas: SpecSchemas | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayOutcome:
    """Re-send every step through `client` (its base URL is the target), judge each answer, return all.

    `out` receives one line per step as it is replayed. Raises ServerUnreachable when the server
    cannot be connected to at all (nothing further can be replayed); a request that reached the server
    and got no usable answer is a step in state "no-answer", and the replay goes on.
    """
    catalogue = catalogue if catalogue is not None else load_catalogue()
    schemas = schemas if schemas is not None else SpecSchemas()
    matcher = _matcher()
    ids = _IdMap()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    results: list[StepResult] = []
    sent_any = False
    for original in recording.steps:
        step, used = ids.apply(original) if remap_ids else (original, {})
        operation = matcher(step.method, step.path)
        if step.not_sendable is not None:
            judged = _unanswered(step, operation, "not-sent", note=step.not_sendable)
        else:
            if sent_any and delay_s > 0:
                sleep(delay_s)
            sent_any = True
            judged = _send(client, step, operation, schemas, catalogue)
            if judged.exchange is not None and remap_ids:
                reply = client.log[-1] if client.log else None
                if reply is not None and reply.exchange is judged.exchange:
                    ids.learn(step, operation, reply)
        result = StepResult(step=step, judged=judged, remapped=used)
        results.append(result)
        if out is not None:
            out(step_line(result))
    return ReplayOutcome(
        recording=recording,
        target=client.base_url,
        results=tuple(results),
        started_at=started_at,
        duration_s=round(time.monotonic() - started, 3),
    )


def _unanswered(
    step: Step, operation: str | None, state: State, *, exchange: Exchange | None = None, note: str = ""
) -> Judged:
    """A step the judges did not read: not sent, not answered, or not in the contract."""
    return Judged(
        index=step.index,
        method=step.method,
        path=step.path,
        operation=operation,
        state=state,
        sent_key=step.sent_key,
        exchange=exchange,
        note=note,
    )


def _send(
    client: Client, step: Step, operation: str | None, schemas: SpecSchemas, catalogue: Catalogue
) -> Judged:
    session = client.session
    session.headers = requests.structures.CaseInsensitiveDict(requests.utils.default_headers())
    session.headers.update(step.headers)
    failures = len(client.failures)
    raw = step.body.encode("utf-8") if step.body is not None else None
    try:
        reply = client.send(
            step.method,
            step.path,
            operation=operation,
            raw=raw,
            auth="key" if step.sent_key else "none",
            valid=step.sent_key,
        )
    except ServerUnreachable:
        raise
    except TransportError as ex:
        exchange = client.failures[-1] if len(client.failures) > failures else None
        return _unanswered(step, operation, "no-answer", exchange=exchange, note=str(ex))
    if operation is None:
        return _unanswered(step, None, "not-in-contract", exchange=reply.exchange)
    return judge_reply(reply, index=step.index, sent_key=step.sent_key, schemas=schemas, catalogue=catalogue)


# --- words: lines, summary, JSON, report --------------------------------------------------------------------


def step_line(result: StepResult) -> str:
    """`#3 POST /tasks/batch → 404 (12 ms)  ✗ TASK-BATCH-GET-OMITS-UNKNOWN: expected ..., got 404`."""
    recorded = result.step.recorded_status
    changed = recorded is not None and result.judged.status != recorded
    return exchange_line(
        result.judged, timing_note=f"recorded {recorded}" if changed else "", no_key="[no key, as recorded]"
    )


def describe_steps(recording: Recording) -> list[str]:
    """The --dry-run listing: every step, the operation it reaches, and what would not be sent."""
    matcher = _matcher()
    writes = sum(1 for s in recording.steps if s.method in _WRITE_METHODS and s.not_sendable is None)
    lines = [
        f"Dry run: nothing will be sent. {len(recording.steps)} requests read from {recording.source} "
        f"({_KIND_NAMES[recording.kind]}), {writes} of them writes:"
    ]
    for step in recording.steps:
        operation = matcher(step.method, step.path)
        head = f"#{step.index} {step.method} {shown_path(step.path)}"
        what = operation if operation else "not in the contract"
        extra = "" if step.sent_key else "; sent without the key, as recorded"
        if step.not_sendable is not None:
            lines.append(f"{head}  - not sent: {step.not_sendable}")
        else:
            lines.append(f"{head}  ({what}{extra})")
    lines += [f"Note: {note}" for note in recording.notes]
    return lines


_KIND_NAMES: Final[Mapping[RecordingKind, str]] = {
    "har": "HAR",
    "journal": "the mock's journal",
    "report": "the failing cases of a report.json",
}


def summary_lines(outcome: ReplayOutcome) -> list[str]:
    """The end of a replay: counts, which rules broke on which requests, and the verdict."""
    total = len(outcome.results)
    lines = [
        f"{total} request{'s' if total != 1 else ''} replayed from {outcome.recording.source} to "
        f"{outcome.target}: {tally_phrase(outcome.stream)}.",
        *broken_rule_lines(outcome.stream),
    ]
    lines += [f"Note: {note}" for note in outcome.recording.notes]
    if outcome.not_judged:
        rules = ",".join(outcome.not_judged)
        lines.append(
            f"Not judged by replay: {', '.join(outcome.not_judged)}. The report found "
            f"{'it' if len(outcome.not_judged) == 1 else 'them'} broken, but replay judges one request at "
            "a time and these need a sequence (create, then read, ...); judge them with: "
            f"enginy-conformance run --base-url {outcome.target} --only {rules}"
        )
    if outcome.problem is not None:
        pass  # the one error line says why nothing can be concluded
    elif outcome.verdict == "failed":
        lines.append("FAILED: a MUST rule does not hold.")
    elif outcome.verdict == "incomplete":
        lines.append(
            "INCOMPLETE: no MUST rule broke on the replayed requests, but a MUST rule was not judged."
        )
    else:
        lines.append("PASSED: no MUST rule broke.")
    return lines


def _judgement_json(judgement: Judgement) -> dict[str, Any]:
    return {
        "rule": judgement.rule_id,
        "level": judgement.level,
        "outcome": judgement.outcome,
        "message": judgement.message,
        "expected": judgement.expected,
        "actual": judgement.actual,
    }


def _step_json(result: StepResult) -> dict[str, Any]:
    step, judged = result.step, result.judged
    response = judged.exchange.response if judged.exchange else None
    return {
        "index": step.index,
        "method": step.method,
        "path": step.path,
        "operation": judged.operation,
        "sent_key": step.sent_key,
        "state": judged.state,
        "status": judged.status,
        "elapsed_ms": round(response.elapsed_ms, 1) if response else None,
        "recorded_status": step.recorded_status,
        "note": judged.note or step.note,
        "ids_remapped": dict(result.remapped),
        "judgements": [_judgement_json(j) for j in judged.judgements],
        "response_body": response.body if response else None,
    }


def to_json(outcome: ReplayOutcome) -> dict[str, Any]:
    """The replay as a JSON document (`--json`)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "verdict": outcome.verdict,
        "exit_code": outcome.exit_code,
        "problem": outcome.problem,
        "not_judged": list(outcome.not_judged),
        "recording": _recording_json(outcome.recording),
        "target": outcome.target,
        "started_at": outcome.started_at,
        "duration_s": outcome.duration_s,
        "summary": {
            "requests": len(outcome.results),
            "with_must_violations": outcome.with_must_violations,
            "warnings": outcome.warnings,
            "judged": outcome.count("judged"),
            "not_in_contract": outcome.count("not-in-contract"),
            "key_refused": outcome.count("key-refused"),
            "no_answer": outcome.count("no-answer"),
            "not_sent": outcome.count("not-sent"),
        },
        "steps": [_step_json(result) for result in outcome.results],
    }


def _recording_json(recording: Recording) -> dict[str, Any]:
    return {
        "file": str(recording.source),
        "kind": recording.kind,
        "base": recording.base,
        "requests": len(recording.steps),
        "notes": list(recording.notes),
    }


def dry_run_json(recording: Recording) -> dict[str, Any]:
    """The --dry-run listing as JSON (`--dry-run --json`)."""
    matcher = _matcher()
    return {
        "format": FORMAT,
        "version": VERSION,
        "dry_run": True,
        "recording": _recording_json(recording),
        "steps": [
            {
                "index": step.index,
                "method": step.method,
                "path": step.path,
                "operation": matcher(step.method, step.path),
                "sent_key": step.sent_key,
                "headers": sorted(step.headers),
                "body": step.body,
                "recorded_status": step.recorded_status,
                "not_sent": step.not_sendable,
                "note": step.note,
            }
            for step in recording.steps
        ],
    }


def to_run_report(
    outcome: ReplayOutcome, *, api_key_header: str, catalogue: Catalogue | None = None
) -> RunReport:
    """The replay as a RunReport for the report writers: per rule, one piece of evidence per broken
    request (with its exchange) and one summing up the requests it held for."""
    not_judged = (
        Evidence(
            rule_id=rule_id,
            outcome="skipped",
            source="replay",
            message=(
                "Not judged: the report found this rule broken, and replay judges one request at a time; "
                f"this rule needs a sequence. Judge it with: enginy-conformance run --only {rule_id}"
            ),
            gap=True,
        )
        for rule_id in outcome.not_judged
    )
    return run_report(
        outcome.stream,
        source="replay",
        noun="replayed request",
        catalogue=catalogue if catalogue is not None else load_catalogue(),
        target=outcome.target,
        started_at=outcome.started_at,
        duration_s=outcome.duration_s,
        settings={
            "base_url": outcome.target,
            "api_key_header": api_key_header,
            "recording": str(outcome.recording.source),
            "recording_kind": outcome.recording.kind,
            "requests": len(outcome.results),
        },
        extra=not_judged,
    )


def parse_delay_ms(raw: str | None) -> float:
    """--delay-ms as seconds; UsageError naming the flag for anything but 0..60000."""
    if raw is None:
        return 0.0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_DELAY_MS:
        raise UsageError(
            f"--delay-ms must be a whole number of milliseconds from 0 to {MAX_DELAY_MS}, not {raw!r}."
        )
    return value / 1000


def lines_of(outcome: ReplayOutcome) -> Sequence[str]:
    """Every step line, then the summary (for callers that did not stream the lines)."""
    return [*(step_line(result) for result in outcome.results), "", *summary_lines(outcome)]
