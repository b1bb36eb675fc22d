"""What a run finds out, in the one shape every report writer reads.

A *check* judges one rule and either returns (the rule holds), raises `RuleViolation` (it does not) or
raises `NotApplicable` (it could not be judged: a precondition failed or the server opted out). The
runner turns each into `Evidence`, and folds all evidence about a rule into one `Result`.
Report writers read only `Result`s; nothing here talks to the network or formats output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from enginy_spec import Rule

__all__ = [
    "BaselineMark",
    "BaselineStatus",
    "BaselineUse",
    "CreatedRecord",
    "Evidence",
    "Exchange",
    "LoadSummary",
    "NotApplicable",
    "Outcome",
    "RecordedRequest",
    "RecordedResponse",
    "Result",
    "RuleViolation",
    "RunReport",
    "TimePoint",
    "Verdict",
    "fold",
]

Outcome = Literal["passed", "failed", "warning", "skipped"]
# passed: every selected MUST rule was judged and holds; failed: a MUST rule does not hold; incomplete:
# none failed, but at least one selected MUST rule could not be judged, so "passed" would claim too much.
Verdict = Literal["passed", "failed", "incomplete"]

# What a baseline entry did to the rule it names (decided in conformance.baseline, which says why).
BaselineStatus = Literal["accepted", "expired", "stale", "not_judged"]

# The order in which outcomes win when several pieces of evidence speak about one rule: a rule that
# one source judged and another could not is judged ("passed" beats "skipped").
_SEVERITY: Mapping[str, int] = {"skipped": 0, "passed": 1, "warning": 2, "failed": 3}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as sent, with every secret header value already replaced by `[REDACTED]`."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    """A response as received; `body` is text, truncated by the client to a readable size."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    elapsed_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and what came back (`response` is None when nothing did)."""

    request: RecordedRequest
    response: RecordedResponse | None = None
    error: str | None = None


class RuleViolation(AssertionError):
    """The server under test breaks `rule_id`.

    `expected` and `actual` are short phrases a person can compare side by side; `exchanges` are the
    requests that show it, newest last.
    """

    def __init__(
        self,
        rule_id: str,
        *,
        message: str,
        expected: str,
        actual: str,
        exchanges: Iterable[Exchange] = (),
    ) -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.message = message
        self.expected = expected
        self.actual = actual
        self.exchanges = tuple(exchanges)


class NotApplicable(Exception):
    """A rule could not be judged; `reason` says why in one sentence (it is shown as 'skipped')."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Evidence:
    """One finding about one rule, from one source (a scripted check or a Schemathesis phase).

    `fields` names the answer fields a finding is about, where it is about fields (RESPONSE-SCHEMA);
    `root_cause` is the id of another failed rule that explains this finding (conformance.root_causes).
    `gap` marks a "skipped" that says part of what the rule needs was never seen (an answer that did not
    come in time, a run cut short by --max-time): the rule can then fail on other evidence, but never pass.
    `duration_s` is the wall time its source spent on this rule (the runner measures it; see
    `Result.duration_s`).
    """

    rule_id: str
    outcome: Outcome
    source: str
    message: str = ""
    expected: str = ""
    actual: str = ""
    exchanges: tuple[Exchange, ...] = ()
    fields: tuple[str, ...] = ()
    root_cause: str | None = None
    gap: bool = False
    duration_s: float = 0.0

    @classmethod
    def from_violation(cls, violation: RuleViolation, *, level: str, source: str) -> Evidence:
        return cls(
            rule_id=violation.rule_id,
            outcome="failed" if level == "MUST" else "warning",
            source=source,
            message=violation.message,
            expected=violation.expected,
            actual=violation.actual,
            exchanges=violation.exchanges,
        )


@dataclass(frozen=True, slots=True)
class BaselineMark:
    """The baseline entry about one rule and what it did in this run (conformance.baseline decides).

    Only "accepted" changes anything: the verdict ignores that rule's failure. The outcome and evidence
    of the rule stay what the run saw, so a report still shows what failed.
    """

    status: BaselineStatus
    reason: str
    expires: date | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """The verdict on one rule: the worst outcome of its evidence, and all of that evidence.

    `baseline` is the entry of the run's baseline file about this rule, if there is one.
    """

    rule: Rule
    outcome: Outcome
    evidence: tuple[Evidence, ...] = ()
    baseline: BaselineMark | None = None

    @property
    def failures(self) -> tuple[Evidence, ...]:
        return tuple(e for e in self.evidence if e.outcome in ("failed", "warning"))

    @property
    def accepted(self) -> bool:
        """A failure (or warning) the baseline accepts: shown as such, and left out of the verdict."""
        return self.baseline is not None and self.baseline.status == "accepted"

    @property
    def duration_s(self) -> float:
        """The time spent judging this rule: the sum of its evidence's.

        A scripted check's is its own wall time (waits for a shared fixture or a free request slot
        included); side evidence's, the time spent judging every scripted answer; the generated pass
        judges its rules all at once, so each gets an even share of the pass's time. Checks run side by
        side, so the rules' times can add up to more than the run's.
        """
        return sum(item.duration_s for item in self.evidence)


def fold(rule: Rule, evidence: Iterable[Evidence]) -> Result:
    """Fold every piece of evidence about `rule` into its Result.

    No evidence at all means nothing judged the rule, which is 'skipped', never 'passed': a verdict
    must rest on something that was actually observed. Nor does a rule pass when part of what judges it
    is missing (a `gap`): it is 'skipped' unless something failed it.
    """
    items = tuple(e for e in evidence if e.rule_id == rule.id)
    if not items:
        return Result(rule=rule, outcome="skipped", evidence=())
    worst = max(items, key=lambda e: _SEVERITY[e.outcome]).outcome
    if worst == "passed" and any(e.gap for e in items):
        worst = "skipped"
    # The gaps first: they are the reason a rule with nothing failing is not judged.
    items = tuple(sorted(items, key=lambda e: not e.gap))
    return Result(rule=rule, outcome=worst, evidence=items)


@dataclass(frozen=True, slots=True)
class CreatedRecord:
    """A record the run created on the server under test, listed at the end for cleanup."""

    kind: str  # "task", "activity", "contact", "company", "association"
    id: str
    via: str  # e.g. "POST /tasks"


@dataclass(frozen=True, slots=True)
class BaselineUse:
    """The baseline file a run applied: where it is, and its entries about rules the run did not select
    (ignored: an entry can say nothing about a rule that was not judged for want of being asked)."""

    path: str
    not_selected: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TimePoint:
    """One second of a load run: requests answered in it, those that failed, latency percentiles."""

    second: int  # from the start of the run
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """How a load run (`enginy-conformance load`) went: its shape, throughput and latency over time.

    `failures` counts the exchanges that got no answer or broke a MUST rule; `p95_budget_ms` is the
    budget the run's p95 was held to (`--p95-ms`).
    """

    users: int
    spawn_rate: float
    duration_s: float
    workers: int
    requests: int
    failures: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p95_budget_ms: float
    points: tuple[TimePoint, ...] = ()


@dataclass(frozen=True, slots=True)
class RunReport:
    """Everything the report writers need: one Result per judged rule plus the run's context.

    `target` and `settings` are already free of secrets (the key is never stored here).
    """

    target: str
    profile: str
    started_at: str  # ISO 8601, UTC
    duration_s: float
    results: tuple[Result, ...]
    created: tuple[CreatedRecord, ...] = ()
    # Of `created`, the records generated testing made from bodies it could not tag (see
    # conformance.tagging): listed for cleanup all the same, and counted so that the report says so.
    untagged: int = 0
    settings: Mapping[str, object] = field(default_factory=dict)
    tool_versions: Mapping[str, str] = field(default_factory=dict)
    # Requests sent, by who sent them: "scripted", and each phase of generated testing.
    requests: Mapping[str, int] = field(default_factory=dict)
    rate_limited: int = 0  # 429 answers with a Retry-After that the run waited out
    # Stopped by Ctrl-C: the results are what was judged before the stop (the rest not judged), and
    # the run exits 130 whatever the verdict of that part (conformance.exit_codes).
    interrupted: bool = False
    baseline: BaselineUse | None = None  # the --baseline file applied to `results`, if any
    load: LoadSummary | None = None  # set by `enginy-conformance load`: throughput and latency over time

    @property
    def verdict(self) -> Verdict:
        """MUST rules decide the verdict; SHOULD failures are warnings only.

        A MUST failure the baseline accepts does not count (it is listed in `accepted`). A MUST rule
        that was not judged (write budget, a failed precondition, the server gone mid-run) makes the
        verdict "incomplete" unless another MUST rule failed: the run cannot say "passed" about what it
        did not see, and no baseline entry changes that.
        """
        if any(r.outcome == "failed" and not r.accepted for r in self.results):
            return "failed"
        return "incomplete" if self.not_judged else "passed"

    @property
    def accepted(self) -> tuple[Result, ...]:
        """The failures and warnings the baseline accepts, in catalogue order."""
        return tuple(r for r in self.results if r.accepted)

    @property
    def not_judged(self) -> tuple[Result, ...]:
        """The selected MUST rules that were not judged (outcome "skipped"), in catalogue order."""
        return tuple(r for r in self.results if r.rule.level == "MUST" and r.outcome == "skipped")

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)
