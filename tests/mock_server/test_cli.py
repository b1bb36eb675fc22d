"""The enginy-mock command: help, fault listing, usage errors, and real runs as a subprocess."""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mock_server.cli import cli
from mock_server.faults import FAULTS

CANARY = "canary-key-7f3a9c"
LISTENING = re.compile(r"^enginy-mock listening on (http://127\.0\.0\.1:(\d+))$")


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


def start(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Running:
    """Start ``python -m mock_server`` and wait for its one listening line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
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
    assert "Traceback" not in err


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
    }
    mock = running(env=env)
    assert mock.call("GET", "/health", headers={"X-Crm-Key": CANARY})[0] == 200
    assert mock.call("GET", "/users", headers={"X-Crm-Key": CANARY})[0] == 404
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


def test_acknowledged_sqlite_writes_survive_kill_9(running, tmp_path):
    db = tmp_path / "mock.db"
    first = running("--api-key", CANARY, "--db", str(db), "--admin-token", "adm-token-1")
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
    first.proc.kill()  # SIGKILL: no shutdown code runs
    first.proc.communicate(timeout=10)
    assert first.proc.returncode == -signal.SIGKILL

    second = running("--api-key", CANARY, "--db", str(db), "--admin-token", "adm-token-1")
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


@pytest.mark.skipif(shutil.which("enginy-mock") is None, reason="the console script is not installed")
def test_the_console_script_is_installed():
    result = subprocess.run(
        ["enginy-mock", "--list-faults", "--json"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and len(json.loads(result.stdout)) == len(FAULTS)
