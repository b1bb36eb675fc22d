"""conformance.tagging: one place decides the marks; generated bodies are tagged on their way out."""

from __future__ import annotations

from conformance.tagging import MARKER, Ledger, Tagger, created_ids

TAGGER = Tagger(tag="enginy-conformance", run_id="ab12cd34")
PREFIX = "enginy-conformance-ab12cd34"


def test_creates_are_tagged_in_place_once():
    task = {"subject": "Call John"}
    TAGGER.tag_body("createTask", task)
    TAGGER.tag_body("createTask", task)  # a re-send (ignored_auth) is not tagged twice
    assert task == {"subject": f"{PREFIX} Call John"} and TAGGER.is_tagged("createTask", task)
    contacts = {"contacts": [{"externalId": "lead-123"}, {"externalId": ""}]}
    TAGGER.tag_body("createContacts", contacts)
    assert [item["externalId"] for item in contacts["contacts"]] == [f"{PREFIX}-lead-123", f"{PREFIX}-"]
    assert TAGGER.is_tagged("createContacts", contacts)


def test_activities_get_the_marker_even_without_metadata():
    activity = {"type": "EMAIL"}
    TAGGER.tag_body("createActivity", activity)
    assert activity["metadata"] == MARKER and TAGGER.is_tagged("createActivity", activity)
    other = {"type": "EMAIL", "metadata": {"messageId": "m"}}
    TAGGER.tag_body("createActivity", other)
    assert other["metadata"] == {"messageId": "m", **MARKER}


def test_an_update_cannot_wipe_a_mark_off():
    patch = {"subject": "renamed"}
    TAGGER.tag_body("updateTask", patch)
    assert patch["subject"].startswith(PREFIX)


def test_bodies_that_leave_nothing_to_tag_are_said_to_be_untagged():
    for operation, body in (
        ("createTask", {"subject": 42}),
        ("createActivity", {"type": "EMAIL", "metadata": [1]}),
        ("createContacts", {"contacts": [{"email": "x"}]}),
        ("createCompanies", {"companies": "all"}),
    ):
        TAGGER.tag_body(operation, body)
        assert not TAGGER.is_tagged(operation, body), operation


def test_created_ids_and_the_ledger():
    assert created_ids({"id": "t1"}) == ["t1"]
    assert created_ids({"results": [{"crmId": "c1"}, {"crmId": ""}, "x"]}) == ["c1"]
    assert created_ids([1, 2]) == []
    ledger = Ledger()
    ledger.note("task", "t1", "Schemathesis POST /tasks")
    ledger.note("task", "t1", "Schemathesis POST /tasks")
    ledger.note("task", "t2", "Schemathesis POST /tasks", tagged=False)
    assert len(ledger.created) == 2 and ledger.untagged == 1
