"""Tasks: create, read, update/complete, batch read, batch complete, route order."""

from __future__ import annotations


def test_create_answers_201_with_string_id_open_task_and_every_field_echoed(mock):
    sent = {
        "subject": "Follow up with John",
        "description": "Discuss pricing",
        "type": "call",
        "ownerId": "user-123",
        "dueDate": "2024-01-15T10:00:00Z",
        "contactId": "contact-456",
        "companyId": "company-789",
    }
    result = mock.client.simulate_post("/tasks", json=sent)
    assert result.status_code == 201
    assert result.json == {"id": "task-1", **sent, "completed": False, "completedAt": None}


def test_create_answers_unset_optional_fields_as_null(mock):
    task = mock.create_task(subject="Only a subject")
    assert task["description"] is None and task["dueDate"] is None and task["companyId"] is None


def test_create_ignores_fields_the_spec_does_not_declare_for_tasks(mock):
    # An undeclared "completed": 123 must not end up in the answer (it would break the Task schema).
    result = mock.client.simulate_post(
        "/tasks", json={"subject": "x", "completed": 123, "id": "mine", "extra": 1}
    )
    assert result.status_code == 201
    assert result.json["completed"] is False
    assert result.json["id"] == "task-1"
    assert "extra" not in result.json


def test_create_without_subject_is_400_naming_the_field(mock):
    result = mock.client.simulate_post("/tasks", json={"description": "no subject"})
    assert result.status_code == 400
    assert result.json == {"error": "Invalid body", "message": "subject is required."}


def test_create_with_a_bad_due_date_is_400(mock):
    result = mock.client.simulate_post("/tasks", json={"subject": "x", "dueDate": "tomorrow"})
    assert result.status_code == 400
    assert "dueDate" in result.json["message"]


def test_get_answers_the_stored_task(mock):
    created = mock.create_task(description="notes")
    result = mock.client.simulate_get(f"/tasks/{created['id']}")
    assert result.status_code == 200
    assert result.json == created


def test_get_unknown_is_404_with_the_docs_error_body(mock):
    result = mock.client.simulate_get("/tasks/task-xyz")
    assert result.status_code == 404
    assert result.json == {"error": "Task not found", "message": "No task exists with ID: task-xyz"}


def test_patch_completed_true_sets_completed_at_from_the_clock(mock):
    task = mock.create_task()
    mock.clock.advance(hours=1, minutes=30)
    result = mock.client.simulate_patch(f"/tasks/{task['id']}", json={"completed": True})
    assert result.status_code == 200
    assert result.json["completed"] is True
    assert result.json["completedAt"] == "2024-01-15T11:30:00.000Z"
    assert mock.client.simulate_get(f"/tasks/{task['id']}").json == result.json


def test_patch_completing_twice_keeps_the_first_completion_time(mock):
    task = mock.create_task()
    first = mock.client.simulate_patch(f"/tasks/{task['id']}", json={"completed": True}).json
    mock.clock.advance(hours=2)
    second = mock.client.simulate_patch(f"/tasks/{task['id']}", json={"completed": True}).json
    assert second["completedAt"] == first["completedAt"]


def test_patch_completed_false_reopens_and_clears_completed_at(mock):
    task = mock.create_task()
    mock.client.simulate_patch(f"/tasks/{task['id']}", json={"completed": True})
    result = mock.client.simulate_patch(f"/tasks/{task['id']}", json={"completed": False})
    assert result.json["completed"] is False and result.json["completedAt"] is None


def test_patch_other_fields_changes_only_them(mock):
    task = mock.create_task(description="old", type="call")
    result = mock.client.simulate_patch(f"/tasks/{task['id']}", json={"description": "new", "ownerId": "u-1"})
    assert result.json == {**task, "description": "new", "ownerId": "u-1"}


def test_patch_empty_body_changes_nothing(mock):
    task = mock.create_task(description="keep")
    result = mock.client.simulate_patch(f"/tasks/{task['id']}", json={})
    assert result.status_code == 200
    assert result.json == task


def test_patch_unknown_id_is_404(mock):
    result = mock.client.simulate_patch("/tasks/task-nope", json={"completed": True})
    assert result.status_code == 404
    assert result.json["error"] == "Task not found"


def test_patch_with_wrong_type_is_400(mock):
    task = mock.create_task()
    result = mock.client.simulate_patch(f"/tasks/{task['id']}", json={"completed": "yes"})
    assert result.status_code == 400
    assert result.json["message"] == "completed must be true or false."


def test_batch_get_answers_a_bare_array_of_the_known_tasks_only(mock):
    first, second = mock.create_task(subject="a"), mock.create_task(subject="b")
    result = mock.client.simulate_post(
        "/tasks/batch", json={"ids": [second["id"], "task-unknown", first["id"]]}
    )
    assert result.status_code == 200
    assert result.json == [second, first]


def test_batch_get_of_only_unknown_or_no_ids_is_an_empty_array(mock):
    assert mock.client.simulate_post("/tasks/batch", json={"ids": ["nope"]}).json == []
    result = mock.client.simulate_post("/tasks/batch", json={"ids": []})
    assert result.status_code == 200 and result.json == []


def test_batch_get_answers_duplicate_ids_once(mock):
    task = mock.create_task()
    assert mock.client.simulate_post("/tasks/batch", json={"ids": [task["id"], task["id"]]}).json == [task]


def test_batch_get_without_ids_is_400(mock):
    result = mock.client.simulate_post("/tasks/batch", json={"id": []})
    assert result.status_code == 400
    assert result.json["message"] == "ids is required."


def test_batch_complete_stores_completion_and_omits_unknown_ids(mock):
    first, second = mock.create_task(subject="a"), mock.create_task(subject="b")
    result = mock.client.simulate_patch(
        "/tasks/batch", json={"ids": [first["id"], "task-unknown", second["id"]], "completed": True}
    )
    assert result.status_code == 200
    assert [task["id"] for task in result.json] == [first["id"], second["id"]]
    assert all(
        task["completed"] and task["completedAt"] == "2024-01-15T10:00:00.000Z" for task in result.json
    )
    stored = mock.client.simulate_post("/tasks/batch", json={"ids": [first["id"], second["id"]]}).json
    assert stored == result.json


def test_batch_complete_false_reopens(mock):
    task = mock.create_task()
    mock.client.simulate_patch("/tasks/batch", json={"ids": [task["id"]], "completed": True})
    result = mock.client.simulate_patch("/tasks/batch", json={"ids": [task["id"]], "completed": False})
    assert result.json == [{**task, "completed": False, "completedAt": None}]


def test_batch_complete_requires_completed(mock):
    result = mock.client.simulate_patch("/tasks/batch", json={"ids": []})
    assert result.status_code == 400
    assert result.json["message"] == "completed is required."


def test_batch_routes_win_over_the_task_id_route(mock):
    # GET /tasks/batch reaches the batch resource, which has no GET: 405, never "task batch not found".
    result = mock.client.simulate_get("/tasks/batch")
    assert result.status_code == 405
    assert set(result.headers["allow"].split(", ")) == {"POST", "PATCH", "OPTIONS"}
    assert result.json["error"] == "Method not allowed"
    assert mock.client.simulate_patch("/tasks/batch", json={"ids": [], "completed": True}).json == []


def test_ids_in_paths_are_looked_up_verbatim(mock):
    for odd in ("..", "a%2Fb", "%00", "%E2%82%AC"):
        result = mock.client.simulate_get(f"/tasks/{odd}")
        assert result.status_code == 404, odd
        assert result.json["error"] in {"Task not found", "Not found"}


def test_every_answer_has_the_same_fields_in_the_same_order_whatever_the_store_holds(mock):
    # The usual stored task and the odd ones (a stray field, completed null, no subject) are answered
    # by two different ways of building the view: they must agree.
    shape = list(mock.create_task(subject="usual"))
    mock.store.put(
        "tasks",
        [
            {"id": "t-stray", "subject": "s", "completed": None, "stray": 1},
            {"id": "t-no-subject", "type": "call", "completed": True, "completedAt": "2024-01-15T10:00:00Z"},
        ],
    )
    stray, no_subject = mock.client.simulate_post(
        "/tasks/batch", json={"ids": ["t-stray", "t-no-subject"]}
    ).json
    assert list(stray) == shape and stray["completed"] is False and "stray" not in stray
    assert list(no_subject) == [name for name in shape if name != "subject"]
    assert no_subject["completed"] is True and no_subject["completedAt"] == "2024-01-15T10:00:00Z"
