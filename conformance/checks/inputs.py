"""Bad input is refused with a 4xx, and error answers carry a JSON message.

The malformed and incomplete requests start from the valid probe of each operation (see `_bodies`):
malformed JSON is that body cut short; an incomplete body is that body without one field the docs make
the request's own (INPUT-MISSING-REQUIRED names them in rules.yaml), or with a second item that lacks
its key (INPUT-ITEM-MISSING-REQUIRED: refused, or reported per item). ERROR-BODY-JSON is judged last: it
provokes three errors of its own, then judges every 4xx answer the run has received so far.
"""

from __future__ import annotations

import json
from typing import Any, Final

from conformance.checks._bodies import Probe, item_key_variants, probe, redirected_anyway, required_fields
from conformance.checks._context import CheckContext
from conformance.checks._registry import Planned, check, req
from conformance.checks._spec import SpecSchemas
from conformance.checks._support import is_id, results_of, shown, violation
from conformance.checks.tasks import usable_tasks
from conformance.client import Reply, path_for
from conformance.results import NotApplicable
from conformance.tagging import CREATES
from enginy_spec import load_catalogue, load_spec, operations

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
        # to the malformed body; task 5, which no other check reads back (see auth_probes).
        task_id: str | None = usable_tasks(ctx)[4].id
    except NotApplicable:
        task_id = None
    wrong: list[tuple[str, Reply]] = []
    for request in _probes(ctx, "malformed", task_id=task_id):
        text = json.dumps(request.body, ensure_ascii=False)
        reply = ctx.client.raw(
            request.method, request.path, text[:-1].encode("utf-8"), operation=request.operation
        )
        if ctx.violation_of("INPUT-MALFORMED-JSON", reply) and not redirected_anyway(ctx, reply):
            wrong.append(("JSON cut short", reply))
    if wrong:
        raise violation(
            "INPUT-MALFORMED-JSON",
            "Malformed JSON was not refused with a 4xx.",
            expected="400 (any 4xx is tolerated) on every body endpoint",
            actual=_listing(wrong),
            replies=[reply for _, reply in wrong],
        )


# The fields whose absence the docs make a refusal, by operation (rules.yaml, INPUT-MISSING-REQUIRED).
_MUST_FIELDS: Final = load_catalogue().get("INPUT-MISSING-REQUIRED").fields


def _missing_plan() -> tuple[Planned, ...]:
    ops = operations()
    return tuple(req(f"{ops[op].method} {ops[op].path}", len(names)) for op, names in _MUST_FIELDS)


@check("INPUT-MISSING-REQUIRED", sends=_missing_plan())
def missing_required_field_is_refused(ctx: CheckContext) -> None:
    wrong: list[tuple[str, Reply]] = []
    for operation, names in _MUST_FIELDS:
        request = probe(ctx, operation, n="missing", task_id=None)
        for name in names:
            body = {key: value for key, value in request.body.items() if key != name}
            reply = ctx.client.send(
                request.method, request.path, operation=request.operation, json=body, valid=False
            )
            if request.operation in CREATES:
                ctx.note_created_from(CREATES[request.operation], reply)
            if not 400 <= reply.status < 500 and not redirected_anyway(ctx, reply):
                wrong.append((f"without {name}", reply))
    if wrong:
        raise violation(
            "INPUT-MISSING-REQUIRED",
            "A body missing a field the docs require was not refused with a 4xx.",
            expected="400 (any 4xx is tolerated)",
            actual=_listing(wrong),
            replies=[reply for _, reply in wrong],
        )


def _item_plan() -> tuple[Planned, ...]:
    schemas = SpecSchemas()
    counts = [
        (method, path, sum(1 for container, _ in required_fields(schemas, op) if container is not None))
        for op, method, path in _BODY_OPERATIONS
    ]
    return tuple(req(f"{method} {path}", n) for method, path, n in counts if n)


def _answered_as_done(operation: str, reply: Reply, valid_item: dict[str, Any], body: Any) -> str | None:
    """How a 2xx answer treated the item that lacks its key as if it were whole, or None."""
    if operation == "createAssociations":
        # The whole pair names unknown records and the broken one lacks an id: nothing can be linked.
        created = reply.json.get("created") if isinstance(reply.json, dict) else None
        return f"created {shown(created)}" if isinstance(created, int) and created > 0 else None
    for item in results_of(reply) or []:
        if operation.startswith("update"):
            if item.get("crmId") in (None, "") and not (
                item.get("success") is False or ("success" not in item and "error" in item)
            ):
                return f"a result without a crmId, not marked failed: {shown(item)}"
        elif (
            item.get("externalId") != valid_item.get("externalId")
            and is_id(item.get("crmId"))
            and not (item.get("success") is False or "error" in item)
        ):
            return f"a result mapping it to a crmId: {shown(item)}"
    return None


@check("INPUT-ITEM-MISSING-REQUIRED", sends=_item_plan())
def item_missing_its_key_is_not_taken_as_whole(ctx: CheckContext) -> None:
    wrong: list[tuple[str, Reply]] = []
    for request in _probes(ctx, "item-missing", task_id=None):
        for what, body, valid_item in item_key_variants(ctx, request):
            reply = ctx.client.send(
                request.method, request.path, operation=request.operation, json=body, valid=False
            )
            if request.operation in CREATES:
                ctx.note_created_from(CREATES[request.operation], reply)
            if reply.ok:
                done = _answered_as_done(request.operation, reply, valid_item, body)
                if done is not None:
                    wrong.append((f"{what}: {done}", reply))
    if wrong:
        raise violation(
            "INPUT-ITEM-MISSING-REQUIRED",
            "An item missing its key field was answered as if it had been created, matched or updated.",
            expected="a 4xx, or the item reported per item (left out, success false, or in errors)",
            actual=_listing(wrong),
            replies=[reply for _, reply in wrong],
        )


_MAX_LISTED: Final = 5


@check(
    "ERROR-BODY-JSON",
    sends=(req("GET /health"), req("GET /tasks/{taskId}"), req("POST /tasks")),
    reads_log=True,
)
def error_answers_are_json(ctx: CheckContext) -> None:
    # Three errors of its own, so the rule can be judged even when run alone: no key, unknown id, bad JSON.
    ctx.client.without_key("GET", "/health", operation="checkHealth")
    ctx.client.get(path_for("/tasks/{}", ctx.unknown_id("task")), operation="getTask", valid=False)
    ctx.client.raw("POST", "/tasks", b'{"subject": ', operation="createTask")
    judged = 0
    bad: list[tuple[Reply, str]] = []
    for reply in list(ctx.client.log):
        if reply.sent.operation is None:
            continue
        # Only client errors the spec gives a JSON body are judged (5xx are SERVER-NO-5XX's to report).
        try:
            broken = ctx.violation_of("ERROR-BODY-JSON", reply)
        except NotApplicable:
            continue
        judged += 1
        if broken is not None:
            bad.append((reply, broken.actual))
    if not judged:
        raise NotApplicable("No request was answered with a 4xx, so no error body could be judged.")
    if bad:
        listed = "; ".join(
            f"{r.sent.method} {r.sent.path} → {r.status}: {why}" for r, why in bad[:_MAX_LISTED]
        )
        more = f" (and {len(bad) - _MAX_LISTED} more)" if len(bad) > _MAX_LISTED else ""
        raise violation(
            "ERROR-BODY-JSON",
            f"{len(bad)} of {judged} error answers do not carry a message in a JSON object.",
            expected='a JSON object with a message, e.g. {"error": "Task not found", "message": "..."}',
            actual=listed + more,
            replies=[reply for reply, _ in bad[:_MAX_LISTED]],
        )
