"""Taking the API key out of everything a run records, without garbling the rest.

A key is replaced by `[REDACTED]` as a whole value wherever it stands as one: a header value (the key
header's always, any other header's when the key is that value or one of its words: `Bearer <key>`), a
query value, a whole JSON string in a body, a value after a key-like name in text (`X-API-Key: <key>`,
`"apiKey": "<key>"`, `token=<key>`).

Inside longer text, a key is replaced only where it cannot be part of ordinary words: a *strong* key
(16 characters or more, or 8 or more that are not all letters) is replaced wherever it occurs, in every
form it may take in an echo (raw, JSON-escaped, URL-quoted); a *weak* one ("k", "test", "password") is
not, because replacing it there would turn "task" into "tas[REDACTED]" and a report into nonsense
without hiding anything: such a key is an ordinary word, and where it stands as a value it is replaced.

A tool that is not given the key but sees it go by (the proxy) learns it instead: `credential_values`
picks the values a request carries under credential names (the key header, Authorization, cookies, any
header or query parameter whose name smells of a secret), and `LearnedSecrets` takes out every value
it was taught, each the way a `Redactor` takes out the key.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = [
    "ALWAYS_SECRET_HEADERS",
    "CREDENTIAL_HEADERS",
    "PLACEHOLDERS",
    "REDACTED",
    "LearnedSecrets",
    "Redactor",
    "credential_values",
    "is_strong",
    "looks_secret",
]

REDACTED: Final = "[REDACTED]"
# What recorders write in place of a secret: ours, and Schemathesis' own marker.
PLACEHOLDERS: Final = (REDACTED, "[Filtered]")
# Headers whose values are secret whatever they hold.
ALWAYS_SECRET_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# Headers that carry credentials by name (the mock's admin token among them).
CREDENTIAL_HEADERS: Final = ALWAYS_SECRET_HEADERS | {"x-admin-token"}
_SECRET_LOOKING = re.compile(r"key|token|secret|passw|credential|auth|session", re.IGNORECASE)
# Names after which a value is a credential, in free text ("X-API-Key: k", "token=k", '"apiKey": "k"').
_KEY_NAMES: Final = r"(?:x-api-key|api[-_ ]?key|apikey|key|token|secret|password|authorization|bearer)"


def is_strong(secret: str) -> bool:
    """Whether a key cannot be part of ordinary words, so that it may be replaced inside any text."""
    return len(secret) >= 16 or (len(secret) >= 8 and not secret.isalpha())


@dataclass(frozen=True)
class Redactor:
    """Replaces one secret (the API key, sent under `header`) in what a run records."""

    secret: str
    header: str = "X-API-Key"
    _forms: tuple[str, ...] = field(init=False, repr=False, default=())
    _in_context: re.Pattern[str] | None = field(init=False, repr=False, default=None)
    _json_string: re.Pattern[str] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if not self.secret:
            return
        forms = {
            self.secret,
            json.dumps(self.secret)[1:-1],
            json.dumps(self.secret, ensure_ascii=False)[1:-1],
            quote(self.secret, safe=""),
        }
        # Longest first, so that a form containing another is replaced whole.
        object.__setattr__(self, "_forms", tuple(sorted(forms, key=len, reverse=True)))
        alternatives = "|".join(re.escape(form) for form in self._forms)
        object.__setattr__(
            self,
            "_in_context",
            re.compile(
                rf"(?i)(\b(?:{_KEY_NAMES}|{re.escape(self.header)})\b[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)"
                rf"(?-i:{alternatives})(?![A-Za-z0-9_\-])"
            ),
        )
        object.__setattr__(self, "_json_string", re.compile(rf'"(?:{alternatives})"'))

    @property
    def strong(self) -> bool:
        return is_strong(self.secret)

    def text(self, value: str) -> str:
        """Free text (a message, a page): the key where it is a value; anywhere when it is strong."""
        if not self.secret or not value:
            return value
        if value == self.secret:
            return REDACTED
        if self.strong:
            for form in self._forms:
                value = value.replace(form, REDACTED)
            return value
        assert self._in_context is not None
        return self._in_context.sub(lambda match: match.group(1) + REDACTED, value)

    def body(self, value: str) -> str:
        """A request or response body: also every JSON string that is the key, whole."""
        if not self.secret or not value:
            return value
        assert self._json_string is not None
        return self.text(self._json_string.sub(f'"{REDACTED}"', value))

    def url(self, value: str) -> str:
        """A URL: query values that are the key; the key anywhere in it when it is strong."""
        if not self.secret or not value:
            return value
        parts = urlsplit(value)
        if parts.query:
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            if any(item == self.secret for _, item in pairs):
                query = urlencode([(name, REDACTED if item == self.secret else item) for name, item in pairs])
                value = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
        if self.strong:
            for form in self._forms:
                value = value.replace(form, REDACTED)
        return value

    def header_value(self, name: str, value: str) -> str:
        """A header value: the credential headers' always; any other's, the key header's included, when
        it holds the key (as the whole value or one of its words, or anywhere when the key is strong). A
        deliberately wrong key stays visible, so that the request can be replayed as it was sent."""
        if name.lower() in ALWAYS_SECRET_HEADERS:
            return REDACTED
        if not self.secret:
            return value
        words = re.split(r"[\s,;=]+", value)
        if self.secret in words or (self.strong and any(form in value for form in self._forms)):
            return REDACTED
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {name: self.header_value(name, value) for name, value in headers.items()}


def looks_secret(name: str) -> bool:
    """Whether a header or query parameter of this name carries a credential, by its name alone."""
    return name.lower() in CREDENTIAL_HEADERS or bool(_SECRET_LOOKING.search(name))


def credential_values(headers: Iterable[tuple[str, str]], *, key_header: str, query: str = "") -> list[str]:
    """The credential values a request carries: under `key_header`, under a header whose name looks
    secret (for `Bearer <token>` also the token alone, for cookies each value) and in query parameters
    whose name looks secret. Placeholders ([REDACTED]) and empty values are not credentials."""
    values: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered != key_header.lower() and not looks_secret(name):
            continue
        if lowered == "cookie":
            values += [part.partition("=")[2].strip() for part in value.split(";")]
            continue
        values.append(value.strip())
        words = value.split()
        if len(words) > 1:
            values.append(words[-1])
    values += [value for name, value in parse_qsl(query, keep_blank_values=True) if looks_secret(name)]
    return [value for value in dict.fromkeys(values) if value and value not in PLACEHOLDERS]


class LearnedSecrets:
    """Takes out of what is recorded every secret it was taught, each as a `Redactor` takes out the key.

    The longest secret goes first, so that one containing another is replaced whole. With nothing
    learned it still redacts the always-secret headers (Authorization, cookies). Safe to share between
    threads: `learn` swaps in a new tuple of redactors, which readers pick up whole.
    """

    def __init__(self, *, header: str) -> None:
        self.header = header
        self._lock = threading.Lock()
        self._redactors: tuple[Redactor, ...] = (Redactor(secret="", header=header),)

    def __len__(self) -> int:
        return sum(1 for redactor in self._redactors if redactor.secret)

    def learn(self, values: Iterable[str]) -> None:
        with self._lock:
            known = {redactor.secret for redactor in self._redactors}
            fresh = [value for value in dict.fromkeys(values) if value and value not in known]
            new = [Redactor(secret=value, header=self.header) for value in fresh]
            if new:
                mixed = sorted((*self._redactors, *new), key=lambda r: len(r.secret), reverse=True)
                self._redactors = tuple(mixed)

    def text(self, value: str) -> str:
        for redactor in self._redactors:
            value = redactor.text(value)
        return value

    def body(self, value: str) -> str:
        for redactor in self._redactors:
            value = redactor.body(value)
        return value

    def url(self, value: str) -> str:
        for redactor in self._redactors:
            value = redactor.url(value)
        return value

    def header_value(self, name: str, value: str) -> str:
        for redactor in self._redactors:
            value = redactor.header_value(name, value)
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {name: self.header_value(name, value) for name, value in headers.items()}
