"""The middleware: one Falcon middleware, ``Gate``, running these stages in order (outermost first):
journal and access log, transport faults, authentication, the LOAD-P95-LATENCY fault (answers slow
when requests overlap), the RESPONSE-CONTENT-TYPE-JSON labels. One middleware rather than five, so
that which part of the mock a path belongs to is decided once per request, not in every stage.

Authentication runs before routing, so an unknown path without a key is answered 401 (as most
frameworks do; Schemathesis accepts it). The mock's own tooling lives outside the API's paths and
is never journaled nor bent by faults:

* ``/__admin/...`` skips the API key and checks the admin token instead: the ``X-Admin-Token``
  header everywhere; for the read-only pages a browser opens (``GET`` of ``READ_ONLY_ADMIN_PATHS``)
  also the inspector cookie, which ``GET /__admin/inspector?token=...`` sets (see ``inspector``);
* ``/docs`` and ``/docs/...`` (Swagger UI and the spec) are public: they hold no customer data.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import falcon

from mock_server.bodies import read_body
from mock_server.config import ADMIN_TOKEN_HEADER
from mock_server.errors import (
    ApiError,
    DropConnection,
    Forbidden,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from mock_server.faults import OVERLAP_DELAY_MS
from mock_server.journal import REDACTED, JournalEntry, PendingEntry, Redactor
from mock_server.runtime import Runtime, format_timestamp, note

__all__ = [
    "ADMIN_PREFIX",
    "DOCS_PREFIX",
    "INSPECTOR_COOKIE",
    "INSPECTOR_PATH",
    "RAW_HEADER_NAMES",
    "READ_ONLY_ADMIN_PATHS",
    "AnswerLabels",
    "Authentication",
    "Gate",
    "HealthShortcut",
    "JournalRecorder",
    "SlowUnderLoad",
    "TransportFaults",
    "inspector_cookie_value",
    "is_admin_path",
    "is_docs_path",
    "is_tool_path",
]

ADMIN_PREFIX = "/__admin"
DOCS_PREFIX = "/docs"
INSPECTOR_PATH = ADMIN_PREFIX + "/inspector"
# What a browser that opened the inspector may GET with its cookie instead of the header. Read-only
# on purpose: every admin write still needs the X-Admin-Token header, which no cross-site page can set.
READ_ONLY_ADMIN_PATHS = frozenset(
    {INSPECTOR_PATH, ADMIN_PREFIX + "/journal.har", ADMIN_PREFIX + "/journal.jsonl"}
)
INSPECTOR_COOKIE = "enginy_mock_inspector"
RAW_HEADER_NAMES = "enginy_mock.raw_header_names"
"""WSGI environ key where the mock's waitress integration puts header names as the client spelled them."""

access_log = logging.getLogger("mock_server.access")


def is_admin_path(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def is_docs_path(path: str) -> bool:
    return path == DOCS_PREFIX or path.startswith(DOCS_PREFIX + "/")


def is_tool_path(path: str) -> bool:
    """The mock's own tooling (admin API, inspector, docs): outside the API, never journaled or faulted."""
    return is_admin_path(path) or is_docs_path(path)


def _is_tool_request(req: falcon.Request) -> bool:
    """What the Gate decided for this request; decided here if the Gate never saw it."""
    tool: bool | None = getattr(req.context, "tool", None)
    return is_tool_path(req.path) if tool is None else tool


def inspector_cookie_value(admin_token: str) -> str:
    """The inspector cookie: derived from the admin token, so the cookie cannot stand in for the token."""
    return hmac.new(admin_token.encode("utf-8"), b"enginy-mock inspector cookie", "sha256").hexdigest()


class _UriRedactor:
    """A key sent in the query string (a customer's mistake worth seeing) is redacted, encoded or not."""

    def __init__(self, redactor: Redactor) -> None:
        secrets = redactor.secrets
        self._exact = redactor.exact
        self._variants = [
            form for secret in secrets for form in (secret, quote(secret, safe=""), quote_plus(secret))
        ]
        self._text = Redactor(self._variants)

    def __call__(self, uri: str) -> str:
        # Every replacement below needs a variant in the URI or a secret in it decoded (each part
        # decodes to a piece of the whole, as % escapes never span a "/", "?", "&" or "="): without
        # either, the URI comes back as it is, which is nearly always.
        decoded = (unquote(uri), unquote_plus(uri))
        if not self._text.could_hold(uri) and not any(s in d for s in self._exact for d in decoded):
            return uri
        exact, variants = self._exact, self._variants
        path, _, query = uri.partition("?")
        # Compared decoded: a client may percent-encode any character (`%2D` for `-`), and a HAR shows
        # the query decoded. A path segment that is the key (a key sent as a task id) is redacted too.
        path = "/".join(REDACTED if unquote(segment) in exact else segment for segment in path.split("/"))
        if query:
            pairs = [pair.partition("=") for pair in query.split("&")]
            query = "&".join(
                f"{name}{sep}{REDACTED if value in variants or unquote_plus(value) in exact else value}"
                for name, sep, value in pairs
            )
            uri = f"{path}?{query}"
        else:
            uri = path
        return self._text.text(uri)


def _as_bytes(value: str) -> bytes:
    # WSGI hands header values over as latin-1 text; a test client may hand over any text.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", errors="surrogatepass")


def _matches_any(value: str, secrets: Iterable[str | bytes]) -> bool:
    """Constant-time comparison against every secret (no early exit, so timing does not tell which)."""
    candidate = _as_bytes(value)
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(candidate, secret if isinstance(secret, bytes) else secret.encode())
    return found


def _unread_body(req: falcon.Request, limit: int) -> bytes | None:
    """The body of a request answered before anything read it (a fault, a 401, a 405), for the journal.

    Without it the journal, its HAR and a replay of that HAR would say the request had no body.
    """
    if not req.content_length and not req.env.get("wsgi.input_terminated"):
        return None
    # What could be read is kept: a body too large or cut off is no reason to lose the entry.
    with contextlib.suppress(PayloadTooLarge, OSError, ValueError):
        read_body(req, limit)
    body: bytes | None = getattr(req.context, "raw_body", None)
    return body or None


class JournalRecorder:
    """Journals every API exchange and writes one access-log line per request (no headers, no bodies)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        # Prepared once: the configured secrets do not change while the app runs.
        self._redactor = Redactor(rt.config.secrets)
        self._redact_uri = _UriRedactor(self._redactor)
        self._sensitive = (rt.config.api_key_header,)

    def before(self, req: falcon.Request) -> None:
        req.context.started = time.perf_counter()
        req.context.why = []
        req.context.raw_body = None

    def after(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.record(req, resp.status_code, resp.render_body(), resp.headers)

    def record(
        self,
        req: falcon.Request,
        status: int,
        body: bytes | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        rt = self._rt
        started = getattr(req.context, "started", time.perf_counter())
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        reasons: list[str] = getattr(req.context, "why", None) or []
        why = "; ".join(reasons) if reasons else ("ok" if status < 400 else f"status {status}")
        if access_log.isEnabledFor(logging.INFO):
            # Paths are client input: escape control characters so that one request is one log line.
            shown_path = req.path.encode("unicode_escape").decode("ascii")[:300]
            access_log.info(
                "%s %s -> %s (%s) %.1fms", req.method, shown_path, status or "dropped", why, duration_ms
            )
        if _is_tool_request(req):
            return
        raw_body: bytes | None = getattr(req.context, "raw_body", None)
        if raw_body is None:
            raw_body = _unread_body(req, rt.config.max_body_bytes)
        self.keep(
            method=req.method,
            uri=req.relative_uri,
            request_headers=req.headers,
            status=status,
            raw_body=raw_body,
            body=body,
            response_headers=dict(headers or {}),
            why=why,
            duration_ms=duration_ms,
        )

    def keep(
        self,
        *,
        method: str,
        uri: str,
        request_headers: Mapping[str, str],
        status: int,
        raw_body: bytes | None,
        body: bytes | None,
        response_headers: Mapping[str, str],
        why: str,
        duration_ms: float,
    ) -> None:
        """Journal one API exchange, as seen; redacting and cutting wait until someone reads it."""
        rt = self._rt
        moment = rt.clock()

        def build() -> JournalEntry:
            redactor = self._redactor
            limit = rt.config.journal_body_chars
            return JournalEntry(
                time=format_timestamp(moment),
                method=method,
                path=self._redact_uri(uri),
                status=status,
                request_headers=redactor.headers(request_headers, sensitive=self._sensitive),
                request_body=redactor.body(raw_body, limit),
                response_body=redactor.body(body, limit),
                # The reasons quote what the client sent (an unknown id may be the key itself).
                why=redactor.words(why),
                duration_ms=duration_ms,
                response_headers=redactor.headers(response_headers, sensitive=()),
                request_bytes=None if raw_body is None else len(raw_body),
                response_bytes=None if body is None else len(body),
            )

        rt.journal.record_later(PendingEntry(build))


class TransportFaults:
    """latency, error-rate, rate-limit and drop-connection; they act before authentication, like a proxy."""

    def __init__(self, rt: Runtime, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._rt = rt
        self._sleep = sleep

    def _hit(self, req: falcon.Request, fault_id: str) -> bool:
        rt = self._rt
        if rt.active(fault_id) and rt.faults.draw(fault_id) < rt.faults.param(fault_id, "rate"):
            note(req, f"fault {fault_id}")
            return True
        return False

    def before(self, req: falcon.Request) -> None:
        rt = self._rt
        if rt.active("latency"):
            delay_ms = rt.faults.param("latency", "ms")
            jitter = rt.faults.param("latency", "jitter")
            if jitter:
                delay_ms += rt.faults.draw("latency") * jitter
            note(req, f"fault latency ({delay_ms:.0f} ms)")
            self._sleep(delay_ms / 1000)
        if self._hit(req, "drop-connection"):
            raise DropConnection()
        if self._hit(req, "error-rate"):
            raise ServiceUnavailable(
                "The server is temporarily unavailable; retry later.", headers={"Retry-After": "1"}
            )
        if self._hit(req, "rate-limit"):
            retry_after = str(int(rt.faults.param("rate-limit", "retry_after")))
            raise TooManyRequests(
                f"Too many requests; retry after {retry_after} seconds.", headers={"Retry-After": retry_after}
            )


class SlowUnderLoad:
    """The LOAD-P95-LATENCY fault: an API request that arrives while another is being handled waits
    OVERLAP_DELAY_MS first, as a server whose work queues behind a lock does. Requests sent one at a time
    are answered at once (run's checks, one by one, never see it); overlapping ones (load) are slow.

    Every API request is counted, fault or not, so that switching the fault on mid-load counts right.
    """

    def __init__(self, rt: Runtime, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._rt = rt
        self._sleep = sleep
        self._lock = threading.Lock()
        self._in_flight = 0

    def enter(self) -> int:
        """Count one more request in flight; return how many others were."""
        with self._lock:
            others = self._in_flight
            self._in_flight += 1
        return others

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def before(self, req: falcon.Request) -> None:
        others = self.enter()
        req.context.counted_in_flight = True
        if others and self._rt.active("LOAD-P95-LATENCY"):
            note(req, f"fault LOAD-P95-LATENCY ({OVERLAP_DELAY_MS} ms: {others} other request(s) in flight)")
            self._sleep(OVERLAP_DELAY_MS / 1000)

    def after(self, req: falcon.Request) -> None:
        # Runs also when an earlier stage refused the request (a 401): only a request this stage
        # counted is uncounted.
        if getattr(req.context, "counted_in_flight", False):
            req.context.counted_in_flight = False
            self.leave()


class AnswerLabels:
    """The RESPONSE-CONTENT-TYPE-JSON fault: success answers keep their JSON but say text/plain."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def after(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not 200 <= resp.status_code < 300:
            return
        if self._rt.applies(req, "RESPONSE-CONTENT-TYPE-JSON"):
            # Serialize as JSON first: no media handler exists for the label put on afterwards.
            resp.data = resp.render_body()
            resp.content_type = "text/plain; charset=utf-8"


class Authentication:
    """The API key on every API operation (/health included); the admin token on /__admin/; /docs is open.

    Sets ``req.context.admin_auth`` to how an admin request proved itself: ``"header"``, ``"query"``
    (``?token=`` on the inspector only; the inspector then trades it for the cookie) or ``"cookie"``.
    """

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        # Encoded once: the configured keys do not change while the app runs.
        self._keys = tuple(key.encode("utf-8") for key in rt.config.api_keys)
        self._header = rt.config.api_key_header

    def key_ok(self, value: str) -> bool:
        """Is this the value of a configured API key (compared in constant time)?"""
        return _matches_any(value, self._keys)

    def check_admin(self, req: falcon.Request) -> None:
        admin_token = self._rt.config.admin_token
        token = req.get_header(ADMIN_TOKEN_HEADER)
        browsable = req.method == "GET" and req.path in READ_ONLY_ADMIN_PATHS
        if token is not None or not browsable:
            if token is None:
                raise Unauthorized(
                    f"The {ADMIN_TOKEN_HEADER} header is missing.", why="admin auth: missing token"
                )
            if not _matches_any(token, [admin_token]):
                raise Unauthorized(
                    f"The {ADMIN_TOKEN_HEADER} header is wrong.", why="admin auth: wrong token"
                )
            req.context.admin_auth = "header"
            return
        # A browser cannot set headers on a plain navigation: the inspector takes ?token= once and
        # answers with a cookie; the read-only pages accept that cookie.
        query_token = req.get_param("token") if req.path == INSPECTOR_PATH else None
        if query_token is not None:
            if not _matches_any(query_token, [admin_token]):
                raise Unauthorized("The token parameter is wrong.", why="admin auth: wrong token")
            req.context.admin_auth = "query"
            return
        cookies = req.get_cookie_values(INSPECTOR_COOKIE) or []
        if cookies:
            if not _matches_any(cookies[0], [inspector_cookie_value(admin_token)]):
                raise Unauthorized(
                    f"The inspector cookie is out of date (the admin token changed); open "
                    f"{INSPECTOR_PATH}?token=TOKEN again.",
                    why="admin auth: stale cookie",
                )
            req.context.admin_auth = "cookie"
            return
        raise Unauthorized(
            f"Open {INSPECTOR_PATH}?token=TOKEN with the admin token once, or send the "
            f"{ADMIN_TOKEN_HEADER} header.",
            why="admin auth: missing token",
        )

    def _key_elsewhere(self, req: falcon.Request) -> bool:
        """Does a configured key sit in some header other than the configured one?"""
        keys = self._keys
        configured = self._header.lower()
        for name, value in req.headers.items():
            if name.lower() == configured:
                continue
            bare = value.removeprefix("Bearer ").strip()
            if _matches_any(value, keys) or _matches_any(bare, keys):
                return True
        return False

    def check_key(self, req: falcon.Request) -> None:
        rt = self._rt
        header = self._header
        value = req.get_header(header)  # header names are case-insensitive in WSGI already
        raw_names = req.env.get(RAW_HEADER_NAMES)
        if (
            value is not None
            and raw_names is not None
            and header not in raw_names
            and rt.applies(req, "AUTH-HEADER-CASE-INSENSITIVE")
        ):
            value = None
        if value is not None and self.key_ok(value):
            return
        if rt.active("AUTH-OTHER-HEADER") and self._key_elsewhere(req):
            rt.applies(req, "AUTH-OTHER-HEADER")
            return
        if value is None:
            if rt.active("AUTH-MISSING-KEY") and not self._key_elsewhere(req):
                rt.applies(req, "AUTH-MISSING-KEY")
                return
            raise self._refusal(req, f"The {header} header is missing.", "auth: missing key")
        if value.strip() and rt.applies(req, "AUTH-WRONG-KEY"):
            return
        raise self._refusal(req, f"The key in the {header} header is not valid.", "auth: wrong key")

    def _refusal(self, req: falcon.Request, message: str, why: str) -> ApiError:
        if self._rt.applies(req, "AUTH-401-NOT-403"):
            return Forbidden(message, why=why)
        return Unauthorized(message, why=why)


class Gate:
    """The one Falcon middleware: the stages above in order, each path's part of the mock decided once.

    ``req.context.tool`` says whether the request is for the mock's own tooling (admin, docs): those
    are authenticated (admin) but never journaled, faulted or counted. Falcon runs
    ``process_response`` also when ``process_request`` raised (a 401, a 503 fault), so every stage's
    ``after`` copes with a request that stopped early.
    """

    def __init__(self, rt: Runtime) -> None:
        self.recorder = JournalRecorder(rt)
        self._transport = TransportFaults(rt)
        self.auth = Authentication(rt)
        self.slow = SlowUnderLoad(rt)
        self._labels = AnswerLabels(rt)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.recorder.before(req)
        path = req.path
        if is_admin_path(path):
            req.context.tool = True
            self.auth.check_admin(req)
        elif is_docs_path(path):
            req.context.tool = True
        else:
            req.context.tool = False
            self._transport.before(req)
            self.auth.check_key(req)
            self.slow.before(req)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if not _is_tool_request(req):
            self._labels.after(req, resp)
            self.slow.after(req)
        self.recorder.after(req, resp)


_CONTENT_HEADERS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})


class HealthShortcut:
    """``GET /health`` answered in front of Falcon when nothing could make its answer differ.

    The health check is what monitors and load balancers poll, and Falcon's request, routing and
    response objects cost more than the rest of such an answer. The shortcut takes only the plain
    case: exactly ``GET /health``, no query, no body, a valid key in the configured header, no fault
    switched on (any fault may bend auth or /health), the access log off (its line is Falcon's to
    write). It answers what ``resources.health.Health`` answers and journals the exchange as the
    Gate would. Anything else returns None and goes through Falcon.
    """

    def __init__(self, rt: Runtime, gate: Gate, answer: bytes) -> None:
        self._rt = rt
        self._gate = gate
        self._answer = answer
        self._headers = [("content-type", "application/json"), ("content-length", str(len(answer)))]
        self._key_name = "HTTP_" + rt.config.api_key_header.upper().replace("-", "_")

    def __call__(self, env: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes] | None:
        if (
            env.get("PATH_INFO") != "/health"
            or env.get("REQUEST_METHOD") != "GET"
            or env.get("QUERY_STRING")
            or env.get("SCRIPT_NAME")
            or env.get("CONTENT_LENGTH", "0") not in ("", "0")
            or "HTTP_TRANSFER_ENCODING" in env
        ):
            return None
        key = env.get(self._key_name)
        if (
            key is None
            or self._rt.faults.any_active()
            or access_log.isEnabledFor(logging.INFO)
            or not self._gate.auth.key_ok(key)
        ):
            return None
        started = time.perf_counter()
        slow = self._gate.slow
        slow.enter()  # counted like every API request, should LOAD-P95-LATENCY be switched on
        try:
            # Falcon's Request.headers, built the same way: the journal cannot tell the two paths apart.
            headers = {
                name[5:].replace("_", "-") if name.startswith("HTTP_") else name.replace("_", "-"): value
                for name, value in env.items()
                if name.startswith("HTTP_") or name in _CONTENT_HEADERS
            }
            start_response("200 OK", list(self._headers))
        finally:
            slow.leave()
        self._gate.recorder.keep(
            method="GET",
            uri="/health",
            request_headers=headers,
            status=200,
            raw_body=None,
            body=self._answer,
            response_headers={"content-type": "application/json"},
            why="ok",
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return [self._answer]
