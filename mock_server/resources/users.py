"""GET /users: the stored users as a bare array (the route is not added at all under --no-users)."""

from __future__ import annotations

import falcon

from mock_server.errors import InternalError
from mock_server.runtime import Runtime

__all__ = ["Users"]


class Users:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._rt.applies(req, "USERS-OPTIONAL"):
            raise InternalError("The users list could not be loaded.")
        resp.media = self._rt.store.list("users")
