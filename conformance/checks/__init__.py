"""The scripted checks: one plain function per rule of the catalogue that scripted requests can judge.

A check takes the run's `CheckContext`, returns when its rule holds, raises `RuleViolation` when it does
not and `NotApplicable` when it cannot judge (a precondition failed, so that a broken create is reported
once, under its own rule). Checks register themselves with `@check("RULE-ID")` in the family modules
imported below, and nowhere else: this import list is the whole registry.

A run judges rules in catalogue order (health and keys, tasks, activities, records, associations, users,
inputs, and ERROR-BODY-JSON last, which reads every error answer the run has received); shared fixtures
are built on first use, so whatever creates records runs before whatever reads them.
"""

from __future__ import annotations

from conformance.checks import (  # noqa: F401  (imported to register their checks)
    activities,
    associations,
    auth,
    inputs,
    records,
    tasks,
    users,
)
from conformance.checks._context import CheckContext
from conformance.checks._registry import (
    CHECKS,
    FIXTURES,
    LOAD_ONLY,
    SCHEMATHESIS_ONLY,
    CheckFunction,
    FixturePlan,
    Planned,
    RegisteredCheck,
    Registry,
    RegistryError,
    check,
)
from conformance.checks._spec import SpecSchemas, is_iso8601_datetime

__all__ = [
    "CHECKS",
    "FIXTURES",
    "LOAD_ONLY",
    "SCHEMATHESIS_ONLY",
    "CheckContext",
    "CheckFunction",
    "FixturePlan",
    "Planned",
    "RegisteredCheck",
    "Registry",
    "RegistryError",
    "SpecSchemas",
    "check",
    "is_iso8601_datetime",
]
