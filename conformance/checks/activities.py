"""Activities: every type in both directions, rich content, ids, and subjects stored verbatim.

The type and direction values come from the spec's ActivityType and Direction enums. The eight plain
activities (one per type and direction) carry only the suite's metadata marker, and the rich ones carry
the HTML, non-ASCII text and sequence metadata (one short, one a long HTML email of about 150 KB, the
size of a real thread with its quoted replies), so that a server choking on rich content fails
ACTIVITY-RICH-CONTENT alone and not ACTIVITY-ALL-TYPES as well. Thirty-two more are logged at the same
moment, for the one property only concurrency can break: distinct ids.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Final

from conformance.checks._context import CheckContext
from conformance.checks._registry import check, req, shared
from conformance.checks._support import lost_note, shown, violation
from conformance.client import Reply, Request
from conformance.results import NotApplicable
from conformance.tagging import MARKER

__all__ = ["created_activities"]

_OCCURRED: Final = "2030-01-15T10:00:00Z"
_RICH_BODY: Final = (
    "<p>Hola José, ¿qué tal? Grüße aus Köln, 你好 👋</p>"
    '<ul><li>Point <b>one</b></li><li>Point &amp; two</li></ul><a href="https://example.invalid">link</a>'
)


CONCURRENT_ACTIVITIES: Final = 32
# A long HTML email: a sales thread with inline styles, a table and quoted replies, as mail clients write
# them; about 150 KB, past the 100 KB a default body-size limit (Express's json()) lets through.
_THREAD_BLOCK: Final = (
    '<div style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222;line-height:1.5">'
    "<p>Hola Jos&eacute;, following up on our call &mdash; here is the summary you asked for. "
    "Grüße aus Köln, 你好 👋</p>"
    '<table style="border-collapse:collapse;width:100%"><tr><th style="border:1px solid #ccc;padding:4px">'
    'Plan</th><th style="border:1px solid #ccc;padding:4px">Seats</th></tr><tr><td style="border:1px solid '
    '#ccc;padding:4px">Growth</td><td style="border:1px solid #ccc;padding:4px">25</td></tr></table>'
    '<blockquote style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">On Mon, Jane Doe '
    "wrote:<br>Thanks, could you send the pricing proposal &amp; the security questionnaire?</blockquote>"
    "</div>\n"
)
_LONG_BODY: Final = (
    "<html><body>" + _THREAD_BLOCK * (150_000 // len(_THREAD_BLOCK.encode())) + "</body></html>"
)


@dataclass(frozen=True, slots=True)
class Attempt:
    type: str
    direction: str
    body: dict[str, Any]
    reply: Reply


def _subject(ctx: CheckContext, direction: str, index: int) -> str:
    # The docs' two formats: outbound "[1/3] [FROM Acme Corp] John Smith",
    # inbound "[TechStartup Inc] Jane Doe".
    if direction == "OUTBOUND":
        return ctx.subject(f"[{index}/8] [FROM Acme Corp] John Smith")
    return ctx.subject("[TechStartup Inc] Jane Doe")


@shared("activities", sends=(req("POST /activities", 8),))
def created_activities(ctx: CheckContext) -> tuple[Attempt, ...]:
    attempts = []
    index = 0
    for activity_type in ctx.schemas.enum("ActivityType"):
        for direction in ctx.schemas.enum("Direction"):
            index += 1
            body = {
                "type": activity_type,
                "direction": direction,
                "subject": _subject(ctx, direction, index),
                "body": f"Plain message {index} from the Enginy conformance suite.",
                "occurredAt": _OCCURRED,
                "metadata": dict(MARKER),
            }
            reply = ctx.client.post("/activities", body, operation="createActivity")
            ctx.note_created_from("activity", reply)
            attempts.append(Attempt(type=activity_type, direction=direction, body=body, reply=reply))
    return tuple(attempts)


@shared("concurrent_activities", sends=(req("POST /activities", CONCURRENT_ACTIVITIES),))
def concurrent_activities(ctx: CheckContext) -> tuple[Attempt, ...]:
    bodies = [
        {
            "type": "EMAIL",
            "direction": "OUTBOUND",
            "subject": ctx.subject(f"[{n}/{CONCURRENT_ACTIVITIES}] [FROM Acme Corp] John Smith"),
            "body": f"Message {n} of a burst, logged together by the Enginy conformance suite.",
            "occurredAt": _OCCURRED,
            "metadata": {**MARKER, "messageId": ctx.label("burst", n)},
        }
        for n in range(1, CONCURRENT_ACTIVITIES + 1)
    ]
    replies = ctx.client.gather(
        [Request("POST", "/activities", operation="createActivity", json=body) for body in bodies]
    )
    attempts = tuple(
        Attempt(type="EMAIL", direction="OUTBOUND", body=body, reply=reply)
        for body, reply in zip(bodies, replies, strict=True)
        if reply is not None
    )
    for attempt in attempts:
        ctx.note_created_from("activity", attempt.reply)
    return attempts


@shared("long_activity", sends=(req("POST /activities"),))
def long_activity(ctx: CheckContext) -> Attempt:
    body = {
        "type": "EMAIL",
        "direction": "INBOUND",
        "subject": ctx.subject("[TechStartup Inc] Jane Doe"),
        "body": _LONG_BODY,
        "occurredAt": _OCCURRED,
        "metadata": {**MARKER, "messageId": ctx.label("long-message")},
    }
    reply = ctx.client.post("/activities", body, operation="createActivity")
    ctx.note_created_from("activity", reply)
    return Attempt(type="EMAIL", direction="INBOUND", body=body, reply=reply)


@shared("rich_activity", sends=(req("POST /activities"),))
def rich_activity(ctx: CheckContext) -> Attempt:
    body = {
        "type": "EMAIL",
        "direction": "OUTBOUND",
        "subject": ctx.subject("[1/3] [FROM Acme Corp] José Müller — 你好"),
        "body": _RICH_BODY,
        "occurredAt": _OCCURRED,
        "metadata": {
            **MARKER,
            "messageId": ctx.label("message"),
            "sequenceIndex": 1,
            "sequenceMessageCount": 3,
        },
    }
    reply = ctx.client.post("/activities", body, operation="createActivity")
    ctx.note_created_from("activity", reply)
    return Attempt(type="EMAIL", direction="OUTBOUND", body=body, reply=reply)


@check("ACTIVITY-RETURNS-ID", uses=("activities", "concurrent_activities"))
def created_activity_has_distinct_id(ctx: CheckContext) -> str | None:
    # Activities the server refused are ACTIVITY-ALL-TYPES' to report; ids are judged on the accepted.
    attempts = (*created_activities(ctx), *concurrent_activities(ctx))
    accepted = [attempt for attempt in attempts if attempt.reply.ok]
    if not accepted:
        raise NotApplicable("No activity was accepted (see ACTIVITY-ALL-TYPES).")
    seen: dict[str, Reply] = {}
    for attempt in accepted:
        reply = attempt.reply
        ctx.judge("ACTIVITY-RETURNS-ID", reply)
        activity_id = reply.json["id"]
        if activity_id in seen:
            raise violation(
                "ACTIVITY-RETURNS-ID",
                f"Two different activities were given the same id {shown(activity_id)}.",
                expected=f"a distinct id for each activity ({CONCURRENT_ACTIVITIES} of them logged at once)",
                actual=f"id {shown(activity_id)} twice",
                replies=[seen[activity_id], reply],
            )
        seen[activity_id] = reply
    lost = CONCURRENT_ACTIVITIES - len(concurrent_activities(ctx))
    return lost_note(lost, CONCURRENT_ACTIVITIES, "POST /activities")


@check("ACTIVITY-ALL-TYPES", uses=("activities",))
def every_activity_type_is_accepted(ctx: CheckContext) -> None:
    attempts = created_activities(ctx)
    refused = [attempt for attempt in attempts if not attempt.reply.ok]
    if refused:
        raise violation(
            "ACTIVITY-ALL-TYPES",
            "POST /activities refused some of the documented type and direction pairs.",
            expected="2xx for each of " + ", ".join(f"{a.type}/{a.direction}" for a in attempts),
            actual="; ".join(f"{a.type}/{a.direction}: {a.reply.describe()}" for a in refused),
            replies=[attempt.reply for attempt in refused],
        )


@check("ACTIVITY-RICH-CONTENT", uses=("rich_activity", "long_activity"))
def rich_activity_is_accepted(ctx: CheckContext) -> None:
    for attempt, what in (
        (rich_activity(ctx), "an HTML body, non-ASCII text and metadata"),
        (long_activity(ctx), f"a long HTML email ({len(_LONG_BODY.encode()) // 1024} KB)"),
    ):
        if not attempt.reply.ok:
            raise violation(
                "ACTIVITY-RICH-CONTENT",
                f"POST /activities refused an activity with {what}; the body may contain HTML, and an "
                "email's HTML can be long.",
                expected="2xx",
                actual=attempt.reply.describe(),
                replies=[attempt.reply],
            )


@check("ACTIVITY-SUBJECT-VERBATIM", uses=("activities", "rich_activity"))
def activity_subject_is_verbatim(ctx: CheckContext) -> None:
    attempts = list(created_activities(ctx))
    with contextlib.suppress(NotApplicable):  # the plain activities are enough to judge
        attempts.append(rich_activity(ctx))
    echoed = 0
    for attempt in attempts:
        answer = attempt.reply.json
        if not attempt.reply.ok or not isinstance(answer, dict) or answer.get("subject") is None:
            continue
        echoed += 1
        if answer["subject"] != attempt.body["subject"]:
            raise violation(
                "ACTIVITY-SUBJECT-VERBATIM",
                "The activity's subject came back changed; Enginy formats it, so it is stored as sent.",
                expected=f"subject {shown(attempt.body['subject'])}",
                actual=f"subject {shown(answer['subject'])}",
                replies=[attempt.reply],
            )
    if not echoed:
        raise NotApplicable("No answer echoed the subject, so there is nothing to compare.")
