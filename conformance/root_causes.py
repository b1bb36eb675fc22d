"""Root causes: when one broken rule explains another rule's findings, the other one says so.

A knock-on finding keeps its outcome (what it saw is true: a 500 is a 500), but names the rule whose
breakage caused it, so that a reader fixes one thing instead of chasing several. Each cause says which
findings it explains, from what the finding itself holds (the paths its exchanges went to, the answer
fields it is about); nothing here sends a request.

    TASK-BATCH-ROUTE        any finding whose every exchange went to /tasks/batch: the path was served
                            by /tasks/{taskId}, so whatever it answered was that handler's
    TIMESTAMPS-ISO8601      RESPONSE-SCHEMA findings about timestamp fields only
    TASK-CREATE-RETURNS-ID  RESPONSE-SCHEMA findings about the id of POST /tasks answers only
    ACTIVITY-RETURNS-ID     RESPONSE-SCHEMA findings about the id of POST /activities answers only
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import urlsplit

from conformance.results import Evidence, Result

__all__ = ["CAUSES", "Cause", "attribute"]

Explains = Callable[[Evidence], bool]


@dataclass(frozen=True, slots=True)
class Cause:
    """`rule_id`, when it failed, explains the findings of `knocks_on` (any other rule when None) that
    `explains` accepts; `why` is the phrase the finding then carries."""

    rule_id: str
    explains: Explains
    why: str
    knocks_on: str | None = None


def _paths(item: Evidence) -> list[str]:
    return [urlsplit(exchange.request.url).path for exchange in item.exchanges]


def _all_to(suffix: str, method: str | None = None) -> Explains:
    def explains(item: Evidence) -> bool:
        paths = _paths(item)
        methods = {exchange.request.method for exchange in item.exchanges}
        return (
            bool(paths)
            and all(path.endswith(suffix) for path in paths)
            and (method is None or methods == {method})
        )

    return explains


def _only_fields(fields: Iterable[str], also: Explains | None = None) -> Explains:
    allowed = frozenset(fields)

    def explains(item: Evidence) -> bool:
        return bool(item.fields) and set(item.fields) <= allowed and (also is None or also(item))

    return explains


CAUSES: Final[tuple[Cause, ...]] = (
    Cause(
        "TASK-BATCH-ROUTE", _all_to("/tasks/batch"), "/tasks/batch is answered by the /tasks/{taskId} route"
    ),
    Cause(
        "TIMESTAMPS-ISO8601",
        _only_fields(("dueDate", "completedAt", "occurredAt")),
        "its only complaint is the timestamps' format",
        knocks_on="RESPONSE-SCHEMA",
    ),
    Cause(
        "TASK-CREATE-RETURNS-ID",
        _only_fields(("id",), _all_to("/tasks", "POST")),
        "its only complaint is the created task's id",
        knocks_on="RESPONSE-SCHEMA",
    ),
    Cause(
        "ACTIVITY-RETURNS-ID",
        _only_fields(("id",), _all_to("/activities", "POST")),
        "its only complaint is the created activity's id",
        knocks_on="RESPONSE-SCHEMA",
    ),
)


def attribute(results: Iterable[Result], causes: Iterable[Cause] = CAUSES) -> tuple[Result, ...]:
    """The results, with every finding that a failed cause explains marked with that cause."""
    results = tuple(results)
    failed = {result.rule.id for result in results if result.outcome == "failed"}
    active = [cause for cause in causes if cause.rule_id in failed]
    if not active:
        return results
    return tuple(_marked(result, active) for result in results)


def _marked(result: Result, causes: list[Cause]) -> Result:
    evidence = []
    for item in result.evidence:
        if item.outcome in ("failed", "warning") and item.root_cause is None:
            cause = next(
                (
                    cause
                    for cause in causes
                    if cause.rule_id != result.rule.id
                    and cause.knocks_on in (None, result.rule.id)
                    and cause.explains(item)
                ),
                None,
            )
            if cause is not None:
                item = replace(
                    item,
                    root_cause=cause.rule_id,
                    message=f"{item.message} Root cause: see {cause.rule_id} ({cause.why}).",
                )
        evidence.append(item)
    return replace(result, evidence=tuple(evidence))
