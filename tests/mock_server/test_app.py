"""The app as a whole: routing, the one error body, authentication on every operation, the catch-all."""

from __future__ import annotations

import inspect
import logging

import falcon
import falcon.testing
import pytest

import mock_server
from enginy_spec import operations
from mock_server import MemoryStore
from mock_server.errors import FaultSpecError, MisconfigurationError, SeedError

OPERATIONS = list(operations().values())


def concrete(path: str) -> str:
    return path.replace("{taskId}", "task-1")


def test_public_surface_is_small_sorted_and_exactly_what_the_package_exports():
    public = {
        name
        for name, value in vars(mock_server).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert mock_server.__all__ == sorted(mock_server.__all__)
    assert set(mock_server.__all__) == public


def test_unknown_route_is_404_json(mock):
    result = mock.client.simulate_get("/nope")
    assert result.status_code == 404
    assert result.json == {
        "error": "Not found",
        "message": "No route matches this path; see the OpenAPI document for the 15 operations.",
    }
    assert mock.journal()[0]["why"] == "no route: GET /nope"


def test_wrong_method_is_405_json_with_allow(mock):
    result = mock.client.simulate_delete("/contacts")
    assert result.status_code == 405
    assert set(result.headers["allow"].split(", ")) == {"POST", "PUT", "OPTIONS"}
    assert result.json["error"] == "Method not allowed"


@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning")
def test_unknown_http_method_is_400_json(mock):
    result = mock.client.simulate_request("BREW", "/tasks")
    assert result.status_code == 400
    assert result.json == {"error": "Bad request", "message": "Invalid HTTP method"}


def test_options_lists_the_methods(mock):
    result = mock.client.simulate_options("/tasks/batch")
    assert result.status_code == 200
    assert set(result.headers["allow"].split(", ")) == {"POST", "PATCH"}


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.operation_id)
@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "The X-API-Key header is missing."),
        ({"X-API-Key": "wrong"}, "The key in the X-API-Key header is not valid."),
        ({"X-API-Key": ""}, "The key in the X-API-Key header is not valid."),
        ({"Authorization": "Bearer test-key-0123"}, "The X-API-Key header is missing."),
    ],
    ids=["missing", "wrong", "empty", "other-header"],
)
def test_every_operation_refuses_a_missing_or_wrong_key_with_401_json(mock, operation, headers, message):
    result = mock.bare.simulate_request(operation.method, concrete(operation.path), headers=headers, json={})
    assert result.status_code == 401
    assert result.json == {"error": "Unauthorized", "message": message}


def test_header_name_is_configurable_and_several_keys_work(make_mock):
    mock = make_mock(api_key_header="X-Crm-Token", api_keys=("first-key", "second-key"))
    for key in ("first-key", "second-key"):
        assert mock.bare.simulate_get("/health", headers={"x-crm-token": key}).status_code == 200
    assert mock.bare.simulate_get("/health", headers={"X-API-Key": "first-key"}).status_code == 401


def test_unknown_paths_need_the_key_too(mock):
    assert mock.bare.simulate_get("/nope").status_code == 401


class ExplodingStore(MemoryStore):
    def get(self, kind, record_id):
        raise RuntimeError("disk on fire")


def test_unexpected_errors_are_a_generic_500_and_a_logged_traceback(make_mock, caplog):
    mock = make_mock(store=ExplodingStore())
    with caplog.at_level(logging.ERROR, logger="mock_server"):
        result = mock.client.simulate_get("/tasks/task-1")
    assert result.status_code == 500
    assert result.json == {
        "error": "Internal server error",
        "message": "The mock failed unexpectedly; its log has the details.",
    }
    assert "disk on fire" not in result.text
    (record,) = caplog.records
    assert record.getMessage() == "Unhandled RuntimeError while serving GET /tasks/task-1"
    assert "disk on fire" in caplog.text and mock.api_key not in caplog.text
    assert mock.journal()[0]["why"] == "unhandled error: RuntimeError"


def test_body_over_the_limit_is_413_judged_from_content_length(make_mock):
    mock = make_mock(max_body_bytes=100)
    result = mock.client.simulate_post("/tasks", body=b'{"subject": "' + b"x" * 200 + b'"}')
    assert result.status_code == 413
    assert result.json["error"] == "Payload too large"
    assert mock.client.simulate_post("/tasks", json={"subject": "x" * 50}).status_code == 201


def test_body_over_the_limit_is_413_even_without_content_length(make_mock):
    mock = make_mock(max_body_bytes=100)
    environ = falcon.testing.create_environ(
        "/tasks", method="POST", body=b"[" * 500, headers={"X-API-Key": mock.api_key}
    )
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True  # as waitress promises
    result = falcon.testing.StartResponseMock()
    body = b"".join(mock.app(environ, result))
    assert result.status.startswith("413") and b"Payload too large" in body


def test_malformed_content_length_is_400_json(mock):
    environ = falcon.testing.create_environ(
        "/tasks", method="POST", body=b"{}", headers={"X-API-Key": mock.api_key}
    )
    environ["CONTENT_LENGTH"] = "lots"
    result = falcon.testing.StartResponseMock()
    body = b"".join(mock.app(environ, result))
    assert result.status.startswith("400") and b'"error":"Invalid header value"' in body


def test_bad_configuration_is_refused_when_the_app_is_built(make_mock):
    with pytest.raises(FaultSpecError):
        make_mock(faults=("NOT-A-FAULT",))
    with pytest.raises(SeedError, match=r"Seed tasks\[0\]: subject must be a string"):
        make_mock(seed_data={"tasks": [{"subject": 1}]})
    with pytest.raises(MisconfigurationError, match="differ from every API key"):
        make_mock(admin_token="test-key-0123")
    with pytest.raises(MisconfigurationError, match="not a usable header name"):
        make_mock(api_key_header="X_API_KEY")


def test_seeded_records_are_there_at_start_and_restored_by_reset(make_mock):
    seed = {"tasks": [{"id": "task-seeded", "subject": "From the seed"}]}
    mock = make_mock(seed_data=seed)
    assert mock.client.simulate_get("/tasks/task-seeded").json["subject"] == "From the seed"
    mock.client.simulate_patch("/tasks/task-seeded", json={"completed": True})
    mock.create_task()
    mock.admin("POST", "reset")
    assert mock.client.simulate_get("/tasks/task-seeded").json["completed"] is False
    assert len(mock.admin("GET", "records", params={"kind": "tasks"}).json["tasks"]) == 1


def test_the_app_factory_uses_the_injected_store(make_mock):
    store = MemoryStore()
    mock = make_mock(store=store)
    mock.create_task(subject="in my store")
    assert store.list("tasks")[0]["subject"] == "in my store"
