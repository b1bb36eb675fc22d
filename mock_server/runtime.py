"""The collaborators every resource and middleware shares, bundled once by ``create_app``.

Also the two seams tests replace: ``Clock`` (UTC time) and ``IdSource`` (a type prefix in, a fresh
id out), with their production defaults.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import falcon

from mock_server.config import MockConfig
from mock_server.faults import FaultState
from mock_server.journal import Journal
from mock_server.storage import Kind, Record, Store
from mock_server.validation import Validators

__all__ = ["Clock", "IdSource", "Runtime", "format_timestamp", "note", "utc_now", "uuid_ids"]

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime (any zone; answers convert it to UTC)."""
IdSource = Callable[[str], str]
"""Given a type prefix such as ``task``, returns a new unique id such as ``task-3f2a…``."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def uuid_ids(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, e.g. ``2024-01-15T10:00:00.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def note(req: falcon.Request, why: str) -> None:
    """Add one reason to the journal line of this request."""
    reasons: list[str] | None = getattr(req.context, "why", None)
    if reasons is None:
        reasons = []
        req.context.why = reasons
    if why not in reasons:
        reasons.append(why)


@dataclass(frozen=True, kw_only=True)
class Runtime:
    config: MockConfig
    store: Store
    clock: Clock
    ids: IdSource
    faults: FaultState
    validators: Validators
    journal: Journal
    initial_records: dict[Kind, list[Record]]

    def now(self) -> str:
        return format_timestamp(self.clock())

    def active(self, fault_id: str) -> bool:
        """Is this fault switched on? (Does not journal it; see ``applies``.)"""
        return self.faults.active(fault_id)

    def applies(self, req: falcon.Request, fault_id: str) -> bool:
        """Is this fault switched on? If so, the journal says it shaped this answer."""
        if self.faults.active(fault_id):
            note(req, f"fault {fault_id}")
            return True
        return False

    def completion_time(self, req: falcon.Request) -> str | None:
        """The completedAt to store for a completion made now (None under the TASK-COMPLETED-AT fault)."""
        if self.applies(req, "TASK-COMPLETED-AT"):
            return None
        return self.now()

    def bend_timestamps(self, req: falcon.Request, record: dict[str, Any], fields: tuple[str, ...]) -> None:
        """Under TIMESTAMPS-ISO8601, rewrite these (already validated) ISO fields as RFC 2822 dates."""
        present = [name for name in fields if isinstance(record.get(name), str)]
        if present and self.applies(req, "TIMESTAMPS-ISO8601"):
            for name in present:
                try:
                    moment = datetime.fromisoformat(record[name].replace("z", "Z").replace("t", "T"))
                    record[name] = format_datetime(moment.astimezone(UTC), usegmt=True)
                except (ValueError, OverflowError):
                    continue  # a leap second or a year-0 instant: keep it as sent rather than fail

    def restore_initial_records(self) -> None:
        """Add the start-up records (seed data and users) that are not stored yet."""
        for kind, records in self.initial_records.items():
            self.store.add(kind, records)
