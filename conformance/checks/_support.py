"""Small helpers the check families share: phrasing of values, and picking things out of answers.

They never judge anything themselves; each check decides what its rule requires.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeGuard

from conformance.client import Reply
from conformance.results import Exchange, RuleViolation

__all__ = [
    "MESSAGE_FIELDS",
    "content_type_problem",
    "error_body_problem",
    "ids_of",
    "is_id",
    "lost_note",
    "objects_in",
    "results_of",
    "same_id",
    "shown",
    "violation",
]


# Where error bodies carry their message: the docs' {"error", "message"}, and the fields of the common
# frameworks' defaults (FastAPI and DRF `detail`, RFC 9457 `title`, Spring `error`, JSON:API `errors`).
MESSAGE_FIELDS = ("error", "message", "detail", "title", "errors", "description")


def error_body_problem(reply: Reply) -> str | None:
    """Why an error answer does not carry a JSON message (ERROR-BODY-JSON), or None when it does.

    "Error bodies should carry a message": any JSON object with text in it does, whatever the framework
    named the field (the docs' error and message, FastAPI's detail, Spring's error, DRF's field names).
    """
    if not reply.is_json:
        return f"the body is not JSON ({reply.media_type or 'no Content-Type'})"
    body = reply.json
    if not isinstance(body, dict):
        return f"the body is JSON but not an object: {shown(body, 80)}"
    if any(body.get(name) not in (None, "", [], {}) for name in MESSAGE_FIELDS) or _has_words(body):
        return None
    return f"no message in the body (no text in it at all): {shown(body, 120)}"


def _has_words(value: Any, depth: int = 0) -> bool:
    """Whether some text sits in the value: a validation map such as DRF's {"subject": ["This field is
    required."]} carries its messages under the names of the fields."""
    if isinstance(value, str):
        return bool(value.strip())
    if depth >= 8:  # deep enough for nested validation maps, bounded for hostile nesting
        return False
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return any(_has_words(item, depth + 1) for item in items)


def content_type_problem(reply: Reply) -> str | None:
    """Why a JSON answer is not labelled as JSON (RESPONSE-CONTENT-TYPE-JSON), or None.

    Only answers whose body is JSON are judged: what they are labelled is the question, not what they hold.
    """
    if not reply.is_json:
        return None
    media = reply.media_type
    if media == "application/json" or media.endswith("+json"):
        return None
    return f"a JSON body labelled {media or 'with no Content-Type'}"


def shown(value: Any, limit: int = 200) -> str:
    """A value as compact JSON for a report line, cut at `limit` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def is_id(value: object) -> TypeGuard[str]:
    """The docs' ids: non-empty strings."""
    return isinstance(value, str) and value != ""


def same_id(answered: object, expected: str) -> bool:
    """Whether an answered id names `expected`: equal, or equal once a number is written as a string.

    Whether an id is a string at all is RESPONSE-SCHEMA's question; the rules that follow a record by
    its id judge only whether it is the same record, so one wrong type is reported once.
    """
    if answered == expected:
        return True
    return isinstance(answered, int) and not isinstance(answered, bool) and str(answered) == expected


def lost_note(lost: int, of: int, what: str) -> str | None:
    """The note a passed rule carries when some requests of a concurrent burst got no answer."""
    if not lost:
        return None
    return (
        f"{lost} of the {of} {what} sent at the same moment got no usable answer (a reset connection: the "
        "server takes fewer connections at once), so the rule was judged on the others; it is about "
        "distinct ids, not about how many connections a server accepts."
    )


def results_of(reply: Reply) -> list[dict[str, Any]] | None:
    """`results` of a `{results: [...]}` answer when every item is an object, else None."""
    body = reply.json
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        return None
    items = body["results"]
    if not all(isinstance(item, dict) for item in items):
        return None
    return list(items)


def objects_in(reply: Reply) -> list[dict[str, Any]]:
    """The JSON objects an answer holds at the top level: itself, or the objects of a bare array."""
    body = reply.json
    if isinstance(body, dict):
        return [body]
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict)]
    return []


def ids_of(items: Iterable[dict[str, Any]]) -> list[Any]:
    return [item.get("id") for item in items]


def violation(
    rule_id: str, message: str, *, expected: str, actual: str, replies: Iterable[Reply] = ()
) -> RuleViolation:
    """A RuleViolation carrying the exchanges of `replies` as its evidence, newest last."""
    exchanges: list[Exchange] = [reply.exchange for reply in replies]
    return RuleViolation(rule_id, message=message, expected=expected, actual=actual, exchanges=exchanges)
