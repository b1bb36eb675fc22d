"""What every check receives: the client, the spec's schemas, and the run's tagging and bookkeeping.

Everything a run creates on the server is tagged so that it can be found and cleaned up on a real CRM:
subjects and names start with the tag and run id, externalIds are `<tag>-<run>-<kind>-<n>`, emails are
`<tag>+<run>-<n>@example.invalid` (a domain that can never receive mail), activities carry the metadata
marker `{"enginyConformance": true}`, and every record the server reports creating is listed in
`created` for the cleanup list of the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from conformance.checks._spec import SpecSchemas
from conformance.client import Client, Reply
from conformance.results import CreatedRecord

__all__ = ["MARKER", "CheckContext"]

# The metadata marker on every activity the suite logs.
MARKER: Final = {"enginyConformance": True}


@dataclass
class CheckContext:
    """One run's shared state. Checks read from it; only fixtures and `note_created` write to it."""

    client: Client
    schemas: SpecSchemas
    run_id: str
    tag: str = "enginy-conformance"
    created: list[CreatedRecord] = field(default_factory=list)
    # Shared fixtures, memoized by name (see conformance.checks._registry.shared).
    memo: dict[str, Any] = field(default_factory=dict)

    def label(self, kind: str, n: int | str = 1) -> str:
        """A tagged identifier: `enginy-conformance-<run>-<kind>-<n>`."""
        return f"{self.tag}-{self.run_id}-{kind}-{n}"

    def email(self, n: int | str) -> str:
        return f"{self.tag}+{self.run_id}-{n}@example.invalid"

    def subject(self, text: str) -> str:
        """A tagged subject or name: the tag and run id first, so a CRM search finds every record."""
        return f"{self.tag}-{self.run_id} {text}"

    def unknown_id(self, kind: str, n: int = 1) -> str:
        """An id no server can know: tagged, with this run's random id."""
        return self.label(f"{kind}-missing", n)

    def note_created(self, kind: str, record_id: object, via: str) -> None:
        if isinstance(record_id, str) and record_id:
            record = CreatedRecord(kind=kind, id=record_id, via=via)
            if record not in self.created:
                self.created.append(record)

    def note_created_from(self, kind: str, reply: Reply) -> None:
        """Record whatever a 2xx answer says was created: `{id}` or `{results: [{crmId}]}`."""
        if not reply.ok or not isinstance(reply.json, dict):
            return
        via = f"{reply.sent.method} {reply.sent.path}"
        self.note_created(kind, reply.json.get("id"), via)
        results = reply.json.get("results")
        if isinstance(results, list):
            for item in results:
                if isinstance(item, dict):
                    self.note_created(kind, item.get("crmId"), via)
