#!/usr/bin/env python3
"""Enginy "Custom CRM API" server on the Python standard library only.

    python tests/zoo/per_item_crm.py --port N --key KEY [--key-header NAME] [--bug ID ...]
    python tests/zoo/per_item_crm.py --list-bugs

House style: a batch is never failed as a whole because of one bad item.  An
item that cannot be processed (no externalId, no crmId, a pair missing an id)
is reported next to the others in a 200; only a request that is malformed as a
whole (not JSON, the top-level list missing, a required top-level field
missing) is answered 400 {"error": ..., "message": ...}.

State lives in memory, guarded by one lock (the server is threaded).
"""

import argparse
import functools
import hmac
import json
import re
import signal
import sys
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

MAX_BODY = 50 * 1024 * 1024

BUGS = [
    {
        "id": "headers-dict-case",
        "summary": "Turned self.headers into a plain dict (dict(self.headers)) to look the key up, "
                   "which makes the lookup case-sensitive. curl sends the header exactly as typed "
                   "(X-API-Key), so the developer's test passed.",
        "breaks": "Header-name matching should be case-insensitive on the server (HTTP semantics).",
        "rule": "AUTH-HEADER-CASE-INSENSITIVE",
    },
    {
        "id": "task-defaults-aliased",
        "summary": "New tasks start from the module-level TASK_DEFAULTS dict without .copy(), so every "
                   "stored task is the same dict and the last create overwrites all earlier tasks. "
                   "Creating, reading and completing one task by curl looked fine.",
        "breaks": "Retrieves a single task by ID.",
        "rule": "TASK-GET",
    },
    {
        "id": "task-get-lru-cache",
        "summary": "Wrapped the GET /tasks/{taskId} lookup in functools.lru_cache because Enginy polls "
                   "tasks; the cache is never invalidated, so a task read before it was completed stays "
                   "open on later reads. The PATCH answer itself shows completed true, which is all "
                   "the curl test looked at.",
        "breaks": "Updates a task, typically to mark it as completed.",
        "rule": "TASK-COMPLETION-PERSISTS",
    },
    {
        "id": "activity-id-from-clock",
        "summary": "Activity ids are built from the clock ('act-' + YYYYmmddHHMMSS) to be readable and "
                   "sortable; two activities logged within the same second (or by concurrent requests) "
                   "get the same id and the later one overwrites the earlier. One curl per activity never "
                   "collided.",
        "breaks": "id | string | Yes (response) | Unique identifier for the activity",
        "rule": "ACTIVITY-RETURNS-ID",
    },
    {
        "id": "sync-empty-email-matches",
        "summary": "The sync matcher compares normalised values with ==, and the normalisers turn a "
                   "missing email (or LinkedIn URL, domain) into ''. A sync item without one therefore "
                   "'matches' the first stored record that lacks it too. The curl test synced a contact "
                   "that had both an email and a LinkedIn URL.",
        "breaks": "Response (200): only matched contacts; unmatched ones are simply left out (no error).",
        "rule": "CONTACT-SYNC-OMITS-UNMATCHED",
    },
    {
        "id": "domain-www-before-protocol",
        "summary": "The copied domain normaliser strips 'www.' before it strips the protocol, so "
                   "'https://www.acme.com/about' becomes 'www.acme.com' and misses 'acme.com'. The "
                   "curl test used 'acme.com' and 'WWW.ACME.COM', which both work.",
        "breaks": "Examples: https://www.acme.com/about \u2192 acme.com; WWW.ACME.COM \u2192 acme.com; "
                  "acme.com \u2192 acme.com.",
        "rule": "COMPANY-SYNC-MATCHES-DOMAIN",
    },
    {
        "id": "update-item-keyerror-500",
        "summary": "PUT /contacts and PUT /companies read item['crmId'] instead of item.get('crmId'); an "
                   "item without crmId raises KeyError and the whole batch answers 500. Every item in "
                   "the curl test had a crmId.",
        "breaks": "400 | malformed body / parameters",
        "rule": "SERVER-NO-5XX",
    },
]
BUG_IDS = {b["id"] for b in BUGS}
ACTIVE_BUGS = set()

ACTIVITY_TYPES = {"EMAIL", "LINKEDIN", "LINKEDIN_INMAIL", "LINKEDIN_CONNECTION"}
DIRECTIONS = {"INBOUND", "OUTBOUND"}
TASK_FIELDS = ("subject", "description", "type", "ownerId", "dueDate", "contactId", "companyId")
TASK_DEFAULTS = {f: None for f in TASK_FIELDS}
TASK_DEFAULTS.update(completed=False, completedAt=None)
CONTACT_SYNC_PROPERTIES = ("email", "phone", "mobilePhone", "leadScore", "lifecycleStage",
                           "lastActivityDate", "ownerId")
COMPANY_SYNC_PROPERTIES = ("name", "domain", "industry", "accountTier", "totalDeals",
                           "lifetimeValue", "ownerId")

LOCK = threading.RLock()
CONTACTS = {}       # crmId -> stored record
COMPANIES = {}      # crmId -> stored record
ASSOCIATIONS = []   # [(contactCRMId, companyCRMId)]
ACTIVITIES = {}     # id -> activity
TASKS = {}          # id -> task
USERS = [
    {"id": str(uuid.uuid4()), "name": "Sales Team", "email": "sales@example.com"},
    {"id": str(uuid.uuid4()), "name": "Sales Bot"},
]


class HTTPError(Exception):
    def __init__(self, status, error, message):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def bad_request(message):
    return HTTPError(400, "Bad Request", message)


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_id():
    return str(uuid.uuid4())


# ---------------------------------------------------------------- normalisers

def normalize_email(value):
    return value.strip().lower() if isinstance(value, str) else ""


def normalize_linkedin(value):
    return value.strip().rstrip("/").lower() if isinstance(value, str) else ""


def normalize_domain(value):
    if not isinstance(value, str):
        return ""
    d = value.strip().lower()
    if "domain-www-before-protocol" in ACTIVE_BUGS:
        if d.startswith("www."):
            d = d[4:]
        d = re.sub(r"^https?://", "", d)
    else:
        d = re.sub(r"^https?://", "", d)
        if d.startswith("www."):
            d = d[4:]
    return re.split(r"[/?#]", d, maxsplit=1)[0].strip()


def normalize_name(value):
    return " ".join(value.split()).lower() if isinstance(value, str) else ""


def find_match(store, normalizer, field, value):
    """crmId of the first stored record whose normalised `field` equals `value`'s."""
    wanted = normalizer(value)
    if not wanted and "sync-empty-email-matches" not in ACTIVE_BUGS:
        return None
    for crm_id, record in store.items():
        if normalizer(record.get(field)) == wanted:
            return crm_id
    return None


# ---------------------------------------------------------------- body helpers

def require_list(body, key):
    value = body.get(key)
    if value is None:
        raise bad_request(f"'{key}' is required")
    if not isinstance(value, list):
        raise bad_request(f"'{key}' must be an array")
    return value


def optional_string(body, key):
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"'{key}' must be a string")
    return value


def item_id(item, key):
    """The non-empty string `key` of a batch item, or None."""
    if isinstance(item, dict):
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


# ---------------------------------------------------------------- handlers

def health(_body, _params):
    return 200, {"status": "ok"}


def create_records(store, key):
    def handler(body, _params):
        items = require_list(body, key)
        results, errors = [], []
        for index, item in enumerate(items):
            external_id = item_id(item, "externalId")
            if external_id is None:
                errors.append({"index": index, "error": "externalId is required"})
                continue
            crm_id = new_id()
            stamp = now_iso()
            store[crm_id] = dict(item, crmId=crm_id, createdAt=stamp, updatedAt=stamp)
            results.append({"externalId": external_id, "crmId": crm_id})
        answer = {"results": results}
        if errors:
            answer["errors"] = errors
        return 200, answer
    return handler


def sync_properties(record, names):
    return {n: record[n] for n in names if record.get(n) is not None}


def sync_contacts(body, _params):
    results = []
    for item in require_list(body, "contacts"):
        external_id = item_id(item, "externalId")
        if external_id is None:
            continue  # cannot be answered; left out like any unmatched contact
        crm_id = (find_match(CONTACTS, normalize_email, "email", item.get("email"))
                  or find_match(CONTACTS, normalize_linkedin, "linkedinUrl", item.get("linkedinUrl")))
        if crm_id:
            results.append({"externalId": external_id, "crmId": crm_id,
                            "properties": sync_properties(CONTACTS[crm_id], CONTACT_SYNC_PROPERTIES)})
    return 200, {"results": results}


def sync_companies(body, _params):
    results = []
    for item in require_list(body, "companies"):
        external_id = item_id(item, "externalId")
        if external_id is None:
            continue
        crm_id = (find_match(COMPANIES, normalize_domain, "domain", item.get("domain"))
                  or find_match(COMPANIES, normalize_linkedin, "linkedinUrl", item.get("linkedinUrl"))
                  or find_match(COMPANIES, normalize_name, "name", item.get("name")))
        if crm_id:
            results.append({"externalId": external_id, "crmId": crm_id,
                            "properties": sync_properties(COMPANIES[crm_id], COMPANY_SYNC_PROPERTIES)})
    return 200, {"results": results}


def update_records(store, key):
    def handler(body, _params):
        items = require_list(body, key)
        results, errors = [], []
        for index, item in enumerate(items):
            if "update-item-keyerror-500" in ACTIVE_BUGS:
                crm_id = item["crmId"]
            else:
                crm_id = item_id(item, "crmId")
            if crm_id is None:
                errors.append({"index": index, "error": "crmId is required"})
                continue
            record = store.get(crm_id)
            if record is None:
                results.append({"crmId": crm_id, "success": False, "error": "Record not found"})
                continue
            record.update({k: v for k, v in item.items() if k not in ("crmId", "createdAt")})
            record["updatedAt"] = now_iso()
            results.append({"crmId": crm_id, "success": True,
                            "properties": {"ownerId": record.get("ownerId")}})
        answer = {"results": results}
        if errors:
            answer["errors"] = errors
        return 200, answer
    return handler


def create_associations(body, _params):
    pairs = require_list(body, "associations")
    created, errors = 0, []
    for pair in pairs:
        contact_id = item_id(pair, "contactCRMId")
        company_id = item_id(pair, "companyCRMId")
        raw = pair if isinstance(pair, dict) else {}
        failure = None
        if contact_id is None:
            failure = "contactCRMId is required"
        elif company_id is None:
            failure = "companyCRMId is required"
        elif contact_id not in CONTACTS:
            failure = "Contact not found"
        elif company_id not in COMPANIES:
            failure = "Company not found"
        if failure:
            errors.append({"contactCRMId": raw.get("contactCRMId"),
                           "companyCRMId": raw.get("companyCRMId"), "error": failure})
            continue
        if (contact_id, company_id) not in ASSOCIATIONS:  # upsert: an existing pair is skipped
            ASSOCIATIONS.append((contact_id, company_id))
            created += 1
    answer = {"success": not pairs or len(errors) < len(pairs), "created": created}
    if errors:
        answer["errors"] = errors
    return 200, answer


def create_activity(body, _params):
    activity_type = body.get("type")
    if activity_type is None:
        raise bad_request("'type' is required")
    if not isinstance(activity_type, str) or activity_type not in ACTIVITY_TYPES:  # isinstance: see direction
        raise bad_request("'type' must be one of " + ", ".join(sorted(ACTIVITY_TYPES)))
    direction = body.get("direction")
    # isinstance: fixed after the conformance suite's generated testing crashed this with {"direction": {}}.
    if direction is not None and (not isinstance(direction, str) or direction not in DIRECTIONS):
        raise bad_request("'direction' must be INBOUND or OUTBOUND")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad_request("'metadata' must be an object")
    fields = {k: optional_string(body, k)
              for k in ("subject", "body", "ownerId", "occurredAt", "contactId", "companyId")}
    if "activity-id-from-clock" in ACTIVE_BUGS:
        activity_id = "act-" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    else:
        activity_id = new_id()
    activity = {"id": activity_id, "type": activity_type, "direction": direction,
                **fields, "metadata": metadata, "createdAt": now_iso()}
    ACTIVITIES[activity_id] = activity
    return 201, activity


def task_view(task):
    return {"id": task["id"], **{f: task[f] for f in TASK_FIELDS},
            "completed": task["completed"], "completedAt": task["completedAt"]}


def set_completed(task, completed):
    if completed and not task["completed"]:
        task["completedAt"] = now_iso()
    elif not completed:
        task["completedAt"] = None
    task["completed"] = completed


def create_task(body, _params):
    subject = optional_string(body, "subject")
    if subject is None or not subject.strip():
        raise bad_request("'subject' is required")
    fields = {f: optional_string(body, f) for f in TASK_FIELDS}
    if "task-defaults-aliased" in ACTIVE_BUGS:
        task = TASK_DEFAULTS
    else:
        task = dict(TASK_DEFAULTS)
    task.update(fields, id=new_id())
    TASKS[task["id"]] = task
    return 201, task_view(task)


def task_not_found(task_id):
    return HTTPError(404, "Task not found", f"No task exists with ID: {task_id}")


@functools.lru_cache(maxsize=1024)
def cached_task_view(task_id):
    task = TASKS.get(task_id)
    return task_view(task) if task else None


def get_task(_body, params):
    task_id = params["taskId"]
    if "task-get-lru-cache" in ACTIVE_BUGS:
        view = cached_task_view(task_id)
    else:
        task = TASKS.get(task_id)
        view = task_view(task) if task else None
    if view is None:
        raise task_not_found(task_id)
    return 200, view


def update_task(body, params):
    task = TASKS.get(params["taskId"])
    if task is None:
        raise task_not_found(params["taskId"])
    completed = body.get("completed")
    if completed is not None and not isinstance(completed, bool):
        raise bad_request("'completed' must be a boolean")
    changes = {f: optional_string(body, f) for f in TASK_FIELDS if f in body}
    if "subject" in changes and not (changes["subject"] or "").strip():
        raise bad_request("'subject' cannot be empty")
    task.update(changes)
    if completed is not None:
        set_completed(task, completed)
    return 200, task_view(task)


def unique_string_ids(body):
    ids = require_list(body, "ids")
    return list(dict.fromkeys(i for i in ids if isinstance(i, str)))


def batch_get_tasks(body, _params):
    return 200, [task_view(TASKS[i]) for i in unique_string_ids(body) if i in TASKS]


def batch_complete_tasks(body, _params):
    ids = unique_string_ids(body)
    completed = body.get("completed")
    if completed is None:
        raise bad_request("'completed' is required")
    if not isinstance(completed, bool):
        raise bad_request("'completed' must be a boolean")
    updated = []
    for task_id in ids:
        task = TASKS.get(task_id)
        if task is not None:
            set_completed(task, completed)
            updated.append(task_view(task))
    return 200, updated


def list_users(_body, _params):
    return 200, USERS


ROUTES = [  # (path regex, {method: handler}); /tasks/batch comes before /tasks/{taskId}
    (r"/health", {"GET": health}),
    (r"/contacts", {"POST": create_records(CONTACTS, "contacts"),
                    "PUT": update_records(CONTACTS, "contacts")}),
    (r"/contacts/sync", {"POST": sync_contacts}),
    (r"/companies", {"POST": create_records(COMPANIES, "companies"),
                     "PUT": update_records(COMPANIES, "companies")}),
    (r"/companies/sync", {"POST": sync_companies}),
    (r"/associations", {"POST": create_associations}),
    (r"/activities", {"POST": create_activity}),
    (r"/tasks", {"POST": create_task}),
    (r"/tasks/batch", {"POST": batch_get_tasks, "PATCH": batch_complete_tasks}),
    (r"/tasks/(?P<taskId>[^/]+)", {"GET": get_task, "PATCH": update_task}),
    (r"/users", {"GET": list_users}),
]
ROUTES = [(re.compile(pattern + r"\Z"), methods) for pattern, methods in ROUTES]


# ---------------------------------------------------------------- HTTP plumbing

class CRMHandler(BaseHTTPRequestHandler):
    server_version = "PerItemCRM/1.0"

    def log_message(self, format, *args):  # quiet
        pass

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def send_json(self, status, payload, headers=None):
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        cfg = self.server.config
        if "headers-dict-case" in ACTIVE_BUGS:
            supplied = dict(self.headers).get(cfg.key_header)
        else:
            supplied = self.headers.get(cfg.key_header)
        return supplied is not None and hmac.compare_digest(
            supplied.encode("utf-8", "surrogateescape"), cfg.key.encode("utf-8"))

    def read_raw_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise HTTPError(413, "Payload Too Large", "Request body exceeds 50 MB")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise HTTPError(413, "Payload Too Large", "Request body exceeds 50 MB")
        return self.rfile.read(length) if length > 0 else b""

    def parse_json_body(self, raw):
        if not raw.strip():
            raise bad_request("Request body must be a JSON object")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise bad_request(f"Malformed JSON: {exc}")
        if not isinstance(body, dict):
            raise bad_request("Request body must be a JSON object")
        return body

    def dispatch(self):
        try:
            try:  # read the body first so that an early error never leaves it unread
                raw = self.read_raw_body()
            except ValueError:
                raise bad_request("Unreadable request body")
            if not self.authorized():
                raise HTTPError(401, "Unauthorized", "Missing or invalid API key")
            path = urlsplit(self.path).path
            if len(path) > 1:
                path = path.rstrip("/")
            for regex, methods in ROUTES:
                match = regex.match(path)
                if match:
                    break
            else:
                raise HTTPError(404, "Not Found", f"No route for {self.command} {path}")
            handler = methods.get(self.command)
            if handler is None:
                self.send_json(405, {"error": "Method Not Allowed",
                                     "message": f"{self.command} is not supported on {path}"},
                               {"Allow": ", ".join(methods)})
                return
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            body = self.parse_json_body(raw) if self.command in ("POST", "PUT", "PATCH") else {}
            with LOCK:
                status, payload = handler(body, params)
            self.send_json(status, payload)
        except HTTPError as exc:
            self.send_json(exc.status, {"error": exc.error, "message": exc.message})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # never leak a traceback page
            print(f"error: {self.command} {self.path}: {exc!r}", file=sys.stderr)
            self.send_json(500, {"error": "Internal Server Error", "message": str(exc)})


class CRMServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True


def main(argv=None):
    parser = argparse.ArgumentParser(description="Enginy Custom CRM API on the standard library")
    parser.add_argument("--port", type=int)
    parser.add_argument("--key")
    parser.add_argument("--key-header", default="X-API-Key")
    parser.add_argument("--bug", action="append", default=[])
    parser.add_argument("--list-bugs", action="store_true")
    args = parser.parse_args(argv)

    if args.list_bugs:
        print(json.dumps(BUGS, indent=2))
        return 0
    if args.port is None or args.key is None:
        parser.error("--port and --key are required")
    unknown = [b for b in args.bug if b not in BUG_IDS]
    if unknown:
        print(f"unknown bug id: {unknown[0]} (known: {', '.join(sorted(BUG_IDS))})", file=sys.stderr)
        return 2
    ACTIVE_BUGS.update(args.bug)

    httpd = CRMServer(("127.0.0.1", args.port), CRMHandler)
    httpd.config = args

    def stop(_signum, _frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
