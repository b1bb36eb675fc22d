"""What every check receives: the client, the spec's schemas, and the run's tagging and bookkeeping.

Everything a run creates on the server is tagged so that it can be found and cleaned up on a real CRM
(conformance.tagging decides the marks), and every record the server reports creating is listed in
`created` for the cleanup list of the report.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

# The module, not its names: conformance.judges imports this package's helpers, so either may load first.
from conformance import judges
from conformance.checks._spec import SpecSchemas
from conformance.client import Client, Reply
from conformance.results import CreatedRecord, RuleViolation
from conformance.tagging import Tagger, created_ids

__all__ = ["CheckContext"]


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
    _locks: dict[str, threading.RLock] = field(default_factory=dict, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fixture_lock(self, name: str) -> threading.RLock:
        """The lock held while the fixture `name` is built (reentrant: a builder may ask for itself)."""
        with self._guard:
            return self._locks.setdefault(name, threading.RLock())

    @property
    def tagger(self) -> Tagger:
        return Tagger(tag=self.tag, run_id=self.run_id)

    def label(self, kind: str, n: int | str = 1) -> str:
        """A tagged identifier: `enginy-conformance-<run>-<kind>-<n>`."""
        return self.tagger.label(kind, n)

    def email(self, n: int | str) -> str:
        return self.tagger.email(n)

    def subject(self, text: str) -> str:
        """A tagged subject or name: the tag and run id first, so a CRM search finds every record."""
        return self.tagger.subject(text)

    def unknown_id(self, kind: str, n: int = 1) -> str:
        """An id no server can know: tagged, with this run's random id."""
        return self.label(f"{kind}-missing", n)

    def judge(self, rule_id: str, reply: Reply) -> None:
        """Judge one answer by the rule's single-exchange judge (conformance.judges), the one place that
        decides it: returns when it holds, raises RuleViolation or NotApplicable."""
        judges.decide(rule_id, judges.Seen.of(reply, self.schemas))

    def violation_of(self, rule_id: str, reply: Reply) -> RuleViolation | None:
        """What the rule's single-exchange judge finds wrong with one answer, or None when it holds (for
        checks that list every answer breaking the rule); raises NotApplicable like `judge`."""
        try:
            self.judge(rule_id, reply)
        except RuleViolation as broken:
            return broken
        return None

    def note_created(self, kind: str, record_id: object, via: str) -> None:
        if isinstance(record_id, str) and record_id:
            record = CreatedRecord(kind=kind, id=record_id, via=via)
            with self._guard:
                if record not in self.created:
                    self.created.append(record)

    def note_created_from(self, kind: str, reply: Reply) -> None:
        """Record whatever a 2xx answer says was created: `{id}` or `{results: [{crmId}]}`."""
        if not reply.ok:
            return
        for record_id in created_ids(reply.json):
            self.note_created(kind, record_id, f"{reply.sent.method} {reply.sent.path}")
