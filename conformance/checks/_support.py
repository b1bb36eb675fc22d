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
    "ids_of",
    "is_id",
    "objects_in",
    "results_of",
    "shown",
    "violation",
]


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
