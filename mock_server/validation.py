"""Request validation against the spec's own schemas (JSON Schema 2020-12), compiled once per app.

Nothing here restates a schema: every validator is a ``$ref`` into the loaded OpenAPI document,
keyed by operationId (request bodies, path parameters) or by component name (seed records).
Messages name the offending field as a path such as ``contacts[0].externalId``.

Each schema is compiled twice (``Schema``): by jsonschema_rs (Rust) for the valid/invalid verdict every
request needs, and by jsonschema (Python) for what only an invalid body needs, the error that names
the field and the repairs of the lenient faults. Both judge ``date-time`` with the same function,
``is_rfc3339_date_time``; tests/mock_server/test_validation.py proves they agree on the spec's
examples, the hostile corpus and thousands of generated bodies.

Two faults loosen validation instead of turning it off, so that whatever reaches a resource still
has the shape the resource relies on (a lenient CRM, not a crashing one):

* INPUT-MISSING-REQUIRED: a missing required top-level field is filled with a neutral value of its
  schema ("" or "missing", the first enum value, false, [] or {}); INPUT-ITEM-MISSING-REQUIRED does the
  same for the required fields of list items.
* INPUT-INVALID-REJECTED: a value of the wrong type, outside an enum or not a date-time is coerced
  (``123`` becomes ``"123"``, ``"x"`` becomes ``["x"]``, an unknown enum value the first known one).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import jsonschema
import jsonschema_rs
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from enginy_spec import load_spec, operations
from mock_server.errors import InvalidBody

__all__ = ["SPEC_URI", "Schema", "Validators", "field_path", "is_rfc3339_date_time"]

SPEC_URI = "urn:enginy-crm-contract:openapi"
# Components the admin seed endpoint checks records against (the request shapes, plus User/Task).
SEED_COMPONENTS = (
    "Task",
    "TaskCreate",
    "ContactCreate",
    "CompanyCreate",
    "ActivityCreate",
    "AssociationPair",
    "User",
)
_EPOCH = "1970-01-01T00:00:00Z"
# Enough errors to pick a relevant one; a hostile body with a million bad items must not build a million.
_MAX_ERRORS = 50
_MAX_REPAIR_ROUNDS = 8
_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_TYPE_WORDS = {
    "string": "a string",
    "array": "an array",
    "object": "an object",
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
    "null": "null",
}


def is_rfc3339_date_time(value: object) -> bool:
    """RFC 3339 ``date-time`` (what OpenAPI means by the format): a date, ``T``, a time and an offset.

    ``datetime.fromisoformat`` alone is too lenient (it takes a missing offset or a space).
    Non-strings pass: the ``type`` keyword, not the format, judges those.
    """
    if not isinstance(value, str):
        return True
    found = _DATE_TIME.match(value)
    if found is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in found.group(1, 2, 3, 4, 5, 6))
    try:
        offset = timedelta(0)
        if found.group(9):
            offset = timedelta(hours=int(found.group(10)), minutes=int(found.group(11)))
        # RFC 3339 allows second 60 at a leap second; datetime does not, so check 59 instead.
        datetime(year, month, day, hour, minute, min(second, 59), tzinfo=timezone(offset))
    except ValueError:
        return False
    return second <= 60


# The formats the mock checks (OpenAPI's date-time only); the same function for both validators.
_FORMATS: dict[str, Callable[[object], bool]] = {"date-time": is_rfc3339_date_time}


def field_path(path: Iterable[str | int], leaf: str | None = None) -> str:
    """``["contacts", 0, "email"]`` → ``contacts[0].email``; the empty path is ``body``."""
    text = ""
    for part in [*path, *([leaf] if leaf is not None else [])]:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return (text or "body")[:200]


def _pointer(*parts: str) -> str:
    escaped = (part.replace("~", "~0").replace("/", "~1") for part in parts)
    return "/" + "/".join(escaped)


@dataclass(frozen=True)
class Repair:
    """What a lenient fault changed in a body, for the journal."""

    field: str
    action: str

    def __str__(self) -> str:
        return f"{self.action} {self.field}"


class Schema:
    """One schema of the spec, compiled by jsonschema_rs (the verdict) and by jsonschema (the explanation).

    ``is_valid`` asks the Rust validator, several times to a hundred times faster on the mock's bodies
    (a 10,000-id batch: 0.2 ms instead of 100 ms). An instance it cannot take in (a string with a lone
    surrogate, which a JSON escape can smuggle in and Rust strings cannot hold) is judged by the Python
    validator instead, so every verdict is the Python validator's.
    """

    def __init__(self, fast: jsonschema_rs.Validator, full: jsonschema.Draft202012Validator) -> None:
        self.fast = fast
        self.full = full

    def is_valid(self, instance: object) -> bool:
        try:
            return self.fast.is_valid(instance)
        except ValueError:  # UnicodeEncodeError, or a value jsonschema_rs cannot convert
            return bool(self.full.is_valid(instance))


def _fillable(error: ValidationError, fill: frozenset[str]) -> bool:
    return ("items" if error.absolute_path else "top") in fill


class Validators:
    """Every validator the app needs, built from the loaded spec when the app is created."""

    def __init__(self) -> None:
        spec = load_spec()
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self._resolver = registry.resolver(base_uri=SPEC_URI)
        checker = jsonschema.FormatChecker(formats=())
        for name, check in _FORMATS.items():
            checker.checks(name)(check)
        fast_registry = jsonschema_rs.Registry([(SPEC_URI, spec)], draft=jsonschema_rs.Draft202012)

        def compile_pointer(pointer: str) -> Schema:
            # jsonschema_rs wants a strict URI ({taskId} percent-encoded); referencing takes it as written.
            strict = {"$ref": f"{SPEC_URI}#{quote(pointer, safe='/~')}"}
            loose = {"$ref": f"{SPEC_URI}#{quote(pointer, safe='/~{}')}"}
            return Schema(
                jsonschema_rs.Draft202012Validator(
                    strict,
                    registry=fast_registry,
                    formats={name: check for name, check in _FORMATS.items()},
                    validate_formats=True,
                    offline=True,
                ),
                jsonschema.Draft202012Validator(loose, registry=registry, format_checker=checker),
            )

        self._bodies: dict[str, Schema] = {}
        self._body_schemas: dict[str, Mapping[str, Any]] = {}
        self._params: dict[tuple[str, str], Schema] = {}
        for op in operations().values():
            item = spec["paths"][op.path]
            operation = item[op.method.lower()]
            if "requestBody" in operation:
                pointer = _pointer(
                    "paths",
                    op.path,
                    op.method.lower(),
                    "requestBody",
                    "content",
                    "application/json",
                    "schema",
                )
                self._bodies[op.operation_id] = compile_pointer(pointer)
                self._body_schemas[op.operation_id] = operation["requestBody"]["content"]["application/json"][
                    "schema"
                ]
            # Path-level parameters first, then the operation's own (which override by name).
            for level, params in (
                ("path", item.get("parameters", [])),
                ("op", operation.get("parameters", [])),
            ):
                for index, param in enumerate(params):
                    if param.get("in") != "path":
                        continue
                    parts = ["paths", op.path, "parameters", str(index), "schema"]
                    if level == "op":
                        parts.insert(2, op.method.lower())
                    self._params[(op.operation_id, param["name"])] = compile_pointer(_pointer(*parts))
        self._components = {
            name: compile_pointer(_pointer("components", "schemas", name)) for name in SEED_COMPONENTS
        }

    # -- lookups -------------------------------------------------------------------------------------

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            schema = self._resolver.lookup(schema["$ref"]).contents
        return schema

    def body_properties(self, operation_id: str, *steps: str) -> tuple[str, ...]:
        """The property names declared by the request-body schema of this operation, in spec order.

        ``steps`` walk into it first: a property name, or ``[]`` for an array's items; e.g.
        ``body_properties("createContacts", "contacts", "[]")`` gives the fields of ContactCreate.
        """
        schema = self._resolve(self._body_schemas[operation_id])
        for step in steps:
            schema = self._resolve(schema["items"] if step == "[]" else schema["properties"][step])
        return tuple(schema.get("properties", {}))

    # -- checks --------------------------------------------------------------------------------------

    def compiled(self) -> dict[str, Schema]:
        """Every compiled schema by label (``body createTask``, ``param getTask taskId``, ...)."""
        return {
            **{f"body {operation_id}": schema for operation_id, schema in self._bodies.items()},
            **{f"param {op} {name}": schema for (op, name), schema in self._params.items()},
            **{f"component {name}": schema for name, schema in self._components.items()},
        }

    def check_path_param(self, operation_id: str, name: str, value: str) -> None:
        """Raise InvalidBody (400) if the path parameter breaks its schema."""
        schema = self._params[(operation_id, name)]
        if schema.is_valid(value):
            return
        error = _most_relevant(schema.full.iter_errors(value))
        if error is not None:
            raise InvalidBody(_describe(error, root=name))

    def path_param_ok(self, operation_id: str, name: str, value: str) -> bool:
        """Does the value fit the path parameter's schema? (For ids the mock makes up under faults.)"""
        return self._params[(operation_id, name)].is_valid(value)

    def check_component(self, name: str, instance: object) -> str | None:
        """Return a sentence describing why ``instance`` breaks the component schema, or None."""
        schema = self._components[name]
        if schema.is_valid(instance):
            return None
        error = _most_relevant(schema.full.iter_errors(instance))
        return None if error is None else _describe(error)

    def check_body(
        self,
        operation_id: str,
        body: Any,
        *,
        fill_missing: frozenset[str] = frozenset(),
        coerce_invalid: bool = False,
    ) -> tuple[Any, list[Repair]]:
        """Return the body (repaired when a lenient fault allows it) or raise InvalidBody naming the field.

        `fill_missing` says which missing required fields are filled: "top" (of the body itself) and
        "items" (of the objects inside it).
        """
        schema = self._bodies[operation_id]
        if schema.is_valid(body):
            return body, []
        # Invalid (rare): the Python validator names the field, and repairs what the faults allow.
        validator = schema.full
        repairs: list[Repair] = []
        for _ in range(_MAX_REPAIR_ROUNDS):
            errors = list(itertools.islice(validator.iter_errors(body), _MAX_ERRORS))
            if not errors:
                return body, repairs
            blocking = [
                error
                for error in errors
                if not (
                    (error.validator == "required" and _fillable(error, fill_missing))
                    or (coerce_invalid and error.validator != "required" and error.validator in _COERCIONS)
                )
            ]
            if blocking:
                best = _most_relevant(blocking)
                assert best is not None
                raise InvalidBody(_describe(best))
            for error in errors:
                body = self._repair(body, error, repairs)
        raise InvalidBody("The body could not be made to fit the schema.")

    # -- lenient repairs (faults only) ----------------------------------------------------------------

    def _repair(self, body: Any, error: ValidationError, repairs: list[Repair]) -> Any:
        path = list(error.absolute_path)
        if error.validator == "required":
            target = error.instance
            properties = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
            required: list[str] = error.validator_value  # type: ignore[assignment]  # set by "required"
            for name in required:
                if isinstance(target, dict) and name not in target:
                    target[name] = self._neutral(properties.get(name, {}))
                    repairs.append(Repair(field_path(path, name), "filled"))
            return body
        value = _COERCIONS[str(error.validator)](error.instance, error.validator_value)
        repairs.append(Repair(field_path(path), "coerced"))
        return _set_at(body, path, value)

    def _neutral(self, schema: Mapping[str, Any]) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        kind = _first_type(schema.get("type"))
        if kind == "string":
            if schema.get("format") == "date-time":
                return _EPOCH
            return "missing".ljust(int(schema.get("minLength", 0)), "-") if schema.get("minLength") else ""
        return {"boolean": False, "integer": 0, "number": 0, "array": [], "object": {}}.get(kind or "", "")


def _relevance(error: ValidationError) -> tuple[int, bool]:
    return -len(error.path), error.validator not in {"anyOf", "oneOf"}


def _most_relevant(errors: Iterable[ValidationError]) -> ValidationError | None:
    """The shallowest error, the first such in document order.

    (jsonschema's best_match breaks ties by path, so it names ids[49] rather than ids[0].)
    """
    found = list(itertools.islice(errors, _MAX_ERRORS))
    return max(found, key=_relevance) if found else None


def _first_type(declared: object) -> str | None:
    if isinstance(declared, str):
        return declared
    if isinstance(declared, list):
        return next((kind for kind in declared if kind != "null"), None)
    return None


def _coerce_type(value: Any, declared: object) -> Any:
    kind = _first_type(declared)
    if kind == "string":
        return json.dumps(value, separators=(",", ":"))[:1000]
    if kind == "boolean":
        return bool(value)
    if kind in {"integer", "number"}:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return 0
        if number != number or number in {float("inf"), float("-inf")}:
            return 0
        return int(number) if kind == "integer" else number
    if kind == "array":
        return [value] if value is not None else []
    if kind == "object":
        return {}
    return None


_COERCIONS: dict[str, Callable[[Any, Any], Any]] = {
    "type": _coerce_type,
    "enum": lambda _value, allowed: allowed[0],
    "const": lambda _value, wanted: wanted,
    "format": lambda _value, _format: _EPOCH,
    "minLength": lambda value, least: str(value).ljust(int(least), "-"),
    "maxLength": lambda value, most: str(value)[: int(most)],
    "minimum": lambda _value, least: least,
    "maximum": lambda _value, most: most,
}


def _set_at(body: Any, path: Sequence[str | int], value: Any) -> Any:
    if not path:
        return value
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return body


def _describe(error: ValidationError, *, root: str | None = None) -> str:
    """One sentence naming the field and what is wrong with it."""
    path: list[str | int] = [root] if root else []
    path.extend(error.absolute_path)
    keyword = error.validator
    # The keyword's value from the schema; jsonschema types it loosely (Any | Unset).
    value: Any = error.validator_value
    instance: Any = error.instance
    if keyword == "required":
        missing = next((name for name in value if name not in instance), value[0])
        return f"{field_path(path, missing)} is required."
    field = field_path(path)
    if keyword == "type":
        kinds = [value] if isinstance(value, str) else list(value)
        return f"{field} must be {' or '.join(_TYPE_WORDS.get(kind, kind) for kind in kinds)}."
    if keyword == "enum":
        return f"{field} must be one of {', '.join(str(option) for option in value)}."
    if keyword == "minLength":
        return (
            f"{field} must not be empty."
            if value == 1
            else f"{field} must be at least {value} characters long."
        )
    if keyword == "format" and value == "date-time":
        return f"{field} must be an ISO 8601 date-time such as 2024-01-15T10:00:00Z."
    if keyword == "not":
        shown = json.dumps(error.instance)[:60]
        return f"{field} must not be {shown}."
    if keyword in {"minimum", "maximum"}:
        return f"{field} must be at {'least' if keyword == 'minimum' else 'most'} {value}."
    return f"{field} is invalid ({keyword})."
