"""Contacts and companies: export (create), sync (match), and update.

Both families share one pattern, so the judging lives in helpers parameterized by `Family`; each rule
still has its own check function. Three records of each kind are created once and shared: record 1 is
matched by email (contacts) or domain (companies), record 2 by LinkedIn URL, record 3 is updated.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from conformance.checks._context import CheckContext
from conformance.checks._registry import check, req, shared
from conformance.checks._support import is_id, results_of, shown, violation
from conformance.client import Reply
from conformance.results import NotApplicable

__all__ = ["COMPANIES", "CONTACTS", "Family", "Mapped", "usable_records"]

RECORD_COUNT: Final = 3


@dataclass(frozen=True, slots=True)
class Family:
    name: str  # "contacts" | "companies": the path and the list key
    kind: str  # "contact" | "company": for CreatedRecord and labels
    create: str
    update: str
    sync: str
    prefix: str  # rule id prefix, "CONTACT" | "COMPANY"

    @property
    def path(self) -> str:
        return f"/{self.name}"


CONTACTS: Final = Family("contacts", "contact", "createContacts", "updateContacts", "syncContacts", "CONTACT")
COMPANIES: Final = Family(
    "companies", "company", "createCompanies", "updateCompanies", "syncCompanies", "COMPANY"
)


@dataclass(frozen=True, slots=True)
class Mapped:
    """Records the server created: what was sent, and the crmId answered for each externalId."""

    sent: tuple[dict[str, Any], ...]
    crm_ids: dict[str, str]
    reply: Reply


def _contact(ctx: CheckContext, n: int | str) -> dict[str, Any]:
    return {
        "externalId": ctx.label("contact", n),
        "email": ctx.email(n),
        "firstName": "Ada",
        "lastName": f"Conformance {n}",
        "company": ctx.subject("Test Company"),
        "title": "Head of Testing",
        "phone": "+34600000000",
        "linkedinUrl": f"https://linkedin.com/in/{ctx.label('contact', n)}",
    }


def _company(ctx: CheckContext, n: int | str) -> dict[str, Any]:
    return {
        "externalId": ctx.label("company", n),
        "name": ctx.subject(f"Company {n}"),
        "domain": f"{ctx.label('company', n)}.example",
        "industry": "Software",
        "numberOfEmployees": 42,
        "linkedinUrl": f"https://linkedin.com/company/{ctx.label('company', n)}",
    }


def _record(ctx: CheckContext, family: Family, n: int | str) -> dict[str, Any]:
    return _contact(ctx, n) if family is CONTACTS else _company(ctx, n)


def _create(ctx: CheckContext, family: Family, records: list[dict[str, Any]]) -> Reply:
    reply = ctx.client.post(family.path, {family.name: records}, operation=family.create)
    ctx.note_created_from(family.kind, reply)
    return reply


def mapping_problem(reply: Reply, sent: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(expected, actual) when the answer is not one {externalId, crmId} per record sent, else None."""
    wanted = Counter(record["externalId"] for record in sent)
    expected = f"200 or 201 with one {{externalId, crmId}} for each of the {len(sent)} records sent"
    if reply.status not in (200, 201):
        return expected, reply.describe()
    results = results_of(reply)
    if results is None:
        return expected, f'no "results" array of objects: {reply.describe()}'
    answered = Counter(item.get("externalId") for item in results)
    if answered != wanted:
        missing = sorted(str(e) for e in (wanted - answered))
        extra = sorted(str(e) for e in (answered - wanted))
        parts = []
        if missing:
            parts.append(f"externalIds missing or changed: {shown(missing[:5])}")
        if extra:
            parts.append(f"externalIds not sent (or repeated): {shown(extra[:5])}")
        return expected, "; ".join(parts)
    bad = [item for item in results if not is_id(item.get("crmId"))]
    if bad:
        return expected, f"crmId not a non-empty string: {shown(bad[0])}"
    return None


def sync_problem(where: str, reply: Reply, sent_ids: set[str]) -> tuple[str, str, str] | None:
    """(message, expected, actual) when a sync answer is not 200 with results drawn from the records
    sent, each with a crmId; else None. `where` names the request, e.g. "POST /contacts/sync"."""
    results = results_of(reply)
    if reply.status != 200 or results is None:
        return (
            f"{where} did not answer 200 with a results array; unmatched records are simply left out, "
            "never an error.",
            '200 {"results": [...]}',
            reply.describe(),
        )
    for item in results:
        if item.get("externalId") not in sent_ids or not is_id(item.get("crmId")):
            return (
                f"A result of {where} lacks an externalId from the request or a crmId.",
                f"externalId one of {shown(sorted(sent_ids))}, crmId a non-empty string",
                shown(item),
            )
    return None


@shared("contacts", sends=(req("POST /contacts"),))
def created_contacts(ctx: CheckContext) -> tuple[list[dict[str, Any]], Reply]:
    sent = [_record(ctx, CONTACTS, n) for n in range(1, RECORD_COUNT + 1)]
    return sent, _create(ctx, CONTACTS, sent)


@shared("companies", sends=(req("POST /companies"),))
def created_companies(ctx: CheckContext) -> tuple[list[dict[str, Any]], Reply]:
    sent = [_record(ctx, COMPANIES, n) for n in range(1, RECORD_COUNT + 1)]
    return sent, _create(ctx, COMPANIES, sent)


def _created(ctx: CheckContext, family: Family) -> tuple[list[dict[str, Any]], Reply]:
    return created_contacts(ctx) if family is CONTACTS else created_companies(ctx)


def usable_records(ctx: CheckContext, family: Family) -> Mapped:
    """The shared records with their crmIds, or NotApplicable when create did not map them."""
    sent, reply = _created(ctx, family)
    if mapping_problem(reply, sent) is not None:
        raise NotApplicable(
            f"POST {family.path} did not map the records it was sent, so this rule cannot be judged "
            f"(see {family.prefix}-CREATE-MAPS-EXTERNAL-IDS)."
        )
    results = results_of(reply) or []
    crm_ids = {item["externalId"]: item["crmId"] for item in results}
    return Mapped(sent=tuple(sent), crm_ids=crm_ids, reply=reply)


# --- create ---------------------------------------------------------------------------------------


def _judge_maps(ctx: CheckContext, family: Family, rule_id: str) -> None:
    sent, reply = _created(ctx, family)
    problem = mapping_problem(reply, sent)
    if problem is not None:
        raise violation(
            rule_id,
            f"POST {family.path} did not map every externalId sent to a crmId.",
            expected=problem[0],
            actual=problem[1],
            replies=[reply],
        )


def _judge_unknown_fields(ctx: CheckContext, family: Family, rule_id: str, extra: dict[str, Any]) -> None:
    sent = [{**_record(ctx, family, f"extra-{n}"), **extra} for n in (1, 2)]
    reply = _create(ctx, family, sent)
    if not reply.ok:
        raise violation(
            rule_id,
            f"POST {family.path} refused records carrying fields the docs do not list; Enginy forwards "
            "every field it has, so unknown ones must be ignored or stored.",
            expected="2xx",
            actual=reply.describe(),
            replies=[reply],
        )
    # Whether the answer maps them is judged only when mapping works at all (else it is reported once,
    # under the MAPS rule).
    try:
        usable_records(ctx, family)
    except NotApplicable:
        return
    problem = mapping_problem(reply, sent)
    if problem is not None:
        raise violation(
            rule_id,
            f"POST {family.path} accepted records carrying unknown fields but did not map them.",
            expected=problem[0],
            actual=problem[1],
            replies=[reply],
        )


@check("CONTACT-CREATE-MAPS-EXTERNAL-IDS", uses=("contacts",))
def contact_export_maps_external_ids(ctx: CheckContext) -> None:
    _judge_maps(ctx, CONTACTS, "CONTACT-CREATE-MAPS-EXTERNAL-IDS")


@check("CONTACT-CREATE-BATCH-100", uses=("contacts",), sends=(req("POST /contacts"),))
def contact_export_takes_100(ctx: CheckContext) -> None:
    usable_records(ctx, CONTACTS)  # mapping must work on a small batch before size can be judged
    sent = [_record(ctx, CONTACTS, f"batch-{n}") for n in range(1, 101)]
    reply = _create(ctx, CONTACTS, sent)
    problem = mapping_problem(reply, sent)
    if problem is not None:
        raise violation(
            "CONTACT-CREATE-BATCH-100",
            "POST /contacts with 100 contacts (Enginy's batch size) did not map all of them.",
            expected=problem[0],
            actual=problem[1],
            replies=[reply],
        )


@check("CONTACT-CREATE-UNKNOWN-FIELDS", uses=("contacts",), sends=(req("POST /contacts"),))
def contact_export_tolerates_unknown_fields(ctx: CheckContext) -> None:
    _judge_unknown_fields(
        ctx,
        CONTACTS,
        "CONTACT-CREATE-UNKNOWN-FIELDS",
        {
            "location": "Madrid, Spain",
            "leadCountry": "ES",
            "industry": "Software",
            "companySize": "51-200",
            "emailVerificationStatus": "valid",
            "campaigns": ["Q1 outbound", "Webinar follow-up"],
            "lastContactedBy": "John Smith",
            "leadScore": 85,
            "isDecisionMaker": True,
            "previousCompany": None,
            "customFields": {"favouriteColour": "green", "nested": {"tags": ["a", "b"], "level": 2}},
        },
    )


@check("CONTACT-CREATE-EMPTY", sends=(req("POST /contacts"),))
def empty_contact_export_is_empty(ctx: CheckContext) -> None:
    reply = ctx.client.post("/contacts", {"contacts": []}, operation="createContacts")
    if not reply.ok or results_of(reply) != []:
        raise violation(
            "CONTACT-CREATE-EMPTY",
            'POST /contacts with {"contacts": []} did not answer an empty results array.',
            expected='2xx {"results": []}',
            actual=reply.describe(),
            replies=[reply],
        )


@check("COMPANY-CREATE-MAPS-EXTERNAL-IDS", uses=("companies",))
def company_export_maps_external_ids(ctx: CheckContext) -> None:
    _judge_maps(ctx, COMPANIES, "COMPANY-CREATE-MAPS-EXTERNAL-IDS")


@check("COMPANY-CREATE-UNKNOWN-FIELDS", uses=("companies",), sends=(req("POST /companies"),))
def company_export_tolerates_unknown_fields(ctx: CheckContext) -> None:
    _judge_unknown_fields(
        ctx,
        COMPANIES,
        "COMPANY-CREATE-UNKNOWN-FIELDS",
        {
            "description": "A company exported by the Enginy conformance suite.",
            "location": "Barcelona, Spain",
            "foundedYear": 1999,
            "revenue": 1250000.5,
            "companyType": "Private",
            "technologiesUsed": ["Python", "PostgreSQL"],
            "campaigns": ["Q1 outbound"],
            "leadCountries": ["ES", "FR"],
            "employeeCount": 42,
            "socialProfiles": {"twitter": None, "facebook": {"followers": 10}},
        },
    )


# --- sync -----------------------------------------------------------------------------------------


def _sync(ctx: CheckContext, family: Family, records: list[dict[str, Any]]) -> Reply:
    return ctx.client.post(f"{family.path}/sync", {family.name: records}, operation=family.sync)


def _judge_omits_unmatched(ctx: CheckContext, family: Family, rule_id: str) -> None:
    sent = [_record(ctx, family, "unmatched")]
    # A record the CRM knows, sent as exported, so the answer has something to hold; without one, the
    # unmatched record alone still shows whether it is omitted.
    with contextlib.suppress(NotApplicable):
        sent.insert(0, usable_records(ctx, family).sent[0])
    reply = _sync(ctx, family, sent)
    unmatched = sent[-1]["externalId"]
    # The never-seen record first: its presence is this rule's own finding, named as such.
    for item in results_of(reply) or []:
        if item.get("externalId") == unmatched:
            raise violation(
                rule_id,
                f"POST {family.path}/sync answered a record the CRM has never seen.",
                expected=f"no result for {shown(unmatched)}",
                actual=shown(item),
                replies=[reply],
            )
    problem = sync_problem(f"POST {family.path}/sync", reply, {record["externalId"] for record in sent})
    if problem is not None:
        message, expected, actual = problem
        raise violation(rule_id, message, expected=expected, actual=actual, replies=[reply])


def _judge_matched(
    ctx: CheckContext, family: Family, rule_id: str, probe: dict[str, Any], crm_id: str, how: str
) -> None:
    reply = _sync(ctx, family, [probe])
    results = results_of(reply) or []
    matches = [item for item in results if item.get("externalId") == probe["externalId"]]
    if reply.status != 200 or not matches or matches[0].get("crmId") != crm_id:
        raise violation(
            rule_id,
            f"POST {family.path}/sync did not match a record the CRM holds by its {how}.",
            expected=f"200 with {{externalId: {shown(probe['externalId'])}, crmId: {shown(crm_id)}}}",
            actual=reply.describe(),
            replies=[reply],
        )


@check("CONTACT-SYNC-OMITS-UNMATCHED", uses=("contacts",), sends=(req("POST /contacts/sync"),))
def contact_sync_omits_unmatched(ctx: CheckContext) -> None:
    _judge_omits_unmatched(ctx, CONTACTS, "CONTACT-SYNC-OMITS-UNMATCHED")


@check("CONTACT-SYNC-MATCHES-EMAIL", uses=("contacts",), sends=(req("POST /contacts/sync"),))
def contact_sync_matches_email_in_any_case(ctx: CheckContext) -> None:
    mapped = usable_records(ctx, CONTACTS)
    record = mapped.sent[0]
    # A fresh externalId, and nothing but the email: only an email match can find the contact.
    probe = {"externalId": ctx.label("contact-sync-email"), "email": record["email"].upper()}
    _judge_matched(
        ctx,
        CONTACTS,
        "CONTACT-SYNC-MATCHES-EMAIL",
        probe,
        mapped.crm_ids[record["externalId"]],
        "email written in another case",
    )


@check("CONTACT-SYNC-MATCHES-LINKEDIN", uses=("contacts",), sends=(req("POST /contacts/sync"),))
def contact_sync_matches_linkedin_with_slash(ctx: CheckContext) -> None:
    mapped = usable_records(ctx, CONTACTS)
    record = mapped.sent[1]
    probe = {"externalId": ctx.label("contact-sync-linkedin"), "linkedinUrl": record["linkedinUrl"] + "/"}
    _judge_matched(
        ctx,
        CONTACTS,
        "CONTACT-SYNC-MATCHES-LINKEDIN",
        probe,
        mapped.crm_ids[record["externalId"]],
        "LinkedIn URL with a trailing slash",
    )


@check("COMPANY-SYNC-OMITS-UNMATCHED", uses=("companies",), sends=(req("POST /companies/sync"),))
def company_sync_omits_unmatched(ctx: CheckContext) -> None:
    _judge_omits_unmatched(ctx, COMPANIES, "COMPANY-SYNC-OMITS-UNMATCHED")


@check("COMPANY-SYNC-MATCHES-DOMAIN", uses=("companies",), sends=(req("POST /companies/sync"),))
def company_sync_matches_normalised_domain(ctx: CheckContext) -> None:
    mapped = usable_records(ctx, COMPANIES)
    record = mapped.sent[0]
    # https://www.Acme.com/about must match a stored acme.com: scheme, www., case and path ignored.
    shouted = ".".join(part.capitalize() for part in record["domain"].split("."))
    probe = {"externalId": ctx.label("company-sync-domain"), "domain": f"https://www.{shouted}/about"}
    _judge_matched(
        ctx,
        COMPANIES,
        "COMPANY-SYNC-MATCHES-DOMAIN",
        probe,
        mapped.crm_ids[record["externalId"]],
        "domain written as a URL",
    )


# --- update ---------------------------------------------------------------------------------------


def _update(ctx: CheckContext, family: Family, items: list[dict[str, Any]]) -> Reply:
    return ctx.client.put(family.path, {family.name: items}, operation=family.update)


def _changes(family: Family, n: int) -> dict[str, Any]:
    if family is CONTACTS:
        return {"title": f"Updated by the conformance suite ({n})", "lastContactedBy": "Enginy conformance"}
    return {"industry": f"Updated by the conformance suite ({n})"}


def _update_problem(reply: Reply, crm_id: str) -> tuple[str, str] | None:
    """(expected, actual) unless the answer is 200 with a result for crm_id not marked failed."""
    expected = f"200 with a result for crmId {shown(crm_id)} (success true when reported)"
    results = results_of(reply)
    if reply.status != 200 or results is None:
        return expected, reply.describe()
    mine = [item for item in results if item.get("crmId") == crm_id]
    if not mine:
        return expected, f"no result for {shown(crm_id)}: {shown(results)}"
    # `success` may be absent; only an explicit false (or an error beside it) says the update failed.
    if mine[0].get("success") is False or ("success" not in mine[0] and "error" in mine[0]):
        return expected, shown(mine[0])
    return None


def _known_update(ctx: CheckContext, family: Family) -> tuple[str, Reply]:
    mapped = usable_records(ctx, family)
    crm_id = mapped.crm_ids[mapped.sent[2]["externalId"]]
    return crm_id, _update(ctx, family, [{"crmId": crm_id, **_changes(family, 1)}])


@shared("contact_update", needs=("contacts",), sends=(req("PUT /contacts"),))
def contact_update(ctx: CheckContext) -> tuple[str, Reply]:
    return _known_update(ctx, CONTACTS)


@shared("company_update", needs=("companies",), sends=(req("PUT /companies"),))
def company_update(ctx: CheckContext) -> tuple[str, Reply]:
    return _known_update(ctx, COMPANIES)


def _judge_update(family: Family, rule_id: str, crm_id: str, reply: Reply) -> None:
    problem = _update_problem(reply, crm_id)
    if problem is not None:
        raise violation(
            rule_id,
            f"PUT {family.path} with a crmId returned by create did not report that record updated.",
            expected=problem[0],
            actual=problem[1],
            replies=[reply],
        )


def _judge_partial(ctx: CheckContext, family: Family, rule_id: str, known: tuple[str, Reply]) -> None:
    crm_id, first = known
    if _update_problem(first, crm_id) is not None:
        raise NotApplicable(f"PUT {family.path} fails even for a known crmId (see {family.prefix}-UPDATE).")
    unknown = ctx.unknown_id(family.kind)
    reply = _update(
        ctx, family, [{"crmId": crm_id, **_changes(family, 2)}, {"crmId": unknown, **_changes(family, 2)}]
    )
    # The statement asks for the 200 and for the unknown item; how the known one fared is
    # <FAMILY>-UPDATE's question, judged on a request of its own (the precondition above).
    results = results_of(reply)
    if reply.status != 200 or results is None:
        raise violation(
            rule_id,
            f"PUT {family.path} with a known and an unknown crmId failed as a whole; an unknown crmId is "
            "reported per item, never as a failure of the request.",
            expected='200 {"results": [...]}, one result per item',
            actual=reply.describe(),
            replies=[reply],
        )
    for item in results:
        # An explicit success false is what the docs show; an item carrying only an error says the same.
        if item.get("crmId") == unknown and not (
            item.get("success") is False or ("success" not in item and "error" in item)
        ):
            raise violation(
                rule_id,
                f"PUT {family.path} reported an unknown crmId as updated.",
                expected=f"no result for {shown(unknown)}, or one with success false",
                actual=shown(item),
                replies=[reply],
            )


@check("CONTACT-UPDATE", uses=("contact_update",))
def contact_update_by_crm_id(ctx: CheckContext) -> None:
    crm_id, reply = contact_update(ctx)
    _judge_update(CONTACTS, "CONTACT-UPDATE", crm_id, reply)


@check("CONTACT-UPDATE-UNKNOWN-PARTIAL", uses=("contact_update",), sends=(req("PUT /contacts"),))
def contact_update_tolerates_unknown_crm_id(ctx: CheckContext) -> None:
    _judge_partial(ctx, CONTACTS, "CONTACT-UPDATE-UNKNOWN-PARTIAL", contact_update(ctx))


@check("COMPANY-UPDATE", uses=("company_update",))
def company_update_by_crm_id(ctx: CheckContext) -> None:
    crm_id, reply = company_update(ctx)
    _judge_update(COMPANIES, "COMPANY-UPDATE", crm_id, reply)


@check("COMPANY-UPDATE-UNKNOWN-PARTIAL", uses=("company_update",), sends=(req("PUT /companies"),))
def company_update_tolerates_unknown_crm_id(ctx: CheckContext) -> None:
    _judge_partial(ctx, COMPANIES, "COMPANY-UPDATE-UNKNOWN-PARTIAL", company_update(ctx))
