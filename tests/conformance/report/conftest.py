"""Hand-built RunReports for the report writers: one rule of each outcome, server text that bites."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.results import (
    CreatedRecord,
    Evidence,
    Exchange,
    RecordedRequest,
    RecordedResponse,
    Result,
    RunReport,
)
from enginy_spec import load_catalogue

# What a hostile or merely careless server might answer; every writer must show it inert.
HOSTILE = '<script>alert("x")</script> | `tick` & <b>bold</b> \x1b[31m \udc80'
CANARY = "canary-secret-7d41"


def exchange(
    *,
    method: str = "POST",
    url: str = "http://crm.test/tasks",
    headers: dict[str, str] | None = None,
    body: str | None = '{"subject": "it\'s $HOME"}',
    status: int | None = 500,
    response_body: str = HOSTILE,
) -> Exchange:
    request = RecordedRequest(
        method=method,
        url=url,
        headers={"Content-Type": "application/json", "X-API-Key": "[REDACTED]", "Content-Length": "26"}
        if headers is None
        else headers,
        body=body,
    )
    response = (
        RecordedResponse(
            status=status, headers={"Content-Type": "text/html"}, body=response_body, elapsed_ms=3.5
        )
        if status is not None
        else None
    )
    return Exchange(
        request=request, response=response, error=None if status is not None else "Read timed out"
    )


def build_report(**overrides: Any) -> RunReport:
    catalogue = load_catalogue()

    def result(rule_id: str, outcome: str, evidence: tuple[Evidence, ...]) -> Result:
        return Result(rule=catalogue.get(rule_id), outcome=outcome, evidence=evidence)  # type: ignore[arg-type]

    results = (
        result(
            "HEALTH-OK",
            "passed",
            (
                Evidence(
                    rule_id="HEALTH-OK",
                    outcome="passed",
                    source="scripted",
                    message="GET /health answered 200.",
                ),
            ),
        ),
        result(
            "SERVER-NO-5XX",
            "failed",
            (
                Evidence(
                    rule_id="SERVER-NO-5XX",
                    outcome="failed",
                    source="schemathesis:fuzzing",
                    message=f"Server error [ST101] on POST /tasks: {HOSTILE}",
                    expected="a 2xx or 4xx answer",
                    actual="HTTP 500: <script>",
                    exchanges=(exchange(),),
                ),
                Evidence(
                    rule_id="SERVER-NO-5XX", outcome="passed", source="scripted", message="Scripted: no 5xx."
                ),
            ),
        ),
        result(
            "ERROR-BODY-JSON",
            "warning",
            (
                Evidence(
                    rule_id="ERROR-BODY-JSON",
                    outcome="warning",
                    source="schemathesis:coverage",
                    message="Undocumented Content-Type [ST105] on GET /tasks/{taskId}",
                    expected="a JSON error body",
                    actual="text/plain | <i>",
                    exchanges=(
                        exchange(
                            method="GET",
                            url="http://crm.test/tasks/nope",
                            headers={"X-API-Key": "[REDACTED]"},
                            body=None,
                            status=404,
                            response_body="not found",
                        ),
                    ),
                ),
            ),
        ),
        result(
            "AUTH-MISSING-KEY",
            "failed",
            (
                Evidence(
                    rule_id="AUTH-MISSING-KEY",
                    outcome="failed",
                    source="schemathesis:examples",
                    message="API accepts requests without authentication [ST401] on POST /tasks",
                    expected="401",
                    actual="HTTP 201",
                    exchanges=(
                        exchange(status=201, response_body='{"id": "t1"}'),
                        exchange(
                            headers={"Content-Type": "application/json"}, status=201, response_body="{}"
                        ),
                    ),
                ),
            ),
        ),
        result(
            "USERS-OPTIONAL",
            "skipped",
            (
                Evidence(
                    rule_id="USERS-OPTIONAL",
                    outcome="skipped",
                    source="scripted",
                    message="Excluded by --only.",
                ),
            ),
        ),
        result("TASK-GET", "skipped", ()),
    )
    fields: dict[str, Any] = {
        "target": "http://crm.test",
        "profile": "quick",
        "started_at": "2026-11-22T05:00:00+00:00",
        "duration_s": 12.5,
        "results": results,
        "created": (CreatedRecord(kind="task", id="task-1", via="POST /tasks"),),
        "settings": {
            "base_url": "http://crm.test",
            "api_key_header": "X-API-Key",
            "profile": "quick",
            "api_key": CANARY,
            "auth_token": CANARY,
            "nested": {"client_secret": CANARY, "seed": 0},
            "timeout": 10.0,
        },
        "tool_versions": {"python": "3.11.7", "schemathesis": "4.32.5"},
    }
    fields.update(overrides)
    return RunReport(**fields)


@pytest.fixture
def report() -> RunReport:
    return build_report()


@pytest.fixture
def make_report() -> Any:
    return build_report


@pytest.fixture
def make_exchange() -> Any:
    return exchange


@pytest.fixture
def hostile() -> str:
    return HOSTILE


@pytest.fixture
def canary() -> str:
    return CANARY
