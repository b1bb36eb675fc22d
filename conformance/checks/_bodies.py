"""One valid, tagged request per operation, for the checks that vary *one* thing about a request.

The auth checks send these without the key (or with a wrong one), the input checks break them (malformed
JSON, a required field removed). Starting from a valid request matters: a server that validates the body
before the key must still refuse for the reason being tested. They are chosen to write nothing when the
server accepts them wrongly wherever the API allows it (unknown crmIds, unknown ids, read-only batches);
creates cannot avoid it, so their records are tagged like everything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from conformance.checks._context import CheckContext
from conformance.checks._spec import SpecSchemas
from conformance.client import Reply, path_for
from conformance.tagging import MARKER

__all__ = ["Probe", "item_key_variants", "probe", "redirected_anyway", "required_fields"]


@dataclass(frozen=True, slots=True)
class Probe:
    operation: str
    method: str
    path: str  # concrete
    template: str  # as in the spec
    body: Any  # None when the operation takes no body


def _body(ctx: CheckContext, operation: str, n: str, task_id: str) -> Any:
    unknown = ctx.unknown_id("probe")
    bodies: dict[str, Any] = {
        "createContacts": {
            "contacts": [
                {
                    "externalId": ctx.label("contact-probe", n),
                    "email": ctx.email(f"probe-{n}"),
                    "firstName": "Ada",
                    "lastName": "Probe",
                }
            ]
        },
        "updateContacts": {"contacts": [{"crmId": unknown, "title": "Probe"}]},
        "syncContacts": {
            "contacts": [{"externalId": ctx.label("contact-probe", n), "email": ctx.email(f"probe-{n}")}]
        },
        "createCompanies": {
            "companies": [{"externalId": ctx.label("company-probe", n), "name": ctx.subject(f"Probe {n}")}]
        },
        "updateCompanies": {"companies": [{"crmId": unknown, "industry": "Probe"}]},
        "syncCompanies": {
            "companies": [{"externalId": ctx.label("company-probe", n), "domain": f"{unknown}.example"}]
        },
        "createAssociations": {"associations": [{"contactCRMId": unknown, "companyCRMId": unknown}]},
        "createActivity": {
            "type": ctx.schemas.enum("ActivityType")[0],
            "direction": ctx.schemas.enum("Direction")[-1],
            "subject": ctx.subject(f"Probe activity {n}"),
            "body": "Probe from the Enginy conformance suite.",
            "metadata": dict(MARKER),
        },
        "createTask": {"subject": ctx.subject(f"Probe task {n}"), "description": "Probe; safe to delete."},
        # An empty update changes nothing (openapi.yaml, updateTask).
        "updateTask": {},
        "getTasksBatch": {"ids": [task_id]},
        "completeTasksBatch": {"ids": [unknown], "completed": True},
    }
    return bodies.get(operation)


def probe(ctx: CheckContext, operation: str, *, n: str, task_id: str | None = None) -> Probe:
    """The valid request for `operation`; `{taskId}` is `task_id` (a real one, ideally) or an unknown id."""
    op = ctx.schemas.operations[operation]
    task = task_id if task_id is not None else ctx.unknown_id("task")
    path = path_for(op.path.replace("{taskId}", "{}"), task) if "{taskId}" in op.path else op.path
    body = _body(ctx, operation, n, task)
    if body is None and ctx.schemas.request_schema(operation) is not None:
        raise LookupError(f"No probe body for {operation}; add one to conformance/checks/_bodies.py.")
    return Probe(operation=operation, method=op.method, path=path, template=op.path, body=body)


def required_fields(schemas: SpecSchemas, operation: str) -> list[tuple[str | None, str]]:
    """Where the request schema marks a field required: `(None, "contacts")` for a top-level field,
    `("contacts", "externalId")` for a field of the items of the list `contacts`."""
    schema = schemas.request_schema(operation)
    if schema is None:
        return []
    found: list[tuple[str | None, str]] = [(None, name) for name in schema.get("required", [])]
    for name, prop in (schema.get("properties") or {}).items():
        prop = schemas.resolve(prop)
        if prop.get("type") == "array":
            item_schema = schemas.resolve(prop.get("items") or {})
            found.extend((name, field) for field in item_schema.get("required", []))
    return found


def item_key_variants(ctx: CheckContext, request: Probe) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(what, body, the whole item) for every key field the spec requires of a list's items.

    The body holds two items: the probe's own, whole, and a second one of its own (other labels, so no
    server can take it for the first) without that field: "contacts[1] without externalId".
    """
    body = request.body
    if not isinstance(body, dict):
        return
    other = probe(ctx, request.operation, n=f"{request.path.strip('/')}-second").body
    for container, field in required_fields(ctx.schemas, request.operation):
        if container is None:
            continue
        items, others = body.get(container), other.get(container)
        if not (isinstance(items, list) and items and isinstance(others, list) and others):
            continue
        whole = items[0]
        broken = {key: value for key, value in others[0].items() if key != field}
        yield f"{container}[1] without {field}", {**body, container: [whole, broken]}, whole


def redirected_anyway(ctx: CheckContext, reply: Reply) -> bool:
    """Whether a 3xx answer is the route's doing, not the request's: the operation's valid probe, sent
    with the key, is redirected too (a route that lives at another path, e.g. with a trailing slash).

    Then what this request was meant to show (a refused key, a refused body) cannot be seen at this path:
    the operation's own rules report the redirect, once. The control request is sent once per operation.
    """
    operation = reply.sent.operation
    if not reply.redirected or operation is None:
        return False
    memo: dict[str, bool] = ctx.memo.setdefault("redirected_anyway", {})
    if operation not in memo:
        control = probe(ctx, operation, n="redirect-control")
        answer = ctx.client.send(control.method, control.path, operation=operation, json=control.body)
        memo[operation] = answer.redirected
    return memo[operation]
