"""Scenario files: one YAML file describing a customer's server, so a reproduction is shared as a file.

``load_scenario(path)`` reads and checks the file against ``scenario.schema.json`` (shipped next to
this module) and then against what the schema cannot know: fault ids and their parameters, and
each seeded record against the spec's component schemas. Every mistake is collected, so one run
lists them all, one line each, as ``FILE: LOCATION: problem`` (``LOCATION`` like
``faults[1]`` or ``records.tasks[0]``); ``ScenarioError.problems`` holds the lines.

The file never holds API keys or the admin token (they would travel with the file): the schema
refuses such fields with a message pointing at ``--api-key``. What a field maps to, and the
precedence of command line and environment over the file, is in docs/scenarios.md.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jsonschema
import yaml

from enginy_spec import JsonYamlLoader
from mock_server.admin import seed_record_problem
from mock_server.errors import FaultSpecError, MisconfigurationError
from mock_server.faults import FAULTS, FaultSelection, parse_fault
from mock_server.storage import KINDS, Kind
from mock_server.validation import Validators

__all__ = ["SCENARIO_SCHEMA_PATH", "Scenario", "ScenarioError", "load_scenario", "parse_scenario"]

SCENARIO_SCHEMA_PATH = Path(__file__).parent / "scenario.schema.json"

# Fields people reach for when they want the file to carry credentials; refused with a pointer.
_SECRET_FIELDS = frozenset(
    {"api_key", "api_keys", "api-key", "apikey", "key", "keys", "admin_token", "token", "secret", "password"}
)
_SECRET_ADVICE = (
    "keys do not belong in a scenario file, which is meant to be shared; pass --api-key KEY "
    "(or set ENGINY_API_KEY) and --admin-token when starting the mock"
)
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "null": "empty",
}


class ScenarioError(MisconfigurationError):
    """A scenario file that cannot be read or has mistakes; ``problems`` has one line per mistake."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """What a scenario file sets; None means "not in the file" (the mock's default or a flag decides)."""

    source: str
    description: str | None = None
    api_key_header: str | None = None
    fault_specs: tuple[str, ...] | None = None
    fault_seed: int | None = None
    seed_data: Mapping[str, Any] | None = None
    users_enabled: bool | None = None
    max_body_bytes: int | None = None

    def settings(self) -> dict[str, Any]:
        """The ``MockConfig`` fields this file sets (``fault_specs`` included), by name."""
        fields = {
            "api_key_header": self.api_key_header,
            "fault_specs": self.fault_specs,
            "fault_seed": self.fault_seed,
            "seed_data": self.seed_data,
            "users_enabled": self.users_enabled,
            "max_body_bytes": self.max_body_bytes,
        }
        return {name: value for name, value in fields.items() if value is not None}


# --- reading YAML ----------------------------------------------------------------------------------


class _Loader(JsonYamlLoader):
    """The spec's JSON-compatible YAML, with duplicate keys noted (PyYAML keeps the last silently).

    Timestamps stay strings (dueDate must reach the spec's validator as the text the author wrote)
    and only true/false are booleans: YAML 1.1 would turn ``no``, ``on`` or a country code into one.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, int]] = []


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            key = str(key)
        if key in mapping:
            loader.duplicates.append((str(key), key_node.start_mark.line + 1))
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _read_yaml(text: str, source: str) -> Any:
    loader = _Loader(text)
    try:
        document = loader.get_single_data()
    except yaml.MarkedYAMLError as ex:
        mark = ex.problem_mark or ex.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "YAML"
        problem = " ".join(str(ex.problem or ex.context or "not valid YAML").split())
        raise ScenarioError([f"{source}: {where}: {problem}"]) from None  # the YAML traceback is noise
    except yaml.YAMLError as ex:
        raise ScenarioError([f"{source}: not valid YAML: {' '.join(str(ex).split())}"]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ScenarioError(
            [
                f"{source}: line {line}: key {key!r} appears twice (YAML would silently keep the last)"
                for key, line in loader.duplicates
            ]
        )
    return document


# --- checking --------------------------------------------------------------------------------------


@functools.cache
def _schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCENARIO_SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _where(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _join(path: Sequence[str | int], name: str) -> str:
    return _where([*path, name])


def _type_of(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true or false"
    for python_type, name in ((int, "integer"), (float, "number"), (str, "string"), (list, "array")):
        if isinstance(value, python_type):
            return _TYPE_NAMES[name]
    return _TYPE_NAMES["object"] if isinstance(value, dict) else type(value).__name__


def _suggest(name: str, choices: Iterable[str], *, fold: bool = False) -> str:
    """`` (did you mean X?)`` for the closest choice, or nothing; ``fold`` ignores case."""
    options = {(choice.upper() if fold else choice): choice for choice in choices}
    matches = difflib.get_close_matches(name.upper() if fold else name, list(options), n=1, cutoff=0.6)
    return f" (did you mean {options[matches[0]]}?)" if matches else ""


def _schema_problems(error: jsonschema.ValidationError) -> list[tuple[list[str | int], str]]:
    """(path, message) for one schema error; additionalProperties yields one per extra field."""
    path: list[str | int] = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    keyword = error.validator
    value: Any = error.validator_value
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}))
        problems: list[tuple[list[str | int], str]] = []
        for name in instance:
            if name in known:
                continue
            field_path: list[str | int] = [*path, str(name)]
            if not path and str(name).lower() in _SECRET_FIELDS:
                problems.append((field_path, _SECRET_ADVICE))
            elif path == ["records"] and name == "users":
                problems.append((field_path, "users go at the top level (users: [...], or users: false)"))
            elif path == ["records"]:
                kinds = ", ".join(kind for kind in KINDS if kind != "users")
                hint = _suggest(str(name), known) or f"; the kinds are {kinds}"
                problems.append((field_path, f"unknown kind {name!r}{hint}"))
            else:
                hint = _suggest(str(name), known) or f"; the fields here are {', '.join(known)}"
                problems.append((field_path, f"unknown field{hint}"))
        return problems
    if keyword == "required" and isinstance(instance, dict):
        missing = [name for name in value if name not in instance]
        advice = " (write version: 1 at the top)" if not path and "version" in missing else ""
        return [([*path, name], f"is required{advice}") for name in missing]
    if keyword == "type":
        wanted: list[str] = value if isinstance(value, list) else [value]
        expected = " or ".join(_TYPE_NAMES.get(name, name) for name in wanted)
        return [(path, f"must be {expected}, not {_type_of(instance)}")]
    if keyword == "const":
        return [(path, f"must be {json.dumps(value)}")]
    if keyword == "minimum":
        return [(path, f"must be at least {value}")]
    if keyword == "minLength":
        return [(path, "must not be empty")]
    if keyword == "pattern" and "x-error" in schema:
        return [(path, f"{instance!r} {schema['x-error']}")]
    return [(path, error.message)]


def _parse_fault_entry(entry: str | Mapping[str, Any]) -> FaultSelection:
    """Raise FaultSpecError (with the mock's own sentence) for a bad id or bad parameters."""
    if isinstance(entry, str):
        fault_id, _, params = entry.strip().partition(":")
        text = entry
    else:
        fault_id = str(entry["id"])
        values = entry.get("params") or {}
        params = ",".join(f"{name}={value}" for name, value in values.items())
        text = f"{fault_id}:{params}" if params else fault_id
    if fault_id.strip() not in FAULTS:
        folded = {known.casefold(): known for known in FAULTS.ids}
        if fault_id.strip().casefold() not in folded:
            # Ids are matched case-insensitively (TASK-GET, latency), so suggest that way too.
            hint = _suggest(fault_id.strip(), FAULTS.ids, fold=True)
            raise FaultSpecError(
                f"unknown fault {fault_id.strip()!r}" + (hint or " (enginy-mock --list-faults lists them)")
            )
    return parse_fault(text)


def _fault_sentence(ex: FaultSpecError) -> str:
    """The mock's sentence ("Fault latency: ms must be ...") reworded to follow a location."""
    text = str(ex).rstrip(".")
    found = re.match(r"^Fault ([^:\s]+): (.*)$", text)
    if found:
        return f"{found.group(1)}: {found.group(2)}"
    return text[:1].lower() + text[1:]


_Problems = list[tuple[list[str | int], str]]


def _check_faults(document: Mapping[str, Any], broken: Callable[..., bool]) -> tuple[_Problems, list[str]]:
    """Fault ids and parameters (the schema only knows their shape), duplicates, and latency."""
    problems: _Problems = []
    specs: list[str] = []
    seen: dict[str, int] = {}
    entries = document.get("faults")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if broken("faults", index):
            continue
        try:
            selection = _parse_fault_entry(entry)
        except FaultSpecError as ex:
            problems.append((["faults", index], _fault_sentence(ex)))
            continue
        fault_id = selection.fault.id
        if fault_id in seen:
            problems.append((["faults", index], f"{fault_id} is already listed at faults[{seen[fault_id]}]"))
            continue
        seen[fault_id] = index
        specs.append(str(selection))
    latency = document.get("latency")
    if latency is not None and not broken("latency"):
        if "latency" in seen:
            problems.append(
                (["latency"], f"the latency fault is already listed at faults[{seen['latency']}]; keep one")
            )
        else:
            params = {"ms": latency} if isinstance(latency, int) else latency
            try:
                specs.append(str(_parse_fault_entry({"id": "latency", "params": params})))
            except FaultSpecError as ex:
                problems.append((["latency"], _fault_sentence(ex)))
    return problems, specs


def _check_records(
    document: Mapping[str, Any], validators: Validators, broken: Callable[..., bool]
) -> _Problems:
    """Every seeded record against the spec's component schema for its kind."""
    problems: _Problems = []
    groups: list[tuple[list[str | int], Kind, object]] = []
    records = document.get("records")
    if isinstance(records, dict):
        groups += [(["records", kind], kind, records.get(kind)) for kind in KINDS if kind != "users"]
    groups.append((["users"], "users", document.get("users")))
    for path, kind, items in groups:
        for index, item in enumerate(items if isinstance(items, list) else []):
            if not broken(*path, index):
                problem = seed_record_problem(kind, item, validators)
                if problem is not None:
                    problems.append(([*path, index], problem.rstrip(".")))
    return problems


def _position(document: Any, path: Sequence[str | int]) -> tuple[int, ...]:
    """Where a path sits in the file, so that problems are listed top to bottom."""
    positions: list[int] = []
    node = document
    for part in path:
        if isinstance(node, dict) and part in node:
            positions.append(list(node).index(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            positions.append(part)
            node = node[part]
        else:
            positions.append(10**9)  # a missing field: after its siblings
            break
    return tuple(positions)


def parse_scenario(document: Any, *, source: str, validators: Validators | None = None) -> Scenario:
    """Check a parsed scenario document; raise ScenarioError listing every mistake."""
    if document is None:
        raise ScenarioError([f"{source}: the file is empty; a scenario starts with version: 1"])
    problems: _Problems = []
    for error in _schema_validator().iter_errors(document):
        problems += _schema_problems(error)
    schema_paths = [tuple(path) for path, _ in problems]

    def broken(*path: str | int) -> bool:
        """Did the schema already find a mistake at or inside this path? Then say nothing more."""
        return any(found[: len(path)] == path or path[: len(found)] == found for found in schema_paths)

    specs: list[str] = []
    if isinstance(document, dict):
        fault_problems, specs = _check_faults(document, broken)
        problems += fault_problems
        problems += _check_records(document, validators or Validators(), broken)
    if problems:
        unique = list(dict.fromkeys((tuple(path), message) for path, message in problems))
        unique.sort(key=lambda problem: _position(document, problem[0]))
        raise ScenarioError(
            [
                f"{source}: {_where(path)}: {message}" if path else f"{source}: {message}"
                for path, message in unique
            ]
        )
    return _build(cast(dict[str, Any], document), source, specs)


def _build(document: dict[str, Any], source: str, fault_specs: list[str]) -> Scenario:
    users = document.get("users")
    seed: dict[str, Any] | None = None
    if "records" in document or isinstance(users, list):
        seed = dict(document.get("records") or {})
        if isinstance(users, list):
            seed["users"] = users
    return Scenario(
        source=source,
        description=document.get("description"),
        api_key_header=document.get("api_key_header"),
        fault_specs=tuple(fault_specs) if "faults" in document or "latency" in document else None,
        fault_seed=document.get("fault_seed"),
        seed_data=seed,
        users_enabled=None if users is None else users is not False,
        max_body_bytes=document.get("max_body_bytes"),
    )


def load_scenario(path: Path, *, validators: Validators | None = None) -> Scenario:
    """Read and check a scenario file; raise ScenarioError (one line per mistake, naming the file)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as ex:
        raise ScenarioError([f"{source}: cannot read the file: {ex.strerror or ex}"]) from ex
    except UnicodeDecodeError as ex:
        raise ScenarioError([f"{source}: not UTF-8 text (byte {ex.start})"]) from ex
    return parse_scenario(_read_yaml(text, source), source=source, validators=validators)
