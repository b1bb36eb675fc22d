"""report.json: versioned, complete, valid against the shipped JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance.report import FORMAT, REPORT_SCHEMA_PATH, VERSION, to_document, write_reports
from conformance.results import RunReport


@pytest.fixture
def document(report: RunReport, tmp_path: Path) -> dict[str, Any]:
    paths = write_reports(report, tmp_path)
    loaded: dict[str, Any] = json.loads(paths["json"].read_text(encoding="utf-8"))
    return loaded


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(REPORT_SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_document_is_valid_against_the_shipped_schema(document: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(document)]
    assert errors == []


def test_schema_rejects_what_it_should(document: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(document))
    broken["results"][0]["outcome"] = "great"
    del broken["summary"]
    assert len(list(validator().iter_errors(broken))) == 2


def test_header_fields(document: dict[str, Any], report: RunReport) -> None:
    assert document["format"] == FORMAT == "enginy-conformance-report"
    assert document["version"] == VERSION == 3
    assert document["verdict"] == "failed"
    assert document["target"] == "http://crm.test"
    assert document["profile"] == "quick"
    assert document["started_at"] == report.started_at
    assert document["duration_s"] == 12.5
    assert document["summary"] == {
        "total": 6,
        "passed": 1,
        "failed": 2,
        "warning": 1,
        "skipped": 2,
        "accepted": 0,
    }
    assert document["baseline"] is None  # no --baseline given
    assert document["created"] == [{"kind": "task", "id": "task-1", "via": "POST /tasks"}]
    assert document["tool_versions"] == {"python": "3.11.7", "schemathesis": "4.32.5"}


def test_one_entry_per_rule_in_run_order(document: dict[str, Any], report: RunReport) -> None:
    assert [entry["rule"] for entry in document["results"]] == [r.rule.id for r in report.results]
    entry = document["results"][1]
    assert entry["rule"] == "SERVER-NO-5XX"
    assert entry["level"] == "MUST"
    assert entry["family"] == "responses"
    assert entry["outcome"] == "failed"
    assert entry["statement"].startswith("No request Enginy may send")
    assert entry["source"] == {
        "document": "Reference §1.5, Generic error convention",
        "quote": "400 malformed body / parameters ... 500 server error",
    }
    first = entry["evidence"][0]
    assert first["expected"] == "a 2xx or 4xx answer"
    assert first["source"] == "schemathesis:fuzzing"
    exchange = first["exchanges"][0]
    assert exchange["request"]["method"] == "POST"
    assert exchange["response"]["status"] == 500
    assert '-H "X-API-Key: $ENGINY_API_KEY"' in exchange["curl"]


def test_unanswered_exchange_has_null_response(make_report: Any, make_exchange: Any, tmp_path: Path) -> None:
    report = make_report()
    result = report.results[1]
    item = result.evidence[0]
    timed_out = type(item)(
        **{**{f: getattr(item, f) for f in item.__slots__}, "exchanges": (make_exchange(status=None),)}
    )
    report = make_report(results=(type(result)(rule=result.rule, outcome="failed", evidence=(timed_out,)),))
    document = to_document(report)
    exchange = document["results"][0]["evidence"][0]["exchanges"][0]
    assert exchange["response"] is None and exchange["error"] == "Read timed out"
    assert list(validator().iter_errors(json.loads(json.dumps(document)))) == []


def test_settings_that_look_secret_are_redacted(document: dict[str, Any], canary: str) -> None:
    settings = document["settings"]
    assert settings["api_key"] == settings["auth_token"] == "[REDACTED]"
    assert settings["nested"] == {"client_secret": "[REDACTED]", "seed": 0}
    assert settings["api_key_header"] == "X-API-Key"  # a header name, needed by the curl commands
    assert canary not in json.dumps(document)


def test_lone_surrogates_are_written_as_replacement_characters(document: dict[str, Any]) -> None:
    body = document["results"][1]["evidence"][0]["exchanges"][0]["response"]["body"]
    assert "\ufffd" in body and "<script>" in body  # JSON keeps server text verbatim otherwise
