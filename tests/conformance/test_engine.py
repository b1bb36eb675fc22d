"""conformance.engine against real Schemathesis and small Falcon servers served by waitress on port 0.

The servers here are deliberately tiny: one conformant app built from the spec's own schemas, with
faults switched on by rule id (the same vocabulary as the reference mock's --fault). Budgets are cut
down per test (the `budget=` argument) so the whole module stays within a few seconds per test; the
examples phase replays the spec's examples, so faults triggered by example values are found every time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import falcon
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.engine import events
from schemathesis.engine.run import PhaseName
from waitress.server import create_server  # type: ignore[import-untyped]

from conformance.engine import (
    BUDGETS,
    ENGINE_RULES,
    Budget,
    EngineError,
    ShareResult,
    _Collector,
    _SchemaCandidate,
    build_config,
    estimated_writes,
    judge_generated,
)
from conformance.engine_recording import REDACTED, Redactor
from conformance.errors import ServerUnreachable
from conformance.failure_map import EXCLUDED_CHECKS, ROWS, Observation, checks_for, route
from conformance.results import Evidence
from conformance.settings import RunSettings
from enginy_spec import load_catalogue, load_spec

KEY = "canary-key-5f1c9e"  # also a canary: it must never appear in any evidence
EXAMPLES_ONLY = Budget(max_examples=1, stateful_steps=2, phases=("examples",))
# SHOULD warnings Schemathesis' generic positive/negative checks raise on strictness choices.
GENERIC = {"INPUT-INVALID-REJECTED", "INPUT-VALID-ACCEPTED"}
SMALL_ALL_PHASES = Budget(max_examples=3, stateful_steps=3)


# --- a tiny conformant server, faults by rule id ---------------------------------------------------------


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value


def _validators() -> dict[str, jsonschema.Draft202012Validator]:
    spec = load_spec()
    registry: Registry[Any] = Registry().with_resource(
        "urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    formats = jsonschema.FormatChecker(formats=())
    formats.checks("date-time")(_is_datetime)
    found = {}
    for item in spec["paths"].values():
        for method, operation in item.items():
            body = operation.get("requestBody") if method != "parameters" else None
            if body:
                ref = body["content"]["application/json"]["schema"]["$ref"]
                found[operation["operationId"]] = jsonschema.Draft202012Validator(
                    {"$ref": "urn:spec" + ref}, registry=registry, format_checker=formats
                )
    return found


VALIDATORS = _validators()


@dataclass
class Traffic:
    """What the server saw: counts prove that a skipped run sent nothing."""

    requests: int = 0
    writes: int = 0
    crashed: list[int] = field(default_factory=list)  # body sizes of the requests answered 500
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_app(
    *, header: str = "X-API-Key", faults: frozenset[str] = frozenset(), traffic: Traffic
) -> falcon.App[falcon.Request, falcon.Response]:
    tasks: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    class Middleware:
        def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
            with traffic.lock:
                traffic.requests += 1
                traffic.writes += req.method in ("POST", "PUT", "PATCH")
            if "AUTH-MISSING-KEY" in faults:  # auth switched off entirely
                return
            got = req.get_header(header)
            if "AUTH-WRONG-KEY" in faults and got:  # any key will do
                return
            if got != KEY:
                raise falcon.HTTPUnauthorized(title="Unauthorized", description="Missing or invalid API key.")

        def process_response(
            self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
        ) -> None:
            # Not a fault (the docs state no Content-Type): the JSON is labelled text/plain.
            if "LABELLED-TEXT" in faults and 200 <= resp.status_code < 300:
                resp.data = resp.render_body()
                resp.content_type = "text/plain"

    def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
        if "ERROR-BODY-JSON" in faults:
            resp.content_type = "text/plain"
            resp.text = f"{exc.title}"
            return
        if "DETAIL-ERRORS" in faults:  # not a fault: FastAPI's and DRF's error shape
            resp.content_type = "application/json"
            resp.text = json.dumps({"detail": exc.description or exc.title or "Error"})
            return
        resp.content_type = "application/json"
        resp.text = json.dumps({"error": exc.title or "Error", "message": exc.description or ""})

    def body(req: falcon.Request, operation_id: str) -> Any:
        try:
            data = req.get_media()
        except (falcon.MediaMalformedError, falcon.MediaNotFoundError):
            raise falcon.HTTPBadRequest(title="Bad request", description="The body is not JSON.") from None
        error = next(iter(VALIDATORS[operation_id].iter_errors(data)), None)
        if error is not None:
            raise falcon.HTTPBadRequest(title="Bad request", description=error.message[:200])
        return data

    def crm_id() -> str:
        return f"crm-{uuid.uuid4().hex[:12]}"

    class Health:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"status": "ok"}

    class Records:
        def __init__(self, kind: str, create: str, update: str) -> None:
            self.kind, self.create, self.update = kind, create, update

        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            items = body(req, self.create)[self.kind]
            resp.media = {
                "results": [{"externalId": item["externalId"], "crmId": crm_id()} for item in items]
            }

        def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
            items = body(req, self.update)[self.kind]
            if "PUT-OTHER-SHAPE" in faults:  # not a fault: the docs do not describe this answer
                resp.media = {"updated": len(items)}
                return
            resp.media = {"results": [{"crmId": item["crmId"], "success": True} for item in items]}

    class Sync:
        def __init__(self, operation_id: str) -> None:
            self.operation_id = operation_id

        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            body(req, self.operation_id)
            resp.media = {"results": []}

    class Associations:
        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            body(req, "createAssociations")
            resp.media = {"success": True, "created": 0}

    class Activities:
        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            data = body(req, "createActivity")
            kind = data["type"].lower() if "RESPONSE-SCHEMA" in faults else data["type"]
            resp.status = falcon.HTTP_201
            resp.media = {"id": f"activity-{uuid.uuid4().hex}", "type": kind}

    def complete(task: dict[str, Any], completed: bool) -> None:
        task["completed"] = completed
        task["completedAt"] = "2024-01-15T11:30:00Z" if completed else None

    class Tasks:
        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            data = body(req, "createTask")
            crash = "SERVER-NO-5XX" in faults and data.get("type") == "call"  # the docs' example has it
            if crash or "CRASH-ON-TASKS" in faults:
                with traffic.lock:
                    traffic.crashed.append(req.content_length or 0)
                raise RuntimeError("simulated crash")
            if "SLOW" in faults:
                time.sleep(1.5)
            task = {"id": f"task-{uuid.uuid4().hex}", "subject": data["subject"], "completed": False}
            task["completedAt"] = None
            with lock:
                tasks[task["id"]] = task
            resp.status = falcon.HTTP_201
            resp.media = task

    class Batch:
        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            ids = body(req, "getTasksBatch")["ids"]
            resp.media = [tasks[i] for i in dict.fromkeys(ids) if i in tasks]

        def on_patch(self, req: falcon.Request, resp: falcon.Response) -> None:
            data = body(req, "completeTasksBatch")
            found = [tasks[i] for i in dict.fromkeys(data["ids"]) if i in tasks]
            for task in found:
                complete(task, data["completed"])
            resp.media = found

    class Task:
        def _get(self, task_id: str) -> dict[str, Any]:
            if task_id not in tasks:
                raise falcon.HTTPNotFound(
                    title="Task not found", description=f"No task exists with ID: {task_id}"
                )
            return tasks[task_id]

        def on_get(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
            resp.media = self._get(task_id)

        def on_patch(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
            task = self._get(task_id)
            data = body(req, "updateTask")
            if "completed" in data:
                complete(task, data["completed"])
            if "subject" in data:
                task["subject"] = data["subject"]
            resp.media = task

    class Users:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            if "USERS-501" in faults:  # not a fault: USERS-OPTIONAL allows opting out with 501
                raise falcon.HTTPNotImplemented(title="Not implemented", description="No users feature.")
            resp.media = [{"id": "user-1", "name": "Ann"}]

    def crash(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]) -> None:
        resp.status = falcon.HTTP_500
        resp.media = {"error": "Internal error"}

    app = falcon.App(middleware=[Middleware()])
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, crash)
    app.add_route("/health", Health())
    app.add_route("/contacts", Records("contacts", "createContacts", "updateContacts"))
    app.add_route("/contacts/sync", Sync("syncContacts"))
    app.add_route("/companies", Records("companies", "createCompanies", "updateCompanies"))
    app.add_route("/companies/sync", Sync("syncCompanies"))
    app.add_route("/associations", Associations())
    app.add_route("/activities", Activities())
    app.add_route("/tasks", Tasks())
    app.add_route("/tasks/batch", Batch())
    app.add_route("/tasks/{task_id}", Task())
    app.add_route("/users", Users())
    return app


Serve = Callable[..., tuple[str, Traffic]]


def _stop(server: Any, thread: threading.Thread) -> None:
    # Closing from this thread races the server's own loop (waitress' trigger fd goes away under it);
    # the trigger runs the close inside the loop thread, and the loop ends once its map is empty.
    def close_everything() -> None:
        for channel in list(server.active_channels.values()):
            channel.close()
        server.close()

    server.trigger.pull_trigger(close_everything)
    thread.join(timeout=5)
    server.task_dispatcher.shutdown()


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a tiny server (faults by rule id) on a free port; every server is stopped at teardown."""
    running = []

    def start(*faults: str, header: str = "X-API-Key") -> tuple[str, Traffic]:
        traffic = Traffic()
        app = make_app(header=header, faults=frozenset(faults), traffic=traffic)
        server = create_server(app, host="127.0.0.1", port=0, threads=4)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.effective_port}", traffic

    yield start
    for server, thread in running:
        _stop(server, thread)
        assert not thread.is_alive()


def settings_for(url: str, **overrides: Any) -> RunSettings:
    return RunSettings(base_url=url, api_key=KEY, **overrides)


def failures(evidence: list[Evidence]) -> dict[str, set[str]]:
    """rule id -> the outcomes of its non-passing evidence."""
    out: dict[str, set[str]] = {}
    for item in evidence:
        if item.outcome in ("failed", "warning"):
            out.setdefault(item.rule_id, set()).add(item.outcome)
    return out


def assert_no_secret(evidence: list[Evidence]) -> None:
    assert KEY not in repr(evidence)


# --- the failure map ------------------------------------------------------------------------------------


def test_every_mapped_rule_is_in_the_catalogue() -> None:
    catalogue = load_catalogue()
    assert set(ENGINE_RULES) <= set(catalogue.ids)
    assert all(row.check not in EXCLUDED_CHECKS for row in ROWS)


@pytest.mark.parametrize(
    ("observation", "rule"),
    [
        (Observation("not_a_server_error", "POST /tasks", 500), "SERVER-NO-5XX"),
        (Observation("not_a_server_error", "GET /users", 501), None),  # USERS-OPTIONAL
        (Observation("not_a_server_error", "GET /users", 502), "SERVER-NO-5XX"),
        (Observation("response_schema_conformance", "POST /activities", 201), "RESPONSE-SCHEMA"),
        # Error bodies and labels are the suite's own judges' (OWN_JUDGED), never Schemathesis' checks.
        (Observation("response_schema_conformance", "POST /activities", 400), None),
        (Observation("response_schema_conformance", "POST /activities", 500), None),  # the 5xx is the finding
        (Observation("status_code_conformance", "GET /health", 404), None),
        (Observation("content_type_conformance", "GET /tasks/{taskId}", 200), None),
        (Observation("negative_data_rejection", "POST /tasks", 201), "INPUT-INVALID-REJECTED"),
        (Observation("positive_data_acceptance", "POST /tasks", 400), "INPUT-VALID-ACCEPTED"),
        (Observation("ignored_auth", "POST /tasks", 201, "no-key"), "AUTH-MISSING-KEY"),
        (Observation("ignored_auth", "POST /tasks", 201, "wrong-key"), "AUTH-WRONG-KEY"),
        (Observation("ensure_resource_availability", "GET /tasks/{taskId}", 404), "TASK-GET"),
        (Observation("ensure_resource_availability", "PUT /contacts", 404), None),  # not backed off tasks
        # A shadowed PATCH /tasks/batch "not finding" a new task is TASK-BATCH-ROUTE's, not TASK-GET's.
        (Observation("ensure_resource_availability", "PATCH /tasks/batch", 404), None),
        (Observation("unsupported_method", "DELETE /tasks", 200), None),
        (Observation("allow_header_conformance", "DELETE /tasks", 405), None),
    ],
)
def test_route(observation: Observation, rule: str | None) -> None:
    row = route(observation)
    assert (row.rule if row else None) == rule


def test_checks_follow_the_selected_rules() -> None:
    assert checks_for(["SERVER-NO-5XX"]) == ("not_a_server_error",)
    assert set(checks_for(["AUTH-WRONG-KEY", "TASK-GET"])) == {
        "ignored_auth",
        "ensure_resource_availability",
        "use_after_free",
    }


def test_config_enables_only_mapped_checks_and_caps_workers() -> None:
    settings = RunSettings(base_url="http://127.0.0.1:1", api_key=KEY, workers=8, seed=7)
    config = build_config(settings, BUDGETS["quick"], checks=checks_for(ENGINE_RULES))
    project = config.projects.default
    assert project.workers == (2 if sys.version_info >= (3, 12) else 1)
    assert config.seed == 7
    assert not config.cache.enabled
    for name in EXCLUDED_CHECKS:
        if name != "max_response_time":
            assert not project.checks.get_by_name(name=name).enabled
    assert not project.checks.get_by_name(name="some_custom_check").enabled
    assert KEY not in repr(project.headers)  # the key goes on the schema, not into the config dict


# --- against live servers -------------------------------------------------------------------------------


def test_conformant_server_passes(serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the run must leave nothing (.hypothesis, .schemathesis) in the cwd
    url, traffic = serve()
    messages: list[str] = []
    evidence = judge_generated(
        settings_for(url), load_catalogue(), progress=messages.append, budget=SMALL_ALL_PHASES
    )
    assert failures(evidence) == {}
    passed = {item.rule_id for item in evidence if item.outcome == "passed"}
    assert passed == {
        "SERVER-NO-5XX",
        "RESPONSE-SCHEMA",
        "RESPONSE-CONTENT-TYPE-JSON",
        "ERROR-BODY-JSON",
        "INPUT-INVALID-REJECTED",
        "INPUT-VALID-ACCEPTED",
    }
    assert all(item.source.startswith("schemathesis:") for item in evidence)
    assert traffic.requests > 100
    # The --max-writes gate rests on this estimate; ignored_auth probes and shrinking add a little.
    assert 0.75 * traffic.writes <= estimated_writes(SMALL_ALL_PHASES) <= 1.25 * traffic.writes
    assert list(tmp_path.iterdir()) == []
    for phase in ("coverage", "fuzzing", "stateful"):
        assert any(f"{phase} phase finished" in message for message in messages), messages
    # The coverage phase sends the schema's examples too: a phase of its own would send them twice.
    assert any("examples phase skipped" in message for message in messages), messages


@pytest.mark.parametrize(
    ("fault", "rule", "outcome"),
    [
        ("SERVER-NO-5XX", "SERVER-NO-5XX", "failed"),
        ("RESPONSE-SCHEMA", "RESPONSE-SCHEMA", "failed"),
        ("AUTH-MISSING-KEY", "AUTH-MISSING-KEY", "failed"),
        ("AUTH-WRONG-KEY", "AUTH-WRONG-KEY", "failed"),
        ("ERROR-BODY-JSON", "ERROR-BODY-JSON", "warning"),  # a SHOULD rule: a warning, never a failure
    ],
)
def test_broken_server_fails_the_right_rule(serve: Serve, fault: str, rule: str, outcome: str) -> None:
    url, _ = serve(fault)
    evidence = judge_generated(settings_for(url), load_catalogue(), budget=EXAMPLES_ONLY)
    found = [item for item in evidence if item.rule_id == rule and item.outcome == outcome]
    assert found, failures(evidence)
    assert_no_secret(evidence)
    item = found[0]
    assert item.source == "schemathesis:examples"
    assert item.expected and item.actual and item.message
    request = item.exchanges[-1].request
    if rule == "AUTH-MISSING-KEY":
        assert "X-API-Key" not in request.headers  # the probe that was let in carried no key
        assert item.exchanges[0].request.headers["X-API-Key"] == REDACTED  # the original did
    elif rule == "AUTH-WRONG-KEY":
        assert request.headers["X-API-Key"] not in (KEY, REDACTED)
    elif rule == "ERROR-BODY-JSON":  # any error answer, the refusal of a request without the key too
        assert request.headers.get("X-API-Key", REDACTED) == REDACTED
    else:
        assert request.headers["X-API-Key"] == REDACTED
    assert item.exchanges[-1].response is not None


@pytest.mark.parametrize(
    ("choice", "warned"),
    [
        # JSON labelled text/plain is still the documented JSON: only the label is a (SHOULD) warning.
        ("LABELLED-TEXT", {"RESPONSE-CONTENT-TYPE-JSON": {"warning"}}),
        # {"detail": ...} carries a message: no warning at all.
        ("DETAIL-ERRORS", {}),
        # The PUT answers' shape is a Decision of this contract, not of the docs.
        ("PUT-OTHER-SHAPE", {}),
    ],
)
def test_choices_the_docs_leave_open_are_not_schema_failures(
    serve: Serve, choice: str, warned: dict[str, set[str]]
) -> None:
    url, _ = serve(choice)
    budget = Budget(max_examples=2, stateful_steps=2, phases=("examples", "coverage"))
    evidence = judge_generated(settings_for(url), load_catalogue(), budget=budget)
    found = {rule: outcomes for rule, outcomes in failures(evidence).items() if rule not in GENERIC}
    assert found == warned
    passed = {item.rule_id for item in evidence if item.outcome == "passed"}
    assert "RESPONSE-SCHEMA" in passed and ("ERROR-BODY-JSON" in passed or choice == "LABELLED-TEXT")


def test_a_value_stored_from_an_invalid_write_is_not_blamed_on_the_read_that_answers_it() -> None:
    from types import SimpleNamespace

    collector = _Collector(
        rules={}, redactor=Redactor(secret="", header="X-API-Key"), progress=lambda _: None
    )
    mode = SimpleNamespace(is_negative=True)
    case = SimpleNamespace(
        operation=SimpleNamespace(label="POST /tasks"),
        meta=SimpleNamespace(generation=SimpleNamespace(mode=mode)),
    )
    accepted = SimpleNamespace(
        request=SimpleNamespace(body=b'{"subject": "x", "description": 42}'),
        response=SimpleNamespace(status_code=201),
    )
    collector._remember_stored(case, accepted)
    read_back = collector.schemas.response_problems(
        "getTask", 200, {"id": "t", "description": 42}, is_json=True, excused=collector._excused
    )
    assert read_back == []
    other = collector.schemas.response_problems(
        "getTask", 200, {"id": "t", "description": 43}, is_json=True, excused=collector._excused
    )
    assert [problem.field for problem in other] == ["description"]
    # A write the server refused stored nothing.
    collector.stored_invalid.clear()
    collector._remember_stored(
        case, SimpleNamespace(request=accepted.request, response=SimpleNamespace(status_code=400))
    )
    assert collector.stored_invalid == set()


def test_one_broken_rule_does_not_hide_another_on_the_same_operation(serve: Serve) -> None:
    # POST /tasks answers 500 to the docs' example and lets the other example in with any key.
    url, _ = serve("SERVER-NO-5XX", "AUTH-WRONG-KEY")
    evidence = judge_generated(settings_for(url), load_catalogue(), budget=EXAMPLES_ONLY)
    on_tasks = {
        item.rule_id
        for item in evidence
        if item.exchanges
        and item.exchanges[-1].request.method == "POST"
        and item.exchanges[-1].request.url.endswith("/tasks")
    }
    assert {"SERVER-NO-5XX", "AUTH-WRONG-KEY"} <= on_tasks, [e.message for e in evidence]


def test_server_error_evidence_carries_the_exchange(serve: Serve) -> None:
    url, _ = serve("SERVER-NO-5XX")
    evidence = judge_generated(settings_for(url), load_catalogue(), budget=EXAMPLES_ONLY)
    (item,) = [e for e in evidence if e.rule_id == "SERVER-NO-5XX"]
    exchange = item.exchanges[-1]
    assert exchange.request.method == "POST" and exchange.request.url.endswith("/tasks")
    assert exchange.request.body is not None and '"call"' in exchange.request.body
    assert exchange.response is not None and exchange.response.status == 500
    assert "Internal error" in exchange.response.body
    assert item.actual.startswith("HTTP 500")


def test_the_smallest_failing_request_is_kept(serve: Serve) -> None:
    # With continue-on-failure nothing is shrunk, so the engine keeps the smallest repro it saw.
    url, traffic = serve("CRASH-ON-TASKS")
    budget = Budget(max_examples=5, stateful_steps=2, phases=("fuzzing",))
    evidence = judge_generated(settings_for(url, only=("SERVER-NO-5XX",)), load_catalogue(), budget=budget)
    (item,) = [e for e in evidence if e.outcome == "failed"]
    body = item.exchanges[-1].request.body
    assert body is not None
    assert len(traffic.crashed) > 1
    assert len(body.encode()) == min(traffic.crashed)


def test_custom_key_header_is_sent_and_probed(serve: Serve) -> None:
    url, _ = serve(header="X-CRM-Token")
    settings = settings_for(url, api_key_header="X-CRM-Token")
    evidence = judge_generated(settings, load_catalogue(), budget=EXAMPLES_ONLY)
    assert failures(evidence) == {}  # had X-API-Key been sent, every request would have been refused

    url, _ = serve("AUTH-MISSING-KEY", header="X-CRM-Token")
    evidence = judge_generated(
        settings_for(url, api_key_header="X-CRM-Token"), load_catalogue(), budget=EXAMPLES_ONLY
    )
    found = [e for e in evidence if e.rule_id == "AUTH-MISSING-KEY"]
    assert found
    assert "X-CRM-Token" not in found[0].exchanges[-1].request.headers
    assert found[0].exchanges[0].request.headers["X-CRM-Token"] == REDACTED
    assert_no_secret(evidence)


def test_users_501_is_not_a_server_error(serve: Serve) -> None:
    url, _ = serve("USERS-501")
    budget = Budget(max_examples=2, stateful_steps=2, phases=("fuzzing",))
    evidence = judge_generated(settings_for(url), load_catalogue(), budget=budget)
    assert "SERVER-NO-5XX" not in failures(evidence)
    assert "INPUT-VALID-ACCEPTED" not in failures(evidence)


def test_no_answer_in_time_leaves_the_rule_not_judged_with_the_request(serve: Serve) -> None:
    # The docs set no response time: a request cut at --timeout shows neither a 5xx nor its absence.
    url, _ = serve("SLOW")
    settings = settings_for(url, timeout=0.3, only=("SERVER-NO-5XX",))
    evidence = judge_generated(settings, load_catalogue(), budget=EXAMPLES_ONLY)
    assert not [e for e in evidence if e.outcome == "failed"], evidence
    gaps = [e for e in evidence if e.rule_id == "SERVER-NO-5XX" and e.gap]
    assert gaps and "no whole answer within --timeout" in gaps[0].message, evidence
    exchange = gaps[0].exchanges[0]
    assert exchange.response is None and exchange.error
    assert exchange.request.url.endswith("/tasks")
    assert exchange.request.headers["X-API-Key"] == REDACTED


def test_nothing_reachable_raises_transport_error() -> None:
    with pytest.raises(ServerUnreachable, match="could not reach"):
        judge_generated(settings_for("http://127.0.0.1:9"), load_catalogue(), budget=EXAMPLES_ONLY)


def test_integrator_schemathesis_toml_is_ignored(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = serve("RESPONSE-SCHEMA", "AUTH-WRONG-KEY")
    baseline = judge_generated(settings_for(url), load_catalogue(), budget=EXAMPLES_ONLY)
    (tmp_path / "schemathesis.toml").write_text(
        'base-url = "http://127.0.0.1:9"\n'
        "workers = 8\n"
        "[generation]\nmax-examples = 1\n"
        "[checks]\nenabled = false\n"
        "[phases.examples]\nenabled = false\n"
        '[auth.openapi.ApiKeyAuth]\napi_key = "wrong"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    planted = judge_generated(settings_for(url), load_catalogue(), budget=EXAMPLES_ONLY)
    assert failures(planted) == failures(baseline)
    assert {"RESPONSE-SCHEMA", "AUTH-WRONG-KEY"} <= set(failures(planted))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schemathesis.toml"]


# --- the reference mock, as a subprocess (conformance never imports mock_server) ------------------------


@pytest.fixture
def reference_mock() -> Iterator[Callable[..., str]]:
    """Start `python -m mock_server --port 0` with the given faults; stop every one by pid at teardown."""
    if importlib.util.find_spec("mock_server") is None:
        pytest.skip("the reference mock (mock_server) is not installed")
    started: list[subprocess.Popen[str]] = []

    def start(*faults: str) -> str:
        argv = [
            sys.executable,
            "-m",
            "mock_server",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--log-level",
            "warning",
        ]
        env = {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}
        process = subprocess.Popen(
            [*argv, *(arg for fault in faults for arg in ("--fault", fault))],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        started.append(process)
        assert process.stdout is not None
        match = re.search(r"listening on (http://\S+)", process.stdout.readline())
        assert match, "the mock did not announce its address"
        return match.group(1)

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_reference_mock_passes(reference_mock: Callable[..., str]) -> None:
    evidence = judge_generated(settings_for(reference_mock()), load_catalogue(), budget=SMALL_ALL_PHASES)
    assert failures(evidence) == {}
    assert {item.rule_id for item in evidence if item.outcome == "passed"} >= {
        "SERVER-NO-5XX",
        "RESPONSE-SCHEMA",
    }


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [("RESPONSE-SCHEMA", "failed"), ("AUTH-WRONG-KEY", "failed"), ("ERROR-BODY-JSON", "warning")],
)
def test_reference_mock_faults_are_found(
    reference_mock: Callable[..., str], fault: str, outcome: str
) -> None:
    url = reference_mock(fault)
    evidence = judge_generated(settings_for(url, only=(fault,)), load_catalogue(), budget=EXAMPLES_ONLY)
    assert failures(evidence) == {fault: {outcome}}
    assert_no_secret(evidence)


# --- what is not run --------------------------------------------------------------------------------------


def test_unselected_rules_dry_run_and_write_limit_send_nothing(serve: Serve) -> None:
    url, traffic = serve()
    catalogue = load_catalogue()
    assert judge_generated(settings_for(url, only=("HEALTH-OK",)), catalogue) == []
    assert judge_generated(settings_for(url, dry_run=True), catalogue) == []
    skipped = judge_generated(settings_for(url, max_writes=5), catalogue)
    assert {item.rule_id for item in skipped} == set(ENGINE_RULES)
    assert {item.outcome for item in skipped} == {"skipped"}
    assert "--max-writes 5" in skipped[0].message
    assert traffic.requests == 0


def test_only_selected_rules_are_reported(serve: Serve) -> None:
    url, _ = serve("RESPONSE-SCHEMA", "AUTH-WRONG-KEY")
    evidence = judge_generated(
        settings_for(url, only=("AUTH-WRONG-KEY",)), load_catalogue(), budget=EXAMPLES_ONLY
    )
    assert {item.rule_id for item in evidence} == {"AUTH-WRONG-KEY"}


# --- tool errors are not verdicts -------------------------------------------------------------------------


def _collector() -> _Collector:
    rules = {rule.id: rule for rule in load_catalogue() if rule.id in ENGINE_RULES}
    return _Collector(rules=rules, redactor=Redactor(secret=KEY, header="X-API-Key"), progress=lambda _: None)


def test_internal_error_is_a_tool_error_not_a_server_failure() -> None:
    collector = _collector()
    collector.answers = 10
    collector.feed(
        events.NonFatalError(
            error=SystemError("AST constructor recursion depth mismatch"),
            phase=PhaseName.FUZZING,
            label="POST /tasks",
            related_to_operation=True,
        )
    )
    with pytest.raises(EngineError, match="not a verdict about the server") as raised:
        collector.finish(base_url="http://x", elapsed=0.0)
    assert "SERVER-NO-5XX" not in {item.rule_id for item in raised.value.evidence}


def test_fatal_error_is_a_tool_error() -> None:
    collector = _collector()
    collector.answers = 1
    collector.feed(events.FatalError(exception=RuntimeError("boom")))
    with pytest.raises(EngineError):
        collector.finish(base_url="http://x", elapsed=0.0)


# --- values a lenient server stored, read back in another share ---------------------------------------

SCHEMA_KEY = ("RESPONSE-SCHEMA", "GET /tasks/{taskId}", "Response violates schema")


def _share(**fields: Any) -> ShareResult:
    empty: dict[str, Any] = {
        "found": {},
        "sizes": {},
        "passes": {},
        "requests": {},
        "created": [],
        "answers": 1,
        "unreachable_operations": set(),
        "first_network_error": "",
        "connection_refused_only": True,
        "tool_errors": [],
        "server_unavailable": False,
        "interrupted": False,
        "timed_out": 0,
        "timed_out_requests": [],
        "out_of_time": False,
    }
    return ShareResult(**{**empty, **fields})


def _schema_failure(message: str) -> Evidence:
    return Evidence(
        rule_id="RESPONSE-SCHEMA", outcome="failed", source="schemathesis:fuzzing", message=message
    )


def test_a_read_back_of_what_another_share_stored_is_excused_once_every_share_is_in() -> None:
    # Share A read a task whose description is 5; share B is the one that wrote it (an invalid PATCH
    # the lenient server accepted). Neither share alone can tell; the merged pass can.
    read_back = _schema_failure("description: 5 is not of type 'string'")
    reader = _share(
        found={SCHEMA_KEY: read_back},
        sizes={SCHEMA_KEY: 10},
        schema_candidates={SCHEMA_KEY: [_SchemaCandidate(10, frozenset({("description", "5")}), read_back)]},
    )
    writer = _share(stored_invalid={("description", "5")})
    collector = _collector()
    collector.absorb(reader)
    collector.absorb(writer)
    assert [item.rule_id for item in collector.finish(base_url="http://x", elapsed=1.0)] == []


def test_an_excused_read_back_does_not_hide_a_schema_failure_nothing_excuses() -> None:
    read_back = _schema_failure("description: 5 is not of type 'string'")
    genuine = _schema_failure("id: 7 is not of type 'string'")
    reader = _share(
        found={SCHEMA_KEY: read_back},
        sizes={SCHEMA_KEY: 10},
        schema_candidates={
            SCHEMA_KEY: [
                _SchemaCandidate(10, frozenset({("description", "5")}), read_back),
                _SchemaCandidate(30, None, genuine),
            ]
        },
    )
    collector = _collector()
    collector.absorb(reader)
    collector.absorb(_share(stored_invalid={("description", "5")}))
    assert collector.finish(base_url="http://x", elapsed=1.0) == [genuine]
    # and without the write, the smaller one stands
    alone = _collector()
    alone.absorb(reader)
    assert alone.finish(base_url="http://x", elapsed=1.0) == [read_back]
