"""Validators compiled from the spec: date-time format, field paths, messages, lenient repairs."""

from __future__ import annotations

import pytest

from mock_server.errors import InvalidBody
from mock_server.validation import Validators, field_path, is_rfc3339_date_time


@pytest.fixture(scope="module")
def validators():
    return Validators()


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-15T10:00:00Z",
        "2024-01-15t10:00:00z",
        "2024-01-15T10:00:00.123456789+05:30",
        "0001-01-01T00:00:00-23:59",
        "2016-12-31T23:59:60Z",
        42,
    ],
)
def test_rfc3339_accepts(value):
    assert is_rfc3339_date_time(value)


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-15",
        "2024-01-15T10:00:00",
        "2024-01-15 10:00:00Z",
        "2024-02-30T10:00:00Z",
        "2024-01-15T24:00:00Z",
        "2024-01-15T10:00:00+2400",
        "2024-01-15T10:00:00+24:00",
        "tomorrow",
        "",
    ],
)
def test_rfc3339_refuses(value):
    assert not is_rfc3339_date_time(value)


def test_field_paths():
    assert field_path(["contacts", 0, "externalId"]) == "contacts[0].externalId"
    assert field_path([], "subject") == "subject"
    assert field_path([]) == "body"
    assert field_path([0, "a"]) == "[0].a"


def test_validators_exist_for_every_body_operation(validators):
    for operation_id in (
        "createContacts",
        "updateContacts",
        "syncContacts",
        "createCompanies",
        "updateCompanies",
        "syncCompanies",
        "createAssociations",
        "createActivity",
        "createTask",
        "updateTask",
        "getTasksBatch",
        "completeTasksBatch",
    ):
        assert validators.check_body(operation_id, _minimal(operation_id)) == (_minimal(operation_id), [])


def _minimal(operation_id):
    return {
        "createContacts": {"contacts": []},
        "updateContacts": {"contacts": []},
        "syncContacts": {"contacts": []},
        "createCompanies": {"companies": []},
        "updateCompanies": {"companies": []},
        "syncCompanies": {"companies": []},
        "createAssociations": {"associations": []},
        "createActivity": {"type": "EMAIL"},
        "createTask": {"subject": "s"},
        "updateTask": {},
        "getTasksBatch": {"ids": []},
        "completeTasksBatch": {"ids": [], "completed": True},
    }[operation_id]


def test_body_properties_come_from_the_spec_in_order(validators):
    assert validators.body_properties("createTask")[:2] == ("subject", "description")
    assert "externalId" in validators.body_properties("createContacts", "contacts", "[]")


@pytest.mark.parametrize(
    ("operation_id", "body", "message"),
    [
        ("createTask", [], "body must be an object."),
        ("createTask", {"subject": None}, "subject must be a string."),
        ("getTasksBatch", {"ids": [1]}, "ids[0] must be a string."),
        (
            "createCompanies",
            {"companies": [{"externalId": "a", "numberOfEmployees": "ten"}]},
            "companies[0].numberOfEmployees must be a number.",
        ),
        (
            "createAssociations",
            {"associations": [{"contactCRMId": "", "companyCRMId": "c"}]},
            "associations[0].contactCRMId must not be empty.",
        ),
    ],
)
def test_messages_name_the_field(validators, operation_id, body, message):
    with pytest.raises(InvalidBody) as caught:
        validators.check_body(operation_id, body)
    assert caught.value.message == message
    assert caught.value.why == f"validation error: {message[:-1]}"


def test_the_task_id_path_parameter_is_validated_from_the_spec(validators):
    validators.check_path_param("getTask", "taskId", "task-1")
    with pytest.raises(InvalidBody, match="taskId must not be empty"):
        validators.check_path_param("getTask", "taskId", "")


def test_huge_invalid_bodies_do_not_build_every_error(validators):
    with pytest.raises(InvalidBody, match=r"ids\[0\] must be a string"):
        validators.check_body("getTasksBatch", {"ids": [1] * 200_000})


def test_fill_missing_uses_neutral_values_from_the_schema(validators):
    top, items = frozenset({"top"}), frozenset({"items"})
    body, repairs = validators.check_body("createActivity", {}, fill_missing=top)
    assert body == {"type": "EMAIL"} and [str(r) for r in repairs] == ["filled type"]
    body, _ = validators.check_body("completeTasksBatch", {}, fill_missing=top)
    assert body == {"ids": [], "completed": False}
    body, _ = validators.check_body("createContacts", {"contacts": [{}]}, fill_missing=items)
    assert body == {"contacts": [{"externalId": "missing"}]}


def test_fill_missing_fills_only_the_level_it_is_asked_to(validators):
    with pytest.raises(InvalidBody, match="externalId"):
        validators.check_body("createContacts", {"contacts": [{}]}, fill_missing=frozenset({"top"}))
    with pytest.raises(InvalidBody, match="subject"):
        validators.check_body("createTask", {}, fill_missing=frozenset({"items"}))


def test_coerce_invalid_fixes_types_enums_and_formats(validators):
    body, repairs = validators.check_body(
        "createTask", {"subject": {"a": 1}, "dueDate": "soon", "ownerId": 12}, coerce_invalid=True
    )
    assert body == {"subject": '{"a":1}', "dueDate": "1970-01-01T00:00:00Z", "ownerId": "12"}
    assert sorted(str(r) for r in repairs) == ["coerced dueDate", "coerced ownerId", "coerced subject"]
    body, _ = validators.check_body(
        "completeTasksBatch", {"ids": [1, None], "completed": "no"}, coerce_invalid=True
    )
    assert body == {"ids": ["1", "null"], "completed": True}


def test_coercion_still_reports_missing_required_fields(validators):
    with pytest.raises(InvalidBody, match="subject is required"):
        validators.check_body("createTask", {"description": 5}, coerce_invalid=True)
