"""Tasks: create, read, complete (singly and in batches), the batch route, and timestamps.

Five tasks are created once and shared, each with one role, so that no check disturbs another:
T1 stays open and is only read; T2 is completed singly; T3 and T4 are completed in one batch; T5 is
completed in a batch that also names unknown ids.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Final

from conformance.checks._context import CheckContext
from conformance.checks._registry import check, req, shared
from conformance.checks._spec import is_iso8601_datetime
from conformance.checks._support import ids_of, is_id, objects_in, shown, violation
from conformance.checks.activities import created_activities
from conformance.client import Reply, path_for
from conformance.results import NotApplicable

__all__ = ["SharedTask", "usable_tasks"]

TASK_COUNT: Final = 5
_DUE: Final = "2030-01-15T10:00:00Z"
_TIMESTAMP_FIELDS: Final = ("dueDate", "completedAt", "occurredAt")
_TIMESTAMP_OPERATIONS: Final = frozenset(
    {"createTask", "getTask", "updateTask", "getTasksBatch", "completeTasksBatch", "createActivity"}
)


@dataclass(frozen=True, slots=True)
class SharedTask:
    id: str
    subject: str
    created: Reply


@dataclass(frozen=True, slots=True)
class TaskPool:
    bodies: tuple[dict[str, Any], ...]
    replies: tuple[Reply, ...]


def _task_id(reply: Reply) -> Any:
    return reply.json.get("id") if isinstance(reply.json, dict) else None


@shared("tasks", sends=(req("POST /tasks", TASK_COUNT),))
def created_tasks(ctx: CheckContext) -> TaskPool:
    bodies = []
    replies = []
    for n in range(1, TASK_COUNT + 1):
        body = {
            "subject": ctx.subject(f"Follow up with John ({n})"),
            "description": "Created by the Enginy conformance suite; safe to delete.",
            "type": "call",
            "dueDate": _DUE,
        }
        reply = ctx.client.post("/tasks", body, operation="createTask")
        bodies.append(body)
        replies.append(reply)
        ctx.note_created_from("task", reply)
    return TaskPool(bodies=tuple(bodies), replies=tuple(replies))


def usable_tasks(ctx: CheckContext) -> tuple[SharedTask, ...]:
    """The five shared tasks, or NotApplicable when create did not give five distinct ids."""
    pool = created_tasks(ctx)
    answered = [_task_id(reply) if reply.ok else None for reply in pool.replies]
    ids = [task_id for task_id in answered if is_id(task_id)]
    if len(ids) != len(answered) or len(set(ids)) != len(ids):
        raise NotApplicable(
            "POST /tasks did not give distinct task ids to work with, so this rule cannot be judged "
            "(see TASK-CREATE-RETURNS-ID)."
        )
    return tuple(
        SharedTask(id=task_id, subject=body["subject"], created=reply)
        for task_id, body, reply in zip(ids, pool.bodies, pool.replies, strict=True)
    )


@shared("open_task_read", needs=("tasks",), sends=(req("GET /tasks/{taskId}"),))
def open_task_read(ctx: CheckContext) -> Reply:
    t1 = usable_tasks(ctx)[0]
    return ctx.client.get(path_for("/tasks/{}", t1.id), operation="getTask")


@shared("single_completion", needs=("tasks",), sends=(req("PATCH /tasks/{taskId}"),))
def single_completion(ctx: CheckContext) -> Reply:
    t2 = usable_tasks(ctx)[1]
    return ctx.client.patch(path_for("/tasks/{}", t2.id), {"completed": True}, operation="updateTask")


@shared("batch_completion", needs=("tasks",), sends=(req("PATCH /tasks/batch"),))
def batch_completion(ctx: CheckContext) -> Reply:
    tasks = usable_tasks(ctx)
    body = {"ids": [tasks[2].id, tasks[3].id], "completed": True}
    return ctx.client.patch("/tasks/batch", body, operation="completeTasksBatch")


@shared("batch_read", needs=("tasks",), sends=(req("POST /tasks/batch"),))
def batch_read(ctx: CheckContext) -> Reply:
    t1 = usable_tasks(ctx)[0]
    return ctx.client.post("/tasks/batch", {"ids": [t1.id]}, operation="getTasksBatch")


@shared("completed_task_read", needs=("single_completion",), sends=(req("GET /tasks/{taskId}"),))
def completed_task_read(ctx: CheckContext) -> Reply:
    single_completion(ctx)
    t2 = usable_tasks(ctx)[1]
    return ctx.client.get(path_for("/tasks/{}", t2.id), operation="getTask")


def _completed_answer(reply: Reply) -> dict[str, Any] | None:
    """The task a single completion answered, when it answered one with completed true."""
    if reply.status == 200 and isinstance(reply.json, dict) and reply.json.get("completed") is True:
        return reply.json
    return None


def _batch_list(reply: Reply) -> list[dict[str, Any]] | None:
    if reply.status == 200 and isinstance(reply.json, list):
        return objects_in(reply)
    return None


def _missed_route(reply: Reply) -> bool:
    """The batch path did not reach a batch handler: no route (404/405), or a single task "batch"."""
    body = reply.json
    return reply.status in (404, 405) or (isinstance(body, dict) and body.get("id") == "batch")


def _require_batch_read(ctx: CheckContext) -> None:
    """A precondition of the batch-read rules: POST /tasks/batch answers an array for a known id.

    Without it, a wrong route or a wrong shape would fail every batch rule at once; each is reported
    once instead, under TASK-BATCH-ROUTE or TASK-BATCH-GET-ARRAY.
    """
    reply = batch_read(ctx)
    if _missed_route(reply):
        raise NotApplicable("POST /tasks/batch does not reach a batch handler (see TASK-BATCH-ROUTE).")
    if _batch_list(reply) is None:
        raise NotApplicable(
            "POST /tasks/batch does not answer an array even for a known id (see TASK-BATCH-GET-ARRAY)."
        )


def _batch_completion_done(ctx: CheckContext) -> bool:
    """Whether PATCH /tasks/batch answered both of its known tasks completed (TASK-BATCH-COMPLETE holds)."""
    tasks = usable_tasks(ctx)
    items = _batch_list(batch_completion(ctx))
    if items is None:
        return False
    found = {item.get("id"): item for item in items}
    return all(found.get(task.id, {}).get("completed") is True for task in tasks[2:4])


# --- create ---------------------------------------------------------------------------------------


@check("TASK-CREATE-RETURNS-ID", uses=("tasks",))
def created_task_has_distinct_id(ctx: CheckContext) -> None:
    pool = created_tasks(ctx)
    seen: dict[str, Reply] = {}
    for reply in pool.replies:
        if reply.status not in (200, 201):
            raise violation(
                "TASK-CREATE-RETURNS-ID",
                "POST /tasks did not answer 200 or 201.",
                expected="200 or 201 with the created task",
                actual=reply.describe(),
                replies=[reply],
            )
        task_id = _task_id(reply)
        if not is_id(task_id):
            raise violation(
                "TASK-CREATE-RETURNS-ID",
                "POST /tasks answered without a non-empty string id; Enginy tracks the task by it.",
                expected='a JSON object with "id", a non-empty string',
                actual=f"id {shown(task_id)}" if isinstance(reply.json, dict) else reply.describe(),
                replies=[reply],
            )
        if task_id in seen:
            raise violation(
                "TASK-CREATE-RETURNS-ID",
                f"Two different tasks were given the same id {shown(task_id)}.",
                expected=f"{TASK_COUNT} distinct ids for {TASK_COUNT} tasks",
                actual=f"id {shown(task_id)} twice",
                replies=[seen[task_id], reply],
            )
        seen[task_id] = reply


@check("TASK-CREATE-OPEN", uses=("tasks",))
def created_task_is_open_with_subject(ctx: CheckContext) -> None:
    pool = created_tasks(ctx)
    judged = 0
    for body, reply in zip(pool.bodies, pool.replies, strict=True):
        if reply.status not in (200, 201) or not isinstance(reply.json, dict):
            continue
        judged += 1
        answer = reply.json
        if answer.get("subject") != body["subject"]:
            raise violation(
                "TASK-CREATE-OPEN",
                "The created task does not echo the subject it was sent.",
                expected=f"subject {shown(body['subject'])}",
                actual=f"subject {shown(answer.get('subject'))}" if "subject" in answer else "no subject",
                replies=[reply],
            )
        if "completed" in answer and answer["completed"] is not False:
            raise violation(
                "TASK-CREATE-OPEN",
                "A task that was just created is not answered as open.",
                expected="completed false (or no completed field)",
                actual=f"completed {shown(answer['completed'])}",
                replies=[reply],
            )
    if not judged:
        raise NotApplicable("No POST /tasks answered a task object (see TASK-CREATE-RETURNS-ID).")


# --- read -----------------------------------------------------------------------------------------


@check("TASK-GET", uses=("open_task_read",))
def task_can_be_read_by_id(ctx: CheckContext) -> None:
    t1 = usable_tasks(ctx)[0]
    reply = open_task_read(ctx)
    if reply.status != 200 or not isinstance(reply.json, dict):
        raise violation(
            "TASK-GET",
            "GET /tasks/{taskId} with an id returned by create did not answer the task.",
            expected="200 with the task as a JSON object",
            actual=reply.describe(),
            replies=[t1.created, reply],
        )
    answer = reply.json
    # The rule asks for "that task (same id and subject)": the subject must come back too.
    if answer.get("id") != t1.id or answer.get("subject") != t1.subject:
        raise violation(
            "TASK-GET",
            "GET /tasks/{taskId} answered a different task than the one created.",
            expected=f"id {shown(t1.id)}, subject {shown(t1.subject)}",
            actual=", ".join(
                f"{name} {shown(answer[name])}" if name in answer else f"no {name}"
                for name in ("id", "subject")
            ),
            replies=[t1.created, reply],
        )


@check("TASK-GET-COMPLETION-FIELDS", uses=("open_task_read",))
def open_task_has_completion_fields(ctx: CheckContext) -> None:
    reply = open_task_read(ctx)
    if reply.status != 200 or not isinstance(reply.json, dict):
        raise NotApplicable("GET /tasks/{taskId} did not answer the task (see TASK-GET).")
    answer = reply.json
    if (
        answer.get("completed") is not False
        or "completedAt" not in answer
        or answer["completedAt"] is not None
    ):
        raise violation(
            "TASK-GET-COMPLETION-FIELDS",
            "An open task is not answered with completed false and completedAt null.",
            expected='"completed": false, "completedAt": null',
            actual=", ".join(
                f'"{name}": {shown(answer[name])}' if name in answer else f"no {name}"
                for name in ("completed", "completedAt")
            ),
            replies=[reply],
        )


@check("TASK-GET-UNKNOWN-404", sends=(req("GET /tasks/{taskId}"),))
def unknown_task_is_404(ctx: CheckContext) -> None:
    reply = ctx.client.get(path_for("/tasks/{}", ctx.unknown_id("task")), operation="getTask")
    if reply.status != 404:
        raise violation(
            "TASK-GET-UNKNOWN-404",
            "GET /tasks/{taskId} with an id that was never created did not answer 404.",
            expected="404",
            actual=reply.describe(),
            replies=[reply],
        )


@check("TASK-UPDATE-UNKNOWN", sends=(req("PATCH /tasks/{taskId}"),))
def unknown_task_update_is_refused(ctx: CheckContext) -> None:
    reply = ctx.client.patch(
        path_for("/tasks/{}", ctx.unknown_id("task")), {"completed": True}, operation="updateTask"
    )
    if not 400 <= reply.status < 500:
        raise violation(
            "TASK-UPDATE-UNKNOWN",
            "PATCH /tasks/{taskId} with an unknown id was not refused with a 4xx.",
            expected="404 (any 4xx is tolerated)",
            actual=reply.describe(),
            replies=[reply],
        )


# --- complete -------------------------------------------------------------------------------------


@check("TASK-COMPLETE", uses=("single_completion",))
def task_can_be_completed(ctx: CheckContext) -> None:
    t2 = usable_tasks(ctx)[1]
    reply = single_completion(ctx)
    answer = reply.json if isinstance(reply.json, dict) else None
    if reply.status != 200 or answer is None or answer.get("completed") is not True:
        raise violation(
            "TASK-COMPLETE",
            'PATCH /tasks/{taskId} with {"completed": true} did not answer the task completed.',
            expected='200 with the task, "completed": true',
            actual=reply.describe(),
            replies=[reply],
        )
    if "id" in answer and answer["id"] != t2.id:
        raise violation(
            "TASK-COMPLETE",
            "PATCH /tasks/{taskId} answered a different task than the one completed.",
            expected=f"id {shown(t2.id)}",
            actual=f"id {shown(answer['id'])}",
            replies=[reply],
        )


@check("TASK-COMPLETED-AT", uses=("single_completion", "batch_completion"))
def completed_task_has_completed_at(ctx: CheckContext) -> None:
    tasks = usable_tasks(ctx)
    judged: list[tuple[Reply, dict[str, Any]]] = []
    single = single_completion(ctx)
    answer = _completed_answer(single)
    if answer is not None:
        judged.append((single, answer))
    batch = batch_completion(ctx)
    items = _batch_list(batch) or []
    wanted = {tasks[2].id, tasks[3].id}
    judged.extend(
        (batch, item) for item in items if item.get("id") in wanted and item.get("completed") is True
    )
    if not judged:
        raise NotApplicable(
            "No completion answered a completed task (see TASK-COMPLETE, TASK-BATCH-COMPLETE)."
        )
    for reply, task in judged:
        # Only presence is judged here; whether the value is ISO 8601 is TIMESTAMPS-ISO8601's question.
        if task.get("completedAt") is None:
            raise violation(
                "TASK-COMPLETED-AT",
                f"{reply.sent.method} {reply.sent.path} answered a completed task without completedAt.",
                expected="completedAt, the time of completion",
                actual=f"completedAt {shown(task.get('completedAt'))}"
                if "completedAt" in task
                else "no completedAt",
                replies=[reply],
            )


@check(
    "TASK-COMPLETION-PERSISTS",
    uses=("completed_task_read", "batch_completion"),
    sends=(req("POST /tasks/batch"),),
)
def completion_is_stored(ctx: CheckContext) -> None:
    tasks = usable_tasks(ctx)
    judged = False
    single = single_completion(ctx)
    if _completed_answer(single) is not None:
        later = completed_task_read(ctx)
        judged = True
        if not (later.status == 200 and isinstance(later.json, dict) and later.json.get("completed") is True):
            raise violation(
                "TASK-COMPLETION-PERSISTS",
                "A task completed with PATCH /tasks/{taskId} is not completed when read again.",
                expected='GET /tasks/{taskId} answers "completed": true',
                actual=later.describe(),
                replies=[single, later],
            )
    batch = batch_completion(ctx)
    if _batch_list(batch) is not None:
        wanted = [tasks[2].id, tasks[3].id]
        later = ctx.client.post("/tasks/batch", {"ids": wanted}, operation="getTasksBatch")
        items = _batch_list(later)
        if items is not None:  # a non-array answer is TASK-BATCH-GET-ARRAY's to report
            judged = True
            found = {item.get("id"): item for item in items}
            open_ones = [task_id for task_id in wanted if found.get(task_id, {}).get("completed") is not True]
            if open_ones:
                raise violation(
                    "TASK-COMPLETION-PERSISTS",
                    "Tasks completed with PATCH /tasks/batch are not completed when read again.",
                    expected=f"POST /tasks/batch answers {shown(wanted)} with completed true",
                    actual=f"not completed (or missing): {shown(open_ones)}; answer {shown(later.json)}",
                    replies=[batch, later],
                )
    if not judged:
        raise NotApplicable(
            "No completion succeeded to be read back (see TASK-COMPLETE, TASK-BATCH-COMPLETE)."
        )


# --- timestamps -----------------------------------------------------------------------------------


@check("TIMESTAMPS-ISO8601", uses=("tasks", "completed_task_read", "activities"))
def timestamps_are_iso8601(ctx: CheckContext) -> None:
    # Make sure there is something to judge even when run alone; then judge every answer so far.
    created_tasks(ctx)
    for build in (completed_task_read, created_activities):
        with contextlib.suppress(NotApplicable):  # judged with what the other answers hold
            build(ctx)
    seen = 0
    for reply in list(ctx.client.log):
        if not reply.ok or not reply.valid or reply.sent.operation not in _TIMESTAMP_OPERATIONS:
            continue
        for item in objects_in(reply):
            for name in _TIMESTAMP_FIELDS:
                if name not in item or item[name] is None:
                    continue
                seen += 1
                if not is_iso8601_datetime(item[name]):
                    raise violation(
                        "TIMESTAMPS-ISO8601",
                        f"{reply.sent.method} {reply.sent.path} answered a {name} that is not ISO 8601.",
                        expected=f"{name} like 2024-01-15T10:00:00Z (any ISO 8601 date-time) or null",
                        actual=f"{name} {shown(item[name])}",
                        replies=[reply],
                    )
    if not seen:
        raise NotApplicable("No answer carried a timestamp (dueDate, completedAt, occurredAt) to judge.")


# --- batches --------------------------------------------------------------------------------------


@check("TASK-BATCH-GET-ARRAY", uses=("batch_read",))
def batch_read_answers_array(ctx: CheckContext) -> None:
    t1 = usable_tasks(ctx)[0]
    reply = batch_read(ctx)
    if _missed_route(reply):
        raise NotApplicable("POST /tasks/batch does not reach a batch handler (see TASK-BATCH-ROUTE).")
    if reply.status != 200 or not isinstance(reply.json, list):
        raise violation(
            "TASK-BATCH-GET-ARRAY",
            "POST /tasks/batch did not answer a bare JSON array.",
            expected="200 with a JSON array of tasks (not an object)",
            actual=reply.describe(),
            replies=[reply],
        )
    if t1.id not in ids_of(objects_in(reply)):
        raise violation(
            "TASK-BATCH-GET-ARRAY",
            "POST /tasks/batch did not answer the task it was asked for.",
            expected=f"an array holding the task {shown(t1.id)}",
            actual=shown(reply.json),
            replies=[reply],
        )


def _judge_known_only(rule_id: str, reply: Reply, known: list[str], unknown: list[str]) -> None:
    """A batch read answered 200 with exactly the known tasks (any order, repeats tolerated)."""
    if reply.status != 200:
        raise violation(
            rule_id,
            "POST /tasks/batch with unknown ids did not answer 200; unknown ids are to be omitted.",
            expected=f"200 with the tasks {shown(known)}",
            actual=reply.describe(),
            replies=[reply],
        )
    if not isinstance(reply.json, list):
        raise violation(
            rule_id,
            "POST /tasks/batch answered an array for a known id, but not for this request.",
            expected=f"200 with an array holding the tasks {shown(known)}",
            actual=reply.describe(),
            replies=[reply],
        )
    answered = ids_of(objects_in(reply))
    # Any order; a repeated id may be answered once or repeatedly (openapi.yaml, getTasksBatch).
    leaked = [task_id for task_id in answered if task_id in unknown]
    missing = [task_id for task_id in known if task_id not in answered]
    strange = [task_id for task_id in answered if task_id not in known and task_id not in unknown]
    if leaked or missing or strange or len(objects_in(reply)) != len(reply.json):
        raise violation(
            rule_id,
            "POST /tasks/batch did not answer exactly the known tasks.",
            expected=f"the tasks {shown(known)} and nothing for the unknown ids",
            actual=f"answered ids {shown(answered)}",
            replies=[reply],
        )


@check("TASK-BATCH-GET-OMITS-UNKNOWN", uses=("batch_read",), sends=(req("POST /tasks/batch", 2),))
def batch_read_omits_unknown_ids(ctx: CheckContext) -> None:
    _require_batch_read(ctx)
    t1 = usable_tasks(ctx)[0]
    unknown = [ctx.unknown_id("task", 1), ctx.unknown_id("task", 2)]
    mixed = ctx.client.post(
        "/tasks/batch", {"ids": [unknown[0], t1.id, unknown[1]]}, operation="getTasksBatch"
    )
    _judge_known_only("TASK-BATCH-GET-OMITS-UNKNOWN", mixed, [t1.id], unknown)
    only_unknown = ctx.client.post("/tasks/batch", {"ids": unknown}, operation="getTasksBatch")
    _judge_known_only("TASK-BATCH-GET-OMITS-UNKNOWN", only_unknown, [], unknown)


@check("TASK-BATCH-GET-EMPTY", uses=("batch_read",), sends=(req("POST /tasks/batch"),))
def batch_read_of_nothing_is_empty(ctx: CheckContext) -> None:
    _require_batch_read(ctx)
    reply = ctx.client.post("/tasks/batch", {"ids": []}, operation="getTasksBatch")
    if reply.status != 200 or reply.json != []:
        raise violation(
            "TASK-BATCH-GET-EMPTY",
            'POST /tasks/batch with {"ids": []} did not answer an empty array.',
            expected="200 []",
            actual=reply.describe(),
            replies=[reply],
        )


@check("TASK-BATCH-GET-LARGE", uses=("batch_read",), sends=(req("POST /tasks/batch"),))
def batch_read_takes_100_ids(ctx: CheckContext) -> None:
    _require_batch_read(ctx)
    known = [task.id for task in usable_tasks(ctx)]
    # 100 ids made of the known ones repeated: the size is judged apart from how unknown ids are handled
    # (TASK-BATCH-GET-OMITS-UNKNOWN), and repeats may be answered once or repeatedly.
    ids = [known[n % len(known)] for n in range(100)]
    reply = ctx.client.post("/tasks/batch", {"ids": ids}, operation="getTasksBatch")
    _judge_known_only("TASK-BATCH-GET-LARGE", reply, known, [])


@check("TASK-BATCH-COMPLETE", uses=("batch_completion",))
def batch_completion_completes(ctx: CheckContext) -> None:
    tasks = usable_tasks(ctx)
    wanted = [tasks[2].id, tasks[3].id]
    reply = batch_completion(ctx)
    if _missed_route(reply):
        raise NotApplicable("PATCH /tasks/batch does not reach a batch handler (see TASK-BATCH-ROUTE).")
    items = _batch_list(reply)
    if items is None:
        raise violation(
            "TASK-BATCH-COMPLETE",
            'PATCH /tasks/batch with {"ids": [...], "completed": true} did not answer an array of tasks.',
            expected="200 with a JSON array of the updated tasks",
            actual=reply.describe(),
            replies=[reply],
        )
    found = {item.get("id"): item for item in items}
    not_done = [task_id for task_id in wanted if found.get(task_id, {}).get("completed") is not True]
    if not_done:
        raise violation(
            "TASK-BATCH-COMPLETE",
            "PATCH /tasks/batch did not answer every task it completed with completed true.",
            expected=f"the tasks {shown(wanted)}, each with completed true",
            actual=f"missing or not completed: {shown(not_done)}; answer {shown(reply.json)}",
            replies=[reply],
        )


@check("TASK-BATCH-COMPLETE-OMITS-UNKNOWN", uses=("batch_completion",), sends=(req("PATCH /tasks/batch"),))
def batch_completion_omits_unknown_ids(ctx: CheckContext) -> None:
    if not _batch_completion_done(ctx):
        raise NotApplicable("PATCH /tasks/batch fails even with known ids only (see TASK-BATCH-COMPLETE).")
    t5 = usable_tasks(ctx)[4]
    unknown = ctx.unknown_id("task", 1)
    reply = ctx.client.patch(
        "/tasks/batch", {"ids": [unknown, t5.id], "completed": True}, operation="completeTasksBatch"
    )
    items = _batch_list(reply)
    if items is None:
        raise violation(
            "TASK-BATCH-COMPLETE-OMITS-UNKNOWN",
            "PATCH /tasks/batch with a known and an unknown id did not answer 200 with an array.",
            expected="200 with the known task, completed",
            actual=reply.describe(),
            replies=[reply],
        )
    found = {item.get("id"): item for item in items}
    if unknown in found or found.get(t5.id, {}).get("completed") is not True:
        raise violation(
            "TASK-BATCH-COMPLETE-OMITS-UNKNOWN",
            "PATCH /tasks/batch did not complete the known task and leave the unknown id out.",
            expected=f"the task {shown(t5.id)} with completed true, nothing for {shown(unknown)}",
            actual=f"answer {shown(reply.json)}",
            replies=[reply],
        )


@check("TASK-BATCH-ROUTE", uses=("batch_read", "batch_completion"))
def batch_paths_reach_batch_handlers(ctx: CheckContext) -> None:
    judged = 0
    for reply in (batch_read(ctx), batch_completion(ctx)):
        if _missed_route(reply):
            raise violation(
                "TASK-BATCH-ROUTE",
                f"{reply.sent.method} /tasks/batch did not reach a batch handler: it is missing, or "
                '/tasks/{taskId} handled it as the task "batch".',
                expected="the batch handler's answer: 200 with a JSON array",
                actual=reply.describe(),
                replies=[reply],
            )
        if _batch_list(reply) is not None:
            judged += 1
    if not judged:
        raise NotApplicable(
            "Neither batch path answered an array, so the route cannot be told apart from the shape "
            "(see TASK-BATCH-GET-ARRAY, TASK-BATCH-COMPLETE)."
        )
