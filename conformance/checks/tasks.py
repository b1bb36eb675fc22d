"""Tasks: create, read, complete (singly and in batches), the batch route, and timestamps.

Five tasks are created one after another and shared, each with one role, so that no check disturbs
another: T1 stays open and is only read; T2 is completed singly; T3 and T4 are completed in one batch; T5
is completed in a batch that also names unknown ids. Thirty-two more are created at the same moment, for
the one property only concurrency can break (distinct ids). T2, T3 and T4 are read while still open
before they are completed, so that a read served from a stale cache after the completion is caught.

A field an answer leaves out is "not shown", never wrong: each rule judges what the answers show, and a
rule that no answer shows anything about is not judged (it says which rule asks for the field).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from conformance import judges
from conformance.checks._context import CheckContext
from conformance.checks._registry import check, req, shared
from conformance.checks._spec import is_iso8601_datetime
from conformance.checks._support import ids_of, is_id, lost_note, objects_in, same_id, shown, violation
from conformance.checks.activities import created_activities
from conformance.client import Reply, Request, path_for
from conformance.results import NotApplicable, RuleViolation

__all__ = ["SharedTask", "usable_tasks"]

TASK_COUNT: Final = 5
CONCURRENT_TASKS: Final = 32
_DUE: Final = "2030-01-15T10:00:00Z"
_TIMESTAMP_FIELDS: Final = ("dueDate", "completedAt", "occurredAt")
_TIMESTAMP_OPERATIONS: Final = frozenset(
    {"createTask", "getTask", "updateTask", "getTasksBatch", "completeTasksBatch", "createActivity"}
)
# Ids no server gave, chosen to look like something: names of built-in properties of JavaScript objects
# (a store that is a plain object finds them), and a very long one (a database column too short).
_LOOKALIKE_IDS: Final = ("constructor", "__proto__", "toString")
_LONG_ID_LENGTH: Final = 512


@dataclass(frozen=True, slots=True)
class SharedTask:
    id: str
    subject: str
    created: Reply


@dataclass(frozen=True, slots=True)
class TaskPool:
    bodies: tuple[dict[str, Any], ...]
    replies: tuple[Reply, ...]
    lost: int = 0  # requests of a burst that got no usable answer (left out of bodies and replies)


def _task_id(reply: Reply) -> Any:
    return reply.json.get("id") if isinstance(reply.json, dict) else None


def _task_body(ctx: CheckContext, n: int | str) -> dict[str, Any]:
    return {
        "subject": ctx.subject(f"Follow up with John ({n})"),
        "description": "Created by the Enginy conformance suite; safe to delete.",
        "type": "call",
        "dueDate": _DUE,
    }


@shared("tasks", sends=(req("POST /tasks", TASK_COUNT),))
def created_tasks(ctx: CheckContext) -> TaskPool:
    bodies = []
    replies = []
    for n in range(1, TASK_COUNT + 1):
        body = _task_body(ctx, n)
        reply = ctx.client.post("/tasks", body, operation="createTask")
        bodies.append(body)
        replies.append(reply)
        ctx.note_created_from("task", reply)
    return TaskPool(bodies=tuple(bodies), replies=tuple(replies))


@shared("concurrent_tasks", sends=(req("POST /tasks", CONCURRENT_TASKS),))
def concurrent_tasks(ctx: CheckContext) -> TaskPool:
    bodies = [_task_body(ctx, f"together {n}") for n in range(1, CONCURRENT_TASKS + 1)]
    replies = ctx.client.gather(
        [Request("POST", "/tasks", operation="createTask", json=body) for body in bodies]
    )
    answered = [(body, reply) for body, reply in zip(bodies, replies, strict=True) if reply is not None]
    for _, reply in answered:
        ctx.note_created_from("task", reply)
    return TaskPool(
        bodies=tuple(body for body, _ in answered),
        replies=tuple(reply for _, reply in answered),
        lost=len(bodies) - len(answered),
    )


def _given_ids(ctx: CheckContext) -> set[str]:
    """Every task id the server gave the suite's creates."""
    replies = created_tasks(ctx).replies + concurrent_tasks(ctx).replies
    return {task_id for reply in replies if is_id(task_id := _task_id(reply))}


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


# --- the shared reads and completions ---------------------------------------------------------------


@shared("open_task_read", needs=("tasks",), sends=(req("GET /tasks/{taskId}"),))
def open_task_read(ctx: CheckContext) -> Reply:
    t1 = usable_tasks(ctx)[0]
    return ctx.client.get(path_for("/tasks/{}", t1.id), operation="getTask")


@dataclass(frozen=True, slots=True)
class OpenReads:
    """T2 read by id and T3, T4 read in a batch, all while still open (before their completions)."""

    single: Reply
    batch: Reply


@shared("reads_while_open", needs=("tasks",), sends=(req("GET /tasks/{taskId}"), req("POST /tasks/batch")))
def reads_while_open(ctx: CheckContext) -> OpenReads:
    tasks = usable_tasks(ctx)
    single = ctx.client.get(path_for("/tasks/{}", tasks[1].id), operation="getTask")
    batch = ctx.client.post("/tasks/batch", {"ids": [tasks[2].id, tasks[3].id]}, operation="getTasksBatch")
    return OpenReads(single=single, batch=batch)


@shared("single_completion", needs=("reads_while_open",), sends=(req("PATCH /tasks/{taskId}"),))
def single_completion(ctx: CheckContext) -> Reply:
    reads_while_open(ctx)
    t2 = usable_tasks(ctx)[1]
    return ctx.client.patch(path_for("/tasks/{}", t2.id), {"completed": True}, operation="updateTask")


@shared("batch_completion", needs=("reads_while_open",), sends=(req("PATCH /tasks/batch"),))
def batch_completion(ctx: CheckContext) -> Reply:
    reads_while_open(ctx)
    tasks = usable_tasks(ctx)
    body = {"ids": [tasks[2].id, tasks[3].id], "completed": True}
    return ctx.client.patch("/tasks/batch", body, operation="completeTasksBatch")


@shared("batch_read", needs=("tasks",), sends=(req("POST /tasks/batch"),))
def batch_read(ctx: CheckContext) -> Reply:
    t1 = usable_tasks(ctx)[0]
    return ctx.client.post("/tasks/batch", {"ids": [t1.id]}, operation="getTasksBatch")


@dataclass(frozen=True, slots=True)
class LaterReads:
    """The completed tasks read again, each both by id and in a batch."""

    after_single: tuple[Reply, Reply]  # GET T2, POST /tasks/batch [T2]
    after_batch: tuple[Reply, Reply]  # POST /tasks/batch [T3, T4], GET T3


@shared(
    "reads_after_completion",
    needs=("single_completion", "batch_completion"),
    sends=(req("GET /tasks/{taskId}", 2), req("POST /tasks/batch", 2)),
)
def reads_after_completion(ctx: CheckContext) -> LaterReads:
    single_completion(ctx)
    batch_completion(ctx)
    tasks = usable_tasks(ctx)
    t2, t3, t4 = tasks[1], tasks[2], tasks[3]
    get = ctx.client.get
    post = ctx.client.post
    return LaterReads(
        after_single=(
            get(path_for("/tasks/{}", t2.id), operation="getTask"),
            post("/tasks/batch", {"ids": [t2.id]}, operation="getTasksBatch"),
        ),
        after_batch=(
            post("/tasks/batch", {"ids": [t3.id, t4.id]}, operation="getTasksBatch"),
            get(path_for("/tasks/{}", t3.id), operation="getTask"),
        ),
    )


@shared("unknown_task_update", sends=(req("PATCH /tasks/{taskId}"),))
def unknown_task_update(ctx: CheckContext) -> Reply:
    """PATCH /tasks/{an unknown id} {"completed": true}: TASK-UPDATE-UNKNOWN's request, and what the
    single-task route answers, which a shadowed PATCH /tasks/batch answers too."""
    return ctx.client.patch(
        path_for("/tasks/{}", ctx.unknown_id("task")), {"completed": True}, operation="updateTask"
    )


def _batch_list(reply: Reply) -> list[dict[str, Any]] | None:
    if reply.status == 200 and isinstance(reply.json, list):
        return objects_in(reply)
    return None


def _require_batch_route(ctx: CheckContext, method: str) -> None:
    """A precondition of the rules judged through a batch endpoint: its route is not shadowed."""
    shadowed = (
        judges.route_shadowed(batch_read(ctx))
        if method == "POST"
        else judges.route_shadowed(batch_completion(ctx), unknown_task_update(ctx))
    )
    if shadowed is not None:
        raise NotApplicable(f"{method} /tasks/batch never reached a batch handler (see TASK-BATCH-ROUTE).")


def _require_batch_read(ctx: CheckContext) -> None:
    """A precondition of the batch-read rules: POST /tasks/batch answers an array for a known id.

    Without it, a wrong route or a wrong shape would fail every batch rule at once; each is reported
    once instead, under TASK-BATCH-ROUTE or TASK-BATCH-GET-ARRAY.
    """
    _require_batch_route(ctx, "POST")
    if _batch_list(batch_read(ctx)) is None:
        raise NotApplicable(
            "POST /tasks/batch does not answer an array even for a known id (see TASK-BATCH-GET-ARRAY)."
        )


def _find(items: Iterable[dict[str, Any]], task_id: str) -> dict[str, Any] | None:
    return next((item for item in items if same_id(item.get("id"), task_id)), None)


def _batch_completion_done(ctx: CheckContext) -> bool:
    """Whether PATCH /tasks/batch answered both of its known tasks, not shown open (TASK-BATCH-COMPLETE)."""
    tasks = usable_tasks(ctx)
    items = _batch_list(batch_completion(ctx))
    if items is None:
        return False
    found = [_find(items, task.id) for task in tasks[2:4]]
    return all(item is not None and item.get("completed", True) is True for item in found)


def _completion_accepted(reply: Reply) -> bool:
    """A completion request the server said it carried out (2xx, the task not shown open)."""
    if not reply.ok:
        return False
    shown_open = [item for item in objects_in(reply) if item.get("completed") is False]
    return not shown_open


# --- create ---------------------------------------------------------------------------------------


@check("TASK-CREATE-RETURNS-ID", uses=("tasks", "concurrent_tasks"))
def created_task_has_distinct_id(ctx: CheckContext) -> str | None:
    sequential = created_tasks(ctx)
    together = concurrent_tasks(ctx)
    seen: dict[str, Reply] = {}
    for reply in (*sequential.replies, *together.replies):
        ctx.judge("TASK-CREATE-RETURNS-ID", reply)
        task_id = _task_id(reply)
        if task_id in seen:
            when = "created at the same moment" if reply in together.replies else "created one after another"
            raise violation(
                "TASK-CREATE-RETURNS-ID",
                f"Two different tasks ({when}) were given the same id {shown(task_id)}.",
                expected=f"{TASK_COUNT + CONCURRENT_TASKS} distinct ids for as many tasks "
                f"({CONCURRENT_TASKS} of them created at once)",
                actual=f"id {shown(task_id)} twice",
                replies=[seen[task_id], reply],
            )
        seen[task_id] = reply
    return lost_note(together.lost, CONCURRENT_TASKS, "POST /tasks")


@check("TASK-CREATE-OPEN", uses=("tasks",))
def created_task_is_open_with_subject(ctx: CheckContext) -> None:
    pool = created_tasks(ctx)
    judged = 0
    for body, reply in zip(pool.bodies, pool.replies, strict=True):
        if reply.status not in (200, 201) or not isinstance(reply.json, dict):
            continue
        answer = reply.json
        if "subject" in answer or "completed" in answer:
            judged += 1
        if "subject" in answer and answer["subject"] != body["subject"]:
            raise violation(
                "TASK-CREATE-OPEN",
                "The created task does not echo the subject it was sent.",
                expected=f"subject {shown(body['subject'])}",
                actual=f"subject {shown(answer.get('subject'))}",
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
        raise NotApplicable(
            "No POST /tasks answer showed a subject or completed (see TASK-CREATE-RETURNS-ID)."
        )


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
    # "That task": what the answer shows of it (its id, its subject) is the one created. The id's type
    # is RESPONSE-SCHEMA's question, so 1 and "1" name the same task here.
    wrong = [
        f"{name} {shown(answer[name])}"
        for name, expected in (("id", t1.id), ("subject", t1.subject))
        if name in answer and not same_id(answer[name], expected)
    ]
    if wrong or ("id" not in answer and "subject" not in answer):
        raise violation(
            "TASK-GET",
            "GET /tasks/{taskId} answered a different task than the one created."
            if wrong
            else "GET /tasks/{taskId} answered an object that shows neither the task's id nor its subject.",
            expected=f"id {shown(t1.id)}, subject {shown(t1.subject)}",
            actual=", ".join(wrong) or shown(answer),
            replies=[t1.created, reply],
        )


@dataclass(frozen=True, slots=True)
class Read:
    """One task as one read answered it: `completed` says whether the task had been completed by then,
    `before` is the read of the same task while it was still open (if there was one)."""

    reply: Reply
    task: dict[str, Any]
    completed: bool
    completion: Reply | None = None
    before: Reply | None = None


def _reads_of(reply: Reply, task_ids: Iterable[str], **state: Any) -> list[Read]:
    if not reply.ok:
        return []
    found = [(task_id, _find(objects_in(reply), task_id)) for task_id in task_ids]
    return [Read(reply=reply, task=item, **state) for _, item in found if item is not None]


def _completed_reads(ctx: CheckContext) -> list[Read]:
    """Every later read of a task whose completion the server accepted."""
    tasks = usable_tasks(ctx)
    opened = reads_while_open(ctx)
    later = reads_after_completion(ctx)
    reads: list[Read] = []
    single, batch = single_completion(ctx), batch_completion(ctx)
    if _completion_accepted(single):
        for reply in later.after_single:
            reads += _reads_of(reply, [tasks[1].id], completed=True, completion=single, before=opened.single)
    if _completion_accepted(batch):
        for reply in later.after_batch:
            reads += _reads_of(
                reply, [tasks[2].id, tasks[3].id], completed=True, completion=batch, before=opened.batch
            )
    return reads


def _task_reads(ctx: CheckContext) -> list[Read]:
    """Every read of a shared task whose state (open or completed) is known at the time of the read."""
    tasks = usable_tasks(ctx)
    reads = _reads_of(open_task_read(ctx), [tasks[0].id], completed=False)
    with contextlib.suppress(NotApplicable):
        reads += _reads_of(batch_read(ctx), [tasks[0].id], completed=False)
    with contextlib.suppress(NotApplicable):
        opened = reads_while_open(ctx)
        reads += _reads_of(opened.single, [tasks[1].id], completed=False)
        reads += _reads_of(opened.batch, [tasks[2].id, tasks[3].id], completed=False)
    with contextlib.suppress(NotApplicable):
        reads += _completed_reads(ctx)
    return reads


@check(
    "TASK-GET-COMPLETION-FIELDS",
    uses=("open_task_read", "batch_read", "reads_while_open", "reads_after_completion"),
)
def task_reads_show_completion(ctx: CheckContext) -> None:
    reads = _task_reads(ctx)
    if not reads:
        raise NotApplicable("No read answered a shared task (see TASK-GET, TASK-BATCH-GET-ARRAY).")
    for read in reads:
        reply, task, completed = read.reply, read.task, read.completed
        where = f"{reply.sent.method} {reply.sent.path}"
        if "completed" not in task:
            raise violation(
                "TASK-GET-COMPLETION-FIELDS",
                f"{where} answered a task without its completed field, so Enginy cannot see whether it was "
                "completed.",
                expected='"completed": true or false',
                actual=shown(task),
                replies=[reply],
            )
        if not completed and (task["completed"] is not False or task.get("completedAt") is not None):
            raise violation(
                "TASK-GET-COMPLETION-FIELDS",
                f"{where} answered a task that was never completed as if it had been.",
                expected='"completed": false and "completedAt": null (or no completedAt)',
                actual=", ".join(f"{name} {shown(task.get(name))}" for name in ("completed", "completedAt")),
                replies=[reply],
            )


@check(
    "TASK-GET-UNKNOWN",
    uses=("tasks", "concurrent_tasks"),
    sends=(req("GET /tasks/{taskId}", 2 + len(_LOOKALIKE_IDS) + 1),),
)
def unknown_task_is_not_found(ctx: CheckContext) -> None:
    given = _given_ids(ctx)
    first = _task_id(created_tasks(ctx).replies[0])
    first = first if is_id(first) else "1"
    candidates = [
        ctx.unknown_id("task"),
        *_LOOKALIKE_IDS,
        f"0{first}",  # an id parsed as a number finds the task with leading zeros stripped
        ctx.unknown_id("task", 2) + "-" + "x" * _LONG_ID_LENGTH,
    ]
    found: list[Reply] = []
    for task_id in candidates:
        if task_id in given:
            continue  # the server did give it; then it is not unknown (never so for the suite's own)
        reply = ctx.client.get(path_for("/tasks/{}", task_id), operation="getTask", valid=False)
        if not 400 <= reply.status < 500:
            found.append(reply)
    if found:
        raise violation(
            "TASK-GET-UNKNOWN",
            "GET /tasks/{taskId} with an id the server never gave did not answer 4xx.",
            expected="404 (any 4xx tolerated), for every id the server never gave",
            actual="; ".join(f"{r.sent.path[:80]} → {r.describe()[:120]}" for r in found),
            replies=found,
        )


@check("TASK-UPDATE-UNKNOWN", uses=("unknown_task_update",))
def unknown_task_update_is_refused(ctx: CheckContext) -> None:
    reply = unknown_task_update(ctx)
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
    if reply.status not in (200, 201) or answer is None:
        raise violation(
            "TASK-COMPLETE",
            'PATCH /tasks/{taskId} with {"completed": true} did not answer the updated task.',
            expected="200 with the task as a JSON object",
            actual=reply.describe(),
            replies=[reply],
        )
    if "completed" in answer and answer["completed"] is not True:
        raise violation(
            "TASK-COMPLETE",
            'PATCH /tasks/{taskId} with {"completed": true} answered the task as not completed.',
            expected='"completed": true',
            actual=f'"completed": {shown(answer["completed"])}',
            replies=[reply],
        )
    if "id" in answer and not same_id(answer["id"], t2.id):
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
    if single.ok and isinstance(single.json, dict) and single.json.get("completed") is True:
        judged.append((single, single.json))
    batch = batch_completion(ctx)
    items = _batch_list(batch) or []
    for shared_task in tasks[2:4]:
        item = _find(items, shared_task.id)
        if item is not None and item.get("completed") is True:
            judged.append((batch, item))
    if not judged:
        raise NotApplicable(
            "No completion answered a task shown completed (see TASK-COMPLETE, TASK-BATCH-COMPLETE)."
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


@check("TASK-COMPLETION-PERSISTS", uses=("reads_while_open", "reads_after_completion"))
def completion_is_stored(ctx: CheckContext) -> str:
    if not any(_completion_accepted(reply) for reply in (single_completion(ctx), batch_completion(ctx))):
        raise NotApplicable(
            "No completion succeeded to be read back (see TASK-COMPLETE, TASK-BATCH-COMPLETE)."
        )
    # Absent is "not shown": only the reads that show completed can say whether it was stored.
    shown_reads = [read for read in _completed_reads(ctx) if "completed" in read.task]
    if not shown_reads:
        raise NotApplicable(
            "No read of a completed task showed its completed field, so whether the completion was "
            "stored cannot be seen (see TASK-GET-COMPLETION-FIELDS)."
        )
    for read in shown_reads:
        if read.task["completed"] is True:
            continue
        assert read.completion is not None
        done, again = read.completion.sent, read.reply.sent
        raise violation(
            "TASK-COMPLETION-PERSISTS",
            f"A task completed with {done.method} {done.path} reads as not completed when read again with "
            f"{again.method} {again.path}.",
            expected='"completed": true on every later read (also of a task read while it was open)',
            actual=f"task {shown(read.task.get('id'))}: completed {shown(read.task['completed'])}",
            replies=[reply for reply in (read.before, read.completion, read.reply) if reply is not None],
        )
    return f"{len(shown_reads)} reads after completion (by id and in batches) showed the tasks completed."


# --- timestamps -----------------------------------------------------------------------------------


@check("TIMESTAMPS-ISO8601", uses=("tasks", "reads_after_completion", "activities"), reads_log=True)
def timestamps_are_iso8601(ctx: CheckContext) -> str | None:
    # Make sure there is something to judge even when run alone; then judge every answer so far.
    created_tasks(ctx)
    for build in (reads_after_completion, created_activities):
        with contextlib.suppress(NotApplicable):  # judged with what the other answers hold
            build(ctx)
    seen = answers = 0
    for reply in list(ctx.client.log):
        if not reply.ok or not reply.valid or reply.sent.operation not in _TIMESTAMP_OPERATIONS:
            continue
        answers += 1
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
        # "Every timestamp the server answers": an answer that shows none breaks nothing.
        return "No answer showed a timestamp (dueDate, completedAt, occurredAt), so none could be wrong."
    # Answers, not timestamps, are counted: checks judged side by side may read a task just before or
    # just after another completes it (completedAt null or set), and the verdict's words must not vary.
    return f"Every timestamp in {answers} answers is ISO 8601."


# --- batches --------------------------------------------------------------------------------------


@check("TASK-BATCH-GET-ARRAY", uses=("batch_read",))
def batch_read_answers_array(ctx: CheckContext) -> None:
    t1 = usable_tasks(ctx)[0]
    _require_batch_route(ctx, "POST")
    reply = batch_read(ctx)
    if not reply.ok:
        # The single-exchange judge leaves a refusal to TASK-BATCH-GET-OMITS-UNKNOWN; this read asked
        # for a task that exists, so here a refusal is the array missing.
        raise violation(
            "TASK-BATCH-GET-ARRAY",
            "POST /tasks/batch with a known id did not answer a JSON array.",
            expected="200 with a JSON array of tasks (not an object)",
            actual=reply.describe(),
            replies=[reply],
        )
    ctx.judge("TASK-BATCH-GET-ARRAY", reply)
    if _find(objects_in(reply), t1.id) is None:
        raise violation(
            "TASK-BATCH-GET-ARRAY",
            "POST /tasks/batch did not answer the task it was asked for.",
            expected=f"an array holding the task {shown(t1.id)}",
            actual=shown(reply.json),
            replies=[reply],
        )


def _repeats_earlier(reply: Reply, known: list[str], earlier: Reply | None) -> bool:
    """Whether the answer holds tasks not asked for that an earlier answer held: a list shared across
    requests."""
    if earlier is None:
        return False
    before = ids_of(objects_in(earlier))
    strange = [
        task_id for task_id in ids_of(objects_in(reply)) if not any(same_id(task_id, k) for k in known)
    ]
    return any(any(same_id(task_id, other) for other in before) for task_id in strange)


def _judge_known_only(
    ctx: CheckContext, rule_id: str, reply: Reply, known: list[str], what: str, earlier: Reply | None = None
) -> None:
    """A batch read answered 200 with exactly the known tasks among those asked for (any order, a
    repeated id answered once or repeatedly).

    What the exchange alone shows (a refusal, tasks not asked for) is the rule's single-exchange judge's
    to decide, where the rule has one; this adds what only the suite knows: which of the ids exist.
    """
    if rule_id in judges.BY_RULE:
        try:
            ctx.judge(rule_id, reply)
        except RuleViolation as broken:
            if not _repeats_earlier(reply, known, earlier) or earlier is None:
                raise
            raise RuleViolation(
                rule_id,
                message=broken.message.rstrip(".")
                + f" ({what}; it repeated the tasks of an earlier request).",
                expected=broken.expected,
                actual=broken.actual,
                exchanges=[earlier.exchange, *broken.exchanges],
            ) from None
        except NotApplicable:
            pass  # e.g. ids the spec's schema does not describe: the checks below still apply
    if reply.status != 200:
        raise violation(
            rule_id,
            f"POST /tasks/batch with {what} did not answer 200; unknown ids are to be left out, never an "
            "error.",
            expected=f"200 with the tasks {shown(known)}",
            actual=reply.describe(),
            replies=[reply],
        )
    if not isinstance(reply.json, list):
        raise violation(
            rule_id,
            f"POST /tasks/batch answered an array for a known id, but not for {what}.",
            expected=f"200 with an array holding the tasks {shown(known)}",
            actual=reply.describe(),
            replies=[reply],
        )
    items = objects_in(reply)
    answered = ids_of(items)
    missing = [task_id for task_id in known if _find(items, task_id) is None]
    strange = [task_id for task_id in answered if not any(same_id(task_id, k) for k in known)]
    if missing or strange or len(items) != len(reply.json):
        leaked = _repeats_earlier(reply, known, earlier)
        parts = []
        if missing:
            parts.append(f"left out tasks that exist: {shown(missing)}")
        if strange:
            parts.append(f"answered ids not asked for or unknown: {shown(strange[:5])}")
        if len(items) != len(reply.json):
            parts.append("items that are not task objects")
        raise violation(
            rule_id,
            f"POST /tasks/batch with {what} did not answer exactly the known tasks"
            + (" (it repeated the tasks of an earlier request)." if leaked else "."),
            expected=f"the tasks {shown(known)} and nothing else",
            actual="; ".join(parts) + f"; answer {shown(reply.json)}",
            replies=[earlier, reply] if leaked and earlier is not None else [reply],
        )


@check(
    "TASK-BATCH-GET-OMITS-UNKNOWN",
    uses=("batch_read", "concurrent_tasks"),
    sends=(req("POST /tasks/batch", 6),),
)
def batch_read_answers_exactly_the_known_tasks(ctx: CheckContext) -> None:
    _require_batch_read(ctx)
    t1, t2, t3, t4, t5 = usable_tasks(ctx)
    given = _given_ids(ctx)
    unknown = [ctx.unknown_id("task", n) for n in (1, 2, 3)]
    lookalikes = [
        task_id
        for task_id in (*_LOOKALIKE_IDS, f"0{t1.id}", ctx.unknown_id("task", 4) + "-" + "x" * _LONG_ID_LENGTH)
        if task_id not in given
    ]
    post = ctx.client.post
    rule = "TASK-BATCH-GET-OMITS-UNKNOWN"
    # Each request right after another that answered different tasks, so that an answer built in a list
    # shared across requests shows up as tasks this request never asked for.
    mixed = post("/tasks/batch", {"ids": [unknown[0], t1.id, unknown[1]]}, operation="getTasksBatch")
    _judge_known_only(ctx, rule, mixed, [t1.id], "known and unknown ids")
    alone = post("/tasks/batch", {"ids": [t5.id]}, operation="getTasksBatch")
    _judge_known_only(ctx, rule, alone, [t5.id], "one known id, after a request for another", earlier=mixed)
    none = post("/tasks/batch", {"ids": unknown[:2]}, operation="getTasksBatch")
    _judge_known_only(ctx, rule, none, [], "only unknown ids", earlier=alone)
    repeated = post("/tasks/batch", {"ids": [t1.id, t1.id, unknown[2]]}, operation="getTasksBatch")
    _judge_known_only(ctx, rule, repeated, [t1.id], "a known id twice and an unknown one")
    odd = post("/tasks/batch", {"ids": [*lookalikes, t2.id]}, operation="getTasksBatch", valid=False)
    _judge_known_only(
        ctx,
        rule,
        odd,
        [t2.id],
        f"ids the server never gave that look like something ({', '.join(lookalikes[:4])}, …)",
    )
    every = [t1.id, t2.id, t3.id, t4.id, t5.id]
    everything = post("/tasks/batch", {"ids": every}, operation="getTasksBatch")
    _judge_known_only(ctx, rule, everything, every, "five known ids")


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
    _judge_known_only(ctx, "TASK-BATCH-GET-LARGE", reply, known, "100 ids")


@check("TASK-BATCH-COMPLETE", uses=("batch_completion", "unknown_task_update"))
def batch_completion_completes(ctx: CheckContext) -> None:
    tasks = usable_tasks(ctx)
    wanted = [tasks[2].id, tasks[3].id]
    _require_batch_route(ctx, "PATCH")
    reply = batch_completion(ctx)
    items = _batch_list(reply)
    if items is None:
        raise violation(
            "TASK-BATCH-COMPLETE",
            'PATCH /tasks/batch with {"ids": [...], "completed": true} did not answer an array of tasks.',
            expected="200 with a JSON array of the updated tasks",
            actual=reply.describe(),
            replies=[reply],
        )
    not_done = [
        task_id
        for task_id in wanted
        if (item := _find(items, task_id)) is None or item.get("completed", True) is not True
    ]
    if not_done:
        raise violation(
            "TASK-BATCH-COMPLETE",
            "PATCH /tasks/batch did not answer every task it was sent as updated.",
            expected=f"the tasks {shown(wanted)}, completed true where completed is shown",
            actual=f"missing or shown not completed: {shown(not_done)}; answer {shown(reply.json)}",
            replies=[reply],
        )


@check(
    "TASK-BATCH-COMPLETE-OMITS-UNKNOWN",
    uses=("batch_completion", "unknown_task_update"),
    sends=(req("PATCH /tasks/batch", 2),),
)
def batch_completion_omits_unknown_ids(ctx: CheckContext) -> None:
    _require_batch_route(ctx, "PATCH")
    if not _batch_completion_done(ctx):
        raise NotApplicable("PATCH /tasks/batch fails even with known ids only (see TASK-BATCH-COMPLETE).")
    t5 = usable_tasks(ctx)[4]
    unknown = [ctx.unknown_id("task", 1), ctx.unknown_id("task", 2)]
    rule = "TASK-BATCH-COMPLETE-OMITS-UNKNOWN"
    for ids, known in (([unknown[0], t5.id], [t5.id]), (unknown, [])):
        reply = ctx.client.patch(
            "/tasks/batch", {"ids": ids, "completed": True}, operation="completeTasksBatch"
        )
        items = _batch_list(reply)
        what = "a known and an unknown id" if known else "only unknown ids"
        if items is None:
            raise violation(
                rule,
                f"PATCH /tasks/batch with {what} did not answer 200 with an array.",
                expected=f"200 with {'the known task, completed' if known else 'an empty array'}",
                actual=reply.describe(),
                replies=[reply],
            )
        leaked = [task_id for task_id in unknown if _find(items, task_id) is not None]
        missed = [
            task_id
            for task_id in known
            if (item := _find(items, task_id)) is None or item.get("completed", True) is not True
        ]
        if leaked or missed:
            raise violation(
                rule,
                f"PATCH /tasks/batch with {what} did not complete the known tasks and leave the unknown ids "
                "out.",
                expected=f"the tasks {shown(known)} completed, nothing for {shown(unknown)}",
                actual=f"answer {shown(reply.json)}",
                replies=[reply],
            )


@check("TASK-BATCH-ROUTE", uses=("batch_read", "batch_completion", "unknown_task_update"))
def batch_paths_reach_batch_handlers(ctx: CheckContext) -> None:
    judged = 0
    single = unknown_task_update(ctx)
    for reply, like in ((batch_read(ctx), None), (batch_completion(ctx), single)):
        # No route, or the task "batch": the answer alone shows it. An error answer just like the
        # single-task route's needs that second answer, so the check judges it here.
        ctx.judge("TASK-BATCH-ROUTE", reply)
        why = judges.route_shadowed(reply, like) if like is not None else None
        if why is not None and like is not None:
            raise violation(
                "TASK-BATCH-ROUTE",
                f"{reply.sent.method} /tasks/batch did not reach a batch handler: {why}.",
                expected="the batch handler's answer: 200 with a JSON array",
                actual=reply.describe(),
                replies=[like, reply],
            )
        if _batch_list(reply) is not None:
            judged += 1
    if not judged:
        raise NotApplicable(
            "Neither batch path answered an array, so the route cannot be told apart from the shape "
            "(see TASK-BATCH-GET-ARRAY, TASK-BATCH-COMPLETE)."
        )
