"""A "stranger's" Custom CRM server: stdlib only, one file, written from the public docs alone.

It plays an outside integrator whose choices differ from the Falcon mock wherever the docs leave
room: 201 for every create, integer-looking string ids for contacts/companies and UUIDs for
tasks/activities, millisecond timestamps with ``+00:00`` offsets, ``{"error": ...}`` bodies without
``message``, an HTML 404 page for unknown routes, no ``/users`` endpoint, sync matching by
email/LinkedIn/domain (never by ``externalId``), ``{crmId, success}`` PUT results, batch reads in
storage order, extra ``createdAt``/``updatedAt`` fields and no type checks on optional fields.

Run it with ``python tests/conformance/stranger_crm.py [PORT] [KEY]``.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY_HEADER = "X-API-Key"
ACTIVITY_TYPES = {"EMAIL", "LINKEDIN", "LINKEDIN_INMAIL", "LINKEDIN_CONNECTION"}
MAX_CONTACTS = 100

HTML_404 = (
    "<!DOCTYPE html><html><head><title>404 Not Found</title></head>"
    "<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>"
)


class HttpError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def now() -> str:
    # e.g. 2024-01-15T11:30:00.123+00:00
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def norm_email(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def norm_linkedin(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().rstrip("/").lower()


def norm_domain(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    d = value.strip().lower()
    d = re.sub(r"^https?://", "", d)
    d = re.sub(r"^www\.", "", d)
    d = d.split("/", 1)[0].strip()
    return d or None


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.seq = 0
        self.contacts: dict[str, dict[str, Any]] = {}
        self.companies: dict[str, dict[str, Any]] = {}
        self.associations: set[tuple[str, str]] = set()
        self.activities: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}

    def next_id(self) -> str:
        self.seq += 1
        return str(self.seq)


def require_list(body: dict[str, Any], field: str) -> list[Any]:
    if field not in body:
        raise HttpError(400, f"'{field}' is required")
    value = body[field]
    if not isinstance(value, list):
        raise HttpError(422, f"'{field}' must be an array")
    return value


def require_items(body: dict[str, Any], field: str, key: str) -> list[dict[str, Any]]:
    items = require_list(body, field)
    for item in items:
        if not isinstance(item, dict):
            raise HttpError(422, f"every entry of '{field}' must be an object")
        if key not in item or item[key] is None or item[key] == "":
            raise HttpError(400, f"'{key}' is required on every entry of '{field}'")
    return items


class App:
    def __init__(self, key: str) -> None:
        self.key = key
        self.store = Store()

    # -- routing ------------------------------------------------------------------------------
    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        s = self.store
        routes: dict[str, dict[str, Any]] = {
            "/health": {"GET": lambda: (200, {"status": "ok", "time": now()})},
            "/contacts": {"POST": lambda: self.create("contacts"), "PUT": lambda: self.update("contacts")},
            "/contacts/sync": {"POST": lambda: self.sync_contacts()},
            "/companies": {"POST": lambda: self.create("companies"), "PUT": lambda: self.update("companies")},
            "/companies/sync": {"POST": lambda: self.sync_companies()},
            "/associations": {"POST": lambda: self.associate()},
            "/activities": {"POST": lambda: self.create_activity()},
            "/tasks": {"POST": lambda: self.create_task()},
            "/tasks/batch": {"POST": lambda: self.batch_get(), "PATCH": lambda: self.batch_complete()},
        }
        key = "/" + "/".join(parts)
        handlers = routes.get(key)
        if handlers is None and len(parts) == 2 and parts[0] == "tasks":
            task_id = parts[1]
            handlers = {
                "GET": lambda: self.get_task(task_id),
                "PATCH": lambda: self.patch_task(task_id),
            }
        if handlers is None:
            return 404, None  # HTML page
        if method not in handlers:
            raise HttpError(405, "Method not allowed")
        with s.lock:
            # Under the lock: a body kept on the app is shared by every request thread.
            self.body = body
            result: tuple[int, Any] = handlers[method]()
            return result

    def obj_body(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise HttpError(400, "Request body must be a JSON object")
        return self.body

    # -- contacts / companies --------------------------------------------------------------------
    def create(self, kind: str) -> tuple[int, Any]:
        items = require_items(self.obj_body(), kind, "externalId")
        if kind == "contacts" and len(items) > MAX_CONTACTS:
            raise HttpError(400, f"At most {MAX_CONTACTS} contacts per request")
        table = getattr(self.store, kind)
        results = []
        for item in items:
            crm_id = self.store.next_id()
            stamp = now()
            table[crm_id] = {**item, "id": crm_id, "createdAt": stamp, "updatedAt": stamp}
            results.append({"externalId": item["externalId"], "crmId": crm_id, "createdAt": stamp})
        return 201, {"results": results}

    def update(self, kind: str) -> tuple[int, Any]:
        items = require_items(self.obj_body(), kind, "crmId")
        table = getattr(self.store, kind)
        results = []
        for item in items:
            crm_id = str(item["crmId"])
            record = table.get(crm_id)
            if record is None:
                results.append({"crmId": crm_id, "success": False})
                continue
            record.update({k: v for k, v in item.items() if k != "crmId"})
            record["updatedAt"] = now()
            results.append({"crmId": crm_id, "success": True})
        return 200, {"results": results}

    def sync_contacts(self) -> tuple[int, Any]:
        items = require_items(self.obj_body(), "contacts", "externalId")
        results = []
        for item in items:
            email, li = norm_email(item.get("email")), norm_linkedin(item.get("linkedinUrl"))
            for crm_id, rec in self.store.contacts.items():
                if (email and norm_email(rec.get("email")) == email) or (
                    li and norm_linkedin(rec.get("linkedinUrl")) == li
                ):
                    results.append(
                        {
                            "externalId": item["externalId"],
                            "crmId": crm_id,
                            "properties": {"email": rec.get("email"), "updatedAt": rec["updatedAt"]},
                        }
                    )
                    break
        return 200, {"results": results}

    def sync_companies(self) -> tuple[int, Any]:
        items = require_items(self.obj_body(), "companies", "externalId")
        results = []
        for item in items:
            dom, li = norm_domain(item.get("domain")), norm_linkedin(item.get("linkedinUrl"))
            for crm_id, rec in self.store.companies.items():
                if (dom and norm_domain(rec.get("domain")) == dom) or (
                    li and norm_linkedin(rec.get("linkedinUrl")) == li
                ):
                    results.append({"externalId": item["externalId"], "crmId": crm_id})
                    break
        return 200, {"results": results}

    # -- associations --------------------------------------------------------------------------
    def associate(self) -> tuple[int, Any]:
        pairs = require_list(self.obj_body(), "associations")
        created, errors = 0, []
        for pair in pairs:
            if not isinstance(pair, dict):
                raise HttpError(422, "every association must be an object")
            contact, company = pair.get("contactCRMId"), pair.get("companyCRMId")
            if contact is None or company is None:
                raise HttpError(400, "contactCRMId and companyCRMId are required")
            if str(contact) not in self.store.contacts:
                errors.append(
                    {"contactCRMId": contact, "companyCRMId": company, "error": "Contact not found"}
                )
            elif str(company) not in self.store.companies:
                errors.append(
                    {"contactCRMId": contact, "companyCRMId": company, "error": "Company not found"}
                )
            elif (str(contact), str(company)) not in self.store.associations:
                self.store.associations.add((str(contact), str(company)))
                created += 1
        out: dict[str, Any] = {"success": True, "created": created}
        if errors:
            out["errors"] = errors
        return 200, out

    # -- activities ----------------------------------------------------------------------------
    def create_activity(self) -> tuple[int, Any]:
        body = self.obj_body()
        if "type" not in body or body["type"] is None:
            raise HttpError(400, "'type' is required")
        if not isinstance(body["type"], str) or body["type"] not in ACTIVITY_TYPES:
            raise HttpError(422, "'type' must be one of " + ", ".join(sorted(ACTIVITY_TYPES)))
        act_id = str(uuid.uuid4())
        record = {**body, "id": act_id, "createdAt": now()}
        self.store.activities[act_id] = record
        return 201, record

    # -- tasks ---------------------------------------------------------------------------------
    @staticmethod
    def task_view(task: dict[str, Any], with_null: bool = False) -> dict[str, Any]:
        view = dict(task)
        if not view.get("completed") and not with_null:
            view.pop("completedAt", None)
        return view

    def create_task(self) -> tuple[int, Any]:
        body = self.obj_body()
        if "subject" not in body or body["subject"] is None:
            raise HttpError(400, "'subject' is required")
        if not isinstance(body["subject"], str):
            raise HttpError(422, "'subject' must be a string")
        task_id = str(uuid.uuid4())
        stamp = now()
        task = {**body, "id": task_id, "completed": False, "completedAt": None}
        task.update(createdAt=stamp, updatedAt=stamp)
        self.store.tasks[task_id] = task
        return 201, self.task_view(task)

    def find_task(self, task_id: str) -> dict[str, Any]:
        task = self.store.tasks.get(task_id)
        if task is None:
            raise HttpError(404, "Task not found")
        return task

    def get_task(self, task_id: str) -> tuple[int, Any]:
        return 200, self.task_view(self.find_task(task_id), with_null=True)

    @staticmethod
    def set_completed(task: dict[str, Any], completed: Any) -> None:
        if not isinstance(completed, bool):
            raise HttpError(422, "'completed' must be a boolean")
        if completed and not task.get("completed"):
            task["completedAt"] = now()
        elif not completed:
            task["completedAt"] = None
        task["completed"] = completed
        task["updatedAt"] = now()

    def patch_task(self, task_id: str) -> tuple[int, Any]:
        body = self.obj_body()
        task = self.find_task(task_id)
        for field in ("subject", "description", "type", "ownerId", "dueDate", "contactId", "companyId"):
            if field in body:
                task[field] = body[field]
        if "completed" in body:
            self.set_completed(task, body["completed"])
        return 200, self.task_view(task)

    def batch_get(self) -> tuple[int, Any]:
        wanted = {str(i) for i in require_list(self.obj_body(), "ids")}
        return 200, [self.task_view(t) for tid, t in self.store.tasks.items() if tid in wanted]

    def batch_complete(self) -> tuple[int, Any]:
        body = self.obj_body()
        wanted = {str(i) for i in require_list(body, "ids")}
        if "completed" not in body:
            raise HttpError(400, "'completed' is required")
        out = []
        for tid, task in self.store.tasks.items():
            if tid in wanted:
                self.set_completed(task, body["completed"])
                out.append(self.task_view(task))
        return 200, out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = "StrangerCRM/0.1"
    app: App  # set per server class

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(self, status: int, payload: Any, html: bool = False) -> None:
        if html:
            data = HTML_404.encode()
            ctype = "text/html; charset=utf-8"
        else:
            data = json.dumps(payload).encode()
            ctype = "application/json; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        path = self.path.split("?", 1)[0]
        # self.headers is an email.message.Message: lookup is case-insensitive.
        if self.headers.get(KEY_HEADER) != self.app.key:
            self.send(401, {"error": "Unauthorized"})
            return
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                self.send(400, {"error": "Malformed JSON body"})
                return
        try:
            status, payload = self.app.route(self.command, path, body)
        except HttpError as exc:
            self.send(exc.status, {"error": exc.error})
            return
        except Exception:  # pragma: no cover - last resort
            self.send(500, {"error": "Internal server error"})
            return
        if status == 404 and payload is None:
            self.send(404, None, html=True)
        else:
            self.send(status, payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def serve(port: int, key: str) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start the server on 127.0.0.1:port (0 = any free port) in a daemon thread."""
    handler = type("BoundHandler", (Handler,), {"app": App(key)})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="stranger-crm", daemon=True)
    thread.start()
    return server, thread


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    key = sys.argv[2] if len(sys.argv) > 2 else "k"
    srv, th = serve(port, key)
    print(f"stranger CRM on http://127.0.0.1:{srv.server_address[1]} (key header {KEY_HEADER})", flush=True)
    try:
        th.join()
    except KeyboardInterrupt:
        srv.shutdown()
