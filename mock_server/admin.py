"""The admin API under /__admin/, guarded by X-Admin-Token (never by the API key), and seed data.

* ``POST /__admin/reset``: delete every record, clear the journal, reload the start-up records.
* ``POST /__admin/seed``: insert or replace records, body ``{"tasks": [...], "contacts": [...], ...}``.
* ``GET /__admin/records[?kind=tasks]``: every stored record, by kind.
* ``GET /__admin/journal[?limit=N]``: the last exchanges, newest first.
* ``GET /__admin/journal.har[?limit=N]``, ``GET /__admin/journal.jsonl[?limit=N]``: the same
  exchanges as a file, oldest first (replay order); see ``export``. A browser that opened the
  inspector may fetch these two with its cookie instead of the header.
* ``GET /__admin/faults``, ``PUT /__admin/faults``: the active faults; PUT takes
  ``{"faults": ["TASK-BATCH-ROUTE", "latency:ms=200"], "seed": 7}`` and replaces them all.

Seed records are checked against the spec's own component schemas: tasks against Task (an ``id``
is generated when absent), contacts and companies against ContactCreate/CompanyCreate (``crmId``
or ``id`` names the CRM id), activities against ActivityCreate, associations against
AssociationPair, users against User.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import falcon

from mock_server.bodies import parse_json, read_body
from mock_server.errors import BadRequest, FaultSpecError, InvalidBody, SeedError
from mock_server.export import MOCK_NAME, journal_har, journal_jsonl
from mock_server.faults import parse_faults
from mock_server.runtime import IdSource, Runtime
from mock_server.storage import KINDS, Kind, Record, association_id
from mock_server.validation import Validators

__all__ = [
    "AdminFaults",
    "AdminJournal",
    "AdminJournalExport",
    "AdminRecords",
    "AdminReset",
    "AdminSeed",
    "parse_seed",
    "seed_record_problem",
]

_COMPONENT = {
    "tasks": "Task",
    "contacts": "ContactCreate",
    "companies": "CompanyCreate",
    "activities": "ActivityCreate",
    "associations": "AssociationPair",
    "users": "User",
}
_ID_PREFIX = {"tasks": "task", "contacts": "contact", "companies": "company", "activities": "activity"}


def _kind(name: str) -> Kind:
    for kind in KINDS:
        if kind == name:
            return kind
    raise SeedError(f"Unknown kind {name[:60]!r}; use one of {', '.join(KINDS)}.")


def _seed_record(kind: Kind, raw: Mapping[str, Any], ids: IdSource) -> Record:
    record = dict(raw)
    if kind in {"contacts", "companies"} and "crmId" in record:
        record["id"] = record.pop("crmId")
    if kind == "associations":
        record["id"] = association_id(record["contactCRMId"], record["companyCRMId"])
    elif "id" not in record:
        record["id"] = ids(_ID_PREFIX[kind])
    if kind == "tasks":
        record.setdefault("completed", False)
        record.setdefault("completedAt", None)
    return record


def seed_record_problem(kind: Kind, item: Mapping[str, Any], validators: Validators) -> str | None:
    """Why this seed record does not fit its kind's schema (one sentence), or None when it fits.

    Scenario files check every record with it, to report all bad records rather than the first.
    """
    if "id" in item and (not isinstance(item["id"], str) or not item["id"]):
        return "id must be a non-empty string."
    if "crmId" in item and (not isinstance(item["crmId"], str) or not item["crmId"]):
        return "crmId must be a non-empty string."
    candidate = dict(item)
    if kind == "tasks":
        candidate.setdefault("id", "seed")  # Task requires an id; a missing one is generated
        # Task leaves the fields Enginy sends untyped in answers; a seeded task is held to what Enginy
        # sends (TaskCreate: a string subject, ISO 8601 dueDate) as well.
        return validators.check_component("Task", candidate) or validators.check_component(
            "TaskCreate", candidate
        )
    return validators.check_component(_COMPONENT[kind], candidate)


def parse_seed(document: object, validators: Validators, ids: IdSource) -> dict[Kind, list[Record]]:
    """Check a seed document and turn it into records by kind; raise SeedError naming the bad record."""
    if not isinstance(document, dict):
        raise SeedError('Seed data must be a JSON object such as {"tasks": [...], "users": [...]}.')
    parsed: dict[Kind, list[Record]] = {}
    for name, items in document.items():
        kind = _kind(name)
        if not isinstance(items, list):
            raise SeedError(f"Seed {kind} must be an array of records.")
        records = []
        for index, item in enumerate(items):
            where = f"Seed {kind}[{index}]"
            if not isinstance(item, dict):
                raise SeedError(f"{where} must be an object.")
            problem = seed_record_problem(kind, item, validators)
            if problem is not None:
                raise SeedError(f"{where}: {problem}")
            records.append(_seed_record(kind, item, ids))
        parsed[kind] = records
    return parsed


def _admin_body(rt: Runtime, req: falcon.Request) -> Any:
    return parse_json(read_body(req, rt.config.max_body_bytes))


class AdminReset:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._rt.store.clear()
        self._rt.journal.clear()
        self._rt.restore_initial_records()
        resp.media = {"reset": True, "records": {kind: len(self._rt.store.list(kind)) for kind in KINDS}}


class AdminSeed:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        rt = self._rt
        try:
            seed = parse_seed(_admin_body(rt, req), rt.validators, rt.ids)
        except SeedError as ex:
            raise InvalidBody(str(ex)) from ex
        for kind, records in seed.items():
            rt.store.put(kind, records)
        resp.media = {
            "seeded": {kind: len(records) for kind, records in seed.items()},
            "ids": {kind: [record["id"] for record in records] for kind, records in seed.items()},
        }


class AdminRecords:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        wanted = req.get_param("kind")
        if wanted is None:
            kinds = KINDS
        else:
            try:
                kinds = (_kind(wanted),)
            except SeedError as ex:
                raise BadRequest(str(ex)) from ex
        resp.media = {kind: self._rt.store.list(kind) for kind in kinds}


class AdminJournal:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit = req.get_param_as_int("limit", min_value=1)
        resp.media = {"entries": [entry.to_json() for entry in self._rt.journal.entries(limit)]}


class AdminJournalExport:
    """``journal.har`` or ``journal.jsonl``: the journal oldest first, as a download."""

    def __init__(self, rt: Runtime, *, fmt: str) -> None:
        if fmt not in {"har", "jsonl"}:
            raise ValueError(f"Unknown journal export format {fmt!r}.")
        self._rt = rt
        self._fmt = fmt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit = req.get_param_as_int("limit", min_value=1)
        oldest_first = list(reversed(self._rt.journal.entries(limit)))
        stamp = self._rt.now().replace(":", "").replace("-", "").split(".")[0]
        resp.downloadable_as = f"{MOCK_NAME}-journal-{stamp}.{self._fmt}"
        resp.cache_control = ["no-store"]
        if self._fmt == "har":
            resp.content_type = falcon.MEDIA_JSON
            resp.media = journal_har(oldest_first, base_url=req.prefix)
        else:
            resp.content_type = "application/x-ndjson"
            resp.data = journal_jsonl(oldest_first)


class AdminFaults:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def _describe(self) -> dict[str, Any]:
        state = self._rt.faults
        return {"faults": [selection.to_json() for selection in state.selections], "seed": state.seed}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._describe()

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _admin_body(self._rt, req)
        if not isinstance(body, dict) or not isinstance(body.get("faults"), list):
            raise InvalidBody('The body must be {"faults": ["ID" or "ID:NAME=VALUE,...", ...], "seed": N?}.')
        texts = body["faults"]
        seed = body.get("seed")
        if not all(isinstance(text, str) for text in texts):
            raise InvalidBody(
                "Every entry of faults must be a string such as TASK-BATCH-ROUTE or latency:ms=200."
            )
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise InvalidBody("seed must be an integer.")
        try:
            selections = parse_faults(texts)
        except FaultSpecError as ex:
            raise BadRequest(str(ex)) from ex
        self._rt.faults.replace(selections, seed=seed)
        resp.media = self._describe()
