"""Bad input is refused with a 4xx, and error answers carry the JSON error body.

The malformed and incomplete requests start from the valid probe of each operation (see `_bodies`):
malformed JSON is that body cut short; an incomplete body is that body without one field the spec's
request schema marks required. ERROR-BODY-JSON is judged last: it provokes three errors of its own, then
judges every 4xx answer the run has received so far.
"""

from __future__ import annotations

import json
from typing import Final

from conformance.checks._bodies import Probe, missing_required_variants, probe, required_fields
from conformance.checks._context import CheckContext
from conformance.checks._registry import Planned, check, req
from conformance.checks._spec import SpecSchemas
from conformance.checks._support import violation
from conformance.checks.auth import CREATES
from conformance.checks.tasks import usable_tasks
from conformance.client import Reply, path_for
from conformance.results import NotApplicable
from enginy_spec import load_spec, operations

__all__: list[str] = []


def _body_operations() -> list[tuple[str, str, str]]:
    spec = load_spec()
    return [
        (operation_id, op.method, op.path)
        for operation_id, op in operations().items()
        if "requestBody" in spec["paths"][op.path][op.method.lower()]
    ]


_BODY_OPERATIONS: Final = _body_operations()


def _probes(ctx: CheckContext, n: str, *, task_id: str | None) -> list[Probe]:
    return [probe(ctx, operation, n=n, task_id=task_id) for operation, _, _ in _BODY_OPERATIONS]


def _listing(replies: list[tuple[str, Reply]]) -> str:
    return "; ".join(f"{r.sent.method} {r.sent.path} ({what}) → {r.describe()}" for what, r in replies)


@check(
    "INPUT-MALFORMED-JSON",
    uses=("tasks",),
    sends=tuple(req(f"{method} {path}") for _, method, path in _BODY_OPERATIONS),
)
def malformed_json_is_refused(ctx: CheckContext) -> None:
    try:
        # A real task for PATCH /tasks/{taskId}, so that a 404 for an unknown task cannot hide the answer
        # to the malformed body.
        task_id: str | None = usable_tasks(ctx)[0].id
    except NotApplicable:
        task_id = None
    wrong: list[tuple[str, Reply]] = []
    for request in _probes(ctx, "malformed", task_id=task_id):
        text = json.dumps(request.body, ensure_ascii=False)
        reply = ctx.client.raw(
            request.method, request.path, text[:-1].encode("utf-8"), operation=request.operation
        )
        if not 400 <= reply.status < 500:
            wrong.append(("JSON cut short", reply))
    if wrong:
        raise violation(
            "INPUT-MALFORMED-JSON",
            "Malformed JSON was not refused with a 4xx.",
            expected="400 (any 4xx is tolerated) on every body endpoint",
            actual=_listing(wrong),
            replies=[reply for _, reply in wrong],
        )


def _missing_plan() -> tuple[Planned, ...]:
    # One request per required field, as the spec's request schemas declare them (see _bodies).
    schemas = SpecSchemas()
    counts = [(method, path, len(required_fields(schemas, op))) for op, method, path in _BODY_OPERATIONS]
    return tuple(req(f"{method} {path}", n) for method, path, n in counts if n)


@check("INPUT-MISSING-REQUIRED", sends=_missing_plan())
def missing_required_field_is_refused(ctx: CheckContext) -> None:
    wrong: list[tuple[str, Reply]] = []
    for request in _probes(ctx, "missing", task_id=None):
        for what, body in missing_required_variants(ctx, request):
            reply = ctx.client.send(
                request.method, request.path, operation=request.operation, json=body, valid=False
            )
            if request.operation in CREATES:
                ctx.note_created_from(CREATES[request.operation], reply)
            if not 400 <= reply.status < 500:
                wrong.append((what, reply))
    if wrong:
        raise violation(
            "INPUT-MISSING-REQUIRED",
            "A body missing a required field was not refused with a 4xx.",
            expected="400 (any 4xx is tolerated)",
            actual=_listing(wrong),
            replies=[reply for _, reply in wrong],
        )


_MAX_LISTED: Final = 5


@check(
    "ERROR-BODY-JSON",
    sends=(req("GET /health"), req("GET /tasks/{taskId}"), req("POST /tasks")),
)
def error_answers_are_json(ctx: CheckContext) -> None:
    # Three errors of its own, so the rule can be judged even when run alone: no key, unknown id, bad JSON.
    ctx.client.without_key("GET", "/health", operation="checkHealth")
    ctx.client.get(path_for("/tasks/{}", ctx.unknown_id("task")), operation="getTask", valid=False)
    ctx.client.raw("POST", "/tasks", b'{"subject": ', operation="createTask")
    judged = 0
    bad: list[tuple[Reply, str]] = []
    for reply in list(ctx.client.log):
        # 5xx answers are SERVER-NO-5XX's to report; only client errors are judged here.
        if not 400 <= reply.status < 500 or reply.sent.operation is None:
            continue
        if not ctx.schemas.documents_json_error(reply.sent.operation, reply.status):
            continue  # documented as "any body", e.g. 404 on /users
        judged += 1
        problems = (
            ctx.schemas.component_errors("Error", reply.json) if reply.is_json else ["the body is not JSON"]
        )
        if problems:
            bad.append((reply, "; ".join(problems)))
    if not judged:
        raise NotApplicable("No request was answered with a 4xx, so no error body could be judged.")
    if bad:
        listed = "; ".join(
            f"{r.sent.method} {r.sent.path} → {r.status}: {why}" for r, why in bad[:_MAX_LISTED]
        )
        more = f" (and {len(bad) - _MAX_LISTED} more)" if len(bad) > _MAX_LISTED else ""
        raise violation(
            "ERROR-BODY-JSON",
            f"{len(bad)} of {judged} error answers do not carry the JSON error body.",
            expected='a JSON object like {"error": "Task not found", "message": "..."}',
            actual=listed + more,
            replies=[reply for reply, _ in bad[:_MAX_LISTED]],
        )
