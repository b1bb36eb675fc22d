"""The mock's settings, checked once when they are built (bad ones raise MisconfigurationError)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mock_server.errors import MisconfigurationError

__all__ = [
    "ADMIN_TOKEN_HEADER",
    "DEFAULT_API_KEY_HEADER",
    "DEFAULT_JOURNAL_SIZE",
    "DEFAULT_MAX_BODY_BYTES",
    "MockConfig",
]

DEFAULT_API_KEY_HEADER = "X-API-Key"
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_JOURNAL_SIZE = 1000
ADMIN_TOKEN_HEADER = "X-Admin-Token"
# RFC 9110 token characters; an underscore is legal but waitress drops such headers, so refuse it.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^`|~-]+$")


@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """Everything ``create_app`` needs to know besides its collaborators (store, clock, ids).

    ``fault_specs`` are fault selections in the CLI syntax (``latency:ms=200``); ``seed_data`` is the
    parsed ``--seed-data`` document, loaded at start and again by ``POST /__admin/reset``.
    """

    api_keys: tuple[str, ...]
    admin_token: str
    api_key_header: str = DEFAULT_API_KEY_HEADER
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    users_enabled: bool = True
    seed_data: Mapping[str, Any] | None = None
    fault_specs: tuple[str, ...] = ()
    fault_seed: int = 0
    journal_size: int = DEFAULT_JOURNAL_SIZE
    journal_body_chars: int = 2048

    def __post_init__(self) -> None:
        if not self.api_keys or any(not key for key in self.api_keys):
            raise MisconfigurationError("Give at least one non-empty API key (--api-key KEY).")
        if any(key != key.strip() or "\r" in key or "\n" in key for key in self.api_keys):
            raise MisconfigurationError("An API key must not start or end with spaces or hold line breaks.")
        if not self.admin_token:
            raise MisconfigurationError("The admin token must not be empty.")
        if self.admin_token in self.api_keys:
            raise MisconfigurationError("The admin token must differ from every API key.")
        if not _HEADER_NAME.match(self.api_key_header) or "_" in self.api_key_header:
            raise MisconfigurationError(
                f"{self.api_key_header!r} is not a usable header name; use letters, digits and '-'."
            )
        if self.api_key_header.lower() == ADMIN_TOKEN_HEADER.lower():
            raise MisconfigurationError(f"The API key header cannot be {ADMIN_TOKEN_HEADER}.")
        if self.max_body_bytes < 1:
            raise MisconfigurationError("The body limit (--max-body-bytes) must be at least 1 byte.")
        if self.journal_size < 1:
            raise MisconfigurationError("The journal must hold at least one entry.")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in the journal or the logs."""
        return (*self.api_keys, self.admin_token)
