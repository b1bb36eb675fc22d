"""Strict JSON parsing of hostile bodies."""

from __future__ import annotations

import json

import pytest

from mock_server.bodies import MAX_DEPTH, dumps, parse_json
from mock_server.errors import MalformedBody


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "A JSON body is required."),
        (b"  \n ", "A JSON body is required."),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": -Infinity}', "-Infinity is not valid JSON"),
        (b'{"a": 1e999}', "too large"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"a": 1,}', "not valid JSON"),
        (b"{'a': 1}", "not valid JSON"),
        (b"[" * 100_000, f"nested more than {MAX_DEPTH} levels"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} levels"),
        (b'{"a":"\x00"}', "not valid JSON"),
    ],
    ids=lambda value: repr(value)[:30] if isinstance(value, bytes) else None,
)
def test_hostile_bodies_are_malformed(raw, message):
    with pytest.raises(MalformedBody, match=message):
        parse_json(raw)


def test_nesting_up_to_the_limit_is_fine():
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


def test_escaped_nul_and_lone_surrogates_parse_and_serialise_safely():
    value = parse_json(b'{"a": "\\u0000", "b": "\\ud800"}')
    assert value == {"a": "\x00", "b": "\ud800"}
    assert json.loads(dumps(value)) == value  # orjson refuses the surrogate; json writes it escaped
    assert dumps(value) == b'{"a":"\\u0000","b":"\\ud800"}'


def test_answers_are_compact_utf8_json_and_what_orjson_refuses_is_still_written():
    assert (
        dumps({"name": "Zoë", "n": [1, 2.5, None, True]}) == '{"name":"Zoë","n":[1,2.5,null,true]}'.encode()
    )
    assert json.loads(dumps({"big": 2**70})) == {"big": 2**70}


def test_a_byte_order_mark_is_named_as_the_mistake():
    with pytest.raises(MalformedBody, match="Unexpected UTF-8 BOM"):
        parse_json("\ufeff{}".encode())
