"""The Locust process of `enginy-conformance load`: `python -m conformance.load_locust CONFIG.json`.

Run in a process of its own, never imported by the CLI: Locust imports gevent, which patches the
standard library (sockets, threads, time) for the whole process.

    CONFIG.json (from the CLI; never the key, which comes in ENGINY_API_KEY)
      role local:  a LocalRunner → users → every exchange judged here → RESULTS.json
      role master: a MasterRunner; waits for --expect-workers workers, sends each its share of the
                   write cap and the run's tag, starts the users, stops them at the duration, merges
                   each worker's tally (a Locust message, "enginy_tally") → RESULTS.json
      role worker: a WorkerRunner; its users send and judge, and at the stop it sends its tally

Every exchange is judged here, in the process that sent it, by the suite's single-exchange judges
(`conformance.judges`: no 5xx, ids, shapes, batch omission), and each user checks what only a
sequence under load shows: a task it created is in every later batch read of it
(TASK-BATCH-GET-OMITS-UNKNOWN), a completion the server acknowledged reads completed on every later
read (TASK-COMPLETION-PERSISTS), a batch completion answers every task it was sent
(TASK-BATCH-COMPLETE), and no id is answered to two creates of this process (the ids of all
processes are compared by the CLI). Two answers say nothing about the rules, so only SERVER-NO-5XX
judges a 5xx, and a 429 is not judged at all (the user waits its Retry-After, at most 5 s).

Progress goes to stdout as one line every `progress_s` seconds (requests/s, failures so far); the CLI
passes it through. Nothing here prints a key: every recorded exchange is redacted as the suite's own
client redacts (`conformance.redaction`).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import gevent
from locust import FastHttpUser, between, events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from conformance.checks._spec import SpecSchemas
from conformance.client import RECORDED_BODY_CHARS, Reply, Sent, parsed_body
from conformance.judges import Seen, judge_exchange
from conformance.load_model import TrafficModel
from conformance.load_results import LoadTally, evidence_json
from conformance.redaction import Redactor
from conformance.results import Exchange, RecordedRequest, RecordedResponse
from conformance.tagging import MARKER, Tagger
from enginy_spec import load_catalogue, operations

__all__ = ["main"]

_WRITES: Final = frozenset({"POST", "PUT", "PATCH"})
# POST /tasks/batch and the syncs read, though they are POSTs: they do not count against --max-writes.
_READ_POSTS: Final = frozenset({"getTasksBatch", "syncContacts", "syncCompanies"})
_TALLY_MESSAGE: Final = "enginy_tally"
_SETUP_MESSAGE: Final = "enginy_setup"
# Locust's master forgets a worker once it reports stopped, so its own quit never reaches them: the
# master sends this one to every worker it set up, once their tallies are in.
_QUIT_MESSAGE: Final = "enginy_quit"
_MAX_RETRY_AFTER_S: Final = 5.0
_ACTIVITY_TYPES: Final = ("LINKEDIN", "LINKEDIN_INMAIL", "LINKEDIN_CONNECTION", "EMAIL")


class _Run:
    """The state of this process's share of the run, shared by its users (one gevent thread)."""

    def __init__(self, config: dict[str, Any], key: str) -> None:
        self.config = config
        self.key = key
        self.header: str = config["api_key_header"]
        self.base_url: str = config["base_url"].rstrip("/")
        self.redactor = Redactor(secret=key, header=self.header)
        self.schemas = SpecSchemas()
        self.catalogue = load_catalogue()
        self.rule_ids = self.catalogue.ids
        self.operations = operations()
        self.tally = LoadTally()
        self.process = str(config.get("process", "local"))
        self.tagger = Tagger(tag=config["tag"], run_id=config["run_id"])
        self.max_writes: int | None = config.get("max_writes")
        self.serial = 0  # numbers every record this process makes, so each externalId is new
        # (kind, id) -> the exchange of the first create that was answered it (tasks and activities)
        self.first_create: dict[tuple[str, str], Exchange] = {}

    def configure(self, setup: dict[str, Any]) -> None:
        """What the master decides for every worker: the run's tag and this worker's write cap."""
        self.config.update(setup)
        self.tagger = Tagger(tag=setup["tag"], run_id=setup["run_id"])
        self.max_writes = setup.get("max_writes")
        self.process = str(setup.get("process", self.process))

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def reserve_write(self) -> bool:
        if self.max_writes is not None and self.tally.writes >= self.max_writes:
            self.tally.writes_capped = True
            return False
        self.tally.writes += 1
        return True

    def note_created(self, kind: str, record_id: str, via: str, exchange: Exchange) -> None:
        """List a created record; a second create answered the same id breaks the rule on ids."""
        self.tally.created.append([kind, record_id, via, self.process])
        if kind not in ("task", "activity"):
            return
        first = self.first_create.get((kind, record_id))
        if first is None:
            self.first_create[(kind, record_id)] = exchange
            return
        rule_id = "TASK-CREATE-RETURNS-ID" if kind == "task" else "ACTIVITY-RETURNS-ID"
        self.finding(
            rule_id,
            f"Two {via} requests of the load run were answered the same {kind} id {record_id!r}: ids "
            "collide when creates arrive together, and Enginy tracks each record by its id.",
            expected=f"a distinct id for every {kind} created",
            actual=f"{record_id!r} answered to two different creates",
            exchanges=(first, exchange),
        )

    def finding(self, rule_id: str, message: str, *, expected: str, actual: str, exchanges: Any) -> None:
        level = self.catalogue.get(rule_id).level
        outcome = "failed" if level == "MUST" else "warning"
        self.tally.add_finding(evidence_json(rule_id, outcome, message, expected, actual, exchanges))

    def held(self, rule_id: str) -> None:
        self.tally.held[rule_id] += 1


_STATE: dict[str, _Run] = {}


def _run() -> _Run:
    return _STATE["run"]


class EnginyUser(FastHttpUser):
    """One Enginy workspace's traffic: the actions of the traffic model, each request judged."""

    abstract = True
    # Bounded waits: a server that stops answering cannot hold a user past the run.
    network_timeout = 10.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.open_tasks: dict[str, str] = {}  # id -> subject, as created
        self.completed: set[str] = set()  # ids whose completion the server acknowledged
        self.contacts: list[dict[str, str]] = []  # {externalId, email, crmId}
        self.companies: list[dict[str, str]] = []  # {externalId, domain, crmId}

    # --- sending and judging ---------------------------------------------------------------------

    def send(self, method: str, path: str, operation: str, body: Any = None) -> Reply | None:
        """Send one request and judge its answer; None when it got none (or the write cap held it)."""
        run = _run()
        if method in _WRITES and operation not in _READ_POSTS and not run.reserve_write():
            return None
        headers = {
            run.header: run.key,
            "User-Agent": "enginy-conformance load",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        data = json.dumps(body, ensure_ascii=False) if body is not None else None
        started = time.time()
        name = f"{method} {_template(operation, path)}"
        endpoint = _endpoint(operation, name)
        with self.client.request(
            method, path, name=name, data=data, headers=headers, catch_response=True, allow_redirects=False
        ) as response:
            elapsed_ms = float(response.request_meta.get("response_time") or (time.time() - started) * 1000)
            recorded = RecordedRequest(
                method=method,
                url=run.redactor.url(run.base_url + path),
                headers=run.redactor.headers(headers),
                body=_excerpt(run.redactor.body(data)) if data is not None else None,
            )
            status = int(response.status_code or 0)
            if status == 0:
                error = str(getattr(response, "error", None) or "no answer")
                run.tally.no_answer += 1
                if len(run.tally.no_answer_notes) < 5:
                    run.tally.no_answer_notes.append(run.redactor.text(f"{name}: {error}"))
                run.tally.add_request(at=started, elapsed_ms=elapsed_ms, failed=True, endpoint=endpoint)
                response.failure(f"no answer: {error}")
                return None
            text = run.redactor.body(response.text or "")
            answer_headers = run.redactor.headers({k: v for k, v in (response.headers or {}).items()})
            exchange = Exchange(
                request=recorded,
                response=RecordedResponse(
                    status=status, headers=answer_headers, body=_excerpt(text), elapsed_ms=elapsed_ms
                ),
            )
            parsed = parsed_body(response.text or "")
            reply = Reply(
                status=status,
                headers=answer_headers,
                text=text,
                json=parsed,
                truncated=False,
                sent=Sent(method=method, path=path, operation=operation, json=body),
                exchange=exchange,
            )
            if status == 429:
                run.tally.rate_limited += 1
                run.tally.add_request(at=started, elapsed_ms=elapsed_ms, failed=False, endpoint=endpoint)
                response.success()
                gevent.sleep(_retry_after(reply.header("Retry-After")))
                return None
            broke_must = self.judge(reply)
            run.tally.add_request(at=started, elapsed_ms=elapsed_ms, failed=broke_must, endpoint=endpoint)
            if broke_must:
                response.failure("a MUST rule broke")
            else:
                response.success()
            return reply

    def judge(self, reply: Reply) -> bool:
        """Every single-exchange judge on the reply; True when a MUST rule broke."""
        run = _run()
        # A server error says nothing about the operation's rules: SERVER-NO-5XX alone judges it.
        rule_ids = ("SERVER-NO-5XX",) if reply.status >= 500 else run.rule_ids
        broke_must = False
        for verdict in judge_exchange(Seen.of(reply, run.schemas), rule_ids):
            if verdict.violation is None:
                run.held(verdict.rule_id)
                continue
            broken = verdict.violation
            run.finding(
                broken.rule_id,
                broken.message,
                expected=broken.expected,
                actual=broken.actual,
                exchanges=broken.exchanges,
            )
            broke_must = broke_must or run.catalogue.get(broken.rule_id).level == "MUST"
        if broke_must:
            run.tally.must_broken += 1
        return broke_must

    # --- the actions of the traffic model ----------------------------------------------------------

    def export_contacts(self, size: int) -> None:
        run = _run()
        sent = []
        for _ in range(size):
            n = run.next_serial()
            sent.append(
                {
                    "externalId": run.tagger.label("contact", f"{run.process}-{n}"),
                    "email": run.tagger.email(f"{run.process}-{n}"),
                    "firstName": "Load",
                    "lastName": f"Contact {n}",
                }
            )
        reply = self.send("POST", "/contacts", "createContacts", {"contacts": sent})
        self._note_results(reply, sent, "contact", "POST /contacts", self.contacts)

    def export_companies(self, size: int) -> None:
        run = _run()
        sent = []
        for _ in range(size):
            n = run.next_serial()
            sent.append(
                {
                    "externalId": run.tagger.label("company", f"{run.process}-{n}"),
                    "name": run.tagger.subject(f"Company {n}"),
                    "domain": f"{run.tagger.prefix}-{run.process}-{n}.example.invalid",
                }
            )
        reply = self.send("POST", "/companies", "createCompanies", {"companies": sent})
        self._note_results(reply, sent, "company", "POST /companies", self.companies)

    def _note_results(
        self, reply: Reply | None, sent: list[dict[str, str]], kind: str, via: str, into: list[dict[str, str]]
    ) -> None:
        if reply is None or not reply.ok or not isinstance(reply.json, dict):
            return
        by_external = {item["externalId"]: item for item in sent}
        for result in reply.json.get("results") or []:
            if not isinstance(result, dict):
                continue
            crm_id, external = result.get("crmId"), result.get("externalId")
            if isinstance(crm_id, str) and crm_id and external in by_external:
                _run().note_created(kind, crm_id, via, reply.exchange)
                into.append({**by_external[external], "crmId": crm_id})

    def sync_contacts(self, size: int) -> None:
        self._sync(size, "/contacts/sync", "syncContacts", "contacts", self.contacts, ("externalId", "email"))

    def sync_companies(self, size: int) -> None:
        self._sync(
            size, "/companies/sync", "syncCompanies", "companies", self.companies, ("externalId", "domain")
        )

    def _sync(
        self,
        size: int,
        path: str,
        operation: str,
        family: str,
        known: list[dict[str, str]],
        fields: tuple[str, ...],
    ) -> None:
        run = _run()
        picked = random.sample(known, min(len(known), max(1, size // 2)))
        records = [{name: item[name] for name in fields} for item in picked]
        while len(records) < size:  # records the server has never seen: matched by nothing
            n = run.next_serial()
            unknown = {"externalId": run.tagger.label(f"unknown-{family}", f"{run.process}-{n}")}
            if "email" in fields:
                unknown["email"] = run.tagger.email(f"unknown-{run.process}-{n}")
            else:
                unknown["domain"] = f"unknown-{run.tagger.prefix}-{run.process}-{n}.example.invalid"
            records.append(unknown)
        self.send("POST", path, operation, {family: records})

    def associate(self, size: int) -> None:
        if not self.contacts or not self.companies:
            return
        pairs = [
            {
                "contactCRMId": random.choice(self.contacts)["crmId"],
                "companyCRMId": random.choice(self.companies)["crmId"],
            }
            for _ in range(size)
        ]
        self.send("POST", "/associations", "createAssociations", {"associations": pairs})

    def create_task(self, size: int) -> None:
        run = _run()
        subject = run.tagger.subject(f"Follow up {run.process}-{run.next_serial()}")
        body: dict[str, Any] = {"subject": subject, "type": "call", "dueDate": "2030-01-15T10:00:00Z"}
        if self.contacts:
            body["contactId"] = random.choice(self.contacts)["crmId"]
        reply = self.send("POST", "/tasks", "createTask", body)
        if reply is None or reply.status not in (200, 201) or not isinstance(reply.json, dict):
            return
        task_id = reply.json.get("id")
        if isinstance(task_id, str) and task_id:
            run.note_created("task", task_id, "POST /tasks", reply.exchange)
            self.open_tasks[task_id] = subject

    def read_tasks(self, size: int) -> None:
        known = list(self.open_tasks) + list(self.completed)
        if not known:
            return
        ids = random.sample(known, min(size, len(known)))
        reply = self.send("POST", "/tasks/batch", "getTasksBatch", {"ids": ids})
        if reply is None or reply.status != 200 or not isinstance(reply.json, list):
            return
        run = _run()
        answered = {item.get("id"): item for item in reply.json if isinstance(item, dict)}
        missing = [task_id for task_id in ids if task_id not in answered]
        if missing:
            run.finding(
                "TASK-BATCH-GET-OMITS-UNKNOWN",
                "POST /tasks/batch under load left out tasks the server had acknowledged creating.",
                expected=f"every one of the {len(ids)} tasks asked for (all created by this run)",
                actual=f"{len(missing)} left out, e.g. {missing[:3]}",
                exchanges=(reply.exchange,),
            )
        else:
            run.held("TASK-BATCH-GET-OMITS-UNKNOWN")
        shown = [
            task_id
            for task_id in ids
            if task_id in self.completed and "completed" in answered.get(task_id, {})
        ]
        stale = [task_id for task_id in shown if answered[task_id].get("completed") is not True]
        if stale:
            run.finding(
                "TASK-COMPLETION-PERSISTS",
                "A task whose completion the server acknowledged read as open on a later batch read under "
                "load.",
                expected="completed true on every read after the completion",
                actual=f"{len(stale)} of {len(shown)} completed tasks read open, e.g. {stale[:3]}",
                exchanges=(reply.exchange,),
            )
        elif shown:
            run.held("TASK-COMPLETION-PERSISTS")

    def complete_tasks(self, size: int) -> None:
        if not self.open_tasks:
            return
        ids = random.sample(list(self.open_tasks), min(size, len(self.open_tasks)))
        reply = self.send("PATCH", "/tasks/batch", "completeTasksBatch", {"ids": ids, "completed": True})
        if reply is None or reply.status != 200 or not isinstance(reply.json, list):
            return
        answered = {item.get("id") for item in reply.json if isinstance(item, dict)}
        missing = [task_id for task_id in ids if task_id not in answered]
        run = _run()
        if missing:
            run.finding(
                "TASK-BATCH-COMPLETE",
                "PATCH /tasks/batch under load did not answer every task it was sent.",
                expected=f"all {len(ids)} tasks sent, completed",
                actual=f"{len(missing)} missing, e.g. {missing[:3]}",
                exchanges=(reply.exchange,),
            )
        else:
            run.held("TASK-BATCH-COMPLETE")
        for task_id in ids:
            if task_id in answered:
                self.open_tasks.pop(task_id, None)
                self.completed.add(task_id)

    def activity_burst(self, size: int) -> None:
        run = _run()
        for step in range(size):
            body: dict[str, Any] = {
                "type": random.choice(_ACTIVITY_TYPES),
                "direction": "OUTBOUND",
                "subject": run.tagger.subject(f"[{step + 1}/{size}] [FROM Load] Sender"),
                "occurredAt": "2030-01-15T10:00:00Z",
                "metadata": {**MARKER, "sequenceIndex": step + 1, "sequenceMessageCount": size},
            }
            if self.contacts:
                body["contactId"] = random.choice(self.contacts)["crmId"]
            reply = self.send("POST", "/activities", "createActivity", body)
            if reply is not None and reply.status in (200, 201) and isinstance(reply.json, dict):
                activity_id = reply.json.get("id")
                if isinstance(activity_id, str) and activity_id:
                    run.note_created("activity", activity_id, "POST /activities", reply.exchange)

    def health(self, size: int) -> None:
        self.send("GET", "/health", "checkHealth")


def _template(operation: str, path: str) -> str:
    return path.split("?", 1)[0]


def _endpoint(operation: str, name: str) -> str:
    """The operation as the spec templates it ("GET /tasks/{taskId}"): one latency histogram each, however
    many ids the paths carry."""
    known = _run().operations.get(operation)
    return f"{known.method} {known.path}" if known is not None else name


def _excerpt(text: str) -> str:
    if len(text) <= RECORDED_BODY_CHARS:
        return text
    return text[:RECORDED_BODY_CHARS] + f"… [{len(text) - RECORDED_BODY_CHARS} more characters not shown]"


def _retry_after(value: str | None) -> float:
    try:
        return min(_MAX_RETRY_AFTER_S, max(0.0, float(value or 1)))
    except ValueError:
        return 1.0


def _task(name: str, low: int, high: int) -> Callable[[EnginyUser], None]:
    def action(user: EnginyUser) -> None:
        _run().tally.actions[name] += 1
        getattr(user, name)(random.randint(low, high))

    action.__name__ = name
    return action


def user_class(model: TrafficModel, host: str) -> type[EnginyUser]:
    """The Locust user of the model: one task per action, weighted as the model weighs it."""
    tasks = {_task(a.name, a.batch_min, a.batch_max): a.weight for a in model.actions if a.weight > 0}
    attributes = {
        "abstract": False,
        "host": host,
        "tasks": tasks,
        "wait_time": between(model.wait_min, model.wait_max),
    }
    return type("EnginyLoadUser", (EnginyUser,), attributes)


# --- the three roles ----------------------------------------------------------------------------------


def _progress(env: Environment, every_s: float, started: float) -> None:
    last_requests, last_at = 0, started
    while True:
        gevent.sleep(every_s)
        total = env.stats.total
        now = time.time()
        rate = (total.num_requests - last_requests) / max(1e-6, now - last_at)
        last_requests, last_at = total.num_requests, now
        print(
            f"load: {now - started:4.0f} s, {env.runner.user_count if env.runner else 0} users, "
            f"{rate:6.0f} req/s, {total.num_requests} requests, {total.num_failures} failed so far",
            flush=True,
        )


def _write(path: Path, tally: LoadTally, extra: dict[str, Any]) -> None:
    path.write_text(json.dumps({"tally": tally.to_json(), **extra}), encoding="utf-8")


def _run_local(env: Environment, config: dict[str, Any]) -> dict[str, Any]:
    runner = env.create_local_runner()
    started = time.time()
    progress = gevent.spawn(_progress, env, float(config["progress_s"]), started)
    runner.start(int(config["users"]), spawn_rate=float(config["spawn_rate"]))
    gevent.sleep(float(config["duration_s"]))
    runner.stop()
    progress.kill()
    runner.quit()
    return {"started_at": started, "ended_at": time.time(), "workers": 0}


def _run_master(env: Environment, config: dict[str, Any]) -> dict[str, Any]:
    runner = env.create_master_runner(
        master_bind_host=config["bind_host"], master_bind_port=int(config["master_port"])
    )
    assert isinstance(runner, MasterRunner)
    expected = int(config["expect_workers"])
    tallies: dict[str, LoadTally] = {}

    def on_tally(environment: Environment, msg: Any, **_: Any) -> None:
        tallies[str(msg.node_id)] = LoadTally.from_json(msg.data)

    runner.register_message(_TALLY_MESSAGE, on_tally)
    print(
        f"load: master waiting for {expected} worker{'s' if expected != 1 else ''} on "
        f"{config['bind_host']}:{config['master_port']}",
        flush=True,
    )
    deadline = time.time() + float(config["worker_wait_s"])
    while len(runner.clients.ready) < expected:
        if time.time() > deadline:
            print(
                f"load: only {len(runner.clients.ready)} of {expected} workers connected within "
                f"{config['worker_wait_s']:g} s",
                flush=True,
            )
            runner.quit()
            return {"error": "workers"}
        gevent.sleep(0.2)
    cap = config.get("max_writes")
    worker_ids = [client.id for client in runner.clients.ready]
    for index, client in enumerate(runner.clients.ready):
        share = None if cap is None else cap // expected + (1 if index < cap % expected else 0)
        setup = {
            "tag": config["tag"],
            "run_id": config["run_id"],
            "max_writes": share,
            "process": f"w{index + 1}",
        }
        runner.send_message(_SETUP_MESSAGE, setup, client.id)
    gevent.sleep(0.5)  # the setup messages reach the workers before the spawn message
    started = time.time()
    progress = gevent.spawn(_progress, env, float(config["progress_s"]), started)
    runner.start(int(config["users"]), spawn_rate=float(config["spawn_rate"]))
    gevent.sleep(float(config["duration_s"]))
    runner.stop()  # each worker stops its users, then sends its tally (on its test_stop)
    wait_until = time.time() + 30
    while len(tallies) < expected and time.time() < wait_until:
        gevent.sleep(0.1)
    progress.kill()
    for worker_id in worker_ids:
        runner.send_message(_QUIT_MESSAGE, None, worker_id)
    runner.quit()
    merged = LoadTally(processes=0)
    for tally in tallies.values():
        merged.merge(tally)
    _STATE["run"].tally = merged
    return {"started_at": started, "ended_at": time.time(), "workers": len(tallies)}


def _run_worker(env: Environment, config: dict[str, Any]) -> None:
    runner = env.create_worker_runner(
        master_host=config["master_host"], master_port=int(config["master_port"])
    )
    assert isinstance(runner, WorkerRunner)

    def on_setup(environment: Environment, msg: Any, **_: Any) -> None:
        _run().configure(dict(msg.data))

    def on_stop(environment: Environment, **_: Any) -> None:
        runner.send_message(_TALLY_MESSAGE, _run().tally.to_json())

    def on_quit(environment: Environment, msg: Any, **_: Any) -> None:
        gevent.spawn(runner.quit)

    runner.register_message(_SETUP_MESSAGE, on_setup)
    runner.register_message(_QUIT_MESSAGE, on_quit)
    env.events.test_stop.add_listener(on_stop)  # type: ignore[no-untyped-call]  # Locust leaves it untyped
    runner.greenlet.join()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    config: dict[str, Any] = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    key = os.environ.get("ENGINY_API_KEY", "")
    _STATE["run"] = _Run(config, key)
    model = TrafficModel.from_json(config["model"])
    user = user_class(model, config["base_url"])
    env = Environment(user_classes=[user], events=events, host=config["base_url"], stop_timeout=5)
    role = config["role"]
    if role == "worker":
        _run_worker(env, config)
        return 0
    extra = _run_local(env, config) if role == "local" else _run_master(env, config)
    _write(Path(config["results"]), _run().tally, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
