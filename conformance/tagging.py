"""How every record a run creates is marked, so that all of them can be found and cleaned up.

One place decides the marks, for the scripted checks and for generated testing alike:

* task subjects and company names start with `<tag>-<run>` (a CRM search for the tag finds them);
* externalIds are `<tag>-<run>-...`, emails `<tag>+<run>-...@example.invalid` (a domain that can never
  receive mail);
* activities carry `{"enginyConformance": true}` in their metadata, and a tagged subject;
* every record the server reports creating (`{id}`, `{results: [{crmId}]}`) is listed for cleanup.

Generated requests are tagged on their way out (`tag_body`, called from a Schemathesis `before_call`
hook): a string field is prefixed, a metadata object gains the marker; updates are tagged too, so that a
generated PATCH of a task's subject cannot wipe the mark off a record the run created. A body that
breaks the schema on purpose may leave nothing to put the tag on (a subject that is a number); when the
server accepts such a body anyway, the record it creates is untagged, and the run counts it
(`is_tagged`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from conformance.results import CreatedRecord

__all__ = ["CREATES", "MARKER", "TAGGED", "Ledger", "Tagger", "created_ids"]

# The metadata marker on every activity the suite logs.
MARKER: Final = {"enginyConformance": True}
# operationId -> the kind of record it creates.
CREATES: Final = {
    "createTask": "task",
    "createActivity": "activity",
    "createContacts": "contact",
    "createCompanies": "company",
}
_LISTS: Final = {
    "createContacts": "contacts",
    "createCompanies": "companies",
    "updateContacts": "contacts",
    "updateCompanies": "companies",
}
# The requests whose bodies carry a mark: the creates, and the updates that could overwrite one (a task's
# subject, a record's externalId).
TAGGED: Final = frozenset({*CREATES, "updateTask", *_LISTS})


@dataclass(frozen=True, slots=True)
class Tagger:
    """The marks of one run: `tag` (the user's, default enginy-conformance) and the run's random id."""

    tag: str
    run_id: str

    @property
    def prefix(self) -> str:
        return f"{self.tag}-{self.run_id}"

    def label(self, kind: str, n: int | str = 1) -> str:
        """A tagged identifier: `<tag>-<run>-<kind>-<n>`."""
        return f"{self.prefix}-{kind}-{n}"

    def email(self, n: int | str) -> str:
        return f"{self.tag}+{self.run_id}-{n}@example.invalid"

    def subject(self, text: str) -> str:
        """A tagged subject or name: the tag and run id first, so a CRM search finds every record."""
        return f"{self.prefix} {text}"

    def tag_body(self, operation_id: str, body: Any) -> None:
        """Mark, in place, every record a create request's body would make (what can be marked), and what
        an update would put in place of a mark."""
        if operation_id in ("createTask", "updateTask") and isinstance(body, dict):
            if isinstance(body.get("subject"), str) and not self._marked(body["subject"]):
                body["subject"] = self.subject(body["subject"])
        elif operation_id == "createActivity" and isinstance(body, dict):
            if isinstance(body.get("subject"), str) and not self._marked(body["subject"]):
                body["subject"] = self.subject(body["subject"])
            if "metadata" not in body:
                body["metadata"] = dict(MARKER)
            elif isinstance(body["metadata"], dict):
                body["metadata"].update(MARKER)
        for item in self._items(operation_id, body):
            if isinstance(item.get("externalId"), str) and not self._marked(item["externalId"]):
                item["externalId"] = f"{self.prefix}-{item['externalId']}"

    def is_tagged(self, operation_id: str, body: Any) -> bool:
        """Whether every record this create body makes carries the run's mark."""
        if operation_id == "createTask":
            return isinstance(body, dict) and self._marked(body.get("subject"))
        if operation_id == "createActivity":
            if not isinstance(body, dict):
                return False
            metadata = body.get("metadata")
            return self._marked(body.get("subject")) or (
                isinstance(metadata, dict) and metadata.get("enginyConformance") is True
            )
        if operation_id in _LISTS:
            items = body.get(_LISTS[operation_id]) if isinstance(body, dict) else None
            return isinstance(items, list) and all(
                isinstance(item, dict) and self._marked(item.get("externalId")) for item in items
            )
        return True

    def _marked(self, value: object) -> bool:
        return isinstance(value, str) and value.startswith(self.prefix)

    @staticmethod
    def _items(operation_id: str, body: Any) -> Iterator[dict[str, Any]]:
        items = body.get(_LISTS[operation_id]) if operation_id in _LISTS and isinstance(body, dict) else None
        if isinstance(items, list):
            yield from (item for item in items if isinstance(item, dict))


def created_ids(answer: Any) -> list[str]:
    """The ids a 2xx create answer says it made: its `id`, or the `crmId` of each of its `results`."""
    if not isinstance(answer, dict):
        return []
    found = [answer.get("id")]
    results = answer.get("results")
    if isinstance(results, list):
        found += [item.get("crmId") for item in results if isinstance(item, dict)]
    return [value for value in found if isinstance(value, str) and value]


@dataclass
class Ledger:
    """The records a run created (for the cleanup list), and how many of them carry no mark."""

    created: list[CreatedRecord] = field(default_factory=list)
    untagged: int = 0

    def note(self, kind: str, record_id: str, via: str, *, tagged: bool = True) -> None:
        record = CreatedRecord(kind=kind, id=record_id, via=via)
        if record not in self.created:
            self.created.append(record)
            self.untagged += 0 if tagged else 1
