"""Health and the API key: every operation refuses a missing, wrong or misplaced key.

401 is what the docs ask for; 403 is tolerated by the MUST rules and reported once, as a warning, under
AUTH-401-NOT-403. /users may answer 404, 405 or 501 instead (a server that does not implement it has
nothing to protect).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from conformance.checks._bodies import probe, redirected_anyway
from conformance.checks._context import CheckContext
from conformance.checks._registry import check, req, shared
from conformance.checks._support import violation
from conformance.checks.tasks import usable_tasks
from conformance.client import KeyUnder, Reply
from conformance.results import NotApplicable
from conformance.tagging import CREATES
from enginy_spec import operations

__all__: list[str] = []

REFUSED: Final = frozenset({401, 403})
_TASK_OPERATIONS: Final = frozenset({"getTask", "updateTask"})


@dataclass(frozen=True, slots=True)
class AuthProbes:
    without_key: tuple[Reply, ...]
    wrong_key: tuple[Reply, ...]
    skipped: tuple[str, ...]  # operations not probed (no real task id to aim at)


def _breaks(ctx: CheckContext, rule_id: str, reply: Reply) -> bool:
    try:
        return ctx.violation_of(rule_id, reply) is not None
    except NotApplicable:
        return False


def _listing(replies: list[Reply]) -> str:
    return "; ".join(f"{r.sent.method} {r.sent.path} → {r.describe()}" for r in replies)


@shared(
    "auth_probes",
    needs=("tasks",),
    sends=tuple(req(f"{op.method} {op.path}", 2) for op in operations().values()),
)
def auth_probes(ctx: CheckContext) -> AuthProbes:
    # Aim the task operations at a real task, so that only the key can be the reason for a refusal
    # (a server may look the task up before checking the key). Without one, they are left out. Task 5,
    # which only TASK-BATCH-COMPLETE-OMITS-UNKNOWN completes (and judges by its own answer): a server
    # letting in a completion without the key changes nothing another check reads.
    try:
        task_id: str | None = usable_tasks(ctx)[4].id
    except NotApplicable:
        task_id = None
    skipped: list[str] = []
    calls: list[Callable[[], Reply]] = []
    modes: list[str] = []
    for operation in ctx.schemas.operations:
        if operation in _TASK_OPERATIONS and task_id is None:
            skipped.append(operation)
            continue
        for mode in ("none", "wrong"):
            calls.append(functools.partial(_probe_once, ctx, operation, mode, task_id))
            modes.append(mode)
    # No probe reads another's answer: against a distant server they go out side by side.
    replies = ctx.client.each(calls)
    without = [reply for reply, mode in zip(replies, modes, strict=True) if mode == "none"]
    wrong = [reply for reply, mode in zip(replies, modes, strict=True) if mode == "wrong"]
    return AuthProbes(without_key=tuple(without), wrong_key=tuple(wrong), skipped=tuple(skipped))


def _probe_once(ctx: CheckContext, operation: str, mode: str, task_id: str | None) -> Reply:
    request = probe(ctx, operation, n=f"auth-{mode}", task_id=task_id)
    send = ctx.client.without_key if mode == "none" else ctx.client.with_wrong_key
    reply = send(request.method, request.path, operation=operation, json=request.body)
    if operation in CREATES:
        ctx.note_created_from(CREATES[operation], reply)
    return reply


def _judge_refusals(
    ctx: CheckContext, rule_id: str, replies: tuple[Reply, ...], skipped: tuple[str, ...], what: str
) -> None:
    # A redirect that the keyed request gets too is the route's, reported by the operation's own rules.
    accepted = [
        reply for reply in replies if _breaks(ctx, rule_id, reply) and not redirected_anyway(ctx, reply)
    ]
    if accepted:
        note = f" ({', '.join(skipped)} not probed: no task id)" if skipped else ""
        raise violation(
            rule_id,
            f"Some operations did not refuse a request {what}.{note}",
            expected="401 on every operation (403 tolerated; /users may answer 404, 405 or 501)",
            actual=_listing(accepted),
            replies=accepted,
        )


@check("HEALTH-OK", sends=(req("GET /health"),))
def health_is_2xx(ctx: CheckContext) -> None:
    ctx.judge("HEALTH-OK", ctx.client.get("/health", operation="checkHealth"))


@check("AUTH-MISSING-KEY", uses=("auth_probes",))
def missing_key_is_refused(ctx: CheckContext) -> None:
    probes = auth_probes(ctx)
    _judge_refusals(ctx, "AUTH-MISSING-KEY", probes.without_key, probes.skipped, "without the key")


@check("AUTH-WRONG-KEY", uses=("auth_probes",))
def wrong_key_is_refused(ctx: CheckContext) -> None:
    probes = auth_probes(ctx)
    _judge_refusals(ctx, "AUTH-WRONG-KEY", probes.wrong_key, probes.skipped, "with a wrong key")


@check("AUTH-401-NOT-403", uses=("auth_probes",))
def refusal_is_401(ctx: CheckContext) -> None:
    probes = auth_probes(ctx)
    refusals = [r for r in probes.without_key + probes.wrong_key if r.status in REFUSED]
    if not refusals:
        raise NotApplicable("No request was refused for its key (see AUTH-MISSING-KEY, AUTH-WRONG-KEY).")
    forbidden = [r for r in refusals if _breaks(ctx, "AUTH-401-NOT-403", r)]
    if forbidden:
        raise violation(
            "AUTH-401-NOT-403",
            "A missing or wrong key was answered 403; the docs ask for 401.",
            expected="401",
            actual=_listing(forbidden),
            replies=forbidden,
        )


def _other_headers(configured: str) -> list[KeyUnder]:
    candidates = [
        KeyUnder("Authorization", "Bearer"),
        KeyUnder("Authorization"),
        KeyUnder("X-Auth-Token"),
        KeyUnder("X-API-Key"),
    ]
    return [c for c in candidates if c.header.lower() != configured.lower()][:3]


def _case_variants(configured: str) -> list[str]:
    variants = [configured.lower(), configured.upper(), configured.title()]
    return [v for v in dict.fromkeys(variants) if v != configured][:2]


@check("AUTH-OTHER-HEADER", uses=("auth_probes",), sends=(req("GET /health", 3), req("POST /tasks", 3)))
def key_under_other_header_is_refused(ctx: CheckContext) -> None:
    # An operation that lets in a request without any key lets in one with the key elsewhere too: that
    # is AUTH-MISSING-KEY's finding, not a second one here.
    open_anyway = {
        r.sent.operation for r in auth_probes(ctx).without_key if _breaks(ctx, "AUTH-MISSING-KEY", r)
    }
    accepted: list[Reply] = []
    for index, under in enumerate(_other_headers(ctx.client.api_key_header), start=1):
        for operation in ("checkHealth", "createTask"):
            request = probe(ctx, operation, n=f"other-header-{index}")
            reply = ctx.client.with_key_under(
                under.header,
                request.method,
                request.path,
                scheme=under.scheme,
                operation=operation,
                json=request.body,
            )
            if _breaks(ctx, "AUTH-OTHER-HEADER", reply):
                if operation in CREATES:
                    ctx.note_created_from(CREATES[operation], reply)
                if operation not in open_anyway:
                    accepted.append(reply)
    if accepted:
        raise violation(
            "AUTH-OTHER-HEADER",
            f"The key sent under another header than {ctx.client.api_key_header} was accepted.",
            expected=f"401 unless the key is under {ctx.client.api_key_header} (403 tolerated)",
            actual=_listing(accepted),
            replies=accepted,
        )


@check("AUTH-HEADER-CASE-INSENSITIVE", sends=(req("GET /health", 2), req("POST /tasks", 2)))
def key_header_name_is_case_insensitive(ctx: CheckContext) -> None:
    refused: list[Reply] = []
    for index, header in enumerate(_case_variants(ctx.client.api_key_header), start=1):
        for operation in ("checkHealth", "createTask"):
            request = probe(ctx, operation, n=f"header-case-{index}")
            reply = ctx.client.with_key_under(
                header, request.method, request.path, operation=operation, json=request.body, valid=True
            )
            if operation in CREATES:
                ctx.note_created_from(CREATES[operation], reply)
            # Only a refusal is about the key; any other answer means the server got past the key check
            # (what it answers then is judged by the operation's own rules).
            if reply.status in REFUSED:
                refused.append(reply)
    if refused:
        raise violation(
            "AUTH-HEADER-CASE-INSENSITIVE",
            "The key was refused when its header name was written in another case; HTTP header names "
            "are case-insensitive.",
            expected="the same answer as with the header spelled as configured (not 401/403)",
            actual=_listing(refused),
            replies=refused,
        )
