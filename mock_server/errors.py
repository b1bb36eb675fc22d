"""Every error the mock can answer or raise, and the one JSON body all answers share.

Errors::

    falcon.HTTPError
    └── ApiError                     answered to the client as {"error": title, "message": sentence}
        ├── BadRequest          400  ├── MalformedBody (not JSON, not UTF-8, nested too deep, no body)
        │                            └── InvalidBody   (breaks the spec's schema; names the field)
        ├── Unauthorized        401  (API key or admin token missing or wrong)
        ├── Forbidden           403  (only under the AUTH-401-NOT-403 fault)
        ├── NotFound            404  └── TaskNotFound
        ├── PayloadTooLarge     413
        ├── TooManyRequests     429  (rate-limit fault; carries Retry-After)
        ├── InternalError       500  (the catch-all, and faults that answer 500 on purpose)
        └── ServiceUnavailable  503  (error-rate fault; carries Retry-After)
    ValueError
    └── MisconfigurationError        the mock was set up wrong (CLI exit 2, admin API 400)
        ├── FaultSpecError           an unknown fault id or bad fault parameters
        └── SeedError                seed data that does not fit the spec's schemas
    DropConnection                   a transport fault: close the socket without an answer

Each ``ApiError`` subclass has a fixed title (the ``error`` field) and takes one sentence (the
``message`` field). It also carries ``why``: the line the journal shows for the answer.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar

import falcon

__all__ = [
    "ApiError",
    "BadRequest",
    "DropConnection",
    "FaultSpecError",
    "Forbidden",
    "InternalError",
    "InvalidBody",
    "MalformedBody",
    "MisconfigurationError",
    "NotFound",
    "PayloadTooLarge",
    "SeedError",
    "ServiceUnavailable",
    "TaskNotFound",
    "TooManyRequests",
    "Unauthorized",
    "describe_foreign_error",
    "error_body",
]


class ApiError(falcon.HTTPError):
    """An answer with the one error body; subclasses fix the status, the title and the journal prefix."""

    status_line: ClassVar[str] = falcon.HTTP_400
    fixed_title: ClassVar[str] = "Bad request"
    why_prefix: ClassVar[str] = "bad request"

    def __init__(
        self, message: str, *, why: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(self.status_line, title=self.fixed_title, description=message, headers=headers)
        self.message = message
        self.why = why or f"{self.why_prefix}: {message.rstrip('.')}"

    def __str__(self) -> str:
        return self.message


class BadRequest(ApiError):
    status_line = falcon.HTTP_400
    fixed_title = "Bad request"
    why_prefix = "bad request"


class MalformedBody(BadRequest):
    fixed_title = "Malformed body"
    why_prefix = "malformed body"


class InvalidBody(BadRequest):
    fixed_title = "Invalid body"
    why_prefix = "validation error"


class Unauthorized(ApiError):
    status_line = falcon.HTTP_401
    fixed_title = "Unauthorized"
    why_prefix = "auth"


class Forbidden(ApiError):
    status_line = falcon.HTTP_403
    fixed_title = "Forbidden"
    why_prefix = "auth"


class NotFound(ApiError):
    status_line = falcon.HTTP_404
    fixed_title = "Not found"
    why_prefix = "not found"


class TaskNotFound(NotFound):
    fixed_title = "Task not found"


class PayloadTooLarge(ApiError):
    status_line = falcon.HTTP_413
    fixed_title = "Payload too large"
    why_prefix = "body too large"


class TooManyRequests(ApiError):
    status_line = falcon.HTTP_429
    fixed_title = "Too many requests"
    why_prefix = "rate limited"


class InternalError(ApiError):
    status_line = falcon.HTTP_500
    fixed_title = "Internal server error"
    why_prefix = "internal error"


class ServiceUnavailable(ApiError):
    status_line = falcon.HTTP_503
    fixed_title = "Service unavailable"
    why_prefix = "unavailable"


class MisconfigurationError(ValueError):
    """The mock was configured wrong: bad options, seed data or fault names. The message is one sentence."""


class FaultSpecError(MisconfigurationError):
    """A fault selection names an unknown fault or gives it bad parameters."""


class SeedError(MisconfigurationError):
    """Seed data is not an object of known kinds holding records that fit the spec's schemas."""


class DropConnection(Exception):
    """Raised by the drop-connection fault; the waitress integration closes the socket without answering."""


def error_body(title: str, message: str) -> bytes:
    """Serialize the one error body. ``ensure_ascii`` keeps lone surrogates from breaking the encoder."""
    return json.dumps({"error": title, "message": message}, separators=(",", ":")).encode("ascii")


_STATUS_PREFIX = re.compile(r"^\d{3}\s+")
# Falcon raises its own errors before our code runs (no route, wrong method, unknown HTTP method,
# unreadable headers). They keep their status and headers (Allow on 405) but get our body.
_FOREIGN_MESSAGES = {
    404: "No route matches this path; see the OpenAPI document for the 15 operations.",
    405: "This path does not support that method; the Allow header lists the ones it does.",
}


def describe_foreign_error(error: falcon.HTTPError, method: str, path: str) -> tuple[str, str, str]:
    """Return (title, message, why) for an HTTPError that Falcon raised rather than our code."""
    code = int(str(error.status)[:3])
    title = _STATUS_PREFIX.sub("", error.title or "") or "Error"
    title = title[0].upper() + title[1:].lower()
    message = _FOREIGN_MESSAGES.get(code) or (error.description or f"The request failed with status {code}.")
    if code == 404:
        why = f"no route: {method} {path}"
    elif code == 405:
        why = f"method not allowed: {method} {path}"
    else:
        why = f"{title.lower()}: {message.rstrip('.')}"
    return title, message, why
