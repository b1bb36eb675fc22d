"""enginy-conformance: judge a customer's Custom CRM server against the Enginy contract.

The public surface is small on purpose; everything else lives in modules named for what they hold.
"""

from __future__ import annotations

from conformance.errors import ConformanceError, TransportError, UsageError
from conformance.results import (
    Evidence,
    Exchange,
    Outcome,
    RecordedRequest,
    RecordedResponse,
    Result,
    RuleViolation,
)

__all__ = [
    "ConformanceError",
    "Evidence",
    "Exchange",
    "Outcome",
    "RecordedRequest",
    "RecordedResponse",
    "Result",
    "RuleViolation",
    "TransportError",
    "UsageError",
]
