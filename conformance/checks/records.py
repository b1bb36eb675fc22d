"""Contacts and companies: export (create), sync (match), and update.

Both families share one pattern, so the judging lives in helpers parameterized by `Family`; each rule
still has its own check function. Four records of each kind are created once and shared: record 1 is
matched by email (contacts) or domain (companies), record 2 by its LinkedIn URL, record 3 (created with
a trailing slash on its LinkedIn URL) by the URL without it, and is updated; record 4 has no email,
domain or LinkedIn URL at all, so that a server matching an empty field against an empty field shows
it. Sixteen more of each are created at the same moment, each alone, for distinct CRM ids.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Final

from conformance import judges
from conformance.checks._context import CheckContext
from conformance.checks._registry import check, req, shared
from conformance.checks._support import lost_note, results_of, shown, violation
from conformance.client import Reply, Request
from conformance.results import NotApplicable

__all__ = ["COMPANIES", "CONTACTS", "Family", "Mapped", "usable_records"]

RECORD_COUNT: Final = 4  # record 4 is the bare one
CONCURRENT_RECORDS: Final = 16


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


# The fields by which a record can be matched; the bare record (and the bare probes) have none of them.
_MATCHABLE: Final = ("email", "linkedinUrl", "domain", "phone")


def _record(ctx: CheckContext, family: Family, n: int | str) -> dict[str, Any]:
    return _contact(ctx, n) if family is CONTACTS else _company(ctx, n)


def _bare(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name not in _MATCHABLE}


def _shared_records(ctx: CheckContext, family: Family) -> list[dict[str, Any]]:
    records = [_record(ctx, family, n) for n in range(1, RECORD_COUNT + 1)]
    records[2]["linkedinUrl"] += "/"  # stored with a trailing slash, matched without one
    records[3] = _bare(records[3])
    return records


# Every lead field Enginy has, filled, as a full-size export sends them: about 2.5 KB a contact.
def _full_lead(ctx: CheckContext, n: int | str) -> dict[str, Any]:
    return {
        **_contact(ctx, n),
        "location": "Madrid, Community of Madrid, Spain",
        "leadCountry": "ES",
        "industry": "Computer Software",
        "companySize": "51-200",
        "domain": f"{ctx.label('contact-domain', n)}.example",
        "description": (
            "Head of Testing at a fast-growing software company; previously QA lead at two scale-ups, "
            "speaker at testing conferences, interested in contract testing, CI pipelines and automation. "
        )
        * 4,
        "emailVerificationStatus": "valid",
        "campaigns": ["Q1 outbound - Spain", "Webinar follow-up", "Product launch 2030"],
        "lastContactedBy": "John Smith",
        "mobilePhone": "+34611111111",
        "seniority": "Head",
        "department": "Engineering",
        "skills": ["Test automation", "Python", "CI/CD", "API design", "Leadership"],
        "languages": ["Spanish", "English", "German"],
        "education": [{"school": "Universidad Politécnica de Madrid", "degree": "MSc Computer Science"}],
        "experience": [
            {"title": "QA Lead", "company": "Scale-up One", "from": "2018-01", "to": "2021-06"},
            {"title": "Senior Tester", "company": "Scale-up Two", "from": "2015-03", "to": "2017-12"},
        ],
        "companyLinkedinUrl": f"https://linkedin.com/company/{ctx.label('contact-company', n)}",
        "companyWebsite": f"https://www.{ctx.label('contact-domain', n)}.example",
        "companyIndustry": "Computer Software",
        "companyFoundedYear": 2012,
        "companyRevenue": "10M-50M",
        "twitterUrl": f"https://twitter.com/{ctx.label('contact', n)}",
        "timezone": "Europe/Madrid",
        "leadScore": 85,
        "tags": ["enginy-conformance", "full-size"],
        "customFields": {"favouriteColour": "green", "notes": "Met at a conference. " * 10},
    }


def _create(ctx: CheckContext, family: Family, records: list[dict[str, Any]]) -> Reply:
    reply = ctx.client.post(family.path, {family.name: records}, operation=family.create)
    ctx.note_created_from(family.kind, reply)
    return reply


@shared("contacts", sends=(req("POST /contacts"),))
def created_contacts(ctx: CheckContext) -> tuple[list[dict[str, Any]], Reply]:
    sent = _shared_records(ctx, CONTACTS)
    return sent, _create(ctx, CONTACTS, sent)


@shared("companies", sends=(req("POST /companies"),))
def created_companies(ctx: CheckContext) -> tuple[list[dict[str, Any]], Reply]:
    sent = _shared_records(ctx, COMPANIES)
    return sent, _create(ctx, COMPANIES, sent)


def _created(ctx: CheckContext, family: Family) -> tuple[list[dict[str, Any]], Reply]:
    return created_contacts(ctx) if family is CONTACTS else created_companies(ctx)


def _create_together(ctx: CheckContext, family: Family) -> tuple[list[dict[str, Any]], list[Reply]]:
    """Sixteen creates of one record each, sent at the same moment; only the answered ones are kept."""
    sent = [_record(ctx, family, f"together-{n}") for n in range(1, CONCURRENT_RECORDS + 1)]
    replies = ctx.client.gather(
        [
            Request("POST", family.path, operation=family.create, json={family.name: [record]})
            for record in sent
        ]
    )
    answered = [(record, reply) for record, reply in zip(sent, replies, strict=True) if reply is not None]
    for _, reply in answered:
        ctx.note_created_from(family.kind, reply)
    return [record for record, _ in answered], [reply for _, reply in answered]


@shared("concurrent_contacts", sends=(req("POST /contacts", CONCURRENT_RECORDS),))
def concurrent_contacts(ctx: CheckContext) -> tuple[list[dict[str, Any]], list[Reply]]:
    return _create_together(ctx, CONTACTS)


@shared("concurrent_companies", sends=(req("POST /companies", CONCURRENT_RECORDS),))
def concurrent_companies(ctx: CheckContext) -> tuple[list[dict[str, Any]], list[Reply]]:
    return _create_together(ctx, COMPANIES)


def usable_records(ctx: CheckContext, family: Family) -> Mapped:
    """The shared records with their crmIds, or NotApplicable when create did not map them."""
    sent, reply = _created(ctx, family)
    if judges.mapping_problem(reply, sent) is not None:
        raise NotApplicable(
            f"POST {family.path} did not map the records it was sent, so this rule cannot be judged "
            f"(see {family.prefix}-CREATE-MAPS-EXTERNAL-IDS)."
        )
    results = results_of(reply) or []
    crm_ids = {item["externalId"]: item["crmId"] for item in results}
    return Mapped(sent=tuple(sent), crm_ids=crm_ids, reply=reply)


# --- create ---------------------------------------------------------------------------------------


def _judge_maps(ctx: CheckContext, family: Family, rule_id: str) -> str | None:
    _, reply = _created(ctx, family)
    ctx.judge(rule_id, reply)
    _, replies = concurrent_contacts(ctx) if family is CONTACTS else concurrent_companies(ctx)
    owner: dict[str, Reply] = {item["crmId"]: reply for item in results_of(reply) or []}
    for answer in replies:
        ctx.judge(rule_id, answer)
        crm_id = (results_of(answer) or [{}])[0]["crmId"]
        if crm_id in owner:
            raise violation(
                rule_id,
                f"POST {family.path} gave two different {family.name} the same crmId {shown(crm_id)}.",
                expected=f"a crmId of its own for each record ({CONCURRENT_RECORDS} of them created at once)",
                actual=f"crmId {shown(crm_id)} twice",
                replies=[owner[crm_id], answer],
            )
        owner[crm_id] = answer
    return lost_note(CONCURRENT_RECORDS - len(replies), CONCURRENT_RECORDS, f"POST {family.path}")


_CONTACT_EXTRAS: Final = {
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
}
_COMPANY_EXTRAS: Final = {
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
}


def _create_with_extras(ctx: CheckContext, family: Family) -> tuple[list[dict[str, Any]], Reply]:
    extra = _CONTACT_EXTRAS if family is CONTACTS else _COMPANY_EXTRAS
    sent = [{**_record(ctx, family, f"extra-{n}"), **extra} for n in (1, 2)]
    return sent, _create(ctx, family, sent)


@shared("contact_extras", sends=(req("POST /contacts"),))
def contacts_with_extras(ctx: CheckContext) -> tuple[list[dict[str, Any]], Reply]:
    return _create_with_extras(ctx, CONTACTS)


@shared("company_extras", sends=(req("POST /companies"),))
def companies_with_extras(ctx: CheckContext) -> tuple[list[dict[str, Any]], Reply]:
    return _create_with_extras(ctx, COMPANIES)


def _judge_unknown_fields(ctx: CheckContext, family: Family, rule_id: str) -> None:
    sent, reply = contacts_with_extras(ctx) if family is CONTACTS else companies_with_extras(ctx)
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
    problem = judges.mapping_problem(reply, sent)
    if problem is not None:
        raise violation(
            rule_id,
            f"POST {family.path} accepted records carrying unknown fields but did not map them.",
            expected=problem[0],
            actual=problem[1],
            replies=[reply],
        )


@check("CONTACT-CREATE-MAPS-EXTERNAL-IDS", uses=("contacts", "concurrent_contacts"))
def contact_export_maps_external_ids(ctx: CheckContext) -> str | None:
    return _judge_maps(ctx, CONTACTS, "CONTACT-CREATE-MAPS-EXTERNAL-IDS")


@check("CONTACT-CREATE-BATCH-100", uses=("contacts", "contact_extras"), sends=(req("POST /contacts"),))
def contact_export_takes_100(ctx: CheckContext) -> None:
    usable_records(ctx, CONTACTS)  # mapping must work on a small batch before size can be judged
    if not contacts_with_extras(ctx)[1].ok:  # Enginy's full leads carry fields the docs do not list
        raise NotApplicable("POST /contacts refuses unknown lead fields (see CONTACT-CREATE-UNKNOWN-FIELDS).")
    sent = [_full_lead(ctx, f"batch-{n}") for n in range(1, 101)]
    reply = _create(ctx, CONTACTS, sent)
    problem = judges.mapping_problem(reply, sent)
    if problem is not None:
        size = len(json.dumps({"contacts": sent}).encode()) // 1024
        raise violation(
            "CONTACT-CREATE-BATCH-100",
            f"POST /contacts with 100 contacts, every lead field filled ({size} KB, the size of Enginy's "
            "exports), did not map all of them.",
            expected=problem[0],
            actual=problem[1],
            replies=[reply],
        )


@check("CONTACT-CREATE-UNKNOWN-FIELDS", uses=("contacts", "contact_extras"))
def contact_export_tolerates_unknown_fields(ctx: CheckContext) -> None:
    _judge_unknown_fields(ctx, CONTACTS, "CONTACT-CREATE-UNKNOWN-FIELDS")


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


@check("COMPANY-CREATE-MAPS-EXTERNAL-IDS", uses=("companies", "concurrent_companies"))
def company_export_maps_external_ids(ctx: CheckContext) -> str | None:
    return _judge_maps(ctx, COMPANIES, "COMPANY-CREATE-MAPS-EXTERNAL-IDS")


@check("COMPANY-CREATE-UNKNOWN-FIELDS", uses=("companies", "company_extras"))
def company_export_tolerates_unknown_fields(ctx: CheckContext) -> None:
    _judge_unknown_fields(ctx, COMPANIES, "COMPANY-CREATE-UNKNOWN-FIELDS")


# --- sync -----------------------------------------------------------------------------------------


def _sync(ctx: CheckContext, family: Family, records: list[dict[str, Any]]) -> Reply:
    return ctx.client.post(f"{family.path}/sync", {family.name: records}, operation=family.sync)


def _stranger(ctx: CheckContext, family: Family, n: str, keep: tuple[str, ...]) -> dict[str, Any]:
    """A record the CRM has never seen, with only the matchable fields in `keep` (none: a bare one).

    Its names share nothing with the suite's stored records, so that even a fuzzy name match (which the
    docs suggest for companies) has nothing to find.
    """
    token = ctx.label("nobody", n).rsplit("-", 3)[-3]  # the run id: unique, not a word of the records
    if family is CONTACTS:
        record: dict[str, Any] = {
            "externalId": ctx.label("contact-stranger", n),
            "firstName": "Zed",
            "lastName": f"Nobody {token} {n}",
            "company": f"Nowhere Holdings {token}",
            "email": f"zed.nobody.{token}.{n}@unmatched.invalid",
            "linkedinUrl": f"https://linkedin.com/in/zed-nobody-{token}-{n}",
        }
    else:
        record = {
            "externalId": ctx.label("company-stranger", n),
            "name": f"Nowhere Holdings {token} {n}",
            "domain": f"nowhere-{token}-{n}.invalid",
            "linkedinUrl": f"https://linkedin.com/company/nowhere-{token}-{n}",
        }
    return {name: value for name, value in record.items() if name not in _MATCHABLE or name in keep}


def _judge_only_matches(
    ctx: CheckContext, rule_id: str, family: Family, reply: Reply, sent: list[dict[str, Any]], what: str
) -> None:
    """The sync answer is 200 with results drawn from `sent` (the rule's single-exchange judge), and none
    for the records never seen (which only the suite knows)."""
    strangers = {record["externalId"] for record in sent if "stranger" in record["externalId"]}
    # The never-seen records first: their presence is this rule's own finding, named as such.
    for item in results_of(reply) or []:
        if item.get("externalId") in strangers:
            raise violation(
                rule_id,
                f"POST {family.path}/sync answered a record the CRM has never seen ({what}).",
                expected=f"no result for {shown(item.get('externalId'))}",
                actual=shown(item),
                replies=[reply],
            )
    ctx.judge(rule_id, reply)


def _judge_omits_unmatched(ctx: CheckContext, family: Family, rule_id: str) -> None:
    keys = ("email", "linkedinUrl") if family is CONTACTS else ("domain", "linkedinUrl")
    # Strangers with every matchable field, with one of them only, and with none: the CRM holds a record
    # without any (record 4), which a match of an empty field against an empty field would "find".
    sent = [
        _stranger(ctx, family, "full", keys),
        _stranger(ctx, family, "first-only", keys[:1]),
        _stranger(ctx, family, "second-only", keys[1:]),
        _stranger(ctx, family, "bare", ()),
    ]
    # A record the CRM knows, sent as exported, so the answer has something to hold; without one, the
    # strangers alone still show whether they are omitted.
    with contextlib.suppress(NotApplicable):
        sent.insert(0, usable_records(ctx, family).sent[0])
    mixed = _sync(ctx, family, sent)
    _judge_only_matches(ctx, rule_id, family, mixed, sent, "known and never-seen records")
    # Nothing to match at all: still 200 with an empty list, never an error, and nothing from the request
    # before (an answer built in a list shared across requests shows here).
    alone = [_stranger(ctx, family, "alone", keys)]
    nothing = _sync(ctx, family, alone)
    _judge_only_matches(ctx, rule_id, family, nothing, alone, "only a never-seen record")


def _judge_matched(
    ctx: CheckContext, family: Family, rule_id: str, probes: list[tuple[dict[str, Any], str]], crm_id: str
) -> None:
    """One sync request holding every probe; each must be answered with `crm_id`. `probes` pairs each
    probe with a phrase saying how it differs from the stored record."""
    reply = _sync(ctx, family, [probe for probe, _ in probes])
    results = results_of(reply) or []
    missed = [
        how
        for probe, how in probes
        if not any(
            item.get("externalId") == probe["externalId"] and item.get("crmId") == crm_id for item in results
        )
    ]
    if reply.status != 200 or missed:
        raise violation(
            rule_id,
            f"POST {family.path}/sync did not match a record the CRM holds by its "
            f"{', '.join(missed) or 'key'}.",
            expected=f"200 with crmId {shown(crm_id)} for each of: " + "; ".join(how for _, how in probes),
            actual=reply.describe(),
            replies=[reply],
        )


@check("CONTACT-SYNC-OMITS-UNMATCHED", uses=("contacts",), sends=(req("POST /contacts/sync", 2),))
def contact_sync_omits_unmatched(ctx: CheckContext) -> None:
    _judge_omits_unmatched(ctx, CONTACTS, "CONTACT-SYNC-OMITS-UNMATCHED")


def _mixed_case(text: str) -> str:
    return "".join(char.upper() if index % 2 else char for index, char in enumerate(text))


@check("CONTACT-SYNC-MATCHES-EMAIL", uses=("contacts",), sends=(req("POST /contacts/sync"),))
def contact_sync_matches_email_in_any_case(ctx: CheckContext) -> None:
    mapped = usable_records(ctx, CONTACTS)
    record = mapped.sent[0]
    email = record["email"]
    # Fresh externalIds, and nothing but the email: only an email match can find the contact.
    probes = [
        ({"externalId": ctx.label("contact-sync-email", 1), "email": email.upper()}, "email in upper case"),
        (
            {"externalId": ctx.label("contact-sync-email", 2), "email": _mixed_case(email)},
            "email in mixed case",
        ),
    ]
    _judge_matched(ctx, CONTACTS, "CONTACT-SYNC-MATCHES-EMAIL", probes, mapped.crm_ids[record["externalId"]])


@check("CONTACT-SYNC-MATCHES-LINKEDIN", uses=("contacts",), sends=(req("POST /contacts/sync", 2),))
def contact_sync_matches_linkedin_with_or_without_slash(ctx: CheckContext) -> None:
    mapped = usable_records(ctx, CONTACTS)
    # Record 2 was created without a trailing slash, record 3 with one: each is looked up the other way.
    for record, url, how in (
        (mapped.sent[1], mapped.sent[1]["linkedinUrl"] + "/", "LinkedIn URL with a trailing slash added"),
        (
            mapped.sent[2],
            mapped.sent[2]["linkedinUrl"].rstrip("/"),
            "LinkedIn URL without its trailing slash",
        ),
    ):
        probe = {"externalId": ctx.label("contact-sync-linkedin", how[-5:]), "linkedinUrl": url}
        _judge_matched(
            ctx,
            CONTACTS,
            "CONTACT-SYNC-MATCHES-LINKEDIN",
            [(probe, how)],
            mapped.crm_ids[record["externalId"]],
        )


@check("COMPANY-SYNC-OMITS-UNMATCHED", uses=("companies",), sends=(req("POST /companies/sync", 2),))
def company_sync_omits_unmatched(ctx: CheckContext) -> None:
    _judge_omits_unmatched(ctx, COMPANIES, "COMPANY-SYNC-OMITS-UNMATCHED")


@check("COMPANY-SYNC-MATCHES-DOMAIN", uses=("companies",), sends=(req("POST /companies/sync"),))
def company_sync_matches_normalised_domain(ctx: CheckContext) -> None:
    mapped = usable_records(ctx, COMPANIES)
    record = mapped.sent[0]
    domain = record["domain"]
    # The docs' own examples: https://www.acme.com/about, WWW.ACME.COM and acme.com all name acme.com.
    shouted = ".".join(part.capitalize() for part in domain.split("."))
    forms = [
        (f"https://www.{shouted}/about", "domain written as a URL with www. and a path"),
        (f"WWW.{domain.upper()}", "domain in upper case with WWW."),
        (domain, "domain as stored"),
    ]
    probes = [
        ({"externalId": ctx.label("company-sync-domain", n), "domain": form}, how)
        for n, (form, how) in enumerate(forms, start=1)
    ]
    _judge_matched(
        ctx, COMPANIES, "COMPANY-SYNC-MATCHES-DOMAIN", probes, mapped.crm_ids[record["externalId"]]
    )


# --- update ---------------------------------------------------------------------------------------


def _update(ctx: CheckContext, family: Family, items: list[dict[str, Any]]) -> Reply:
    return ctx.client.put(family.path, {family.name: items}, operation=family.update)


def _changes(family: Family, n: int) -> dict[str, Any]:
    if family is CONTACTS:
        return {"title": f"Updated by the conformance suite ({n})", "lastContactedBy": "Enginy conformance"}
    return {"industry": f"Updated by the conformance suite ({n})"}


def _reported_failed(item: dict[str, Any]) -> bool:
    # `success` may be absent; only an explicit false (or an error without a success) says it failed.
    return item.get("success") is False or ("success" not in item and "error" in item)


def _update_problem(reply: Reply, crm_id: str) -> tuple[str, str] | None:
    """(expected, actual) unless the answer is 2xx and, where it reports per item, does not report the
    record with crm_id failed. The docs do not describe the answer's shape ([gap]): one without a
    results array passes."""
    expected = f"2xx, not reporting crmId {shown(crm_id)} failed"
    if not reply.ok:
        return expected, reply.describe()
    mine = [item for item in results_of(reply) or [] if item.get("crmId") == crm_id]
    if mine and _reported_failed(mine[0]):
        return expected, shown(mine[0])
    return None


def _known_update(ctx: CheckContext, family: Family) -> tuple[str, Reply]:
    mapped = usable_records(ctx, family)
    # The bare record (4): no sync check matches on it, so a PUT that wrongly replaces the whole record
    # changes what no other check reads, whichever of them runs first.
    crm_id = mapped.crm_ids[mapped.sent[3]["externalId"]]
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
    # The statement asks for the 2xx and for the unknown item; how the known one fared is
    # <FAMILY>-UPDATE's question, judged on a request of its own (the precondition above).
    if not reply.ok:
        raise violation(
            rule_id,
            f"PUT {family.path} with a known and an unknown crmId failed as a whole; the reference server "
            "reports an unknown crmId per item instead.",
            expected="2xx, the unknown item reported per item (success false) or not at all",
            actual=reply.describe(),
            replies=[reply],
        )
    for item in results_of(reply) or []:
        if item.get("crmId") == unknown and not _reported_failed(item):
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
