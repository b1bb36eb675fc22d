"""The scripted checks against FakeCRM, each test bending one behaviour.

Lenient edges pass (200 or 201, 403, extra fields, any order, no `success`, any ISO 8601, any 4xx where
the docs say 400); real violations fail the right rule, and only that rule.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

MUST_FAIL = "failed"
SHOULD_FAIL = "warning"


def bad(outcome) -> dict[str, str]:
    return {r.rule.id: r.outcome for r in outcome.report.results if r.outcome in ("failed", "warning")}


def route_is(request, method: str, path: str) -> bool:
    return request.method == method and request.path.split("?")[0] == path


def body_of(request) -> Any:
    """The request's JSON body, or {} (the suite also sends malformed JSON on purpose)."""
    try:
        return json.loads(request.body)
    except ValueError:
        return {}


def with_body(answer, change):
    status, body = answer
    return status, change(body)


# --- the baseline ------------------------------------------------------------------------------------


def test_the_fake_crm_is_conformant(fake_crm, judge):
    outcome = judge(fake_crm().url)
    assert bad(outcome) == {}
    assert outcome.exit_code == 0
    skipped = {r.rule.id for r in outcome.report.results if r.outcome == "skipped"}
    assert skipped == {"INPUT-INVALID-REJECTED", "INPUT-VALID-ACCEPTED"}  # Schemathesis off in these tests


# --- creates: 200 or 201, extra fields, ids -----------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201])
def test_creates_may_answer_200_or_201(fake_crm, judge, status):
    def any_create(request, answer):
        return (status, answer[1]) if request.method == "POST" and answer[0] == 201 else answer

    outcome = judge(fake_crm(transform=any_create).url)
    assert bad(outcome) == {}


def test_a_create_answering_202_breaks_returns_id(fake_crm, judge):
    def accepted(request, answer):
        return (202, answer[1]) if route_is(request, "POST", "/tasks") else answer

    outcome = judge(fake_crm(transform=accepted).url, "TASK-CREATE-RETURNS-ID")
    assert bad(outcome) == {"TASK-CREATE-RETURNS-ID": MUST_FAIL}


def test_extra_fields_anywhere_are_fine(fake_crm, judge):
    def decorate(body: Any) -> Any:
        if isinstance(body, dict):
            return {**{k: decorate(v) for k, v in body.items()}, "x-vendor": {"trace": 1}}
        if isinstance(body, list):
            return [decorate(item) for item in body]
        return body

    outcome = judge(fake_crm(transform=lambda request, answer: with_body(answer, decorate)).url)
    assert bad(outcome) == {}


def test_arrays_in_any_order_are_fine(fake_crm, judge):
    def reverse(body: Any) -> Any:
        if isinstance(body, list):
            return list(reversed(body))
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            return {**body, "results": list(reversed(body["results"]))}
        return body

    outcome = judge(fake_crm(transform=lambda request, answer: with_body(answer, reverse)).url)
    assert bad(outcome) == {}


def test_duplicate_task_ids_break_returns_id_and_skip_dependents(fake_crm, judge):
    def same_id(request, answer):
        if route_is(request, "POST", "/tasks") and answer[0] == 201:
            return 201, {**answer[1], "id": "task-1"}
        return answer

    outcome = judge(fake_crm(transform=same_id).url, "TASK-CREATE-RETURNS-ID", "TASK-GET", "TASK-COMPLETE")
    assert bad(outcome) == {"TASK-CREATE-RETURNS-ID": MUST_FAIL}
    skipped = {r.rule.id: r.evidence[0].message for r in outcome.report.results if r.outcome == "skipped"}
    assert set(skipped) == {"TASK-GET", "TASK-COMPLETE"}
    assert all("TASK-CREATE-RETURNS-ID" in reason for reason in skipped.values())


def test_a_create_without_id_is_reported_once(fake_crm, judge):
    def no_id(request, answer):
        if route_is(request, "POST", "/tasks") and answer[0] == 201:
            return 201, {k: v for k, v in answer[1].items() if k != "id"}
        return answer

    outcome = judge(fake_crm(transform=no_id).url)
    # RESPONSE-SCHEMA fails too: an answer without id breaks the Task schema, which requires it.
    assert bad(outcome) == {"TASK-CREATE-RETURNS-ID": MUST_FAIL, "RESPONSE-SCHEMA": MUST_FAIL}


# --- auth --------------------------------------------------------------------------------------------


def test_403_passes_the_must_rules_and_warns_once(fake_crm, judge):
    def forbidden(request, answer):
        return (403, {"error": "Forbidden"}) if answer[0] == 401 else answer

    outcome = judge(fake_crm(transform=forbidden).url)
    assert bad(outcome) == {"AUTH-401-NOT-403": SHOULD_FAIL}
    assert outcome.exit_code == 0  # a SHOULD failure is a warning


def test_a_server_ignoring_the_key_fails_both_key_rules(fake_crm, judge):
    outcome = judge(fake_crm(override=lambda r, a: _let_in(r, a)).url, "AUTH-MISSING-KEY", "AUTH-WRONG-KEY")
    assert bad(outcome) == {"AUTH-MISSING-KEY": MUST_FAIL, "AUTH-WRONG-KEY": MUST_FAIL}


def _let_in(request, app):
    request.headers[app.header] = app.key  # the server behaves as if the key were always right
    return None


def test_key_accepted_from_another_header_fails_other_header(fake_crm, judge):
    def bearer_too(request, app):
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ").strip() == app.key:
            request.headers[app.header] = app.key
        return None

    outcome = judge(fake_crm(override=bearer_too).url, "AUTH-OTHER-HEADER", "AUTH-MISSING-KEY")
    # A SHOULD since issue 8: the right key elsewhere is neither missing nor wrong.
    assert bad(outcome) == {"AUTH-OTHER-HEADER": "warning"}


def test_case_sensitive_header_name_fails_case_rule(fake_crm, judge):
    def exact_case(request, app):
        if app.header not in request.headers:
            return 401, {"error": "Unauthorized"}
        return None

    outcome = judge(fake_crm(override=exact_case).url, "AUTH-HEADER-CASE-INSENSITIVE", "HEALTH-OK")
    assert bad(outcome) == {"AUTH-HEADER-CASE-INSENSITIVE": MUST_FAIL}


def test_a_custom_key_header_is_used_everywhere(fake_crm, judge):
    crm = fake_crm(header="X-Tenant-Secret")
    outcome = judge(crm.url, api_key_header="X-Tenant-Secret")
    assert bad(outcome) == {}


# --- users --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 405, 501])
def test_users_may_opt_out(fake_crm, judge, status):
    def opt_out(request, app):
        if route_is(request, "GET", "/users") and request.headers.get(app.header) == app.key:
            return status, b"not implemented"
        return None

    outcome = judge(fake_crm(override=opt_out).url, "USERS-OPTIONAL", "SERVER-NO-5XX", "ERROR-BODY-JSON")
    assert bad(outcome) == {}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # USERS-OPTIONAL only warns ("any other error: feature off, connection still succeeds"); the
        # 5xx and the shape of a 2xx are MUST failures under their own rules.
        ((500, {"error": "boom"}), {"USERS-OPTIONAL": SHOULD_FAIL, "SERVER-NO-5XX": MUST_FAIL}),
        ((200, {"users": []}), {"USERS-OPTIONAL": SHOULD_FAIL, "RESPONSE-SCHEMA": MUST_FAIL}),
        ((200, [{"id": "u-1"}]), {"USERS-OPTIONAL": SHOULD_FAIL, "RESPONSE-SCHEMA": MUST_FAIL}),
        ((200, [{"id": "u-1", "name": "Ada", "team": "sales"}]), {}),
    ],
)
def test_users_answers(fake_crm, judge, answer, expected):
    def users(request, app):
        return (
            answer
            if route_is(request, "GET", "/users") and request.headers.get(app.header) == app.key
            else None
        )

    outcome = judge(fake_crm(override=users).url, "USERS-OPTIONAL", "SERVER-NO-5XX", "RESPONSE-SCHEMA")
    assert bad(outcome) == expected


# --- tasks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-01-15T11:30:00Z",
        "2024-01-15T11:30:00.123456+02:00",
        "2024-01-15T11:30:00.5-0530",
        "20240115T113000Z",
    ],
)
def test_any_iso_8601_completed_at_passes(fake_crm, judge, stamp):
    def stamped(request, answer):
        def restamp(body: Any) -> Any:
            if isinstance(body, list):
                return [restamp(item) for item in body]
            if isinstance(body, dict) and body.get("completedAt"):
                return {**body, "completedAt": stamp}
            return body

        return with_body(answer, restamp)

    outcome = judge(
        fake_crm(transform=stamped).url, "TIMESTAMPS-ISO8601", "TASK-COMPLETED-AT", "RESPONSE-SCHEMA"
    )
    assert bad(outcome) == {}


def test_a_non_iso_timestamp_fails_timestamps_only(fake_crm, judge):
    def rfc2822(request, answer):
        body = answer[1]
        if isinstance(body, dict) and body.get("completedAt"):
            return answer[0], {**body, "completedAt": "Mon, 15 Jan 2024 11:30:00 GMT"}
        return answer

    outcome = judge(fake_crm(transform=rfc2822).url)
    assert bad(outcome) == {"TIMESTAMPS-ISO8601": MUST_FAIL}


def test_open_task_without_completion_fields_warns(fake_crm, judge):
    def bare(request, answer):
        body = answer[1]
        if request.method == "GET" and isinstance(body, dict) and body.get("completed") is False:
            return 200, {k: v for k, v in body.items() if k not in ("completed", "completedAt")}
        return answer

    outcome = judge(fake_crm(transform=bare).url)
    assert bad(outcome) == {"TASK-GET-COMPLETION-FIELDS": SHOULD_FAIL}


def test_batch_answered_as_object_is_reported_under_array_once(fake_crm, judge):
    def wrapped(request, answer):
        if route_is(request, "POST", "/tasks/batch") and answer[0] == 200:
            return 200, {"tasks": answer[1]}
        return answer

    outcome = judge(fake_crm(transform=wrapped).url)
    assert bad(outcome) == {"TASK-BATCH-GET-ARRAY": MUST_FAIL, "RESPONSE-SCHEMA": MUST_FAIL}


def test_batch_swallowed_by_task_id_route_is_reported_under_route_once(fake_crm, judge):
    def shadowed(request, app):
        if request.path == "/tasks/batch" and request.headers.get(app.header) == app.key:
            if request.method == "PATCH":
                return 404, {"error": "Task not found", "message": "No task exists with ID: batch"}
            return 405, {"error": "Method not allowed"}
        return None

    outcome = judge(fake_crm(override=shadowed).url)
    assert bad(outcome) == {"TASK-BATCH-ROUTE": MUST_FAIL}


def test_batch_refusing_unknown_ids_fails_omits_only(fake_crm, judge):
    def strict(request, app):
        if route_is(request, "POST", "/tasks/batch"):
            ids = body_of(request).get("ids", [])
            if any(i not in app.tasks for i in ids):
                return 404, {"error": "Task not found"}
        return None

    outcome = judge(fake_crm(override=strict).url)
    assert bad(outcome) == {"TASK-BATCH-GET-OMITS-UNKNOWN": MUST_FAIL}


def test_completion_not_stored_fails_persists_only(fake_crm, judge):
    # Completions are computed on a copy for the answer; the stored task stays open.
    crm = fake_crm()
    real_complete = crm.app._complete

    def complete_in_answer_only(task, completed):
        copy = dict(task)
        real_complete(copy, completed)
        task["_answer"] = copy

    crm.app._complete = complete_in_answer_only
    original_update, original_batch = crm.app.update_task, crm.app.batch_complete

    def update_task(body, task_id):
        status, task = original_update(body, task_id)
        return (status, task.pop("_answer", task)) if isinstance(task, dict) else (status, task)

    def batch_complete(body):
        status, tasks = original_batch(body)
        return status, [task.pop("_answer", task) for task in tasks]

    crm.app.update_task, crm.app.batch_complete = update_task, batch_complete
    outcome = judge(crm.url)
    assert bad(outcome) == {"TASK-COMPLETION-PERSISTS": MUST_FAIL}


# --- records ------------------------------------------------------------------------------------------


def test_update_results_without_success_are_fine(fake_crm, judge):
    def no_success(request, answer):
        if request.method == "PUT" and answer[0] == 200:
            results = [{k: v for k, v in item.items() if k != "success"} for item in answer[1]["results"]]
            return 200, {"results": [r for r in results if "error" not in r]}  # unknown ids simply left out
        return answer

    outcome = judge(fake_crm(transform=no_success).url)
    assert bad(outcome) == {}


def test_externalid_not_echoed_fails_maps_only(fake_crm, judge):
    def mangled(request, answer):
        if route_is(request, "POST", "/contacts") and answer[0] == 201:
            return 201, {"results": [{**r, "externalId": r["crmId"]} for r in answer[1]["results"]]}
        return answer

    outcome = judge(fake_crm(transform=mangled).url)
    assert bad(outcome) == {"CONTACT-CREATE-MAPS-EXTERNAL-IDS": MUST_FAIL}


def test_sync_answering_unmatched_fails_omits_only(fake_crm, judge):
    def everyone(request, answer):
        if route_is(request, "POST", "/companies/sync") and answer[0] == 200:
            sent = body_of(request)["companies"]
            matched = {r["externalId"] for r in answer[1]["results"]}
            extra = [
                {"externalId": c["externalId"], "crmId": "made-up"}
                for c in sent
                if c["externalId"] not in matched
            ]
            return 200, {"results": answer[1]["results"] + extra}
        return answer

    outcome = judge(fake_crm(transform=everyone).url)
    assert bad(outcome) == {"COMPANY-SYNC-OMITS-UNMATCHED": MUST_FAIL}


def test_case_sensitive_email_matching_warns(fake_crm, judge):
    crm = fake_crm()
    original = crm.app.sync_contacts

    def exact(body):
        status, answer = original(body)
        sent = {c["externalId"]: c for c in body["contacts"]}
        kept = [
            r
            for r in answer["results"]
            if sent[r["externalId"]].get("email") in (None, crm.app.contacts[r["crmId"]].get("email"))
        ]
        return status, {"results": kept}

    crm.app.sync_contacts = exact
    outcome = judge(crm.url)
    assert bad(outcome) == {"CONTACT-SYNC-MATCHES-EMAIL": SHOULD_FAIL}


def test_unknown_fields_refused_fails_unknown_fields_only(fake_crm, judge):
    def strict(request, app):
        if route_is(request, "POST", "/companies"):
            allowed = {
                "externalId",
                "name",
                "domain",
                "industry",
                "numberOfEmployees",
                "linkedinUrl",
                "ownerId",
            }
            companies = body_of(request).get("companies", [])
            if any(set(c) - allowed for c in companies if isinstance(c, dict)):
                return 400, {"error": "Bad request", "message": "Unknown field."}
        return None

    outcome = judge(fake_crm(override=strict).url)
    assert bad(outcome) == {"COMPANY-CREATE-UNKNOWN-FIELDS": MUST_FAIL}


# --- associations -------------------------------------------------------------------------------------


def test_association_errors_without_pair_warns(fake_crm, judge):
    def silent(request, answer):
        if route_is(request, "POST", "/associations") and answer[0] == 200:
            return 200, {k: v for k, v in answer[1].items() if k != "errors"}
        return answer

    outcome = judge(fake_crm(transform=silent).url)
    assert bad(outcome) == {"ASSOC-ERRORS-NAME-PAIR": SHOULD_FAIL}


def test_association_created_omitted_is_fine(fake_crm, judge):
    def quiet(request, answer):
        if route_is(request, "POST", "/associations") and answer[0] == 200:
            return 200, {k: v for k, v in answer[1].items() if k != "created"}
        return answer

    outcome = judge(fake_crm(transform=quiet).url)
    assert bad(outcome) == {}


# --- inputs and errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 415, 422])
def test_any_4xx_where_the_docs_say_400(fake_crm, judge, status):
    def other_4xx(request, answer):
        return (status, answer[1]) if answer[0] == 400 else answer

    outcome = judge(
        fake_crm(transform=other_4xx).url, "INPUT-MALFORMED-JSON", "INPUT-MISSING-REQUIRED", "ERROR-BODY-JSON"
    )
    assert bad(outcome) == {}


def test_malformed_json_answered_500_fails_malformed_and_5xx(fake_crm, judge):
    def crash(request, answer):
        if answer[0] == 400 and "not valid JSON" in json.dumps(answer[1]):
            return 500, {"error": "Internal"}
        return answer

    outcome = judge(fake_crm(transform=crash).url)
    assert bad(outcome) == {"INPUT-MALFORMED-JSON": MUST_FAIL, "SERVER-NO-5XX": MUST_FAIL}


def test_missing_required_accepted_fails_missing_required_only(fake_crm, judge):
    def lax(request, app):
        if route_is(request, "POST", "/tasks"):
            try:
                body = json.loads(request.body)
            except ValueError:
                return None
            if isinstance(body, dict) and "subject" not in body:
                return app.create_task({**body, "subject": ""})
        return None

    outcome = judge(fake_crm(override=lax).url)
    assert bad(outcome) == {"INPUT-MISSING-REQUIRED": MUST_FAIL}
    assert any(r.kind == "task" for r in outcome.report.created)


def test_plain_text_errors_warn_under_error_body_json_only(fake_crm, judge):
    def plain(request, answer):
        if 400 <= answer[0] < 500:
            return answer[0], f"Error: {answer[1].get('error', '')}".encode() if isinstance(
                answer[1], dict
            ) else answer[1]
        return answer

    outcome = judge(fake_crm(transform=plain).url)
    assert bad(outcome) == {"ERROR-BODY-JSON": SHOULD_FAIL}


# --- activities ---------------------------------------------------------------------------------------


def test_subject_changed_warns_only(fake_crm, judge):
    def brackets_stripped(request, answer):
        if route_is(request, "POST", "/activities") and answer[0] == 201:
            return 201, {**answer[1], "subject": answer[1]["subject"].replace("[", "").replace("]", "")}
        return answer

    outcome = judge(fake_crm(transform=brackets_stripped).url)
    assert bad(outcome) == {"ACTIVITY-SUBJECT-VERBATIM": SHOULD_FAIL}


def test_html_refused_fails_rich_content_only(fake_crm, judge):
    def no_html(request, app):
        if route_is(request, "POST", "/activities") and b"<" in request.body:
            return 400, {"error": "Bad request", "message": "No HTML."}
        return None

    outcome = judge(fake_crm(override=no_html).url)
    assert bad(outcome) == {"ACTIVITY-RICH-CONTENT": MUST_FAIL}


def test_an_activity_answer_without_subject_is_not_judged_for_verbatim(fake_crm, judge):
    def id_only(request, answer):
        if route_is(request, "POST", "/activities") and answer[0] == 201:
            return 201, {"id": answer[1]["id"]}
        return answer

    outcome = judge(fake_crm(transform=id_only).url, "ACTIVITY-SUBJECT-VERBATIM", "ACTIVITY-RETURNS-ID")
    results = {r.rule.id: r for r in outcome.report.results}
    assert results["ACTIVITY-RETURNS-ID"].outcome == "passed"
    assert results["ACTIVITY-SUBJECT-VERBATIM"].outcome == "skipped"


# --- what the answers show: absent is "not shown", never wrong (issue 8) ------------------------------


def _without(*names: str):
    def transform(request, answer):
        status, body = answer
        if isinstance(body, dict):
            return status, {k: v for k, v in body.items() if k not in names}
        if isinstance(body, list):
            return status, [
                {k: v for k, v in i.items() if k not in names} if isinstance(i, dict) else i for i in body
            ]
        return answer

    return transform


def test_a_server_that_never_shows_completed_is_not_judged_on_persistence_and_the_run_is_incomplete(
    fake_crm, judge
):
    outcome = judge(fake_crm(transform=_without("completed", "completedAt")).url)
    assert bad(outcome) == {"TASK-GET-COMPLETION-FIELDS": SHOULD_FAIL}
    results = {r.rule.id: r for r in outcome.report.results}
    persists = results["TASK-COMPLETION-PERSISTS"]
    assert persists.outcome == "skipped" and "see TASK-GET-COMPLETION-FIELDS" in persists.evidence[0].message
    for rule in ("TASK-COMPLETE", "TASK-BATCH-COMPLETE", "TASK-CREATE-OPEN"):
        assert results[rule].outcome == "passed", rule  # nothing shown, nothing wrong
    assert outcome.report.verdict == "incomplete" and outcome.exit_code == 3


def test_answers_without_timestamps_hold_the_timestamp_rule(fake_crm, judge):
    outcome = judge(
        fake_crm(transform=_without("dueDate", "completedAt", "occurredAt")).url,
        "TIMESTAMPS-ISO8601",
    )
    (result,) = outcome.report.results
    assert result.outcome == "passed" and "No answer showed a timestamp" in result.evidence[0].message


def test_a_task_read_while_open_and_served_from_a_cache_after_completion_fails_persistence(fake_crm, judge):
    cache: dict[str, Any] = {}

    def cached(request, answer):
        if request.method == "GET" and request.path.startswith("/tasks/") and answer[0] == 200:
            return 200, cache.setdefault(request.path, dict(answer[1]))
        return answer

    outcome = judge(fake_crm(transform=cached).url)
    assert bad(outcome) == {"TASK-COMPLETION-PERSISTS": MUST_FAIL}
    failure = next(r for r in outcome.report.results if r.rule.id == "TASK-COMPLETION-PERSISTS").failures[0]
    # The evidence reads in order: the read while open, the completion, the stale read.
    assert [x.request.method for x in failure.exchanges] == ["GET", "PATCH", "GET"]


@pytest.mark.parametrize("status", [400, 422])
def test_an_unknown_task_id_may_be_refused_as_malformed(fake_crm, judge, status):
    def typed_ids(request, answer):
        if request.method == "GET" and answer[0] == 404:
            return status, {"detail": [{"loc": ["path", "task_id"], "msg": "value is not a valid uuid"}]}
        return answer

    outcome = judge(fake_crm(transform=typed_ids).url, "TASK-GET-UNKNOWN", "ERROR-BODY-JSON")
    assert bad(outcome) == {}


def test_put_answers_of_another_shape_pass_the_update_rules(fake_crm, judge):
    def other_shape(request, answer):
        if request.method == "PUT" and answer[0] == 200:
            return 200, {"updated": len(answer[1]["results"])}
        return answer

    outcome = judge(fake_crm(transform=other_shape).url)
    assert bad(outcome) == {}


def test_an_item_without_its_key_may_be_reported_per_item(fake_crm, judge):
    def per_item(request, app):
        if request.method in ("POST", "PUT") and request.path in ("/contacts", "/companies"):
            items = body_of(request).get(request.path.strip("/"))
            if (
                isinstance(items, list)
                and len(items) == 2
                and not all("externalId" in i or "crmId" in i for i in items)
            ):
                return 200, {"results": [], "errors": [{"index": 1, "error": "externalId is required"}]}
        return None

    outcome = judge(fake_crm(override=per_item).url, "INPUT-ITEM-MISSING-REQUIRED", "INPUT-MISSING-REQUIRED")
    assert bad(outcome) == {}


def test_an_item_without_its_key_created_as_if_whole_warns_only(fake_crm, judge):
    def careless(request, app):
        if route_is(request, "POST", "/contacts"):
            items = body_of(request).get("contacts")
            if isinstance(items, list) and any("externalId" not in i for i in items if isinstance(i, dict)):
                return 200, {
                    "results": [{"externalId": i.get("externalId"), "crmId": app.next_id("c")} for i in items]
                }
        return None

    outcome = judge(fake_crm(override=careless).url, "INPUT-ITEM-MISSING-REQUIRED", "INPUT-MISSING-REQUIRED")
    assert bad(outcome) == {"INPUT-ITEM-MISSING-REQUIRED": SHOULD_FAIL}


def test_json_labelled_otherwise_is_judged_as_json_and_warns_about_the_label(fake_crm, judge):
    def unlabelled(request, answer):
        status, body = answer
        if 200 <= status < 300 and not isinstance(body, bytes):
            return status, json.dumps(body).encode()  # FakeCRM sends bytes without a Content-Type
        return answer

    outcome = judge(fake_crm(transform=unlabelled).url)
    assert bad(outcome) == {"RESPONSE-CONTENT-TYPE-JSON": SHOULD_FAIL}


def test_a_pair_repeated_in_one_request_must_be_linked_once(fake_crm, judge):
    def counts_repeats(request, answer):
        if route_is(request, "POST", "/associations") and answer[0] == 200:
            pairs = body_of(request)["associations"]
            if len(pairs) == 2 and pairs[0] == pairs[1]:
                return 200, {**answer[1], "created": 2}
        return answer

    outcome = judge(fake_crm(transform=counts_repeats).url, "ASSOC-CREATE", "ASSOC-UPSERT")
    assert bad(outcome) == {"ASSOC-UPSERT": MUST_FAIL}


def test_ids_shared_by_creates_sent_together_fail_the_id_rules(fake_crm, judge):
    # A counter read before the write and written after it: creates that overlap get the same id.
    crm = fake_crm()
    real_next = crm.app.next_id
    seen: dict[str, str] = {}

    def racy(prefix):
        if prefix == "task":
            # Every third task repeats the id before it, as a racy counter does under load.
            value = real_next(prefix)
            number = int(value.rsplit("-", 1)[1])
            if number % 3 == 0:
                return seen.get("last", value)
            seen["last"] = value
            return value
        return real_next(prefix)

    crm.app.next_id = racy
    outcome = judge(crm.url, "TASK-CREATE-RETURNS-ID")
    failure = outcome.report.results[0].failures[0]
    assert "were given the same id" in failure.message


def test_max_writes_too_low_for_the_must_rules_is_incomplete(fake_crm, judge):
    outcome = judge(fake_crm().url, max_writes=10)
    assert bad(outcome) == {}
    assert outcome.report.verdict == "incomplete" and outcome.exit_code == 3
    reasons = {r.rule.id: r.evidence[0].message for r in outcome.report.not_judged}
    assert "--max-writes" in reasons["TASK-CREATE-RETURNS-ID"] and "--max-writes" in reasons["ASSOC-CREATE"]


# --- robustness: garbage of every JSON type never crashes a check ----------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        42,
        "ok",
        [],
        {},
        [1, "2", None],
        {"results": "x"},
        {"results": [1, {"crmId": 5}]},
        [{"id": 5}],
        {"id": ["x"], "completed": "yes", "completedAt": 7, "subject": {}},
        {"success": "true", "errors": {}},
        b"\xff\xfe not even text",
        b"",
    ],
)
def test_garbage_answers_give_verdicts_not_crashes(fake_crm, judge, garbage):
    def garble(request, answer):
        return (answer[0], garbage) if request.path != "/health" or request.method != "GET" else answer

    lines: list[str] = []
    outcome = judge(fake_crm(transform=garble).url, lines=lines)
    internal = [line for line in lines if "Internal error" in line]
    assert internal == []
    assert outcome.exit_code == 1


@pytest.mark.parametrize("status", [204, 302, 418, 500])
def test_odd_statuses_everywhere_give_verdicts_not_crashes(fake_crm, judge, status):
    def odd(request, answer):
        return (status, b"") if request.path != "/health" else answer

    lines: list[str] = []
    outcome = judge(fake_crm(transform=odd).url, lines=lines)
    assert [line for line in lines if "Internal error" in line] == []
    assert outcome.exit_code == 1
