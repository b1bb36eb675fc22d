"""POST /activities."""

from __future__ import annotations

import pytest

EMAIL = {
    "type": "EMAIL",
    "subject": "[1/3] [FROM Acme Corp] John Smith",
    "body": "<p>Hi Jane, ¿qué tal? 你好</p>",
    "direction": "OUTBOUND",
    "ownerId": "user-123",
    "occurredAt": "2024-12-31T10:00:00Z",
    "contactId": "contact_8f3k2j",
    "companyId": "account_4k8j2m",
    "metadata": {"messageId": "email-msg-123", "sequenceIndex": 1, "sequenceMessageCount": 3},
}


def test_activity_is_stored_with_every_field_and_echoed_with_its_id(mock):
    result = mock.client.simulate_post("/activities", json={**EMAIL, "custom": {"nested": [1, 2]}})
    assert result.status_code == 201
    assert result.json == {**EMAIL, "custom": {"nested": [1, 2]}, "id": "activity-1"}
    stored = mock.admin("GET", "records", params={"kind": "activities"}).json["activities"]
    assert stored == [result.json]


@pytest.mark.parametrize("kind", ["EMAIL", "LINKEDIN", "LINKEDIN_CONNECTION", "LINKEDIN_INMAIL"])
@pytest.mark.parametrize("direction", ["INBOUND", "OUTBOUND"])
def test_every_type_and_direction_is_accepted(mock, kind, direction):
    result = mock.client.simulate_post("/activities", json={"type": kind, "direction": direction})
    assert result.status_code == 201
    assert result.json["type"] == kind


def test_ids_are_distinct(mock):
    ids = {mock.client.simulate_post("/activities", json={"type": "LINKEDIN"}).json["id"] for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"subject": "no type"}, "type is required."),
        ({"type": "CALL"}, "type must be one of EMAIL, LINKEDIN, LINKEDIN_CONNECTION, LINKEDIN_INMAIL."),
        ({"type": "EMAIL", "direction": "SIDEWAYS"}, "direction must be one of INBOUND, OUTBOUND."),
        ({"type": "EMAIL", "metadata": []}, "metadata must be an object."),
        (
            {"type": "EMAIL", "occurredAt": "2024-12-31 10:00"},
            "occurredAt must be an ISO 8601 date-time such as 2024-01-15T10:00:00Z.",
        ),
    ],
)
def test_invalid_activities_are_400_naming_the_field(mock, body, message):
    result = mock.client.simulate_post("/activities", json=body)
    assert result.status_code == 400
    assert result.json == {"error": "Invalid body", "message": message}
