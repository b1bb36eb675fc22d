"""Users: the optional owner list. A bare array of users, or a plain "not implemented"."""

from __future__ import annotations

from typing import Final

from conformance.checks._context import CheckContext
from conformance.checks._registry import check, req
from conformance.checks._support import violation

__all__: list[str] = []

# Statuses with which a server says it does not implement /users (Enginy then turns owners off).
NOT_IMPLEMENTED: Final = frozenset({404, 405, 501})


@check("USERS-OPTIONAL", sends=(req("GET /users"),))
def users_are_listed_or_opted_out(ctx: CheckContext) -> None:
    reply = ctx.client.get("/users", operation="listUsers")
    if reply.status in NOT_IMPLEMENTED:
        return
    if not reply.ok:
        raise violation(
            "USERS-OPTIONAL",
            "GET /users answered neither a list of users nor a plain 'not implemented'.",
            expected="2xx with a JSON array of users, or 404, 405 or 501",
            actual=reply.describe(),
            replies=[reply],
        )
    problems = (
        ["the body is not JSON"]
        if not reply.is_json
        else ctx.schemas.component_errors("UserList", reply.json)
    )
    if problems:
        raise violation(
            "USERS-OPTIONAL",
            "GET /users answered 2xx, but not a bare array of {id, name, email?}.",
            expected="a JSON array of users, as the spec's UserList",
            actual="; ".join(problems),
            replies=[reply],
        )
