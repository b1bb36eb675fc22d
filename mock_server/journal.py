"""The journal: the last N exchanges with the API, secrets redacted, each with one line saying why.

Admin requests are not journaled (reading the journal would fill it). Secrets (every API key and the
admin token) are replaced by ``[REDACTED]`` wherever they stand as a value: in the key header, in
``Authorization``, in any header whose value (or a word of it) is a secret, in a body as a whole JSON
string, after a key-like name in text (``X-API-Key: k``, ``token=k``). Inside longer text a secret is
replaced only when it cannot be part of ordinary words (16 characters or more, or 8 or more that are
not all letters): a one-letter or dictionary-word test key would otherwise blank out the words that
merely contain it. ``redact`` is also what the log formatter uses, so the logs and the journal follow
the same rule (and the conformance suite's reports too, see conformance/redaction.py).
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "REDACTED",
    "Journal",
    "JournalEntry",
    "PendingEntry",
    "Redactor",
    "redact",
    "redact_headers",
    "redact_words",
    "truncate_body",
]

REDACTED = "[REDACTED]"
# Headers that carry credentials by convention; redacted even when they hold no configured secret.
_ALWAYS_REDACTED = frozenset({"authorization", "proxy-authorization", "cookie", "x-admin-token"})


_KEY_NAMES = r"(?:x-api-key|api[-_ ]?key|apikey|key|token|secret|password|authorization|bearer)"


def _strong(secret: str) -> bool:
    """A secret that cannot be part of ordinary words, so that it is replaced inside any text."""
    return len(secret) >= 16 or (len(secret) >= 8 and not secret.isalpha())


class Redactor:
    """The redaction of one set of secrets, prepared once (the journal builds one per app).

    Every method gives what the module function of the same purpose gives (``redact``,
    ``redact_words``, ``redact_headers``, ``truncate_body``), but text in which no secret occurs,
    as written or JSON-escaped, is returned at once: every replacement needs one of those forms in
    the text, so such text would come back unchanged anyway. That is nearly every header and body
    the mock sees, and it made the redaction of each exchange most of a create's service time.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self.exact = frozenset(self.secrets)
        forms = sorted({form for s in self.secrets for form in (s, json.dumps(s)[1:-1])})
        # One search in C per text, not one `in` per form; a pattern that cannot match when there are none.
        self._any_form = re.compile("|".join(map(re.escape, forms)) if forms else "(?!)")
        self._steps = [
            (
                secret,
                json.dumps(secret),
                None
                if _strong(secret)
                else re.compile(
                    rf"(?i)(\b{_KEY_NAMES}\b[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)"
                    rf"(?-i:{re.escape(secret)})(?![\w-])"
                ),
            )
            for secret in self.secrets
        ]

    def could_hold(self, text: str) -> bool:
        """Might a secret be in this text? False means redaction would leave it as it is."""
        return self._any_form.search(text) is not None

    def text(self, text: str) -> str:
        """Every secret replaced where it is a value, and anywhere when it is strong (longest first)."""
        if not self.could_hold(text):
            return text
        for secret, quoted, in_context in self._steps:
            if text == secret:
                return REDACTED
            text = text.replace(quoted, f'"{REDACTED}"')
            if in_context is None:
                text = text.replace(secret, REDACTED)
            else:
                text = in_context.sub(lambda match: match.group(1) + REDACTED, text)
        return text

    def words(self, value: str) -> str:
        """Every word that is a secret replaced (``Bearer k``, ``ID: k``), then ``text`` applied."""
        if not self.could_hold(value):
            return value
        words = re.split(r"([\s,;=]+)", value)
        return self.text("".join(REDACTED if word in self.exact else word for word in words))

    def headers(self, headers: Mapping[str, str], *, sensitive: Iterable[str]) -> dict[str, str]:
        """Copy headers, redacting the named ones (case-insensitively) and any value holding a secret."""
        names = {name.lower() for name in sensitive} | _ALWAYS_REDACTED
        return {
            name: REDACTED if name.lower() in names or value in self.exact else self.words(value)
            for name, value in headers.items()
        }

    def body(self, raw: bytes | None, limit: int) -> str | None:
        """The body as text (undecodable bytes replaced), redacted, cut to ``limit`` characters."""
        if raw is None:
            return None
        # Decode only what can be shown (a UTF-8 character is at most 4 bytes): answers can be megabytes.
        text = self.text(raw[: limit * 4].decode("utf-8", errors="replace"))
        text = self._escaped(text)
        if len(text) > limit or len(raw) > limit * 4:
            return f"{text[:limit]}... [{len(raw)} bytes in all]"
        return text

    def _escaped(self, text: str) -> str:
        """A JSON body that spells a secret with \\u escapes, redacted as the JSON it decodes to.

        The text redaction cannot see `"\\u0063anary"` as `"canary"`, but anything that shows the body
        decoded (the inspector, a HAR viewer) would. Only such a body is re-serialised; any other is
        kept byte for byte.
        """
        if "\\u" not in text:
            return text
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return text
        decoded = json.dumps(value, ensure_ascii=False)
        redacted = self.text(decoded)
        return text if redacted == decoded else redacted


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret where it is a value, and anywhere when it is strong (longest first)."""
    return Redactor(secrets).text(text)


def redact_headers(
    headers: Mapping[str, str], *, sensitive: Iterable[str], secrets: Sequence[str]
) -> dict[str, str]:
    """Copy headers, redacting the named ones (case-insensitively) and any value holding a secret."""
    return Redactor(secrets).headers(headers, sensitive=sensitive)


def redact_words(value: str, secrets: set[str]) -> str:
    """Text with every word that is a secret replaced (``Bearer k``, ``ID: k``), then `redact` applied."""
    return Redactor(secrets).words(value)


def truncate_body(raw: bytes | None, limit: int, secrets: Sequence[str]) -> str | None:
    """The body as text (undecodable bytes replaced), redacted, cut to ``limit`` characters."""
    return Redactor(secrets).body(raw, limit)


@dataclass(frozen=True)
class JournalEntry:
    """One exchange. ``status`` is 0 when the mock closed the connection without answering.

    ``time`` is when the answer was ready. ``request_bytes``/``response_bytes`` are the full body
    sizes (the bodies themselves may be cut), None when there was no body; the HAR export needs them.
    """

    time: str
    method: str
    path: str
    status: int
    request_headers: Mapping[str, str]
    request_body: str | None
    response_body: str | None
    why: str
    duration_ms: float
    response_headers: Mapping[str, str] = field(default_factory=dict)
    request_bytes: int | None = None
    response_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class PendingEntry:
    """An exchange journaled as it was seen; its ``JournalEntry`` (redacted, cut) is built when first read.

    Redacting and cutting two header sets and two bodies was most of the journal's cost per request,
    and most entries are never read (the ring buffer drops them first). The secrets stay in this
    process's memory until then, as they were in the request itself; nothing leaves the process
    unredacted: readers get ``entry()``, and a journal kept outside the process (``SharedJournal``)
    builds it at once.
    """

    __slots__ = ("_build", "_entry")

    def __init__(self, build: Callable[[], JournalEntry]) -> None:
        self._build: Callable[[], JournalEntry] | None = build
        self._entry: JournalEntry | None = None

    def entry(self) -> JournalEntry:
        # Two threads reading at once may both build it: the same entry twice, harmless.
        if self._entry is None:
            build = self._build
            assert build is not None
            self._entry = build()
            self._build = None  # let go of the raw request and answer
        return self._entry


class Journal:
    """A bounded ring buffer of entries, newest first when read. Thread-safe."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._entries: deque[JournalEntry | PendingEntry] = deque(maxlen=size)

    def record(self, entry: JournalEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def record_later(self, pending: PendingEntry) -> None:
        """Keep an exchange whose entry is built only if it is read (see ``PendingEntry``)."""
        with self._lock:
            self._entries.append(pending)

    def entries(self, limit: int | None = None) -> list[JournalEntry]:
        with self._lock:
            newest_first = list(reversed(self._entries))
        if limit is not None:
            newest_first = newest_first[:limit]
        return [item.entry() if isinstance(item, PendingEntry) else item for item in newest_first]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
