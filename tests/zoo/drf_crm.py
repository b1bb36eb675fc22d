#!/usr/bin/env python3
"""Enginy "Custom CRM API" served by Django REST framework.

A single-file Django project: settings.configure() at the top, DRF serializers for
request validation, APIView classes, urlpatterns, and Django's own threaded
development WSGI server. State lives in memory (no database).

    python tests/zoo/drf_crm.py --port 8000 --key s3cret [--key-header X-API-Key] [--bug ID ...]
    python tests/zoo/drf_crm.py --list-bugs
"""
import argparse
import hmac
import json
import re
import signal
import sys
import threading
import uuid

# --------------------------------------------------------------------------------------
# Bugs a hurried DRF developer writes (each one switchable alone with --bug ID)
# --------------------------------------------------------------------------------------
BUG_LIST = [
    {
        "id": "auth-403",
        "summary": "The custom ApiKeyAuthentication class only implements authenticate() and "
                   "leaves out authenticate_header(), so DRF turns NotAuthenticated/AuthenticationFailed "
                   "into 403 instead of 401. The developer's curl test always sent the right key.",
        "breaks": "The server must check the key on every call and answer 401 Unauthorized if it "
                  "is missing or wrong. 403 is never mentioned.",
        "rule": "AUTH-401-NOT-403",
    },
    {
        "id": "health-allow-any",
        "summary": "GET /health got permission_classes = [AllowAny] so that the load balancer can "
                   "probe it; a request without the key header is answered 200 (a wrong key is still "
                   "refused by the authentication class). curl with the key: 200, as expected.",
        "breaks": "GET /health with a missing or wrong key returns 401 (docs); the docs say a 2xx from "
                  "/health means the key is valid, so /health must check it too.",
        "rule": "AUTH-MISSING-KEY",
    },
    {
        "id": "batch-route-order",
        "summary": "urlpatterns list path('tasks/<str:task_id>') before path('tasks/batch'), so "
                   "/tasks/batch resolves to the single-task view: POST answers 405, PATCH looks up a "
                   "task called \"batch\" and answers 404. The developer only curl-tested single tasks.",
        "breaks": "PATCH /tasks/batch is not swallowed by PATCH /tasks/{id} (route-order check; "
                  "GET/PATCH /tasks/batch must not be treated as id \"batch\").",
        "rule": "TASK-BATCH-ROUTE",
    },
    {
        "id": "drf-datetime-format",
        "summary": "REST_FRAMEWORK['DATETIME_FORMAT'] = '%d/%m/%Y %H:%M:%S' was copied from the "
                   "company's back-office project, so every DateTimeField (dueDate, completedAt, "
                   "occurredAt) is rendered like 15/01/2024 10:00:00. It looked like a date in curl.",
        "breaks": "completedAt | string (ISO 8601) | No | When the task was completed",
        "rule": "TIMESTAMPS-ISO8601",
    },
    {
        "id": "sync-blank-email-match",
        "summary": "Contact matching compares normalise(item.email) == normalise(stored.email) without "
                   "checking the email is present, so an item with no email 'matches' the first stored "
                   "contact that has none either. curl tests always carried an email.",
        "breaks": "Response (200): only matched contacts; unmatched ones are simply left out (no error).",
        "rule": "CONTACT-SYNC-OMITS-UNMATCHED",
    },
    {
        "id": "domain-keeps-path",
        "summary": "normalize_domain() follows 'remove www., protocol, trailing slashes' literally "
                   "(rstrip('/')) instead of dropping everything from the first '/', so "
                   "https://www.acme.com/about stays acme.com/about. curl test used acme.com and "
                   "https://www.acme.com/, both matched.",
        "breaks": "Domain normalisation rule given by the docs: lower-case -> strip a leading http:// / "
                  "https:// and a leading www. -> drop everything from the first / -> trim. Examples: "
                  "https://www.acme.com/about -> acme.com",
        "rule": "COMPANY-SYNC-MATCHES-DOMAIN",
    },
    {
        "id": "associations-trailing-slash",
        "summary": "The associations route was written the Django way, path('associations/'), and "
                   "curl-tested as POST /associations/. Enginy posts /associations: the URL does not "
                   "resolve and CommonMiddleware (APPEND_SLASH) answers a 301 redirect, which turns the "
                   "POST into a GET or is not followed at all.",
        "breaks": "POST /associations with valid pairs returns 200 and success: true (optionally created).",
        "rule": "ASSOC-CREATE",
    },
]
BUG_IDS = {b["id"] for b in BUG_LIST}


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Enginy Custom CRM API (Django REST framework)")
    parser.add_argument("--list-bugs", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--key")
    parser.add_argument("--key-header", default="X-API-Key")
    parser.add_argument("--bug", action="append", default=[])
    args = parser.parse_args(argv)
    if args.list_bugs:
        print(json.dumps(BUG_LIST, indent=2))
        sys.exit(0)
    for bug in args.bug:
        if bug not in BUG_IDS:
            sys.stderr.write(f"unknown bug id: {bug}\n")
            sys.exit(2)
    if args.port is None or not args.key:
        parser.error("--port and --key are required")
    return args


ARGS = parse_args(sys.argv[1:])
BUGS = frozenset(ARGS.bug)
API_KEY = ARGS.key
API_KEY_HEADER = ARGS.key_header

# --------------------------------------------------------------------------------------
# Django settings
# --------------------------------------------------------------------------------------
from django.conf import settings  # noqa: E402

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,  # no django.contrib.auth: there are no Django users here
}
if "drf-datetime-format" in BUGS:
    REST_FRAMEWORK["DATETIME_FORMAT"] = "%d/%m/%Y %H:%M:%S"

settings.configure(
    DEBUG=False,
    SECRET_KEY="enginy-custom-crm-" + uuid.uuid4().hex,
    ALLOWED_HOSTS=["127.0.0.1", "localhost", "[::1]"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["rest_framework"],
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",  # APIView is csrf_exempt
    ],
    DATABASES={},
    USE_TZ=True,
    TIME_ZONE="UTC",
    # Enginy sends up to 100 contacts with every lead field and long HTML email bodies.
    DATA_UPLOAD_MAX_MEMORY_SIZE=50 * 1024 * 1024,
    REST_FRAMEWORK=REST_FRAMEWORK,
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        # no per-request access log; server errors still go to stderr
        "loggers": {"django.server": {"handlers": ["stderr"], "level": "ERROR", "propagate": False}},
    },
)

import django  # noqa: E402

django.setup()

from django.urls import path  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework import serializers, status  # noqa: E402
from rest_framework.authentication import BaseAuthentication  # noqa: E402
from rest_framework.exceptions import AuthenticationFailed, NotFound  # noqa: E402
from rest_framework.permissions import AllowAny, IsAuthenticated  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

# --------------------------------------------------------------------------------------
# In-memory state
# --------------------------------------------------------------------------------------
LOCK = threading.Lock()
CONTACTS = {}       # crmId -> dict
COMPANIES = {}      # crmId -> dict
ASSOCIATIONS = set()  # (contactCRMId, companyCRMId)
ACTIVITIES = {}     # id -> dict
TASKS = {}          # id -> dict

USERS = [
    {"id": "user-1", "name": "Alice Martin", "email": "alice.martin@example.com"},
    {"id": "user-2", "name": "Bruno Costa", "email": "bruno.costa@example.com"},
    {"id": "user-3", "name": "Sales Bot"},
]

CONTACT_PROPERTIES = ("email", "phone", "mobilePhone", "ownerId", "leadScore", "lifecycleStage",
                      "lastActivityDate")
COMPANY_PROPERTIES = ("name", "domain", "ownerId", "accountTier", "totalDeals", "lifetimeValue")


def new_id():
    return str(uuid.uuid4())


# --------------------------------------------------------------------------------------
# Matching helpers
# --------------------------------------------------------------------------------------
def normalize_email(value):
    return (value or "").strip().lower()


def normalize_linkedin(value):
    url = (value or "").strip().lower()
    url = re.sub(r"^https?://", "", url)
    url = re.sub(r"^www\.", "", url)
    url = re.split(r"[?#]", url, maxsplit=1)[0]
    return url.rstrip("/")


def normalize_domain(value):
    domain = (value or "").strip().lower()
    domain = re.sub(r"^https?://", "", domain)
    domain = re.sub(r"^www\.", "", domain)
    if "domain-keeps-path" in BUGS:
        domain = domain.rstrip("/")
    else:
        domain = domain.split("/", 1)[0]
    return domain.strip()


def find_contact(item):
    email = normalize_email(item.get("email"))
    linkedin = normalize_linkedin(item.get("linkedinUrl"))
    stored = list(CONTACTS.values())
    if email or "sync-blank-email-match" in BUGS:
        for contact in stored:
            if normalize_email(contact.get("email")) == email:
                return contact
    if linkedin:
        for contact in stored:
            if normalize_linkedin(contact.get("linkedinUrl")) == linkedin:
                return contact
    return None


def find_company(item):
    domain = normalize_domain(item.get("domain"))
    linkedin = normalize_linkedin(item.get("linkedinUrl"))
    name = (item.get("name") or "").strip().lower()
    stored = list(COMPANIES.values())
    if domain:
        for company in stored:
            if normalize_domain(company.get("domain")) == domain:
                return company
    if linkedin:
        for company in stored:
            if normalize_linkedin(company.get("linkedinUrl")) == linkedin:
                return company
    if name and not domain and not linkedin:
        for company in stored:
            if (company.get("name") or "").strip().lower() == name:
                return company
    return None


def pick(record, keys):
    return {k: record[k] for k in keys if record.get(k) is not None}


# --------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------
class ApiClient:
    """The caller that presented the configured API key (Enginy)."""
    is_authenticated = True


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        supplied = request.headers.get(API_KEY_HEADER)  # HttpHeaders is case-insensitive
        if not supplied:
            return None  # -> IsAuthenticated raises NotAuthenticated
        if not hmac.compare_digest(supplied.encode(), API_KEY.encode()):
            raise AuthenticationFailed("Invalid API key.")
        return ApiClient(), supplied

    def authenticate_header(self, request):
        # A WWW-Authenticate challenge makes DRF answer 401 rather than 403.
        if "auth-403" in BUGS:
            return None
        return f'ApiKey header="{API_KEY_HEADER}"'


class CrmAPIView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]


# --------------------------------------------------------------------------------------
# Serializers
# --------------------------------------------------------------------------------------
def optional_text(**kwargs):
    return serializers.CharField(required=False, allow_blank=True, allow_null=True, **kwargs)


class LeadSerializer(serializers.Serializer):
    """Validates the documented fields and keeps every other lead field Enginy forwards."""

    def to_internal_value(self, data):
        validated = super().to_internal_value(data)
        extra = {k: v for k, v in data.items() if k not in self.fields}
        return {**extra, **validated}


class ContactSerializer(LeadSerializer):
    externalId = serializers.CharField()
    email = optional_text()
    firstName = optional_text()
    lastName = optional_text()
    phone = optional_text()
    company = optional_text()
    title = optional_text()
    linkedinUrl = optional_text()
    ownerId = optional_text()


class ContactUpdateSerializer(ContactSerializer):
    crmId = serializers.CharField()
    externalId = optional_text()


class ContactBatchSerializer(serializers.Serializer):
    contacts = ContactSerializer(many=True)


class ContactUpdateBatchSerializer(serializers.Serializer):
    contacts = ContactUpdateSerializer(many=True)


class CompanySerializer(LeadSerializer):
    externalId = serializers.CharField()
    name = optional_text()
    domain = optional_text()
    industry = optional_text()
    numberOfEmployees = serializers.IntegerField(required=False, allow_null=True)
    linkedinUrl = optional_text()
    ownerId = optional_text()


class CompanyUpdateSerializer(CompanySerializer):
    crmId = serializers.CharField()
    externalId = optional_text()


class CompanyBatchSerializer(serializers.Serializer):
    companies = CompanySerializer(many=True)


class CompanyUpdateBatchSerializer(serializers.Serializer):
    companies = CompanyUpdateSerializer(many=True)


class AssociationSerializer(serializers.Serializer):
    contactCRMId = serializers.CharField()
    companyCRMId = serializers.CharField()


class AssociationBatchSerializer(serializers.Serializer):
    associations = AssociationSerializer(many=True)


class ActivitySerializer(serializers.Serializer):
    TYPES = ["EMAIL", "LINKEDIN", "LINKEDIN_CONNECTION", "LINKEDIN_INMAIL"]

    id = serializers.CharField(read_only=True)
    type = serializers.ChoiceField(choices=TYPES)
    subject = optional_text(trim_whitespace=False)
    body = optional_text(trim_whitespace=False)
    direction = serializers.ChoiceField(choices=["INBOUND", "OUTBOUND"], required=False, allow_null=True)
    ownerId = optional_text()
    occurredAt = serializers.DateTimeField(required=False, allow_null=True)
    contactId = optional_text()
    companyId = optional_text()
    metadata = serializers.DictField(required=False, allow_null=True)

    def create(self, validated_data):
        activity = {name: None for name in self.fields}
        activity.update(validated_data, id=new_id())
        with LOCK:
            ACTIVITIES[activity["id"]] = activity
        return activity


class TaskSerializer(serializers.Serializer):
    id = serializers.CharField(read_only=True)
    subject = serializers.CharField(trim_whitespace=False)
    description = optional_text(trim_whitespace=False)
    type = optional_text()
    ownerId = optional_text()
    dueDate = serializers.DateTimeField(required=False, allow_null=True)
    contactId = optional_text()
    companyId = optional_text()
    completed = serializers.BooleanField(required=False)
    completedAt = serializers.DateTimeField(read_only=True)

    def create(self, validated_data):
        validated_data.pop("completed", None)  # a new task is always open
        task = {name: None for name in self.fields}
        task.update(validated_data, id=new_id(), completed=False, completedAt=None)
        with LOCK:
            TASKS[task["id"]] = task
        return task

    def update(self, task, validated_data):
        completed = validated_data.pop("completed", None)
        with LOCK:
            task.update(validated_data)
            if completed is not None:
                set_completed(task, completed)
        return task


class TaskIdsSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.CharField())


class TaskBatchCompleteSerializer(TaskIdsSerializer):
    completed = serializers.BooleanField()


def set_completed(task, completed):
    if completed and not task["completed"]:
        task["completedAt"] = timezone.now()
    elif not completed:
        task["completedAt"] = None
    task["completed"] = completed


def unique(ids):
    return list(dict.fromkeys(ids))


# --------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------
class HealthView(CrmAPIView):
    if "health-allow-any" in BUGS:
        permission_classes = [AllowAny]

    def get(self, request):
        return Response({"status": "ok"})


class UsersView(CrmAPIView):
    def get(self, request):
        return Response(USERS)


class ContactsView(CrmAPIView):
    def post(self, request):
        serializer = ContactBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = []
        with LOCK:
            for item in serializer.validated_data["contacts"]:
                crm_id = new_id()
                CONTACTS[crm_id] = {**item, "crmId": crm_id}
                results.append({"externalId": item["externalId"], "crmId": crm_id})
        return Response({"results": results}, status=status.HTTP_201_CREATED)

    def put(self, request):
        serializer = ContactUpdateBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = []
        with LOCK:
            for item in serializer.validated_data["contacts"]:
                contact = CONTACTS.get(item["crmId"])
                if contact is None:
                    results.append({"crmId": item["crmId"], "success": False,
                                    "error": "Contact not found."})
                    continue
                contact.update(item)
                results.append({"crmId": item["crmId"], "success": True,
                                "properties": pick(contact, CONTACT_PROPERTIES)})
        return Response({"results": results})


class ContactsSyncView(CrmAPIView):
    def post(self, request):
        serializer = ContactBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = []
        with LOCK:
            for item in serializer.validated_data["contacts"]:
                contact = find_contact(item)
                if contact is not None:
                    results.append({"externalId": item["externalId"], "crmId": contact["crmId"],
                                    "properties": pick(contact, CONTACT_PROPERTIES)})
        return Response({"results": results})


class CompaniesView(CrmAPIView):
    def post(self, request):
        serializer = CompanyBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = []
        with LOCK:
            for item in serializer.validated_data["companies"]:
                crm_id = new_id()
                COMPANIES[crm_id] = {**item, "crmId": crm_id}
                results.append({"externalId": item["externalId"], "crmId": crm_id})
        return Response({"results": results}, status=status.HTTP_201_CREATED)

    def put(self, request):
        serializer = CompanyUpdateBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = []
        with LOCK:
            for item in serializer.validated_data["companies"]:
                company = COMPANIES.get(item["crmId"])
                if company is None:
                    results.append({"crmId": item["crmId"], "success": False,
                                    "error": "Company not found."})
                    continue
                company.update(item)
                results.append({"crmId": item["crmId"], "success": True,
                                "properties": pick(company, COMPANY_PROPERTIES)})
        return Response({"results": results})


class CompaniesSyncView(CrmAPIView):
    def post(self, request):
        serializer = CompanyBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = []
        with LOCK:
            for item in serializer.validated_data["companies"]:
                company = find_company(item)
                if company is not None:
                    results.append({"externalId": item["externalId"], "crmId": company["crmId"],
                                    "properties": pick(company, COMPANY_PROPERTIES)})
        return Response({"results": results})


class AssociationsView(CrmAPIView):
    def post(self, request):
        serializer = AssociationBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pairs = serializer.validated_data["associations"]
        created, errors = 0, []
        with LOCK:
            for pair in pairs:
                contact_id, company_id = pair["contactCRMId"], pair["companyCRMId"]
                if contact_id not in CONTACTS:
                    error = "Contact not found"
                elif company_id not in COMPANIES:
                    error = "Company not found"
                else:
                    if (contact_id, company_id) not in ASSOCIATIONS:  # existing pair: skip silently
                        ASSOCIATIONS.add((contact_id, company_id))
                        created += 1
                    continue
                errors.append({"contactCRMId": contact_id, "companyCRMId": company_id, "error": error})
        success = not pairs or len(errors) < len(pairs)
        return Response({"success": success, "created": created, "errors": errors})


class ActivitiesView(CrmAPIView):
    def post(self, request):
        serializer = ActivitySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data, status=status.HTTP_201_CREATED)


class TasksView(CrmAPIView):
    def post(self, request):
        serializer = TaskSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data, status=status.HTTP_201_CREATED)


class TaskDetailView(CrmAPIView):
    def get_task(self, task_id):
        task = TASKS.get(task_id)
        if task is None:
            raise NotFound(f"Task not found: no task exists with ID {task_id}.")
        return task

    def get(self, request, task_id):
        return Response(TaskSerializer(self.get_task(task_id)).data)

    def patch(self, request, task_id):
        serializer = TaskSerializer(self.get_task(task_id), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)


class TaskBatchView(CrmAPIView):
    def post(self, request):
        serializer = TaskIdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with LOCK:
            tasks = [TASKS[i] for i in unique(serializer.validated_data["ids"]) if i in TASKS]
            data = TaskSerializer(tasks, many=True).data
        return Response(data)

    def patch(self, request):
        serializer = TaskBatchCompleteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        completed = serializer.validated_data["completed"]
        with LOCK:
            tasks = [TASKS[i] for i in unique(serializer.validated_data["ids"]) if i in TASKS]
            for task in tasks:
                set_completed(task, completed)
            data = TaskSerializer(tasks, many=True).data
        return Response(data)


# --------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------
task_batch_route = path("tasks/batch", TaskBatchView.as_view())
task_detail_route = path("tasks/<str:task_id>", TaskDetailView.as_view())
task_routes = [task_batch_route, task_detail_route]
if "batch-route-order" in BUGS:
    task_routes = [task_detail_route, task_batch_route]

urlpatterns = [
    path("health", HealthView.as_view()),
    path("users", UsersView.as_view()),
    path("contacts", ContactsView.as_view()),
    path("contacts/sync", ContactsSyncView.as_view()),
    path("companies", CompaniesView.as_view()),
    path("companies/sync", CompaniesSyncView.as_view()),
    path("associations/" if "associations-trailing-slash" in BUGS else "associations",
         AssociationsView.as_view()),
    path("activities", ActivitiesView.as_view()),
    path("tasks", TasksView.as_view()),
    *task_routes,
]


# --------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------
def main():
    from django.core.servers.basehttp import run
    from django.core.wsgi import get_wsgi_application

    def on_sigterm(signum, frame):
        sys.exit(0)

    def on_bind(port):
        print(f"listening on http://127.0.0.1:{port}", flush=True)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        run("127.0.0.1", ARGS.port, get_wsgi_application(), threading=True, on_bind=on_bind)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
