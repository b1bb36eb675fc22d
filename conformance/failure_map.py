"""Which rule a Schemathesis check speaks about: the one table that turns check results into rule ids.

Every row names a Schemathesis 4 check, the situation it applies in, the rule it judges and the sentence
of the docs that backs it. A check result that no row matches is not evidence about any rule and is
dropped, so a check the docs do not back can never fail a customer. `EXCLUDED_CHECKS` lists the checks
Schemathesis would run by default that we switch off, each with the reason.

This module only classifies; it neither runs Schemathesis nor builds evidence (see `conformance.engine`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from enginy_spec import operations

__all__ = [
    "ENGINE_RULES",
    "EXCLUDED_CHECKS",
    "EXTRA_REQUEST_CHECKS",
    "OPTIONAL_OPERATION_STATUSES",
    "OWN_JUDGED",
    "PASSABLE_RULES",
    "ROWS",
    "Observation",
    "Row",
    "checks_for",
    "judged_by",
    "route",
]

# The situations a row can be limited to.
#   any        every result of the check
#   success    the response under judgement was not a 4xx or 5xx (2xx, and the odd 1xx/3xx)
#   client     the response under judgement was a 4xx
#   no-key     ignored_auth: the probe that removed the key was let through
#   wrong-key  ignored_auth: the probe with an invalid key (or a generated one) was let through
#   task-read  the operation is GET /tasks/{taskId}
When = Literal["any", "success", "client", "no-key", "wrong-key", "task-read"]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the mapping: `check` results in situation `when` are evidence about `rule`."""

    check: str
    when: When
    rule: str
    expected: str  # what a conformant server does, as shown next to the actual answer in reports
    backed_by: str  # the sentence of the docs (or of rules.yaml) that makes this a rule, for reviewers


@dataclass(frozen=True, slots=True)
class Observation:
    """What is known about one check result when routing it."""

    check: str
    operation: str  # Schemathesis label, e.g. "POST /tasks"
    status: int | None = None  # status of the response the check judged; None when nothing came back
    auth_probe: Literal["no-key", "wrong-key"] | None = None  # for ignored_auth failures only


# Order matters only within one check: the first row whose situation matches wins. A check result that
# no row matches is evidence about nothing (e.g. status_code_conformance on a 4xx: every 4xx is
# documented, and an error body is judged by the suite's own lenient judge, see OWN_JUDGED).
ROWS: tuple[Row, ...] = (
    # Reference §1.5 lists "500 server error" as the server's own fault, never an answer to a request;
    # SERVER-NO-5XX: "No request Enginy may send, valid or not, makes the server answer a 5xx".
    Row(
        "not_a_server_error",
        "any",
        "SERVER-NO-5XX",
        "a 2xx or 4xx answer; never a 5xx (501 on GET /users excepted)",
        'Reference §1.5: "500 server error"',
    ),
    # RESPONSE-SCHEMA: "Every success answer ... has a documented status and a JSON body matching the
    # documented response"; Tasks API: "id string Yes Unique identifier for the task".
    Row(
        "status_code_conformance",
        "success",
        "RESPONSE-SCHEMA",
        "a status the spec documents for this operation",
        'Tasks API, Task Schema Reference: "id string Yes Unique identifier for the task"',
    ),
    # Tasks API / Activities API schema references: the answer carries the documented fields and types.
    # Confirmed by the suite's own judgement of the same answer (the engine's `_confirmed`): the JSON is
    # judged whatever it is labelled, and answers the docs do not describe are not judged.
    Row(
        "response_schema_conformance",
        "success",
        "RESPONSE-SCHEMA",
        "a body that matches the spec's response schema",
        'Tasks API, Task Schema Reference: "id string Yes Unique identifier for the task"',
    ),
    # Reference §1.5: "400 malformed body / parameters": a body that breaks the schema is a client error.
    Row(
        "negative_data_rejection",
        "any",
        "INPUT-INVALID-REJECTED",
        "a 4xx for a request that breaks the spec's schemas",
        'Reference §1.5: "400 malformed body / parameters"',
    ),
    # Reference §1.5: "200 / 201 success": a request that follows the schemas is served.
    Row(
        "positive_data_acceptance",
        "any",
        "INPUT-VALID-ACCEPTED",
        "a 2xx (or 404 for an unknown id) for a request that follows the spec's schemas",
        'Reference §1.5: "200 / 201 success"',
    ),
    # Reference §1.4: "The server must check the key on every call and answer 401 Unauthorized if it is
    # missing or wrong." Schemathesis re-sends an accepted request once without the key ...
    Row(
        "ignored_auth",
        "no-key",
        "AUTH-MISSING-KEY",
        "401 (403 tolerated) for a request without the key header",
        'Reference §1.4: "answer 401 Unauthorized if it is missing or wrong"',
    ),
    # ... and once with an invalid key value.
    Row(
        "ignored_auth",
        "wrong-key",
        "AUTH-WRONG-KEY",
        "401 (403 tolerated) for a request with a wrong key",
        'Reference §1.4: "answer 401 Unauthorized if it is missing or wrong"',
    ),
    # Tasks API, Get Task: "Retrieves a single task by ID ... The task ID returned from create": a task
    # created through POST /tasks is readable through the spec's GetTask link right away. Only the read
    # itself: a shadowed PATCH /tasks/batch "not finding" a task is TASK-BATCH-ROUTE's finding.
    Row(
        "ensure_resource_availability",
        "task-read",
        "TASK-GET",
        "GET /tasks/{taskId} answers 200 for an id POST /tasks returned",
        'Tasks API, Get Task: "The task ID returned from create"',
    ),
    # Same sentence; the API has no DELETE, so this can only fire if a server invents one. Kept so the
    # mapping stays total for the stateful checks Schemathesis runs on tasks.
    Row(
        "use_after_free",
        "task-read",
        "TASK-GET",
        "a task read by id behaves as the create/read cycle documents",
        'Tasks API, Get Task: "The task ID returned from create"',
    ),
)

# Rules the engine judges with the suite's own single-exchange judges, applied to every answer
# Schemathesis got (conformance.checks._support): their leniency (any message field in an error body,
# any +json media type) is the suite's, not Schemathesis' stricter default checks.
OWN_JUDGED: tuple[str, ...] = ("ERROR-BODY-JSON", "RESPONSE-CONTENT-TYPE-JSON")

# Checks Schemathesis runs by default that no document backs; they are switched off, never mapped.
EXCLUDED_CHECKS: Mapping[str, str] = {
    "unsupported_method": (
        "the docs say nothing about methods they do not list (405 vs 404), and Enginy never sends them"
    ),
    "allow_header_conformance": "the docs never mention the Allow header",
    "missing_required_header": "the spec declares no required header other than the key (judged by AUTH-*)",
    "response_headers_conformance": "the spec documents no response headers",
    "content_type_conformance": (
        "the docs state no response Content-Type (§15.7); the suite's own judges decide the two rules that "
        "speak of it, RESPONSE-CONTENT-TYPE-JSON (SHOULD) and ERROR-BODY-JSON (SHOULD), on every answer"
    ),
    "max_response_time": "the docs set no response-time limit",
    "object_level_authorization": "there is one key per connection, so there are no identities to compare",
}

# Operations that may answer "not implemented" instead of serving the request. USERS-OPTIONAL: "2xx:
# users feature on ... 404, 405 or 501: feature off, treated as 'not implemented' (not an error)".
# engine.py widens the statuses not_a_server_error and positive_data_acceptance accept for them.
OPTIONAL_OPERATION_STATUSES: Mapping[str, tuple[int, ...]] = {"listUsers": (404, 405, 501)}

# Rules the engine judges at all, and the ones it may also declare 'passed' when its phases found
# nothing: the others (auth, TASK-GET) are probed only incidentally, so silence proves little and the
# scripted checks own their 'passed'.
ENGINE_RULES: tuple[str, ...] = tuple(dict.fromkeys([*(row.rule for row in ROWS), *OWN_JUDGED]))
PASSABLE_RULES: frozenset[str] = frozenset(
    {
        "SERVER-NO-5XX",
        "RESPONSE-SCHEMA",
        "INPUT-INVALID-REJECTED",
        "INPUT-VALID-ACCEPTED",
        *OWN_JUDGED,
    }
)


@functools.cache
def _optional_labels() -> Mapping[str, tuple[int, ...]]:
    # Schemathesis names operations "METHOD /path"; the table above names them by operationId.
    ops = operations()
    return {
        f"{ops[op_id].method} {ops[op_id].path}": statuses
        for op_id, statuses in OPTIONAL_OPERATION_STATUSES.items()
        if op_id in ops
    }


def _matches(row: Row, observation: Observation) -> bool:
    status = observation.status
    match row.when:
        case "any":
            return True
        case "success":
            return status is None or status < 400
        case "client":
            return status is not None and 400 <= status < 500
        case "no-key" | "wrong-key":
            return observation.auth_probe == row.when
        case "task-read":
            return observation.operation == "GET /tasks/{taskId}"


def route(observation: Observation) -> Row | None:
    """Return the row that makes this check result evidence about a rule, or None if none does.

    A 5xx judged by a conformance check routes nowhere: the 5xx itself is the finding, and it belongs to
    SERVER-NO-5XX through not_a_server_error, so one bad answer is never counted against two rules.
    """
    if observation.check in EXCLUDED_CHECKS:
        return None
    exempt = _optional_labels().get(observation.operation, ())
    if observation.check == "not_a_server_error" and observation.status in exempt:
        return None  # USERS-OPTIONAL allows 501 on GET /users (belt and braces: the config allows it too)
    server_error = observation.status is not None and observation.status >= 500
    if server_error and observation.check != "not_a_server_error":
        return None
    for row in ROWS:
        if row.check == observation.check and _matches(row, observation):
            return row
    return None


# Checks that send requests of their own (beyond the generated ones they judge), with the reason they are
# left out of a run whose scripted checks already judge every rule they speak about.
EXTRA_REQUEST_CHECKS: Mapping[str, str] = {
    "ignored_auth": (
        "it re-sends a request without the key and with a wrong key, once per operation; the scripted auth "
        "probes (AUTH-MISSING-KEY, AUTH-WRONG-KEY) send exactly these to every operation already"
    ),
}


def checks_for(rule_ids: Iterable[str], *, covered: Iterable[str] = ()) -> tuple[str, ...]:
    """The Schemathesis checks to enable so that these rules are judged, in table order.

    A check in EXTRA_REQUEST_CHECKS is left out when every rule it speaks about is `covered` (judged by a
    scripted check in the same run): its requests would judge nothing new.
    """
    wanted = set(rule_ids)
    done = set(covered)
    chosen = dict.fromkeys(row.check for row in ROWS if row.rule in wanted)
    for check in EXTRA_REQUEST_CHECKS:
        judges = {row.rule for row in ROWS if row.check == check and row.rule in wanted}
        if check in chosen and judges <= done:
            del chosen[check]
    return tuple(chosen)


def judged_by(checks: Iterable[str]) -> frozenset[str]:
    """The rules these checks (and the suite's own judges, which need no check) give evidence about."""
    enabled = set(checks)
    return frozenset({row.rule for row in ROWS if row.check in enabled} | set(OWN_JUDGED))
