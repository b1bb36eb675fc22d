"""Normalisers and the first-match lookup used by sync."""

from __future__ import annotations

import pytest

from mock_server.matching import (
    MatchKey,
    exact,
    find_matches,
    normalise_domain,
    normalise_email,
    normalise_linkedin,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.acme.com/about", "acme.com"),
        ("WWW.ACME.COM", "acme.com"),
        ("acme.com", "acme.com"),
        ("http://acme.com/", "acme.com"),
        ("https://shop.acme.com/x/y", "shop.acme.com"),
        ("acme.com ", "acme.com"),
        # Trimmed first too, so a pasted leading space does not keep the scheme.
        (" https://acme.com", "acme.com"),
        ("", None),
        ("/", None),
        (None, None),
        (42, None),
    ],
)
def test_domain_normalisation_follows_the_spec(raw, expected):
    assert normalise_domain(raw) == expected


def test_email_and_linkedin_normalisation():
    assert normalise_email(" John.Doe@Acme.COM ") == "john.doe@acme.com"
    assert normalise_email("  ") is None
    assert normalise_linkedin("https://linkedin.com/in/jane//") == "https://linkedin.com/in/jane"
    assert normalise_linkedin("https://linkedin.com/in/Jane") != normalise_linkedin(
        "https://linkedin.com/in/jane"
    )
    assert exact("") is None and exact(["x"]) is None and exact("X") == "X"


def test_find_matches_prefers_earlier_keys_and_older_records():
    records = [
        {"id": "old", "email": "a@x.com"},
        {"id": "new", "email": "A@X.com", "externalId": "e-2"},
    ]
    keys = [MatchKey("externalId", exact), MatchKey("email", normalise_email)]
    items = [
        {"externalId": "e-2", "email": "a@x.com"},
        {"externalId": "e-9", "email": "a@X.com"},
        {"externalId": "z"},
    ]
    matches = find_matches(items, records, keys)
    assert [(item["externalId"], record["id"]) for item, record in matches] == [
        ("e-2", "new"),
        ("e-9", "old"),
    ]
