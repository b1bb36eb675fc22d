"""Contacts and companies: create (map externalId to crmId), sync (answer only matches), update by crmId.

The two families behave alike, so one set of resources serves both, parameterised by a ``Family``.
A stored contact or company is the item as sent (unknown fields included, they are custom fields)
with its crmId in ``id``. A stored ``properties`` object (from seed data) is what sync answers as
``properties``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import falcon

from mock_server.bodies import json_body
from mock_server.errors import BadRequest, InvalidBody, NotFound, PayloadTooLarge
from mock_server.matching import (
    MatchKey,
    exact,
    find_matches,
    normalise_domain,
    normalise_email,
    normalise_linkedin,
)
from mock_server.runtime import Runtime
from mock_server.storage import Kind, Record
from mock_server.validation import field_path

__all__ = ["COMPANIES", "CONTACTS", "Family", "RecordSync", "Records"]

_BATCH_FAULT_LIMIT = 50


@dataclass(frozen=True)
class Family:
    kind: Kind
    items: str  # the body's array key, e.g. "contacts"
    noun: str  # "Contact"
    id_prefix: str
    create_op: str
    sync_op: str
    update_op: str
    fault_prefix: str  # "CONTACT" or "COMPANY", as in the rule ids

    def match_keys(self, rt: Runtime, req: falcon.Request) -> list[MatchKey]:
        """The keys sync tries, in order, as bent by the matching faults."""
        if self.kind == "contacts":
            email = exact if rt.applies(req, "CONTACT-SYNC-MATCHES-EMAIL") else normalise_email
            linkedin = exact if rt.applies(req, "CONTACT-SYNC-MATCHES-LINKEDIN") else normalise_linkedin
            return [
                MatchKey("externalId", exact),
                MatchKey("email", email),
                MatchKey("linkedinUrl", linkedin),
            ]
        domain = exact if rt.applies(req, "COMPANY-SYNC-MATCHES-DOMAIN") else normalise_domain
        return [
            MatchKey("externalId", exact),
            MatchKey("domain", domain),
            MatchKey("linkedinUrl", normalise_linkedin),
        ]


CONTACTS = Family(
    kind="contacts",
    items="contacts",
    noun="Contact",
    id_prefix="contact",
    create_op="createContacts",
    sync_op="syncContacts",
    update_op="updateContacts",
    fault_prefix="CONTACT",
)
COMPANIES = Family(
    kind="companies",
    items="companies",
    noun="Company",
    id_prefix="company",
    create_op="createCompanies",
    sync_op="syncCompanies",
    update_op="updateCompanies",
    fault_prefix="COMPANY",
)


class Records:
    """POST (create) and PUT (update) on /contacts or /companies."""

    def __init__(self, rt: Runtime, family: Family) -> None:
        self._rt = rt
        self._family = family
        self._declared = frozenset(rt.validators.body_properties(family.create_op, family.items, "[]"))

    def _unknown_field(self, items: Sequence[Record]) -> str | None:
        for index, item in enumerate(items):
            for name in item:
                if name not in self._declared:
                    return field_path([self._family.items, index, name])
        return None

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        rt, family = self._rt, self._family
        items: list[Record] = json_body(rt, req, family.create_op)[family.items]
        if family.kind == "contacts":
            if not items and rt.applies(req, "CONTACT-CREATE-EMPTY"):
                raise BadRequest("contacts must not be empty.")
            if len(items) > _BATCH_FAULT_LIMIT and rt.applies(req, "CONTACT-CREATE-BATCH-100"):
                raise PayloadTooLarge(f"At most {_BATCH_FAULT_LIMIT} contacts per request.")
        unknown_fault = f"{family.fault_prefix}-CREATE-UNKNOWN-FIELDS"
        if rt.active(unknown_fault):
            unknown = self._unknown_field(items)
            if unknown is not None and rt.applies(req, unknown_fault):
                raise InvalidBody(f"{unknown} is not a known field.")
        records = [{**item, "id": rt.ids(family.id_prefix)} for item in items]
        rt.store.add(family.kind, records)
        echo_crm_id = rt.applies(req, f"{family.fault_prefix}-CREATE-MAPS-EXTERNAL-IDS") if records else False
        resp.media = {
            "results": [
                {"externalId": record["id"] if echo_crm_id else record["externalId"], "crmId": record["id"]}
                for record in records
            ]
        }

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        rt, family = self._rt, self._family
        items: list[Record] = json_body(rt, req, family.update_op)[family.items]
        crm_ids = [item["crmId"] for item in items]
        partial_fault = f"{family.fault_prefix}-UPDATE-UNKNOWN-PARTIAL"
        if rt.active(partial_fault):
            known = {record["id"] for record in rt.store.get_many(family.kind, crm_ids)}
            unknown = next((crm_id for crm_id in crm_ids if crm_id not in known), None)
            if unknown is not None and rt.applies(req, partial_fault):
                raise NotFound(f"{family.noun} not found: {unknown[:100]}.")
        if rt.active(f"{family.fault_prefix}-UPDATE"):
            known = {record["id"] for record in rt.store.get_many(family.kind, crm_ids)}
            if known and rt.applies(req, f"{family.fault_prefix}-UPDATE"):
                resp.media = {
                    "results": [
                        {"crmId": crm_id, "success": False, "error": "Update failed"}
                        if crm_id in known
                        else {"crmId": crm_id, "success": False, "error": f"{family.noun} not found"}
                        for crm_id in crm_ids
                    ]
                }
                return
        # Items naming the same crmId apply in order, the later fields winning; one atomic update.
        changes: dict[str, dict[str, Any]] = {}
        for item in items:
            fields = {name: value for name, value in item.items() if name not in {"crmId", "id"}}
            changes.setdefault(item["crmId"], {}).update(fields)
        updated = {
            record["id"]: record
            for record in rt.store.update(family.kind, list(changes), lambda r: {**r, **changes[r["id"]]})
        }
        results: list[dict[str, Any]] = []
        for crm_id in crm_ids:
            record = updated.get(crm_id)
            if record is None:
                results.append({"crmId": crm_id, "success": False, "error": f"{family.noun} not found"})
                continue
            result: dict[str, Any] = {"crmId": crm_id, "success": True}
            if record.get("ownerId") is not None:
                result["properties"] = {"ownerId": record["ownerId"]}
            results.append(result)
        resp.media = {"results": results}


class RecordSync:
    """POST /contacts/sync or /companies/sync: answer only the items that match a stored record."""

    def __init__(self, rt: Runtime, family: Family) -> None:
        self._rt = rt
        self._family = family

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        rt, family = self._rt, self._family
        items: list[Record] = json_body(rt, req, family.sync_op)[family.items]
        matches = find_matches(items, rt.store.list(family.kind), family.match_keys(rt, req))
        results: list[dict[str, Any]] = []
        for item, record in matches:
            result: dict[str, Any] = {"externalId": item["externalId"], "crmId": record["id"]}
            if isinstance(record.get("properties"), dict):
                result["properties"] = record["properties"]
            results.append(result)
        unmatched_fault = f"{family.fault_prefix}-SYNC-OMITS-UNMATCHED"
        if rt.active(unmatched_fault):
            matched = {id(item) for item, _ in matches}
            unmatched = [item for item in items if id(item) not in matched]
            if unmatched and rt.applies(req, unmatched_fault):
                results.extend(
                    {"externalId": item["externalId"], "crmId": rt.ids(f"{family.id_prefix}-unmatched")}
                    for item in unmatched
                )
        resp.media = {"results": results}
