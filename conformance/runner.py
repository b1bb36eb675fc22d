"""One run of the suite: select rules, probe the server, judge, fold, report.

    select rules (--only) → probe GET /health → scripted checks (catalogue order) → side evidence from
    every scripted answer (SERVER-NO-5XX, RESPONSE-SCHEMA) → Schemathesis pass (conformance.engine) →
    fold evidence into one Result per rule → RunReport → report files (conformance.report)

Progress goes to the `out` callable one line per rule as it is judged (`✓` passed, `✗` failed, `!`
warning, `-` skipped). Only `UsageError` and `TransportError` escape (exit 2): a server that answers
anything at all gets a verdict.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import urlsplit, urlunsplit

from conformance.checks import CHECKS, FIXTURES, SCHEMATHESIS_ONLY, CheckContext, Planned, SpecSchemas
from conformance.checks._registry import RegisteredCheck
from conformance.checks._support import content_type_problem
from conformance.client import MAX_BODY_BYTES, WRITE_METHODS, Client, Reply
from conformance.errors import ConformanceError, NotACustomCrm, ServerUnreachable, TransportError, UsageError
from conformance.exit_codes import for_verdict
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
    "RunOutcome",
    "RunPlan",
    "plan_run",
    "run",
    "select_rules",
    "summary_table",
]

Out = Callable[[str], None]
MARKS: Final[dict[str, str]] = {"passed": "✓", "failed": "✗", "warning": "!", "skipped": "-"}
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
    ) -> list[Evidence]: ...


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a run produced: the report, where it was written, and notes for the terminal."""

    report: RunReport
    report_paths: dict[str, Path] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return for_verdict(self.report.verdict)


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
    """The catalogue, or the part of it `--only` names; unknown ids are a UsageError naming close matches."""
    catalogue = catalogue if catalogue is not None else load_catalogue()
    if not settings.only:
        return catalogue
    try:
        return catalogue.select(settings.only)
    except UnknownRuleError as ex:
        raise UsageError(f"{ex} Run 'enginy-conformance rules' to list them.") from None


def plan_run(settings: RunSettings, catalogue: Catalogue | None = None) -> RunPlan:
    selected = select_rules(settings, catalogue)
    scripted = tuple(CHECKS.get(rule.id) for rule in selected if rule.id in CHECKS)
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
    engine: bool = True,
    write: bool = True,
) -> RunOutcome:
    """Judge the server at settings.base_url and return the outcome (reports written unless write=False).

    `engine=False` leaves out the Schemathesis pass (its rules are then skipped): the project's own
    tests use it for speed. Raises UsageError or TransportError when nothing could be judged.
    """
    selected = select_rules(settings, catalogue)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    client = Client(
        base_url=settings.base_url,
        api_key=settings.api_key,
        api_key_header=settings.api_key_header,
        timeout=settings.timeout,
        max_writes=settings.max_writes,
        user_agent=f"enginy-conformance/{_version('enginy-crm-contract')}",
    )
    notes: list[str] = []
    generated = Ledger()  # what generated testing created
    try:
        probe(client)
        ctx = CheckContext(
            client=client, schemas=SpecSchemas(), run_id=secrets.token_hex(4), tag=settings.tag
        )
        evidence, gone = judge_scripted(ctx, selected, out)
        if gone is not None:
            notes.append(gone)
        evidence += side_evidence(ctx, selected, out)
        # Schemathesis reads every answer whole and feeds ids from answers into later URLs; against a
        # server answering megabytes that takes unbounded time and memory, so it is not started.
        oversized = any(reply.truncated for reply in client.log)
        evidence += _run_engine(
            settings,
            selected,
            evidence,
            out,
            notes,
            enabled=engine,
            oversized=oversized,
            gone=gone,
            run_id=ctx.run_id,
            ledger=generated,
        )
    finally:
        client.close()
    results = attribute(fold(rule, evidence) for rule in selected)
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
    )
    paths: dict[str, Path] = {}
    if write:
        paths = _write_reports(report, settings.report_dir, notes)
    return RunOutcome(report=report, report_paths=paths, notes=tuple(notes))


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
    ctx: CheckContext, selected: Iterable[Rule], out: Out
) -> tuple[list[Evidence], str | None]:
    """Judge the scripted rules in catalogue order; also return why the run lost the server, if it did.

    A server that stops accepting connections mid-run leaves the rest unjudged: those rules are
    'skipped' with that reason (the verdict is then INCOMPLETE unless something already failed).
    """
    evidence: list[Evidence] = []
    gone: str | None = None
    for rule in selected:
        if rule.id not in CHECKS:
            continue
        if gone is None:
            try:
                item = _scrubbed(_judge_one(ctx, rule, CHECKS.get(rule.id)), ctx.client)
            except ServerUnreachable as ex:
                gone = f"The server stopped accepting connections during the run: {ex}"
        if gone is not None:
            item = Evidence(rule_id=rule.id, outcome="skipped", source=SCRIPTED, message=gone)
        evidence.append(item)
        out(_line(rule.id, item.outcome, item.message if item.outcome != "passed" else ""))
    return evidence, gone


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
    logged, failed = len(ctx.client.log), len(ctx.client.failures)
    try:
        note = registered.function(ctx)
    except RuleViolation as violation:
        if violation.rule_id != rule.id:
            return _internal(rule, registered, f"it raised a violation of {violation.rule_id}")
        return Evidence.from_violation(violation, level=rule.level, source=SCRIPTED)
    except NotApplicable as ex:
        return Evidence(rule_id=rule.id, outcome="skipped", source=SCRIPTED, message=ex.reason)
    except ServerUnreachable:
        raise  # nothing further can be judged: the run ends with exit 2
    except TransportError as ex:
        # The request reached the server and no usable answer came back: that is the server's doing.
        exchanges = tuple(ctx.client.failures[failed:]) or tuple(r.exchange for r in ctx.client.log[logged:])
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
    exchanges = tuple(reply.exchange for reply in ctx.client.log[logged:])
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


def side_evidence(ctx: CheckContext, selected: Catalogue, out: Out) -> list[Evidence]:
    """What every scripted answer says about the rules judged from every answer, when they are selected:
    SERVER-NO-5XX (all of them), RESPONSE-SCHEMA and RESPONSE-CONTENT-TYPE-JSON (success answers to
    requests Enginy would send)."""
    found: list[Evidence] = []
    log = [reply for reply in ctx.client.log if reply.sent.operation is not None]
    answered = [reply for reply in log if reply.valid and reply.ok]
    judged: tuple[tuple[str, list[Reply], Callable[[Reply], str | None], str, str], ...] = (
        ("SERVER-NO-5XX", log, _server_error, "scripted requests", "no 5xx (501 on /users excepted)"),
        (
            "RESPONSE-SCHEMA",
            answered,
            lambda reply: _schema_problem(ctx.schemas, reply),
            "success answers to scripted requests",
            "a documented status and a body matching the spec's response schema",
        ),
        (
            "RESPONSE-CONTENT-TYPE-JSON",
            answered,
            content_type_problem,
            "success answers to scripted requests",
            "Content-Type: application/json on a JSON answer",
        ),
    )
    for rule_id, replies, problem, what, expected in judged:
        if rule_id in selected and replies:
            item = _every_answer(selected.get(rule_id), replies, problem, what, expected)
            if rule_id == "RESPONSE-SCHEMA" and item.outcome != "passed":
                item = replace(item, fields=_schema_fields(ctx.schemas, replies))
            found.append(item)
    for item in found:
        out(
            _line(
                item.rule_id,
                item.outcome,
                item.message if item.outcome != "passed" else "",
                suffix=" (scripted answers)",
            )
        )
    return found


def _server_error(reply: Reply) -> str | None:
    # 501 is how a server says it does not implement the optional /users.
    if reply.status >= 500 and not (reply.sent.operation == "listUsers" and reply.status == 501):
        return f"{reply.status}"
    return None


def _schema_problem(schemas: SpecSchemas, reply: Reply) -> str | None:
    assert reply.sent.operation is not None
    problems = schemas.response_errors(reply.sent.operation, reply.status, reply.json, is_json=reply.is_json)
    return "; ".join(problems) if problems else None


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
    rule: Rule, replies: list[Reply], problem: Callable[[Reply], str | None], what: str, expected: str
) -> Evidence:
    bad = [(reply, why) for reply in replies if (why := problem(reply)) is not None]
    if not bad:
        return Evidence(
            rule_id=rule.id,
            outcome="passed",
            source=SIDE,
            message=f"{len(replies)} {what}, none breaking it.",
        )
    listed = "; ".join(f"{r.sent.method} {r.sent.path} → {r.status}: {why}" for r, why in bad[:_MAX_LISTED])
    return Evidence(
        rule_id=rule.id,
        outcome="failed" if rule.level == "MUST" else "warning",
        source=SIDE,
        message=f"{len(bad)} of {len(replies)} {what} break it.",
        expected=expected,
        actual=listed + (f" (and {len(bad) - _MAX_LISTED} more)" if len(bad) > _MAX_LISTED else ""),
        exchanges=tuple(r.exchange for r, _ in bad[:_MAX_LISTED]),
    )


def _run_engine(
    settings: RunSettings,
    selected: Catalogue,
    so_far: list[Evidence],
    out: Out,
    notes: list[str],
    *,
    enabled: bool,
    oversized: bool = False,
    gone: str | None = None,
    run_id: str = "",
    ledger: Ledger,
) -> list[Evidence]:
    """Evidence from Schemathesis' generated requests; its rules are 'skipped' when it cannot run."""
    reason = None
    judge: EngineFunction | None = None
    engine_rules: frozenset[str] = SCHEMATHESIS_ONLY
    if gone is not None:
        reason = "The Schemathesis pass was not run: the server had stopped accepting connections."
    elif not enabled:
        reason = "The Schemathesis pass was turned off for this run."
    elif oversized:
        reason = (
            f"The Schemathesis pass was not run: the server answered more than {MAX_BODY_BYTES // 1024} KiB "
            "to a scripted request, and the pass reads every answer whole."
        )
    else:
        try:
            module = importlib.import_module("conformance.engine")
            judge = module.judge_generated
            engine_rules = frozenset(getattr(module, "ENGINE_RULES", SCHEMATHESIS_ONLY))
        except (ImportError, AttributeError):
            reason = "The Schemathesis pass is not available (conformance.engine is missing)."
    if not any(rule.id in engine_rules for rule in selected):
        return []
    found: list[Evidence] = []
    if judge is not None:
        out(f"Schemathesis pass (profile {settings.profile}) …")
        try:
            found = list(judge(settings, selected, progress=out, run_id=run_id, ledger=ledger))
        except UsageError:
            raise
        except TransportError as ex:
            # The scripted checks did reach the server; their verdicts stand without this pass.
            reason = f"The Schemathesis pass could not talk to the server: {ex}"
        except ConformanceError as ex:  # e.g. EngineError: keep what it found before it stopped
            found = list(getattr(ex, "evidence", ()))
            reason = f"The Schemathesis pass stopped early: {ex}"
        except Exception as ex:  # the scripted verdicts still stand without it
            reason = f"The Schemathesis pass stopped with an internal error ({type(ex).__name__}: {ex})."
    if reason is not None:
        notes.append(reason)
        out(f"- {reason}")
    judged = {item.rule_id for item in so_far + found}
    for rule in selected:
        if rule.id in SCHEMATHESIS_ONLY and rule.id not in judged:
            message = reason or "Not judged by the Schemathesis pass."
            found.append(Evidence(rule_id=rule.id, outcome="skipped", source=ENGINE, message=message))
    return found


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
    """One line saying why a rule got its outcome."""
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
    lines = [f"{'Rule':<{width}}  Level   Outcome  Reason", f"{'-' * width}  ------  -------  ------"]
    for result in report.results:
        outcome = f"{MARKS[result.outcome]} {result.outcome}"
        lines.append(f"{result.rule.id:<{width}}  {result.rule.level:<6}  {outcome:<8} {reason_of(result)}")
    counts = ", ".join(f"{report.count(o)} {o}" for o in ("passed", "failed", "warning", "skipped"))
    lines += ["", f"{counts} in {report.duration_s:.1f} s. {verdict_line(report)}"]
    return lines


def verdict_line(report: RunReport) -> str:
    """The verdict in one sentence, naming what was not judged when the run is INCOMPLETE."""
    if report.verdict == "failed":
        return "FAILED: a MUST rule does not hold."
    if report.verdict == "passed":
        return "PASSED: every selected MUST rule was judged and holds."
    missing = report.not_judged
    listed = ", ".join(result.rule.id for result in missing[:_MAX_LISTED])
    more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
    return (
        f"INCOMPLETE: no MUST rule failed, but {len(missing)} could not be judged ({listed}{more}); "
        "the table says why."
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
        "seed": settings.seed,
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
