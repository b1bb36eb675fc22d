"""GET /users: the spec example's three users by default, seeded ones, or switched off."""

from __future__ import annotations


def test_users_default_to_the_spec_example(mock):
    result = mock.client.simulate_get("/users")
    assert result.status_code == 200
    assert result.json == [
        {"id": "user-123", "name": "John Smith", "email": "john@acme.com"},
        {"id": "user-456", "name": "Jane Doe", "email": "jane@acme.com"},
        {"id": "user-789", "name": "Sales Bot"},
    ]


def test_users_come_from_seed_data_when_it_has_them(make_mock):
    mock = make_mock(seed_data={"users": [{"id": "u-1", "name": "Only One"}]})
    assert mock.client.simulate_get("/users").json == [{"id": "u-1", "name": "Only One"}]


def test_users_switched_off_answer_404_json_and_still_check_the_key(make_mock):
    mock = make_mock(users_enabled=False)
    result = mock.client.simulate_get("/users")
    assert result.status_code == 404
    assert result.headers["content-type"] == "application/json"
    assert result.json["error"] == "Not found"
    assert mock.client.simulate_get("/users", headers={"X-API-Key": "wrong"}).status_code == 401
