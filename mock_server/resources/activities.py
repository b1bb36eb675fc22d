"""POST /activities: store the activity with every field it carries, answer it with its new id (201)."""

from __future__ import annotations

import falcon

from mock_server.bodies import json_body
from mock_server.errors import InvalidBody
from mock_server.runtime import Runtime

__all__ = ["Activities"]


class Activities:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        rt = self._rt
        body = json_body(rt, req, "createActivity")
        kind = body.get("type")
        if kind == "LINKEDIN_INMAIL" and rt.applies(req, "ACTIVITY-ALL-TYPES"):
            raise InvalidBody("type LINKEDIN_INMAIL is not supported.")
        content = body.get("body")
        if isinstance(content, str) and "<" in content and rt.applies(req, "ACTIVITY-RICH-CONTENT"):
            raise InvalidBody("body must not contain HTML.")
        activity = dict(body)
        subject = activity.get("subject")
        if (
            isinstance(subject, str)
            and ("[" in subject or "]" in subject)
            and rt.applies(req, "ACTIVITY-SUBJECT-VERBATIM")
        ):
            activity["subject"] = subject.replace("[", "").replace("]", "")
        rt.bend_timestamps(req, activity, ("occurredAt",))
        # Set last, so that an "id" key in the body cannot choose the stored id.
        activity["id"] = rt.ids("activity")
        rt.store.add("activities", [activity])
        answer = dict(activity)
        if rt.applies(req, "ACTIVITY-RETURNS-ID"):
            del answer["id"]
        if isinstance(kind, str) and rt.applies(req, "RESPONSE-SCHEMA"):
            answer["type"] = kind.lower()
        resp.status = falcon.HTTP_201
        resp.media = answer
