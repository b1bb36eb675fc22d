"""``create_app``: builds the Falcon app and wires everything (routes, middleware, error handling) here.

Error handling, in one place:

* every ``falcon.HTTPError`` (ours and Falcon's own 404/405/400) is rendered by ``_ErrorSerializer``
  into the one body ``{"error": title, "message": sentence}``; Falcon keeps its headers (``Allow``);
* ``DropConnection`` (a transport fault) is journaled and re-raised for the waitress integration;
* anything else is a bug: logged with its traceback (no headers, so no key) and answered with a
  generic JSON 500. The hostile-input tests prove no input reaches it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import falcon
import falcon.media

from enginy_spec import load_spec
from mock_server import admin, docs_ui
from mock_server.bodies import dumps
from mock_server.config import MockConfig
from mock_server.errors import ApiError, DropConnection, InternalError, describe_foreign_error, error_body
from mock_server.faults import FaultState, parse_faults
from mock_server.inspector import Inspector
from mock_server.journal import Journal
from mock_server.middleware import Gate, HealthShortcut, JournalRecorder, is_tool_path
from mock_server.resources import health
from mock_server.resources.activities import Activities
from mock_server.resources.associations import Associations
from mock_server.resources.records import COMPANIES, CONTACTS, Records, RecordSync
from mock_server.resources.tasks import TaskBatch, TaskItem, Tasks, TaskViews
from mock_server.resources.users import Users
from mock_server.runtime import Clock, IdSource, Runtime, note, utc_now, uuid_ids
from mock_server.storage import Kind, MemoryStore, Record, Store
from mock_server.validation import Validators

__all__ = ["MockApp", "create_app", "initial_records", "spec_example_users"]

logger = logging.getLogger("mock_server")


def spec_example_users() -> list[Record]:
    """The three users of the spec's listUsers example, the default pick-list."""
    example = load_spec()["paths"]["/users"]["get"]["responses"]["200"]["content"]["application/json"][
        "example"
    ]
    return [dict(user) for user in example]


def initial_records(config: MockConfig, validators: Validators, ids: IdSource) -> dict[Kind, list[Record]]:
    """The records present at start and after a reset: the seed data, and users (the spec's by default)."""
    document: dict[str, Any] = dict(config.seed_data or {})
    document.setdefault("users", spec_example_users())
    return admin.parse_seed(document, validators, ids)


class _ErrorSerializer:
    """Renders every HTTPError as the one JSON error body (or as text under the ERROR-BODY-JSON fault)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def __call__(self, req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
        if isinstance(error, ApiError):
            title, message, why = error.fixed_title, error.message, error.why
        else:
            title, message, why = describe_foreign_error(error, req.method, req.path)
        note(req, why)
        if not is_tool_path(req.path) and self._rt.applies(req, "ERROR-BODY-JSON"):
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = f"{title}: {message}"
            return
        resp.content_type = falcon.MEDIA_JSON
        resp.data = error_body(title, message)


class MockApp(falcon.App[falcon.Request, falcon.Response]):
    """The Falcon app with the health shortcut in front (see ``middleware.HealthShortcut``)."""

    shortcut: HealthShortcut | None = None

    def __call__(self, env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.shortcut is not None:
            answer = self.shortcut(env, start_response)
            if answer is not None:
                return answer
        return super().__call__(env, start_response)


class _DropHandler:
    def __init__(self, recorder: JournalRecorder) -> None:
        self._recorder = recorder

    def __call__(
        self, req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]
    ) -> None:
        # The middleware's process_response will not run: the exception leaves the app.
        self._recorder.record(req, 0, None)
        raise ex


def _unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]) -> None:
    logger.error("Unhandled %s while serving %s %s", type(ex).__name__, req.method, req.path, exc_info=ex)
    raise InternalError(
        "The mock failed unexpectedly; its log has the details.", why=f"unhandled error: {type(ex).__name__}"
    )


def create_app(
    config: MockConfig,
    *,
    store: Store | None = None,
    clock: Clock = utc_now,
    ids: IdSource = uuid_ids,
    journal: Journal | None = None,
    faults: FaultState | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """Build the mock. Raises MisconfigurationError (FaultSpecError, SeedError) for bad fault names or seeds.

    The store is the caller's to close; a MemoryStore is made when none is given. ``journal`` and
    ``faults`` default to process memory, built from the config; ``--workers`` passes the shared ones
    (``mock_server.shared``), already holding the config's faults.
    """
    validators = Validators()
    rt = Runtime(
        config=config,
        store=store if store is not None else MemoryStore(),
        clock=clock,
        ids=ids,
        faults=faults
        if faults is not None
        else FaultState(parse_faults(config.fault_specs), seed=config.fault_seed),
        validators=validators,
        journal=journal if journal is not None else Journal(config.journal_size),
        initial_records=initial_records(config, validators, ids),
    )
    rt.restore_initial_records()

    # Journal, transport faults, authentication, LOAD-P95-LATENCY, labels: see middleware.Gate.
    gate = Gate(rt)
    middleware: list[Any] = [gate]
    app = MockApp(media_type=falcon.MEDIA_JSON, middleware=middleware)
    app.shortcut = HealthShortcut(rt, gate, dumps(health.ANSWER))
    json_handler = falcon.media.JSONHandler(dumps=dumps)
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.set_error_serializer(_ErrorSerializer(rt))
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(DropConnection, _DropHandler(gate.recorder))

    views = TaskViews(rt)
    task_item = TaskItem(rt, views)
    app.add_route("/health", health.Health(rt))
    app.add_route("/contacts", Records(rt, CONTACTS))
    app.add_route("/contacts/sync", RecordSync(rt, CONTACTS))
    app.add_route("/companies", Records(rt, COMPANIES))
    app.add_route("/companies/sync", RecordSync(rt, COMPANIES))
    app.add_route("/associations", Associations(rt))
    app.add_route("/activities", Activities(rt))
    app.add_route("/tasks", Tasks(rt, views))
    # The literal route first: "batch" is never a task id (Falcon prefers literals anyway).
    app.add_route("/tasks/batch", TaskBatch(rt, views, task_item))
    app.add_route("/tasks/{task_id}", task_item)
    if config.users_enabled:
        app.add_route("/users", Users(rt))

    app.add_route("/__admin/reset", admin.AdminReset(rt))
    app.add_route("/__admin/seed", admin.AdminSeed(rt))
    app.add_route("/__admin/records", admin.AdminRecords(rt))
    app.add_route("/__admin/journal", admin.AdminJournal(rt))
    app.add_route("/__admin/journal.har", admin.AdminJournalExport(rt, fmt="har"))
    app.add_route("/__admin/journal.jsonl", admin.AdminJournalExport(rt, fmt="jsonl"))
    app.add_route("/__admin/faults", admin.AdminFaults(rt))
    app.add_route("/__admin/inspector", Inspector(rt))

    # Public: the contract and Swagger UI, no key (see docs_ui and middleware.Authentication).
    docs_index = docs_ui.DocsIndex()
    app.add_route("/docs", docs_index)
    app.add_route("/docs/", docs_index)
    app.add_route("/docs/openapi.json", docs_ui.DocsSpec())
    initializer = docs_ui.DocsInitializer(api_key_header=config.api_key_header)
    app.add_route("/docs/swagger-initializer.js", initializer)
    app.add_route("/docs/static/{name}", docs_ui.DocsStatic())
    return app
