"""The single-exchange judges: the one place that decides each rule one request and its answer decide.

Many rules (TASK-GET, ASSOC-UPSERT, ...) need a sequence: create, read, complete, read again. The
rules below need only one exchange, so whatever produced it judges it here: the scripted checks judge
each answer they get with these functions (and add only what needs the sequence: distinct ids across
creates, the known tasks present in a batch read), the generated pass judges its answers with them,
`replay` judges each re-sent request, and `proxy` each exchange it forwards.

A judge is a plain function of one `Seen` exchange, named for what must hold. It returns when the rule
holds, raises `RuleViolation` (with the rule id) when it does not, and raises `NotApplicable` when the
exchange says nothing about the rule; the preconditions are the small decorators `on`, `key_accepted`,
`well_formed` and `sent_with` (how the key went). Shapes come from the spec through `SpecSchemas`;
nothing here restates a schema. `JUDGES` is the whole registry, in the order the judgements are shown;
`decide` judges one rule, `judge_exchange` every selected one.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from conformance.checks._spec import SpecSchemas
from conformance.checks._support import (
    content_type_problem,
    error_body_problem,
    ids_of,
    is_id,
    objects_in,
    results_of,
    shown,
    violation,
)
from conformance.client import KeyUnder, Reply
from conformance.results import NotApplicable, RuleViolation
from enginy_spec import Operation

__all__ = [
    "JUDGES",
    "NOT_JSON_BODY",
    "Judge",
    "JudgeFunction",
    "KeyState",
    "Seen",
    "Verdict",
    "decide",
    "is_well_formed",
    "judge_exchange",
    "operation_matcher",
    "parse_body",
]

# What `Seen.body` holds when the recorded body is not JSON at all.
NOT_JSON_BODY: Final = object()
# The statuses with which a server says "the key is wrong": the request was not served, so nothing
# about the operation can be judged from the answer.
_KEY_REFUSED: Final = frozenset({401, 403})
# USERS-OPTIONAL: "404, 405 or 501: feature off, treated as 'not implemented' (not an error)".
_USERS_OFF: Final = frozenset({404, 405, 501})


# How the key went with a request: "sent" (in the documented header; whether it was the right one is
# the server's to say), "none", "wrong" (a value the suite made up), "elsewhere" (the key, under another
# header) or "other" (another credential, not known to be the key: no authentication rule applies).
KeyState = Literal["sent", "none", "wrong", "elsewhere", "other"]


@dataclass(frozen=True, slots=True)
class Seen:
    """One request and its answer, as the judges see it.

    `operation` is the spec operation the request matched; `body` the request body parsed as JSON (None
    when there was none, `NOT_JSON_BODY` when it does not parse); `well_formed` whether the body follows
    the operation's request schema (always True for an operation without a body); `key` how the key went
    with it ("none" for an authentication probe, or a recorded request without one).
    """

    operation: str
    method: str
    path: str
    body: Any
    well_formed: bool
    key: KeyState
    reply: Reply
    schemas: SpecSchemas

    @property
    def status(self) -> int:
        return self.reply.status

    @property
    def sent_key(self) -> bool:
        return self.key == "sent"

    @classmethod
    def of(cls, reply: Reply, schemas: SpecSchemas) -> Seen:
        """What a client's reply shows, as the judges see it (the request must have matched an operation)."""
        sent = reply.sent
        if sent.operation is None:
            raise ValueError(f"{sent.method} {sent.path} matched no operation of the spec.")
        body = parse_body(sent.raw.decode("utf-8", errors="replace")) if sent.raw is not None else sent.json
        auth = sent.auth
        key: KeyState
        if isinstance(auth, KeyUnder):
            key = "elsewhere"
        elif auth == "key":
            key = "sent"
        else:
            key = auth
        return cls(
            operation=sent.operation,
            method=sent.method,
            path=sent.path,
            body=body,
            well_formed=is_well_formed(schemas, sent.operation, body),
            key=key,
            reply=reply,
            schemas=schemas,
        )


JudgeFunction = Callable[[Seen], None]


@dataclass(frozen=True, slots=True)
class Judge:
    """A judge and the rule it speaks about."""

    rule_id: str
    function: JudgeFunction


# --- matching a request to an operation -------------------------------------------------------------


def operation_matcher(ops: Mapping[str, Operation]) -> Callable[[str, str], str | None]:
    """A function (method, path) -> operationId or None, from the spec's operations.

    Literal paths are tried before templated ones, so /tasks/batch is never taken for the task "batch".
    A template parameter matches one non-empty path segment.
    """
    table: list[tuple[int, str, tuple[str, ...], str]] = []
    for operation_id, op in ops.items():
        segments = tuple(op.path.strip("/").split("/")) if op.path != "/" else ()
        params = sum(1 for segment in segments if segment.startswith("{"))
        table.append((params, op.method, segments, operation_id))
    table.sort(key=lambda row: row[0])

    def match(method: str, path: str) -> str | None:
        bare = path.split("?", 1)[0].split("#", 1)[0]
        segments = tuple(bare.strip("/").split("/")) if bare not in ("", "/") else ()
        if bare.endswith("/") and bare != "/":
            return None  # /tasks/ is not /tasks: the spec documents no trailing slashes
        for _, op_method, template, operation_id in table:
            if op_method != method.upper() or len(template) != len(segments):
                continue
            if all(
                (part.startswith("{") and seg != "") or part == seg
                for part, seg in zip(template, segments, strict=True)
            ):
                return operation_id
        return None

    return match


# --- preconditions ------------------------------------------------------------------------------------


def on(*operation_ids: str) -> Callable[[JudgeFunction], JudgeFunction]:
    """The judge speaks only about these operations."""

    def decorate(function: JudgeFunction) -> JudgeFunction:
        @functools.wraps(function)
        def wrapper(seen: Seen) -> None:
            if seen.operation not in operation_ids:
                raise NotApplicable(f"The rule does not concern {seen.method} {seen.path}.")
            function(seen)

        return wrapper

    return decorate


def key_accepted(function: JudgeFunction) -> JudgeFunction:
    """The request carried the key and the server did not refuse it (else the operation never ran)."""

    @functools.wraps(function)
    def wrapper(seen: Seen) -> None:
        if not seen.sent_key:
            raise NotApplicable("The request was replayed without the key (an authentication probe).")
        if seen.status in _KEY_REFUSED:
            raise NotApplicable(f"The server refused the key ({seen.status}), so the operation never ran.")
        function(seen)

    return wrapper


def well_formed(function: JudgeFunction) -> JudgeFunction:
    """The recorded body follows the operation's request schema (what the rule says applies to)."""

    @functools.wraps(function)
    def wrapper(seen: Seen) -> None:
        if not seen.well_formed:
            raise NotApplicable("The recorded body does not follow the spec's request schema.")
        function(seen)

    return wrapper


def sent_with(key: KeyState, otherwise: str) -> Callable[[JudgeFunction], JudgeFunction]:
    """The judge speaks only about requests whose key went this way (`otherwise` says why not)."""

    def decorate(function: JudgeFunction) -> JudgeFunction:
        @functools.wraps(function)
        def wrapper(seen: Seen) -> None:
            if seen.key != key:
                raise NotApplicable(otherwise)
            function(seen)

        return wrapper

    return decorate


# The request went without the key at all; with a key the suite made up, in the documented header; or
# with the key under another header than the documented one.
without_key = sent_with("none", "The request carried a key.")
with_wrong_key = sent_with("wrong", "The request did not carry a made-up key.")
with_key_elsewhere = sent_with("elsewhere", "The request did not carry the key under another header.")


# --- answers in general -------------------------------------------------------------------------------


def no_server_error(seen: Seen) -> None:
    if seen.status < 500 or (seen.operation == "listUsers" and seen.status == 501):
        return
    raise violation(
        "SERVER-NO-5XX",
        f"{seen.method} {seen.path} was answered with a server error.",
        expected="a 2xx or 4xx answer (501 on GET /users excepted)",
        actual=seen.reply.describe(),
        replies=[seen.reply],
    )


@key_accepted
@well_formed
def success_answer_matches_spec(seen: Seen) -> None:
    if not seen.reply.ok:
        raise NotApplicable("Not a success answer.")
    problems = seen.schemas.response_errors(
        seen.operation, seen.status, seen.reply.json, is_json=seen.reply.is_json
    )
    if problems:
        raise violation(
            "RESPONSE-SCHEMA",
            f"The success answer to {seen.method} {seen.path} breaks the spec's response.",
            expected="a documented status and a body matching the spec's response schema",
            actual=f"{seen.status}: " + "; ".join(problems),
            replies=[seen.reply],
        )


def error_answer_is_json(seen: Seen) -> None:
    if not 400 <= seen.status < 500:
        raise NotApplicable("Not a client error answer.")
    if not seen.schemas.documents_json_error(seen.operation, seen.status):
        raise NotApplicable(f"The spec documents {seen.status} here without a body shape.")
    problem = error_body_problem(seen.reply)
    if problem is not None:
        raise violation(
            "ERROR-BODY-JSON",
            f"The error answer to {seen.method} {seen.path} does not carry a message in a JSON object.",
            expected='a JSON object with a message, e.g. {"error": "...", "message": "..."}',
            actual=f"{seen.reply.describe()} ({problem})",
            replies=[seen.reply],
        )


@key_accepted
@well_formed
def json_answer_says_it_is_json(seen: Seen) -> None:
    if not seen.reply.ok:
        raise NotApplicable("Not a success answer.")
    problem = content_type_problem(seen.reply)
    if problem is not None:
        raise violation(
            "RESPONSE-CONTENT-TYPE-JSON",
            f"The success answer to {seen.method} {seen.path} is JSON but not labelled so.",
            expected="Content-Type: application/json on a JSON answer",
            actual=problem,
            replies=[seen.reply],
        )


# --- authentication -----------------------------------------------------------------------------------


def _refusal(rule_id: str, seen: Seen, how: str) -> None:
    if seen.status in _KEY_REFUSED:
        return
    if seen.operation == "listUsers" and seen.status in _USERS_OFF:
        return  # a server without /users has nothing there to protect
    raise violation(
        rule_id,
        f"{seen.method} {seen.path} {how} was not refused.",
        expected="401 (403 tolerated; /users may answer 404, 405 or 501)",
        actual=seen.reply.describe(),
        replies=[seen.reply],
    )


@without_key
def request_without_key_is_refused(seen: Seen) -> None:
    _refusal("AUTH-MISSING-KEY", seen, "without the key")


@with_wrong_key
def request_with_wrong_key_is_refused(seen: Seen) -> None:
    _refusal("AUTH-WRONG-KEY", seen, "with a wrong key")


@with_key_elsewhere
def key_under_other_header_is_refused(seen: Seen) -> None:
    _refusal("AUTH-OTHER-HEADER", seen, "with the key under another header")


def missing_key_is_401_not_403(seen: Seen) -> None:
    if seen.key not in ("none", "wrong"):
        raise NotApplicable("The request carried the key.")
    if seen.status != 403:
        raise NotApplicable("Not a 403.")
    how = "without the key" if seen.key == "none" else "with a wrong key"
    raise violation(
        "AUTH-401-NOT-403",
        f"{seen.method} {seen.path} {how} was refused with 403 rather than 401.",
        expected="401",
        actual="403",
        replies=[seen.reply],
    )


# --- health and users -----------------------------------------------------------------------------------


@on("checkHealth")
@key_accepted
def health_answers_2xx(seen: Seen) -> None:
    if not seen.reply.ok:
        raise violation(
            "HEALTH-OK",
            "GET /health with the key did not answer a 2xx; Enginy would call the connection broken.",
            expected="any 2xx (the body is not inspected)",
            actual=seen.reply.describe(),
            replies=[seen.reply],
        )


@on("listUsers")
@key_accepted
def users_answer_array_or_not_implemented(seen: Seen) -> None:
    if seen.status in _USERS_OFF:
        return
    reply = seen.reply
    if not reply.ok:
        raise violation(
            "USERS-OPTIONAL",
            "GET /users answered neither a list of users nor a plain 'not implemented'.",
            expected="2xx with a JSON array of users, or 404, 405 or 501",
            actual=reply.describe(),
            replies=[reply],
        )
    problems = (
        ["the body is not JSON"]
        if not reply.is_json
        else seen.schemas.component_errors("UserList", reply.json)
    )
    if problems:
        raise violation(
            "USERS-OPTIONAL",
            "GET /users answered 2xx, but not a bare array of {id, name, email?}.",
            expected="a JSON array of users, as the spec's UserList",
            actual="; ".join(problems),
            replies=[reply],
        )


# --- tasks and activities -----------------------------------------------------------------------------


def _returns_id(rule_id: str, seen: Seen, what: str) -> None:
    reply = seen.reply
    if reply.status not in (200, 201):
        raise violation(
            rule_id,
            f"{seen.method} {seen.path} did not answer 200 or 201.",
            expected=f"200 or 201 with the created {what}",
            actual=reply.describe(),
            replies=[reply],
        )
    record_id = reply.json.get("id") if isinstance(reply.json, dict) else None
    if not is_id(record_id):
        raise violation(
            rule_id,
            f"{seen.method} {seen.path} answered without a non-empty string id; Enginy tracks the {what} "
            "by it.",
            expected='a JSON object with "id", a non-empty string',
            actual=f"id {shown(record_id)}" if isinstance(reply.json, dict) else reply.describe(),
            replies=[reply],
        )


@on("createTask")
@key_accepted
@well_formed
def created_task_has_id(seen: Seen) -> None:
    _returns_id("TASK-CREATE-RETURNS-ID", seen, "task")


@on("createActivity")
@key_accepted
@well_formed
def created_activity_has_id(seen: Seen) -> None:
    _returns_id("ACTIVITY-RETURNS-ID", seen, "activity")


def _shape(reply: Reply) -> tuple[object, ...]:
    """What an answer looks like, without its words: status, media type, and its JSON keys or kind."""
    body = reply.json
    kind: object = tuple(sorted(body)) if isinstance(body, dict) else type(body).__name__
    return (reply.status, reply.media_type, kind)


def route_shadowed(reply: Reply, single: Reply | None = None) -> str | None:
    """Why a /tasks/batch answer shows the request never reached a batch handler, or None.

    No route (404, 405); the single-task handler answering the task "batch"; or, given `single` (what
    the single-task route answers to the same method for an id it does not know), an error answer that
    looks exactly like that one: the same status, media type and error shape.
    """
    body = reply.json
    if reply.status in (404, 405):
        return f"it was answered {reply.status}, as a path or method without a route"
    if isinstance(body, dict) and str(body.get("id")) == "batch":
        return 'it was answered as the task "batch"'
    if single is not None and not reply.ok and not single.ok and _shape(reply) == _shape(single):
        return (
            f"it was answered exactly like {single.sent.method} /tasks/{{an unknown id}} ({reply.status}, "
            "the same error shape), so /tasks/{taskId} caught it"
        )
    return None


@on("getTasksBatch", "completeTasksBatch")
@key_accepted
def batch_path_reaches_batch_handler(seen: Seen) -> None:
    why = route_shadowed(seen.reply)
    if why is not None:
        raise violation(
            "TASK-BATCH-ROUTE",
            f"{seen.method} /tasks/batch did not reach a batch handler: {why}.",
            expected="the batch handler's answer: 200 with a JSON array",
            actual=seen.reply.describe(),
            replies=[seen.reply],
        )


@on("getTasksBatch")
@key_accepted
@well_formed
def batch_read_answers_array(seen: Seen) -> None:
    reply = seen.reply
    if not reply.ok:
        raise NotApplicable("Not a success answer (see TASK-BATCH-GET-OMITS-UNKNOWN).")
    if reply.status != 200 or not isinstance(reply.json, list):
        raise violation(
            "TASK-BATCH-GET-ARRAY",
            "POST /tasks/batch did not answer a bare JSON array.",
            expected="200 with a JSON array of tasks (not an object)",
            actual=reply.describe(),
            replies=[reply],
        )


def _requested_ids(seen: Seen) -> list[Any]:
    ids = seen.body.get("ids") if isinstance(seen.body, dict) else None
    return list(ids) if isinstance(ids, list) else []


@on("getTasksBatch")
@key_accepted
@well_formed
def batch_read_omits_unknown_ids(seen: Seen) -> None:
    reply = seen.reply
    if not reply.ok:
        raise violation(
            "TASK-BATCH-GET-OMITS-UNKNOWN",
            "POST /tasks/batch did not answer 200; ids the server does not know are to be left out of "
            "the answer, never an error.",
            expected="200 with the known tasks",
            actual=reply.describe(),
            replies=[reply],
        )
    if not isinstance(reply.json, list):
        raise NotApplicable("The answer is not an array (see TASK-BATCH-GET-ARRAY).")
    requested = _requested_ids(seen)
    strange = [task_id for task_id in ids_of(objects_in(reply)) if task_id not in requested]
    if strange:
        raise violation(
            "TASK-BATCH-GET-OMITS-UNKNOWN",
            "POST /tasks/batch answered tasks that were not asked for.",
            expected=f"only tasks among the ids sent {shown(requested)}",
            actual=f"also ids {shown(strange[:5])}",
            replies=[reply],
        )


# --- contacts and companies ---------------------------------------------------------------------------


def mapping_problem(reply: Reply, sent: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(expected, actual) when the answer is not one {externalId, crmId} per record sent, each crmId
    distinct, else None."""
    wanted = Counter(record["externalId"] for record in sent)
    expected = f"200 or 201 with one {{externalId, crmId}} for each of the {len(sent)} records sent"
    if reply.status not in (200, 201):
        return expected, reply.describe()
    results = results_of(reply)
    if results is None:
        return expected, f'no "results" array of objects: {reply.describe()}'
    answered = Counter(item.get("externalId") for item in results)
    if answered != wanted:
        missing = sorted(str(e) for e in (wanted - answered))
        extra = sorted(str(e) for e in (answered - wanted))
        parts = []
        if missing:
            parts.append(f"externalIds missing or changed: {shown(missing[:5])}")
        if extra:
            parts.append(f"externalIds not sent (or repeated): {shown(extra[:5])}")
        return expected, "; ".join(parts)
    bad = [item for item in results if not is_id(item.get("crmId"))]
    if bad:
        return expected, f"crmId not a non-empty string: {shown(bad[0])}"
    repeated = [crm_id for crm_id, times in Counter(item["crmId"] for item in results).items() if times > 1]
    if repeated:
        return expected, f"one crmId given to several records: {shown(repeated[:3])}"
    return None


def sync_problem(where: str, reply: Reply, sent_ids: set[str]) -> tuple[str, str, str] | None:
    """(message, expected, actual) when a sync answer is not 200 with results drawn from the records
    sent, each with a crmId; else None. `where` names the request, e.g. "POST /contacts/sync"."""
    results = results_of(reply)
    if reply.status != 200 or results is None:
        return (
            f"{where} did not answer 200 with a results array; unmatched records are simply left out, "
            "never an error.",
            '200 {"results": [...]}',
            reply.describe(),
        )
    for item in results:
        if item.get("externalId") not in sent_ids or not is_id(item.get("crmId")):
            return (
                f"A result of {where} lacks an externalId from the request or a crmId.",
                f"externalId one of {shown(sorted(sent_ids))}, crmId a non-empty string",
                shown(item),
            )
    return None


def _maps_external_ids(rule_id: str, seen: Seen, family: str) -> None:
    sent = seen.body.get(family) if isinstance(seen.body, dict) else None
    if not isinstance(sent, list):
        raise NotApplicable(f"The request holds no {family} array.")
    problem = mapping_problem(seen.reply, sent)
    if problem is not None:
        expected, actual = problem
        raise violation(
            rule_id,
            f"{seen.method} {seen.path} did not map every externalId it was sent to a crmId.",
            expected=expected,
            actual=actual,
            replies=[seen.reply],
        )


@on("createContacts")
@key_accepted
@well_formed
def contact_export_maps_every_external_id(seen: Seen) -> None:
    _maps_external_ids("CONTACT-CREATE-MAPS-EXTERNAL-IDS", seen, "contacts")


@on("createCompanies")
@key_accepted
@well_formed
def company_export_maps_every_external_id(seen: Seen) -> None:
    _maps_external_ids("COMPANY-CREATE-MAPS-EXTERNAL-IDS", seen, "companies")


def _sync_answers_only_sent(rule_id: str, seen: Seen, family: str) -> None:
    records = seen.body.get(family) if isinstance(seen.body, dict) else None
    sent = {str(item.get("externalId")) for item in records or [] if isinstance(item, dict)}
    problem = sync_problem(f"{seen.method} {seen.path}", seen.reply, sent)
    if problem is not None:
        message, expected, actual = problem
        raise violation(rule_id, message, expected=expected, actual=actual, replies=[seen.reply])


@on("syncContacts")
@key_accepted
@well_formed
def contact_sync_answers_only_contacts_sent(seen: Seen) -> None:
    _sync_answers_only_sent("CONTACT-SYNC-OMITS-UNMATCHED", seen, "contacts")


@on("syncCompanies")
@key_accepted
@well_formed
def company_sync_answers_only_companies_sent(seen: Seen) -> None:
    _sync_answers_only_sent("COMPANY-SYNC-OMITS-UNMATCHED", seen, "companies")


# --- input handling -----------------------------------------------------------------------------------


@key_accepted
def malformed_json_is_refused(seen: Seen) -> None:
    if seen.body is not NOT_JSON_BODY:
        raise NotApplicable("The recorded body is JSON (or there is none).")
    if seen.schemas.request_schema(seen.operation) is None:
        raise NotApplicable(f"{seen.method} {seen.path} takes no body.")
    if 400 <= seen.status < 500:
        return
    raise violation(
        "INPUT-MALFORMED-JSON",
        f"{seen.method} {seen.path} with a body that is not JSON was not refused with a 4xx.",
        expected="400 (any 4xx is tolerated)",
        actual=seen.reply.describe(),
        replies=[seen.reply],
    )


JUDGES: Final[tuple[Judge, ...]] = (
    Judge("SERVER-NO-5XX", no_server_error),
    Judge("AUTH-MISSING-KEY", request_without_key_is_refused),
    Judge("AUTH-WRONG-KEY", request_with_wrong_key_is_refused),
    Judge("AUTH-OTHER-HEADER", key_under_other_header_is_refused),
    Judge("AUTH-401-NOT-403", missing_key_is_401_not_403),
    Judge("HEALTH-OK", health_answers_2xx),
    Judge("TASK-BATCH-ROUTE", batch_path_reaches_batch_handler),
    Judge("TASK-CREATE-RETURNS-ID", created_task_has_id),
    Judge("ACTIVITY-RETURNS-ID", created_activity_has_id),
    Judge("TASK-BATCH-GET-ARRAY", batch_read_answers_array),
    Judge("TASK-BATCH-GET-OMITS-UNKNOWN", batch_read_omits_unknown_ids),
    Judge("CONTACT-CREATE-MAPS-EXTERNAL-IDS", contact_export_maps_every_external_id),
    Judge("COMPANY-CREATE-MAPS-EXTERNAL-IDS", company_export_maps_every_external_id),
    Judge("CONTACT-SYNC-OMITS-UNMATCHED", contact_sync_answers_only_contacts_sent),
    Judge("COMPANY-SYNC-OMITS-UNMATCHED", company_sync_answers_only_companies_sent),
    Judge("USERS-OPTIONAL", users_answer_array_or_not_implemented),
    Judge("INPUT-MALFORMED-JSON", malformed_json_is_refused),
    Judge("RESPONSE-SCHEMA", success_answer_matches_spec),
    Judge("RESPONSE-CONTENT-TYPE-JSON", json_answer_says_it_is_json),
    Judge("ERROR-BODY-JSON", error_answer_is_json),
)


def parse_body(text: str | None) -> Any:
    """A recorded body as JSON: None when there is none, `NOT_JSON_BODY` when it does not parse."""
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return NOT_JSON_BODY


def is_well_formed(schemas: SpecSchemas, operation: str, body: Any) -> bool:
    """Whether a body follows the operation's request schema (True when the operation takes none)."""
    if schemas.request_schema(operation) is None:
        return True
    if body is None or body is NOT_JSON_BODY:
        return False
    return not schemas.request_errors(operation, body)


BY_RULE: Final[Mapping[str, Judge]] = {judge.rule_id: judge for judge in JUDGES}


def decide(rule_id: str, seen: Seen) -> None:
    """Judge one rule on one exchange: returns when it holds, raises RuleViolation or NotApplicable."""
    BY_RULE[rule_id].function(seen)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one judge said of one exchange: `violation` is set when the rule was broken."""

    rule_id: str
    violation: RuleViolation | None = None

    @property
    def held(self) -> bool:
        return self.violation is None


def judge_exchange(seen: Seen, rule_ids: Iterable[str] | None = None) -> Iterator[Verdict]:
    """Every judge (of `rule_ids`, when given) that has something to say about the exchange."""
    wanted = None if rule_ids is None else frozenset(rule_ids)
    for judge in BY_RULE.values():
        if wanted is not None and judge.rule_id not in wanted:
            continue
        try:
            judge.function(seen)
        except NotApplicable:
            continue
        except RuleViolation as broken:
            yield Verdict(judge.rule_id, broken)
            continue
        yield Verdict(judge.rule_id)
