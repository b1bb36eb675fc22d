"""The suite against the bundled mock: conformant, it passes; with each rule fault, exactly that rule fails.

The fault profiles come from `python -m mock_server --list-faults --json`. One mock (the session fixture
`faulty_mock`) serves the whole matrix: each test switches the fault through the mock's admin API
(PUT /__admin/faults) and resets its records, then runs the scripted checks. The Schemathesis pass is
off for speed, except for the rules only it can judge. One profile is also started the way a user would,
with `--fault`, to show the two are the same. Concurrency faults (`clock-ids`) show only when requests
arrive together, so they are not in this matrix: tests/conformance/test_load.py judges them under load,
as it does the faults of the rules only `load` judges (LOAD_ONLY: LOAD-P95-LATENCY), which run leaves out.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from conformance.checks import LOAD_ONLY, SCHEMATHESIS_ONLY
from conformance.cli import cli
from conformance.runner import run
from conformance.settings import RunSettings

CANARY = "canary-mock-KEY-7d41e0"


def _faults() -> list[dict[str, Any]]:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mock_server", "--list-faults", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (subprocess.CalledProcessError, OSError):
        return []
    return [fault for fault in json.loads(done.stdout) if fault["kind"] == "rule"]


# Every rule's fault; RULE_FAULTS leaves out the rules only `load` judges (run never sees them).
ALL_RULE_FAULTS = _faults()
RULE_FAULTS = [fault for fault in ALL_RULE_FAULTS if fault["rule"] not in LOAD_ONLY]

# Knock-ons that cannot be avoided: the one misbehaviour breaks a second rule by that rule's own words.
# Every entry is also declared by the mock itself in the fault's `also_breaks`.
KNOCK_ON: dict[str, set[str]] = {
    # An answer without `id` breaks the Task / Activity schema, which requires it (RESPONSE-SCHEMA).
    "TASK-CREATE-RETURNS-ID": {"RESPONSE-SCHEMA"},
    "ACTIVITY-RETURNS-ID": {"RESPONSE-SCHEMA"},
    # {"tasks": [...]} is not the TaskList array the schema documents.
    "TASK-BATCH-GET-ARRAY": {"RESPONSE-SCHEMA"},
    # The fault answers 500, which no request may get (SERVER-NO-5XX).
    "USERS-OPTIONAL": {"SERVER-NO-5XX"},
    "INPUT-MALFORMED-JSON": {"SERVER-NO-5XX"},
}


def judged(url: str, key: str, tmp_path: Path, *, engine: bool, write: bool = False, **kwargs: Any):
    settings = RunSettings(base_url=url, api_key=key, report_dir=tmp_path / "reports", timeout=10.0, **kwargs)
    lines: list[str] = []
    outcome = run(settings, out=lines.append, engine=engine, write=write)
    return outcome, lines


# Record ids, run ids and durations differ from run to run by design; nothing else may.
_VARYING = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # uuids
    r"|\b(?:task|act|ctc|cmp|con|com|contact|company|activity)[-_][0-9A-Za-z]+"  # prefixed ids
    r"|\b\d+(?:\.\d+)? ?(?:s|ms)\b"  # durations
)


def fingerprint(outcome) -> dict[str, Any]:
    """What a report says, timings and the ids the server drew aside: every rule's outcome, and every
    piece of evidence's outcome, source, gap and message."""
    run_id = str(outcome.report.settings["run_id"])

    def normal(text: str) -> str:
        return _VARYING.sub("…", text.replace(run_id, "RUN"))

    return {
        result.rule.id: (
            result.outcome,
            sorted((e.outcome, e.source, e.gap, normal(e.message)) for e in result.evidence),
        )
        for result in outcome.report.results
    } | {"exit": outcome.exit_code}


def differences(one: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    return {k: (one.get(k), other.get(k)) for k in one.keys() | other.keys() if one.get(k) != other.get(k)}


def bad_rules(outcome) -> dict[str, str]:
    return {r.rule.id: r.outcome for r in outcome.report.results if r.outcome in ("failed", "warning")}


def test_the_conformant_mock_passes_every_rule_and_the_canary_never_leaks(mock, tmp_path):
    outcome, lines = judged(mock.url, mock.key, tmp_path, engine=True, write=True)
    results = {r.rule.id: r.outcome for r in outcome.report.results}
    assert bad_rules(outcome) == {}
    assert outcome.exit_code == 0
    assert set(results.values()) == {"passed"}, {k: v for k, v in results.items() if v != "passed"}
    assert not [line for line in lines if "Internal error" in line]
    texts = ["\n".join(lines)] + [path.read_text(encoding="utf-8") for path in outcome.report_paths.values()]
    assert outcome.report_paths and all(mock.key not in text for text in texts)
    assert outcome.report.created and all(record.id for record in outcome.report.created)
    # Requests per phase: the examples phase is not run (coverage sends the schema's examples too).
    requests = json.loads(outcome.report_paths["json"].read_text(encoding="utf-8"))["requests"]
    assert set(requests) == {"scripted", "coverage", "fuzzing", "stateful", "total"}, requests
    assert requests["total"] == sum(v for k, v in requests.items() if k != "total")
    assert requests["scripted"] > 100 and requests["coverage"] > 100


def test_every_record_a_run_leaves_on_a_fresh_mock_is_tagged_and_listed(mock_starter, tmp_path):
    # Safe mode, generated testing included: the quick profile against an empty mock, then every record
    # the mock holds is checked for the run's mark and for its line in report.json's created list.
    fresh = mock_starter()
    outcome, _ = judged(fresh.url, fresh.key, tmp_path, engine=True, write=True)
    prefix = f"enginy-conformance-{outcome.report.settings['run_id']}"
    status, body = fresh.admin("GET", "/__admin/records")
    assert status == 200
    records = json.loads(body)
    listed = {(record.kind, record.id) for record in outcome.report.created}
    via = {record.via.split(" ", 1)[0] for record in outcome.report.created}
    assert "Schemathesis" in via  # generated testing's creates are listed too, not only the scripted ones
    untagged = []
    for task in records["tasks"]:
        if not str(task.get("subject", "")).startswith(prefix):
            untagged.append(("task", task))
        assert ("task", task["id"]) in listed
    for activity in records["activities"]:
        marked = (activity.get("metadata") or {}).get("enginyConformance") is True
        if not (marked or str(activity.get("subject") or "").startswith(prefix)):
            untagged.append(("activity", activity))
        assert ("activity", activity["id"]) in listed
    for kind, family in (("contact", "contacts"), ("company", "companies")):
        for record in records[family]:
            if not str(record.get("externalId", "")).startswith(prefix):
                untagged.append((kind, record))
            assert (kind, record["crmId"] if "crmId" in record else record["id"]) in listed
    assert untagged == [] and outcome.report.untagged == 0
    assert len(records["tasks"]) > 40 and len(records["contacts"]) > 100  # generated and scripted alike
    document = json.loads((tmp_path / "reports" / "report.json").read_text(encoding="utf-8"))
    assert document["untagged_records"] == 0 and len(document["created"]) == len(outcome.report.created)


def _strings(value):
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize(
    ("key", "engine"),
    [
        ("k", False),  # one letter: inside ids, subjects, URLs and words the run sends and reads back
        ("test", False),  # a dictionary word ("Head of Testing", "test task")
        ("Kq7-" + "x9Lm2" * 7 + "zZ1", True),  # a long random key, generated testing included
    ],
    ids=["one-letter", "word", "long"],
)
def test_redaction_keeps_reports_faithful_and_the_key_out(start_mocks, tmp_path, key, engine):
    server = start_mocks(key=key)
    outcome, lines = judged(server.url, server.key, tmp_path, engine=engine, write=True)
    # The verdict rests on the answers themselves, whatever the key looks like.
    assert bad_rules(outcome) == {}
    texts = {name: path.read_text(encoding="utf-8") for name, path in outcome.report_paths.items()}
    everything = [*texts.values(), "\n".join(lines)]
    # Never [REDACTED] glued to a word: only whole values were replaced.
    assert not any(re.search(r"[A-Za-z0-9]\[REDACTED\]|\[REDACTED\][A-Za-z0-9]", text) for text in everything)
    # The key nowhere as a value: no header, no JSON string, no setting of the report holds it ...
    document = json.loads(texts["json"])
    assert key not in set(_strings(document))
    assert all(f"X-API-Key: {key}" not in text for text in everything)
    if len(key) >= 16:  # ... and a key that cannot be part of a word appears nowhere at all
        assert all(key not in text for text in everything)
    # A curl from the report reproduces its request, the key coming from the environment.
    exchange = next(
        x
        for result in document["results"]
        for item in result["evidence"]
        for x in item["exchanges"]
        if x["request"]["method"] == "POST"
        and x["request"]["url"].endswith("/tasks/batch")
        and x["response"]
        and x["response"]["status"] == 200
    )
    assert '-H "X-API-Key: $ENGINY_API_KEY"' in exchange["curl"]
    done = subprocess.run(
        ["bash", "-c", exchange["curl"]],
        capture_output=True,
        text=True,
        timeout=30,
        env={"ENGINY_API_KEY": key, "PATH": os.environ["PATH"]},
    )
    assert done.stdout.startswith("HTTP/1.1 200"), done.stdout[:200]
    # The same request: the same tasks come back. Their state may have moved on since (checks judged
    # side by side complete tasks another check read a moment before), so ids are compared, not bodies.
    replayed = json.loads(done.stdout.split("\n\n", 1)[1])
    recorded = json.loads(exchange["response"]["body"])
    assert sorted(task["id"] for task in replayed) == sorted(task["id"] for task in recorded)
    assert recorded and replayed


@pytest.mark.parametrize("fault", RULE_FAULTS, ids=[fault["id"] for fault in RULE_FAULTS])
def test_each_rule_fault_fails_exactly_its_rule(faulty_mock, tmp_path, fault):
    rule = fault["rule"]
    faulty_mock.switch(fault["id"])
    # Schemathesis judges the rules only it can judge; everything else is scripted, for speed.
    engine = rule in SCHEMATHESIS_ONLY
    outcome, _ = judged(faulty_mock.url, faulty_mock.key, tmp_path, engine=engine)
    expected = {rule: "failed" if fault["level"] == "MUST" else "warning"}
    expected |= {other: "failed" for other in KNOCK_ON.get(rule, ())}
    assert bad_rules(outcome) == expected
    # A MUST failure anywhere (the rule itself, or a MUST knock-on of a SHOULD fault) fails the run.
    assert outcome.exit_code == (1 if "failed" in expected.values() else 0)
    if not engine:
        # Checks judged side by side (the default) say word for word what one at a time says
        # (test_concurrency compares the generated pass).
        faulty_mock.switch(fault["id"])
        sequential, _ = judged(faulty_mock.url, faulty_mock.key, tmp_path, engine=False, concurrency=1)
        assert differences(fingerprint(sequential), fingerprint(outcome)) == {}


def test_the_conformant_mock_is_judged_alike_one_request_at_a_time(faulty_mock, tmp_path):
    faulty_mock.switch()
    concurrent, _ = judged(faulty_mock.url, faulty_mock.key, tmp_path, engine=False)
    faulty_mock.switch()
    sequential, _ = judged(faulty_mock.url, faulty_mock.key, tmp_path, engine=False, concurrency=1)
    assert concurrent.report.settings["concurrency"] > 1
    assert differences(fingerprint(sequential), fingerprint(concurrent)) == {}


def test_knock_ons_are_ones_the_mock_declares():
    declared = {fault["id"]: set(fault["also_breaks"]) for fault in RULE_FAULTS}
    for rule, others in KNOCK_ON.items():
        if declared:
            assert others <= declared[rule], rule


def test_a_fault_started_with_the_flag_behaves_like_one_switched_on(mock_starter, tmp_path):
    started = mock_starter("--fault", "TASK-BATCH-ROUTE")
    outcome, _ = judged(started.url, started.key, tmp_path, engine=False)
    assert bad_rules(outcome) == {"TASK-BATCH-ROUTE": "failed"}


def test_a_mock_dropping_every_connection_is_a_clean_exit_2(mock_starter, tmp_path):
    started = mock_starter("--fault", "drop-connection:rate=1", key=CANARY)
    result = CliRunner().invoke(
        cli, ["run", "--base-url", started.url, "--report-dir", str(tmp_path)], env={"ENGINY_API_KEY": CANARY}
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.output
    assert CANARY not in result.output


def test_demo_runs_the_mock_writes_reports_and_stops_it(tmp_path):
    if not RULE_FAULTS:
        pytest.skip("mock_server is not installed")
    reports = tmp_path / "demo"
    result = CliRunner().invoke(
        cli,
        ["demo", "--only", "HEALTH-OK,TASK-BATCH-ROUTE", "--report-dir", str(reports)],
        env={"ENGINY_BASE_URL": "http://127.0.0.1:9", "ENGINY_API_KEY": "not-the-mock-key"},
    )
    assert result.exit_code == 0, result.output
    assert "2 rules passed" in result.output and "PASSED" in result.output
    assert (reports / "report.json").is_file() and str(reports) in result.output
    url = result.output.split("listens on ", 1)[1].split(";", 1)[0]
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/health", timeout=2)  # stopped
