"""Schemathesis against the mock on a real port: every phase, every default check, zero findings.

Driven through the engine that ``schemathesis run`` uses (workers=2, every phase including stateful),
configured explicitly (``schemathesis.Config``) so that no schemathesis.toml in the working directory
can change the run, with the default checks left as they are: ``ignored_auth`` included. Nothing is
excluded. The budget (``max-examples``) keeps the run well under a minute on two cores.
"""

from __future__ import annotations

import time
from collections import Counter

# Hypothesis imports this module inside `st.randoms()`; two workers (threads) calling it at once for the
# first time can see it half-initialised ("cannot import name 'RandomStrategy'"), a flake seen twice here.
import hypothesis.strategies._internal.random  # noqa: F401
import pytest
import schemathesis
from schemathesis.engine import Status, events, from_schema

from enginy_spec import OPENAPI_PATH

API_KEY = "test-key-0123"


@pytest.fixture
def hypothesis_home(tmp_path, monkeypatch):
    # Hypothesis keeps caches in ./.hypothesis; keep them out of the working tree.
    monkeypatch.chdir(tmp_path)


def run_schemathesis(url: str, **overrides) -> tuple[list[str], list[str], Counter[str], Counter[str], float]:
    """Run the engine; return (failures, errors, scenarios per phase, runs per check, seconds)."""
    settings = {
        "seed": 20260101,
        "workers": 2,  # Python 3.11 + workers >= 3 trips CPython gh-106905 (field notes)
        "cache": {"enabled": False},
        "suppress-health-check": ["too_slow"],
        "generation": {"database": "none", "max-examples": 15},
        "phases": {"stateful": {"max-steps": 6}},
        **overrides,
    }
    schema = schemathesis.openapi.from_path(OPENAPI_PATH, config=schemathesis.Config.from_dict(settings))
    schema.config.update(base_url=url, headers={"X-API-Key": API_KEY})
    failures: list[str] = []
    errors: list[str] = []
    phases: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            phases[str(event.phase).split(".")[-1].lower()] += 1
            for nodes in event.recorder.checks.values():
                for node in nodes:
                    checks[node.name] += 1
                    if node.status == Status.FAILURE and node.failure_info is not None:
                        failure = node.failure_info.failure
                        failures.append(f"{event.recorder.label}: {failure.title}: {failure.message}")
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            errors.append(repr(event.exception))
    return failures, errors, phases, checks, time.monotonic() - started


def test_schemathesis_finds_nothing_wrong_with_the_mock(live, hypothesis_home):
    failures, errors, phases, checks, elapsed = run_schemathesis(live.url)
    assert errors == []
    assert sorted(set(failures)) == []
    # Every phase ran, and every default check really ran.
    assert set(phases) == {"examples", "coverage", "fuzzing", "stateful"}
    for name in (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "use_after_free",
        "ensure_resource_availability",
        "ignored_auth",
        "object_level_authorization",
    ):
        assert checks[name] > 0, f"{name} never ran: {checks}"
    # The mock served every request the run made; none reached its catch-all.
    assert not any(entry["status"] >= 500 for entry in live.admin("GET", "journal").json()["entries"])
    assert elapsed < 60


def test_the_same_run_does_catch_a_broken_mock(make_live, hypothesis_home):
    live = make_live(faults=("AUTH-WRONG-KEY", "RESPONSE-SCHEMA"))
    phases = {"phases": {"fuzzing": {"enabled": False}, "stateful": {"enabled": False}}}
    failures, errors, *_ = run_schemathesis(live.url, **phases)
    assert errors == []
    titles = {failure.split(": ")[1] for failure in failures}
    assert "API accepts invalid authentication" in titles
    assert "Response violates schema" in titles
