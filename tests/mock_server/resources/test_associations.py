"""POST /associations: an upsert of pairs with per-pair errors."""

from __future__ import annotations


def test_links_pairs_counts_new_ones_and_reports_unknown_ids(mock):
    first, second = mock.create("contacts", {"externalId": "a"}, {"externalId": "b"})
    (company,) = mock.create("companies", {"externalId": "c"})
    result = mock.client.simulate_post(
        "/associations",
        json={
            "associations": [
                {"contactCRMId": first, "companyCRMId": company},
                {"contactCRMId": second, "companyCRMId": company},
                {"contactCRMId": "contact_invalid", "companyCRMId": company},
                {"contactCRMId": first, "companyCRMId": "company_invalid"},
                {"contactCRMId": "x", "companyCRMId": "y"},
            ]
        },
    )
    assert result.status_code == 200
    assert result.json == {
        "success": True,
        "created": 2,
        "errors": [
            {"contactCRMId": "contact_invalid", "companyCRMId": company, "error": "Contact not found"},
            {"contactCRMId": first, "companyCRMId": "company_invalid", "error": "Company not found"},
            {"contactCRMId": "x", "companyCRMId": "y", "error": "Contact and company not found"},
        ],
    }
    assert len(mock.admin("GET", "records", params={"kind": "associations"}).json["associations"]) == 2


def test_resending_a_pair_is_an_upsert(mock):
    (contact,) = mock.create("contacts", {"externalId": "a"})
    (company,) = mock.create("companies", {"externalId": "c"})
    pair = {"contactCRMId": contact, "companyCRMId": company}
    assert mock.client.simulate_post("/associations", json={"associations": [pair, pair]}).json == {
        "success": True,
        "created": 1,
    }
    assert mock.client.simulate_post("/associations", json={"associations": [pair]}).json == {
        "success": True,
        "created": 0,
    }


def test_empty_list_and_missing_fields(mock):
    assert mock.client.simulate_post("/associations", json={"associations": []}).json == {
        "success": True,
        "created": 0,
    }
    result = mock.client.simulate_post("/associations", json={"associations": [{"contactCRMId": "a"}]})
    assert result.status_code == 400
    assert result.json["message"] == "associations[0].companyCRMId is required."
