"""The one HTTP client of the scripted checks: the key, bounded waits and reads, and redaction.

Everything the suite sends by hand goes through `Client.send`, so the safety rules live in one place:

* the key goes under the configured header only, and every recording takes it out (conformance.redaction:
  in headers, in the URL and in bodies the server echoes back, so that a server reflecting request headers
  into its answers cannot make the key appear in a report, while a short key never garbles the words
  that merely contain it);
* connect and read waits are bounded by `timeout`, and so is the time spent reading one body;
* at most `MAX_BODY_BYTES` of an answer are read; the rest is never downloaded (the connection is closed);
* redirects are never followed: a 3xx is an answer like any other, so the key never travels to another
  address;
* only a failure to *connect* is retried (at most twice): then nothing reached the server, so even a POST
  is safe to resend. Anything that may have been received is never resent;
* `max_writes` caps the POST/PUT/PATCH requests of a run: beyond it, `send` raises `NotApplicable`;
* `gather` sends several requests at the same moment (one connection each), for the rules that only
  concurrency can break (ids that collide when creates arrive together).

A non-JSON answer is not an error here: `Reply.json` is then the `NOT_JSON` sentinel, and the check
decides what that means for its rule.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import urllib3.exceptions

from conformance.errors import ServerUnreachable, TransportError
from conformance.redaction import REDACTED, Redactor
from conformance.results import Exchange, NotApplicable, RecordedRequest, RecordedResponse

__all__ = [
    "MAX_BODY_BYTES",
    "NOT_JSON",
    "REDACTED",
    "WRITE_METHODS",
    "Client",
    "KeyUnder",
    "NotJSON",
    "Reply",
    "Request",
    "Sent",
    "path_for",
]

# Enough for any answer this API documents (100 mappings, 100 tasks) with a wide margin; more than this is
# not read, so a hostile or broken server cannot make the suite download or hold megabytes.
MAX_BODY_BYTES: Final = 1024 * 1024
# Recordings land in reports; a readable excerpt is enough to show what came back.
RECORDED_BODY_CHARS: Final = 16 * 1024
WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
MAX_CONNECT_RETRIES: Final = 2
_CHUNK = 64 * 1024
# A wrong key that is plainly not the real one and cannot be mistaken for a secret in a report.
WRONG_KEY: Final = "enginy-conformance-wrong-key"


class NotJSON:
    """The type of `NOT_JSON`: the answer had no body, or a body that is not JSON."""

    _instance: NotJSON | None = None

    def __new__(cls) -> NotJSON:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_JSON"

    def __bool__(self) -> bool:
        return False


NOT_JSON: Final = NotJSON()


@dataclass(frozen=True, slots=True)
class KeyUnder:
    """Send the real key under `header` (another name, or another case), optionally after a `scheme`."""

    header: str
    scheme: str = ""


# "key": the configured header; "none": no key at all; "wrong": the configured header, a wrong value.
Auth = Literal["key", "none", "wrong"] | KeyUnder


@dataclass(frozen=True, slots=True)
class Sent:
    """What a check sent, in words a report can show (the key already redacted)."""

    method: str
    path: str
    operation: str | None
    json: Any = None


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer, already redacted: `json` is the parsed body or `NOT_JSON`; `text` is at most 1 MiB.

    `valid` says whether the request was one Enginy would send (False for the deliberately wrong ones:
    no key, malformed JSON, missing fields), so that side evidence about success answers only looks at
    answers to valid requests.
    """

    status: int
    headers: Mapping[str, str]
    text: str
    json: Any
    truncated: bool
    sent: Sent
    exchange: Exchange
    valid: bool = True

    @property
    def is_json(self) -> bool:
        return self.json is not NOT_JSON

    def header(self, name: str) -> str | None:
        """A response header by name, whatever case the server wrote it in (Java writes Content-type)."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)

    @property
    def media_type(self) -> str:
        """The media type, lower-cased, without parameters ("" when the answer has no Content-Type)."""
        return (self.header("Content-Type") or "").split(";", 1)[0].strip().lower()

    @property
    def redirected(self) -> bool:
        """A 3xx: the request was answered with a pointer elsewhere, which the suite never follows."""
        return 300 <= self.status < 400

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        """One phrase for a report: status and an excerpt of the body (and where a redirect points)."""
        if self.redirected:
            return f"{self.status}, a redirect to {self.header('Location') or '(no Location header)'}"
        if not self.text:
            return f"{self.status} with an empty body"
        if self.truncated:
            return f"{self.status} with a body larger than {MAX_BODY_BYTES // 1024} KiB (not read further)"
        body = self.text if len(self.text) <= 300 else self.text[:300] + "…"
        kind = "" if self.is_json else "non-JSON "
        return f"{self.status} with {kind}body {body.strip()}"


@dataclass(frozen=True, slots=True)
class Request:
    """One request for `Client.gather`: the arguments `Client.send` takes."""

    method: str
    path: str
    operation: str | None = None
    json: Any = None


def path_for(template: str, *values: str) -> str:
    """Fill `{}` placeholders of a path with URL-quoted values (an id may hold any character)."""
    return template.format(*(quote(value, safe="") for value in values))


@dataclass
class Client:
    """Talks to the server under test. One per run; keeps the log of every exchange, redacted."""

    base_url: str
    api_key: str = field(repr=False)
    api_key_header: str = "X-API-Key"
    timeout: float = 10.0
    max_writes: int | None = None
    user_agent: str = "enginy-conformance"
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    log: list[Reply] = field(default_factory=list, repr=False)
    # Exchanges that got no answer (timeouts, broken connections); they have no Reply, so they are kept
    # apart from `log`.
    failures: list[Exchange] = field(default_factory=list, repr=False)
    writes: int = 0
    # Pauses before the two connect retries; short, because a refused connection answers at once.
    retry_pauses: tuple[float, ...] = (0.2, 0.5)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        # No proxies, .netrc credentials or CA bundles from the environment: .netrc could add an
        # Authorization header for the host, which would falsify the "no key" checks.
        self.session.trust_env = False
        self._redactor = Redactor(secret=self.api_key, header=self.api_key_header)
        self._lock = threading.Lock()
        # gather() gives each of its threads a session of its own: a Session is not thread-safe.
        self._local = threading.local()

    def close(self) -> None:
        self.session.close()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        return session if session is not None else self.session

    def gather(self, requests_: Sequence[Request]) -> list[Reply | None]:
        """Send every request at the same moment, each on its own connection; replies in request order.

        The threads wait at a barrier and are released together, so the server sees the requests
        overlap. A request that got no usable answer (a reset or refused connection: a small listen
        backlog drops some of a burst) is None in the result and stays in `failures`: what concurrency is
        probed for here is the answers, not the server's capacity. A spent write budget (NotApplicable),
        or not one connection made (ServerUnreachable), is raised once all have finished.
        """
        if not requests_:
            return []
        barrier = threading.Barrier(len(requests_))
        unreachable: list[ServerUnreachable] = []

        def one(request: Request) -> Reply | None:
            # A session (and so a connection) of its own, closed when done: a burst must not leave dozens
            # of idle keep-alive connections behind, which a server with a connection limit counts.
            session = requests.Session()
            session.trust_env = False
            self._local.session = session
            try:
                # A thread that could not start in time breaks the barrier: the others send anyway.
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=self.timeout)
                return self.send(request.method, request.path, operation=request.operation, json=request.json)
            except ServerUnreachable as ex:
                unreachable.append(ex)
                return None
            except TransportError:
                return None
            finally:
                self._local.session = None
                session.close()

        with ThreadPoolExecutor(max_workers=len(requests_), thread_name_prefix="enginy-gather") as pool:
            futures = [pool.submit(one, request) for request in requests_]
            outcomes: list[Reply | None] = []
            first: BaseException | None = None
            for future in futures:
                error = future.exception()
                if error is not None:
                    first = first or error
                    outcomes.append(None)
                else:
                    outcomes.append(future.result())
        if first is not None:
            raise first
        if len(unreachable) == len(requests_):
            raise unreachable[0]  # not one connection: the server is gone, not merely busy
        return outcomes

    # --- the ways of sending ------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        *,
        operation: str | None = None,
        json: Any = None,
        raw: bytes | None = None,
        auth: Auth = "key",
        valid: bool = True,
        budgeted: bool = True,
    ) -> Reply:
        """Send one request and return the (redacted) reply.

        `budgeted=False` keeps a request that cannot write (the read-only POSTs of the opening probe) out
        of the --max-writes count.

        `json` is serialized as the body; `raw` is sent as it is (for malformed JSON). Raises
        `NotApplicable` when the write budget is spent, `ServerUnreachable` when no connection could be
        made, `TransportError` when the request went out but no usable answer came back.
        """
        method = method.upper()
        counted = budgeted and method in WRITE_METHODS
        if counted:
            # Reserved before sending, under the lock, so that concurrent sends cannot overrun the budget.
            with self._lock:
                if self.max_writes is not None and self.writes >= self.max_writes:
                    raise NotApplicable(
                        f"The write budget of {self.max_writes} POST/PUT/PATCH requests (--max-writes) is "
                        "spent."
                    )
                self.writes += 1
        body: bytes | None = raw
        if raw is None and json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False).encode("utf-8")
        headers = self._headers(auth)
        url = self.base_url + path
        prepared = self._session().prepare_request(requests.Request(method, url, headers=headers, data=body))
        sent = Sent(method=method, path=path, operation=operation, json=json)
        recorded = self._record_request(prepared)
        started = time.monotonic()
        response = self._send_with_retries(prepared, recorded, method, url)
        try:
            content, truncated = self._read_body(response, started, method, url, recorded)
        finally:
            response.close()
        elapsed_ms = (time.monotonic() - started) * 1000
        decoded = _decode(content, response)
        text = self._redactor.body(decoded)
        parsed: Any = NOT_JSON
        if decoded.strip() and not truncated:
            # Checks judge the answer as the server gave it: redacting inside the parsed data would
            # change what is judged whenever the key happens to occur in it (a short key inside an
            # id). Redaction happens where evidence leaves a check: recorded text, and the runner.
            try:
                parsed = jsonlib.loads(decoded)
            except ValueError:
                parsed = NOT_JSON
        headers_out = self._redactor.headers(dict(response.headers.items()))
        recorded_text = _excerpt(text)
        if truncated:
            recorded_text += f"… [answer larger than {MAX_BODY_BYTES} bytes: the rest was not read]"
        exchange = Exchange(
            request=recorded,
            response=RecordedResponse(
                status=response.status_code, headers=headers_out, body=recorded_text, elapsed_ms=elapsed_ms
            ),
        )
        reply = Reply(
            status=response.status_code,
            headers=headers_out,
            text=text,
            json=parsed,
            truncated=truncated,
            sent=sent,
            exchange=exchange,
            valid=valid,
        )
        self.log.append(reply)
        return reply

    def get(
        self, path: str, *, operation: str | None = None, auth: Auth = "key", valid: bool = True
    ) -> Reply:
        return self.send("GET", path, operation=operation, auth=auth, valid=valid)

    def post(
        self, path: str, json: Any, *, operation: str | None = None, auth: Auth = "key", valid: bool = True
    ) -> Reply:
        return self.send("POST", path, operation=operation, json=json, auth=auth, valid=valid)

    def put(
        self, path: str, json: Any, *, operation: str | None = None, auth: Auth = "key", valid: bool = True
    ) -> Reply:
        return self.send("PUT", path, operation=operation, json=json, auth=auth, valid=valid)

    def patch(
        self, path: str, json: Any, *, operation: str | None = None, auth: Auth = "key", valid: bool = True
    ) -> Reply:
        return self.send("PATCH", path, operation=operation, json=json, auth=auth, valid=valid)

    def without_key(self, method: str, path: str, *, operation: str | None = None, json: Any = None) -> Reply:
        return self.send(method, path, operation=operation, json=json, auth="none", valid=False)

    def with_wrong_key(
        self, method: str, path: str, *, operation: str | None = None, json: Any = None
    ) -> Reply:
        return self.send(method, path, operation=operation, json=json, auth="wrong", valid=False)

    def with_key_under(
        self,
        header: str,
        method: str,
        path: str,
        *,
        scheme: str = "",
        operation: str | None = None,
        json: Any = None,
        valid: bool = False,
    ) -> Reply:
        return self.send(
            method, path, operation=operation, json=json, auth=KeyUnder(header, scheme), valid=valid
        )

    def raw(self, method: str, path: str, body: bytes, *, operation: str | None = None) -> Reply:
        return self.send(method, path, operation=operation, raw=body, valid=False)

    def redact(self, text: str) -> str:
        """Take the key out of `text` (for messages built outside the client; conformance.redaction)."""
        return self._redactor.text(text)

    # --- internals ------------------------------------------------------------------------------------

    def _headers(self, auth: Auth) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": self.user_agent,
        }
        if auth == "key":
            headers[self.api_key_header] = self.api_key
        elif auth == "wrong":
            headers[self.api_key_header] = WRONG_KEY
        elif isinstance(auth, KeyUnder):
            headers[auth.header] = f"{auth.scheme} {self.api_key}" if auth.scheme else self.api_key
        return headers

    def _send_with_retries(
        self, prepared: requests.PreparedRequest, recorded: RecordedRequest, method: str, url: str
    ) -> requests.Response:
        where = _origin(url)
        for attempt in range(MAX_CONNECT_RETRIES + 1):
            try:
                return self._session().send(
                    prepared, stream=True, timeout=(self.timeout, self.timeout), allow_redirects=False
                )
            except requests.exceptions.SSLError as ex:
                self._log_failure(recorded, "TLS handshake failed")
                raise ServerUnreachable(
                    f"The TLS handshake with {where} failed ({_reason(ex)}); check the server's certificate, "
                    "or use http:// for a local server without TLS."
                ) from None
            except requests.exceptions.ConnectTimeout:
                # Not retried: waiting the whole timeout again (twice) would triple a wait already long.
                self._log_failure(recorded, "connect timeout")
                raise ServerUnreachable(
                    f"Could not connect to {where} within {self.timeout:g} s; check that the server is "
                    "running and reachable from here, or raise --timeout."
                ) from None
            except requests.exceptions.ReadTimeout:
                self._log_failure(recorded, "read timeout")
                raise TransportError(
                    f"{method} {url} got no answer within {self.timeout:g} s; the server accepted the "
                    "connection but did not respond, so check its logs or raise --timeout."
                ) from None
            except requests.exceptions.ConnectionError as ex:
                if _never_connected(ex):
                    if attempt < MAX_CONNECT_RETRIES:
                        # Nothing reached the server, so resending (even a POST) cannot duplicate a write.
                        time.sleep(self.retry_pauses[attempt] if attempt < len(self.retry_pauses) else 0)
                        continue
                    self._log_failure(recorded, "could not connect")
                    raise ServerUnreachable(
                        f"Could not connect to {where} ({_reason(ex)}); check that the server is running "
                        "and that --base-url is right."
                    ) from None
                # The request may have been received: never resent.
                self._log_failure(recorded, "connection broken")
                raise TransportError(
                    f"The connection to {where} broke during {method} {url} ({_reason(ex)}); check the "
                    "server's logs for a crash on this request."
                ) from None
            except requests.exceptions.RequestException as ex:
                self._log_failure(recorded, "request failed")
                raise TransportError(
                    f"{method} {url} failed ({_reason(ex)}); check --base-url and the server."
                ) from None
        raise AssertionError("unreachable: the retry loop always returns or raises")  # pragma: no cover

    def _read_body(
        self, response: requests.Response, started: float, method: str, url: str, recorded: RecordedRequest
    ) -> tuple[bytes, bool]:
        # The read timeout bounds each wait for bytes; this deadline bounds the whole body, so a server
        # dripping one byte at a time cannot hold the run.
        deadline = started + 2 * self.timeout
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(_CHUNK):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return b"".join(chunks)[:MAX_BODY_BYTES], True
                if time.monotonic() > deadline:
                    self._log_failure(recorded, "body too slow")
                    raise TransportError(
                        f"{method} {url} did not finish its answer within {2 * self.timeout:g} s; check the "
                        "server, or raise --timeout."
                    )
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as ex:
            self._log_failure(recorded, "body read failed")
            raise TransportError(
                f"Reading the answer to {method} {url} failed ({_reason(ex)}); check the server's logs."
            ) from None
        return b"".join(chunks), False

    def _record_request(self, prepared: requests.PreparedRequest) -> RecordedRequest:
        body: object = prepared.body
        text: str | None = None
        if isinstance(body, bytes):
            text = body.decode("utf-8", "replace")
        elif isinstance(body, str):
            text = body
        headers = self._redactor.headers({name: str(value) for name, value in prepared.headers.items()})
        return RecordedRequest(
            method=prepared.method or "",
            url=self._redactor.url(_without_userinfo(prepared.url or "")),
            headers=headers,
            body=_excerpt(self._redactor.body(text)) if text is not None else None,
        )

    def _log_failure(self, recorded: RecordedRequest, error: str) -> None:
        self.failures.append(Exchange(request=recorded, response=None, error=error))


def _excerpt(text: str) -> str:
    if len(text) <= RECORDED_BODY_CHARS:
        return text
    return text[:RECORDED_BODY_CHARS] + f"… [{len(text) - RECORDED_BODY_CHARS} more characters not shown]"


def _decode(content: bytes, response: requests.Response) -> str:
    encoding = response.encoding if "charset" in response.headers.get("Content-Type", "").lower() else None
    try:
        return content.decode(encoding or "utf-8", "replace")
    except LookupError:  # an unknown charset named by the server
        return content.decode("utf-8", "replace")


def _without_userinfo(url: str) -> str:
    """The URL without user:password@ (a base URL may carry proxy credentials; reports must not)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, parts.fragment))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"


def _never_connected(ex: requests.exceptions.ConnectionError) -> bool:
    """True when the connection itself failed (refused, DNS), so nothing was sent."""
    cause: object = ex.args[0] if ex.args else None
    reason = getattr(cause, "reason", cause)
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _reason(ex: BaseException) -> str:
    """A short, key-free reason from a requests/urllib3 exception chain."""
    cause: object = ex.args[0] if ex.args else ex
    reason = getattr(cause, "reason", cause)
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "the host name could not be resolved"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = str(reason).lower()
        if "refused" in text:
            return "connection refused"
        return "could not open a connection"
    text = str(reason)
    for marker in (
        "Connection refused",
        "Connection reset by peer",
        "Connection aborted",
        "Remote end closed connection without response",
        "certificate verify failed",
        "IncompleteRead",
        "Broken pipe",
    ):
        if marker.lower() in text.lower():
            return marker[0].lower() + marker[1:]
    return type(reason).__name__
