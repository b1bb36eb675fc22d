"""Generated testing: Schemathesis explores the API from the spec and its findings become rule evidence.

How it is driven, and why: in process, through the engine the `schemathesis run` CLI itself drives
(`schemathesis.engine.from_schema(schema).execute()`), reading its event stream.

* Phases, workers, budgets and shrinking behave exactly as in `schemathesis run`, which is what the
  field notes measured; the pytest route (`@schema.parametrize`, `as_state_machine`) would need a pytest
  session inside our run and re-implements the phase plan.
* Every `ScenarioFinished` event carries a recorder holding each case, each check result (with the
  `Failure` object: code, title, message) and each request and response as objects, so a failure becomes
  evidence without parsing text; a subprocess with `--report ndjson` gives the same data as JSON to parse.
* No subprocess: the key never appears on a command line (visible in `ps`), and there is no second
  interpreter start-up or report file to clean.
The cost is leaning on a less documented API; `failure_map` pins what we read, and the tests run real
Schemathesis against small servers.

Isolation from the integrator's environment: the configuration is built here from a dict
(`schemathesis.Config.from_dict`) and handed to the loader, so a `schemathesis.toml` in the working
directory is never discovered; every check we do not map is switched off (also custom checks someone
registered with `@schemathesis.check`); Hypothesis writes its caches into a temporary directory instead of
`./.hypothesis`, and Schemathesis' own cache is disabled.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import schemathesis
from schemathesis.config import ConfigError
from schemathesis.engine import Status, StopReason, events, from_schema
from schemathesis.engine.errors import ServerUnavailable, UnhealthyAPIError, UnresponsiveOperationError
from schemathesis.engine.run import TESTING_PHASES
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER
from schemathesis.openapi.checks import AuthScenario, IgnoredAuth

from conformance import judges
from conformance.checks._spec import Problem, SpecSchemas
from conformance.client import NOT_JSON, Reply, Sent, deadline_watch, watch_session
from conformance.engine_recording import Redactor, exchange_from_interaction, exchange_from_prepared
from conformance.errors import ConformanceError, ServerUnreachable, TransportError, UsageError
from conformance.failure_map import (
    ENGINE_RULES,
    EXCLUDED_CHECKS,
    OPTIONAL_OPERATION_STATUSES,
    OWN_JUDGED,
    PASSABLE_RULES,
    ROWS,
    Observation,
    checks_for,
    judged_by,
    route,
)
from conformance.results import CreatedRecord, Evidence, Exchange
from conformance.tagging import CREATES, TAGGED, Ledger, Tagger, created_ids
from enginy_spec import OPENAPI_PATH, Catalogue, Rule, load_catalogue, load_spec, operations

if TYPE_CHECKING:
    from schemathesis.core.failures import Failure
    from schemathesis.engine.recorder import ScenarioRecorder
    from schemathesis.schemas import BaseSchema

    from conformance.settings import Profile, RunSettings

__all__ = [
    "BUDGETS",
    "ENGINE_RULES",
    "Budget",
    "EngineError",
    "Gate",
    "Job",
    "PhaseCallback",
    "RequestsCallback",
    "Share",
    "ShareResult",
    "build_config",
    "estimated_requests",
    "estimated_writes",
    "judge_generated",
    "phases_for",
    "plan_shares",
    "run_share",
]

PHASES: tuple[str, ...] = ("examples", "coverage", "fuzzing", "stateful")
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Two workers are two threads running Hypothesis, which parses lambda sources with `ast.parse` to
# describe strategies; on Python 3.11 concurrent parses crash with "SystemError: AST constructor
# recursion depth mismatch" (CPython gh-106905). The field notes saw it at 3+ workers; our own test runs
# hit it at 2 as well (about 1 run in 6), so 3.11 runs single-threaded. Against a local server the
# second worker bought nothing measurable anyway (the engine is CPU-bound on generation).
_MAX_WORKERS = 2 if sys.version_info >= (3, 12) else 1
# Network errors on this many operations with not one answer anywhere means nothing is listening.
_UNREACHABLE_AFTER = 3
_MAX_EXCHANGES = 4  # per evidence: the failing request and the few that led to it (stateful chains)
_MAX_MESSAGE = 2000


# `on_requests(count, phase)`: `count` more requests were sent in that phase ("coverage", "fuzzing", ...).
RequestsCallback = Callable[[int, str], None]
# `on_phase(phase, "started" | "finished")`, from a pass run in this process (worker processes' shares
# interleave their phases, so they tell only their request counts).
PhaseCallback = Callable[[str, str], None]


class EngineError(ConformanceError):
    """Schemathesis itself failed (a crash, an unsatisfiable schema): a tool problem, not a verdict.

    `evidence` holds what the run had found before the error, for callers that want to show it anyway.
    """

    def __init__(self, message: str, *, evidence: Sequence[Evidence] = ()) -> None:
        super().__init__(message)
        self.evidence = tuple(evidence)


@dataclass(frozen=True, slots=True)
class Budget:
    """How much generated testing a profile buys.

    `max_examples` bounds the fuzzing phase per operation and the number of stateful scenarios; the
    examples and coverage phases are deterministic and come on top (about 700 requests for this spec).
    """

    max_examples: int
    stateful_steps: int
    phases: tuple[str, ...] = PHASES


# quick: a pre-push check against a local server, under a minute; full: a release gate, under 5 minutes.
# Figures measured against the reference mock are in docs/benchmarks.md ("Conformance suite").
BUDGETS: Mapping[Profile, Budget] = {
    "quick": Budget(max_examples=10, stateful_steps=5),
    "full": Budget(max_examples=100, stateful_steps=10),
}


def judge_generated(
    settings: RunSettings,
    catalogue: Catalogue,
    *,
    progress: Callable[[str], None] = lambda _: None,
    budget: Budget | None = None,
    run_id: str = "",
    ledger: Ledger | None = None,
    covered: Iterable[str] = (),
    lanes: int = 1,
    gate: Gate | None = None,
    deadline: float | None = None,
    on_requests: RequestsCallback | None = None,
    stop: Any = None,
    requests: dict[str, int] | None = None,
    on_phase: PhaseCallback | None = None,
) -> list[Evidence]:
    """Run Schemathesis against `settings.base_url` and return evidence about the rules it can judge.

    `budget` replaces the profile's budget (`BUDGETS[settings.profile]`); tests and the benchmark use it.
    `covered` names rules scripted checks judge in the same run: Schemathesis checks that would only send
    extra requests about them (ignored_auth) are left out. `lanes` > 1 splits the pass into shares run by
    that many worker processes (conformance.engine_parallel), which is what makes a pass against a
    server far away fast; `gate` bounds the requests in flight across all of them, `deadline` (a
    time.monotonic() value, --max-time) ends the pass, `on_requests(n, phase)` hears of every n requests
    and `on_phase(phase, "started"|"finished")` of each phase run in this process.
    Setting `stop` (an Event) ends the pass early; `requests` is filled with the requests per phase.
    Every create request it sends is tagged with `settings.tag` and `run_id` (conformance.tagging), and
    every record a server reports creating is added to `ledger`, counted as untagged when its body left
    nothing to tag.
    Returns [] without sending anything when no engine-judged rule is selected or on a dry run. Raises
    `TransportError` when not a single request got an answer, `EngineError` when Schemathesis itself
    failed, `UsageError` when the settings cannot be turned into a Schemathesis configuration.
    """
    rules = _selected_rules(settings, catalogue)
    checks = checks_for((rule.id for rule in rules), covered=covered)
    rules = tuple(rule for rule in rules if rule.id in judged_by(checks))
    if not rules or settings.dry_run:
        return []
    budget = budget or BUDGETS[settings.profile]
    needed = estimated_writes(budget)
    if settings.max_writes is not None and settings.max_writes < needed:
        reason = (
            f"Generated testing was not run: with profile {settings.profile} it sends about {needed} write "
            f"requests (POST/PUT/PATCH), more than --max-writes {settings.max_writes} allows; raise or unset "
            "--max-writes to run it."
        )
        progress(reason)
        return [
            Evidence(rule_id=rule.id, outcome="skipped", source="schemathesis", message=reason)
            for rule in rules
        ]
    phases = phases_for(budget, checks)
    progress(
        f"generated testing: Schemathesis {schemathesis.__version__}, profile {settings.profile}, phases "
        f"{', '.join(phases)}, {budget.max_examples} examples per operation, checks {', '.join(checks)}"
        + (f", {lanes} worker processes" if lanes > 1 else "")
    )
    collector = _Collector(
        rules={rule.id: rule for rule in rules},
        redactor=Redactor(secret=settings.api_key, header=settings.api_key_header),
        progress=progress,
        ledger=ledger if ledger is not None else Ledger(),
    )
    started = time.monotonic()
    job = Job(
        settings=settings,
        rule_ids=tuple(rule.id for rule in rules),
        checks=checks,
        budget=budget,
        run_id=run_id or secrets.token_hex(4),
        deadline=deadline,
    )
    if lanes <= 1:
        share = Share(operations=None, phases=phases, max_examples=budget.max_examples)
        result = run_share(
            job, share, progress=progress, gate=gate, on_requests=on_requests, stop=stop, on_phase=on_phase
        )
        collector.absorb(result)
    else:
        from conformance.engine_parallel import run_in_lanes

        shares = plan_shares(budget, phases, lanes)
        for result in run_in_lanes(
            job, shares, lanes=lanes, gate=gate, progress=progress, on_requests=on_requests, stop=stop
        ):
            collector.absorb(result)
    if requests is not None:
        requests.update(collector.requests)
    return collector.finish(base_url=settings.base_url, elapsed=time.monotonic() - started)


class Gate(Protocol):
    """Bounds the requests in flight (a semaphore shared by the run's threads and worker processes)."""

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool: ...

    def release(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Share:
    """A part of the pass: these operations (None: all) in these phases, with this many examples.

    A partitioned pass runs every operation's examples, coverage and fuzzing phases as a share of its
    own, and the stateful phase (which needs every operation, to follow links) in `seed_offset`-
    distinct shares that split its scenarios between them.
    """

    operations: tuple[str, ...] | None
    phases: tuple[str, ...]
    max_examples: int
    seed_offset: int = 0
    weight: float = 0.0  # about how many requests it sends, to start the largest first


@dataclass(frozen=True, slots=True)
class Job:
    """What every share of one pass has in common (sent to worker processes, the key included)."""

    settings: RunSettings
    rule_ids: tuple[str, ...]
    checks: tuple[str, ...]
    budget: Budget
    run_id: str
    deadline: float | None = None


# The checks that judge only what the stateful phase's chains show.
_STATEFUL_ONLY_CHECKS = frozenset({"ensure_resource_availability", "use_after_free"})


def phases_for(budget: Budget, checks: Sequence[str]) -> tuple[str, ...]:
    """The budget's phases, less those that would judge nothing new.

    The examples phase sends the spec's examples, which the coverage phase sends again as its first
    positive cases: with coverage on, it is left out. When every enabled check judges stateful chains
    only, so are the phases that make none.
    """
    phases = tuple(p for p in budget.phases if not (p == "examples" and "coverage" in budget.phases))
    if checks and set(checks) <= _STATEFUL_ONLY_CHECKS and "stateful" in phases:
        return ("stateful",)
    return phases


# Requests per operation the coverage phase sends for this spec (Schemathesis 4.32), measured; an
# operation not listed counts as _COVERAGE_DEFAULT. Only the order of the shares depends on them.
_COVERAGE_WEIGHTS: Mapping[str, int] = {
    "createActivity": 86,
    "createContacts": 85,
    "syncContacts": 85,
    "updateContacts": 85,
    "createCompanies": 78,
    "syncCompanies": 78,
    "updateCompanies": 71,
    "updateTask": 65,
    "createTask": 61,
    "createAssociations": 38,
    "getTasksBatch": 29,
    "completeTasksBatch": 22,
}
_COVERAGE_DEFAULT = 8
_PARAMETERLESS = frozenset({"checkHealth", "listUsers"})  # fuzzing has one request to send


def plan_shares(budget: Budget, phases: Sequence[str], lanes: int) -> list[Share]:
    """The shares of a partitioned pass, largest first (greedy over `lanes` is then about balanced)."""
    shares: list[Share] = []
    per_operation = tuple(p for p in phases if p != "stateful")
    if per_operation:
        for operation in operations():
            weight = 0.0
            if "coverage" in per_operation:
                weight += _COVERAGE_WEIGHTS.get(operation, _COVERAGE_DEFAULT)
            if "fuzzing" in per_operation:
                weight += 1 if operation in _PARAMETERLESS else budget.max_examples
            if "examples" in per_operation:
                weight += 2
            shares.append(Share((operation,), per_operation, budget.max_examples, weight=weight))
    if "stateful" in phases:
        scenarios = budget.max_examples
        total = scenarios * (budget.stateful_steps + 1)
        # A stateful share about as long as the largest per-operation share, in at most `lanes` parts.
        largest = max((share.weight for share in shares), default=float(total))
        parts = max(1, min(lanes, scenarios, -(-total // max(1, int(largest)))))
        for index in range(parts):
            count = scenarios // parts + (1 if index < scenarios % parts else 0)
            weight = float(count * (budget.stateful_steps + 1))
            shares.append(Share(None, ("stateful",), count, seed_offset=index, weight=weight))
    return sorted(shares, key=lambda share: -share.weight)


def run_share(
    job: Job,
    share: Share,
    *,
    progress: Callable[[str], None] = lambda _: None,
    gate: Gate | None = None,
    on_requests: RequestsCallback | None = None,
    quiet: bool = False,
    app: Any = None,
    stop: Any = None,
    on_phase: PhaseCallback | None = None,
) -> ShareResult:
    """Run one share of the pass in this process and return what it found, ready to be merged.

    `app` (a WSGI application) replaces the server: conformance.engine_warmup uses it.
    """
    settings = job.settings
    catalogue = load_catalogue()
    config = build_config(settings, job.budget, checks=job.checks, share=share)
    schema = _load_schema(settings, config)
    if app is not None:
        schema.app = app
    if share.operations is not None:
        # Excluded rather than included: our per-operation config overrides already put an include filter
        # on the schema (Schemathesis' priority_filter), and includes are OR-ed with it.
        wanted = set(share.operations)
        others = [op for op in operations() if op not in wanted]
        schema = schema.exclude(operation_id=others) if others else schema
    tagger = Tagger(tag=settings.tag, run_id=job.run_id)
    collector = _Collector(
        rules={rule_id: catalogue.get(rule_id) for rule_id in job.rule_ids},
        redactor=Redactor(secret=settings.api_key, header=settings.api_key_header),
        progress=progress,
        tagger=tagger,
        on_requests=on_requests,
        on_phase=on_phase,
        quiet=quiet,
    )
    bounds = _Bounds(timeout=settings.timeout, gate=gate, deadline=job.deadline)
    with _hypothesis_home_outside_cwd(), _tagging(schema, tagger), _bounded_transport(bounds):
        stream = from_schema(schema).execute()
        for event in stream:
            collector.feed(event)
            out_of_time = job.deadline is not None and time.monotonic() >= job.deadline
            if out_of_time:
                collector.out_of_time = True
            stopped = stop is not None and stop.is_set()
            if (collector.unreachable or out_of_time or stopped) and not collector.stopping:
                collector.stopping = True
                stream.stop()  # the stream still ends with EngineFinished; keep reading until then
    # A cut request usually reaches _error as a timeout too; one that a check swallowed does not.
    collector.timed_out = max(collector.timed_out, bounds.cut)
    collector.out_of_time = collector.out_of_time or bounds.refused > 0
    return collector.export()


@contextlib.contextmanager
def _tagging(schema: BaseSchema, tagger: Tagger) -> Iterator[None]:
    """Tag every create request of this run's schema on its way out (a global `before_call` hook, since
    Schemathesis offers no other scope for it; removed when the run ends)."""

    def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
        operation = _OPERATION_IDS.get(case.operation.label)
        if case.operation.schema is schema and operation in TAGGED:
            tagger.tag_body(operation, case.body)

    GLOBAL_HOOK_DISPATCHER.register_hook_with_name(before_call, "before_call")
    try:
        yield
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)


@dataclass(slots=True)
class _Bounds:
    """The limits every generated request is held to, and how often they cut one short."""

    timeout: float
    gate: Gate | None = None
    deadline: float | None = None
    cut: int = 0  # requests cut at their deadline
    refused: int = 0  # requests not sent because --max-time had passed
    lock: threading.Lock = field(default_factory=threading.Lock)


def _timed_out(message: str, seconds: float, request: Any = None) -> Exception:
    """A ReadTimeout shaped like the one requests raises: Schemathesis parses "(read timeout=N)" from it."""
    import requests
    from urllib3.exceptions import ReadTimeoutError

    reason = ReadTimeoutError(None, "", f"{message} (read timeout={seconds:g})")  # type: ignore[arg-type]
    return requests.exceptions.ReadTimeout(reason, request=request)


@contextlib.contextmanager
def _bounded_transport(bounds: _Bounds) -> Iterator[None]:
    """Hold every request Schemathesis sends to the run's limits while the pass runs.

    Schemathesis bounds the connect and each read by its request-timeout, not the whole answer: a server
    trickling its answer would hold a share for as long as it likes. Here each request gets the suite's
    watchdog (conformance.client: the connection is cut when `timeout`, or the run's --max-time, passes;
    the request then ends as a timeout, which is not judged) and waits for a turn at the `gate`.
    Schemathesis offers no hook around a send, so its transport's `send` is wrapped for the pass and
    restored after it.
    """
    from schemathesis.transport.requests import RequestsTransport

    original = RequestsTransport.send

    def send(self: Any, case: Any, *, session: Any = None, **kwargs: Any) -> Any:
        import requests

        started = time.monotonic()
        if bounds.deadline is not None and started >= bounds.deadline:
            with bounds.lock:
                bounds.refused += 1
            raise _timed_out("not sent: the run's --max-time had passed", 0.0)
        if session is not None:
            watch_session(session)
        budget = bounds.timeout
        if bounds.deadline is not None:
            budget = max(0.05, min(budget, bounds.deadline - started))
        if bounds.gate is not None:
            bounds.gate.acquire()
        try:
            with deadline_watch(budget) as holder:
                try:
                    return original(self, case, session=session, **kwargs)
                except requests.exceptions.RequestException as ex:
                    if not holder.cut:
                        raise
                    cut_request = ex.request
            # Cut by the watchdog: whatever error the cut caused, it is a request without a timely answer.
            with bounds.lock:
                bounds.cut += 1
            raise _timed_out(f"no whole answer within {budget:.1f} s", budget, cut_request)
        finally:
            if bounds.gate is not None:
                bounds.gate.release()

    RequestsTransport.send = send  # type: ignore[method-assign]
    try:
        yield
    finally:
        RequestsTransport.send = original  # type: ignore[method-assign]


# Write requests the examples and coverage phases send per write operation of this spec, whatever the
# budget (they enumerate the schema once): 832 over 12 write operations, measured with Schemathesis
# 4.32.5. Most are invalid bodies answered 400, but a cap on writes is about requests, not records.
_ENUMERATED_WRITES_PER_OPERATION = 70


def estimated_writes(budget: Budget) -> int:
    """About how many POST/PUT/PATCH requests a budget sends (within ~10% for this spec).

    Examples and coverage enumerate the schema (a constant per operation), fuzzing sends `max_examples`
    per operation, and the stateful phase up to `max_examples` scenarios of `stateful_steps` steps.
    """
    writes = sum(1 for op in operations().values() if op.method in _WRITE_METHODS)
    enumerated = _ENUMERATED_WRITES_PER_OPERATION if {"examples", "coverage"} & set(budget.phases) else 0
    fuzzing = budget.max_examples if "fuzzing" in budget.phases else 0
    stateful = budget.max_examples * budget.stateful_steps if "stateful" in budget.phases else 0
    return writes * (enumerated + fuzzing) + stateful


def estimated_requests(budget: Budget, phases: Sequence[str] | None = None) -> int:
    """About how many requests the pass sends in these phases (the budget's own by default), for the
    progress line: the coverage weights per operation, fuzzing's examples and the stateful steps."""
    chosen = set(budget.phases if phases is None else phases)
    total = 0
    for operation in operations():
        if "coverage" in chosen:
            total += _COVERAGE_WEIGHTS.get(operation, _COVERAGE_DEFAULT)
        if "examples" in chosen:
            total += 2
        if "fuzzing" in chosen:
            total += 1 if operation in _PARAMETERLESS else budget.max_examples
    if "stateful" in chosen:
        total += budget.max_examples * (budget.stateful_steps + 1)
    return total


def build_config(
    settings: RunSettings, budget: Budget, *, checks: Sequence[str], share: Share | None = None
) -> schemathesis.Config:
    """The whole Schemathesis configuration, built here so that no schemathesis.toml can change it.

    The base URL and the key are not in it: they come from the user, and values in a config dict get
    `${VAR}` interpolation, so they are set on the loaded schema with `schema.config.update(...)`.
    `share` narrows it to one share of a partitioned pass (its phases, examples and seed).
    """
    phases = share.phases if share is not None else budget.phases
    max_examples = share.max_examples if share is not None else budget.max_examples
    # Every share of the stateful phase draws its own scenarios; the other phases seed each operation
    # from the run's seed and the operation's name, so a share generates what the whole pass would.
    seed = settings.seed + (1000 * share.seed_offset if share is not None else 0)
    enabled = set(checks)
    check_section: dict[str, Any] = {"enabled": False}  # off by default: custom checks stay off too
    for name in checks:
        check_section[name] = {"enabled": True}
    for name in EXCLUDED_CHECKS:
        if name != "max_response_time":  # a bare number in the schema; leaving it unset keeps it off
            check_section[name] = {"enabled": False}
    data: dict[str, Any] = {
        "seed": seed,
        "workers": max(1, min(settings.workers, _MAX_WORKERS)),
        "request-timeout": settings.timeout,
        # Server hiccups are findings (SERVER-NO-5XX), not something to paper over with retries.
        "request-retries": 0,
        # By default an operation stops at its first failure, so one broken rule hides the others on
        # that operation (a server accepting any key never got the fuzzed body that crashes it). Every
        # rule is judged on its own, so keep generating; the cost is unshrunk (larger) repro requests.
        "continue-on-failure": True,
        # The crash cache would land in ./.schemathesis/ and replay old failures into a new verdict.
        "cache": {"enabled": False},
        # A 429 with Retry-After is waited out and the request sent again (at most 3 times), as the
        # scripted checks do: a server asking to slow down is not failing.
        "rate-limit": "auto",
        # Generation speed on a busy CI box is not a property of the server under test.
        "suppress-health-check": ["too_slow"],
        "generation": {"database": "none", "max-examples": max_examples, "mode": "all"},
        "phases": {
            "examples": {"enabled": "examples" in phases},
            # unexpected-methods feeds only unsupported_method, which we exclude: don't send those requests.
            "coverage": {"enabled": "coverage" in phases, "unexpected-methods": []},
            "fuzzing": {"enabled": "fuzzing" in phases},
            "stateful": {"enabled": "stateful" in phases, "max-steps": budget.stateful_steps},
        },
        "checks": check_section,
        "operations": _optional_operation_overrides(enabled),
    }
    try:
        return schemathesis.Config.from_dict(data)
    except ConfigError as ex:  # our own dict: a bug here, but say so in the tool's words
        raise UsageError(
            f"The generated Schemathesis configuration was refused ({ex}); report this bug."
        ) from ex


def _optional_operation_overrides(enabled: set[str]) -> list[dict[str, Any]]:
    # USERS-OPTIONAL: "404, 405 or 501: feature off, treated as 'not implemented' (not an error)". So on
    # GET /users those statuses are neither a server error nor a refusal of a valid request.
    overrides = []
    for operation_id, statuses in OPTIONAL_OPERATION_STATUSES.items():
        section: dict[str, Any] = {}
        extra = [str(status) for status in statuses]
        if "not_a_server_error" in enabled:
            section["not_a_server_error"] = {"expected-statuses": ["2xx", "3xx", "4xx", *extra]}
        if "positive_data_acceptance" in enabled:
            accepted = ["2xx", "3xx", "401", "403", "409", "429", "5xx"]
            section["positive_data_acceptance"] = {"expected-statuses": [*accepted, *extra]}
        if section:
            overrides.append({"include-operation-id": operation_id, "checks": section})
    return overrides


def _selected_rules(settings: RunSettings, catalogue: Catalogue) -> tuple[Rule, ...]:
    only = set(settings.only)
    return tuple(rule for rule in catalogue if rule.id in ENGINE_RULES and (not only or rule.id in only))


def _load_schema(settings: RunSettings, config: schemathesis.Config) -> BaseSchema:
    # The spec names the key header X-API-Key, but integrators may configure another one. Schemathesis
    # takes the header to send from our config, and the header to strip or spoil for ignored_auth from the
    # security scheme, so the scheme must name the configured header too.
    document = load_spec()
    scheme_names = [
        name
        for name, scheme in document.get("components", {}).get("securitySchemes", {}).items()
        if scheme.get("type") == "apiKey" and scheme.get("in") == "header"
    ]
    schemes = document["components"]["securitySchemes"] if scheme_names else {}
    if all(schemes[name]["name"].lower() == settings.api_key_header.lower() for name in scheme_names):
        schema = schemathesis.openapi.from_path(OPENAPI_PATH, config=config)
    else:
        rewritten = copy.deepcopy(document)
        for name in scheme_names:
            rewritten["components"]["securitySchemes"][name]["name"] = settings.api_key_header
        schema = schemathesis.openapi.from_dict(rewritten, config=config)
    try:
        schema.config.update(base_url=settings.base_url, headers={settings.api_key_header: settings.api_key})
    except ConfigError as ex:
        raise UsageError(
            f"The base URL {settings.base_url!r} is not usable ({ex}); pass an http(s) URL."
        ) from ex
    return schema


@contextlib.contextmanager
def _hypothesis_home_outside_cwd() -> Iterator[None]:
    """Point Hypothesis' storage (constants and unicode caches) at a temporary directory for the run.

    `generation.database = "none"` stops the example database but Hypothesis still creates ./.hypothesis;
    a run must not leave files in the integrator's checkout. An explicit HYPOTHESIS_STORAGE_DIRECTORY wins.
    """
    import hypothesis.configuration as hypothesis_configuration

    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    # The module keeps the chosen directory in a plain module global (no name mangling at module level).
    previous = getattr(hypothesis_configuration, "__hypothesis_home_directory", None)
    with tempfile.TemporaryDirectory(prefix="enginy-conformance-hypothesis-") as directory:
        hypothesis_configuration.set_hypothesis_home_dir(directory)
        try:
            yield
        finally:
            hypothesis_configuration.set_hypothesis_home_dir(previous)


@dataclass(slots=True)
class _PhaseTally:
    started: float
    cases: int = 0
    operations: set[str] = field(default_factory=set)
    failures: int = 0


@dataclass(slots=True)
class _PassTally:
    answers: set[str] = field(default_factory=set)  # case ids: three checks may judge one answer
    operations: set[str] = field(default_factory=set)
    phases: dict[str, None] = field(default_factory=dict)  # ordered set
    checks: dict[str, None] = field(default_factory=dict)


# Which generated requests a passing check says something about: negative_data_rejection also "passes"
# on valid requests, and positive_data_acceptance on invalid ones; those passes prove nothing.
_PASS_NEEDS_MODE: Mapping[str, bool] = {"negative_data_rejection": True, "positive_data_acceptance": False}


def _is_negative(case: Any) -> bool:
    meta = getattr(case, "meta", None)
    return meta is not None and bool(meta.generation.mode.is_negative)


# How many RESPONSE-SCHEMA candidates a share keeps per operation (see _Collector.schema_candidates).
_MAX_SCHEMA_CANDIDATES: Final = 16


@dataclass(frozen=True, slots=True)
class _SchemaCandidate:
    """A RESPONSE-SCHEMA failure, its request's size, and the stored (field, value) pairs that would
    all have to be known for it to be excused (None: nothing stored can excuse it)."""

    size: int
    excused_by: frozenset[tuple[str, str]] | None
    evidence: Evidence


@dataclass(slots=True)
class ShareResult:
    """What one share of the pass found, in a form a worker process can send back (it pickles)."""

    found: dict[tuple[str, str, str], Evidence]
    sizes: dict[tuple[str, str, str], int]
    passes: dict[str, _PassTally]
    requests: dict[str, int]  # per phase
    created: list[tuple[CreatedRecord, bool]]  # and whether it was tagged
    answers: int
    unreachable_operations: set[str]
    first_network_error: str
    connection_refused_only: bool
    tool_errors: list[str]
    server_unavailable: bool
    interrupted: bool
    timed_out: int
    timed_out_requests: list[Exchange]
    out_of_time: bool
    stored_invalid: set[tuple[str, str]] = field(default_factory=set)
    schema_candidates: dict[tuple[str, str, str], list[_SchemaCandidate]] = field(default_factory=dict)


@dataclass(slots=True)
class _Collector:
    """Reads the event stream and keeps what becomes evidence, in the order it was found."""

    rules: Mapping[str, Rule]
    redactor: Redactor
    progress: Callable[[str], None]
    schemas: SpecSchemas = field(default_factory=SpecSchemas)
    tagger: Tagger = field(default_factory=lambda: Tagger(tag="enginy-conformance", run_id="run"))
    ledger: Ledger = field(default_factory=Ledger)
    on_requests: RequestsCallback | None = None
    on_phase: PhaseCallback | None = None
    quiet: bool = False  # a share in a worker process: no phase lines (the parent tells the progress)
    found: dict[tuple[str, str, str], Evidence] = field(default_factory=dict)
    # (field, JSON of the value) a lenient server accepted from a task write that broke the schema: a
    # later read answering it back is judged once, on that write (INPUT-INVALID-REJECTED).
    stored_invalid: set[tuple[str, str]] = field(default_factory=set)
    # Every RESPONSE-SCHEMA finding's candidates, with the stored values that would excuse each: a
    # share sees only its own writes, so the excuse is settled once every share is in (`finish`).
    schema_candidates: dict[tuple[str, str, str], list[_SchemaCandidate]] = field(default_factory=dict)
    # Size of the failing request behind each finding: the smallest repro seen is the one kept.
    sizes: dict[tuple[str, str, str], int] = field(default_factory=dict)
    passes: dict[str, _PassTally] = field(default_factory=dict)
    phases: dict[str, _PhaseTally] = field(default_factory=dict)
    answers: int = 0
    unreachable_operations: set[str] = field(default_factory=set)
    first_network_error: str = ""
    connection_refused_only: bool = True  # every network error so far was a failed connect
    tool_errors: list[str] = field(default_factory=list)
    stop_reason: StopReason | None = None
    interrupted: bool = False
    stopping: bool = False
    requests: dict[str, int] = field(default_factory=dict)  # per phase
    timed_out: int = 0  # requests that got no whole answer in time (not judged)
    timed_out_requests: list[Exchange] = field(default_factory=list)  # the first few, to replay
    out_of_time: bool = False  # --max-time ended the pass
    tagged: dict[CreatedRecord, bool] = field(default_factory=dict)

    def export(self) -> ShareResult:
        return ShareResult(
            found=self.found,
            sizes=self.sizes,
            passes=self.passes,
            requests=self.requests,
            created=list(self.tagged.items()),
            answers=self.answers,
            unreachable_operations=self.unreachable_operations,
            first_network_error=self.first_network_error,
            connection_refused_only=self.connection_refused_only,
            tool_errors=self.tool_errors,
            server_unavailable=self.stop_reason == StopReason.SERVER_UNAVAILABLE,
            interrupted=self.interrupted and not self.stopping,
            timed_out=self.timed_out,
            timed_out_requests=self.timed_out_requests,
            out_of_time=self.out_of_time,
            stored_invalid=self.stored_invalid,
            schema_candidates=self.schema_candidates,
        )

    def absorb(self, share: ShareResult) -> None:
        """Merge what a share found: for each finding the smallest request that shows it is kept."""
        self.stored_invalid |= share.stored_invalid
        for key, candidates in share.schema_candidates.items():
            self.schema_candidates.setdefault(key, []).extend(candidates)
        for key, item in share.found.items():
            if key not in self.found or share.sizes[key] < self.sizes[key]:
                self.found[key] = item
                self.sizes[key] = share.sizes[key]
        for rule_id, tally in share.passes.items():
            mine = self.passes.setdefault(rule_id, _PassTally())
            mine.answers |= tally.answers
            mine.operations |= tally.operations
            mine.phases.update(tally.phases)
            mine.checks.update(tally.checks)
        for phase, count in share.requests.items():
            self.requests[phase] = self.requests.get(phase, 0) + count
        for record, tagged in share.created:
            self.ledger.note(record.kind, record.id, record.via, tagged=tagged)
        self.answers += share.answers
        self.unreachable_operations |= share.unreachable_operations
        self.first_network_error = self.first_network_error or share.first_network_error
        self.connection_refused_only = self.connection_refused_only and share.connection_refused_only
        self.tool_errors.extend(share.tool_errors)
        if share.server_unavailable:
            self.stop_reason = StopReason.SERVER_UNAVAILABLE
        self.interrupted = self.interrupted or share.interrupted
        self.timed_out += share.timed_out
        room = _MAX_TIMED_OUT_LISTED - len(self.timed_out_requests)
        self.timed_out_requests.extend(share.timed_out_requests[: max(room, 0)])
        self.out_of_time = self.out_of_time or share.out_of_time

    @property
    def unreachable(self) -> bool:
        return self.answers == 0 and len(self.unreachable_operations) >= _UNREACHABLE_AFTER

    def feed(self, event: events.EngineEvent) -> None:
        if isinstance(event, events.PhaseStarted) and event.phase.name in TESTING_PHASES:
            # Disabled phases are "started" too, then finish as skipped; announce only real ones.
            if event.phase.is_enabled:
                self.phases[event.phase.name.value] = _PhaseTally(started=time.monotonic())
                if not self.quiet:
                    self.progress(f"generated testing: {event.phase.name.value} phase started")
                    if self.on_phase is not None:
                        self.on_phase(event.phase.name.value, "started")
        elif isinstance(event, events.PhaseFinished) and event.phase.name in TESTING_PHASES:
            self._phase_finished(event)
        elif isinstance(event, events.ScenarioFinished):
            self._scenario(event)
        elif isinstance(event, events.NonFatalError):
            self._error(event)
        elif isinstance(event, events.FatalError):
            self.tool_errors.append(f"Schemathesis stopped with an internal error: {event.exception!r}")
        elif isinstance(event, events.Interrupted):
            self.interrupted = True
        elif isinstance(event, events.EngineFinished):
            self.stop_reason = event.stop_reason

    def _phase_finished(self, event: events.PhaseFinished) -> None:
        name = event.phase.name.value
        tally = self.phases.get(name)
        if self.quiet:
            return
        if self.on_phase is not None and tally is not None:
            self.on_phase(name, "finished")
        if tally is None or event.status == Status.SKIP:
            reason = event.phase.skip_reason.value if event.phase.skip_reason else "nothing to run"
            self.progress(f"generated testing: {name} phase skipped ({reason})")
            return
        self.progress(
            f"generated testing: {name} phase finished ({event.status.value}): {tally.cases} requests over "
            f"{len(tally.operations)} operations, {_count(tally.failures, 'new finding')}, "
            f"{time.monotonic() - tally.started:.1f} s"
        )

    def _scenario(self, event: events.ScenarioFinished) -> None:
        recorder = event.recorder
        phase = event.phase.value
        tally = self.phases.get(phase)
        self.answers += sum(1 for item in recorder.interactions.values() if item.response is not None)
        self.requests[phase] = self.requests.get(phase, 0) + len(recorder.interactions)
        if self.on_requests is not None and recorder.interactions:
            self.on_requests(len(recorder.interactions), phase)
        if tally is not None:
            tally.cases += len(recorder.interactions)
            tally.operations.update(node.value.operation.label for node in recorder.cases.values())
        for case_id, interaction in recorder.interactions.items():
            node = recorder.cases.get(case_id)
            if node is not None and interaction.response is not None:
                self._remember_stored(node.value, interaction)
                self._note_created(node.value, interaction)
                self._own_judges(recorder, case_id, node.value, interaction, phase, tally)
        for case_id, nodes in recorder.checks.items():
            node = recorder.cases.get(case_id)
            if node is None:
                continue
            case = node.value
            for check in nodes:
                if check.failure_info is not None:
                    if (
                        self._failure(recorder, case_id, check.name, check.failure_info.failure, phase)
                        and tally
                    ):
                        tally.failures += 1
                elif check.status == Status.SUCCESS:
                    self._pass(recorder, case_id, check.name, case, phase)

    def _note_created(self, case: Any, interaction: Any) -> None:
        operation = _OPERATION_IDS.get(case.operation.label)
        if operation not in CREATES or not 200 <= interaction.response.status_code < 300:
            return
        answer = _json_of(interaction.response.content)
        tagged = self.tagger.is_tagged(operation, _json_of(interaction.request.body))
        for record_id in created_ids(None if answer is NOT_JSON else answer):
            via = f"Schemathesis {case.operation.label}"
            record = CreatedRecord(kind=CREATES[operation], id=record_id, via=via)
            self.tagged.setdefault(record, tagged)

    def _remember_stored(self, case: Any, interaction: Any) -> None:
        if not _is_negative(case) or _OPERATION_IDS.get(case.operation.label) not in _TASK_WRITES:
            return
        if not 200 <= interaction.response.status_code < 300:
            return
        body = _json_of(interaction.request.body)
        if isinstance(body, dict):
            self.stored_invalid.update((str(name), _key(value)) for name, value in body.items())

    def _excused(self, path: tuple[str | int, ...], value: Any) -> bool:
        names = [part for part in path if isinstance(part, str)]
        return bool(names) and (names[-1], _key(value)) in self.stored_invalid

    def _own_judges(
        self,
        recorder: ScenarioRecorder,
        case_id: str,
        case: Any,
        interaction: Any,
        phase: str,
        tally: _PhaseTally | None,
    ) -> None:
        """The suite's own single-exchange judges of ERROR-BODY-JSON and RESPONSE-CONTENT-TYPE-JSON
        (conformance.judges decides them, on these answers as on every other)."""
        operation = _OPERATION_IDS.get(case.operation.label)
        if operation is None:
            return
        status = interaction.response.status_code
        seen: judges.Seen | None = None
        for rule_id in OWN_JUDGED:
            if rule_id not in self.rules:
                continue
            if rule_id == "RESPONSE-CONTENT-TYPE-JSON" and _is_negative(case):
                continue  # a request Enginy would not send says nothing about what Enginy reads
            if seen is None:
                seen = judges.Seen.of(
                    _reply_of(interaction, case, operation, self.redactor.header), self.schemas
                )
            verdict = next(judges.judge_exchange(seen, (rule_id,)), None)
            if verdict is None:
                continue  # the rule says nothing about this answer
            broken = verdict.violation
            if broken is None:
                pass_tally = self.passes.setdefault(rule_id, _PassTally())
                pass_tally.answers.add(case_id)
                pass_tally.operations.add(case.operation.label)
                pass_tally.phases[phase] = None
                pass_tally.checks["the suite's own judge"] = None
                continue
            problem = broken.actual
            key = (rule_id, case.operation.label, str(status))  # one finding per rule, operation, status
            size = _request_size(recorder, case_id)
            if key in self.found and size >= self.sizes[key]:
                continue
            if key not in self.found and tally is not None:
                tally.failures += 1
            self.sizes[key] = size
            rule = self.rules[rule_id]
            self.found[key] = Evidence(
                rule_id=rule_id,
                outcome="failed" if rule.level == "MUST" else "warning",
                source=f"schemathesis:{phase}",
                message=_clip(
                    self.redactor.text(f"{case.operation.label} answered {status}: {broken.message}")
                ),
                expected=_expected(rule_id),
                actual=_clip(self.redactor.text(problem)),
                exchanges=self._chain(recorder, case_id),
            )

    def _status(self, recorder: ScenarioRecorder, case_id: str) -> int | None:
        response = recorder.find_response(case_id=case_id)
        return response.status_code if response is not None else None

    def _pass(self, recorder: ScenarioRecorder, case_id: str, check: str, case: Any, phase: str) -> None:
        status = self._status(recorder, case_id)
        row = route(Observation(check=check, operation=case.operation.label, status=status))
        if row is None or row.rule not in self.rules or row.rule not in PASSABLE_RULES or status is None:
            return
        if check in _PASS_NEEDS_MODE and _is_negative(case) != _PASS_NEEDS_MODE[check]:
            return
        tally = self.passes.setdefault(row.rule, _PassTally())
        tally.answers.add(case_id)
        tally.operations.add(case.operation.label)
        tally.phases[phase] = None
        tally.checks[check] = None

    def _failure(
        self, recorder: ScenarioRecorder, parent_id: str, check: str, failure: Failure, phase: str
    ) -> bool:
        """Record the failure as evidence if it maps to a selected rule; True if it is a new finding."""
        case_id = failure.case_id or parent_id
        node = recorder.cases.get(case_id) or recorder.cases[parent_id]
        operation = failure.operation or node.value.operation.label
        status = self._status(recorder, case_id)
        probe: Literal["no-key", "wrong-key"] | None = None
        if isinstance(failure, IgnoredAuth):
            probe = "no-key" if failure.scenario == AuthScenario.NO_AUTH else "wrong-key"
        row = route(Observation(check=check, operation=operation, status=status, auth_probe=probe))
        if row is None or row.rule not in self.rules:
            return False
        if row.rule == "RESPONSE-SCHEMA" and _is_negative(node.value):
            # The answer to a request that breaks the schema on purpose: accepting it is judged once, by
            # INPUT-INVALID-REJECTED (SHOULD). The docs define answers to what Enginy sends, so a lenient
            # server echoing `externalId: 0` back is not also failed here as a MUST.
            return False
        fields: tuple[str, ...] = ()
        if row.rule == "RESPONSE-SCHEMA":
            # A MUST only where the suite's own judge of the same answer fails it too: JSON labelled
            # otherwise (RESPONSE-CONTENT-TYPE-JSON's question), an answer the docs do not describe, or a
            # value stored from an invalid request and read back, are not RESPONSE-SCHEMA failures.
            needs: list[tuple[str, str] | None] = []
            confirmed = self._schema_problems(recorder, case_id, node.value, needs=needs)
            if confirmed is not None and not confirmed:
                return False
            fields = tuple(dict.fromkeys(problem.field or "" for problem in confirmed or ()))
        key = (row.rule, operation, failure.title)
        size = _request_size(recorder, case_id)
        new = key not in self.found
        # continue-on-failure means no shrinking and the same finding many times over; keep the smallest
        # request that shows it, so the curl in the report is one a person can read.
        smaller = new or size < self.sizes[key]
        candidates = self.schema_candidates.setdefault(key, []) if row.rule == "RESPONSE-SCHEMA" else None
        # RESPONSE-SCHEMA keeps a few candidates per operation besides the smallest (see
        # _settle_schema_excuses); anything else only its smallest request.
        if not smaller and (candidates is None or len(candidates) >= _MAX_SCHEMA_CANDIDATES):
            return False
        rule = self.rules[row.rule]
        headline = f"{failure.title} [{failure.code}] on {operation}"
        body = failure.message.strip()
        message = self.redactor.text(f"{headline}: {body}" if body else headline)
        detail = next((line.strip() for line in body.splitlines() if line.strip()), failure.title)
        actual = f"HTTP {status}: {detail}" if status is not None else detail
        evidence = Evidence(
            rule_id=row.rule,
            outcome="failed" if rule.level == "MUST" else "warning",
            source=f"schemathesis:{phase}",
            message=_clip(message),
            expected=row.expected,
            actual=_clip(self.redactor.text(actual)),
            exchanges=self._chain(recorder, case_id),
            fields=fields,
        )
        if candidates is not None and len(candidates) < _MAX_SCHEMA_CANDIDATES:
            # One a later share's writes excuse must not hide another that nothing excuses.
            wholly = bool(needs) and None not in needs
            excusable = frozenset(pair for pair in needs if pair is not None) if wholly else None
            candidates.append(_SchemaCandidate(size=size, excused_by=excusable, evidence=evidence))
        if not smaller:
            return False
        self.sizes[key] = size
        self.found[key] = evidence
        return new

    def _schema_problems(
        self,
        recorder: ScenarioRecorder,
        case_id: str,
        case: Any,
        *,
        needs: list[tuple[str, str] | None] | None = None,
    ) -> list[Problem] | None:
        """The suite's own judgement of the answer Schemathesis failed (None: nothing to re-judge).

        `needs` receives, for each problem left, the stored (field, value) that would excuse it, or None
        for a problem no stored value can excuse.
        """

        def excused(path: tuple[str | int, ...], value: Any) -> bool:
            if self._excused(path, value):
                return True
            if needs is not None:
                names = [part for part in path if isinstance(part, str)]
                needs.append((names[-1], _key(value)) if names else None)
            return False

        interaction = recorder.interactions.get(case_id)
        operation = _OPERATION_IDS.get(case.operation.label)
        if interaction is None or interaction.response is None or operation is None:
            return None
        body = _json_of(interaction.response.content)
        return self.schemas.response_problems(
            operation,
            interaction.response.status_code,
            None if body is NOT_JSON else body,
            is_json=body is not NOT_JSON,
            excused=excused,
        )

    def _chain(self, recorder: ScenarioRecorder, case_id: str) -> tuple[Exchange, ...]:
        # The failing request last, after the ones that led to it (stateful links, the ignored_auth probe's
        # authenticated original), so the report reads in the order a reader would replay them.
        chain = []
        for case in recorder.iter_chain_cases(case_id=case_id):
            interaction = recorder.interactions.get(case.id)
            if interaction is not None:
                chain.append(exchange_from_interaction(interaction, self.redactor))
        return tuple(chain[-_MAX_EXCHANGES:])

    def _error(self, event: events.NonFatalError) -> None:
        error = event.value
        info = event.info
        where = event.label or "the run"
        if _is_server_side(error):
            import requests

            self.unreachable_operations.add(where)
            if isinstance(error, requests.Timeout):
                # No whole answer in time: the docs set no response time, so this judges nothing either
                # way; finish() makes what it would have judged not judged (a gap), not failed.
                self.timed_out += 1
                self.first_network_error = self.first_network_error or f"{info.title}: {info.message}"
                self.connection_refused_only = False
                request = getattr(error, "request", None)
                listed = len(self.timed_out_requests) < _MAX_TIMED_OUT_LISTED
                if isinstance(request, requests.PreparedRequest) and listed:
                    text = f"{info.title}: {info.message}"
                    exchange = exchange_from_prepared(request, self.redactor, error=text)
                    self.timed_out_requests.append(exchange)
                return
            text = f"{info.title}: {info.message}"
            self.first_network_error = self.first_network_error or text
            # ConnectionError covers refused, DNS, TLS and connect time-outs; a read time-out is not one.
            connect_failed = isinstance(error, requests.ConnectionError)
            self.connection_refused_only = self.connection_refused_only and connect_failed
            if "SERVER-NO-5XX" not in self.rules:
                return
            key = ("SERVER-NO-5XX", where, info.title)
            if key in self.found:
                return
            request = getattr(error, "request", None)
            exchanges: tuple[Exchange, ...] = ()
            if isinstance(request, requests.PreparedRequest):
                exchanges = (exchange_from_prepared(request, self.redactor, error=text),)
            rule = self.rules["SERVER-NO-5XX"]
            phase = event.phase.value if event.phase is not None else "run"
            self.sizes[key] = 0  # no answer to size: the first such request stands for them all
            self.found[key] = Evidence(
                rule_id="SERVER-NO-5XX",
                outcome="failed" if rule.level == "MUST" else "warning",
                source=f"schemathesis:{phase}",
                message=_clip(self.redactor.text(f"The server did not answer on {where}: {text}")),
                expected=_expected("SERVER-NO-5XX"),
                actual=_clip(self.redactor.text(f"no answer: {info.message}")),
                exchanges=exchanges,
            )
            return
        phase = f" in the {event.phase.value} phase" if event.phase is not None else ""
        self.tool_errors.append(self.redactor.text(f"{info.title} on {where}{phase}: {info.message}"))

    def _settle_schema_excuses(self) -> None:
        """Each RESPONSE-SCHEMA finding becomes its smallest candidate that no stored value excuses, now
        that every share's writes are known; a finding all of whose candidates are excused goes."""
        for key, candidates in self.schema_candidates.items():
            standing = sorted(
                (c for c in candidates if c.excused_by is None or not c.excused_by <= self.stored_invalid),
                key=lambda candidate: candidate.size,
            )
            if key not in self.found:
                continue
            if not standing:
                del self.found[key]
            elif len(candidates) < _MAX_SCHEMA_CANDIDATES or standing[0].size <= self.sizes[key]:
                self.found[key] = standing[0].evidence
                self.sizes[key] = standing[0].size

    def finish(self, *, base_url: str, elapsed: float) -> list[Evidence]:
        if self.interrupted and not self.stopping:  # our own stop() also ends the stream "interrupted"
            raise KeyboardInterrupt
        self._settle_schema_excuses()
        evidence = list(self.found.values())
        if self.answers == 0 and self.unreachable_operations:
            # Nothing answered at all: there is no server to judge, which is not a verdict about one.
            error = ServerUnreachable if self.connection_refused_only else TransportError
            raise error(
                f"Schemathesis could not reach {base_url} ({self.first_network_error}); check that the "
                "server is running and that the base URL is right."
            )
        silent = self.stop_reason == StopReason.SERVER_UNAVAILABLE and "SERVER-NO-5XX" in self.rules
        if silent and not any(item.rule_id == "SERVER-NO-5XX" for item in evidence):
            evidence.append(
                Evidence(
                    rule_id="SERVER-NO-5XX",
                    outcome="failed" if self.rules["SERVER-NO-5XX"].level == "MUST" else "warning",
                    source="schemathesis:run",
                    message="The server stopped responding during generated testing.",
                    expected=_expected("SERVER-NO-5XX"),
                    actual="no answers after a point in the run",
                )
            )
        if self.tool_errors:
            listed = "; ".join(dict.fromkeys(self.tool_errors))
            raise EngineError(
                f"Schemathesis failed internally, so generated testing is incomplete ({listed}). This is a "
                "problem of the tool, not a verdict about the server: rerun, and report it if it persists.",
                evidence=evidence,
            )
        failed_rules = {item.rule_id for item in evidence}
        for rule_id, tally in self.passes.items():
            if rule_id in failed_rules:
                continue
            evidence.append(
                Evidence(
                    rule_id=rule_id,
                    outcome="passed",
                    source="schemathesis:" + "+".join(tally.phases),
                    message=(
                        f"Schemathesis checked {len(tally.answers)} answers from {len(tally.operations)} "
                        f"operations with {', '.join(tally.checks)} and found none breaking this rule."
                    ),
                    expected=_expected(rule_id),
                    actual=f"no violation in {len(tally.answers)} answers",
                )
            )
        gap = self._gap_reason()
        if gap is not None:
            for rule_id in self.rules:
                if rule_id in PASSABLE_RULES:
                    evidence.append(
                        Evidence(
                            rule_id=rule_id,
                            outcome="skipped",
                            source="schemathesis",
                            message=gap,
                            exchanges=tuple(self.timed_out_requests),
                            gap=True,
                        )
                    )
        self.progress(
            f"generated testing: finished in {elapsed:.1f} s, {self.answers} answers, "
            f"{_count(len(self.found), 'finding')}"
        )
        return evidence

    def _gap_reason(self) -> str | None:
        """Why the pass did not see everything it meant to, when it did not."""
        if self.out_of_time:
            return (
                f"Not judged in full: the run's --max-time passed during generated testing, after "
                f"{sum(self.requests.values())} of its requests; raise --max-time to judge the rest."
            )
        if self.timed_out:
            return (
                f"Not judged in full: {_count(self.timed_out, 'generated request')} "
                "got no whole answer within "
                "--timeout, so what they would have shown is not known; check the server's logs, or raise "
                "--timeout."
            )
        return None


_MAX_TIMED_OUT_LISTED: Final = 3  # requests without a timely answer kept on the report, to replay

# "POST /tasks" -> "createTask": Schemathesis names operations by method and path.
_OPERATION_IDS: Mapping[str, str] = {f"{op.method} {op.path}": op_id for op_id, op in operations().items()}
_TASK_WRITES = frozenset({"createTask", "updateTask"})
_OWN_EXPECTED: Mapping[str, str] = {
    "ERROR-BODY-JSON": 'a JSON object with a message, e.g. {"error": "...", "message": "..."}',
    "RESPONSE-CONTENT-TYPE-JSON": "Content-Type: application/json on a JSON answer",
}


def _json_of(payload: bytes | str | None) -> Any:
    """The payload parsed as JSON, or NOT_JSON (empty, not UTF-8, not JSON)."""
    if payload is None:
        return NOT_JSON
    try:
        text = payload if isinstance(payload, str) else payload.decode("utf-8")
        return json.loads(text) if text.strip() else NOT_JSON
    except ValueError:
        return NOT_JSON


def _key(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _reply_of(interaction: Any, case: Any, operation: str, key_header: str) -> Reply:
    """One of Schemathesis' exchanges as the suite's own judges read it (a `Reply`)."""
    response = interaction.response
    headers = {
        name: value if isinstance(value, str) else ", ".join(value)
        for name, value in response.headers.items()
    }
    text = response.content.decode("utf-8", "replace") if response.content else ""
    request = interaction.request
    body = request.body
    raw = body.encode("utf-8") if isinstance(body, str) else body
    sent_key = any(name.lower() == key_header.lower() for name in request.headers)
    return Reply(
        status=response.status_code,
        headers=headers,
        text=text,
        json=_json_of(response.content),
        truncated=False,
        sent=Sent(
            method=request.method,
            path=case.operation.path,
            operation=operation,
            raw=raw or None,
            auth="key" if sent_key else "none",
        ),
        exchange=exchange_from_interaction(interaction, Redactor(secret="", header="")),
        valid=not _is_negative(case),
    )


def _is_server_side(error: Exception) -> bool:
    """Errors that are the server's doing (no answer, resets, time-outs), as opposed to the tool's."""
    import requests

    server_side = (requests.RequestException, UnhealthyAPIError, UnresponsiveOperationError)
    return isinstance(error, (*server_side, ServerUnavailable))


def _request_size(recorder: ScenarioRecorder, case_id: str) -> int:
    interaction = recorder.interactions.get(case_id)
    if interaction is None:
        return 0
    request = interaction.request
    return len(request.uri) + (len(request.body) if request.body else 0)


def _expected(rule_id: str) -> str:
    """What a conformant server does, for the evidence about a rule the engine judges."""
    if rule_id in _OWN_EXPECTED:
        return _OWN_EXPECTED[rule_id]
    return next(row for row in ROWS if row.rule == rule_id).expected


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"
