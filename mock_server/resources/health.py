"""GET /health: 200 {"status": "ok"} once the key has been checked (by the middleware)."""

from __future__ import annotations

import falcon

from mock_server.errors import NotFound
from mock_server.runtime import Runtime

__all__ = ["ANSWER", "Health"]

ANSWER = {"status": "ok"}
"""What a healthy mock answers (also middleware.HealthShortcut's answer)."""


class Health:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._rt.applies(req, "HEALTH-OK"):
            raise NotFound("This server does not implement a health check.")
        resp.media = dict(ANSWER)
