"""Reading request bodies (size-capped, strict JSON) and writing JSON answers.

Hostile input stops here as a 4xx: a body over the limit (413, judged from Content-Length before
reading and again by capping the read), bytes that are not UTF-8, text that is not JSON, ``NaN`` or
``Infinity``, numbers too large to represent, and nesting deeper than ``MAX_DEPTH`` (deep nesting
would otherwise reach the recursion limit in the JSON encoder or the validator).
"""

from __future__ import annotations

import json
import math
from typing import Any

import falcon
import orjson

from mock_server.errors import InternalError, InvalidBody, MalformedBody, PayloadTooLarge
from mock_server.runtime import Runtime, note
from mock_server.validation import field_path

__all__ = ["MAX_DEPTH", "dumps", "json_body", "parse_json", "read_body"]

MAX_DEPTH = 64
_BATCH_OPERATIONS = frozenset({"getTasksBatch", "completeTasksBatch"})


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes: orjson (a 100-task answer in a seventh of the time of ``json``).

    What orjson refuses is written by ``json`` instead, ``\\u`` escapes and all: a lone surrogate
    from a JSON escape in the input (not UTF-8), an integer past 64 bits, a non-string key.
    """
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def read_body(req: falcon.Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes of body, refusing more with 413; keep them for the journal."""
    length = req.content_length  # Falcon answers 400 itself for a malformed Content-Length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"The body is {length} bytes; this server accepts at most {limit}.")
    if length is None and req.env.get("wsgi.input_terminated"):
        # No Content-Length, but the server promises EOF at the end of the body (chunked uploads):
        # read it ourselves, capped, since Falcon's bounded stream would read nothing.
        raw = req.stream.read(limit + 1)
    else:
        raw = req.bounded_stream.read(limit + 1)
    req.context.raw_body = raw[:limit]
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes, the most this server accepts.")
    return raw


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


# Built once: json.loads with hooks builds a new decoder on every call.
_STRICT = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _depth_exceeds(value: Any, limit: int) -> bool:
    # Iterative, so the check itself cannot hit the recursion limit.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict | list):
            if depth > limit:
                return True
            children = current.values() if isinstance(current, dict) else current
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json(raw: bytes) -> Any:
    """Strict JSON from bytes, or MalformedBody saying what is wrong."""
    if not raw.strip():
        raise MalformedBody("A JSON body is required.", why="malformed body: empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise MalformedBody(f"The body is not valid UTF-8 (byte {ex.start}).") from ex
    try:
        if text.startswith("\ufeff"):  # json.loads names this mistake; the bare decoder would not
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _STRICT.decode(text)
    except json.JSONDecodeError as ex:
        raise MalformedBody(
            f"The body is not valid JSON: {ex.msg} at line {ex.lineno} column {ex.colno}."
        ) from ex
    except RecursionError as ex:
        raise MalformedBody(f"The body is nested more than {MAX_DEPTH} levels deep.") from ex
    except ValueError as ex:
        # NaN/Infinity, numbers beyond float range, integers beyond Python's digit limit.
        raise MalformedBody(f"The body is not valid JSON: {str(ex)[:120]}.") from ex
    if _depth_exceeds(value, MAX_DEPTH):
        raise MalformedBody(f"The body is nested more than {MAX_DEPTH} levels deep.")
    return value


def _first_empty_string(value: Any, path: list[str | int]) -> str | None:
    if value == "":
        return field_path(path)
    items: Any = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in items:
        found = _first_empty_string(child, [*path, key])
        if found is not None:
            return found
    return None


def json_body(rt: Runtime, req: falcon.Request, operation_id: str) -> Any:
    """Read, parse and validate the body of ``operation_id``; the faults that bend input handling act here."""
    raw = read_body(req, rt.config.max_body_bytes)
    try:
        body = parse_json(raw)
    except MalformedBody:
        if raw.strip() and rt.applies(req, "INPUT-MALFORMED-JSON"):
            raise InternalError("The server failed while reading the body.") from None
        raise
    if rt.active("INPUT-VALID-ACCEPTED"):
        empty = _first_empty_string(body, [])
        if empty is not None and rt.applies(req, "INPUT-VALID-ACCEPTED"):
            raise InvalidBody(f"{empty} must not be empty.")
    # Not on the /tasks/batch operations: their literal path is also what a client sends as the invalid
    # taskId "batch" with a single-task body, and filling its missing ids would answer that 200.
    fill: set[str] = set()
    if rt.active("INPUT-MISSING-REQUIRED") and operation_id not in _BATCH_OPERATIONS:
        fill.add("top")
    if rt.active("INPUT-ITEM-MISSING-REQUIRED"):
        fill.add("items")
    coerce = rt.active("INPUT-INVALID-REJECTED")
    body, repairs = rt.validators.check_body(
        operation_id, body, fill_missing=frozenset(fill), coerce_invalid=coerce
    )
    for repair in repairs:
        if repair.action == "coerced":
            fault = "INPUT-INVALID-REJECTED"
        else:
            fault = "INPUT-ITEM-MISSING-REQUIRED" if "[" in repair.field else "INPUT-MISSING-REQUIRED"
        note(req, f"fault {fault}")
        note(req, str(repair))
    return body
