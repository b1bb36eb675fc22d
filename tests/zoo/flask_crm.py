"""A small in-memory CRM implementing Enginy's "Custom CRM API" with Flask.

Served by Werkzeug's threaded development server:

    python tests/zoo/flask_crm.py --port 8080 --key secret [--key-header X-API-Key] [--bug ID ...]
    python tests/zoo/flask_crm.py --list-bugs

Errors are Flask's stock ``abort()`` pages (text/html). State lives in plain dicts
guarded by one lock, because the server handles each request on its own thread.
"""

import argparse
import hmac
import itertools
import json
import logging
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

from flask import Flask, abort, jsonify, request
from werkzeug.serving import make_server

BUGS = [
    {
        "id": "health-no-auth",
        "summary": "The API-key before_request hook skips the 'health' endpoint, the way a "
        "Kubernetes liveness probe is usually left public. curl /health with the key still "
        "answers 200, so the happy path looks fine.",
        "breaks": "The server must check the key on every call and answer 401 Unauthorized if "
        "it is missing or wrong.",
        "rule": "AUTH-MISSING-KEY",
    },
    {
        "id": "int-task-ids",
        "summary": "Tasks are numbered with an integer counter and routed as "
        "/tasks/<int:task_id>, so the id goes out as a JSON number (1, 2, ...). "
        "curl -X POST /tasks then GET /tasks/1 works, so it was never noticed.",
        "breaks": "id string Yes Unique identifier for the task",
        "rule": "TASK-CREATE-RETURNS-ID",
    },
    {
        "id": "http-date-timestamps",
        "summary": "completedAt is stored as a datetime object and handed to jsonify, which "
        "Flask renders as an HTTP date ('Mon, 15 Jan 2024 11:30:00 GMT'). It reads like a "
        "date in curl output.",
        "breaks": "completedAt string (ISO 8601) No When the task was completed",
        "rule": "TIMESTAMPS-ISO8601",
    },
    {
        "id": "mutable-default-batch",
        "summary": "The helper that collects tasks for the batch endpoints has a mutable "
        "default argument (found=[]), so every batch answer also carries the tasks of all "
        "earlier batch calls (across threads, too). The first curl is correct.",
        "breaks": "Return an array of tasks. Tasks that don't exist should be omitted from the "
        "response (don't return errors for missing tasks).",
        "rule": "TASK-BATCH-GET-OMITS-UNKNOWN",
    },
    {
        "id": "clock-activity-ids",
        "summary": "Activity ids are built from the clock in milliseconds "
        "(activity-1736940000123). One curl at a time they are unique; activities arriving "
        "concurrently (or in the same millisecond) share an id and overwrite each other.",
        "breaks": "id string Yes (response) Unique identifier for the activity",
        "rule": "ACTIVITY-RETURNS-ID",
    },
    {
        "id": "empty-linkedin-matches",
        "summary": "Contact sync falls back to the normalised LinkedIn URL without checking it "
        "is non-empty, so a contact sent without linkedinUrl 'matches' the first stored "
        "contact that has none. The curl test used a contact with both email and URL.",
        "breaks": "Response (200): only matched contacts; unmatched ones are simply left out "
        "(no error).",
        "rule": "CONTACT-SYNC-OMITS-UNMATCHED",
    },
    {
        "id": "domain-keeps-path",
        "summary": "Domain normalisation was copied as lower() + replace('https://', '') + "
        "replace('www.', '') + rstrip('/'): it handles 'WWW.ACME.COM' and 'acme.com/' but "
        "keeps any path, so 'https://www.acme.com/about' never matches 'acme.com'.",
        "breaks": "lower-case, strip a leading http:// / https:// and a leading www., drop "
        "everything from the first /, trim. Examples: https://www.acme.com/about -> acme.com",
        "rule": "COMPANY-SYNC-MATCHES-DOMAIN",
    },
]
BUG_IDS = {b["id"] for b in BUGS}

ACTIVITY_TYPES = {"EMAIL", "LINKEDIN", "LINKEDIN_INMAIL", "LINKEDIN_CONNECTION"}
DIRECTIONS = {"INBOUND", "OUTBOUND"}
TASK_FIELDS = ("subject", "description", "type", "ownerId", "dueDate", "contactId", "companyId")
CONTACT_PROPERTIES = ("email", "phone", "mobilePhone", "ownerId", "leadScore",
                      "lifecycleStage", "lastActivityDate")
COMPANY_PROPERTIES = ("name", "domain", "ownerId", "accountTier", "totalDeals", "lifetimeValue")

USERS = [
    {"id": "user-1", "name": "Ada Lovelace", "email": "ada@example.com"},
    {"id": "user-2", "name": "Grace Hopper", "email": "grace@example.com"},
    {"id": "user-3", "name": "Sales Bot"},
]


def utcnow_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value):
    # Fixed after the conformance suite's generated testing crashed sync with a list as linkedinUrl.
    return value if isinstance(value, str) else ""


def normalize_email(value):
    return _text(value).strip().lower()


def normalize_linkedin(value):
    return _text(value).strip().rstrip("/").lower()


def normalize_domain(value, keep_path=False):
    domain = _text(value).strip().lower()
    for prefix in ("https://", "http://"):
        if domain.startswith(prefix):
            domain = domain[len(prefix):]
    if domain.startswith("www."):
        domain = domain[len("www."):]
    if keep_path:
        domain = domain.rstrip("/")
    else:
        domain = domain.split("/", 1)[0]
    return domain.strip()


def collect_tasks(tasks, ids):
    return [tasks[i] for i in ids if i in tasks]


def collect_tasks_cached(tasks, ids, found=[]):  # --bug mutable-default-batch
    for i in ids:
        if i in tasks:
            found.append(tasks[i])
    return found


def is_iso_datetime(value):
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def create_app(api_key, key_header="X-API-Key", bugs=()):
    bugs = set(bugs)
    app = Flask(__name__)

    lock = threading.Lock()
    contacts = {}       # crmId -> record
    companies = {}      # crmId -> record
    associations = set()  # (contactCRMId, companyCRMId)
    activities = {}     # id -> activity
    tasks = {}          # id -> task
    task_numbers = itertools.count(1)

    # ---------------------------------------------------------------- helpers

    def json_body():
        data = request.get_json()  # 400 on malformed JSON, 415 on a non-JSON body
        if not isinstance(data, dict):
            abort(400, description="The request body must be a JSON object.")
        return data

    def object_list(data, field):
        items = data.get(field)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            abort(400, description=f"'{field}' must be an array of objects.")
        return items

    def require_string(item, field):
        value = item.get(field)
        if not isinstance(value, str) or not value:
            abort(400, description=f"'{field}' is required and must be a non-empty string.")
        return value

    def optional_string(item, field):
        value = item.get(field)
        if value is not None and not isinstance(value, str):
            abort(400, description=f"'{field}' must be a string.")
        return value

    def optional_timestamp(item, field):
        value = optional_string(item, field)
        if value is not None and not is_iso_datetime(value):
            abort(400, description=f"'{field}' must be an ISO 8601 date-time.")
        return value

    def task_ids(data):
        ids = data.get("ids")
        allowed = (str, int) if "int-task-ids" in bugs else str
        if not isinstance(ids, list) or not all(isinstance(i, allowed) for i in ids):
            abort(400, description="'ids' must be an array of task ids.")
        return ids

    def properties(record, keys):
        return {k: record[k] for k in keys if record.get(k) is not None}

    def completion_time():
        if "http-date-timestamps" in bugs:
            return datetime.now(timezone.utc)
        return utcnow_iso()

    def set_completed(task, completed):
        if completed and not task["completed"]:
            task["completedAt"] = completion_time()
        elif not completed:
            task["completedAt"] = None
        task["completed"] = completed

    def get_task_or_404(task_id):
        task = tasks.get(task_id)
        if task is None:
            abort(404, description=f"No task exists with ID: {task_id}")
        return task

    def find_contact(item):
        email = normalize_email(item.get("email"))
        if email:
            for record in contacts.values():
                if normalize_email(record.get("email")) == email:
                    return record
        url = normalize_linkedin(item.get("linkedinUrl"))
        if url or "empty-linkedin-matches" in bugs:
            for record in contacts.values():
                if normalize_linkedin(record.get("linkedinUrl")) == url:
                    return record
        return None

    def find_company(item):
        keep_path = "domain-keeps-path" in bugs
        domain = normalize_domain(item.get("domain"), keep_path)
        if domain:
            for record in companies.values():
                if normalize_domain(record.get("domain"), keep_path) == domain:
                    return record
        url = normalize_linkedin(item.get("linkedinUrl"))
        if url:
            for record in companies.values():
                if normalize_linkedin(record.get("linkedinUrl")) == url:
                    return record
        name = _text(item.get("name")).strip().lower()
        if name and not domain and not url:
            for record in companies.values():
                if _text(record.get("name")).strip().lower() == name:
                    return record
        return None

    # ------------------------------------------------------------------- auth

    @app.before_request
    def check_api_key():
        if "health-no-auth" in bugs and request.endpoint == "health":
            return None
        supplied = request.headers.get(key_header)
        if supplied is None or not hmac.compare_digest(
            supplied.encode("utf-8", "surrogateescape"), api_key.encode("utf-8")
        ):
            abort(401, description="Missing or invalid API key.")
        return None

    # ----------------------------------------------------------------- health

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    # --------------------------------------------------------------- contacts

    @app.post("/contacts")
    def create_contacts():
        items = object_list(json_body(), "contacts")
        for item in items:
            require_string(item, "externalId")
        results = []
        with lock:
            for item in items:
                crm_id = str(uuid.uuid4())
                contacts[crm_id] = {**item, "crmId": crm_id}
                results.append({"externalId": item["externalId"], "crmId": crm_id})
        return jsonify(results=results)

    @app.post("/contacts/sync")
    def sync_contacts():
        items = object_list(json_body(), "contacts")
        for item in items:
            require_string(item, "externalId")
        results = []
        with lock:
            for item in items:
                record = find_contact(item)
                if record is not None:
                    results.append({
                        "externalId": item["externalId"],
                        "crmId": record["crmId"],
                        "properties": properties(record, CONTACT_PROPERTIES),
                    })
        return jsonify(results=results)

    @app.put("/contacts")
    def update_contacts():
        items = object_list(json_body(), "contacts")
        for item in items:
            require_string(item, "crmId")
        results = []
        with lock:
            for item in items:
                record = contacts.get(item["crmId"])
                if record is None:
                    results.append({"crmId": item["crmId"], "success": False,
                                    "error": "Contact not found"})
                    continue
                record.update(item)
                results.append({"crmId": item["crmId"], "success": True,
                                "properties": properties(record, CONTACT_PROPERTIES)})
        return jsonify(results=results)

    # -------------------------------------------------------------- companies

    @app.post("/companies")
    def create_companies():
        items = object_list(json_body(), "companies")
        for item in items:
            require_string(item, "externalId")
        results = []
        with lock:
            for item in items:
                crm_id = str(uuid.uuid4())
                companies[crm_id] = {**item, "crmId": crm_id}
                results.append({"externalId": item["externalId"], "crmId": crm_id})
        return jsonify(results=results)

    @app.post("/companies/sync")
    def sync_companies():
        items = object_list(json_body(), "companies")
        for item in items:
            require_string(item, "externalId")
        results = []
        with lock:
            for item in items:
                record = find_company(item)
                if record is not None:
                    results.append({
                        "externalId": item["externalId"],
                        "crmId": record["crmId"],
                        "properties": properties(record, COMPANY_PROPERTIES),
                    })
        return jsonify(results=results)

    @app.put("/companies")
    def update_companies():
        items = object_list(json_body(), "companies")
        for item in items:
            require_string(item, "crmId")
        results = []
        with lock:
            for item in items:
                record = companies.get(item["crmId"])
                if record is None:
                    results.append({"crmId": item["crmId"], "success": False,
                                    "error": "Company not found"})
                    continue
                record.update(item)
                results.append({"crmId": item["crmId"], "success": True,
                                "properties": properties(record, COMPANY_PROPERTIES)})
        return jsonify(results=results)

    # ----------------------------------------------------------- associations

    @app.post("/associations")
    def create_associations():
        items = object_list(json_body(), "associations")
        for item in items:
            require_string(item, "contactCRMId")
            require_string(item, "companyCRMId")
        created = 0
        errors = []
        with lock:
            for item in items:
                pair = (item["contactCRMId"], item["companyCRMId"])
                if pair[0] not in contacts:
                    error = "Contact not found"
                elif pair[1] not in companies:
                    error = "Company not found"
                else:
                    if pair not in associations:  # upsert: an existing pair is skipped
                        associations.add(pair)
                        created += 1
                    continue
                errors.append({"contactCRMId": pair[0], "companyCRMId": pair[1],
                               "error": error})
        return jsonify(success=True, created=created, errors=errors)

    # ------------------------------------------------------------- activities

    @app.post("/activities")
    def create_activity():
        data = json_body()
        activity_type = require_string(data, "type")
        if activity_type not in ACTIVITY_TYPES:
            abort(400, description=f"'type' must be one of {', '.join(sorted(ACTIVITY_TYPES))}.")
        direction = optional_string(data, "direction")
        if direction is not None and direction not in DIRECTIONS:
            abort(400, description="'direction' must be INBOUND or OUTBOUND.")
        for field in ("subject", "body", "ownerId", "contactId", "companyId"):
            optional_string(data, field)
        optional_timestamp(data, "occurredAt")
        metadata = data.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            abort(400, description="'metadata' must be an object.")

        if "clock-activity-ids" in bugs:
            activity_id = f"activity-{int(time.time() * 1000)}"
        else:
            activity_id = str(uuid.uuid4())
        activity = {
            "id": activity_id,
            "type": activity_type,
            "subject": data.get("subject"),
            "body": data.get("body"),
            "direction": direction,
            "ownerId": data.get("ownerId"),
            "occurredAt": data.get("occurredAt"),
            "contactId": data.get("contactId"),
            "companyId": data.get("companyId"),
            "metadata": metadata,
        }
        with lock:
            activities[activity_id] = activity
        return jsonify(activity), 201

    # ------------------------------------------------------------------ tasks

    @app.post("/tasks")
    def create_task():
        data = json_body()
        require_string(data, "subject")
        for field in ("description", "type", "ownerId", "contactId", "companyId"):
            optional_string(data, field)
        optional_timestamp(data, "dueDate")

        if "int-task-ids" in bugs:
            task_id = next(task_numbers)
        else:
            task_id = str(uuid.uuid4())
        task = {"id": task_id, **{f: data.get(f) for f in TASK_FIELDS},
                "completed": False, "completedAt": None}
        with lock:
            tasks[task_id] = task
        return jsonify(task), 201

    @app.post("/tasks/batch")
    def get_tasks_batch():
        ids = task_ids(json_body())
        collect = collect_tasks_cached if "mutable-default-batch" in bugs else collect_tasks
        with lock:
            found = collect(tasks, ids)
            return jsonify(found)

    @app.patch("/tasks/batch")
    def complete_tasks_batch():
        data = json_body()
        ids = task_ids(data)
        completed = data.get("completed")
        if not isinstance(completed, bool):
            abort(400, description="'completed' is required and must be a boolean.")
        collect = collect_tasks_cached if "mutable-default-batch" in bugs else collect_tasks
        with lock:
            found = collect(tasks, ids)
            for task in found:
                set_completed(task, completed)
            return jsonify(found)

    task_rule = "/tasks/<int:task_id>" if "int-task-ids" in bugs else "/tasks/<task_id>"

    @app.get(task_rule)
    def get_task(task_id):
        with lock:
            return jsonify(get_task_or_404(task_id))

    @app.patch(task_rule)
    def update_task(task_id):
        data = json_body()
        completed = data.get("completed")
        if completed is not None and not isinstance(completed, bool):
            abort(400, description="'completed' must be a boolean.")
        if "subject" in data:
            require_string(data, "subject")
        for field in ("description", "type", "ownerId", "contactId", "companyId"):
            optional_string(data, field)
        optional_timestamp(data, "dueDate")
        with lock:
            task = get_task_or_404(task_id)
            for field in TASK_FIELDS:
                if field in data:
                    task[field] = data[field]
            if completed is not None:
                set_completed(task, completed)
            return jsonify(task)

    # ------------------------------------------------------------------ users

    @app.get("/users")
    def list_users():
        return jsonify(USERS)

    return app


def main(argv=None):
    parser = argparse.ArgumentParser(description="Flask Custom CRM for Enginy")
    parser.add_argument("--port", type=int)
    parser.add_argument("--key")
    parser.add_argument("--key-header", default="X-API-Key")
    parser.add_argument("--bug", action="append", default=[])
    parser.add_argument("--list-bugs", action="store_true")
    args = parser.parse_args(argv)

    if args.list_bugs:
        print(json.dumps(BUGS, indent=2))
        return 0
    for bug in args.bug:
        if bug not in BUG_IDS:
            print(f"unknown bug id: {bug}", file=sys.stderr)
            return 2
    if args.port is None or not args.key:
        parser.error("--port and --key are required")

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_app(args.key, args.key_header, args.bug)
    server = make_server("127.0.0.1", args.port, app, threaded=True)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
