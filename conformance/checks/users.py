"""Users: the optional owner list. A bare array of users, or a plain "not implemented" (404, 405 or
501), which is what one answer shows: conformance.judges decides it."""

from __future__ import annotations

from conformance.checks._context import CheckContext
from conformance.checks._registry import check, req

__all__: list[str] = []


@check("USERS-OPTIONAL", sends=(req("GET /users"),))
def users_are_listed_or_opted_out(ctx: CheckContext) -> None:
    ctx.judge("USERS-OPTIONAL", ctx.client.get("/users", operation="listUsers"))
