"""Fault profiles: ways to make the mock misbehave like a customer's broken CRM.

A *rule fault* is named by the catalogue rule it breaks (``TASK-BATCH-ROUTE``) and breaks that rule
and, as far as the spec allows, nothing else. Where breaking a rule necessarily breaks others too
(an answer without ``id`` also breaks the spec's schema, so RESPONSE-SCHEMA fails as well), the
fault lists them in ``also_breaks``. A *transport fault* (``latency``, ``error-rate``,
``rate-limit``, ``drop-connection``) misbehaves on the wire and breaks no rule by itself. A
*concurrency fault* (``clock-ids``) breaks the rule it names in ``rule`` only when requests arrive
together: requests sent one at a time never show it, so the suite's per-rule matrix leaves it to the
load tests (``enginy-conformance load``). So does the rule fault LOAD-P95-LATENCY (answers slow only
while requests overlap), whose rule only ``enginy-conformance load`` judges.

Selection syntax, on the command line (``--fault``, repeatable), in ``ENGINY_MOCK_FAULT``
(space-separated) and in ``PUT /__admin/faults``::

    ID                      e.g. TASK-BATCH-ROUTE
    ID:NAME=VALUE[,...]     e.g. latency:ms=200,jitter=50   error-rate:rate=0.25

Random draws (which request fails) come from one generator per fault seeded with ``--fault-seed``,
so a sequence of requests meets the same failures on every run.

The registry is an explicit tuple below; the behaviour lives next to the conformant code it bends
(resources, middleware), guarded by ``Runtime.applies(req, "RULE-ID")``.
"""

from __future__ import annotations

import difflib
import random
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from mock_server.errors import FaultSpecError

__all__ = [
    "FAULTS",
    "OVERLAP_DELAY_MS",
    "Fault",
    "FaultKind",
    "FaultRegistry",
    "FaultSelection",
    "FaultState",
    "Param",
    "clock_id",
    "parse_fault",
    "parse_faults",
]

FaultKind = Literal["rule", "transport", "concurrency"]

# Rules whose checks judge "valid requests are accepted"; a fault that refuses valid input breaks it too.
_VALID_ACCEPTED = "INPUT-VALID-ACCEPTED"


@dataclass(frozen=True)
class Param:
    """A numeric fault parameter with its default and bounds."""

    name: str
    default: float
    description: str
    minimum: float = 0.0
    maximum: float | None = None
    integer: bool = False

    def parse(self, fault_id: str, text: str) -> float:
        try:
            value = int(text) if self.integer else float(text)
        except ValueError:
            kind = "an integer" if self.integer else "a number"
            raise FaultSpecError(f"Fault {fault_id}: {self.name} must be {kind}, not {text!r}.") from None
        if value != value or value < self.minimum or (self.maximum is not None and value > self.maximum):
            upper = "" if self.maximum is None else f" and at most {self.maximum:g}"
            raise FaultSpecError(f"Fault {fault_id}: {self.name} must be at least {self.minimum:g}{upper}.")
        return value


@dataclass(frozen=True)
class Fault:
    """One fault profile: its id, what it does, its parameters and the rules it breaks besides its own."""

    id: str
    kind: FaultKind
    description: str
    params: tuple[Param, ...] = ()
    also_breaks: tuple[str, ...] = ()
    breaks: str | None = None  # the rule a concurrency fault breaks (a rule fault is named by its rule)

    @property
    def rule(self) -> str | None:
        """The catalogue rule this fault breaks (rule faults are named by it, concurrency faults name it
        in `breaks`); None for transport faults."""
        if self.kind == "rule":
            return self.id
        return self.breaks if self.kind == "concurrency" else None

    def param(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)


def _rule(rule_id: str, description: str, *, also_breaks: tuple[str, ...] = ()) -> Fault:
    return Fault(id=rule_id, kind="rule", description=description, also_breaks=also_breaks)


# The LOAD-P95-LATENCY fault's wait: over the 1000 ms `enginy-conformance load` allows by default
# (--p95-ms), so the default load reports it; short enough that an overlapped request in a test costs
# little.
OVERLAP_DELAY_MS = 1200

_RATE = Param("rate", 0.1, "share of API requests affected, 0 to 1", maximum=1.0)

_ALL_FAULTS: tuple[Fault, ...] = (
    # --- health and authentication -------------------------------------------------------------------
    _rule(
        "HEALTH-OK",
        "GET /health answers 404 even with the right key (the key is still checked first).",
        # Any non-2xx breaks something else: the spec documents only 2xx, 401 and 403 for /health, and a
        # 401/403 to the right key breaks AUTH-HEADER-CASE-INSENSITIVE where it is judged on /health. The
        # undocumented 404 is what judges mapping Schemathesis's ST103 to ERROR-BODY-JSON report.
        also_breaks=(_VALID_ACCEPTED, "ERROR-BODY-JSON"),
    ),
    _rule(
        "AUTH-MISSING-KEY",
        "A request without the key header is let in, unless a configured key sits in another header "
        "(so AUTH-OTHER-HEADER still holds); a wrong key is still refused.",
    ),
    _rule(
        "AUTH-WRONG-KEY", "Any non-empty value of the key header is accepted; a missing key is still refused."
    ),
    _rule(
        "AUTH-OTHER-HEADER",
        "A configured key is also accepted from any other header (e.g. Authorization, "
        "with or without 'Bearer ').",
    ),
    _rule(
        "AUTH-HEADER-CASE-INSENSITIVE",
        "The key header counts only when its name is spelled exactly as configured (X-API-Key); x-api-key "
        "or X-API-KEY count as missing. Needs the mock's own waitress server, which "
        "records raw header names.",
    ),
    _rule("AUTH-401-NOT-403", "A missing or wrong key is answered 403 instead of 401."),
    # --- tasks ----------------------------------------------------------------------------------------
    _rule(
        "TASK-CREATE-RETURNS-ID",
        "POST /tasks answers the task without its id; the task is stored under one (see /__admin/records), "
        "so reads by that id still work.",
        also_breaks=("RESPONSE-SCHEMA",),
    ),
    _rule(
        "TASK-CREATE-OPEN",
        "POST /tasks answers completed: true (with a completedAt) although the stored task is open.",
    ),
    _rule(
        "TASK-GET",
        "GET /tasks/{taskId} answers another task: the one stored just before it (the second one, for the "
        "first), as an off-by-one lookup would.",
    ),
    _rule(
        "TASK-GET-COMPLETION-FIELDS",
        "GET /tasks/{taskId} of an open task leaves out completed and completedAt "
        "(completed tasks keep both).",
    ),
    _rule(
        "TASK-GET-UNKNOWN",
        "GET /tasks/{taskId} of an unknown id answers 200 with a stub open task carrying "
        "that id (nothing stored).",
    ),
    _rule(
        "TASK-UPDATE-UNKNOWN",
        "PATCH /tasks/{taskId} of an unknown id answers 200 with a stub task built from "
        "the patch (nothing stored).",
    ),
    _rule(
        "TASK-COMPLETE",
        "PATCH /tasks/{taskId} stores the completion but answers completed: false (with completedAt set).",
    ),
    _rule(
        "TASK-COMPLETED-AT",
        "Completing a task (single or batch) leaves completedAt null, answered and stored.",
    ),
    _rule(
        "TASK-COMPLETION-PERSISTS",
        "PATCH /tasks/{taskId} and PATCH /tasks/batch answer the tasks as completed but store nothing.",
    ),
    _rule(
        "TIMESTAMPS-ISO8601",
        "dueDate (tasks) and occurredAt (activities) are stored and answered as RFC 2822 dates "
        "('Mon, 15 Jan 2024 10:00:00 GMT') instead of ISO 8601; completedAt stays ISO.",
        also_breaks=("RESPONSE-SCHEMA",),
    ),
    _rule(
        "TASK-BATCH-GET-ARRAY",
        'POST /tasks/batch answers {"tasks": [...]} instead of a bare array, so the other rules about '
        "its answer cannot hold either.",
        also_breaks=(
            "RESPONSE-SCHEMA",
            "TASK-BATCH-GET-OMITS-UNKNOWN",
            "TASK-BATCH-GET-EMPTY",
            "TASK-BATCH-GET-LARGE",
            "TASK-BATCH-ROUTE",
        ),
    ),
    _rule(
        "TASK-BATCH-GET-OMITS-UNKNOWN",
        "POST /tasks/batch also answers a stub open task ({id, completed: false, completedAt: null}) for "
        "every unknown id, instead of leaving it out.",
    ),
    _rule(
        "TASK-BATCH-GET-EMPTY",
        "POST /tasks/batch with an empty ids list answers 400.",
        also_breaks=(_VALID_ACCEPTED,),
    ),
    _rule(
        "TASK-BATCH-GET-LARGE",
        "POST /tasks/batch with more than 50 ids answers 413.",
        also_breaks=(_VALID_ACCEPTED,),
    ),
    _rule(
        "TASK-BATCH-COMPLETE",
        "PATCH /tasks/batch stores the completions but answers each task with completed: "
        "false (completedAt set).",
    ),
    _rule(
        "TASK-BATCH-COMPLETE-OMITS-UNKNOWN",
        "PATCH /tasks/batch also answers a stub completed task for every unknown id.",
    ),
    _rule(
        "TASK-BATCH-ROUTE",
        "/tasks/batch is shadowed by /tasks/{taskId}: POST answers 405 (Allow: GET, PATCH) and PATCH answers "
        "404 'No task exists with ID: batch', so every rule judged through the batch endpoints fails too.",
        also_breaks=(
            "TASK-BATCH-GET-ARRAY",
            "TASK-BATCH-GET-OMITS-UNKNOWN",
            "TASK-BATCH-GET-EMPTY",
            "TASK-BATCH-GET-LARGE",
            "TASK-BATCH-COMPLETE",
            "TASK-BATCH-COMPLETE-OMITS-UNKNOWN",
            "TASK-COMPLETED-AT",
            "TASK-COMPLETION-PERSISTS",
            # Schemathesis's ensure_resource_availability (ST302) reports a task it just created as
            # "not found" via the shadowed PATCH /tasks/batch; judges that map ST302 to TASK-GET fail it.
            "TASK-GET",
            _VALID_ACCEPTED,
        ),
    ),
    # --- activities -----------------------------------------------------------------------------------
    _rule(
        "ACTIVITY-RETURNS-ID",
        "POST /activities answers the activity without its id (it is stored under one).",
        also_breaks=("RESPONSE-SCHEMA",),
    ),
    _rule(
        "ACTIVITY-ALL-TYPES",
        "POST /activities refuses type LINKEDIN_INMAIL with 400.",
        also_breaks=(_VALID_ACCEPTED,),
    ),
    _rule(
        "ACTIVITY-RICH-CONTENT",
        "POST /activities refuses a body field containing '<' (HTML) with 400.",
        also_breaks=(_VALID_ACCEPTED,),
    ),
    _rule(
        "ACTIVITY-SUBJECT-VERBATIM",
        "POST /activities strips square brackets from the subject before storing and answering it.",
    ),
    # --- contacts -------------------------------------------------------------------------------------
    _rule(
        "CONTACT-CREATE-MAPS-EXTERNAL-IDS",
        "POST /contacts answers the CRM id in externalId as well, instead of echoing the externalId sent.",
    ),
    _rule(
        "CONTACT-CREATE-BATCH-100",
        "POST /contacts with more than 50 contacts answers 413.",
        also_breaks=(_VALID_ACCEPTED,),
    ),
    _rule(
        "CONTACT-CREATE-UNKNOWN-FIELDS",
        "POST /contacts refuses a contact carrying a field the spec does not list, with 400.",
        also_breaks=(_VALID_ACCEPTED,),
    ),
    _rule(
        "CONTACT-CREATE-EMPTY",
        'POST /contacts with {"contacts": []} answers 400.',
        also_breaks=(_VALID_ACCEPTED,),
    ),
    _rule(
        "CONTACT-SYNC-OMITS-UNMATCHED",
        "POST /contacts/sync also answers every unmatched contact, with a made-up crmId.",
    ),
    _rule("CONTACT-SYNC-MATCHES-EMAIL", "POST /contacts/sync compares emails case-sensitively."),
    _rule(
        "CONTACT-SYNC-MATCHES-LINKEDIN",
        "POST /contacts/sync compares LinkedIn URLs exactly, so a trailing slash prevents a match.",
    ),
    _rule(
        "CONTACT-UPDATE",
        "PUT /contacts answers success: false ('Update failed') for every known crmId and updates nothing.",
        # That rule's statement also demands that "the known one succeeds".
        also_breaks=("CONTACT-UPDATE-UNKNOWN-PARTIAL",),
    ),
    _rule(
        "CONTACT-UPDATE-UNKNOWN-PARTIAL",
        "PUT /contacts answers 404 for the whole request (and updates nothing) when any crmId is unknown.",
    ),
    # --- companies ------------------------------------------------------------------------------------
    _rule(
        "COMPANY-CREATE-MAPS-EXTERNAL-IDS",
        "POST /companies answers the CRM id in externalId as well, instead of echoing the externalId sent.",
    ),
    _rule(
        "COMPANY-CREATE-UNKNOWN-FIELDS",
        "POST /companies refuses a company carrying a field the spec does not list, with 400.",
        also_breaks=(_VALID_ACCEPTED,),
    ),
    _rule(
        "COMPANY-SYNC-OMITS-UNMATCHED",
        "POST /companies/sync also answers every unmatched company, with a made-up crmId.",
    ),
    _rule(
        "COMPANY-SYNC-MATCHES-DOMAIN",
        "POST /companies/sync compares domains exactly as sent (no lower-casing, scheme, "
        "www. or path stripping).",
    ),
    _rule(
        "COMPANY-UPDATE",
        "PUT /companies answers success: false ('Update failed') for every known crmId and updates nothing.",
    ),
    _rule(
        "COMPANY-UPDATE-UNKNOWN-PARTIAL",
        "PUT /companies answers 404 for the whole request (and updates nothing) when any crmId is unknown.",
    ),
    # --- associations ---------------------------------------------------------------------------------
    _rule(
        "ASSOC-CREATE",
        "POST /associations answers success: false and links nothing when a request links two or more "
        "known contacts to the same company.",
    ),
    _rule("ASSOC-UPSERT", "POST /associations counts re-sent pairs as created again."),
    _rule(
        "ASSOC-PARTIAL-SUCCESS",
        "POST /associations answers success: false (still 200, the valid pairs linked, errors[] listed) "
        "when any pair names an unknown contact or company.",
    ),
    _rule(
        "ASSOC-ERRORS-NAME-PAIR",
        "POST /associations skips pairs with unknown ids silently: the answer has no errors[].",
    ),
    # --- users ----------------------------------------------------------------------------------------
    _rule("USERS-OPTIONAL", "GET /users answers 500.", also_breaks=("SERVER-NO-5XX",)),
    # --- input handling and answers -------------------------------------------------------------------
    _rule(
        "INPUT-MALFORMED-JSON",
        "A body that is not valid JSON is answered 500 instead of 400.",
        also_breaks=("SERVER-NO-5XX",),
    ),
    _rule(
        "INPUT-MISSING-REQUIRED",
        "Required top-level fields are not checked (subject, type, the contacts list ...): a missing one is "
        "filled with a neutral value ('', 'missing', the first enum value, false, [] or {}) and the request "
        "succeeds. Not on /tasks/batch, whose path Schemathesis also sends as the invalid taskId 'batch'.",
        # A body missing a required field is also "a body of the wrong shape" (INPUT-INVALID-REJECTED),
        # and Schemathesis reports both as one kind of finding (ST201).
        also_breaks=("INPUT-INVALID-REJECTED",),
    ),
    _rule(
        "INPUT-ITEM-MISSING-REQUIRED",
        "Required fields of list items are not checked (a contact's externalId, an update's crmId, a "
        "pair's ids): a missing one is filled with a neutral value, so a contact without externalId is "
        "created and mapped as if it had one.",
        also_breaks=("INPUT-INVALID-REJECTED",),
    ),
    _rule(
        "INPUT-INVALID-REJECTED",
        "Types, enums and formats are not checked: a wrong value is coerced (123 -> '123', an unknown enum "
        "value -> the first known one, a bad date-time -> 1970-01-01T00:00:00Z); required fields still are.",
    ),
    _rule(
        "INPUT-VALID-ACCEPTED",
        "A body holding an empty string anywhere is refused with 400 ('must not be empty'), although the "
        "schemas allow it.",
    ),
    _rule(
        "SERVER-NO-5XX",
        "POST /tasks answers 500 when type is anything but a plain word of ASCII letters (e.g. "
        "empty, digits, unicode): generated input finds it, Enginy's types (call, email) do not.",
    ),
    _rule(
        "RESPONSE-SCHEMA",
        "POST /activities answers type lower-cased (e.g. linkedin), outside the spec's "
        "enum; the stored value is right.",
    ),
    _rule(
        "RESPONSE-CONTENT-TYPE-JSON",
        "Success answers keep their JSON body but are labelled Content-Type: text/plain.",
    ),
    _rule(
        "ERROR-BODY-JSON",
        "Every error is answered as text/plain 'Title: message' instead of the JSON error body.",
    ),
    # --- under load -----------------------------------------------------------------------------------
    _rule(
        "LOAD-P95-LATENCY",
        f"An API request that arrives while another is being handled waits {OVERLAP_DELAY_MS} ms first "
        "(work queued "
        "behind a lock): one request at a time is answered at once, overlapping ones (enginy-conformance "
        "load) are over its default p95 budget of 1000 ms. Only load judges the rule.",
    ),
    # --- concurrency ----------------------------------------------------------------------------------
    Fault(
        id="clock-ids",
        kind="concurrency",
        breaks="TASK-CREATE-RETURNS-ID",
        description="POST /tasks draws the task id from the clock in milliseconds (task-<ms>), as a hurried "
        "server does: two tasks created in the same millisecond get the same id, and the later one is not "
        "stored. One create at a time never shows it; creates arriving together (load) do.",
    ),
    # --- transport ------------------------------------------------------------------------------------
    Fault(
        id="latency",
        kind="transport",
        description="Every API request waits ms milliseconds, plus a seeded random 0..jitter, before "
        "it is handled.",
        params=(
            Param("ms", 200, "added delay in milliseconds", integer=True, maximum=600_000),
            Param("jitter", 0, "extra random delay, 0..jitter milliseconds", integer=True, maximum=600_000),
        ),
    ),
    Fault(
        id="error-rate",
        kind="transport",
        description="A seeded random share (rate) of API requests is answered 503 with Retry-After: 1.",
        params=(_RATE,),
    ),
    Fault(
        id="rate-limit",
        kind="transport",
        description="A seeded random share (rate) of API requests is answered 429 with Retry-After.",
        params=(_RATE, Param("retry_after", 1, "Retry-After value in seconds", integer=True, maximum=86_400)),
    ),
    Fault(
        id="drop-connection",
        kind="transport",
        description="A seeded random share (rate) of API requests gets no answer: the connection is closed. "
        "Needs the mock's own waitress server.",
        params=(_RATE,),
    ),
)


class FaultRegistry:
    """The known faults by id. Registration is explicit; duplicates and unknown names are refused."""

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._faults: dict[str, Fault] = {}
        for fault in faults:
            self.register(fault)

    def register(self, fault: Fault) -> None:
        if fault.id in self._faults:
            raise ValueError(f"Fault {fault.id} is registered twice.")
        self._faults[fault.id] = fault

    def __iter__(self) -> Iterator[Fault]:
        return iter(self._faults.values())

    def __len__(self) -> int:
        return len(self._faults)

    def __contains__(self, fault_id: object) -> bool:
        return fault_id in self._faults

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._faults)

    def get(self, fault_id: str) -> Fault:
        """Return the fault (ids match case-insensitively); unknown ids raise FaultSpecError."""
        if fault_id in self._faults:
            return self._faults[fault_id]
        by_folded = {known.casefold(): known for known in self._faults}
        if fault_id.casefold() in by_folded:
            return self._faults[by_folded[fault_id.casefold()]]
        matches = difflib.get_close_matches(fault_id.upper(), [known.upper() for known in self._faults], n=3)
        hint = (
            f" Did you mean {', '.join(by_folded[match.casefold()] for match in matches)}?" if matches else ""
        )
        raise FaultSpecError(
            f"Unknown fault {fault_id!r}.{hint} 'enginy-mock --list-faults' lists all {len(self._faults)}."
        )


FAULTS = FaultRegistry(_ALL_FAULTS)


def clock_id(prefix: str, moment: datetime) -> str:
    """The id the clock-ids fault gives a record: its prefix and the moment in whole milliseconds."""
    return f"{prefix}-{int(moment.timestamp() * 1000)}"


@dataclass(frozen=True)
class FaultSelection:
    """A fault switched on, with its parameter values (defaults filled in)."""

    fault: Fault
    params: Mapping[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.fault.params:
            return self.fault.id
        values = ",".join(f"{name}={value:g}" for name, value in self.params.items())
        return f"{self.fault.id}:{values}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.fault.id, "kind": self.fault.kind, "params": dict(self.params), "spec": str(self)}


def parse_fault(text: str, registry: FaultRegistry = FAULTS) -> FaultSelection:
    """Parse ``ID`` or ``ID:NAME=VALUE,...``; raise FaultSpecError with a sentence saying what is wrong."""
    fault_id, _, raw_params = text.strip().partition(":")
    fault = registry.get(fault_id.strip())
    values = {param.name: param.default for param in fault.params}
    if raw_params.strip():
        if not fault.params:
            raise FaultSpecError(f"Fault {fault.id} takes no parameters; write just {fault.id}.")
        for assignment in raw_params.split(","):
            name, equals, value = assignment.partition("=")
            name = name.strip()
            if not equals or name not in values:
                names = ", ".join(param.name for param in fault.params)
                raise FaultSpecError(
                    f"Fault {fault.id}: cannot read {assignment.strip()!r}; "
                    f"write NAME=VALUE with NAME one of {names}."
                )
            values[name] = fault.param(name).parse(fault.id, value.strip())
    return FaultSelection(fault=fault, params=values)


def parse_faults(texts: Iterable[str], registry: FaultRegistry = FAULTS) -> tuple[FaultSelection, ...]:
    """Parse several selections; naming a fault twice keeps the last one's parameters."""
    chosen: dict[str, FaultSelection] = {}
    for text in texts:
        if text.strip():
            selection = parse_fault(text, registry)
            chosen[selection.fault.id] = selection
    return tuple(chosen.values())


class FaultState:
    """The faults active right now; replaced as a whole by PUT /__admin/faults. Thread-safe."""

    def __init__(self, selections: Sequence[FaultSelection] = (), *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._install(selections, seed)

    def _install(self, selections: Sequence[FaultSelection], seed: int) -> None:
        self._selections = {selection.fault.id: selection for selection in selections}
        self._seed = seed
        # One generator per fault, so that switching one fault on does not shift another's draws.
        self._random = {fault_id: random.Random(f"{seed}/{fault_id}") for fault_id in self._selections}

    def replace(self, selections: Sequence[FaultSelection], *, seed: int | None = None) -> None:
        with self._lock:
            self._install(selections, self._seed if seed is None else seed)

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def selections(self) -> tuple[FaultSelection, ...]:
        with self._lock:
            return tuple(self._selections.values())

    def any_active(self) -> bool:
        """Is any fault switched on? (The plain case is answered by shortcuts; see HealthShortcut.)"""
        return bool(self._selections)

    def active(self, fault_id: str) -> bool:
        if fault_id not in FAULTS:
            # A typo in a fault id would silently never fire; make it loud in tests instead.
            raise KeyError(f"{fault_id} is not a registered fault")
        return fault_id in self._selections

    # A request may ask active() and then param()/draw() while PUT /__admin/faults swaps the set; a
    # fault that vanished in between answers its default and a draw that never fires, not a KeyError.

    def param(self, fault_id: str, name: str) -> float:
        with self._lock:
            selection = self._selections.get(fault_id)
        return selection.params[name] if selection is not None else FAULTS.get(fault_id).param(name).default

    def draw(self, fault_id: str) -> float:
        """A seeded random number in [0, 1) from this fault's own generator (1.0 once switched off)."""
        with self._lock:
            generator = self._random.get(fault_id)
            return generator.random() if generator is not None else 1.0
