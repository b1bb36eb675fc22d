"""The Rust validator (jsonschema_rs) gives every verdict the Python one (jsonschema) gives.

The mock asks jsonschema_rs whether a body is valid and jsonschema only why it is not, so a body the
two judged differently would be accepted unchecked or refused without a message. Each instance below
is judged by both against every schema the mock compiles (request bodies, path parameters, seed
components): the spec's own examples, every body of the hostile corpus the mock would validate, and
a few thousand bodies generated from the spec's schemas with a fixed seed, most of them one mistake
away from valid (a wrong type, a near-miss date-time, an empty id, an unknown enum value).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from enginy_spec import load_spec
from mock_server.bodies import parse_json
from mock_server.config import DEFAULT_MAX_BODY_BYTES
from mock_server.errors import MalformedBody
from mock_server.validation import Schema, Validators
from tests.mock_server.test_serving import CORPUS

SPEC = load_spec()


@pytest.fixture(scope="module")
def schemas() -> dict[str, Schema]:
    return Validators().compiled()


def _disagreements(schemas: Mapping[str, Schema], instance: object) -> list[str]:
    found = []
    for label, schema in schemas.items():
        python = bool(schema.full.is_valid(instance))
        rust = schema.is_valid(instance)
        if python != rust:
            found.append(f"{label}: jsonschema says {python}, jsonschema_rs {rust} for {instance!r:.200}")
    return found


def _examples(node: object) -> Iterator[object]:
    """Every example value in the spec: ``example``, ``examples: {name: {value}}``, ``examples: [...]``."""
    if isinstance(node, dict):
        if "example" in node:
            yield node["example"]
        examples = node.get("examples")
        if isinstance(examples, dict):
            yield from (item["value"] for item in examples.values() if "value" in item)
        elif isinstance(examples, list):
            yield from examples
        for value in node.values():
            yield from _examples(value)
    elif isinstance(node, list):
        for value in node:
            yield from _examples(value)


def test_the_spec_examples_get_one_verdict(schemas):
    examples = list(_examples(SPEC))
    assert len(examples) >= 20
    verdicts = set()
    for example in examples:
        assert not _disagreements(schemas, example)
        verdicts.update(schema.is_valid(example) for schema in schemas.values())
    assert verdicts == {True, False}  # each example fits its own schema and breaks most others


def _corpus_bodies() -> list[object]:
    """The hostile corpus's bodies that reach validation (parsed, within the body limit)."""
    bodies = []
    for _, data in CORPUS:
        body = data.partition(b"\r\n\r\n")[2]
        if not body or len(body) > DEFAULT_MAX_BODY_BYTES:
            continue  # nothing to validate, or answered 413 before anything is parsed
        try:
            bodies.append(parse_json(body))
        except MalformedBody:
            continue
    return bodies


def test_the_hostile_corpus_gets_one_verdict(schemas):
    bodies = _corpus_bodies()
    assert len(bodies) >= 5
    for body in bodies:
        assert not _disagreements(schemas, body)


def test_a_string_rust_cannot_hold_is_judged_by_python(schemas):
    # A JSON escape can smuggle a lone surrogate in; jsonschema_rs refuses to convert it.
    task_create = schemas["component TaskCreate"]
    assert task_create.is_valid({"subject": "x", "\ud800": 1})
    assert not task_create.is_valid({"subject": 5, "\ud800": 1})
    assert not task_create.is_valid({"subject": "x", "dueDate": "\ud800"})


# --- generated bodies ------------------------------------------------------------------------------
# A seeded walk of the spec's schemas rather than Hypothesis strategies: the same near-misses at about
# a hundredth of the cost (Hypothesis took 12 s for these 3,000 bodies on the 2-core box; this, 0.1 s).

NEAR_DATE_TIMES = (
    "2024-01-15T10:00:00Z",
    "2024-01-15t10:00:00z",
    "2024-01-15T10:00:00.123+05:30",
    "2016-12-31T23:59:60Z",
    "2024-02-29T00:00:00-00:00",
    "2023-02-29T00:00:00Z",
    "2024-01-15",
    "2024-01-15T10:00:00",
    "2024-01-15 10:00:00Z",
    "2024-01-15T24:00:00Z",
    "2024-01-15T10:60:00Z",
    "2024-01-15T10:00:00+24:00",
    "2024-01-15T10:00:00+0100",
    "2024-13-01T00:00:00Z",
    "",
    "tomorrow",
)
TEXT = ("", "a", "call", "Ünïcode ✓", "task-1", "\x00", " ", "123", "null", "true")


def _wild(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, small."""
    roll = rng.randrange(9 if depth < 2 else 7)
    if roll == 0:
        return None
    if roll == 1:
        return rng.random() < 0.5
    if roll == 2:
        return rng.choice([0, -1, 1, 2**31, -(2**63), 2**64, 2**70])
    if roll == 3:
        return rng.choice([0.0, -0.5, 1.5, 1e300, -1e-300])
    if roll == 4:
        return rng.choice(TEXT)
    if roll in {5, 6}:
        return rng.choice(NEAR_DATE_TIMES)
    if roll == 7:
        return [_wild(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(TEXT): _wild(rng, depth + 1) for _ in range(rng.randrange(3))}


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        node: Any = SPEC
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
    return schema


def _near(rng: random.Random, schema: Mapping[str, Any], depth: int = 0) -> Any:
    """An instance shaped by the schema, where each node is now and then any JSON value at all."""
    if rng.random() < 0.04 or depth > 5:
        return _wild(rng)
    schema = _resolve(schema)
    if "enum" in schema:
        return rng.choice(schema["enum"]) if rng.random() < 0.9 else rng.choice(TEXT)
    kinds = schema.get("type")
    kind = next((k for k in kinds if k != "null"), "null") if isinstance(kinds, list) else kinds
    if isinstance(kinds, list) and "null" in kinds and rng.random() < 0.2:
        return None
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        instance = {
            name: _near(rng, sub, depth + 1)
            for name, sub in properties.items()
            if (name in required and rng.random() < 0.97) or rng.random() < 0.4
        }
        if rng.random() < 0.1:
            instance[rng.choice(TEXT)] = _wild(rng)
        return instance
    if kind == "array":
        return [_near(rng, schema.get("items", {}), depth + 1) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
    if kind == "string":
        if schema.get("format") == "date-time":
            return rng.choice(NEAR_DATE_TIMES[:6]) if rng.random() < 0.6 else rng.choice(NEAR_DATE_TIMES)
        least = int(schema.get("minLength", 0))
        return rng.choice(TEXT[1:] if least and rng.random() < 0.9 else TEXT)
    if kind in {"number", "integer"}:
        low = schema.get("minimum", 0)
        return rng.choice([low, low + 1, low + 0.5, low - 1, 10**6, 2**64])
    if kind == "boolean":
        return rng.random() < 0.5
    return _wild(rng)


def _body_schemas() -> dict[str, Mapping[str, Any]]:
    return {
        operation["operationId"]: operation["requestBody"]["content"]["application/json"]["schema"]
        for item in SPEC["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "requestBody" in operation
    }


GENERATED_PER_OPERATION = 250  # x 12 request bodies = 3,000 bodies


def test_generated_bodies_get_one_verdict(schemas):
    """Each body against its own operation's schema and the seed components (the ones it may resemble)."""
    rng = random.Random(20261203)
    components = {name: schema for name, schema in schemas.items() if name.startswith("component ")}
    verdicts: list[bool] = []
    for operation_id, body_schema in _body_schemas().items():
        own = schemas[f"body {operation_id}"]
        for _ in range(GENERATED_PER_OPERATION):
            body = _near(rng, body_schema)
            assert not _disagreements({f"body {operation_id}": own, **components}, body)
            verdicts.append(own.is_valid(body))
    assert len(verdicts) == 12 * GENERATED_PER_OPERATION
    # Not a one-sided sample: plenty of bodies on each side of the line.
    assert 0.2 < sum(verdicts) / len(verdicts) < 0.8
