"""The forwarding half of `enginy-conformance proxy`: a WSGI app that passes each request to the
customer's server unchanged, passes its answer back unchanged, and hands the exchange to a sink.

    client → waitress (conformance.proxy_server, which keeps the header lines as written)
           → ProxyApp → urllib3 pool (keep-alive) → upstream
    each exchange, once answered → record(Forwarded) → conformance.traffic judges it, off the path

Forwarded unchanged:

* the method, and the path and query exactly as the request line had them (percent-encoding and all),
  after the upstream's own base path (``--upstream http://crm.example/enginy``);
* the header lines as the client wrote them: names in their case, in their order, repeats kept.
  Dropped are only the hop-by-hop headers (Connection and the headers it names, Keep-Alive, Proxy-*,
  TE, Trailer, Transfer-Encoding, Upgrade) and Expect, since waitress has already read the whole body;
  Host becomes the upstream's. urllib3 is told not to add a User-Agent or Accept-Encoding of its own;
* the body, byte for byte (a chunked body goes on with a Content-Length: waitress has de-chunked it).

Answered unchanged: the status and reason, the header lines less the hop-by-hop ones, and the body as
received: never decompressed (``decode_content=False``), redirects never followed.

When the upstream gives no answer, the proxy answers for it: 502 when it cannot be connected to or its
answer breaks off, 504 when it does not answer within ``timeout`` seconds (per read, as a gateway's
read timeout works), each with the JSON body ``{"error", "message"}`` of the mock and the suite. The
exchange is recorded with `error` set and no status: it says nothing about the server's answers, so it
is never judged (a 502 the proxy made is not the server's 5xx).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Final
from urllib.parse import quote, urlsplit
from wsgiref.types import StartResponse, WSGIEnvironment

import urllib3
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import SKIP_HEADER

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_ANSWER_BYTES",
    "RAW_HEADERS",
    "Forwarded",
    "ProxyApp",
    "Record",
    "create_proxy_app",
    "upstream_pool",
]

# The environ key under which conformance.proxy_server puts the request's header lines as written
# ((name, value) pairs): WSGI's HTTP_* keys lose the names' case and fold repeats into one.
RAW_HEADERS: Final = "enginy.raw_headers"
DEFAULT_TIMEOUT_S: Final = 30.0
# An answer larger than this is not forwarded (502): the proxy holds each answer whole, to judge it.
MAX_ANSWER_BYTES: Final = 64 * 1024 * 1024
_CHUNK: Final = 64 * 1024
# RFC 9110 §7.6.1, plus the Proxy-* pair and Expect (the body is already read whole).
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
_NO_BODY_STATUSES: Final = frozenset({204, 304})
# urllib3, told to pass things on as they are: no retry (a request may have reached the server), no
# redirect followed, the answer neither read ahead nor decompressed.
_AS_IS: Final = {
    "retries": False,
    "redirect": False,
    "assert_same_host": False,
    "preload_content": False,
    "decode_content": False,
}

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Forwarded:
    """One exchange as the proxy passed it on, nothing redacted yet (the sink does that).

    `target` is the path and query as the client's request line had them; `url` where it went;
    `request_headers` the header lines as forwarded (Host the upstream's). `status` is None when the
    upstream gave no answer: then `error` says why and `proxy_status` is what the proxy answered.
    `elapsed_ms` is the upstream's time, from sending the request to the last byte of its answer.
    """

    started_at: datetime
    method: str
    target: str
    url: str
    request_headers: Headers
    request_body: bytes
    status: int | None
    reason: str = ""
    response_headers: Headers = ()
    response_body: bytes = b""
    elapsed_ms: float = 0.0
    error: str | None = None
    proxy_status: int | None = None


Record = Callable[[Forwarded], None]


class _NoAnswer(Exception):
    """The upstream gave no (usable) answer; `status` is what the proxy answers instead."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def upstream_pool(upstream: str, *, timeout: float, threads: int) -> HTTPConnectionPool:
    """A keep-alive pool to the upstream's origin: a connection per serving thread, none retried."""
    manager = urllib3.PoolManager(
        num_pools=1,
        maxsize=threads,
        block=False,
        retries=False,
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
    )
    return manager.connection_from_url(upstream)


class ProxyApp:
    """The WSGI app: forward, answer, record. Build it with `create_proxy_app`."""

    def __init__(
        self,
        *,
        upstream: str,
        record: Record,
        pool: HTTPConnectionPool,
        timeout: float,
        clock: Callable[[], float],
        now: Callable[[], datetime],
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = upstream.rstrip("/")
        self._base_path = parts.path.rstrip("/")
        self._host = parts.netloc.rsplit("@", 1)[-1]
        self._record = record
        self._pool = pool
        self._timeout = timeout
        self._clock = clock
        self._now = now

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ["REQUEST_METHOD"])
        target = _target(environ)
        asked = Forwarded(
            started_at=self._now(),
            method=method,
            target=target,
            url=self.upstream + target,
            request_headers=_forwarded_headers(_header_lines(environ), self._host),
            request_body=_body(environ),
            status=None,
        )
        started = self._clock()
        try:
            status, reason, headers, body = self._fetch(
                method, self._base_path + target, asked.request_headers, asked.request_body
            )
        except _NoAnswer as gone:
            elapsed_ms = (self._clock() - started) * 1000
            self._record(replace(asked, elapsed_ms=elapsed_ms, error=gone.message, proxy_status=gone.status))
            return _own_answer(start_response, gone)
        elapsed_ms = (self._clock() - started) * 1000
        start_response(f"{status} {reason}", _answer_headers(headers, body, status, method))
        self._record(
            replace(
                asked,
                status=status,
                reason=reason,
                response_headers=headers,
                response_body=body,
                elapsed_ms=elapsed_ms,
            )
        )
        return [body]

    def _fetch(
        self, method: str, path: str, headers: Headers, body: bytes
    ) -> tuple[int, str, Headers, bytes]:
        sent = urllib3.HTTPHeaderDict()
        for name, value in headers:
            sent.add(name, value)
        names = {name.lower() for name, _ in headers}
        # urllib3 would add its own User-Agent and Accept-Encoding; the request goes on as it came.
        for name in ("User-Agent", "Accept-Encoding"):
            if name.lower() not in names:
                sent[name] = SKIP_HEADER
        try:
            body_or_none = body if body or "content-length" in names else None
            response = self._pool.urlopen(method, path, body=body_or_none, headers=sent, **_AS_IS)
            complete = False
            try:
                answer = _read(response)
                complete = True
            finally:
                if not complete:
                    response.close()  # what is left unread must not reach the next request on it
                response.release_conn()
        except _NoAnswer:
            raise
        except (HTTPError, OSError) as ex:
            raise self._no_answer(ex) from None
        reason = response.reason or _phrase(response.status)
        return response.status, reason, tuple(response.headers.items()), answer

    def _no_answer(self, ex: BaseException) -> _NoAnswer:
        where = self.upstream
        if isinstance(ex, NameResolutionError):
            return _NoAnswer(502, f"The upstream {where} cannot be reached: its host name does not resolve.")
        if isinstance(ex, NewConnectionError):
            why = "connection refused" if "refused" in str(ex).lower() else "no connection could be made"
            return _NoAnswer(502, f"The upstream {where} cannot be reached: {why}.")
        if isinstance(ex, ConnectTimeoutError):
            return _NoAnswer(
                504, f"The upstream {where} did not accept a connection within {self._timeout:g} s."
            )
        if isinstance(ex, ReadTimeoutError):
            return _NoAnswer(504, f"The upstream {where} did not answer within {self._timeout:g} s.")
        if isinstance(ex, SSLError):
            return _NoAnswer(502, f"The TLS handshake with the upstream {where} failed.")
        if isinstance(ex, ProtocolError):
            return _NoAnswer(
                502, f"The upstream {where} broke the connection before its answer was complete."
            )
        return _NoAnswer(502, f"The upstream {where} gave no usable answer ({type(ex).__name__}).")


def create_proxy_app(
    *,
    upstream: str,
    record: Record,
    timeout: float = DEFAULT_TIMEOUT_S,
    pool: HTTPConnectionPool | None = None,
    threads: int = 8,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ProxyApp:
    """The proxy to `upstream` (an http(s) URL, maybe with a base path), each exchange to `record`.

    `record` is called in the serving thread once the answer is ready and before it is sent, so it must
    return at once (the sink queues the exchange). `pool` defaults to `upstream_pool`; `clock` and `now`
    time the upstream and stamp each exchange.
    """
    return ProxyApp(
        upstream=upstream,
        record=record,
        pool=pool if pool is not None else upstream_pool(upstream, timeout=timeout, threads=threads),
        timeout=timeout,
        clock=clock,
        now=now,
    )


# --- the request ---------------------------------------------------------------------------------------


def _target(environ: WSGIEnvironment) -> str:
    """The path and query as the request line had them."""
    raw = environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw:
        if raw.lower().startswith(("http://", "https://")):  # absolute-form, as sent to a forward proxy
            parts = urlsplit(raw)
            return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return raw
    # Another WSGI server: rebuild it (PATH_INFO is the decoded path, as latin-1 text per PEP 3333).
    decoded = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    path = quote(decoded.encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
    query = str(environ.get("QUERY_STRING", ""))
    return (path or "/") + (f"?{query}" if query else "")


def _body(environ: WSGIEnvironment) -> bytes:
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    length = str(environ.get("CONTENT_LENGTH") or "0")
    return bytes(stream.read(int(length))) if length.isdigit() and int(length) > 0 else b""


def _header_lines(environ: WSGIEnvironment) -> Headers:
    raw = environ.get(RAW_HEADERS)
    if raw is not None:
        return tuple(raw)
    # Another WSGI server: the names as WSGI has them (X-Api-Key for x-api-key), repeats folded.
    lines = [
        (key[5:].replace("_", "-").title(), str(value))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
        if environ.get(key):
            lines.append((name, str(environ[key])))
    return tuple(lines)


def _hop_by_hop(headers: Sequence[tuple[str, str]]) -> frozenset[str]:
    """The hop-by-hop names, with those a Connection header names for this hop."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return _HOP_BY_HOP | named


def _forwarded_headers(lines: Headers, host: str) -> Headers:
    dropped = _hop_by_hop(lines)
    chunked = any(name.lower() == "transfer-encoding" for name, _ in lines)
    kept: list[tuple[str, str]] = []
    for name, value in lines:
        lowered = name.lower()
        if lowered in dropped or (chunked and lowered == "content-length"):
            continue
        kept.append((name, host) if lowered == "host" else (name, value))
    return tuple(kept)


# --- the answer ----------------------------------------------------------------------------------------


def _read(response: urllib3.BaseHTTPResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.stream(_CHUNK, decode_content=False):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _NoAnswer(
                502,
                f"The upstream's answer is larger than the proxy forwards ({MAX_ANSWER_BYTES // 2**20} MiB).",
            )
    return b"".join(chunks)


def _answer_headers(headers: Headers, body: bytes, status: int, method: str) -> list[tuple[str, str]]:
    dropped = _hop_by_hop(headers)
    kept = [(name, value) for name, value in headers if name.lower() not in dropped]
    if (
        not any(name.lower() == "content-length" for name, _ in kept)
        and method != "HEAD"
        and status >= 200
        and status not in _NO_BODY_STATUSES
    ):
        # A chunked answer goes on with its length: the proxy holds it whole.
        kept.append(("Content-Length", str(len(body))))
    return kept


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _own_answer(start_response: StartResponse, gone: _NoAnswer) -> list[bytes]:
    title = "Gateway timeout" if gone.status == 504 else "Bad gateway"
    body = json.dumps({"error": title, "message": gone.message}).encode("utf-8")
    start_response(
        f"{gone.status} {_phrase(gone.status)}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
