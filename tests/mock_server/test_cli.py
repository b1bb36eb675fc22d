"""The enginy-mock command: help, fault listing, usage errors, and real runs as a subprocess."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mock_server.cli import cli
from mock_server.faults import FAULTS

CANARY = "canary-key-7f3a9c"
LISTENING = re.compile(r"^enginy-mock listening on (http://([\d.]+):(\d+))$")


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, prog_name="enginy-mock")


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("enginy-mock: error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_help_has_an_example_block_and_documents_every_option():
    result = run("--help")
    assert result.exit_code == 0
    assert "  Example:\n    enginy-mock --port 0 --api-key test-key\n" in result.output
    for param in cli.params:
        assert isinstance(param, click.Option) and param.help, f"{param.name} has no help"
    for env in ("ENGINY_MOCK_PORT", "ENGINY_API_KEY", "ENGINY_MOCK_FAULT", "ENGINY_MOCK_DB"):
        assert env in result.output


def test_list_faults_prints_every_fault_with_its_level():
    result = run("--list-faults")
    assert result.exit_code == 0
    for fault in FAULTS:
        assert re.search(rf"^{re.escape(fault.id)}\s", result.output, re.MULTILINE), fault.id
    assert re.search(r"^TASK-BATCH-ROUTE\s+MUST\s", result.output, re.MULTILINE)
    assert re.search(r"^AUTH-401-NOT-403\s+SHOULD\s", result.output, re.MULTILINE)
    assert re.search(r"^latency\s+-\s", result.output, re.MULTILINE)
    assert "params: ms=200, jitter=0" in result.output


def test_list_faults_json_keeps_the_shape_other_tools_parse():
    result = run("--list-faults", "--json")
    assert result.exit_code == 0
    entries = json.loads(result.output)
    assert [entry["id"] for entry in entries] == list(FAULTS.ids)
    for entry in entries:
        assert {"id", "kind", "rule", "description", "params"} <= set(entry)
        assert entry["kind"] in {"rule", "transport", "concurrency"}
        if entry["kind"] != "concurrency":  # a concurrency fault names the rule it breaks (clock-ids)
            assert entry["rule"] == (entry["id"] if entry["kind"] == "rule" else None)
        else:
            assert entry["rule"] and entry["level"]
        assert isinstance(entry["params"], dict) and isinstance(entry["description"], str)
    latency = next(entry for entry in entries if entry["id"] == "latency")
    assert latency["params"]["ms"]["default"] == 200


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "give at least one --api-key"),
        (("--json",), "--json only goes with --list-faults"),
        (("--api-key", "k", "--fault", "TASK-BATCH-ROTE"), "Did you mean TASK-BATCH-ROUTE"),
        (("--api-key", "k", "--fault", "latency:ms=soon"), "ms must be an integer"),
        (("--api-key", "k", "--seed-data", "/nonexistent/seed.json"), "cannot read --seed-data"),
        (("--api-key", "k", "--api-key-header", "X API"), "not a usable header name"),
        (("--api-key", "k", "--admin-token", "k"), "must differ from every API key"),
        (("--api-key", "k", "--db", "/nonexistent/dir/mock.db"), "cannot open --db"),
        (("--api-key", "k", "--port", "70000"), "Invalid value for '--port'"),
        (("--api-key", "k", "--bogus"), "No such option '--bogus'"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args, fragment):
    one_line_error(run(*args), fragment)


def test_bad_seed_files_are_usage_errors(tmp_path):
    not_json = tmp_path / "seed.json"
    not_json.write_text("{nope")
    one_line_error(run("--api-key", "k", "--seed-data", str(not_json)), "is not a JSON document")
    bad_record = tmp_path / "bad.json"
    bad_record.write_text(json.dumps({"tasks": [{"subject": 1}]}))
    one_line_error(
        run("--api-key", "k", "--seed-data", str(bad_record)), "Seed tasks[0]: subject must be a string."
    )


def test_port_in_use_is_a_usage_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line_error(run("--api-key", "k", "--port", str(port)), f"cannot listen on 127.0.0.1:{port}")


# --- real runs --------------------------------------------------------------------------------------


class Running:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url

    def call(self, method: str, path: str, body=None, headers=None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def api(self, method: str, path: str, body=None, key: str = CANARY):
        return self.call(method, path, body, {"X-API-Key": key})

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, err


def start(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, session: bool = False
) -> Running:
    """Start ``python -m mock_server`` and wait for its one listening line.

    ``session``: in a process group of its own, so that a test can kill every process of the mock.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=session,
    )
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    if not selector.select(timeout=30):
        proc.kill()
        raise AssertionError(f"no listening line; stderr: {proc.communicate()[1]}")
    line = proc.stdout.readline().rstrip("\n")
    found = LISTENING.match(line)
    assert found, line
    return Running(proc, found.group(1))


@pytest.fixture
def running():
    started: list[Running] = []

    def launch(*args: str, **kwargs) -> Running:
        mock = start(*args, **kwargs)
        started.append(mock)
        return mock

    yield launch
    for mock in started:
        if mock.proc.poll() is None:
            mock.proc.kill()
            mock.proc.communicate()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(mock.proc.pid, signal.SIGKILL)  # workers of a mock started in its own session


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_run_prints_one_line_serves_and_stops_cleanly_without_leaking_the_key(running, sig):
    mock = running("--api-key", CANARY, "--admin-token", "admin-secret-1", "--log-level", "debug")
    assert mock.api("GET", "/health") == (200, {"status": "ok"})
    assert mock.api("GET", "/health", key="wrong")[0] == 401
    assert mock.call("GET", "/health", headers={"Authorization": f"Bearer {CANARY}"})[0] == 401
    assert mock.api("POST", "/tasks", {"subject": f"subject mentioning {CANARY}"})[0] == 201
    status, journal = mock.call("GET", "/__admin/journal", headers={"X-Admin-Token": "admin-secret-1"})
    assert status == 200 and CANARY not in json.dumps(journal)
    code, out, err = mock.stop(sig)
    assert code == 0
    assert out == "enginy-mock stopped\n"  # after the listening line, which start() consumed
    assert "GET /health -> 200 (ok)" in err and "auth: wrong key" in err
    assert CANARY not in out + err and "admin-secret-1" not in out + err
    assert "Traceback" not in err and "warning" not in err  # loopback: nothing to warn about


def test_the_version_names_the_package_the_spec_and_schemathesis():
    result = run("--version")
    assert result.exit_code == 0
    assert re.fullmatch(
        r"enginy-mock \S+ \(spec 1\.0\.0, 57 rules: 32 MUST, 25 SHOULD; schemathesis 4\.\S+\)\n",
        result.output,
    ), result.output


def test_the_start_up_lines_name_every_fault_switched_on_with_its_parameters(running):
    mock = running("--api-key", CANARY, "--fault", "latency:ms=5", "--fault", "TASK-BATCH-ROUTE")
    code, _, err = mock.stop()
    assert code == 0
    faults = [line for line in err.splitlines() if line.startswith("enginy-mock fault: ")]
    assert [line.split()[2] for line in faults] == ["latency:ms=5,jitter=0", "TASK-BATCH-ROUTE"]
    assert "(Every API request waits ms milliseconds" in faults[0]


def test_a_generated_admin_token_is_printed_to_stderr_only(running):
    mock = running("--api-key", CANARY)
    code, out, err = mock.stop()
    assert code == 0
    assert re.search(r"^enginy-mock admin token: \S{20,}$", err, re.MULTILINE)
    assert "admin token" not in out


def test_every_option_can_come_from_the_environment(running):
    env = {
        "ENGINY_API_KEY": CANARY,
        "ENGINY_MOCK_ADMIN_TOKEN": "env-admin-token",
        "ENGINY_MOCK_FAULT": "TASK-GET-UNKNOWN latency:ms=1",
        "ENGINY_MOCK_NO_USERS": "1",
        "ENGINY_MOCK_API_KEY_HEADER": "X-Crm-Key",
        "ENGINY_MOCK_LOG_LEVEL": "warning",
        "ENGINY_MOCK_JOURNAL_SIZE": "2",
    }
    mock = running(env=env)
    assert mock.call("GET", "/health?first", headers={"X-Crm-Key": CANARY})[0] == 200
    assert mock.call("GET", "/health", headers={"X-Crm-Key": CANARY})[0] == 200
    assert mock.call("GET", "/users", headers={"X-Crm-Key": CANARY})[0] == 404
    _, journal = mock.call("GET", "/__admin/journal", headers={"X-Admin-Token": "env-admin-token"})
    assert [entry["path"] for entry in journal["entries"]] == ["/users", "/health"]
    _, faults = mock.call("GET", "/__admin/faults", headers={"X-Admin-Token": "env-admin-token"})
    assert [f["spec"] for f in faults["faults"]] == ["TASK-GET-UNKNOWN", "latency:ms=1,jitter=0"]
    code, _, err = mock.stop()
    assert code == 0 and "-> 200" not in err  # warning level: no access lines


def test_seed_data_is_loaded_at_start(running, tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"tasks": [{"id": "task-seeded", "subject": "Seeded"}], "users": []}))
    mock = running("--api-key", CANARY, "--seed-data", str(seed))
    assert mock.api("GET", "/tasks/task-seeded")[1]["subject"] == "Seeded"
    assert mock.api("GET", "/users") == (200, [])


@pytest.mark.parametrize("workers", ["1", "2"], ids=["1 worker", "2 workers"])
def test_acknowledged_sqlite_writes_survive_kill_9(running, tmp_path, workers):
    db = tmp_path / "mock.db"
    # Its own session: kill -9 reaches every process of the mock at once, workers included.
    first = running(
        "--api-key",
        CANARY,
        "--db",
        str(db),
        "--admin-token",
        "adm-token-1",
        "--workers",
        workers,
        session=True,
    )
    task_ids = [first.api("POST", "/tasks", {"subject": f"task {n}"})[1]["id"] for n in range(20)]
    completed = first.api("PATCH", f"/tasks/{task_ids[0]}", {"completed": True})[1]
    first.api("PATCH", "/tasks/batch", {"ids": task_ids[1:3], "completed": True})
    contact = first.api("POST", "/contacts", {"contacts": [{"externalId": "lead-1", "email": "a@x.com"}]})[1]
    company = first.api("POST", "/companies", {"companies": [{"externalId": "co-1", "domain": "acme.com"}]})[
        1
    ]
    contact_id, company_id = contact["results"][0]["crmId"], company["results"][0]["crmId"]
    first.api("PUT", "/contacts", {"contacts": [{"crmId": contact_id, "ownerId": "user-123"}]})
    link = first.api(
        "POST", "/associations", {"associations": [{"contactCRMId": contact_id, "companyCRMId": company_id}]}
    )
    activity = first.api("POST", "/activities", {"type": "EMAIL", "subject": "[1/3] x"})[1]
    assert link[1]["created"] == 1
    os.killpg(first.proc.pid, signal.SIGKILL)  # no shutdown code runs, in any process
    first.proc.communicate(timeout=10)
    assert first.proc.returncode == -signal.SIGKILL

    second = running(
        "--api-key", CANARY, "--db", str(db), "--admin-token", "adm-token-1", "--workers", workers
    )
    tasks = second.api("POST", "/tasks/batch", {"ids": task_ids})[1]
    assert [task["id"] for task in tasks] == task_ids
    assert tasks[0] == completed
    assert [task["completed"] for task in tasks[:4]] == [True, True, True, False]
    synced = second.api("POST", "/contacts/sync", {"contacts": [{"externalId": "x", "email": "A@X.COM"}]})[1]
    assert synced["results"] == [{"externalId": "x", "crmId": contact_id}]
    records = second.call("GET", "/__admin/records", headers={"X-Admin-Token": "adm-token-1"})[1]
    assert records["contacts"][0]["ownerId"] == "user-123"
    assert records["activities"] == [activity]
    assert len(records["associations"]) == 1 and len(records["users"]) == 3
    assert (
        second.api(
            "POST",
            "/associations",
            {"associations": [{"contactCRMId": contact_id, "companyCRMId": company_id}]},
        )[1]["created"]
        == 0
    )


def test_a_host_beyond_loopback_gets_one_warning_line_naming_the_limits(running):
    mock = running("--api-key", CANARY, "--host", "0.0.0.0", "--request-timeout", "7")
    mock.url = mock.url.replace("0.0.0.0", "127.0.0.1")
    assert mock.api("GET", "/health") == (200, {"status": "ok"})
    code, _, err = mock.stop()
    assert code == 0
    (warning,) = [line for line in err.splitlines() if "warning" in line]
    assert warning.startswith("enginy-mock: warning: --host 0.0.0.0 is not a loopback address: ")
    assert "at most 1000 per worker" in warning and "closed 7 s after opening" in warning


# --- --workers: several processes, one port, one state -----------------------------------------------

needs_proc = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="telling the workers apart needs Linux's /proc"
)


def workers_of(mock: Running) -> list[int]:
    pid = mock.proc.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def answering_worker(worker_pids: list[int], server_port: int) -> dict[int, int]:
    """Client port -> the worker holding the server side of that open connection (from /proc)."""
    owner = {}
    for pid in worker_pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # an fd closed while we look
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owner[target[len("socket:[") : -1]] = pid
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            _, local, remote, state, *_, inode = line.split()[:10]
            established = state == "01"
            if established and int(local.rsplit(":", 1)[1], 16) == server_port and inode in owner:
                found[int(remote.rsplit(":", 1)[1], 16)] = owner[inode]
    return found


def exchange(conn: http.client.HTTPConnection, method: str, path: str, body=None, headers=None):
    sent = {"X-API-Key": CANARY, **(headers or {})}
    if body is not None:
        sent["Content-Type"] = "application/json"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=sent)
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"null")


@needs_proc
def test_two_workers_share_one_port_and_each_sees_every_write_at_once(running, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    mock = running(
        "--api-key", CANARY, "--admin-token", "adm-token-1", "--workers", "2", env={"TMPDIR": str(temp)}
    )
    workers = workers_of(mock)
    assert len(workers) == 2
    _, host, port = LISTENING.match(f"enginy-mock listening on {mock.url}").groups()
    admin = {"X-Admin-Token": "adm-token-1"}
    writer = http.client.HTTPConnection(host, int(port), timeout=10)
    status, task = exchange(writer, "POST", "/tasks", {"subject": "written once"})
    assert status == 201
    # Fresh connections, kept open so that /proc shows which worker holds each one. Each worker has
    # a socket of its own on the port and the kernel hashes every connection to one of them, so
    # all 40 land on one worker once in 2**39 runs. (With one shared socket, whichever worker woke
    # first took the connection, and made one after another they all went to one worker about one
    # run in ten.)
    readers = [http.client.HTTPConnection(host, int(port), timeout=10) for _ in range(40)]
    assert all(exchange(conn, "GET", f"/tasks/{task['id']}") == (200, task) for conn in readers)
    served_by = answering_worker(workers, int(port))
    assert {served_by[conn.sock.getsockname()[1]] for conn in readers} == set(workers)

    # Admin state is one state: a fault switched on through one worker bends the answers of both...
    status, _ = exchange(writer, "PUT", "/__admin/faults", {"faults": ["TASK-GET-UNKNOWN"]}, admin)
    assert status == 200
    assert {exchange(conn, "GET", "/tasks/task-none")[0] for conn in readers} == {200}
    # ...every worker shows the one journal of both...
    journals = [
        exchange(conn, "GET", "/__admin/journal", headers=admin)[1]["entries"] for conn in readers[:8]
    ]
    assert all(journal == journals[0] for journal in journals) and len(journals[0]) == 81
    # ...and a reset through one worker empties the records for both.
    assert exchange(writer, "POST", "/__admin/reset", headers=admin)[0] == 200
    exchange(writer, "PUT", "/__admin/faults", {"faults": []}, admin)
    assert {exchange(conn, "GET", f"/tasks/{task['id']}")[0] for conn in readers} == {404}
    for conn in [writer, *readers]:
        conn.close()

    code, out, err = mock.stop()
    assert (code, out) == (0, "enginy-mock stopped\n")  # the listening line was printed once
    assert f"enginy-mock workers: 2 (pids {workers[0]} {workers[1]})" in err and "Traceback" not in err
    assert list(temp.iterdir()) == []  # the temporary store and state are gone


def test_two_workers_x_8_threads_x_200_creates_give_1600_distinct_readable_tasks(running):
    mock = running("--api-key", CANARY, "--workers", "2", "--log-level", "warning")
    _, host, port = LISTENING.match(f"enginy-mock listening on {mock.url}").groups()
    ids: list[list[str]] = [[] for _ in range(8)]

    def work(slot: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        for n in range(200):
            status, task = exchange(conn, "POST", "/tasks", {"subject": f"{slot}-{n}"})
            assert status == 201, task
            ids[slot].append(task["id"])
        conn.close()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))  # re-raises a failed assertion here
    flat = [task_id for chunk in ids for task_id in chunk]
    assert len(flat) == len(set(flat)) == 1600
    status, tasks = mock.api("POST", "/tasks/batch", {"ids": flat})
    assert status == 200 and [task["id"] for task in tasks] == flat
    assert {task["subject"] for task in tasks} == {f"{s}-{n}" for s in range(8) for n in range(200)}


@needs_proc
def test_a_worker_that_dies_is_reported_and_replaced_and_nothing_is_lost(running):
    mock = running("--api-key", CANARY, "--workers", "2")
    _, task = mock.api("POST", "/tasks", {"subject": "outlives a worker"})
    victim = workers_of(mock)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while victim in workers_of(mock) or len(workers_of(mock)) != 2:
        assert time.monotonic() < deadline, "the dead worker was not replaced"
        time.sleep(0.05)
    assert all(mock.api("GET", f"/tasks/{task['id']}") == (200, task) for _ in range(10))
    code, _, err = mock.stop()
    assert code == 0
    assert re.search(
        rf"^enginy-mock: worker \d \(pid {victim}\) was killed by SIGKILL; started another$", err, re.M
    )


@pytest.mark.skipif(shutil.which("enginy-mock") is None, reason="the console script is not installed")
def test_the_console_script_is_installed():
    result = subprocess.run(
        ["enginy-mock", "--list-faults", "--json"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and len(json.loads(result.stdout)) == len(FAULTS)
