"""The judging half of `enginy-conformance proxy`: what went through it, judged, shown and written.

    Forwarded (from the serving threads) → Traffic.record → a queue → the judging thread:
        learn the credentials it carries → Reply → judge_reply (conformance.judgements)
        → a line on the terminal, an entry in traffic.har
    Traffic.finish → ProxySession → summary_lines, to_run_report (report.json, junit.xml, ...)

The serving threads only queue: every exchange is judged, shown and written by one thread, in the order
the answers came, so the lines never interleave. That thread shares the GIL with the serving threads,
and an exchange is queued just before waitress's loop sends its answer: judging it at once would hold
that answer back by the judging's length (0.3 to 1.2 ms, see docs/benchmarks.md). So the newest
exchange waits `settle_s` (2 ms) before it is judged; a backlog is judged without waiting.

The proxy is not given the key. It learns every value it sees under a credential name (the key
header, Authorization, cookies, headers and query parameters whose names smell of a secret:
`conformance.redaction.credential_values`) before it shows or writes the exchange that carried it, and
takes every value learned out of each line and each entry, as the suite takes out the key it is given.
At the end, `scrub_files` takes them out of the written files once more, so that a value echoed in an
answer before any request carried it is not left in a file either.

How each exchange is judged:

* a request whose method and path the spec documents is judged by every single-exchange rule
  (`conformance.judges`); "sent the key" means the key header (`--api-key-header`) was there, not
  empty. Without it, a request that carries another credential header (Authorization, ...) carries
  an "other" credential, which may or may not be the key, so no authentication rule judges it; one
  with no credential at all is an authentication probe, judged by AUTH-MISSING-KEY. The proxy cannot
  tell a wrong key from the right one, so AUTH-WRONG-KEY is never judged here, and a key the server
  refuses leaves the operation's rules unjudged ("key refused"), as in a replay;
* any other request is forwarded and listed as not in the contract;
* an exchange the upstream did not answer is listed as "no answer" (the proxy answered 502 or 504)
  and judged by nothing: SERVER-NO-5XX speaks of 5xx answers the server gave, not of a silence;
* an answer whose Content-Encoding the proxy cannot read (anything but gzip, deflate and identity, or
  one that inflates past 64 MiB) is forwarded and listed, not judged;
* an exchange the proxy itself fails on (a bug) is forwarded, and listed as not judged with the error;
  the judging of the others goes on.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, TextIO
from urllib.parse import parse_qsl, urlsplit

import harfile

from conformance import judgements
from conformance.checks._spec import SpecSchemas
from conformance.client import RECORDED_BODY_CHARS, Reply, Sent, parsed_body
from conformance.judgements import Judged
from conformance.judges import operation_matcher
from conformance.proxy import MAX_ANSWER_BYTES, Forwarded
from conformance.redaction import REDACTED, LearnedSecrets, credential_values, looks_secret
from conformance.results import Exchange, RecordedRequest, RecordedResponse, RunReport
from enginy_spec import Catalogue

__all__ = [
    "HAR_FILE",
    "MAX_HAR_BODY_CHARS",
    "SETTLE_S",
    "KeyState",
    "ProxySession",
    "Traffic",
    "scrub_files",
    "summary_lines",
    "to_run_report",
]

HAR_FILE: Final = "traffic.har"
# A HAR entry holds a body whole up to this size: enough for any answer of this API, and for replay,
# which never re-sends a body it finds cut.
MAX_HAR_BODY_CHARS: Final = 1024 * 1024
_STOP: Final = object()
# How long the newest exchange waits before it is judged, so that its answer is sent first.
SETTLE_S: Final = 0.002
_HTTP_VERSION: Final = "HTTP/1.1"  # what urllib3 speaks to the upstream
Out = Callable[[str], None]
# How the key went with a request, as far as a proxy that does not know it can tell.
KeyState = Literal["key", "none", "other"]


@dataclass(frozen=True, slots=True)
class ProxySession:
    """Everything the proxy saw, judged, once it stopped."""

    upstream: str
    api_key_header: str
    catalogue: Catalogue = field(repr=False)
    stream: tuple[Judged, ...] = ()
    started_at: str = ""
    duration_s: float = 0.0
    failed: int = 0  # exchanges the proxy itself failed on: forwarded, but not judged nor in the HAR

    @property
    def broke_a_must(self) -> bool:
        return any(judged.broken for judged in self.stream)

    @property
    def exit_code(self) -> int:
        """1 when an exchange broke a MUST rule, else 0: a proxy judges only what it sees, so it makes no
        claim about the rest (never INCOMPLETE, 3)."""
        return 1 if self.broke_a_must else 0

    @property
    def not_seen(self) -> tuple[str, ...]:
        """The rules of the catalogue that no exchange spoke about, in catalogue order."""
        spoken = {judgement.rule_id for judged in self.stream for judgement in judged.judgements}
        return tuple(rule.id for rule in self.catalogue if rule.id not in spoken)


class Traffic:
    """The sink of `conformance.proxy`: judges each forwarded exchange on a thread of its own.

    `record` is what the proxy app calls (from any serving thread): it only queues, so it may be called
    before `start`. `start` begins judging, `finish` judges what is left and ends the session. `out`
    gets one line per exchange, `har` (a text stream, written as the session goes) one entry; after
    `max_exchanges` exchanges `on_limit` is called once (the CLI stops the server with it).
    """

    def __init__(
        self,
        *,
        upstream: str,
        api_key_header: str,
        out: Out,
        schemas: SpecSchemas,
        catalogue: Catalogue,
        max_exchanges: int | None = None,
        settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.api_key_header = api_key_header
        self.secrets = LearnedSecrets(header=api_key_header)
        self._out = out
        self._har: harfile.HarFile | None = None
        self._on_limit: Callable[[], None] = lambda: None
        self._schemas = schemas
        self._catalogue = catalogue
        self._matcher = operation_matcher(schemas.operations)
        self._max = max_exchanges
        self._settle_s = settle_s
        self._clock = clock
        self._queue: queue.SimpleQueue[Forwarded | object] = queue.SimpleQueue()
        self._stream: list[Judged] = []
        self._count = 0  # exchanges taken from the queue, judged or not
        self._failed = 0
        self._thread = threading.Thread(target=self._judge_all, name="enginy-proxy-judge", daemon=True)
        self._started_at = now().isoformat(timespec="seconds")
        self._started = clock()

    def start(self, *, har: TextIO, on_limit: Callable[[], None] = lambda: None) -> None:
        self._har = harfile.HarFile(
            har,
            creator=harfile.Creator(
                name="enginy-conformance proxy", version=judgements.tool_versions()["enginy-crm-contract"]
            ),
            comment="Exchanges in the order they were answered; every credential seen is [REDACTED].",
        )
        self._on_limit = on_limit
        self._thread.start()

    def record(self, forwarded: Forwarded) -> None:
        """Queue one exchange (returns at once: the client's answer is on its way meanwhile)."""
        self._queue.put(forwarded)

    def finish(self) -> ProxySession:
        """Judge what is still queued, close the HAR and return the session (call once serving stopped)."""
        self._queue.put(_STOP)
        self._thread.join()
        if self._har is not None:
            self._har.close()
        return ProxySession(
            upstream=self.upstream,
            api_key_header=self.api_key_header,
            stream=tuple(self._stream),
            started_at=self._started_at,
            duration_s=round(self._clock() - self._started, 3),
            catalogue=self._catalogue,
            failed=self._failed,
        )

    # --- the judging thread --------------------------------------------------------------------------

    def _judge_all(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Forwarded)
            if self._queue.empty():  # the newest exchange: let its answer go out first
                time.sleep(self._settle_s)
            self._count += 1
            try:
                self._judge_one(self._count, item)
            except Exception as ex:  # a bug must not end the judging of a session that goes on
                self._failed += 1
                head = f"#{self._count} {item.method} {judgements.shown_path(self.secrets.url(item.target))}"
                self._out(f"{head}  - not judged: the proxy failed on it ({type(ex).__name__}: {ex})")
            if self._max is not None and self._count == self._max:
                self._on_limit()

    def _judge_one(self, index: int, forwarded: Forwarded) -> None:
        self.secrets.learn(
            credential_values(
                forwarded.request_headers,
                key_header=self.api_key_header,
                query=urlsplit(forwarded.target).query,
            )
        )
        decoded = _decoded(forwarded.response_body, forwarded.response_headers)
        judged = self._judged(index, forwarded, decoded)
        self._stream.append(judged)
        line = self.secrets.text(judgements.exchange_line(judged, no_key=f"[no {self.api_key_header}]"))
        self._out(line)
        self._write_har(forwarded, decoded, comment=line)

    def _judged(self, index: int, forwarded: Forwarded, decoded: str | None) -> Judged:
        method = forwarded.method.upper()
        operation = self._matcher(method, forwarded.target)
        auth = self._auth(forwarded.request_headers)
        path = self.secrets.url(forwarded.target)
        exchange = self._exchange(forwarded, decoded)
        unjudged = Judged(
            index=index,
            method=method,
            path=path,
            operation=operation,
            state="not-in-contract",
            sent_key=auth == "key",
            exchange=exchange,
        )
        if forwarded.status is None:
            note = f"the proxy answered {forwarded.proxy_status}: {forwarded.error}"
            return replace(unjudged, state="no-answer", note=self.secrets.text(note))
        if operation is None:
            return unjudged
        if decoded is None:
            encoding = _header(forwarded.response_headers, "Content-Encoding")
            return replace(
                unjudged,
                state="undecodable",
                note=f"answer encoded as {encoding}, which the proxy cannot read",
            )
        reply = self._reply(forwarded, operation, auth, decoded, exchange)
        return judgements.judge_reply(
            reply, index=index, sent_key=auth == "key", schemas=self._schemas, catalogue=self._catalogue
        )

    def _auth(self, headers: Sequence[tuple[str, str]]) -> KeyState:
        """How the key went with the request, as far as the proxy can tell without knowing it."""
        wanted = self.api_key_header.lower()
        if any(name.lower() == wanted and value.strip() for name, value in headers):
            return "key"
        elsewhere = next((name for name, value in headers if looks_secret(name) and value.strip()), None)
        return "other" if elsewhere is not None else "none"

    def _reply(
        self, forwarded: Forwarded, operation: str, auth: KeyState, decoded: str, exchange: Exchange
    ) -> Reply:
        status = forwarded.status
        assert status is not None
        parsed = parsed_body(decoded)
        sent = Sent(
            method=forwarded.method.upper(),
            path=self.secrets.url(forwarded.target),
            operation=operation,
            raw=forwarded.request_body or None,
            auth=auth,
        )
        return Reply(
            status=status,
            headers=self.secrets.headers(_joined(forwarded.response_headers)),
            text=self.secrets.body(decoded),
            json=parsed,
            truncated=False,
            sent=sent,
            exchange=exchange,
            valid=auth == "key",
        )

    def _exchange(self, forwarded: Forwarded, decoded: str | None) -> Exchange:
        """The exchange as reports show it: every credential learned so far taken out, bodies cut."""
        secrets = self.secrets
        body = forwarded.request_body.decode("utf-8", "replace") if forwarded.request_body else None
        request = RecordedRequest(
            method=forwarded.method.upper(),
            url=secrets.url(forwarded.url),
            headers=secrets.headers(_joined(forwarded.request_headers)),
            body=_cut(secrets.body(body), RECORDED_BODY_CHARS) if body is not None else None,
        )
        if forwarded.status is None:
            return Exchange(request=request, response=None, error=forwarded.error)
        shown = (
            decoded
            if decoded is not None
            else f"[{len(forwarded.response_body)} bytes the proxy cannot decode]"
        )
        response = RecordedResponse(
            status=forwarded.status,
            headers=secrets.headers(_joined(forwarded.response_headers)),
            body=_cut(secrets.body(shown), RECORDED_BODY_CHARS),
            elapsed_ms=forwarded.elapsed_ms,
        )
        return Exchange(request=request, response=response)

    def _write_har(self, forwarded: Forwarded, decoded: str | None, *, comment: str) -> None:
        secrets = self.secrets
        request_text = forwarded.request_body.decode("utf-8", "replace") if forwarded.request_body else None
        request = harfile.Request(
            method=forwarded.method,
            url=secrets.url(forwarded.url),
            httpVersion=_HTTP_VERSION,
            headers=_records(forwarded.request_headers, secrets),
            queryString=[
                harfile.Record(
                    name=name, value=REDACTED if looks_secret(name) else secrets.header_value(name, value)
                )
                for name, value in parse_qsl(urlsplit(forwarded.target).query, keep_blank_values=True)
            ],
            postData=(
                harfile.PostData(
                    mimeType=_header(forwarded.request_headers, "Content-Type") or "",
                    text=_cut(secrets.body(request_text), MAX_HAR_BODY_CHARS),
                )
                if request_text is not None
                else None
            ),
            bodySize=len(forwarded.request_body),
        )
        assert self._har is not None, "start() opens the HAR before anything is judged"
        self._har.add_entry(
            startedDateTime=forwarded.started_at,
            time=round(forwarded.elapsed_ms, 3),
            request=request,
            response=_har_response(forwarded, decoded, secrets),
            timings=harfile.Timings(send=0, wait=round(forwarded.elapsed_ms, 3), receive=0),
            comment=comment,
        )


# --- the end of a session ------------------------------------------------------------------------------


def summary_lines(session: ProxySession) -> list[str]:
    """The end of a session: counts, the rules broken and where, the rules not seen, the outcome."""
    total = len(session.stream) + session.failed
    failed = f"; {session.failed} the proxy failed to judge" if session.failed else ""
    lines = [
        f"{total} exchange{'s' if total != 1 else ''} went through the proxy to {session.upstream}: "
        f"{judgements.tally_phrase(session.stream)}{failed}.",
        *judgements.broken_rule_lines(session.stream),
    ]
    not_seen = session.not_seen
    if not_seen:
        must = sum(1 for rule_id in not_seen if session.catalogue.get(rule_id).level == "MUST")
        lines.append(
            f"Not seen (not judged, not passed): {len(not_seen)} of {len(session.catalogue)} rules, "
            f"{must} of them MUST, that no exchange spoke about: {', '.join(not_seen)}."
        )
    if session.broke_a_must:
        lines.append("FAILED: an exchange broke a MUST rule.")
    else:
        lines.append(
            "No MUST rule broke on what went through the proxy. That is not a PASSED verdict: a proxy judges "
            "only what it sees; enginy-conformance run probes every rule (load judges LOAD-P95-LATENCY)."
        )
    return lines


def to_run_report(session: ProxySession, *, listen: str) -> RunReport:
    """The session for the report writers: one result per rule an exchange spoke about (evidence
    `proxy #N` per exchange that broke it), and the rules not seen named in the settings, not judged."""
    return judgements.run_report(
        session.stream,
        source="proxy",
        noun="exchange",
        catalogue=session.catalogue,
        target=session.upstream,
        started_at=session.started_at,
        duration_s=session.duration_s,
        settings={
            "base_url": session.upstream,
            "upstream": session.upstream,
            "listen": listen,
            "api_key_header": session.api_key_header,
            "exchanges": len(session.stream),
            "not_seen": list(session.not_seen),
        },
        requests={"proxy": len(session.stream)},
    )


def scrub_files(paths: Iterable[Path], secrets: LearnedSecrets) -> None:
    """Take every credential learned out of the written files once more (see the module docstring)."""
    for path in paths:
        text = path.read_text(encoding="utf-8")
        clean = secrets.text(text)
        if clean != text:
            path.write_text(clean, encoding="utf-8")


# --- helpers -------------------------------------------------------------------------------------------


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)


def _joined(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Header lines as one value per name (repeats joined with ", ", as HTTP allows)."""
    joined: dict[str, str] = {}
    for name, value in headers:
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def _records(headers: Sequence[tuple[str, str]], secrets: LearnedSecrets) -> list[harfile.Record]:
    return [harfile.Record(name=name, value=secrets.header_value(name, value)) for name, value in headers]


def _decoded(body: bytes, headers: Sequence[tuple[str, str]]) -> str | None:
    """The answer's text, its Content-Encoding undone and its charset read; None when it cannot be."""
    data = body
    encodings = [token.strip().lower() for token in (_header(headers, "Content-Encoding") or "").split(",")]
    for encoding in reversed([token for token in encodings if token and token != "identity"]):
        if encoding in ("gzip", "x-gzip"):
            inflated = _inflate(data, 16 + zlib.MAX_WBITS)
        elif encoding == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers send it
            inflated = _inflate(data, zlib.MAX_WBITS)
            inflated = inflated if inflated is not None else _inflate(data, -zlib.MAX_WBITS)
        else:
            return None
        if inflated is None:
            return None
        data = inflated
    charset = _charset(_header(headers, "Content-Type") or "")
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


def _inflate(data: bytes, wbits: int) -> bytes | None:
    """`data` decompressed, or None when it is not such data or inflates past what the proxy holds."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, MAX_ANSWER_BYTES)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail else out


def _charset(content_type: str) -> str | None:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters not shown]"


def _har_response(forwarded: Forwarded, text: str | None, secrets: LearnedSecrets) -> harfile.Response:
    if forwarded.status is None:
        # As browsers record a request that got no answer: status 0. The entry's comment says what the
        # proxy answered instead.
        return harfile.Response(status=0, statusText="", httpVersion="", content=harfile.Content(size=0))
    headers = forwarded.response_headers
    content: harfile.Content
    mime = _header(headers, "Content-Type") or ""
    if text is None:
        content = harfile.Content(
            size=len(forwarded.response_body),
            mimeType=mime,
            text=base64.b64encode(forwarded.response_body).decode("ascii"),
            encoding="base64",
        )
    else:
        size = len(text.encode("utf-8"))
        content = harfile.Content(
            size=size,
            compression=size - len(forwarded.response_body) if _header(headers, "Content-Encoding") else None,
            mimeType=mime,
            text=_cut(secrets.body(text), MAX_HAR_BODY_CHARS),
        )
    return harfile.Response(
        status=forwarded.status,
        statusText=forwarded.reason,
        httpVersion=_HTTP_VERSION,
        headers=_records(headers, secrets),
        content=content,
        redirectURL=_header(headers, "Location") or "",
        bodySize=len(forwarded.response_body),
    )
