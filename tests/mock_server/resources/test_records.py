"""Contacts and companies: create, sync (matching), update."""

from __future__ import annotations

import pytest


def test_create_contacts_maps_every_external_id_in_order(mock):
    contacts = [{"externalId": f"lead-{n}", "email": f"p{n}@acme.com"} for n in range(3)]
    result = mock.client.simulate_post("/contacts", json={"contacts": contacts})
    assert result.status_code == 200
    assert result.json == {
        "results": [{"externalId": f"lead-{n}", "crmId": f"contact-{n + 1}"} for n in range(3)]
    }


def test_create_accepts_150_items_and_unknown_fields(mock):
    contacts = [
        {"externalId": f"lead-{n}", "location": "Madrid", "campaigns": [{"id": n}]} for n in range(150)
    ]
    result = mock.client.simulate_post("/contacts", json={"contacts": contacts})
    assert result.status_code == 200
    assert len(result.json["results"]) == 150
    stored = mock.admin("GET", "records", params={"kind": "contacts"}).json["contacts"]
    assert stored[0] == {
        "externalId": "lead-0",
        "location": "Madrid",
        "campaigns": [{"id": 0}],
        "id": "contact-1",
    }


def test_create_empty_list_answers_empty_results(mock):
    assert mock.client.simulate_post("/contacts", json={"contacts": []}).json == {"results": []}


def test_create_names_the_missing_external_id(mock):
    result = mock.client.simulate_post("/contacts", json={"contacts": [{"externalId": "a"}, {"email": "x"}]})
    assert result.status_code == 400
    assert result.json["message"] == "contacts[1].externalId is required."


def test_create_refuses_an_empty_external_id(mock):
    result = mock.client.simulate_post("/companies", json={"companies": [{"externalId": ""}]})
    assert result.status_code == 400
    assert result.json["message"] == "companies[0].externalId must not be empty."


def test_create_companies_maps_external_ids(mock):
    result = mock.client.simulate_post(
        "/companies", json={"companies": [{"externalId": "company-123", "numberOfEmployees": 250}]}
    )
    assert result.json == {"results": [{"externalId": "company-123", "crmId": "company-1"}]}


def test_contact_sync_matches_external_id_then_email_then_linkedin_and_omits_the_rest(mock):
    by_id, by_email, by_linkedin = mock.create(
        "contacts",
        {"externalId": "lead-1"},
        {"externalId": "lead-2", "email": "John.Doe@Acme.com"},
        {"externalId": "lead-3", "linkedinUrl": "https://linkedin.com/in/janedoe"},
    )
    result = mock.client.simulate_post(
        "/contacts/sync",
        json={
            "contacts": [
                {"externalId": "lead-1"},
                {"externalId": "other-2", "email": " JOHN.DOE@acme.COM "},
                {"externalId": "other-3", "linkedinUrl": "https://linkedin.com/in/janedoe//"},
                {"externalId": "never-seen", "email": "nobody@acme.com"},
                {"externalId": "blank", "email": "", "linkedinUrl": "/"},
            ]
        },
    )
    assert result.status_code == 200
    assert result.json == {
        "results": [
            {"externalId": "lead-1", "crmId": by_id},
            {"externalId": "other-2", "crmId": by_email},
            {"externalId": "other-3", "crmId": by_linkedin},
        ]
    }


def test_sync_prefers_external_id_over_email(mock):
    _, second = mock.create(
        "contacts", {"externalId": "lead-1", "email": "a@x.com"}, {"externalId": "lead-2", "email": "b@x.com"}
    )
    result = mock.client.simulate_post(
        "/contacts/sync", json={"contacts": [{"externalId": "lead-2", "email": "a@x.com"}]}
    )
    assert result.json["results"] == [{"externalId": "lead-2", "crmId": second}]


def test_sync_answers_seeded_properties(mock):
    mock.admin(
        "POST",
        "seed",
        json={"contacts": [{"crmId": "c-9", "externalId": "lead-9", "properties": {"leadScore": 85}}]},
    )
    result = mock.client.simulate_post("/contacts/sync", json={"contacts": [{"externalId": "lead-9"}]})
    assert result.json["results"] == [
        {"externalId": "lead-9", "crmId": "c-9", "properties": {"leadScore": 85}}
    ]


@pytest.mark.parametrize(
    "domain", ["https://www.Acme.com/about", "WWW.ACME.COM", "acme.com", "http://acme.com/", "acme.com "]
)
def test_company_sync_normalises_the_domain_as_the_spec_says(mock, domain):
    (crm_id,) = mock.create("companies", {"externalId": "company-123", "domain": "acme.com"})
    result = mock.client.simulate_post(
        "/companies/sync", json={"companies": [{"externalId": "x", "domain": domain}]}
    )
    assert result.json == {"results": [{"externalId": "x", "crmId": crm_id}]}


def test_company_sync_matches_linkedin_and_omits_unmatched(mock):
    (crm_id,) = mock.create(
        "companies", {"externalId": "c", "linkedinUrl": "https://linkedin.com/company/acme"}
    )
    result = mock.client.simulate_post(
        "/companies/sync",
        json={
            "companies": [
                {"externalId": "y", "linkedinUrl": "https://linkedin.com/company/acme/"},
                {"externalId": "z", "domain": "other.com"},
            ]
        },
    )
    assert result.json == {"results": [{"externalId": "y", "crmId": crm_id}]}


def test_update_reports_per_item_and_keeps_absent_fields(mock):
    (crm_id,) = mock.create("contacts", {"externalId": "lead-1", "title": "CEO", "email": "a@x.com"})
    result = mock.client.simulate_put(
        "/contacts",
        json={
            "contacts": [
                {"crmId": crm_id, "ownerId": "user-123", "lastContactedBy": "John"},
                {"crmId": "nope"},
            ]
        },
    )
    assert result.status_code == 200
    assert result.json == {
        "results": [
            {"crmId": crm_id, "success": True, "properties": {"ownerId": "user-123"}},
            {"crmId": "nope", "success": False, "error": "Contact not found"},
        ]
    }
    stored = mock.admin("GET", "records", params={"kind": "contacts"}).json["contacts"][0]
    assert stored == {
        "externalId": "lead-1",
        "title": "CEO",
        "email": "a@x.com",
        "id": crm_id,
        "ownerId": "user-123",
        "lastContactedBy": "John",
    }


def test_update_without_owner_has_no_properties(mock):
    (crm_id,) = mock.create("companies", {"externalId": "c"})
    result = mock.client.simulate_put(
        "/companies", json={"companies": [{"crmId": crm_id, "industry": "Software"}]}
    )
    assert result.json == {"results": [{"crmId": crm_id, "success": True}]}


def test_update_requires_crm_id(mock):
    result = mock.client.simulate_put("/companies", json={"companies": [{"name": "x"}]})
    assert result.status_code == 400
    assert result.json["message"] == "companies[0].crmId is required."
