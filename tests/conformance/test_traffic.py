"""conformance.traffic in-process: the judging sink of the proxy, fed Forwarded exchanges by hand.

The end-to-end behaviour (real proxy, real mock, real ports) is in test_proxy.py; this module pins
what is awkward to provoke through a real server: a judge that fails, a compressed answer, an answer in
an encoding the proxy cannot read, and a compression bomb.
"""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from typing import Any

from conformance.checks._spec import SpecSchemas
from conformance.proxy import MAX_ANSWER_BYTES, Forwarded
from conformance.traffic import Traffic, summary_lines
from enginy_spec import load_catalogue

KEY = "canary-traffic-KEY-0123456789"


def forwarded(
    target: str, status: int | None = 200, body: bytes = b'{"status":"ok"}', **headers: str
) -> Forwarded:
    answer_headers = {"Content-Type": "application/json", **headers}
    return Forwarded(
        started_at=datetime(2026, 12, 2, tzinfo=UTC),
        method="GET",
        target=target,
        url="http://crm.invalid" + target,
        request_headers=(("Host", "crm.invalid"), ("X-API-Key", KEY)),
        request_body=b"",
        status=status,
        reason="OK",
        response_headers=tuple((name.replace("_", "-"), value) for name, value in answer_headers.items()),
        response_body=body,
        elapsed_ms=1.0,
    )


def session_of(*exchanges: Forwarded, schemas: SpecSchemas | None = None) -> tuple[list[str], Any, Any]:
    lines: list[str] = []
    traffic = Traffic(
        upstream="http://crm.invalid",
        api_key_header="X-API-Key",
        out=lines.append,
        schemas=schemas or SpecSchemas(),
        catalogue=load_catalogue(),
        settle_s=0,
    )
    har = io.StringIO()
    traffic.start(har=har)
    for exchange in exchanges:
        traffic.record(exchange)
    session = traffic.finish()
    return lines, session, json.loads(har.getvalue())


class _BrokenSchemas(SpecSchemas):
    """A spec whose response check fails as a bug would: RESPONSE-SCHEMA raises on every success."""

    def response_errors(self, *args: Any, **kwargs: Any) -> list[str]:
        raise RuntimeError("boom")


def test_an_exchange_the_proxy_fails_on_is_a_line_and_judging_goes_on():
    lines, session, har = session_of(
        forwarded("/health"), forwarded("/metrics", status=404), schemas=_BrokenSchemas()
    )
    assert lines[0] == "#1 GET /health  - not judged: the proxy failed on it (RuntimeError: boom)"
    assert lines[1].startswith("#2 GET /metrics → 404 (1 ms)") and "not in the contract" in lines[1]
    assert [judged.index for judged in session.stream] == [2] and session.failed == 1
    assert "2 exchanges went through the proxy" in summary_lines(session)[0]
    assert "1 the proxy failed to judge" in summary_lines(session)[0]
    assert len(har["log"]["entries"]) == 1


def test_a_gzip_answer_is_judged_decompressed_and_the_har_holds_its_text():
    body = json.dumps({"status": "ok"}).encode()
    lines, session, har = session_of(forwarded("/health", body=gzip.compress(body), Content_Encoding="gzip"))
    assert "✓" in lines[0] and session.stream[0].state == "judged"
    content = har["log"]["entries"][0]["response"]["content"]
    assert content["text"] == body.decode() and content["size"] == len(body)


def test_an_answer_the_proxy_cannot_decode_is_listed_not_judged():
    lines, session, har = session_of(forwarded("/health", body=b"\x8b\x00\x01", Content_Encoding="br"))
    assert lines[0].endswith("· answer encoded as br, which the proxy cannot read (not judged)")
    assert session.stream[0].judgements == ()
    assert har["log"]["entries"][0]["response"]["content"]["encoding"] == "base64"


def test_a_compression_bomb_is_not_inflated_past_what_the_proxy_holds():
    bomb = gzip.compress(b" " * (MAX_ANSWER_BYTES + 1))
    lines, session, _ = session_of(forwarded("/health", body=bomb, Content_Encoding="gzip"))
    assert session.stream[0].state == "undecodable" and "gzip" in lines[0]


def test_the_key_is_learned_from_the_request_and_redacted_from_an_echo():
    echo = json.dumps({"status": "ok", "seen": f"X-API-Key: {KEY}"}).encode()
    _, session, har = session_of(forwarded("/health", body=echo))
    text = json.dumps(har)
    assert KEY not in text and "[REDACTED]" in text
    exchange = session.stream[0].exchange
    assert KEY not in exchange.response.body and exchange.request.headers["X-API-Key"] == "[REDACTED]"
