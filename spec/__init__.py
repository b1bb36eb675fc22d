"""The Enginy Custom CRM API contract: the OpenAPI document and the rule catalogue.

The directory ``spec/`` is installed as the package ``enginy_spec``; ``openapi.yaml`` and ``rules.yaml``
ship inside it as package data, so ``OPENAPI_PATH`` and ``RULES_PATH`` work from any working directory
after ``pip install .`` (editable or not). Both files are read the way Schemathesis reads specs
(timestamps stay strings, only ``true``/``false`` are booleans, mapping keys stay strings), so
every consumer sees the same JSON-compatible document.

Errors::

    ValueError
    ├── CatalogueError        rules.yaml is malformed (the catalogue is wrong, not the API)
    └── SpecError             openapi.yaml lacks something this loader relies on
    LookupError
    └── KeyError
        └── UnknownRuleError  a rule id that the catalogue does not hold
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard, get_args

import yaml

__all__ = [
    "OPENAPI_PATH",
    "RULES_PATH",
    "TRAFFIC_PATH",
    "Catalogue",
    "CatalogueError",
    "JsonYamlLoader",
    "Level",
    "Operation",
    "Rule",
    "Source",
    "SpecError",
    "UnknownRuleError",
    "load_catalogue",
    "load_spec",
    "operations",
    "parse_catalogue",
    "version_line",
]

# Next to this module, not relative to the working directory. The package is not zip-safe (see
# pyproject.toml), so plain paths are enough: no importlib.resources.as_file() dance is needed.
_HERE = Path(__file__).parent
OPENAPI_PATH: Path = _HERE / "openapi.yaml"
RULES_PATH: Path = _HERE / "rules.yaml"
# The traffic model of `enginy-conformance load` (what Enginy sends, in what proportions).
TRAFFIC_PATH: Path = _HERE / "traffic.yaml"

Level = Literal["MUST", "SHOULD"]
_LEVELS: tuple[str, ...] = get_args(Level)
_RULE_ID = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")
_RULE_FIELDS = ("id", "level", "operations", "source", "statement")
_SOURCE_FIELDS = ("document", "quote")
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_CATALOGUE_VERSION = 1


class CatalogueError(ValueError):
    """rules.yaml (or a catalogue given to :func:`parse_catalogue`) is malformed."""


class SpecError(ValueError):
    """openapi.yaml cannot be read, or lacks something this loader relies on."""


class UnknownRuleError(KeyError):
    """One or more rule ids are not in the catalogue.

    ``unknown`` holds the ids that were asked for and are missing, in the order given.
    """

    def __init__(self, message: str, *, unknown: tuple[str, ...]) -> None:
        super().__init__(message)
        self.unknown = unknown

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return str(self.args[0])


@dataclass(frozen=True)
class Operation:
    """One operation of the OpenAPI document; ``method`` is upper-case, ``path`` is the template."""

    operation_id: str
    method: str
    path: str


@dataclass(frozen=True)
class Source:
    """Where a rule comes from: the document and the words in it that the rule rests on."""

    document: str
    quote: str


@dataclass(frozen=True)
class Rule:
    """One checkable statement about the API, tied to the operations it concerns and to its source.

    ``why`` is the reasoning behind the rule's level, where the catalogue gives one. ``fields`` names,
    per operationId, the request fields the rule is about (INPUT-MISSING-REQUIRED: the fields whose
    absence the documents make a refusal); use :meth:`fields_of` to read it.
    """

    id: str
    level: Level
    operations: tuple[str, ...]
    source: Source
    statement: str
    why: str | None = None
    fields: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def fields_of(self, operation_id: str) -> tuple[str, ...]:
        """The fields this rule names for one operation (an empty tuple when it names none)."""
        return next((names for op, names in self.fields if op == operation_id), ())


class Catalogue:
    """An immutable, ordered collection of rules with unique ids.

    Iteration yields :class:`Rule` objects in file order; ``in`` takes a rule id.
    """

    __slots__ = ("_by_id", "_rules")
    _by_id: dict[str, Rule]
    _rules: tuple[Rule, ...]

    def __init__(self, rules: Iterable[Rule]) -> None:
        by_id: dict[str, Rule] = {}
        for rule in rules:
            if rule.id in by_id:
                raise CatalogueError(f"Rule {rule.id} is defined twice; every 'id' must be unique.")
            by_id[rule.id] = rule
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_rules", tuple(by_id.values()))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Catalogue is immutable; cannot set {name!r}.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Catalogue is immutable; cannot delete {name!r}.")

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._by_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Catalogue):
            return NotImplemented
        return self._rules == other._rules

    def __hash__(self) -> int:
        return hash(self._rules)

    def __repr__(self) -> str:
        return f"<Catalogue of {len(self._rules)} rules>"

    @property
    def ids(self) -> tuple[str, ...]:
        """The rule ids, in catalogue order."""
        return tuple(self._by_id)

    def get(self, rule_id: str) -> Rule:
        """Return the rule with this id, or raise :class:`UnknownRuleError` suggesting close matches."""
        try:
            return self._by_id[rule_id]
        except KeyError:
            raise self._unknown([rule_id]) from None

    def select(self, ids: Iterable[str]) -> Catalogue:
        """Return the sub-catalogue holding these ids, in catalogue order (duplicates are ignored).

        Raises :class:`UnknownRuleError` naming every unknown id if any id is not in the catalogue.
        """
        wanted = list(dict.fromkeys(ids))
        unknown = [rule_id for rule_id in wanted if rule_id not in self._by_id]
        if unknown:
            raise self._unknown(unknown)
        chosen = set(wanted)
        return Catalogue(rule for rule in self._rules if rule.id in chosen)

    def for_operation(self, operation_id: str) -> tuple[Rule, ...]:
        """Return the rules that name this operationId (an empty tuple if none does)."""
        return tuple(rule for rule in self._rules if operation_id in rule.operations)

    def must(self) -> Catalogue:
        """Return the sub-catalogue of MUST rules."""
        return Catalogue(rule for rule in self._rules if rule.level == "MUST")

    def should(self) -> Catalogue:
        """Return the sub-catalogue of SHOULD rules."""
        return Catalogue(rule for rule in self._rules if rule.level == "SHOULD")

    def _unknown(self, unknown: list[str]) -> UnknownRuleError:
        parts = []
        for rule_id in unknown:
            matches = difflib.get_close_matches(rule_id, self._by_id, n=3)
            hint = f" (did you mean {', '.join(matches)}?)" if matches else ""
            parts.append(f"{rule_id}{hint}")
        noun = "rule id" if len(unknown) == 1 else "rule ids"
        message = f"Unknown {noun} {'; '.join(parts)}: the catalogue in rules.yaml has no such rule."
        return UnknownRuleError(message, unknown=tuple(unknown))


class JsonYamlLoader(yaml.SafeLoader):
    """SafeLoader that reads YAML the way Schemathesis reads specs, so data stays JSON-compatible.

    Timestamps stay strings and only true/false are booleans (YAML 1.2): YAML 1.1 would turn a
    `dueDate`, `no`, `on` or a country code into something JSON does not have. Subclass it to add
    constructors (the mock's scenario files note duplicate keys).
    """


class _Loader(JsonYamlLoader):
    """JsonYamlLoader whose mapping keys stay the strings written (the unquoted status code `200`)."""


JsonYamlLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool"}
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# YAML 1.2 booleans only: `on`, `off`, `yes` and `no` stay strings.
JsonYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    # Keys such as the unquoted status code `200` stay the strings written in the document.
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:str" or not isinstance(key_node, yaml.ScalarNode):
            key = loader.construct_object(key_node, deep=True)
        else:
            key = key_node.value
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader subclass


@functools.cache
def load_spec() -> dict[str, Any]:
    """Parse ``openapi.yaml`` once and return the document.

    The same dict is returned on every call, so callers must not mutate it; take
    ``copy.deepcopy(load_spec())`` first when you need to change something (for example to
    point ``servers`` elsewhere or to inject a bug into a test copy).
    """
    try:
        document = _read_yaml(OPENAPI_PATH.read_text(encoding="utf-8"))
    except OSError as ex:
        raise SpecError(
            f"Cannot read {OPENAPI_PATH}; reinstall the package so it ships openapi.yaml."
        ) from ex
    except yaml.YAMLError as ex:
        raise SpecError(f"{OPENAPI_PATH} is not valid YAML; fix the syntax error shown above.") from ex
    if not isinstance(document, dict):
        raise SpecError(
            f"{OPENAPI_PATH} does not hold a mapping at the top level, so it is no OpenAPI document."
        )
    return document


def operations() -> dict[str, Operation]:
    """Return every operation of the spec, keyed by operationId, in document order.

    Path-level keys that are not HTTP methods (``parameters``, ``summary``, ...) are ignored. Raises
    :class:`SpecError` if an operation has no operationId or two operations share one.
    """
    found: dict[str, Operation] = {}
    for path, item in (load_spec().get("paths") or {}).items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            label = f"{method.upper()} {path}"
            operation_id = operation.get("operationId")
            if not isinstance(operation_id, str) or not operation_id:
                raise SpecError(f"{label} in openapi.yaml has no operationId; give every operation one.")
            if operation_id in found:
                other = found[operation_id]
                raise SpecError(
                    f"{label} reuses operationId {operation_id} of {other.method} {other.path}; "
                    "operationIds must be unique."
                )
            found[operation_id] = Operation(operation_id=operation_id, method=method.upper(), path=path)
    return found


def _is_level(value: str) -> TypeGuard[Level]:
    return value in _LEVELS


def _text(raw: Mapping[str, Any], field: str, where: str, *, label: str | None = None) -> str:
    name = label or field
    if field not in raw:
        raise CatalogueError(f"{where} has no '{name}' field.")
    value = raw[field]
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where} has a '{name}' field that is not a non-empty string.")
    return value


def _parse_rule(raw: object, index: int) -> Rule:
    if not isinstance(raw, Mapping):
        raise CatalogueError(f"Rule #{index} in rules.yaml is not a mapping of {', '.join(_RULE_FIELDS)}.")
    rule_id = raw.get("id")
    where = f"Rule {rule_id}" if isinstance(rule_id, str) and rule_id else f"Rule #{index} in rules.yaml"
    rule_id = _text(raw, "id", where)
    if not _RULE_ID.match(rule_id):
        raise CatalogueError(
            f"{where} has an 'id' that does not match {_RULE_ID.pattern} (upper-case words joined by '-')."
        )
    level = _text(raw, "level", where)
    if not _is_level(level):
        raise CatalogueError(f"{where} has 'level' {level!r}, which is neither MUST nor SHOULD.")
    if "operations" not in raw:
        raise CatalogueError(f"{where} has no 'operations' field.")
    ops = raw["operations"]
    if not isinstance(ops, list) or not all(isinstance(op, str) and op for op in ops):
        raise CatalogueError(f"{where} has an 'operations' field that is not a list of operationIds.")
    if not ops:
        raise CatalogueError(f"{where} has an empty 'operations' list; name at least one operationId.")
    if "source" not in raw:
        raise CatalogueError(f"{where} has no 'source' field.")
    source = raw["source"]
    if not isinstance(source, Mapping):
        raise CatalogueError(f"{where} has a 'source' field that is not a mapping of document and quote.")
    document, quote = (_text(source, field, where, label=f"source.{field}") for field in _SOURCE_FIELDS)
    statement = _text(raw, "statement", where)
    why = _text(raw, "why", where) if "why" in raw else None
    return Rule(
        id=rule_id,
        level=level,
        operations=tuple(ops),
        source=Source(document=document, quote=quote),
        statement=statement,
        why=why,
        fields=_fields(raw, where, ops),
    )


def _fields(raw: Mapping[str, Any], where: str, ops: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if "fields" not in raw:
        return ()
    value = raw["fields"]
    if not isinstance(value, Mapping) or not all(
        isinstance(names, list) and names and all(isinstance(name, str) and name for name in names)
        for names in value.values()
    ):
        raise CatalogueError(
            f"{where} has a 'fields' field that is not a mapping of operationId to field names."
        )
    strangers = [op for op in value if op not in ops]
    if strangers:
        raise CatalogueError(
            f"{where} names fields of {', '.join(map(str, strangers))}, which its 'operations' do not list."
        )
    return tuple((str(op), tuple(names)) for op, names in value.items())


def parse_catalogue(source: str | Mapping[str, Any]) -> Catalogue:
    """Build a catalogue from rules.yaml text or from the mapping it parses to.

    Raises :class:`CatalogueError` with a one-sentence message naming the rule and the field at fault.
    """
    if isinstance(source, str):
        try:
            document = _read_yaml(source)
        except yaml.YAMLError as ex:
            raise CatalogueError(
                "The rule catalogue is not valid YAML; fix the syntax error shown above."
            ) from ex
    else:
        document = source
    if not isinstance(document, Mapping):
        raise CatalogueError("The rule catalogue is not a mapping with 'version' and 'rules' keys.")
    version = document.get("version")
    if version != _CATALOGUE_VERSION:
        raise CatalogueError(f"The rule catalogue has version {version!r}; this loader reads version 1.")
    rules = document.get("rules")
    if not isinstance(rules, list):
        raise CatalogueError("The rule catalogue has no 'rules' list.")
    return Catalogue(_parse_rule(raw, index) for index, raw in enumerate(rules, start=1))


@functools.cache
def load_catalogue() -> Catalogue:
    """Parse ``rules.yaml`` once and return the (immutable) catalogue."""
    try:
        text = RULES_PATH.read_text(encoding="utf-8")
    except OSError as ex:
        raise CatalogueError(
            f"Cannot read {RULES_PATH}; reinstall the package so it ships rules.yaml."
        ) from ex
    return parse_catalogue(text)


def version_line(program: str) -> str:
    """What `--version` prints for both commands: the package, the contract it speaks, and the
    Schemathesis it was tested with (a support ticket needs all three)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    rules = load_catalogue()
    musts = sum(1 for rule in rules if rule.level == "MUST")
    spec = load_spec()["info"]["version"]
    return (
        f"{program} {installed('enginy-crm-contract')} (spec {spec}, {len(rules)} rules: {musts} MUST, "
        f"{len(rules) - musts} SHOULD; schemathesis {installed('schemathesis')})"
    )
