"""The tiny explicit registry of scripted checks, and of the shared fixtures they build on.

A check is registered with `@check("RULE-ID", uses=..., sends=...)`. The registry refuses, at import time,
a rule id that is not in the catalogue, a rule that Schemathesis alone judges, a rule that only
`enginy-conformance load` judges, and a second check for the same rule. `uses` names the shared fixtures
a check relies on and `sends` the requests it makes itself; together with each fixture's own `sends`
they are the plan `--dry-run` prints (a test compares them with the requests a run really makes, so
they cannot drift).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from conformance.errors import TransportError
from conformance.results import NotApplicable
from enginy_spec import load_catalogue

if TYPE_CHECKING:
    from conformance.checks._context import CheckContext

__all__ = [
    "CHECKS",
    "FIXTURES",
    "LOAD_ONLY",
    "SCHEMATHESIS_ONLY",
    "CheckFunction",
    "FixturePlan",
    "Planned",
    "RegisteredCheck",
    "Registry",
    "RegistryError",
    "check",
    "req",
    "shared",
]

# Rules judged from every answer rather than by a check of their own: the generated requests
# (conformance.engine) and every scripted answer (the runner's side evidence) give them evidence, and no
# check is ever registered for them.
SCHEMATHESIS_ONLY: Final = frozenset(
    {
        "SERVER-NO-5XX",
        "RESPONSE-SCHEMA",
        "RESPONSE-CONTENT-TYPE-JSON",
        "INPUT-INVALID-REJECTED",
        "INPUT-VALID-ACCEPTED",
    }
)

# Rules only `enginy-conformance load` judges (conformance.load), from the latencies of many requests
# sent at once: `run` does not select them (conformance.runner.select_rules), so they are neither
# passed nor "not judged" in its reports, and no check is ever registered for them.
LOAD_ONLY: Final = frozenset({"LOAD-P95-LATENCY"})

# A check returns None, or a note saying how the rule held (e.g. "no answer showed a timestamp"), when its
# rule holds; it raises RuleViolation when it does not and NotApplicable when it cannot be judged.
CheckFunction = Callable[["CheckContext"], str | None]
F = TypeVar("F", bound=CheckFunction)
T = TypeVar("T")


class RegistryError(ValueError):
    """A check was registered for an unknown rule, a Schemathesis-only or load-only rule, or twice."""


@dataclass(frozen=True, slots=True)
class Planned:
    """`count` requests `METHOD /path` (the path as templated in the spec)."""

    method: str
    path: str
    count: int = 1

    def __str__(self) -> str:
        times = f" x{self.count}" if self.count != 1 else ""
        return f"{self.method} {self.path}{times}"


def req(line: str, count: int = 1) -> Planned:
    """`req("POST /tasks", 5)`: shorthand for a planned request."""
    method, _, path = line.partition(" ")
    return Planned(method=method, path=path, count=count)


@dataclass(frozen=True, slots=True)
class RegisteredCheck:
    rule_id: str
    function: CheckFunction
    uses: tuple[str, ...]
    sends: tuple[Planned, ...]
    # Judges every answer the run has seen (ERROR-BODY-JSON, TIMESTAMPS-ISO8601): it runs after all the
    # other checks, so that it judges the same answers however many checks ran at once.
    reads_log: bool = False

    @property
    def name(self) -> str:
        return self.function.__name__


@dataclass(frozen=True, slots=True)
class FixturePlan:
    name: str
    needs: tuple[str, ...]
    sends: tuple[Planned, ...]


class Registry:
    """Checks keyed by rule id, in registration order (which is the order a run judges them in)."""

    def __init__(
        self, rule_ids: Iterable[str], *, excluded: Iterable[str] = (), load_only: Iterable[str] = ()
    ) -> None:
        self._known = frozenset(rule_ids)
        self._excluded = frozenset(excluded)
        self._load_only = frozenset(load_only)
        self._checks: dict[str, RegisteredCheck] = {}

    def check(
        self,
        rule_id: str,
        *,
        uses: Iterable[str] = (),
        sends: Iterable[Planned] = (),
        reads_log: bool = False,
    ) -> Callable[[F], F]:
        def register(function: F) -> F:
            if rule_id not in self._known:
                raise RegistryError(f"{function.__name__} judges {rule_id}, which is not in rules.yaml.")
            if rule_id in self._excluded:
                raise RegistryError(
                    f"{function.__name__} judges {rule_id}, which Schemathesis alone judges; add evidence "
                    "to it from the run instead of registering a check."
                )
            if rule_id in self._load_only:
                raise RegistryError(
                    f"{function.__name__} judges {rule_id}, which only enginy-conformance load judges "
                    "(conformance.load); judge it there instead of registering a check."
                )
            if rule_id in self._checks:
                other = self._checks[rule_id].name
                raise RegistryError(f"{function.__name__} and {other} both judge {rule_id}; keep one.")
            self._checks[rule_id] = RegisteredCheck(
                rule_id=rule_id, function=function, uses=tuple(uses), sends=tuple(sends), reads_log=reads_log
            )
            return function

        return register

    def __iter__(self) -> Iterator[RegisteredCheck]:
        return iter(tuple(self._checks.values()))

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._checks

    def __len__(self) -> int:
        return len(self._checks)

    def get(self, rule_id: str) -> RegisteredCheck:
        return self._checks[rule_id]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._checks)

    def snapshot(self) -> dict[str, RegisteredCheck]:
        """For tests that register throwaway checks: take a snapshot, then `restore` it."""
        return dict(self._checks)

    def restore(self, snapshot: dict[str, RegisteredCheck]) -> None:
        self._checks = dict(snapshot)


# The one global registry, filled when conformance.checks imports the family modules.
CHECKS: Final = Registry(load_catalogue().ids, excluded=SCHEMATHESIS_ONLY, load_only=LOAD_ONLY)
check = CHECKS.check

# Shared fixtures: name -> plan. Built once per run and memoized on the context (see `shared`).
FIXTURES: Final[dict[str, FixturePlan]] = {}


def shared(
    name: str, *, needs: Iterable[str] = (), sends: Iterable[Planned] = ()
) -> Callable[[Callable[[CheckContext], T]], Callable[[CheckContext], T]]:
    """Make a fixture builder run at most once per run; later calls get the same value (or error).

    A fixture that could not be built (write budget spent, no usable answer) raises the same
    NotApplicable or TransportError to every check that needs it, without sending anything again.
    Checks judged at the same time wait for a fixture another one is building (one lock per fixture;
    a builder takes the locks of what it needs in the order of `needs`, which has no cycles).
    """
    if name in FIXTURES:
        raise RegistryError(f"Two shared fixtures are called {name}; rename one.")
    FIXTURES[name] = FixturePlan(name=name, needs=tuple(needs), sends=tuple(sends))

    def decorate(builder: Callable[[CheckContext], T]) -> Callable[[CheckContext], T]:
        @functools.wraps(builder)
        def memoized(ctx: CheckContext) -> T:
            memo: dict[str, Any] = ctx.memo
            with ctx.fixture_lock(name):
                if name in memo:
                    value = memo[name]
                    if isinstance(value, (NotApplicable, TransportError)):
                        raise value
                    result: T = value
                    return result
                try:
                    built = builder(ctx)
                except (NotApplicable, TransportError) as ex:
                    memo[name] = ex
                    raise
                memo[name] = built
                return built

        return memoized

    return decorate
