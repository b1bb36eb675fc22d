"""How sync finds an existing contact or company: normalisers and a first-match lookup.

The order of keys is the order of preference. Contacts: ``externalId``, then email lower-cased,
then LinkedIn URL without trailing slashes. Companies: ``externalId``, then the domain normalised
as the spec's ``syncCompanies`` description says, then LinkedIn URL. A value that normalises to
nothing (absent, not a string, blank) never matches, so two contacts without email are not "equal".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mock_server.storage import Record

__all__ = [
    "MatchKey",
    "Normaliser",
    "exact",
    "find_matches",
    "normalise_domain",
    "normalise_email",
    "normalise_linkedin",
]

Normaliser = Callable[[object], "str | None"]


def exact(value: object) -> str | None:
    """The value itself, when it is a non-empty string."""
    return value if isinstance(value, str) and value else None


def normalise_email(value: object) -> str | None:
    """Email compared case-insensitively (the docs: "primary email, lower-cased")."""
    if not isinstance(value, str):
        return None
    return value.strip().lower() or None


def normalise_linkedin(value: object) -> str | None:
    """LinkedIn URL with trailing slashes removed (the docs' only rule for it)."""
    if not isinstance(value, str):
        return None
    return value.strip().rstrip("/") or None


def normalise_domain(value: object) -> str | None:
    """The docs' rule: lower-case, strip http(s)://, strip www., drop from the first /, trim.

    The spec trims first as well, so that pasted values with a leading space still lose their scheme.

    ``https://www.Acme.com/about``, ``WWW.ACME.COM`` and ``acme.com`` all give ``acme.com``.
    """
    if not isinstance(value, str):
        return None
    domain = value.strip().lower()
    for scheme in ("http://", "https://"):
        domain = domain.removeprefix(scheme)
    domain = domain.removeprefix("www.")
    domain = domain.split("/", 1)[0]
    return domain.strip() or None


@dataclass(frozen=True)
class MatchKey:
    """One way of recognising a record: a field and how its values are compared."""

    field: str
    normalise: Normaliser


def find_matches(
    items: Sequence[Record], records: Iterable[Record], keys: Sequence[MatchKey]
) -> list[tuple[Record, Record]]:
    """Pair each item with the first stored record it matches, trying ``keys`` in order.

    Unmatched items are left out. Records are indexed once (oldest wins a tie), so this is linear
    in items plus records.
    """
    indexes: list[dict[str, Record]] = [{} for _ in keys]
    for record in records:
        for key, index in zip(keys, indexes, strict=True):
            value = key.normalise(record.get(key.field))
            if value is not None:
                index.setdefault(value, record)
    matches = []
    for item in items:
        for key, index in zip(keys, indexes, strict=True):
            value = key.normalise(item.get(key.field))
            if value is not None and value in index:
                matches.append((item, index[value]))
                break
    return matches
