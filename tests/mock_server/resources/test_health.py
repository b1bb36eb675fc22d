"""GET /health."""

from __future__ import annotations


def test_health_is_200_ok_with_the_key(mock):
    result = mock.client.simulate_get("/health")
    assert result.status_code == 200
    assert result.json == {"status": "ok"}


def test_health_checks_the_key_like_every_operation(mock):
    assert mock.client.simulate_get("/health", headers={"X-API-Key": ""}).status_code == 401
    assert mock.client.simulate_get("/health", headers={"X-API-Key": "wrong"}).status_code == 401
