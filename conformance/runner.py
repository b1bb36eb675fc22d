"""One run of the suite: select rules, probe the server, judge, fold, report.

    select rules (--only), read the baseline → probe GET /health → scripted checks (catalogue order) →
    side evidence from every scripted answer (SERVER-NO-5XX, RESPONSE-SCHEMA) → Schemathesis pass
    (conformance.engine) → fold evidence into one Result per rule → RunReport → the baseline applied
    (and rewritten, with --baseline-update; conformance.baseline) → report files (conformance.report)

Each piece of evidence carries the time spent on it (a scripted check's own wall time, the time judging
every scripted answer, or an even share of the generated pass's, which judges its rules together), so
a rule's time can be reported on its own: the pytest plugin's per-rule durations.

A run is shown as it goes to a `RunObserver`: its stages (the scripted checks, then each Schemathesis
phase, with requests done of about how many) and each rule as it is judged. conformance.terminal is
the one the command line uses; without one, `LineObserver` writes one line per rule to `out` (`✓`
passed, `✗` failed, `!` warning, `-` skipped). Only `UsageError` and `TransportError` escape (exit
2): a server that answers anything at all gets a verdict.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import platform
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from conformance.baseline import (
    accepted_summary,
    apply_baseline,
    baseline_notes,
    describe_mark,
    load_baseline,
    updated_baseline,
    write_baseline,
)
from conformance.checks import (
    CHECKS,
    FIXTURES,
    LOAD_ONLY,
    SCHEMATHESIS_ONLY,
    CheckContext,
    Planned,
    SpecSchemas,
)
from conformance.checks._registry import RegisteredCheck
from conformance.client import MAX_BODY_BYTES, WRITE_METHODS, Client, OutOfTime, Reply
from conformance.errors import (
    AnswerTimeout,
    ConformanceError,
    NotACustomCrm,
    ServerUnreachable,
    TransportError,
    UsageError,
)
from conformance.exit_codes import for_report
from conformance.results import (
    Evidence,
    NotApplicable,
    Outcome,
    Result,
    RuleViolation,
    RunReport,
    fold,
)
from conformance.root_causes import attribute
from conformance.settings import RunSettings
from conformance.tagging import Ledger
from enginy_spec import Catalogue, Rule, UnknownRuleError, load_catalogue

__all__ = [
    "MARKS",
    "SCRIPTED_STAGE",
    "LineObserver",
    "Progress",
    "RunObserver",
    "RunOutcome",
    "RunPlan",
    "Stage",
    "counts_line",
    "plan_run",
    "reason_of",
    "run",
    "select_rules",
    "share_pass_time",
    "summary_table",
    "verdict_line",
]

Out = Callable[[str], None]
MARKS: Final[dict[str, str]] = {"passed": "✓", "failed": "✗", "warning": "!", "skipped": "-"}
ACCEPTED_MARK: Final = "~"  # in the summary table: a failure or warning the baseline accepts
SCRIPTED: Final = "scripted"
SIDE: Final = "scripted (side evidence)"
ENGINE: Final = "schemathesis"
# Statuses that say a gateway answered because the server behind it did not.
_GATEWAY: Final = frozenset({502, 503, 504})
_MAX_LISTED: Final = 5


class EngineFunction(Protocol):
    def __call__(
        self,
        settings: RunSettings,
        catalogue: Catalogue,
        *,
        progress: Callable[[str], None],
        run_id: str,
        ledger: Ledger,
        covered: Iterable[str],
        lanes: int,
        gate: Any,
        deadline: float | None,
        on_requests: Callable[[int, str], None] | None,
        stop: Any,
        requests: dict[str, int] | None,
        on_phase: Callable[[str, str], None] | None,
    ) -> list[Evidence]: ...


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a run produced: the report, where it was written, and notes for the terminal."""

    report: RunReport
    report_paths: dict[str, Path] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return for_report(self.report)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What a run would do, computed without touching the network (for --dry-run)."""

    rules: tuple[Rule, ...]
    scripted: tuple[RegisteredCheck, ...]
    generated: tuple[Rule, ...]  # judged from Schemathesis' generated requests
    fixtures: tuple[str, ...]  # shared fixtures to build, in build order
    requests: tuple[Planned, ...]  # every scripted request, fixtures first

    @property
    def request_count(self) -> int:
        return sum(item.count for item in self.requests)

    @property
    def write_count(self) -> int:
        return sum(item.count for item in self.requests if item.method in WRITE_METHODS)


def select_rules(settings: RunSettings, catalogue: Catalogue | None = None) -> Catalogue:
    """The rules a run judges: the catalogue but for the rules only `load` judges (LOAD_ONLY), or the part
    of it `--only` names; unknown ids, and load-only ones, are a UsageError naming what to do instead."""
    catalogue = catalogue if catalogue is not None else load_catalogue()
    if not settings.only:
        return catalogue.select(rule.id for rule in catalogue if rule.id not in LOAD_ONLY)
    try:
        selected = catalogue.select(settings.only)
    except UnknownRuleError as ex:
        raise UsageError(f"{ex} Run 'enginy-conformance rules' to list them.") from None
    load_only = [rule.id for rule in selected if rule.id in LOAD_ONLY]
    if load_only:
        raise UsageError(
            f"{', '.join(load_only)} {'is' if len(load_only) == 1 else 'are'} judged only under load: "
            "run enginy-conformance load (it needs many requests at once), or leave it out of --only."
        )
    return selected


def plan_run(settings: RunSettings, catalogue: Catalogue | None = None) -> RunPlan:
    selected = select_rules(settings, catalogue)
    in_catalogue = [CHECKS.get(rule.id) for rule in selected if rule.id in CHECKS]
    # The checks that judge every answer so far come last (see judge_scripted).
    scripted = tuple(sorted(in_catalogue, key=lambda registered: registered.reads_log))
    generated = tuple(rule for rule in selected if rule.id in SCHEMATHESIS_ONLY)
    fixtures: list[str] = []

    def need(name: str) -> None:
        for before in FIXTURES[name].needs:
            need(before)
        if name not in fixtures:
            fixtures.append(name)

    for registered in scripted:
        for name in registered.uses:
            need(name)
    requests = [item for name in fixtures for item in FIXTURES[name].sends]
    requests.extend(item for registered in scripted for item in registered.sends)
    return RunPlan(
        rules=tuple(selected),
        scripted=scripted,
        generated=generated,
        fixtures=tuple(fixtures),
        requests=tuple(requests),
    )


def describe_plan(settings: RunSettings, plan: RunPlan, *, engine: bool = True) -> list[str]:
    """The --dry-run text: rules, the requests the scripted checks make, and the write count."""
    must = sum(1 for rule in plan.rules if rule.level == "MUST")
    lines = [
        f"Dry run: nothing will be sent to {safe_url(settings.base_url)}.",
        f"Rules to judge: {len(plan.rules)} ({must} MUST, {len(plan.rules) - must} SHOULD).",
        "",
        f"Scripted checks ({len(plan.scripted)}), in this order:",
    ]
    width = max((len(item.rule_id) for item in plan.scripted), default=0)
    for registered in plan.scripted:
        own = ", ".join(str(item) for item in registered.sends) or "(shared fixtures only)"
        uses = f"  [uses {', '.join(registered.uses)}]" if registered.uses else ""
        lines.append(f"  {registered.rule_id:<{width}}  {own}{uses}")
    if plan.fixtures:
        lines += ["", "Shared fixtures, built once on first use:"]
        for name in plan.fixtures:
            lines.append(f"  {name}: {', '.join(str(item) for item in FIXTURES[name].sends)}")
    budget = "no limit" if settings.max_writes is None else str(settings.max_writes)
    lines += [
        "",
        f"Scripted requests: about {plan.request_count} (plus one GET /health probe), of which "
        f"{plan.write_count} are POST/PUT/PATCH writes; --max-writes: {budget}.",
        f"Every record created is tagged with '{settings.tag}' and listed in the report for cleanup.",
    ]
    if plan.generated and engine:
        from conformance.engine import BUDGETS, estimated_writes  # Schemathesis loads only for this line

        ids = ", ".join(rule.id for rule in plan.generated)
        writes = estimated_writes(BUDGETS[settings.profile])
        lines.append(f"Then a Schemathesis pass (profile {settings.profile}) for {ids}.")
        skipped = settings.max_writes is not None and settings.max_writes < writes
        lines.append(
            f"Generated testing sends about {writes} POST/PUT/PATCH requests of its own, its creates tagged "
            "too"
            + (
                f"; that is more than --max-writes {settings.max_writes}, so it would be skipped."
                if skipped
                else "."
            )
        )
    elif plan.generated:
        lines.append(
            "The Schemathesis pass is off: " + ", ".join(rule.id for rule in plan.generated) + " are skipped."
        )
    if settings.baseline is not None:
        # Read now: a bad file is as much a usage error in a dry run as in a real one.
        listed = ", ".join(entry.rule for entry in load_baseline(settings.baseline).entries) or "none"
        lines.append(f"Baseline {settings.baseline}: it accepts failures of {listed}.")
    return lines


def safe_url(url: str) -> str:
    """The base URL without any user:password part, for reports and the terminal."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def run(
    settings: RunSettings,
    *,
    catalogue: Catalogue | None = None,
    out: Out = print,
    observer: RunObserver | None = None,
    engine: bool = True,
    write: bool = True,
) -> RunOutcome:
    """Judge the server at settings.base_url and return the outcome (reports written unless write=False).

    The run is shown to `observer` as it goes (conformance.terminal's display); without one, as plain
    lines to `out` (`LineObserver`). `engine=False` leaves out the Schemathesis pass (its rules are
    then skipped): the project's own tests use it for speed. Raises UsageError or TransportError when
    nothing could be judged.

    With `settings.concurrency` above 1, the scripted checks are judged that many at a time and the
    Schemathesis pass runs meanwhile (in worker processes when the server is slow to answer), with at
    most `concurrency` requests in flight in all; with 1, one request follows another and the pass comes
    after the checks.
    """
    selected = select_rules(settings, catalogue)
    # Read before anything is sent: a bad baseline file ends the run at once (exit 2), not after it.
    baseline = (
        load_baseline(settings.baseline, catalogue=catalogue, missing_ok=settings.update_baseline)
        if settings.baseline is not None
        else None
    )
    if write:
        _check_writable(settings.report_dir)
    now = datetime.now(UTC)
    started_at = now.isoformat(timespec="seconds")
    started = time.monotonic()
    deadline = started + settings.max_time if settings.max_time is not None else None
    client = Client(
        base_url=settings.base_url,
        api_key=settings.api_key,
        api_key_header=settings.api_key_header,
        timeout=settings.timeout,
        max_writes=settings.max_writes,
        user_agent=f"enginy-conformance/{_version('enginy-crm-contract')}",
        run_deadline=deadline,
    )
    notes: list[str] = []
    generated = Ledger()  # what generated testing created
    engine_requests: dict[str, int] = {}
    plan = plan_run(settings, selected)
    progress = Progress(observer if observer is not None else LineObserver(out), started=started)
    progress.plan(SCRIPTED_STAGE, "scripted checks", plan.request_count + 1, rules=len(plan.scripted))
    generating: GeneratedPass | None = None
    scripted: dict[str, Evidence] = {}
    evidence: list[Evidence] = []
    interrupted = False
    ctx: CheckContext | None = None
    try:
        progress.watch(client)
        progress.begin(SCRIPTED_STAGE)
        probe(client)
        ctx = CheckContext(
            client=client, schemas=SpecSchemas(), run_id=secrets.token_hex(4), tag=settings.tag
        )
        lanes = _lanes(settings, client)
        client.gate = _gate(settings, lanes)
        generating = GeneratedPass(
            settings,
            selected,
            enabled=engine,
            run_id=ctx.run_id,
            ledger=generated,
            covered=frozenset(registered.rule_id for registered in plan.scripted),
            lanes=lanes,
            gate=client.gate,
            deadline=deadline,
            progress=progress,
            requests=engine_requests,
        )
        at_once = settings.concurrency
        if settings.max_writes is not None:
            # A write budget is spent in the order checks are judged: one at a time, the same checks get
            # it in every run, and the pass (which needs a budget of its own) comes after them.
            at_once = 1
        client.lanes = at_once
        if at_once > 1:
            generating.start()
        evidence, gone = judge_scripted(ctx, selected, progress, concurrency=at_once, found=scripted)
        # Schemathesis reads every answer whole and feeds ids from answers into later URLs; against a
        # server answering megabytes that takes unbounded time and memory, so it is not run (or stopped).
        oversized = any(reply.truncated for reply in client.log)
        if gone is not None:
            notes.append(gone)
            generating.cancel(
                "The Schemathesis pass was not run: the server had stopped accepting connections."
            )
        elif oversized:
            generating.cancel(
                f"The Schemathesis pass was not run: the server answered more than {MAX_BODY_BYTES // 1024} "
                "KiB to a scripted request, and the pass reads every answer whole."
            )
        evidence += side_evidence(ctx, selected, progress)
        progress.end(SCRIPTED_STAGE)
        evidence += generating.finish(evidence, notes)
    except KeyboardInterrupt:
        # Ctrl-C: the report says what was judged before the stop and lists what was created, so
        # nothing is lost; the rest is not judged, and the run exits 130 (RunReport.interrupted).
        if ctx is None:
            raise  # stopped before anything was judged: nothing to report
        interrupted = True
        if generating is not None:
            generating.cancel("Interrupted (Ctrl-C).")
            generating.finish([], [])
        evidence = list(scripted.values())
        notes.append(
            "Interrupted (Ctrl-C): the reports hold what was judged before the stop; the rest is not judged."
        )
    finally:
        progress.stop()
        client.close()
    if deadline is not None and time.monotonic() >= deadline:
        notes.append(
            f"The run's --max-time ({settings.max_time:g} s) passed: what was still to judge is not judged."
        )
    assert ctx is not None  # set before anything that can end the try block without raising
    if interrupted:
        judged = {item.rule_id for item in evidence}
        evidence += [
            Evidence(
                rule_id=rule.id,
                outcome="skipped",
                source=SCRIPTED,
                message="Not judged: the run was interrupted (Ctrl-C) first.",
            )
            for rule in selected
            if rule.id not in judged
        ]
    results = attribute(fold(rule, evidence) for rule in selected)
    scripted_requests = len(client.log) + len(client.failures)
    report = RunReport(
        target=safe_url(settings.base_url),
        profile=settings.profile,
        started_at=started_at,
        duration_s=round(time.monotonic() - started, 3),
        results=results,
        created=tuple(ctx.created) + tuple(r for r in generated.created if r not in ctx.created),
        untagged=generated.untagged,
        settings=_public_settings(settings, ctx.run_id),
        tool_versions=_tool_versions(),
        requests={"scripted": scripted_requests, **engine_requests},
        rate_limited=client.rate_limited,
        interrupted=interrupted,
    )
    if baseline is not None and not interrupted:
        if settings.update_baseline:
            update = updated_baseline(baseline, report, today=now.date(), catalogue=catalogue)
            write_baseline(update.baseline)
            notes.append(update.note)
            baseline = update.baseline
        # Expiry is judged on the day the run started (UTC), so one run has one answer.
        report = apply_baseline(report, baseline, today=now.date())
        notes.extend(baseline_notes(report))
    paths: dict[str, Path] = {}
    if write:
        paths = _write_reports(report, settings.report_dir, notes)
    return RunOutcome(report=report, report_paths=paths, notes=tuple(notes))


# Below this, answers come back faster than Schemathesis generates requests: the pass is CPU-bound and
# worker processes would only add their start-up. Above it, waiting dominates and they pay.
SLOW_ANSWER_MS: Final = 10.0


def _lanes(settings: RunSettings, client: Client) -> int:
    """How many worker processes generated testing gets: `concurrency` against a server slow to answer."""
    if settings.concurrency <= 1 or settings.max_writes is not None:
        return 1
    answered = [reply.exchange.response.elapsed_ms for reply in client.log if reply.exchange.response]
    return settings.concurrency if answered and min(answered) >= SLOW_ANSWER_MS else 1


def _gate(settings: RunSettings, lanes: int) -> Any:
    """The bound on requests in flight: shared with worker processes when there are any."""
    if settings.concurrency <= 1:
        return None
    if lanes > 1:
        from conformance.engine_parallel import new_gate

        return new_gate(settings.concurrency)
    return threading.BoundedSemaphore(settings.concurrency)


def probe(client: Client) -> Reply:
    """GET /health once, to tell 'cannot be judged at all' (exit 2) from 'judged and wrong' (exit 1).

    When /health does not answer a 2xx, two read-only keyed requests tell a Custom CRM with a broken
    /health (judged, and failed) from a target that is none at all (exit 2, NotACustomCrm).
    """
    reply = client.get("/health", operation="checkHealth")
    where = f"GET {client.base_url}/health"
    if 300 <= reply.status < 400:
        location = reply.header("Location") or "(no Location header)"
        raise TransportError(
            f"{where} answered {reply.status}, a redirect to {location}; the suite never follows redirects "
            "(the key would travel with them), so use the address that answers directly as --base-url."
        )
    if reply.status in _GATEWAY:
        kind = "a JSON body" if reply.is_json else "a non-JSON page"
        raise TransportError(
            f"{where} answered {reply.status} with {kind}: a proxy or gateway answered, not the server "
            "behind it; start the server (or fix the proxy) and run again."
        )
    if reply.status in (401, 403):
        raise UsageError(
            f"{where} refused the key ({reply.status}); check the key (ENGINY_API_KEY or --api-key) and "
            "the header it goes under (--api-key-header, default X-API-Key)."
        )
    if not reply.ok:
        _recognise_custom_crm(client, reply)
    return reply


# Read-only requests every Custom CRM serves (they write nothing, even on a server that gets them wrong).
_RECOGNITION_PROBES: Final[tuple[tuple[str, str, str, dict[str, list[str]]], ...]] = (
    ("POST", "/tasks/batch", "getTasksBatch", {"ids": []}),
    ("POST", "/contacts/sync", "syncContacts", {"contacts": []}),
)
# What any HTTP server answers for a path or method it does not have.
_NO_SUCH_THING: Final = frozenset({404, 405, 501})


def _recognise_custom_crm(client: Client, health: Reply) -> None:
    """Raise NotACustomCrm when neither /health nor the read-only probes answer like a Custom CRM API.

    A Custom CRM answers at least one of them with a 2xx, or with a JSON answer of its own (a 400, a 401,
    even a 500). A static file server, another API or a wrong path prefix answers "no such path or
    method" (404, 405, 501) or an HTML error page to all of them.
    """
    replies = [health]
    for method, path, operation, body in _RECOGNITION_PROBES:
        replies.append(client.send(method, path, operation=operation, json=body, budgeted=False))
    if not all(_foreign(reply) for reply in replies):
        return
    found = "; ".join(f"{r.sent.method} {r.sent.path} → {_kind_of(r)}" for r in replies)
    raise NotACustomCrm(
        f"{client.base_url} does not look like a Custom CRM API ({found}); check --base-url (the root the "
        "endpoints hang off, path prefix included, e.g. https://crm.example.com/enginy) and that the "
        "server serving it is your Custom CRM."
    )


def _foreign(reply: Reply) -> bool:
    # A crash (500) or a refused key is a server of ours doing something; only "no such path or method"
    # and foreign error pages say nothing of the kind.
    if reply.ok or reply.status in (401, 403) or (reply.status >= 500 and reply.status != 501):
        return False
    return reply.status in _NO_SUCH_THING or not reply.is_json


def _kind_of(reply: Reply) -> str:
    return f"{reply.status} ({reply.media_type or 'no Content-Type'})"


def judge_scripted(
    ctx: CheckContext,
    selected: Iterable[Rule],
    progress: Progress,
    *,
    concurrency: int = 1,
    found: dict[str, Evidence] | None = None,
) -> tuple[list[Evidence], str | None]:
    """Judge the scripted rules; also return why the run lost the server, if it did.

    Up to `concurrency` checks are judged at once (shared fixtures are built once, by whichever check
    needs one first, while the others wait for it); the checks that judge every answer the run has seen
    (`reads_log`) come after all the others. Evidence and progress lines come in catalogue order
    whatever the order the checks finish in, so that a concurrent run reads like a sequential one.

    A server that stops accepting connections mid-run leaves the rest unjudged: those rules are
    'skipped' with that reason (the verdict is then INCOMPLETE unless something already failed).
    `found` receives each rule's evidence as it is announced, so that a Ctrl-C keeps what was judged.
    """
    rules = [rule for rule in selected if rule.id in CHECKS]
    gone: list[str] = []  # the first reason the server was lost; a list, so every thread sees it

    def judge(rule: Rule) -> Evidence:
        if not gone:
            started = time.perf_counter()
            try:
                item = _scrubbed(_judge_one(ctx, rule, CHECKS.get(rule.id)), ctx.client)
            except ServerUnreachable as ex:
                gone.append(f"The server stopped accepting connections during the run: {ex}")
            else:
                return replace(item, duration_s=time.perf_counter() - started)
        return Evidence(rule_id=rule.id, outcome="skipped", source=SCRIPTED, message=gone[0])

    found = {} if found is None else found
    first = [rule for rule in rules if not CHECKS.get(rule.id).reads_log]
    last = [rule for rule in rules if CHECKS.get(rule.id).reads_log]
    for group in (first, last):
        if concurrency <= 1 or len(group) <= 1:
            for rule in group:
                found[rule.id] = judge(rule)
                progress.judged(found[rule.id])
            continue
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="enginy-check")
        try:
            futures = [(rule, pool.submit(judge, rule)) for rule in group]
            for rule, future in futures:  # in catalogue order, each as soon as it and those before are done
                found[rule.id] = future.result()
                progress.judged(found[rule.id])
        except KeyboardInterrupt:
            # Checks not started are dropped; those sending finish their request, each within --timeout.
            gone.append("The run was interrupted (Ctrl-C).")
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return [found[rule.id] for rule in rules], (gone[0] if gone else None)


def _scrubbed(item: Evidence, client: Client) -> Evidence:
    """The evidence with the key redacted from the phrases a check wrote from the answers it judged.

    Checks see answers unredacted (so they judge what the server said); the key must still never
    reach the terminal or a report, and this is where a check's words leave it.
    """
    return replace(
        item,
        message=client.redact(item.message),
        expected=client.redact(item.expected),
        actual=client.redact(item.actual),
    )


def _judge_one(ctx: CheckContext, rule: Rule, registered: RegisteredCheck) -> Evidence:
    with ctx.client.capture() as captured:
        try:
            note = registered.function(ctx)
        except RuleViolation as violation:
            if violation.rule_id != rule.id:
                return _internal(rule, registered, f"it raised a violation of {violation.rule_id}")
            return Evidence.from_violation(violation, level=rule.level, source=SCRIPTED)
        except OutOfTime as ex:
            return Evidence(rule_id=rule.id, outcome="skipped", source=SCRIPTED, message=ex.reason, gap=True)
        except NotApplicable as ex:
            return Evidence(rule_id=rule.id, outcome="skipped", source=SCRIPTED, message=ex.reason)
        except ServerUnreachable:
            raise  # nothing further can be judged: the run ends with exit 2
        except AnswerTimeout as ex:
            # The docs set no response time: an answer too slow to wait for judges nothing either way.
            return Evidence(
                rule_id=rule.id,
                outcome="skipped",
                source=SCRIPTED,
                message=f"Not judged: {ex}",
                exchanges=tuple(captured.failures),
                gap=True,
            )
        except TransportError as ex:
            # The request reached the server and no usable answer came back: that is the server's doing.
            exchanges = tuple(captured.failures) or tuple(reply.exchange for reply in captured.replies)
            return Evidence(
                rule_id=rule.id,
                outcome="failed" if rule.level == "MUST" else "warning",
                source=SCRIPTED,
                message=str(ex),
                expected="an answer within the timeout",
                actual="no usable answer",
                exchanges=exchanges,
            )
        except Exception as ex:  # a bug in a check must not cost the whole run its report
            return _internal(rule, registered, f"{type(ex).__name__}: {ex}")
    exchanges = tuple(reply.exchange for reply in captured.replies)
    return Evidence(
        rule_id=rule.id, outcome="passed", source=SCRIPTED, message=note or "", exchanges=exchanges
    )


def _internal(rule: Rule, registered: RegisteredCheck, what: str) -> Evidence:
    return Evidence(
        rule_id=rule.id,
        outcome="skipped",
        source=SCRIPTED,
        message=f"Internal error in the check {registered.name} ({what}); please report it to the suite's "
        "maintainers.",
    )


def side_evidence(ctx: CheckContext, selected: Catalogue, progress: Progress) -> list[Evidence]:
    """What every scripted answer says about the rules judged from every answer, when they are selected:
    SERVER-NO-5XX (all of them), RESPONSE-SCHEMA and RESPONSE-CONTENT-TYPE-JSON (success answers to
    requests Enginy would send)."""
    found: list[Evidence] = []
    log = [reply for reply in ctx.client.log if reply.sent.operation is not None]
    # Evidence about success answers comes only from requests Enginy would send; which answers a rule
    # applies to, and whether each holds, is the rule's single-exchange judge's to say.
    answered = [reply for reply in log if reply.valid and reply.ok]
    judged: tuple[tuple[str, list[Reply], str, str], ...] = (
        ("SERVER-NO-5XX", log, "scripted requests", "no 5xx (501 on /users excepted)"),
        (
            "RESPONSE-SCHEMA",
            answered,
            "success answers to scripted requests",
            "a documented status and a body matching the spec's response schema",
        ),
        (
            "RESPONSE-CONTENT-TYPE-JSON",
            answered,
            "success answers to scripted requests",
            "Content-Type: application/json on a JSON answer",
        ),
    )
    for rule_id, replies, what, expected in judged:
        if rule_id in selected and replies:
            started = time.perf_counter()
            item = _every_answer(ctx, selected.get(rule_id), replies, what, expected)
            if item is None:
                continue
            if rule_id == "RESPONSE-SCHEMA" and item.outcome != "passed":
                item = replace(item, fields=_schema_fields(ctx.schemas, replies))
            found.append(replace(item, duration_s=time.perf_counter() - started))
    unanswered = [exchange for exchange in ctx.client.failures if exchange.error in _NO_TIMELY_ANSWER]
    if unanswered and "SERVER-NO-5XX" in selected:
        # A request without an answer in time might have been a 5xx: that cannot be ruled out.
        found.append(
            Evidence(
                rule_id="SERVER-NO-5XX",
                outcome="skipped",
                source=SIDE,
                message=f"Not judged in full: {len(unanswered)} scripted requests "
                "got no whole answer in time, "
                "so whether they would have been answered with a 5xx is not known.",
                exchanges=tuple(unanswered[:_MAX_LISTED]),
                gap=True,
            )
        )
    for item in found:
        progress.judged(item)
    return found


# How the client marks a request that got no whole answer within its deadline.
_NO_TIMELY_ANSWER: Final = frozenset({"deadline passed", "read timeout"})


def _schema_fields(schemas: SpecSchemas, replies: list[Reply]) -> tuple[str, ...]:
    """The answer fields the RESPONSE-SCHEMA problems of these replies are about ("" for a problem at no
    field: an undocumented status, a body that is not JSON), for conformance.root_causes."""
    fields: dict[str, None] = {}
    for reply in replies:
        assert reply.sent.operation is not None
        for problem in schemas.response_problems(
            reply.sent.operation, reply.status, reply.json, is_json=reply.is_json
        ):
            fields[problem.field or ""] = None
    return tuple(fields)


def _every_answer(
    ctx: CheckContext, rule: Rule, replies: list[Reply], what: str, expected: str
) -> Evidence | None:
    """The rule judged on each of `replies` it applies to, or None when it applies to none."""
    judged = 0
    bad: list[tuple[Reply, RuleViolation]] = []
    for reply in replies:
        try:
            broken = ctx.violation_of(rule.id, reply)
        except NotApplicable:
            continue
        judged += 1
        if broken is not None:
            bad.append((reply, broken))
    if not judged:
        return None
    if not bad:
        return Evidence(
            rule_id=rule.id,
            outcome="passed",
            source=SIDE,
            message=f"{judged} {what}, none breaking it.",
        )
    listed = "; ".join(f"{r.sent.method} {r.sent.path} → {why.actual}" for r, why in bad[:_MAX_LISTED])
    return Evidence(
        rule_id=rule.id,
        outcome="failed" if rule.level == "MUST" else "warning",
        source=SIDE,
        message=f"{len(bad)} of {judged} {what} break it.",
        expected=expected,
        actual=listed + (f" (and {len(bad) - _MAX_LISTED} more)" if len(bad) > _MAX_LISTED else ""),
        exchanges=tuple(r.exchange for r, _ in bad[:_MAX_LISTED]),
    )


# How often the progress line comes while a run takes long (LineObserver; the terminal's own plain mode).
PROGRESS_EVERY_S: Final = 10.0
# How often a run's stages are looked at again (scripted requests counted, observers ticked).
TICK_S: Final = 0.25
SCRIPTED_STAGE: Final = "scripted"
StageState = Literal["waiting", "running", "done", "skipped"]


@dataclass(slots=True)
class Stage:
    """One stage of a run as its observers show it: the scripted checks, or one Schemathesis phase.

    `planned` is an estimate (the plan's scripted requests, the engine's figure for a phase), so `done`
    may pass it. Mutated only by `Progress`, under its lock; observers read it.
    """

    key: str  # SCRIPTED_STAGE, or the phase's name ("coverage", "fuzzing", ...)
    title: str
    planned: int
    rules: int = 0  # rules the stage judges one by one (the scripted checks)
    done: int = 0
    judged: int = 0
    failed: int = 0
    warnings: int = 0
    state: StageState = "waiting"
    started_at: float | None = None
    finished_at: float | None = None
    note: str = ""  # why it was skipped

    def seconds(self, now: float) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at if self.finished_at is not None else now) - self.started_at


class RunObserver(Protocol):
    """Whoever shows a run while it lasts (conformance.terminal, or `LineObserver` for plain lines).

    Stage calls come from the run's threads, one at a time (Progress holds its lock meanwhile); `tick`
    comes every TICK_S from Progress's own thread; `close` once, when the run is over, Ctrl-C included.
    """

    def stage_planned(self, stage: Stage) -> None: ...

    def stage_started(self, stage: Stage) -> None: ...

    def stage_finished(self, stage: Stage) -> None: ...

    def tick(self, progress: Progress) -> None: ...

    def judged(self, item: Evidence) -> None: ...

    def detail(self, text: str) -> None: ...

    def close(self) -> None: ...


class LineObserver:
    """The run as plain lines to `out`: one per rule as it is judged, the engine's own lines, and the
    progress line every PROGRESS_EVERY_S. What `run(out=...)` gives callers that want text (tests, the
    pytest plugin's silent run)."""

    def __init__(self, out: Out, *, every: float = PROGRESS_EVERY_S) -> None:
        self._out = out
        self._every = every
        self._last: float | None = None

    def stage_planned(self, stage: Stage) -> None:
        pass

    def stage_started(self, stage: Stage) -> None:
        pass

    def stage_finished(self, stage: Stage) -> None:
        pass

    def tick(self, progress: Progress) -> None:
        now = time.monotonic()
        if self._last is None:
            self._last = now
        elif now - self._last >= self._every:
            self._last = now
            self._out(progress.line(now))

    def judged(self, item: Evidence) -> None:
        suffix = " (scripted answers)" if item.source == SIDE else ""
        reason = item.message if item.outcome != "passed" else ""
        self._out(_line(item.rule_id, item.outcome, reason, suffix=suffix))

    def detail(self, text: str) -> None:
        self._out(text)

    def close(self) -> None:
        pass


class Progress:
    """The stages of a run and the requests each has done, told to a RunObserver.

    A slow server shows as slow (requests keep being done, the estimate is long), not as hung. Scripted
    requests are counted from the client's log every TICK_S; the generated pass reports its own, per
    phase (`count`), from any thread or from its worker processes through conformance.engine_parallel.
    """

    def __init__(self, observer: RunObserver, *, started: float, tick: float = TICK_S) -> None:
        self._observer = observer
        self._started = started
        self._tick = tick
        self._stages: dict[str, Stage] = {}
        self._client: Client | None = None
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stages(self) -> list[Stage]:
        with self._lock:
            return list(self._stages.values())

    def plan(self, key: str, title: str, planned: int, *, rules: int = 0) -> None:
        with self._lock:
            if key not in self._stages:
                self._stages[key] = Stage(key=key, title=title, planned=planned, rules=rules)
                self._observer.stage_planned(self._stages[key])

    def begin(self, key: str) -> None:
        with self._lock:
            stage = self._stages.get(key)
            if stage is not None and stage.state == "waiting":
                stage.state = "running"
                stage.started_at = time.monotonic()
                self._observer.stage_started(stage)

    def count(self, done: int, key: str) -> None:
        """`done` more requests in stage `key` (a phase starts with its first request, if not before)."""
        with self._lock:
            stage = self._stages.get(key)
            if stage is None:
                return
            self.begin(key)
            stage.done += done

    def judged(self, item: Evidence, key: str = SCRIPTED_STAGE) -> None:
        with self._lock:
            stage = self._stages.get(key)
            if stage is not None:
                stage.judged += 1 if item.source == SCRIPTED else 0
                stage.failed += item.outcome == "failed"
                stage.warnings += item.outcome == "warning"
            self._observer.judged(item)

    def detail(self, text: str) -> None:
        self._observer.detail(text)

    def end(self, key: str, *, skipped: str = "") -> None:
        """Stage `key` is over; one that never started is 'skipped' (with `skipped` saying why)."""
        with self._lock:
            stage = self._stages.get(key)
            if stage is None or stage.state in ("done", "skipped"):
                return
            self._count_scripted()
            stage.state = "done" if stage.state == "running" else "skipped"
            stage.note = skipped if stage.state == "skipped" else ""
            stage.finished_at = time.monotonic()
            self._observer.stage_finished(stage)

    @property
    def done(self) -> int:
        with self._lock:
            return sum(stage.done for stage in self._stages.values())

    def line(self, now: float | None = None) -> str:
        """All stages in one line: requests done of about how many, and the time left at the pace so far."""
        elapsed = (time.monotonic() if now is None else now) - self._started
        with self._lock:
            done = self.done
            planned = max(sum(s.planned for s in self._stages.values() if s.state != "skipped"), done)
        text = f"… {done:,} of about {planned:,} requests in {elapsed:.0f} s"
        if done and elapsed > 0:
            left = (planned - done) * elapsed / done
            text += f"; about {left:.0f} s left" if planned > done else "; finishing"
        return text

    def watch(self, client: Client) -> None:
        """Count the scripted stage's requests from `client`, and tick the observer, until `stop`."""
        self._client = client
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="enginy-progress", daemon=True)
            self._thread.start()

    def _count_scripted(self) -> None:
        stage = self._stages.get(SCRIPTED_STAGE)
        if self._client is not None and stage is not None and stage.state == "running":
            stage.done = len(self._client.log) + len(self._client.failures)

    def _run(self) -> None:
        while not self._stopped.wait(self._tick):
            with self._lock:
                self._count_scripted()
                self._observer.tick(self)

    def stop(self) -> None:
        """The run is over (or interrupted): no more ticks, and the observer closes its display."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            self._count_scripted()
            self._observer.close()


class GeneratedPass:
    """The Schemathesis pass of one run: started beside the scripted checks, or run after them.

    Its rules are 'skipped', with the reason, when it cannot run (turned off, not installed, cancelled
    because the server went away or answers too much) or stops early.
    """

    def __init__(
        self,
        settings: RunSettings,
        selected: Catalogue,
        *,
        enabled: bool,
        run_id: str,
        ledger: Ledger,
        covered: frozenset[str],
        lanes: int,
        gate: Any,
        deadline: float | None,
        progress: Progress,
        requests: dict[str, int],
    ) -> None:
        self._settings = settings
        self._selected = selected
        self._run_id = run_id
        self._ledger = ledger
        self._covered = covered
        self._lanes = lanes
        self._gate = gate
        self._deadline = deadline
        self._progress = progress
        self._requests = requests
        self._found: list[Evidence] = []
        self._reason: str | None = None
        self._error: BaseException | None = None
        self._cancelled: str | None = None
        self._thread: threading.Thread | None = None
        self._seconds = 0.0  # the pass's wall time, shared by its rules (share_pass_time)
        self._judge: EngineFunction | None = None
        self._engine_rules: frozenset[str] = SCHEMATHESIS_ONLY
        self._stop: Any = threading.Event()
        self._phases: tuple[str, ...] = ()
        if not enabled:
            self._reason = "The Schemathesis pass was turned off for this run."
            return
        try:
            module = importlib.import_module("conformance.engine")
            self._judge = module.judge_generated
            self._engine_rules = frozenset(getattr(module, "ENGINE_RULES", SCHEMATHESIS_ONLY))
        except (ImportError, AttributeError):
            self._reason = "The Schemathesis pass is not available (conformance.engine is missing)."
        if lanes > 1 and self._judge is not None:
            from conformance.engine_parallel import new_stop

            self._stop = new_stop()
        if self._judge is not None and self._wanted:
            self._plan_phases()

    def _plan_phases(self) -> None:
        """One stage per phase the pass will run, with the engine's estimate of its requests."""
        from conformance.engine import BUDGETS, estimated_requests, phases_for
        from conformance.failure_map import checks_for

        budget = BUDGETS[self._settings.profile]
        checks = checks_for((rule.id for rule in self._selected), covered=self._covered)
        self._phases = phases_for(budget, checks)
        for phase in self._phases:
            self._progress.plan(phase, f"Schemathesis {phase}", estimated_requests(budget, (phase,)))

    def _phase(self, phase: str, event: str) -> None:
        if event == "started":
            self._progress.begin(phase)
        else:
            self._progress.end(phase)

    @property
    def _wanted(self) -> bool:
        return any(rule.id in self._engine_rules for rule in self._selected)

    def start(self) -> None:
        """Start the pass in a thread of its own (it returns at once)."""
        if self._judge is None or not self._wanted or self._thread is not None or self._cancelled:
            return
        self._thread = threading.Thread(target=self._work, name="enginy-generated", daemon=True)
        self._thread.start()

    def cancel(self, reason: str) -> None:
        """Stop the pass (or keep it from starting): its rules are skipped with `reason`."""
        self._cancelled = self._cancelled or reason
        self._stop.set()

    def _work(self) -> None:
        assert self._judge is not None
        self._progress.detail(f"Schemathesis pass (profile {self._settings.profile}) …")
        started = time.perf_counter()
        try:
            self._found = list(
                self._judge(
                    self._settings,
                    self._selected,
                    progress=self._progress.detail,
                    run_id=self._run_id,
                    ledger=self._ledger,
                    covered=self._covered,
                    lanes=self._lanes,
                    gate=self._gate,
                    deadline=self._deadline,
                    on_requests=self._progress.count,
                    stop=self._stop,
                    requests=self._requests,
                    on_phase=self._phase,
                )
            )
        except UsageError as ex:
            self._error = ex
        except TransportError as ex:
            # The scripted checks did reach the server; their verdicts stand without this pass.
            self._reason = f"The Schemathesis pass could not talk to the server: {ex}"
        except ConformanceError as ex:  # e.g. EngineError: keep what it found before it stopped
            self._found = list(getattr(ex, "evidence", ()))
            self._reason = f"The Schemathesis pass stopped early: {ex}"
        except KeyboardInterrupt as ex:
            self._error = ex
        except Exception as ex:  # the scripted verdicts still stand without it
            self._reason = (
                f"The Schemathesis pass stopped with an internal error ({type(ex).__name__}: {ex})."
            )
        finally:
            self._seconds = time.perf_counter() - started
            self._end_phases(self._reason or "")

    def finish(self, so_far: list[Evidence], notes: list[str]) -> list[Evidence]:
        """Wait for the pass (or run it now, after the checks) and return its evidence."""
        if self._thread is None and self._cancelled is None:
            if self._judge is not None and self._wanted:
                self._work()
        elif self._thread is not None:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        if self._error is not None:
            raise self._error
        if not self._wanted:
            return []
        reason = self._cancelled or self._reason
        self._end_phases(reason or "")
        found = [] if self._cancelled else self._found
        if reason is not None:
            notes.append(reason)
        judged = {item.rule_id for item in so_far + found}
        for rule in self._selected:
            if rule.id in SCHEMATHESIS_ONLY and rule.id not in judged:
                message = reason or "Not judged by the Schemathesis pass."
                found.append(Evidence(rule_id=rule.id, outcome="skipped", source=ENGINE, message=message))
        return share_pass_time(found, self._seconds)

    def _end_phases(self, reason: str) -> None:
        # Phases that never sent a request are shown as skipped, with the pass's reason if it has one.
        for phase in self._phases:
            self._progress.end(phase, skipped=reason or "Nothing to send in this phase.")


def share_pass_time(evidence: list[Evidence], seconds: float) -> list[Evidence]:
    """The pass's evidence with its wall time shared evenly by the rules it speaks about.

    One pass judges all its rules from the same generated requests, so no rule's own part of the time
    can be told apart; an even share keeps the rules' times adding up to the pass's. Each rule's share
    goes on its first piece of evidence.
    """
    rules = dict.fromkeys(item.rule_id for item in evidence)
    if not rules:
        return evidence
    share = seconds / len(rules)
    shared: list[Evidence] = []
    for item in evidence:
        if item.rule_id in rules:
            del rules[item.rule_id]
            item = replace(item, duration_s=share)
        shared.append(item)
    return shared


def _check_writable(directory: Path) -> None:
    """UsageError unless files can be written into `directory`: checked before anything is sent, since
    a read-only --report-dir found at the end would lose the whole run. A folder made for the check is
    removed again, so a run that ends before its reports (exit 2) leaves nothing behind."""
    made = [path for path in (directory, *directory.parents) if not path.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as ex:
        raise UsageError(
            f"Cannot write the reports to {directory} ({ex.strerror or ex}); choose another --report-dir. "
            "Nothing was sent."
        ) from None
    finally:
        for path in made:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()


def _write_reports(report: RunReport, directory: Path, notes: list[str]) -> dict[str, Path]:
    try:
        writer = importlib.import_module("conformance.report").write_reports
    except (ImportError, AttributeError):
        notes.append("Reports were not written: conformance.report is not available.")
        return {}
    try:
        paths: dict[str, Path] = writer(report, directory)
    except OSError as ex:
        raise UsageError(
            f"Could not write the reports to {directory} ({ex.strerror or ex}); choose another --report-dir."
        ) from None
    return paths


def _line(rule_id: str, outcome: Outcome, reason: str = "", *, suffix: str = "") -> str:
    text = f"{MARKS[outcome]} {rule_id}{suffix}"
    return f"{text} — {_one_line(reason)}" if reason else text


def _one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def reason_of(result: Result) -> str:
    """One line saying why a rule got its outcome, and what its baseline entry, if any, did."""
    mark = result.baseline
    if mark is None:
        return _finding(result)
    if mark.status == "accepted":
        return _one_line(f"{describe_mark(mark)} — {_finding(result)}")
    if mark.status == "expired":
        return _one_line(f"{describe_mark(mark)}. {_finding(result)}")
    return _one_line(f"{_finding(result)} {describe_mark(mark)}.")


def _finding(result: Result) -> str:
    if result.outcome in ("failed", "warning"):
        item = result.failures[0]
        detail = f" Got: {item.actual}" if item.actual else ""
        return _one_line(item.message + detail)
    if result.outcome == "skipped":
        messages = [e.message for e in result.evidence if e.message]
        return _one_line(messages[0]) if messages else "Not judged."
    names = {SCRIPTED: "scripted checks", SIDE: "every scripted answer", ENGINE: "Schemathesis"}
    sources = sorted({names.get(e.source, e.source) for e in result.evidence})
    return "Holds; judged by " + " and ".join(sources) + "."


def summary_table(report: RunReport) -> list[str]:
    """The end-of-run table: rule, level, outcome, one-line reason; then the counts and the verdict."""
    width = max((len(r.rule.id) for r in report.results), default=4)
    cells = [_outcome_cell(result) for result in report.results]
    wide = max((len(cell) for cell in cells), default=8)
    lines = [
        f"{'Rule':<{width}}  Level   {'Outcome':<{wide}} Reason",
        f"{'-' * width}  ------  {'-' * 7:<{wide}} ------",
    ]
    for result, cell in zip(report.results, cells, strict=True):
        lines.append(f"{result.rule.id:<{width}}  {result.rule.level:<6}  {cell:<{wide}} {reason_of(result)}")
    lines += ["", f"{counts_line(report)} {verdict_line(report)}"]
    return lines


def counts_line(report: RunReport) -> str:
    """ "48 passed, 1 failed, 1 warning, 6 skipped in 14.1 s." (with how many the baseline accepts)."""
    counts = []
    for outcome in ("passed", "failed", "warning", "skipped"):
        accepted = sum(1 for result in report.accepted if result.outcome == outcome)
        count = report.count(outcome)
        noun = "warnings" if outcome == "warning" and count != 1 else outcome
        counts.append(f"{count} {noun}" + (f" ({accepted} accepted)" if accepted else ""))
    return f"{', '.join(counts)} in {report.duration_s:.1f} s."


def _outcome_cell(result: Result) -> str:
    # An accepted failure says both: what the run saw, and that the baseline accepts it.
    if result.accepted:
        return f"{ACCEPTED_MARK} {result.outcome}, accepted"
    return f"{MARKS[result.outcome]} {result.outcome}"


def verdict_line(report: RunReport) -> str:
    """The verdict in one sentence, naming what was not judged when the run is INCOMPLETE."""
    accepted = accepted_summary(report)
    tail = f" {accepted}" if accepted else ""
    if report.verdict == "failed":
        return "FAILED: a MUST rule does not hold." + tail
    if report.verdict == "passed":
        if any(result.outcome == "failed" for result in report.accepted):
            return (
                "PASSED: every selected MUST rule was judged and holds, apart from failures the baseline "
                "accepts." + tail
            )
        return "PASSED: every selected MUST rule was judged and holds." + tail
    missing = report.not_judged
    listed = ", ".join(result.rule.id for result in missing[:_MAX_LISTED])
    more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
    return (
        f"INCOMPLETE: no MUST rule failed, but {len(missing)} could not be judged ({listed}{more}); "
        "the table says why." + tail
    )


def _public_settings(settings: RunSettings, run_id: str) -> dict[str, object]:
    # Never the key: this dict lands in every report.
    return {
        "base_url": safe_url(settings.base_url),
        "api_key_header": settings.api_key_header,
        "profile": settings.profile,
        "only": list(settings.only),
        "report_dir": str(settings.report_dir),
        "max_writes": settings.max_writes,
        "timeout": settings.timeout,
        "concurrency": settings.concurrency,
        "max_time": settings.max_time,
        "seed": settings.seed,
        "baseline": str(settings.baseline) if settings.baseline is not None else None,
        "baseline_update": settings.update_baseline,
        "tag": settings.tag,
        "run_id": run_id,
    }


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _tool_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "enginy-crm-contract": _version("enginy-crm-contract"),
        "schemathesis": _version("schemathesis"),
        "requests": _version("requests"),
    }
