"""A small in-memory CRM implementing Enginy's "Custom CRM API" with FastAPI + pydantic v2.

Run:  python tests/zoo/fastapi_crm.py --port 8000 --key secret [--key-header X-API-Key] [--bug ID ...]
      python tests/zoo/fastapi_crm.py --list-bugs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Security, status
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field

BUGS: list[dict[str, str]] = [
    {
        "id": "health-without-auth",
        "summary": "The key check lives on the APIRouter that carries the business routes; /health was "
        "declared on the app itself as a plain liveness probe, so it answers 200 with any key or none. "
        "The developer's curl of /health (with the key) got 200 as expected.",
        "breaks": "The server must check the key on every call and answer 401 Unauthorized if it is "
        "missing or wrong.",
        "rule": "AUTH-MISSING-KEY",
    },
    {
        "id": "wrong-key-403",
        "summary": "Copied the old FastAPI security tutorial: a key that is present but wrong raises "
        "HTTPException(403, 'Could not validate credentials'). Curl with a wrong key was refused, which "
        "looked right.",
        "breaks": "The server must check the key on every call and answer 401 Unauthorized if it is "
        "missing or wrong. 403 is never mentioned.",
        "rule": "AUTH-401-NOT-403",
    },
    {
        "id": "batch-route-order",
        "summary": "The single-task routes (GET/PATCH /tasks/{task_id}) are registered before the batch "
        "routes, so PATCH /tasks/batch is taken by PATCH /tasks/{task_id} with task_id='batch' and answers "
        "404 'Task not found'. POST /tasks/batch still works (no POST /tasks/{task_id}), which is the batch "
        "call the developer curled.",
        "breaks": "PATCH /tasks/batch is not swallowed by PATCH /tasks/{id} (route-order check; GET/PATCH "
        '/tasks/batch must not be treated as id "batch").',
        "rule": "TASK-BATCH-ROUTE",
    },
    {
        "id": "batch-complete-not-stored",
        "summary": "PATCH /tasks/batch builds the completed task with model_copy(update=...) and returns it, "
        "but never writes the copy back into the store (the single PATCH does). The batch response shows "
        "completed: true, so the curl test passed; a later GET still shows the task open.",
        "breaks": "Complete Tasks Batch: Marks multiple tasks as completed in a single request.",
        "rule": "TASK-COMPLETION-PERSISTS",
    },
    {
        "id": "contacts-limit-off-by-one",
        "summary": "Guard against oversized exports written as len(contacts) >= 100, so a batch of exactly "
        "100 contacts is refused with 400. Curl tests used one or two contacts.",
        "breaks": "contacts | array | yes | batch; up to 100 contacts per request",
        "rule": "CONTACT-CREATE-BATCH-100",
    },
    {
        "id": "sync-none-email-match",
        "summary": "Contact sync compares normalised emails without checking that the incoming contact has "
        "one: (None or '').lower() == '' matches the first stored contact that has no email either, so a "
        "never-seen contact without email comes back 'matched'. Curl tests always sent an email.",
        "breaks": "Response (200): only matched contacts; unmatched ones are simply left out (no error).",
        "rule": "CONTACT-SYNC-OMITS-UNMATCHED",
    },
    {
        "id": "domain-path-kept",
        "summary": "Domain normaliser written from the phrase 'remove www., protocol, trailing slashes' with "
        "str.replace and rstrip('/'): https://www.acme.com/ matches acme.com (the curl test), but "
        "https://www.acme.com/about keeps its path and matches nothing.",
        "breaks": "Domain normalisation rule given by the docs: lower-case -> strip a leading http:// / "
        "https:// and a leading www. -> drop everything from the first / -> trim. Examples: "
        "https://www.acme.com/about -> acme.com",
        "rule": "COMPANY-SYNC-MATCHES-DOMAIN",
    },
]
BUG_IDS = {b["id"] for b in BUGS}

MAX_CONTACTS_PER_REQUEST = 100


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def new_id() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------------------------------------------
# Normalisation helpers used for sync matching
# ---------------------------------------------------------------------------------------------------


def norm_email(email: str | None) -> str:
    return (email or "").strip().lower()


def norm_linkedin(url: str | None) -> str:
    return (url or "").strip().rstrip("/")


def norm_domain(domain: str | None) -> str:
    d = (domain or "").strip().lower()
    for prefix in ("https://", "http://"):
        if d.startswith(prefix):
            d = d[len(prefix) :]
            break
    if d.startswith("www."):
        d = d[len("www.") :]
    return d.split("/", 1)[0].strip()


def norm_domain_quick(domain: str | None) -> str:
    # bug "domain-path-kept": remove www., protocol, trailing slashes
    d = (domain or "").lower()
    return d.replace("https://", "").replace("http://", "").replace("www.", "").rstrip("/").strip()


# ---------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # Enginy forwards every lead field it has

    externalId: str
    email: str | None = None
    firstName: str | None = None
    lastName: str | None = None
    phone: str | None = None
    company: str | None = None
    title: str | None = None
    linkedinUrl: str | None = None
    ownerId: str | None = None


class ContactsCreate(BaseModel):
    contacts: list[ContactIn]


class ContactUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")

    crmId: str
    email: str | None = None
    firstName: str | None = None
    lastName: str | None = None
    phone: str | None = None
    company: str | None = None
    title: str | None = None
    linkedinUrl: str | None = None
    ownerId: str | None = None


class ContactsUpdate(BaseModel):
    contacts: list[ContactUpdate]


class CompanyIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    externalId: str
    name: str | None = None
    domain: str | None = None
    industry: str | None = None
    numberOfEmployees: int | None = None
    linkedinUrl: str | None = None
    ownerId: str | None = None


class CompaniesCreate(BaseModel):
    companies: list[CompanyIn]


class CompanyUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")

    crmId: str
    name: str | None = None
    domain: str | None = None
    industry: str | None = None
    numberOfEmployees: int | None = None
    linkedinUrl: str | None = None
    ownerId: str | None = None


class CompaniesUpdate(BaseModel):
    companies: list[CompanyUpdate]


class CreateResult(BaseModel):
    externalId: str
    crmId: str


class CreateResponse(BaseModel):
    results: list[CreateResult]


class SyncResult(BaseModel):
    externalId: str
    crmId: str
    properties: dict[str, Any] | None = None


class SyncResponse(BaseModel):
    results: list[SyncResult]


class UpdateResult(BaseModel):
    crmId: str
    success: bool
    properties: dict[str, Any] | None = None


class UpdateResponse(BaseModel):
    results: list[UpdateResult]


class Association(BaseModel):
    contactCRMId: str
    companyCRMId: str


class AssociationsCreate(BaseModel):
    associations: list[Association]


class AssociationError(BaseModel):
    contactCRMId: str
    companyCRMId: str
    error: str


class AssociationsResponse(BaseModel):
    success: bool
    created: int
    errors: list[AssociationError] = Field(default_factory=list)


class ActivityType(StrEnum):
    EMAIL = "EMAIL"
    LINKEDIN = "LINKEDIN"
    LINKEDIN_CONNECTION = "LINKEDIN_CONNECTION"
    LINKEDIN_INMAIL = "LINKEDIN_INMAIL"


class Direction(StrEnum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class ActivityIn(BaseModel):
    type: ActivityType
    subject: str | None = None
    body: str | None = None
    direction: Direction | None = None
    ownerId: str | None = None
    occurredAt: datetime | None = None
    contactId: str | None = None
    companyId: str | None = None
    metadata: dict[str, Any] | None = None


class Activity(ActivityIn):
    id: str


class TaskIn(BaseModel):
    subject: str
    description: str | None = None
    type: str | None = None
    ownerId: str | None = None
    dueDate: datetime | None = None
    contactId: str | None = None
    companyId: str | None = None


class Task(TaskIn):
    id: str
    completed: bool = False
    completedAt: str | None = None


class TaskUpdate(BaseModel):
    subject: str | None = None
    description: str | None = None
    type: str | None = None
    ownerId: str | None = None
    dueDate: datetime | None = None
    contactId: str | None = None
    companyId: str | None = None
    completed: bool | None = None


class TaskIds(BaseModel):
    ids: list[str]


class TasksComplete(BaseModel):
    ids: list[str]
    completed: bool


class User(BaseModel):
    id: str
    name: str
    email: str | None = None


USERS = [
    User(id="user-1", name="Alex Morgan", email="alex.morgan@example.com"),
    User(id="user-2", name="Sam Rivera", email="sam.rivera@example.com"),
]

CONTACT_PROPERTIES = ("email", "firstName", "lastName", "phone", "company", "title", "linkedinUrl", "ownerId")
COMPANY_PROPERTIES = ("name", "domain", "industry", "numberOfEmployees", "linkedinUrl", "ownerId")


def pick(record: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: record[k] for k in keys if record.get(k) is not None}


def apply_completion(task: Task, completed: bool | None) -> dict[str, Any]:
    if completed is None:
        return {}
    if completed:
        return {"completed": True, "completedAt": task.completedAt or now_iso()}
    return {"completed": False, "completedAt": None}


# ---------------------------------------------------------------------------------------------------
# Application
# ---------------------------------------------------------------------------------------------------


def create_app(api_key: str, key_header: str = "X-API-Key", bugs: frozenset[str] = frozenset()) -> FastAPI:
    app = FastAPI(title="Acme CRM - Enginy Custom CRM API")

    contacts: dict[str, dict[str, Any]] = {}
    companies: dict[str, dict[str, Any]] = {}
    associations: set[tuple[str, str]] = set()
    activities: dict[str, Activity] = {}
    tasks: dict[str, Task] = {}

    api_key_header = APIKeyHeader(name=key_header)  # missing header -> 401 "Not authenticated"

    async def require_api_key(key: str = Security(api_key_header)) -> str:
        if not secrets.compare_digest(key.encode(), api_key.encode()):
            if "wrong-key-403" in bugs:
                raise HTTPException(
                    status_code=status.HTTP_403_FORBIDDEN, detail="Could not validate credentials"
                )
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="Invalid API key",
                headers={"WWW-Authenticate": "APIKey"},
            )
        return key

    api = APIRouter(dependencies=[Depends(require_api_key)])

    # --- health -----------------------------------------------------------------------------------
    health_router = app if "health-without-auth" in bugs else api

    @health_router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    # --- users ------------------------------------------------------------------------------------
    @api.get("/users", response_model=list[User])
    async def list_users() -> list[User]:
        return USERS

    # --- contacts ---------------------------------------------------------------------------------
    def match_contact(item: BaseModel) -> str | None:
        email = norm_email(getattr(item, "email", None))
        if email or "sync-none-email-match" in bugs:
            for crm_id, c in contacts.items():
                if norm_email(c.get("email")) == email:
                    return crm_id
        linkedin = norm_linkedin(getattr(item, "linkedinUrl", None))
        if linkedin:
            for crm_id, c in contacts.items():
                if norm_linkedin(c.get("linkedinUrl")) == linkedin:
                    return crm_id
        return None

    @api.post("/contacts", response_model=CreateResponse)
    async def create_contacts(payload: ContactsCreate) -> CreateResponse:
        if "contacts-limit-off-by-one" in bugs and len(payload.contacts) >= MAX_CONTACTS_PER_REQUEST:
            raise HTTPException(
                status_code=400, detail=f"At most {MAX_CONTACTS_PER_REQUEST} contacts per request"
            )
        results = []
        for item in payload.contacts:
            crm_id = new_id()
            contacts[crm_id] = {**item.model_dump(), "createdAt": now_iso()}
            results.append(CreateResult(externalId=item.externalId, crmId=crm_id))
        return CreateResponse(results=results)

    @api.post("/contacts/sync", response_model=SyncResponse)
    async def sync_contacts(payload: ContactsCreate) -> SyncResponse:
        results = []
        for item in payload.contacts:
            crm_id = match_contact(item)
            if crm_id is not None:
                results.append(
                    SyncResult(
                        externalId=item.externalId,
                        crmId=crm_id,
                        properties=pick(contacts[crm_id], CONTACT_PROPERTIES),
                    )
                )
        return SyncResponse(results=results)

    @api.put("/contacts", response_model=UpdateResponse)
    async def update_contacts(payload: ContactsUpdate) -> UpdateResponse:
        results = []
        for item in payload.contacts:
            record = contacts.get(item.crmId)
            if record is None:
                results.append(UpdateResult(crmId=item.crmId, success=False))
                continue
            record.update(item.model_dump(exclude_unset=True, exclude={"crmId"}))
            record["updatedAt"] = now_iso()
            results.append(
                UpdateResult(crmId=item.crmId, success=True, properties=pick(record, CONTACT_PROPERTIES))
            )
        return UpdateResponse(results=results)

    # --- companies --------------------------------------------------------------------------------
    domain_key = norm_domain_quick if "domain-path-kept" in bugs else norm_domain

    def match_company(item: CompanyIn) -> str | None:
        domain = domain_key(item.domain)
        if domain:
            for crm_id, c in companies.items():
                if domain_key(c.get("domain")) == domain:
                    return crm_id
        linkedin = norm_linkedin(item.linkedinUrl)
        if linkedin:
            for crm_id, c in companies.items():
                if norm_linkedin(c.get("linkedinUrl")) == linkedin:
                    return crm_id
        name = (item.name or "").strip().lower()
        if name:
            for crm_id, c in companies.items():
                if (c.get("name") or "").strip().lower() == name:
                    return crm_id
        return None

    @api.post("/companies", response_model=CreateResponse)
    async def create_companies(payload: CompaniesCreate) -> CreateResponse:
        results = []
        for item in payload.companies:
            crm_id = new_id()
            companies[crm_id] = {**item.model_dump(), "createdAt": now_iso()}
            results.append(CreateResult(externalId=item.externalId, crmId=crm_id))
        return CreateResponse(results=results)

    @api.post("/companies/sync", response_model=SyncResponse)
    async def sync_companies(payload: CompaniesCreate) -> SyncResponse:
        results = []
        for item in payload.companies:
            crm_id = match_company(item)
            if crm_id is not None:
                results.append(
                    SyncResult(
                        externalId=item.externalId,
                        crmId=crm_id,
                        properties=pick(companies[crm_id], COMPANY_PROPERTIES),
                    )
                )
        return SyncResponse(results=results)

    @api.put("/companies", response_model=UpdateResponse)
    async def update_companies(payload: CompaniesUpdate) -> UpdateResponse:
        results = []
        for item in payload.companies:
            record = companies.get(item.crmId)
            if record is None:
                results.append(UpdateResult(crmId=item.crmId, success=False))
                continue
            record.update(item.model_dump(exclude_unset=True, exclude={"crmId"}))
            record["updatedAt"] = now_iso()
            results.append(
                UpdateResult(crmId=item.crmId, success=True, properties=pick(record, COMPANY_PROPERTIES))
            )
        return UpdateResponse(results=results)

    # --- associations -----------------------------------------------------------------------------
    @api.post("/associations", response_model=AssociationsResponse)
    async def create_associations(payload: AssociationsCreate) -> AssociationsResponse:
        created = 0
        errors = []
        for a in payload.associations:
            if a.contactCRMId not in contacts:
                errors.append(AssociationError(**a.model_dump(), error="Contact not found"))
            elif a.companyCRMId not in companies:
                errors.append(AssociationError(**a.model_dump(), error="Company not found"))
            elif (a.contactCRMId, a.companyCRMId) not in associations:
                associations.add((a.contactCRMId, a.companyCRMId))
                created += 1
        success = not payload.associations or len(errors) < len(payload.associations)
        return AssociationsResponse(success=success, created=created, errors=errors)

    # --- activities -------------------------------------------------------------------------------
    @api.post("/activities", response_model=Activity)
    async def create_activity(payload: ActivityIn) -> Activity:
        activity = Activity(id=new_id(), **payload.model_dump())
        activities[activity.id] = activity
        return activity

    # --- tasks ------------------------------------------------------------------------------------
    @api.post("/tasks", response_model=Task)
    async def create_task(payload: TaskIn) -> Task:
        task = Task(id=new_id(), **payload.model_dump())
        tasks[task.id] = task
        return task

    def get_task_or_404(task_id: str) -> Task:
        task = tasks.get(task_id)
        if task is None:
            raise HTTPException(status_code=404, detail="Task not found")
        return task

    async def get_task(task_id: str) -> Task:
        return get_task_or_404(task_id)

    async def update_task(task_id: str, payload: TaskUpdate) -> Task:
        task = get_task_or_404(task_id)
        changes = payload.model_dump(exclude_unset=True, exclude={"completed"})
        if changes.get("subject") is None:
            changes.pop("subject", None)
        changes.update(apply_completion(task, payload.completed))
        updated = task.model_copy(update=changes)
        tasks[task_id] = updated
        return updated

    async def get_tasks_batch(payload: TaskIds) -> list[Task]:
        return [tasks[i] for i in payload.ids if i in tasks]

    async def complete_tasks_batch(payload: TasksComplete) -> list[Task]:
        out = []
        for task_id in payload.ids:
            task = tasks.get(task_id)
            if task is None:
                continue
            updated = task.model_copy(update=apply_completion(task, payload.completed))
            if "batch-complete-not-stored" not in bugs:
                tasks[task_id] = updated
            out.append(updated)
        return out

    def add_batch_routes() -> None:
        api.add_api_route("/tasks/batch", get_tasks_batch, methods=["POST"], response_model=list[Task])
        api.add_api_route("/tasks/batch", complete_tasks_batch, methods=["PATCH"], response_model=list[Task])

    def add_single_task_routes() -> None:
        api.add_api_route("/tasks/{task_id}", get_task, methods=["GET"], response_model=Task)
        api.add_api_route("/tasks/{task_id}", update_task, methods=["PATCH"], response_model=Task)

    if "batch-route-order" in bugs:
        add_single_task_routes()
        add_batch_routes()
    else:
        add_batch_routes()  # before /tasks/{task_id}, or "batch" would be taken for a task id
        add_single_task_routes()

    app.include_router(api)
    return app


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


async def serve(app: FastAPI, port: int) -> None:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)

    async def announce_when_listening() -> None:
        while not server.started:  # set once the sockets are bound and accepting
            await asyncio.sleep(0.02)
        print(f"listening on http://127.0.0.1:{port}", flush=True)

    announcer = asyncio.create_task(announce_when_listening())
    try:
        await server.serve()
    finally:
        announcer.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="In-memory CRM implementing Enginy's Custom CRM API (FastAPI)"
    )
    parser.add_argument("--port", type=int)
    parser.add_argument("--key")
    parser.add_argument("--key-header", default="X-API-Key")
    parser.add_argument("--bug", action="append", default=[], metavar="ID")
    parser.add_argument("--list-bugs", action="store_true")
    args = parser.parse_args(argv)

    if args.list_bugs:
        print(json.dumps(BUGS, indent=2))
        return
    for bug in args.bug:
        if bug not in BUG_IDS:
            print(f"unknown bug id: {bug}", file=sys.stderr)
            sys.exit(2)
    if args.port is None or not args.key:
        parser.error("--port and --key are required")

    app = create_app(args.key, args.key_header, frozenset(args.bug))
    asyncio.run(serve(app, args.port))


if __name__ == "__main__":
    main()
