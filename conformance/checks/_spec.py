"""What the checks read from spec/openapi.yaml: response schemas, request schemas, enums.

Every shape a check compares an answer with comes from the OpenAPI document through here, compiled
once per run; no schema is restated in Python. `format` stays an annotation (the JSON Schema 2020-12
default), so a date-time in the wrong format is judged once, under TIMESTAMPS-ISO8601, and not again
as a schema violation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from enginy_spec import Operation, load_spec, operations

__all__ = [
    "DECISION_KEY",
    "UNDOCUMENTED",
    "Problem",
    "SpecSchemas",
    "is_iso8601_datetime",
]

_BASE: Final = "urn:enginy-crm-contract:openapi"
# A success status the spec does not list for the operation.
UNDOCUMENTED: Final = "undocumented"
# Marks a response whose shape the docs do not describe (the contract's own Decision, e.g. PUT /contacts):
# RESPONSE-SCHEMA does not judge it.
DECISION_KEY: Final = "x-enginy-shape"
_MAX_ERRORS = 5


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


class SpecSchemas:
    """Validators compiled from the spec, built once per run and cached per schema."""

    def __init__(self, spec: Mapping[str, Any] | None = None) -> None:
        self._spec = spec if spec is not None else load_spec()
        resource = Resource.from_contents(dict(self._spec), default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_BASE, resource)
        self._operations: dict[str, Operation] = operations()
        self._validators: dict[str, Draft202012Validator] = {}

    @property
    def operations(self) -> Mapping[str, Operation]:
        return self._operations

    def _validator(self, pointer: str) -> Draft202012Validator:
        validator = self._validators.get(pointer)
        if validator is None:
            validator = Draft202012Validator({"$ref": _BASE + pointer}, registry=self._registry)
            self._validators[pointer] = validator
        return validator

    def component_errors(self, name: str, instance: Any) -> list[str]:
        """Why `instance` breaks `#/components/schemas/<name>` (empty when it matches)."""
        return self._errors(self._validator(_pointer("components", "schemas", name)), instance)

    def enum(self, name: str) -> tuple[str, ...]:
        """The values of an enum component schema, e.g. ActivityType."""
        values = self._spec["components"]["schemas"][name]["enum"]
        return tuple(str(value) for value in values)

    def request_schema(self, operation_id: str) -> Mapping[str, Any] | None:
        """The request body schema of an operation, with one level of `$ref` resolved."""
        op = self._operations[operation_id]
        body = self._spec["paths"][op.path][op.method.lower()].get("requestBody")
        if not body:
            return None
        schema: Mapping[str, Any] = body["content"]["application/json"]["schema"]
        return self.resolve(schema)

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return schema
        node: Any = self._spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        resolved: Mapping[str, Any] = node
        return resolved

    def response_errors(
        self,
        operation_id: str,
        status: int,
        instance: Any,
        *,
        is_json: bool,
        decisions: bool = False,
        excused: Callable[[tuple[str | int, ...], Any], bool] | None = None,
    ) -> list[str]:
        """Why an answer breaks the documented response (see `response_problems`), as sentences."""
        problems = self.response_problems(
            operation_id, status, instance, is_json=is_json, decisions=decisions, excused=excused
        )
        return [problem.text for problem in problems]

    def response_problems(
        self,
        operation_id: str,
        status: int,
        instance: Any,
        *,
        is_json: bool,
        decisions: bool = False,
        excused: Callable[[tuple[str | int, ...], Any], bool] | None = None,
    ) -> list[Problem]:
        """Why an answer breaks the documented response for this status (empty when it matches).

        A status the operation does not document gives one reason saying so; a documented response
        without content accepts any body. A response marked `x-enginy-shape: decision` (the docs do not
        describe it; its schema is this contract's choice) accepts any body too, unless `decisions`.
        `excused(path, value)` may pardon single errors (a value a lenient server stored from a request
        that broke the schema, answered back on a later read).
        """
        op = self._operations[operation_id]
        responses: Mapping[str, Any] = self._spec["paths"][op.path][op.method.lower()]["responses"]
        key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
        if key not in responses:
            return [Problem(f"status {status} is not documented for {op.method} {op.path}")]
        response = self.resolve(responses[key])
        if response.get(DECISION_KEY) == "decision" and not decisions:
            return []
        content = response.get("content") or {}
        if "application/json" not in content:
            return []
        if not is_json:
            return [Problem("the body is not JSON, but the spec documents a JSON body")]
        # A response given by reference (#/components/responses/...) is validated where it lives.
        ref = responses[key].get("$ref")
        pointer = (
            ref if isinstance(ref, str) else _pointer("paths", op.path, op.method.lower(), "responses", key)
        )
        return self._problems(
            self._validator(pointer + "/content/application~1json/schema"), instance, excused=excused
        )

    def documents_json_error(self, operation_id: str, status: int) -> bool:
        """Whether an error answer with this status should carry the JSON error body.

        True when the spec documents the status (or its `4XX` range) with JSON content, and when it does
        not document the status at all (the general convention then applies). False only where the spec
        says "any body" by documenting the status without content (e.g. 404 on /users).
        """
        op = self._operations[operation_id]
        responses: Mapping[str, Any] = self._spec["paths"][op.path][op.method.lower()]["responses"]
        key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
        if key not in responses:
            return True
        return "application/json" in (self.resolve(responses[key]).get("content") or {})

    def request_errors(self, operation_id: str, body: Any) -> list[str]:
        """Why a request body breaks the operation's documented request schema (empty when valid)."""
        op = self._operations[operation_id]
        pointer = _pointer("paths", op.path, op.method.lower(), "requestBody", "content", "application/json")
        return self._errors(self._validator(pointer + "/schema"), body)

    @classmethod
    def _errors(cls, validator: Draft202012Validator, instance: Any) -> list[str]:
        return [problem.text for problem in cls._problems(validator, instance)]

    @staticmethod
    def _problems(
        validator: Draft202012Validator,
        instance: Any,
        *,
        excused: Callable[[tuple[str | int, ...], Any], bool] | None = None,
    ) -> list[Problem]:
        found = sorted(validator.iter_errors(instance), key=lambda error: list(error.absolute_path))
        if excused is not None:
            found = [error for error in found if not excused(tuple(error.absolute_path), error.instance)]
        problems = []
        for error in found[:_MAX_ERRORS]:
            where = "/".join(str(part) for part in error.absolute_path) or "body"
            message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
            problems.append(Problem(f"{where}: {message}", _field_of(error)))
        if len(found) > _MAX_ERRORS:
            problems.append(Problem(f"… and {len(found) - _MAX_ERRORS} more"))
        return problems


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason an answer breaks its schema; `field` names the answer's field at fault, if one is."""

    text: str
    field: str | None = None


def _field_of(error: ValidationError) -> str | None:
    # A missing field is reported on the object that lacks it ("'id' is a required property").
    required = error.validator_value
    if error.validator == "required" and isinstance(error.instance, dict) and isinstance(required, list):
        missing = [name for name in required if name not in error.instance]
        return str(missing[0]) if len(missing) == 1 else None
    names = [part for part in error.absolute_path if isinstance(part, str)]
    return names[-1] if names else None


# ISO 8601 date and time, extended (2024-01-15T10:00:00Z) or basic (20240115T100000Z) form, with optional
# seconds, fractional seconds and offset. The docs' examples use `Z`; offsets and fractions are just as
# much ISO 8601, and Enginy's date parser reads them, so they pass.
_ISO_EXTENDED = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)
_ISO_BASIC = re.compile(
    r"^(\d{4})(\d{2})(\d{2})[Tt](\d{2})(\d{2})(?:(\d{2})(?:[.,](\d+))?)?(?:[Zz]|[+-]\d{2}(?:\d{2})?)?$"
)


def is_iso8601_datetime(value: object) -> bool:
    """True for an ISO 8601 date-time string (date *and* time; a date alone is not a timestamp)."""
    if not isinstance(value, str):
        return False
    match = _ISO_EXTENDED.match(value) or _ISO_BASIC.match(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) if part else 0 for part in match.groups()[:6])
    if hour == 24 and minute == 0 and second == 0:  # ISO 8601 allows 24:00 for the end of a day
        hour = 0
    try:
        datetime(year, month, day, hour, minute, min(second, 59))  # 60 is a leap second
    except ValueError:
        return False
    return second <= 60
