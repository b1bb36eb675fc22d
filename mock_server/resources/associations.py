"""POST /associations: link contacts to companies, as an upsert of pairs.

``created`` counts the pairs newly linked by this request; a pair naming an unknown contact or
company is listed in ``errors`` and does not fail the request (200, ``success: true``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import falcon

from mock_server.bodies import json_body
from mock_server.runtime import Runtime
from mock_server.storage import association_id

__all__ = ["Associations"]


def _problem(contact_known: bool, company_known: bool) -> str:
    if not contact_known and not company_known:
        return "Contact and company not found"
    return "Contact not found" if not contact_known else "Company not found"


class Associations:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        rt = self._rt
        pairs: list[dict[str, Any]] = json_body(rt, req, "createAssociations")["associations"]
        contacts = {
            record["id"] for record in rt.store.get_many("contacts", [p["contactCRMId"] for p in pairs])
        }
        companies = {
            record["id"] for record in rt.store.get_many("companies", [p["companyCRMId"] for p in pairs])
        }
        valid = []
        errors = []
        for pair in pairs:
            contact, company = pair["contactCRMId"], pair["companyCRMId"]
            if contact in contacts and company in companies:
                valid.append((contact, company))
            else:
                problem = _problem(contact in contacts, company in companies)
                errors.append({"contactCRMId": contact, "companyCRMId": company, "error": problem})
        if rt.active("ASSOC-CREATE"):
            contacts_per_company: dict[str, set[str]] = defaultdict(set)
            for contact, company in valid:
                contacts_per_company[company].add(contact)
            if any(len(linked) > 1 for linked in contacts_per_company.values()):
                rt.applies(req, "ASSOC-CREATE")
                resp.media = {"success": False, "created": 0}
                return
        records = [
            {"id": association_id(contact, company), "contactCRMId": contact, "companyCRMId": company}
            for contact, company in valid
        ]
        created = rt.store.add("associations", records)
        if created < len(valid) and rt.applies(req, "ASSOC-UPSERT"):
            created = len(valid)
        success = not (errors and rt.applies(req, "ASSOC-PARTIAL-SUCCESS"))
        answer: dict[str, Any] = {"success": success, "created": created}
        if errors and not rt.applies(req, "ASSOC-ERRORS-NAME-PAIR"):
            answer["errors"] = errors
        resp.media = answer
