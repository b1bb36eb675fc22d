"""Associations: link contacts to companies, as an upsert, with partial success for unknown ids.

The pairs use the crmIds the shared contacts and companies got: contacts 1 and 2 go to company 1 (two
contacts, one company, as the docs' example); contact 1 to company 1 is sent again, and contact 3 to
company 3 twice in one request (an upsert creates each link once); contact 3 goes to company 2 next to
an unknown contact.
"""

from __future__ import annotations

from typing import Any

from conformance.checks._context import CheckContext
from conformance.checks._registry import check, req, shared
from conformance.checks._support import shown, violation
from conformance.checks.records import COMPANIES, CONTACTS, Mapped, usable_records
from conformance.client import Reply
from conformance.results import NotApplicable

__all__: list[str] = []


def _ids(mapped: Mapped) -> list[str]:
    return [mapped.crm_ids[record["externalId"]] for record in mapped.sent]


def _pair(contact: str, company: str) -> dict[str, str]:
    return {"contactCRMId": contact, "companyCRMId": company}


def _send(ctx: CheckContext, pairs: list[dict[str, str]]) -> Reply:
    reply = ctx.client.post("/associations", {"associations": pairs}, operation="createAssociations")
    if reply.ok:
        for pair in pairs:
            ctx.note_created(
                "association", f"{pair['contactCRMId']} -> {pair['companyCRMId']}", "POST /associations"
            )
    return reply


def _succeeded(reply: Reply) -> bool:
    return reply.status == 200 and isinstance(reply.json, dict) and reply.json.get("success") is True


@shared("associations", needs=("contacts", "companies"), sends=(req("POST /associations"),))
def linked(ctx: CheckContext) -> tuple[list[dict[str, str]], Reply]:
    contacts, companies = _ids(usable_records(ctx, CONTACTS)), _ids(usable_records(ctx, COMPANIES))
    pairs = [_pair(contacts[0], companies[0]), _pair(contacts[1], companies[0])]
    return pairs, _send(ctx, pairs)


@shared("partial_associations", needs=("associations",), sends=(req("POST /associations"),))
def partially_linked(ctx: CheckContext) -> tuple[dict[str, str], Reply]:
    _, first = linked(ctx)
    if not _succeeded(first):
        raise NotApplicable("POST /associations fails even with known ids only (see ASSOC-CREATE).")
    contacts, companies = _ids(usable_records(ctx, CONTACTS)), _ids(usable_records(ctx, COMPANIES))
    bad = _pair(ctx.unknown_id("contact"), companies[1])
    return bad, _send(ctx, [_pair(contacts[2], companies[1]), bad])


@check("ASSOC-CREATE", uses=("associations",))
def known_pairs_are_linked(ctx: CheckContext) -> None:
    _, reply = linked(ctx)
    if not _succeeded(reply):
        raise violation(
            "ASSOC-CREATE",
            "POST /associations with two contacts and one company, all known, was not answered as a success.",
            expected='200 {"success": true, ...}',
            actual=reply.describe(),
            replies=[reply],
        )


@check("ASSOC-UPSERT", uses=("associations",), sends=(req("POST /associations", 2),))
def existing_pair_is_upserted(ctx: CheckContext) -> None:
    pairs, first = linked(ctx)
    if not _succeeded(first):
        raise NotApplicable("POST /associations fails even for new pairs (see ASSOC-CREATE).")
    contacts, companies = _ids(usable_records(ctx, CONTACTS)), _ids(usable_records(ctx, COMPANIES))
    # (pairs sent, how many of them are new links)
    for sent, new, what in (
        (pairs[:1], 0, "a pair that is already linked, sent again"),
        ([_pair(contacts[2], companies[2])] * 2, 1, "a new pair sent twice in one request"),
    ):
        reply = _send(ctx, sent)
        body: Any = reply.json
        created = body.get("created") if isinstance(body, dict) else None
        if not _succeeded(reply) or (isinstance(body, dict) and "created" in body and created != new):
            raise violation(
                "ASSOC-UPSERT",
                f"POST /associations with {what} was not answered as a success that links each pair once.",
                expected=f'200 {{"success": true}} with "created": {new} when created is reported',
                actual=reply.describe(),
                replies=[first, reply] if new == 0 else [reply],
            )


@check("ASSOC-PARTIAL-SUCCESS", uses=("partial_associations",))
def unknown_pair_does_not_fail_request(ctx: CheckContext) -> None:
    _, reply = partially_linked(ctx)
    if not _succeeded(reply):
        raise violation(
            "ASSOC-PARTIAL-SUCCESS",
            "POST /associations with one valid pair and one naming an unknown contact failed as a whole.",
            expected='200 {"success": true, "errors": [...]}',
            actual=reply.describe(),
            replies=[reply],
        )


@check("ASSOC-ERRORS-NAME-PAIR", uses=("partial_associations",))
def unknown_pair_is_listed_in_errors(ctx: CheckContext) -> None:
    bad, reply = partially_linked(ctx)
    if not reply.ok or not isinstance(reply.json, dict):
        raise NotApplicable(
            "POST /associations with an unknown contact did not succeed (see ASSOC-PARTIAL-SUCCESS)."
        )
    errors = reply.json.get("errors")
    named = isinstance(errors, list) and any(
        isinstance(item, dict)
        and item.get("contactCRMId") == bad["contactCRMId"]
        and item.get("companyCRMId") == bad["companyCRMId"]
        for item in errors
    )
    if not named:
        raise violation(
            "ASSOC-ERRORS-NAME-PAIR",
            "The pair naming an unknown contact is not listed in errors[].",
            expected=f"errors[] holding {shown(bad)} with a reason",
            actual=f"errors {shown(errors)}" if "errors" in reply.json else "no errors field",
            replies=[reply],
        )
