"""spec/openapi.yaml: valid OpenAPI, documented operations, examples that match their schemas, auth, ids."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from enginy_spec import load_spec

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Keywords whose value is one subschema, a list of subschemas, or a name -> subschema map.
SINGLE_SUBSCHEMA = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
LIST_OF_SUBSCHEMAS = ("allOf", "anyOf", "oneOf", "prefixItems")
MAP_OF_SUBSCHEMAS = ("properties", "patternProperties", "$defs", "dependentSchemas")
ID_PROPERTIES = ("id", "crmId")


# --- helpers ---------------------------------------------------------------------------------------


def pointer(*tokens: str) -> str:
    """A URI fragment (JSON pointer) for these reference tokens."""
    return "".join(
        "/" + quote(str(token).replace("~", "~0").replace("/", "~1"), safe="~") for token in tokens
    )


def resolve(spec: dict[str, Any], node: Any) -> tuple[Any, tuple[str, ...] | None]:
    """Follow local $refs; return the target and its tokens (None when node wasn't a $ref)."""
    tokens = None
    seen = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        ref = node["$ref"]
        assert ref not in seen, f"$ref cycle at {ref}"
        seen.add(ref)
        tokens = tuple(token.replace("~1", "/").replace("~0", "~") for token in ref[2:].split("/"))
        node = spec
        for token in tokens:
            node = node[token]
    return node, tokens


def spec_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method in item:
                yield method, path, item[method]


def walk_schema(schema: Any, at: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any, tuple[str, ...]]]:
    """Yield (where, example value, schema location) for schema-level example/examples, recursively."""
    if not isinstance(schema, dict):
        return
    if "example" in schema:
        yield (*at, "example"), schema["example"], at
    if isinstance(schema.get("examples"), list):
        for index, value in enumerate(schema["examples"]):
            yield (*at, "examples", str(index)), value, at
    for keyword in SINGLE_SUBSCHEMA:
        if keyword in schema:
            yield from walk_schema(schema[keyword], (*at, keyword))
    for keyword in LIST_OF_SUBSCHEMAS:
        for index, sub in enumerate(schema.get(keyword) or []):
            yield from walk_schema(sub, (*at, keyword, str(index)))
    for keyword in MAP_OF_SUBSCHEMAS:
        for name, sub in (schema.get(keyword) or {}).items():
            yield from walk_schema(sub, (*at, keyword, name))


def walk_document(
    spec: dict[str, Any], node: Any, at: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], Any, tuple[str, ...]]]:
    """Yield every example of media types, parameters and headers, and of every schema they hold."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from walk_document(spec, item, (*at, str(index)))
        return
    if not isinstance(node, dict):
        return
    if at == ("components", "schemas"):
        for name, schema in node.items():
            yield from walk_schema(schema, (*at, name))
        return
    if at == ("components", "examples"):
        return  # validated where they are used, against that place's schema
    if isinstance(node.get("schema"), dict):
        schema_at = (*at, "schema")
        if "example" in node:
            yield (*at, "example"), node["example"], schema_at
        for name, example in (node.get("examples") or {}).items():
            example, _ = resolve(spec, example)
            if "value" in example:
                yield (*at, "examples", name), example["value"], schema_at
        yield from walk_schema(node["schema"], schema_at)
    for key, value in node.items():
        if key not in ("schema", "example", "examples"):
            yield from walk_document(spec, value, (*at, key))


def find_examples(spec: dict[str, Any]) -> list[tuple[tuple[str, ...], Any, tuple[str, ...]]]:
    return list(walk_document(spec, spec, ()))


def format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()

    # jsonschema checks date-time only when rfc3339-validator is installed; check it ourselves (RFC 3339:
    # a "T" between date and time and an explicit offset).
    @checker.checks("date-time", raises=ValueError)
    def is_date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if "T" not in value.upper():
            raise ValueError(f"{value!r} has no 'T' between date and time")
        if dt.datetime.fromisoformat(value).tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset")
        return True

    return checker


def example_errors(spec: dict[str, Any], value: Any, schema_at: tuple[str, ...]) -> list[str]:
    registry = Registry().with_resource(
        "spec", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    validator = jsonschema.Draft202012Validator(
        {"$ref": "spec#" + pointer(*schema_at)}, registry=registry, format_checker=format_checker()
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator.iter_errors(value)
    ]


def lookup(node: dict[str, Any], key: str, spec: dict[str, Any]) -> Any:
    """The value of a keyword on a schema, looking through $ref and allOf."""
    node, _ = resolve(spec, node)
    if key in node:
        return node[key]
    for member in node.get("allOf") or []:
        found = lookup(member, key, spec)
        if found is not None:
            return found
    return None


def response_schemas(spec: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for method, path, operation in spec_operations(spec):
        for status, response in operation.get("responses", {}).items():
            response, _ = resolve(spec, response)
            for media_type, content in (response.get("content") or {}).items():
                if "schema" in content:
                    yield f"{method.upper()} {path} {status} {media_type}", content["schema"]


def id_properties(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every id / crmId property reachable from a response schema, with where it was found."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    seen: set[tuple[str, ...]] = set()

    def visit(schema: Any, where: str) -> None:
        schema, tokens = resolve(spec, schema)
        if tokens is not None:
            if tokens in seen:
                return
            seen.add(tokens)
            where = "#/" + "/".join(tokens)
        if not isinstance(schema, dict):
            return
        for name, sub in (schema.get("properties") or {}).items():
            if name in ID_PROPERTIES:
                found.setdefault(f"{where}/properties/{name}", (f"{where}/properties/{name}", sub))
        for keyword in SINGLE_SUBSCHEMA:
            if keyword in schema:
                visit(schema[keyword], f"{where}/{keyword}")
        for keyword in LIST_OF_SUBSCHEMAS:
            for index, sub in enumerate(schema.get(keyword) or []):
                visit(sub, f"{where}/{keyword}/{index}")
        for keyword in MAP_OF_SUBSCHEMAS:
            for name, sub in (schema.get(keyword) or {}).items():
                visit(sub, f"{where}/{keyword}/{name}")

    for where, schema in response_schemas(spec):
        visit(schema, where)
    return list(found.values())


SPEC = load_spec()
OPERATIONS = list(spec_operations(SPEC))
EXAMPLES = find_examples(SPEC)
ID_PROPS = id_properties(SPEC)


# --- the document as a whole -----------------------------------------------------------------------


def test_openapi_spec_validator_accepts_the_spec():
    validate(SPEC)


def test_the_spec_is_openapi_3_1():
    assert str(SPEC["openapi"]).startswith("3.1.")


@pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=[f"{m.upper()} {p}" for m, p, _ in OPERATIONS]
)
def test_operation_is_documented(method, path, operation):
    problems = []
    if not (isinstance(operation.get("operationId"), str) and operation["operationId"]):
        problems.append("no operationId")
    for field in ("summary", "description"):
        if not (isinstance(operation.get(field), str) and operation[field].strip()):
            problems.append(f"no {field}")
    tags = operation.get("tags")
    if not (isinstance(tags, list) and tags and all(isinstance(tag, str) and tag for tag in tags)):
        problems.append("no tags")
    else:
        declared = {tag["name"] for tag in SPEC.get("tags", [])}
        problems.extend(
            f"tag {tag!r} is not declared in the top-level tags" for tag in tags if tag not in declared
        )
    assert problems == []


# --- examples --------------------------------------------------------------------------------------


def test_the_spec_has_examples_to_check():
    assert len(EXAMPLES) > 0


@pytest.mark.parametrize(
    ("where", "value", "schema_at"), EXAMPLES, ids=["/".join(where) for where, _, _ in EXAMPLES]
)
def test_example_matches_its_schema(where, value, schema_at):
    assert example_errors(SPEC, value, schema_at) == [], f"example at #/{'/'.join(where)}"


def test_example_checker_finds_bad_examples():
    # The walker and validator above must catch a wrong example wherever it sits.
    spec = {
        "openapi": "3.1.0",
        "paths": {
            "/tasks/{taskId}": {
                "parameters": [{"name": "taskId", "in": "path", "schema": {"type": "string"}, "example": 7}],
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Task"},
                                "examples": {"bad": {"$ref": "#/components/examples/Bad"}},
                            }
                        }
                    },
                },
            }
        },
        "components": {
            "examples": {"Bad": {"value": {"id": ""}}},
            "schemas": {
                "Task": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "minLength": 1},
                        "dueDate": {"type": "string", "format": "date-time", "example": "2024-01-15"},
                    },
                }
            },
        },
    }
    failing = {"/".join(where) for where, value, at in find_examples(spec) if example_errors(spec, value, at)}
    assert failing == {
        "paths//tasks/{taskId}/parameters/0/example",
        "paths//tasks/{taskId}/post/requestBody/content/application/json/examples/bad",
        "components/schemas/Task/properties/dueDate/example",
    }


# --- security --------------------------------------------------------------------------------------


def api_key_schemes() -> set[str]:
    schemes = SPEC.get("components", {}).get("securitySchemes", {})
    return {
        name
        for name, scheme in schemes.items()
        if scheme.get("type") == "apiKey"
        and scheme.get("in") == "header"
        and str(scheme.get("name", "")).lower() == "x-api-key"
    }


def test_security_schemes_hold_an_api_key_in_the_x_api_key_header():
    assert api_key_schemes(), "components.securitySchemes has no apiKey scheme in header X-API-Key"


@pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=[f"{m.upper()} {p}" for m, p, _ in OPERATIONS]
)
def test_operation_requires_the_api_key(method, path, operation):
    known = set(SPEC.get("components", {}).get("securitySchemes", {}))
    effective = operation["security"] if "security" in operation else SPEC.get("security")
    assert effective, "neither the operation nor the document declares security"
    assert {} not in effective, "an empty security requirement makes the key optional"
    assert {name for requirement in effective for name in requirement} <= known
    assert all(set(requirement) & api_key_schemes() for requirement in effective)


def test_health_is_not_exempt_from_the_key():
    health = SPEC["paths"].get("/health", {}).get("get")
    assert health is not None, "the spec has no GET /health"
    assert health.get("security", SPEC.get("security")), "GET /health must require the key like the rest"


# --- ids -------------------------------------------------------------------------------------------


def test_response_schemas_have_id_properties_to_check():
    assert len(ID_PROPS) > 0


@pytest.mark.parametrize(("where", "schema"), ID_PROPS, ids=[where for where, _ in ID_PROPS])
def test_response_id_is_a_non_empty_string(where, schema):
    assert lookup(schema, "type", SPEC) == "string"
    min_length = lookup(schema, "minLength", SPEC)
    assert isinstance(min_length, int) and min_length >= 1
