"""Turn what Schemathesis recorded into our `Exchange`, with the API key taken out.

Schemathesis keeps the request exactly as sent, key included (its `[Filtered]` masking only applies to the
text it prints), so everything that leaves this module goes through `Redactor` (conformance.redaction)
first. Bodies are decoded
leniently and cut to a readable size: a report is for people, and fuzzed bodies can be megabytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from conformance.redaction import REDACTED, Redactor
from conformance.results import Exchange, RecordedRequest, RecordedResponse

if TYPE_CHECKING:
    import requests
    from schemathesis.core.transport import Response
    from schemathesis.engine.recorder import Interaction, Request

__all__ = [
    "MAX_REQUEST_BODY",
    "MAX_RESPONSE_BODY",
    "REDACTED",
    "Redactor",
    "exchange_from_interaction",
    "exchange_from_prepared",
]

MAX_RESPONSE_BODY = 4096
# Request bodies are what a reader pastes into curl to reproduce; cut only what nobody would paste.
MAX_REQUEST_BODY = 16384


def _decode(payload: bytes | str | None, limit: int) -> str | None:
    if payload is None:
        return None
    text = payload if isinstance(payload, str) else payload.decode("utf-8", errors="replace")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [truncated: {len(text)} characters in all]"


def _flatten(headers: Mapping[str, list[str]] | Mapping[str, str]) -> dict[str, str]:
    # Schemathesis stores header values as lists (one per occurrence); a report shows one line per name.
    return {name: value if isinstance(value, str) else ", ".join(value) for name, value in headers.items()}


def _request(
    method: str, url: str, headers: Mapping[str, str], body: bytes | str | None, redactor: Redactor
) -> RecordedRequest:
    text = _decode(body, MAX_REQUEST_BODY)
    return RecordedRequest(
        method=method.upper(),
        url=redactor.url(url),
        headers=redactor.headers(headers),
        body=redactor.body(text) if text is not None else None,
    )


def _response(response: Response, redactor: Redactor) -> RecordedResponse:
    return RecordedResponse(
        status=response.status_code,
        headers=redactor.headers(_flatten(response.headers)),
        body=redactor.body(_decode(response.content, MAX_RESPONSE_BODY) or ""),
        elapsed_ms=round(response.elapsed * 1000, 1),
    )


def exchange_from_interaction(
    interaction: Interaction, redactor: Redactor, *, error: str | None = None
) -> Exchange:
    """An exchange from a recorded interaction (request as sent, response as received, if any)."""
    request: Request = interaction.request
    recorded = _request(request.method, request.uri, _flatten(request.headers), request.body, redactor)
    response = _response(interaction.response, redactor) if interaction.response is not None else None
    return Exchange(request=recorded, response=response, error=redactor.text(error) if error else None)


def exchange_from_prepared(request: requests.PreparedRequest, redactor: Redactor, *, error: str) -> Exchange:
    """An exchange for a request that got no answer (refused, reset, timed out)."""
    headers = {
        name: value if isinstance(value, str) else value.decode("latin-1")
        for name, value in request.headers.items()
    }
    body = request.body if isinstance(request.body, bytes | str) else None  # streamed bodies: not shown
    recorded = _request(request.method or "GET", request.url or "", headers, body, redactor)
    return Exchange(request=recorded, response=None, error=redactor.text(error))
