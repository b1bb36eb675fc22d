"""What the judges said of a stream of single exchanges, in words and as a report.

    Reply → judge_reply → Judged (one per exchange)
        → exchange_line (a line per exchange), tally_phrase and broken_rule_lines (the summary),
          run_report (a RunReport for the report writers)

Two commands produce such a stream: `replay` re-sends recorded requests, `proxy` forwards live
traffic. The judges (`conformance.judges`) decide each rule; this module decides, once for both, how
an exchange's verdicts are labelled (passed, failed for MUST, warning for SHOULD), when a key the
server refused means the operation was not judged, how each exchange reads on the terminal and how the
stream folds into a `RunReport`. Nothing here sends a request or writes a file.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from conformance.checks._spec import SpecSchemas
from conformance.client import Reply
from conformance.judges import Seen, judge_exchange
from conformance.results import Evidence, Exchange, Outcome, RunReport, fold
from enginy_spec import Catalogue

__all__ = [
    "MARKS",
    "Judged",
    "Judgement",
    "State",
    "broken_rule_lines",
    "exchange_line",
    "judge_reply",
    "one_line",
    "run_report",
    "shown_path",
    "tally_phrase",
    "tool_versions",
]

# judged: the judges read it; key-refused: the server refused the key, so only what needs no served
# operation was judged; not-in-contract: a path or method the spec does not document; no-answer: the
# server gave none (or a broken one); not-sent: replay could not re-send it as recorded; undecodable:
# an answer in a Content-Encoding the proxy cannot read.
State = Literal["judged", "key-refused", "not-in-contract", "no-answer", "not-sent", "undecodable"]
MARKS: Final[Mapping[str, str]] = {"passed": "✓", "failed": "✗", "warning": "!"}
_KEY_REFUSED: Final = frozenset({401, 403})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Judgement:
    """What one rule says about one exchange."""

    rule_id: str
    level: str
    outcome: Outcome  # passed, failed (MUST) or warning (SHOULD)
    message: str = ""
    expected: str = ""
    actual: str = ""
    exchanges: tuple[Exchange, ...] = ()


@dataclass(frozen=True, slots=True)
class Judged:
    """One exchange of a stream (a replayed step, a proxied request) and what the rules say about it.

    `index` counts from 1 in the stream; `path` is the path and query as sent; `sent_key` whether the
    request carried the key header; `note` says why an exchange was not judged (or what else to know).
    """

    index: int
    method: str
    path: str
    operation: str | None
    state: State
    sent_key: bool = True
    exchange: Exchange | None = None
    judgements: tuple[Judgement, ...] = ()
    note: str = ""

    @property
    def status(self) -> int | None:
        return self.exchange.response.status if self.exchange and self.exchange.response else None

    @property
    def broken(self) -> tuple[Judgement, ...]:
        return tuple(j for j in self.judgements if j.outcome == "failed")

    @property
    def warnings(self) -> tuple[Judgement, ...]:
        return tuple(j for j in self.judgements if j.outcome == "warning")


def judge_reply(
    reply: Reply,
    *,
    index: int,
    sent_key: bool,
    schemas: SpecSchemas,
    catalogue: Catalogue,
) -> Judged:
    """Judge one answered exchange whose request matched an operation (`reply.sent.operation`).

    A request that carried the key and was answered 401 or 403 was never served: the operation's own
    rules say nothing then (the judges' `key_accepted`), and the state says so.
    """
    seen = Seen.of(reply, schemas)
    refused = sent_key and reply.status in _KEY_REFUSED
    return Judged(
        index=index,
        method=reply.sent.method,
        path=reply.sent.path,
        operation=reply.sent.operation,
        state="key-refused" if refused else "judged",
        sent_key=sent_key,
        exchange=reply.exchange,
        judgements=tuple(_judgements(seen, catalogue)),
        note=f"the server refused the key ({reply.status})" if refused else "",
    )


def _judgements(seen: Seen, catalogue: Catalogue) -> Iterator[Judgement]:
    for verdict in judge_exchange(seen, catalogue.ids):
        rule = catalogue.get(verdict.rule_id)
        broken = verdict.violation
        if broken is None:
            yield Judgement(
                rule_id=rule.id, level=rule.level, outcome="passed", exchanges=(seen.reply.exchange,)
            )
            continue
        yield Judgement(
            rule_id=broken.rule_id,
            level=rule.level,
            outcome="failed" if rule.level == "MUST" else "warning",
            message=broken.message,
            expected=broken.expected,
            actual=broken.actual,
            exchanges=broken.exchanges,
        )


# --- words ----------------------------------------------------------------------------------------------


def shown_path(path: str, limit: int = 100) -> str:
    """A path fit for one terminal line: control characters escaped, long ones cut."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", path)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def exchange_line(judged: Judged, *, timing_note: str = "", no_key: str = "[no key]") -> str:
    """`#3 POST /tasks/batch → 404 (12 ms)  ✗ TASK-BATCH-GET-OMITS-UNKNOWN: expected ..., got 404`.

    `timing_note` is added inside the parentheses (replay: "recorded 200"); `no_key` marks a request
    that went without the key header.
    """
    head = f"#{judged.index} {judged.method} {shown_path(judged.path)}"
    if judged.state == "not-sent":
        return f"{head}  - not sent: {judged.note}"
    if judged.state == "no-answer":
        return f"{head} → no answer  ✗ {one_line(judged.note)}"
    response = judged.exchange.response if judged.exchange else None
    timing = f"{response.elapsed_ms:.0f} ms" if response else "?"
    if timing_note:
        timing += f", {timing_note}"
    head += f" → {judged.status} ({timing})"
    if not judged.sent_key:
        head += f" {no_key}"
    if judged.state == "not-in-contract":
        return f"{head}  · not in the contract (not judged)"
    if judged.state == "undecodable":
        return f"{head}  · {judged.note} (not judged)"
    shown = [_judgement_text(j) for j in judged.judgements if j.outcome != "passed"]
    if judged.state == "key-refused":
        shown.insert(0, f"- {judged.note}; the operation was not judged")
    if not shown:
        held = len(judged.judgements)
        return f"{head}  ✓ {held} rule{'s' if held != 1 else ''} hold{'s' if held == 1 else ''}"
    return f"{head}  " + "  ".join(shown)


def _judgement_text(judgement: Judgement) -> str:
    expected, actual = one_line(judgement.expected, 80), one_line(judgement.actual, 90)
    return f"{MARKS[judgement.outcome]} {judgement.rule_id}: expected {expected}, got {actual}"


_STATE_WORDS: Final[tuple[tuple[State, str], ...]] = (
    ("not-in-contract", "not in the contract"),
    ("key-refused", "with the key refused"),
    ("no-answer", "without an answer"),
    ("not-sent", "not sent"),
    ("undecodable", "in an encoding not read"),
)


def tally_phrase(stream: Sequence[Judged]) -> str:
    """`2 with MUST violations, 1 warning; 1 not in the contract` (no final period)."""
    with_must = sum(1 for judged in stream if judged.broken)
    warnings = sum(len(judged.warnings) for judged in stream)
    states = Counter(judged.state for judged in stream)
    extras = [f"{states[state]} {words}" for state, words in _STATE_WORDS if states[state]]
    return f"{with_must} with MUST violations, {warnings} warning{'s' if warnings != 1 else ''}" + (
        f"; {', '.join(extras)}" if extras else ""
    )


def broken_rule_lines(stream: Iterable[Judged]) -> list[str]:
    """`MUST rules broken: TASK-BATCH-ROUTE (#4, #5)` and the same for SHOULD rules, when any broke."""
    stream = tuple(stream)
    lines: list[str] = []
    for outcome, title in (("failed", "MUST rules broken"), ("warning", "SHOULD rules broken")):
        where: dict[str, list[int]] = {}
        for judged in stream:
            for judgement in judged.judgements:
                if judgement.outcome == outcome:
                    where.setdefault(judgement.rule_id, []).append(judged.index)
        if where:
            listed = "; ".join(f"{rule} (#{', #'.join(map(str, found))})" for rule, found in where.items())
            lines.append(f"{title}: {listed}")
    return lines


# --- the report ----------------------------------------------------------------------------------------


def run_report(
    stream: Iterable[Judged],
    *,
    source: str,
    noun: str,
    catalogue: Catalogue,
    target: str,
    started_at: str,
    duration_s: float,
    settings: Mapping[str, object],
    extra: Iterable[Evidence] = (),
    requests: Mapping[str, int] | None = None,
) -> RunReport:
    """The stream as a RunReport of profile `source`: per rule, one piece of evidence per exchange
    that broke it (source `"{source} #N"`, with its exchanges) and one summing up the exchanges it held
    for ("held for 3 {noun}s"); `extra` adds evidence of the caller's own (replay's rules "not
    judged"); `requests` counts the requests by who sent them, as report.json shows them.

    Only rules some evidence speaks about get a result: the report claims nothing about the others.
    """
    by_rule: dict[str, list[Evidence]] = {}
    held: Counter[str] = Counter()
    for judged in stream:
        for judgement in judged.judgements:
            if judgement.outcome == "passed":
                held[judgement.rule_id] += 1
                continue
            by_rule.setdefault(judgement.rule_id, []).append(
                Evidence(
                    rule_id=judgement.rule_id,
                    outcome=judgement.outcome,
                    source=f"{source} #{judged.index}",
                    message=judgement.message,
                    expected=judgement.expected,
                    actual=judgement.actual,
                    exchanges=judgement.exchanges,
                )
            )
    for rule_id, count in held.items():
        by_rule.setdefault(rule_id, []).append(
            Evidence(
                rule_id=rule_id,
                outcome="passed",
                source=source,
                message=f"The rule held for {count} {noun}{'s' if count != 1 else ''}.",
            )
        )
    for item in extra:
        by_rule.setdefault(item.rule_id, []).append(item)
    return RunReport(
        target=target,
        profile=source,
        started_at=started_at,
        duration_s=duration_s,
        results=tuple(fold(rule, by_rule[rule.id]) for rule in catalogue if rule.id in by_rule),
        settings=settings,
        tool_versions=tool_versions(),
        requests=dict(requests or {}),
    )


def tool_versions() -> dict[str, str]:
    """The versions a report names: Python, this project, requests."""
    return {
        "python": platform.python_version(),
        "enginy-crm-contract": _version("enginy-crm-contract"),
        "requests": _version("requests"),
    }


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
