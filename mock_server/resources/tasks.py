"""Tasks: create, read, update/complete one, read many, complete many.

A stored task holds the fields of TaskCreate that were sent, plus ``id``, ``completed`` and
``completedAt``. Answers carry every Task field, ``null`` where unset (``subject`` is omitted rather
than null, since the spec does not allow a null subject). Fields the spec does not declare for tasks
are ignored rather than stored: echoing an undeclared ``completed: 123`` would break the answer's schema.

``/tasks/batch`` is a route of its own, added before ``/tasks/{task_id}`` in ``app.py``; Falcon
prefers the literal segment anyway, so ``batch`` never reaches the single-task handlers (unless the
TASK-BATCH-ROUTE fault sends it there).
"""

from __future__ import annotations

from typing import Any

import falcon

from mock_server.bodies import json_body
from mock_server.errors import BadRequest, InternalError, PayloadTooLarge, TaskNotFound
from mock_server.faults import clock_id
from mock_server.runtime import Runtime
from mock_server.storage import Record

__all__ = ["TaskBatch", "TaskItem", "TaskViews", "Tasks"]

_BATCH_FAULT_LIMIT = 50


class TaskViews:
    """The task fields the spec declares, read from it once, and how a stored task is answered."""

    def __init__(self, rt: Runtime) -> None:
        self.create_fields = rt.validators.body_properties("createTask")
        self.update_fields = tuple(
            name for name in rt.validators.body_properties("updateTask") if name != "completed"
        )
        # Every field an answer carries, in answer order, null where unset.
        self._template: dict[str, Any] = {
            "id": None,
            **dict.fromkeys(self.create_fields),
            "completed": False,
            "completedAt": None,
        }

    def view(self, task: Record) -> dict[str, Any]:
        # A 10,000-id batch builds 10,000 of these: the usual stored task (declared fields only, a
        # boolean ``completed``, a subject) is one C-level merge onto the answer's template; anything
        # else (a seed's stray field) takes the field-by-field way.
        answer = {**self._template, **task}
        if len(answer) != len(self._template):
            return self._view_field_by_field(task)
        if "subject" not in task:
            del answer["subject"]
        completed = answer["completed"]
        if completed is not True and completed is not False:
            answer["completed"] = bool(completed)
        return answer

    def _view_field_by_field(self, task: Record) -> dict[str, Any]:
        get = task.get
        answer: dict[str, Any] = {"id": task["id"]}
        answer.update(zip(self.create_fields, map(get, self.create_fields), strict=True))
        if "subject" not in task:
            answer.pop("subject", None)
        answer["completed"] = bool(get("completed", False))
        answer["completedAt"] = get("completedAt")
        return answer


def _shorten(task_id: str) -> str:
    return task_id if len(task_id) <= 100 else task_id[:100] + "..."


def _completion_change(patch: dict[str, Any], completed: bool | None, completed_at: str | None) -> Any:
    def change(task: Record) -> Record:
        new = {**task, **patch}
        if completed is True and not task.get("completed"):
            new["completed"] = True
            new["completedAt"] = completed_at
        elif completed is False:
            new["completed"] = False
            new["completedAt"] = None
        return new

    return change


class Tasks:
    """POST /tasks."""

    def __init__(self, rt: Runtime, views: TaskViews) -> None:
        self._rt = rt
        self._views = views

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        rt = self._rt
        body = json_body(rt, req, "createTask")
        # Generated input finds this in every run (coverage and fuzzing send "", digits, unicode);
        # Enginy's and the scripted checks' task types are plain words ("call", "email", "meeting").
        kind = body.get("type")
        if (
            isinstance(kind, str)
            and not (kind.isascii() and kind.isalpha())
            and rt.applies(req, "SERVER-NO-5XX")
        ):
            raise InternalError("The task could not be created.")
        task = {name: body[name] for name in self._views.create_fields if name in body}
        clocked = rt.applies(req, "clock-ids")
        task.update(
            id=clock_id("task", rt.clock()) if clocked else rt.ids("task"), completed=False, completedAt=None
        )
        rt.bend_timestamps(req, task, ("dueDate",))
        rt.store.add("tasks", [task])
        answer = self._views.view(task)
        if rt.applies(req, "TASK-CREATE-RETURNS-ID"):
            del answer["id"]
        if rt.applies(req, "TASK-CREATE-OPEN"):
            answer.update(completed=True, completedAt=rt.now())
        resp.status = falcon.HTTP_201
        resp.media = answer


class TaskItem:
    """GET and PATCH /tasks/{task_id}."""

    def __init__(self, rt: Runtime, views: TaskViews) -> None:
        self._rt = rt
        self._views = views

    def on_get(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        rt = self._rt
        rt.validators.check_path_param("getTask", "taskId", task_id)
        task = rt.store.get("tasks", task_id)
        if task is None:
            if rt.applies(req, "TASK-GET-UNKNOWN"):
                resp.media = {"id": task_id, "completed": False, "completedAt": None}
                return
            raise TaskNotFound(f"No task exists with ID: {_shorten(task_id)}")
        if rt.active("TASK-GET"):
            # An off-by-one lookup: the task stored just before this one (the first one, for the first).
            stored = rt.store.list("tasks")
            index = next((n for n, other in enumerate(stored) if other["id"] == task["id"]), 0)
            if len(stored) > 1 and rt.applies(req, "TASK-GET"):
                task = stored[index - 1 if index else 1]
        answer = self._views.view(task)
        if not answer["completed"] and rt.applies(req, "TASK-GET-COMPLETION-FIELDS"):
            del answer["completed"], answer["completedAt"]
        resp.media = answer

    def on_patch(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        self._rt.validators.check_path_param("updateTask", "taskId", task_id)
        self.patch(req, resp, task_id)

    def patch(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        """The update itself, without the path-parameter check (TASK-BATCH-ROUTE calls it with "batch")."""
        rt = self._rt
        body = json_body(rt, req, "updateTask")
        patch = {name: body[name] for name in self._views.update_fields if name in body}
        rt.bend_timestamps(req, patch, ("dueDate",))
        completed = body.get("completed")
        completed_at = rt.completion_time(req) if completed is True else None
        change = _completion_change(patch, completed, completed_at)
        if completed is True and rt.active("TASK-COMPLETION-PERSISTS"):
            found = rt.store.get("tasks", task_id)
            updated = [change(found)] if found is not None else []
            if updated:
                rt.applies(req, "TASK-COMPLETION-PERSISTS")
        else:
            updated = rt.store.update("tasks", [task_id], change)
        if not updated:
            if rt.applies(req, "TASK-UPDATE-UNKNOWN"):
                updated = [change({"id": task_id, "completed": False, "completedAt": None})]
            else:
                raise TaskNotFound(f"No task exists with ID: {_shorten(task_id)}")
        answer = self._views.view(updated[0])
        if completed is True and rt.applies(req, "TASK-COMPLETE"):
            answer["completed"] = False
        resp.media = answer


class TaskBatch:
    """POST /tasks/batch (read many) and PATCH /tasks/batch (complete many)."""

    def __init__(self, rt: Runtime, views: TaskViews, item: TaskItem) -> None:
        self._rt = rt
        self._views = views
        self._item = item

    def _stub_ids(self, ids: list[str], known: set[str]) -> list[str]:
        """Unknown ids that a stub task could carry: a stub must still be a valid Task ("" is not),
        and "batch" would send a client following the stub's id back here."""
        return [
            task_id
            for task_id in dict.fromkeys(ids)
            if task_id not in known and self._rt.validators.path_param_ok("getTask", "taskId", task_id)
        ]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        rt = self._rt
        if rt.applies(req, "TASK-BATCH-ROUTE"):
            # What a router that tried /tasks/{taskId} first would say: that resource has no POST.
            raise falcon.HTTPMethodNotAllowed(["GET", "OPTIONS", "PATCH"])
        ids: list[str] = json_body(rt, req, "getTasksBatch")["ids"]
        if not ids and rt.applies(req, "TASK-BATCH-GET-EMPTY"):
            raise BadRequest("ids must not be empty.")
        if len(ids) > _BATCH_FAULT_LIMIT and rt.applies(req, "TASK-BATCH-GET-LARGE"):
            raise PayloadTooLarge(f"At most {_BATCH_FAULT_LIMIT} ids per request.")
        found = rt.store.get_many("tasks", ids)
        answer = [self._views.view(task) for task in found]
        if rt.active("TASK-BATCH-GET-OMITS-UNKNOWN"):
            known = {task["id"] for task in found}
            stubs = [
                {"id": task_id, "completed": False, "completedAt": None}
                for task_id in self._stub_ids(ids, known)
            ]
            if stubs and rt.applies(req, "TASK-BATCH-GET-OMITS-UNKNOWN"):
                answer.extend(stubs)
        resp.media = {"tasks": answer} if rt.applies(req, "TASK-BATCH-GET-ARRAY") else answer

    def on_patch(self, req: falcon.Request, resp: falcon.Response) -> None:
        rt = self._rt
        if rt.applies(req, "TASK-BATCH-ROUTE"):
            self._item.patch(req, resp, "batch")
            return
        body = json_body(rt, req, "completeTasksBatch")
        ids: list[str] = body["ids"]
        completed: bool = body["completed"]
        completed_at = rt.completion_time(req) if completed else None
        change = _completion_change({}, completed, completed_at)
        if completed and rt.active("TASK-COMPLETION-PERSISTS"):
            updated = [change(task) for task in rt.store.get_many("tasks", ids)]
            if updated:
                rt.applies(req, "TASK-COMPLETION-PERSISTS")
        else:
            updated = rt.store.update("tasks", ids, change)
        answer = [self._views.view(task) for task in updated]
        if rt.active("TASK-BATCH-COMPLETE-OMITS-UNKNOWN"):
            known = {task["id"] for task in updated}
            stubs = [
                self._views.view(change({"id": task_id, "completed": False, "completedAt": None}))
                for task_id in self._stub_ids(ids, known)
            ]
            if stubs and rt.applies(req, "TASK-BATCH-COMPLETE-OMITS-UNKNOWN"):
                answer.extend(stubs)
        if completed and answer and rt.applies(req, "TASK-BATCH-COMPLETE"):
            for task in answer:
                task["completed"] = False
        resp.media = answer
