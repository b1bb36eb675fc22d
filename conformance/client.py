"""The one HTTP client of the scripted checks: the key, bounded waits and reads, and redaction.

Everything the suite sends by hand goes through `Client.send`, so the safety rules live in one place:

* the key goes under the configured header only, and every recording takes it out (conformance.redaction:
  in headers, in the URL and in bodies the server echoes back, so that a server reflecting request headers
  into its answers cannot make the key appear in a report, while a short key never garbles the words
  that merely contain it);
* every request has one deadline, `timeout` seconds for connect and the whole answer: a watchdog cuts
  the connection when it passes, so a server that trickles its answer a byte at a time cannot hold the
  run (AnswerTimeout: what the request judges is then not judged); `run_deadline` bounds the whole run
  (--max-time: past it nothing more is sent, OutOfTime);
* a 429 is honoured: every sender waits out its Retry-After (at most `MAX_RETRY_AFTER_S`), then the
  request is sent again, at most `MAX_RATE_LIMITED` times (a 429 means the request was not processed);
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
import email.utils
import json as jsonlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from conformance.errors import AnswerTimeout, ServerUnreachable, TransportError
from conformance.redaction import REDACTED, Redactor
from conformance.results import Exchange, NotApplicable, RecordedRequest, RecordedResponse

T = TypeVar("T")

__all__ = [
    "MAX_BODY_BYTES",
    "NOT_JSON",
    "REDACTED",
    "WRITE_METHODS",
    "Capture",
    "Client",
    "KeyUnder",
    "NotJSON",
    "OutOfTime",
    "Reply",
    "Request",
    "Sent",
    "deadline_watch",
    "parsed_body",
    "path_for",
    "watch_session",
]

# Enough for any answer this API documents (100 mappings, 100 tasks) with a wide margin; more than this is
# not read, so a hostile or broken server cannot make the suite download or hold megabytes.
MAX_BODY_BYTES: Final = 1024 * 1024
# Recordings land in reports; a readable excerpt is enough to show what came back.
RECORDED_BODY_CHARS: Final = 16 * 1024
WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
MAX_CONNECT_RETRIES: Final = 2
MAX_RATE_LIMITED: Final = 3
MAX_RETRY_AFTER_S: Final = 30.0
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


def parsed_body(text: str) -> Any:
    """The JSON of an answer's body, or NOT_JSON when the body is empty or not JSON."""
    if not text.strip():
        return NOT_JSON
    try:
        return jsonlib.loads(text)
    except ValueError:
        return NOT_JSON


@dataclass(frozen=True, slots=True)
class KeyUnder:
    """Send the real key under `header` (another name, or another case), optionally after a `scheme`."""

    header: str
    scheme: str = ""


# "key": the configured header; "none": no key at all; "wrong": the configured header, a wrong value;
# "other": no key header but another credential, which may or may not be the key (what a proxy sees:
# it does not know the key). The client itself never sends "other".
Auth = Literal["key", "none", "wrong", "other"] | KeyUnder


@dataclass(frozen=True, slots=True)
class Sent:
    """What a check sent, in words a report can show (the key already redacted).

    `raw` is the body when it was sent as bytes rather than as `json` (malformed JSON, a replayed
    body); `auth` says how the key went with it, so a judge knows whether the operation could run.
    """

    method: str
    path: str
    operation: str | None
    json: Any = None
    raw: bytes | None = None
    auth: Auth = "key"


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


@dataclass
class Capture:
    """What one thread sent while `Client.capture` was on: replies, and exchanges that got none."""

    replies: list[Reply] = field(default_factory=list)
    failures: list[Exchange] = field(default_factory=list)


class OutOfTime(NotApplicable):
    """The run's --max-time passed: nothing more is sent, so the rules still waiting are not judged."""


class _Watch(threading.local):
    """The connection the current thread's request is using, for the watchdog that may cut it."""

    holder: _Holder | None = None


@dataclass
class _Holder:
    connection: Any = None
    # The socket itself: an HTTP/1.0 or "Connection: close" answer detaches it from the connection
    # (http.client hands it to the response), and that answer's body is what may trickle.
    sock: Any = None
    cut: bool = False
    limit: str = ""  # what the deadline was, for the message: "1 s (--timeout)"

    def cut_now(self) -> None:
        self.cut = True
        sock = getattr(self.connection, "sock", None) or self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


_WATCH = _Watch()


class _Watched:
    """Mixed into urllib3's connections: the one carrying this thread's request, and its socket."""

    sock: Any

    def request(self, *args: Any, **kwargs: Any) -> None:
        holder = _WATCH.holder
        if holder is not None:
            holder.connection = self
        super().request(*args, **kwargs)  # type: ignore[misc]
        if holder is not None:
            holder.sock = self.sock


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter, whose connections say which request they carry, so a deadline can cut it."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def watch_session(session: requests.Session) -> None:
    """Mount the watched adapters on `session` (once), so that `deadline_watch` can cut its requests."""
    if not isinstance(session.get_adapter("http://x"), _WatchedAdapter):
        session.mount("http://", _WatchedAdapter())
        session.mount("https://", _WatchedAdapter())


@contextlib.contextmanager
def deadline_watch(seconds: float, limit: str = "") -> Iterator[_Holder]:
    """Cut the connection of the request this thread sends in the block once `seconds` have passed.

    The request must go through a watched session (`watch_session`). After a cut, `holder.cut` is True
    and whatever error requests raised is the deadline's doing.
    """
    holder = _Holder(limit=limit or f"{seconds:g} s")
    _WATCH.holder = holder
    watchdog = threading.Timer(seconds, holder.cut_now)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield holder
    finally:
        watchdog.cancel()
        _WATCH.holder = None


def _new_session() -> requests.Session:
    session = requests.Session()
    # No proxies, .netrc credentials or CA bundles from the environment: .netrc could add an
    # Authorization header for the host, which would falsify the "no key" checks.
    session.trust_env = False
    watch_session(session)
    return session


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
    session: requests.Session = field(default_factory=_new_session, repr=False)
    log: list[Reply] = field(default_factory=list, repr=False)
    # Exchanges that got no answer (timeouts, broken connections); they have no Reply, so they are kept
    # apart from `log`.
    failures: list[Exchange] = field(default_factory=list, repr=False)
    writes: int = 0
    # Pauses before the two connect retries; short, because a refused connection answers at once.
    retry_pauses: tuple[float, ...] = (0.2, 0.5)
    # time.monotonic() past which nothing is sent (--max-time); None: no bound.
    run_deadline: float | None = None
    # 429 answers waited out (the server asked the run to slow down), for the report.
    rate_limited: int = 0
    # Bounds the requests in flight (--concurrency), shared with generated testing's worker processes.
    gate: Any = field(default=None, repr=False)
    #: How many of the independent requests of one check (see `each`) may be sent at the same time.
    lanes: int = 1

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session.trust_env = False
        self._redactor = Redactor(secret=self.api_key, header=self.api_key_header)
        self._lock = threading.Lock()
        # A Session is not thread-safe: the thread that made the client uses `session`, every other
        # thread (concurrent checks, gather) a session of its own, closed with the client.
        self._owner = threading.get_ident()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._not_before = 0.0  # time.monotonic() before which no request is sent (a Retry-After)

    def close(self) -> None:
        self.session.close()
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is not None:
            return session
        if threading.get_ident() == self._owner:
            return self.session
        session = _new_session()
        self._local.session = session
        with self._lock:
            self._sessions.append(session)
        return session

    def _check_run_deadline(self, method: str, path: str) -> None:
        if self.run_deadline is not None and time.monotonic() >= self.run_deadline:
            raise OutOfTime(f"The run's --max-time passed before {method} {path} could be sent.")

    def _request_budget(self, started: float) -> tuple[float, str]:
        """Seconds this request may take, and how to name that limit: `timeout`, or less when the run's
        deadline comes first."""
        if self.run_deadline is not None and self.run_deadline - started < self.timeout:
            budget = max(0.05, self.run_deadline - started)
            return budget, f"{budget:.1f} s, the time the run had left (--max-time)"
        return self.timeout, f"{self.timeout:g} s (--timeout)"

    def _wait_for_turn(self, method: str, path: str) -> None:
        """Wait out a Retry-After another request was given (every sender honours it)."""
        with self._lock:
            wait = self._not_before - time.monotonic()
        if wait > 0:
            if self.run_deadline is not None and time.monotonic() + wait >= self.run_deadline:
                raise OutOfTime(f"The run's --max-time passed while the server had asked to wait ({path}).")
            time.sleep(wait)
        self._check_run_deadline(method, path)

    def _back_off(self, response: requests.Response) -> bool:
        """Record a 429's Retry-After for every sender; False when it gives nothing to wait for."""
        wait = _retry_after(response.headers.get("Retry-After"))
        if wait is None:
            return False
        with self._lock:
            self.rate_limited += 1
            self._not_before = max(self._not_before, time.monotonic() + min(wait, MAX_RETRY_AFTER_S))
        return True

    @contextlib.contextmanager
    def capture(self) -> Iterator[Capture]:
        """Collect what this thread sends (and the bursts it gathers) while the block runs.

        `log` holds every reply of the run in the order they came; with checks judged at the same time,
        a check's own exchanges are the ones its thread captured.
        """
        capture = Capture()
        previous = getattr(self._local, "capture", None)
        self._local.capture = capture
        try:
            yield capture
        finally:
            self._local.capture = previous

    @contextlib.contextmanager
    def _helper_thread(self, capture: Capture | None, *, burst: bool = False) -> Iterator[None]:
        """Set up a thread that sends for the calling check (`each`, `gather`), and tidy it after.

        It gets a session (and so connections) of its own, closed when done: helpers must not leave
        idle keep-alive connections behind, which a server with a connection limit counts. What it
        sends is captured for the caller's check; a burst does not wait for turns at the gate.
        """
        session = _new_session()
        self._local.session = session
        self._local.capture = capture
        self._local.burst = burst
        try:
            yield
        finally:
            self._local.session = None
            self._local.capture = None
            self._local.burst = False
            session.close()

    def each(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Run independent sending calls up to `lanes` at a time; their results in call order.

        For a check that sends many requests none of which reads another's answer (the auth probes):
        against a distant server they would otherwise wait one after another. What the calls send is
        captured for the calling check, and the gate still bounds the run's requests in flight. The first
        error a call raised is raised once all have finished.
        """
        if self.lanes <= 1 or len(calls) <= 1:
            return [call() for call in calls]
        capture = getattr(self._local, "capture", None)
        pending = queue.SimpleQueue[int]()
        for index in range(len(calls)):
            pending.put(index)
        results: list[Any] = [None] * len(calls)
        errors: list[tuple[int, BaseException]] = []

        def lane() -> None:
            with self._helper_thread(capture):
                while True:
                    try:
                        index = pending.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        results[index] = calls[index]()
                    except BaseException as ex:  # re-raised in the caller's thread
                        errors.append((index, ex))

        threads = [
            threading.Thread(target=lane, name=f"enginy-each-{n}", daemon=True)
            for n in range(min(self.lanes, len(calls)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise min(errors, key=lambda item: item[0])[1]
        return results

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
        capture = getattr(self._local, "capture", None)  # the burst belongs to the caller's check

        def one(request: Request) -> Reply | None:
            with self._helper_thread(capture, burst=True):
                try:
                    # A thread that could not start in time breaks the barrier: the others send anyway.
                    with contextlib.suppress(threading.BrokenBarrierError):
                        barrier.wait(timeout=self.timeout)
                    return self.send(
                        request.method, request.path, operation=request.operation, json=request.json
                    )
                except ServerUnreachable as ex:
                    unreachable.append(ex)
                    return None
                except TransportError:
                    return None

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
        self._check_run_deadline(method, path)
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
        # The key under the documented header in another case is the key in that header (header names
        # are case-insensitive): judges see it as sent, not as sent elsewhere.
        same_header = (
            isinstance(auth, KeyUnder)
            and not auth.scheme
            and auth.header.lower() == self.api_key_header.lower()
        )
        sent = Sent(
            method=method,
            path=path,
            operation=operation,
            json=json,
            raw=raw,
            auth="key" if same_header else auth,
        )
        recorded = self._record_request(prepared)
        # A burst (gather) is a probe of the server's concurrency: it does not wait for turns at the gate.
        gate = self.gate if not getattr(self._local, "burst", False) else None
        for _ in range(MAX_RATE_LIMITED + 1):
            self._wait_for_turn(method, path)
            started = time.monotonic()
            if gate is not None:
                gate.acquire()
            try:
                budget, limit = self._request_budget(started)
                with deadline_watch(budget, limit) as holder:
                    response = self._send_with_retries(prepared, recorded, method, url, holder)
                    try:
                        content, truncated = self._read_body(response, method, url, recorded, holder)
                    finally:
                        response.close()
            finally:
                if gate is not None:
                    gate.release()
            if response.status_code != 429 or not self._back_off(response):
                break
        elapsed_ms = (time.monotonic() - started) * 1000
        decoded = _decode(content, response)
        text = self._redactor.body(decoded)
        # Checks judge the answer as the server gave it: redacting inside the parsed data would
        # change what is judged whenever the key happens to occur in it (a short key inside an
        # id). Redaction happens where evidence leaves a check: recorded text, and the runner.
        parsed: Any = NOT_JSON if truncated else parsed_body(decoded)
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
        capture: Capture | None = getattr(self._local, "capture", None)
        if capture is not None:
            capture.replies.append(reply)
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
        self,
        prepared: requests.PreparedRequest,
        recorded: RecordedRequest,
        method: str,
        url: str,
        holder: _Holder,
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
                raise AnswerTimeout(
                    f"{method} {url} got no answer within {self.timeout:g} s (--timeout); the server "
                    "accepted the connection but did not respond, so check its logs or raise --timeout."
                ) from None
            except requests.exceptions.ConnectionError as ex:
                if holder.cut:
                    self._log_failure(recorded, "deadline passed")
                    raise AnswerTimeout(
                        f"{method} {url} did not answer within {holder.limit}; check the server's logs, "
                        "or raise the limit."
                    ) from None
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
        self, response: requests.Response, method: str, url: str, recorded: RecordedRequest, holder: _Holder
    ) -> tuple[bytes, bool]:
        # The watchdog bounds the whole body: a server dripping one byte at a time is cut at the deadline.
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(_CHUNK):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return b"".join(chunks)[:MAX_BODY_BYTES], True
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as ex:
            if holder.cut:
                self._log_failure(recorded, "deadline passed")
                raise AnswerTimeout(
                    f"{method} {url} did not finish its answer within {holder.limit}; check the server, "
                    "or raise the limit."
                ) from None
            self._log_failure(recorded, "body read failed")
            raise TransportError(
                f"Reading the answer to {method} {url} failed ({_reason(ex)}); check the server's logs."
            ) from None
        if holder.cut:  # the body ended because the connection was cut, not because it was complete
            self._log_failure(recorded, "deadline passed")
            raise AnswerTimeout(
                f"{method} {url} did not finish its answer within {holder.limit}; check the server, or "
                "raise the limit."
            )
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
        exchange = Exchange(request=recorded, response=None, error=error)
        self.failures.append(exchange)
        capture: Capture | None = getattr(self._local, "capture", None)
        if capture is not None:
            capture.failures.append(exchange)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After value (delta-seconds or an HTTP date); None when there is none."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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
