"""The journal: the last N exchanges with the API, secrets redacted, each with one line saying why.

Admin requests are not journaled (reading the journal would fill it). Secrets (every API key and the
admin token) are replaced by ``[REDACTED]`` wherever they occur: in the key header, in
``Authorization``, in any other header and in bodies. ``redact`` is also what the log formatter
uses, so the logs and the journal follow the same rule.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["REDACTED", "Journal", "JournalEntry", "redact", "redact_headers", "truncate_body"]

REDACTED = "[REDACTED]"
# Headers that carry credentials by convention; redacted even when they hold no configured secret.
_ALWAYS_REDACTED = frozenset({"authorization", "proxy-authorization", "cookie", "x-admin-token"})


# Shorter secrets are still redacted wherever they are the whole value of a credential header, but
# not inside free text: a one-letter test key would otherwise blank out every such letter in a body.
MIN_REDACTED_SUBSTRING = 4


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of every secret (longest first, so one cannot hide part of another)."""
    for secret in sorted((s for s in secrets if len(s) >= MIN_REDACTED_SUBSTRING), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_headers(
    headers: Mapping[str, str], *, sensitive: Iterable[str], secrets: Sequence[str]
) -> dict[str, str]:
    """Copy headers, redacting the named ones (case-insensitively) and any value holding a secret."""
    names = {name.lower() for name in sensitive} | _ALWAYS_REDACTED
    exact = set(secrets)
    return {
        name: REDACTED if name.lower() in names or value in exact else redact(value, secrets)
        for name, value in headers.items()
    }


def truncate_body(raw: bytes | None, limit: int, secrets: Sequence[str]) -> str | None:
    """The body as text (undecodable bytes replaced), redacted, cut to ``limit`` characters."""
    if raw is None:
        return None
    # Decode only what can be shown (a UTF-8 character is at most 4 bytes): answers can be megabytes.
    text = redact(raw[: limit * 4].decode("utf-8", errors="replace"), secrets)
    if len(text) > limit or len(raw) > limit * 4:
        return f"{text[:limit]}... [{len(raw)} bytes in all]"
    return text


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


class Journal:
    """A bounded ring buffer of entries, newest first when read. Thread-safe."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._entries: deque[JournalEntry] = deque(maxlen=size)

    def record(self, entry: JournalEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, limit: int | None = None) -> list[JournalEntry]:
        with self._lock:
            newest_first = list(reversed(self._entries))
        return newest_first if limit is None else newest_first[:limit]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
