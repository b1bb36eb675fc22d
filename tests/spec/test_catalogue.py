"""The rule catalogue loader: its public surface, its refusals, and the real rules.yaml against the spec."""

from __future__ import annotations

import ast
import copy
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

import enginy_spec
from enginy_spec import (
    Catalogue,
    CatalogueError,
    Rule,
    Source,
    UnknownRuleError,
    load_catalogue,
    load_spec,
    operations,
    parse_catalogue,
)

GOOD_RULE: dict[str, Any] = {
    "id": "TASK-BATCH-GET-OMITS-UNKNOWN",
    "level": "MUST",
    "operations": ["getTasksBatch"],
    "source": {
        "document": "Tasks API (seeds/003), Get Tasks Batch",
        "quote": "If a task ID doesn't exist, simply omit it from the response array.",
    },
    "statement": "POST /tasks/batch with known and unknown ids answers 200 with only the known tasks.",
}


def catalogue_of(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "rules": [copy.deepcopy(rule) for rule in rules]}


def rule(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(GOOD_RULE), **changes}


def without(field: str) -> dict[str, Any]:
    raw = copy.deepcopy(GOOD_RULE)
    if field.startswith("source."):
        del raw["source"][field.removeprefix("source.")]
    else:
        del raw[field]
    return raw


# --- public surface --------------------------------------------------------------------------------


def test_all_lists_exactly_the_public_names():
    tree = ast.parse(Path(enginy_spec.__file__).read_text())
    defined: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    public = {name for name in defined if not name.startswith("_")}
    assert sorted(enginy_spec.__all__) == sorted(public)
    assert len(enginy_spec.__all__) == len(set(enginy_spec.__all__))


def test_paths_point_next_to_the_module():
    here = Path(enginy_spec.__file__).parent
    assert here / "openapi.yaml" == enginy_spec.OPENAPI_PATH
    assert here / "rules.yaml" == enginy_spec.RULES_PATH
    assert enginy_spec.OPENAPI_PATH.is_file()
    assert enginy_spec.RULES_PATH.is_file()
    assert here / "traffic.yaml" == enginy_spec.TRAFFIC_PATH and enginy_spec.TRAFFIC_PATH.is_file()
    assert (here / "py.typed").is_file()


def test_load_spec_and_load_catalogue_are_cached():
    assert load_spec() is load_spec()
    assert load_catalogue() is load_catalogue()


def test_unknown_rule_error_is_a_lookup_error_with_a_plain_message():
    assert issubclass(UnknownRuleError, KeyError)
    assert issubclass(UnknownRuleError, LookupError)
    assert issubclass(CatalogueError, ValueError)
    error = UnknownRuleError("Unknown rule id X.", unknown=("X",))
    assert str(error) == "Unknown rule id X."


# --- the real rules.yaml ---------------------------------------------------------------------------


def test_real_catalogue_loads():
    catalogue = load_catalogue()
    assert len(catalogue) > 0
    assert all(isinstance(item, Rule) for item in catalogue)
    assert all(isinstance(item.source, Source) for item in catalogue)


def test_every_real_rule_is_must_or_should():
    levels = {item.id: item.level for item in load_catalogue()}
    assert {rule_id: level for rule_id, level in levels.items() if level not in ("MUST", "SHOULD")} == {}


def test_real_rule_ids_are_unique():
    # Catalogue() refuses duplicates; re-parse the file as plain YAML so a duplicate can't hide.
    raw_ids = [raw["id"] for raw in enginy_spec._read_yaml(enginy_spec.RULES_PATH.read_text())["rules"]]
    duplicates = sorted({rule_id for rule_id in raw_ids if raw_ids.count(rule_id) > 1})
    assert duplicates == []
    assert list(load_catalogue().ids) == raw_ids


def test_every_operation_named_by_a_rule_exists_in_the_spec():
    known = set(operations())
    named = {(item.id, op) for item in load_catalogue() for op in item.operations}
    unknown = sorted(f"{rule_id}: {op}" for rule_id, op in named if op not in known)
    assert unknown == [], "rules name operationIds that spec/openapi.yaml does not define"


def test_a_must_rule_never_rests_on_the_references_own_lists_alone():
    # §14 is the reference's list of testable behaviours and §15 its list of what the docs leave open:
    # neither is a sentence of the documents requiring anything, so a MUST needs another source too.
    alone = [
        item.id
        for item in load_catalogue()
        if item.level == "MUST"
        and re.fullmatch(r"Reference §1[45](, rule \d+| and §1[45]|\.\d+)*", item.source.document)
    ]
    assert alone == []


def test_every_reasoned_level_says_something():
    for item in load_catalogue():
        assert item.why is None or len(item.why.split()) >= 12, item.id


def test_the_must_reject_fields_are_ones_the_request_schemas_require():
    from conformance.checks import SpecSchemas

    schemas = SpecSchemas()
    rule = load_catalogue().get("INPUT-MISSING-REQUIRED")
    assert rule.fields
    for operation, names in rule.fields:
        schema = schemas.request_schema(operation)
        assert schema is not None and set(names) <= set(schema.get("required", [])), operation


def test_every_operation_of_the_spec_has_a_rule():
    covered = {op for item in load_catalogue() for op in item.operations}
    uncovered = sorted(set(operations()) - covered)
    assert uncovered == [], "operations of spec/openapi.yaml that no rule in spec/rules.yaml names"


def test_operations_are_read_from_the_spec_paths():
    ops = operations()
    assert ops, "the spec defines no operations"
    paths = load_spec()["paths"]
    for operation_id, op in ops.items():
        assert op.operation_id == operation_id
        assert op.method == op.method.upper()
        assert paths[op.path][op.method.lower()]["operationId"] == operation_id
    expected = sum(
        1
        for item in paths.values()
        for key in item
        if key in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    )
    assert len(ops) == expected


def test_for_operation_returns_the_rules_naming_it():
    catalogue = load_catalogue()
    for operation_id in operations():
        found = catalogue.for_operation(operation_id)
        assert all(operation_id in item.operations for item in found)
        assert {item.id for item in found} == {
            item.id for item in catalogue if operation_id in item.operations
        }
    assert catalogue.for_operation("noSuchOperation") == ()


# --- Catalogue behaviour ---------------------------------------------------------------------------


def test_catalogue_is_a_read_only_sequence_of_rules():
    catalogue = parse_catalogue(
        catalogue_of(rule(), rule(id="TASK-OTHER", level="SHOULD", operations=["getTask", "updateTask"]))
    )
    assert len(catalogue) == 2
    assert [item.id for item in catalogue] == ["TASK-BATCH-GET-OMITS-UNKNOWN", "TASK-OTHER"]
    assert catalogue.ids == ("TASK-BATCH-GET-OMITS-UNKNOWN", "TASK-OTHER")
    assert "TASK-OTHER" in catalogue
    assert "TASK-NOPE" not in catalogue
    other = catalogue.get("TASK-OTHER")
    assert other.level == "SHOULD"
    assert other.operations == ("getTask", "updateTask")
    assert catalogue.for_operation("getTask") == (other,)
    assert catalogue.must().ids == ("TASK-BATCH-GET-OMITS-UNKNOWN",)
    assert catalogue.should().ids == ("TASK-OTHER",)
    with pytest.raises(AttributeError):
        catalogue._rules = ()
    with pytest.raises(AttributeError):
        other.id = "X"  # type: ignore[misc]


def test_select_keeps_catalogue_order_and_ignores_repeats():
    catalogue = parse_catalogue(catalogue_of(rule(id="A-ONE"), rule(id="A-TWO"), rule(id="A-THREE")))
    selected = catalogue.select(["A-THREE", "A-ONE", "A-THREE"])
    assert isinstance(selected, Catalogue)
    assert selected.ids == ("A-ONE", "A-THREE")


def test_select_of_unknown_ids_names_every_unknown_id():
    catalogue = load_catalogue()
    known = catalogue.ids[0]
    with pytest.raises(UnknownRuleError) as excinfo:
        catalogue.select([known, "NO-SUCH-RULE", "ALSO-MISSING"])
    assert excinfo.value.unknown == ("NO-SUCH-RULE", "ALSO-MISSING")
    assert "NO-SUCH-RULE" in str(excinfo.value)
    assert "ALSO-MISSING" in str(excinfo.value)
    assert known not in str(excinfo.value).split("did you mean")[0]


def test_get_of_an_unknown_id_suggests_close_matches():
    catalogue = parse_catalogue(catalogue_of(rule(id="TASK-GET-OK"), rule(id="TASK-PATCH-OK")))
    with pytest.raises(UnknownRuleError, match=r"TASK-GET-KO .*did you mean TASK-GET-OK"):
        catalogue.get("TASK-GET-KO")
    with pytest.raises(KeyError):
        catalogue.get("ZZZ-UNRELATED")


# --- refusals --------------------------------------------------------------------------------------


def test_text_and_mapping_give_the_same_catalogue(tmp_path):
    text = textwrap.dedent(
        """\
        version: 1
        rules:
          - id: TASK-BATCH-GET-OMITS-UNKNOWN
            level: MUST
            operations: [getTasksBatch]
            source:
              document: "Tasks API (seeds/003), Get Tasks Batch"
              quote: "If a task ID doesn't exist, simply omit it from the response array."
            statement: "POST /tasks/batch with known and unknown ids answers 200 with only the known tasks."
        """
    )
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    assert parse_catalogue(path.read_text()) == parse_catalogue(catalogue_of(GOOD_RULE))


def test_duplicate_ids_in_a_broken_file_are_refused(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            rules:
              - id: AUTH-MISSING-KEY
                level: MUST
                operations: [checkHealth]
                source: {document: Reference, quote: "401 if missing"}
                statement: A request without the key is refused.
              - id: AUTH-MISSING-KEY
                level: SHOULD
                operations: [listUsers]
                source: {document: Reference, quote: "401 if missing"}
                statement: The same id again.
            """
        )
    )
    with pytest.raises(CatalogueError, match=r"AUTH-MISSING-KEY.*'id'"):
        parse_catalogue(path.read_text())


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        pytest.param(without("level"), ["TASK-BATCH-GET-OMITS-UNKNOWN", "'level'"], id="missing-level"),
        pytest.param(
            without("operations"), ["TASK-BATCH-GET-OMITS-UNKNOWN", "'operations'"], id="missing-ops"
        ),
        pytest.param(without("source"), ["TASK-BATCH-GET-OMITS-UNKNOWN", "'source'"], id="missing-source"),
        pytest.param(
            without("source.quote"), ["TASK-BATCH-GET-OMITS-UNKNOWN", "'source.quote'"], id="no-quote"
        ),
        pytest.param(
            without("source.document"), ["TASK-BATCH-GET-OMITS-UNKNOWN", "'source.document'"], id="no-doc"
        ),
        pytest.param(
            without("statement"), ["TASK-BATCH-GET-OMITS-UNKNOWN", "'statement'"], id="no-statement"
        ),
        pytest.param(without("id"), ["Rule #1", "'id'"], id="missing-id"),
        pytest.param(
            rule(level="MAY"), ["TASK-BATCH-GET-OMITS-UNKNOWN", "'level'", "MAY"], id="unknown-level"
        ),
        pytest.param(rule(level="must"), ["TASK-BATCH-GET-OMITS-UNKNOWN", "'level'"], id="lower-case-level"),
        pytest.param(
            rule(operations=[]), ["TASK-BATCH-GET-OMITS-UNKNOWN", "'operations'", "empty"], id="no-ops"
        ),
        pytest.param(
            rule(operations="getTask"), ["TASK-BATCH-GET-OMITS-UNKNOWN", "'operations'"], id="ops-str"
        ),
        pytest.param(rule(statement="  "), ["TASK-BATCH-GET-OMITS-UNKNOWN", "'statement'"], id="blank-text"),
        pytest.param(rule(id="task-lower"), ["task-lower", "'id'"], id="lower-case-id"),
        pytest.param(rule(id="NODASH"), ["NODASH", "'id'"], id="id-without-dash"),
        pytest.param(rule(id="TASK-"), ["TASK-", "'id'"], id="id-trailing-dash"),
        pytest.param(rule(id="1TASK-X"), ["1TASK-X", "'id'"], id="id-leading-digit"),
    ],
)
def test_broken_rules_are_refused_naming_rule_and_field(raw, words):
    with pytest.raises(CatalogueError) as excinfo:
        parse_catalogue(catalogue_of(raw))
    message = str(excinfo.value)
    for word in words:
        assert word in message
    assert message.endswith(".")
    assert message.count(". ") == 0, "the message should be one sentence"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("rules: []\n", id="no-version"),
        pytest.param("version: 2\nrules: []\n", id="future-version"),
        pytest.param("version: 1\n", id="no-rules"),
        pytest.param("- just a list\n", id="not-a-mapping"),
        pytest.param("version: 1\nrules: [\n", id="bad-yaml"),
        pytest.param("version: 1\nrules:\n  - just-a-string\n", id="rule-not-a-mapping"),
    ],
)
def test_broken_catalogue_documents_are_refused(text):
    with pytest.raises(CatalogueError):
        parse_catalogue(text)


def test_catalogue_constructor_refuses_duplicates_too():
    item = parse_catalogue(catalogue_of(GOOD_RULE)).get(GOOD_RULE["id"])
    with pytest.raises(CatalogueError, match=GOOD_RULE["id"]):
        Catalogue([item, item])


def test_yaml_is_read_as_json_compatible_data():
    text = textwrap.dedent(
        """\
        version: 1
        rules:
          - id: TIME-ON-2024
            level: SHOULD
            operations: [on]
            source: {document: 2024-01-15T10:00:00Z, quote: no}
            statement: yes
        """
    )
    item = parse_catalogue(text).get("TIME-ON-2024")
    assert item.operations == ("on",)
    assert item.source == Source(document="2024-01-15T10:00:00Z", quote="no")
    assert item.statement == "yes"
