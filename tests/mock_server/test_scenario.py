"""Scenario files: the shipped examples, one line per mistake, precedence, and a real run."""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from mock_server.cli import cli, resolve_settings
from mock_server.scenario import SCENARIO_SCHEMA_PATH, Scenario, ScenarioError, load_scenario, parse_scenario

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples" / "scenarios").glob("*.yaml"))
CANARY = "canary-key-41c9e2"


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, text))
    assert str(caught.value) == "\n".join(caught.value.problems)
    return [line.removeprefix(f"{tmp_path / 'scenario.yaml'}: ") for line in caught.value.problems]


def mock_from(make_mock, scenario: Scenario, **changes):
    """An in-process mock configured as the scenario says (make_mock calls fault_specs ``faults``)."""
    settings = {**scenario.settings(), **changes}
    return make_mock(faults=settings.pop("fault_specs", ()), **settings)


# --- the examples ----------------------------------------------------------------------------------


def test_there_are_examples():
    assert {path.name for path in EXAMPLES} >= {
        "batch-route-shadowed.yaml",
        "slow-and-flaky.yaml",
        "legacy-auth-header.yaml",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_every_example_loads_and_describes_itself(path, make_mock):
    scenario = load_scenario(path)
    assert scenario.description
    mock = mock_from(make_mock, scenario)
    assert mock.admin("GET", "faults").status_code == 200


def test_batch_route_shadowed_example_reproduces_the_symptom(make_mock):
    mock = mock_from(make_mock, load_scenario(REPO / "examples/scenarios/batch-route-shadowed.yaml"))
    post = mock.client.simulate_post("/tasks/batch", json={"ids": ["task-1001"]})
    assert post.status_code == 405 and "POST" not in post.headers["allow"]
    patch = mock.client.simulate_patch("/tasks/batch", json={"ids": ["task-1001"], "completed": True})
    assert patch.status_code == 404 and patch.json["message"] == "No task exists with ID: batch"
    assert mock.client.simulate_get("/tasks/task-1001").json["subject"] == "Call back about the renewal"
    assert "fault TASK-BATCH-ROUTE" in mock.journal()[1]["why"]


def test_slow_and_flaky_example_is_slow_and_answers_some_503s(make_mock):
    scenario = load_scenario(REPO / "examples/scenarios/slow-and-flaky.yaml")
    assert scenario.fault_specs == ("error-rate:rate=0.25", "latency:ms=800,jitter=400")
    # Latency really sleeps; the journal line says how long without waiting for it here.
    mock = mock_from(make_mock, scenario, fault_specs=("error-rate:rate=0.25",))
    statuses = [mock.client.simulate_get("/health").status_code for _ in range(40)]
    assert set(statuses) == {200, 503}
    assert 4 <= statuses.count(503) <= 20
    # The fault seed fixes which ones fail: a second mock built the same way fails the same requests.
    again = mock_from(make_mock, scenario, fault_specs=("error-rate:rate=0.25",))
    assert [again.client.simulate_get("/health").status_code for _ in range(40)] == statuses
    records = mock.admin("GET", "records").json
    assert [c["id"] for c in records["contacts"]] == ["crm-contact-1"]


def test_legacy_auth_header_example_reads_its_own_header_and_answers_403(make_mock):
    mock = mock_from(make_mock, load_scenario(REPO / "examples/scenarios/legacy-auth-header.yaml"))
    assert mock.bare.simulate_get("/health", headers={"X-API-Key": mock.api_key}).status_code == 403
    assert mock.bare.simulate_get("/health", headers={"X-CRM-Token": mock.api_key}).status_code == 200
    assert mock.bare.simulate_get("/users", headers={"X-CRM-Token": mock.api_key}).status_code == 404


# --- the schema ------------------------------------------------------------------------------------


def test_the_schema_is_valid_and_documents_every_field():
    schema = json.loads(SCENARIO_SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    docs = (REPO / "docs" / "scenarios.md").read_text()
    for name, field in schema["properties"].items():
        assert field.get("description"), name
        assert f"`{name}`" in docs, f"docs/scenarios.md does not document {name}"


def test_the_docs_examples_say_what_the_mock_does(tmp_path, monkeypatch):
    docs = (REPO / "docs" / "scenarios.md").read_text()
    blocks = re.findall(r"```(yaml|text)\n(.*?)```", docs, re.DOTALL)
    good, bad, said = [text for _, text in blocks][:3]
    assert load_scenario(write(tmp_path, good)).description.startswith("Ticket 4711")
    write(tmp_path, bad)
    monkeypatch.chdir(tmp_path)
    command, *lines = said.strip().splitlines()
    assert command == "$ enginy-mock --api-key test-key --scenario scenario.yaml"
    result = CliRunner().invoke(cli, command.split()[2:], prog_name="enginy-mock")
    assert result.exit_code == 2 and result.stderr.splitlines() == lines


def test_the_schema_ships_as_package_data():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "scenario.schema.json" in pyproject["tool"]["setuptools"]["package-data"]["mock_server"]


# --- mistakes --------------------------------------------------------------------------------------


def test_the_brief_example_of_an_unknown_fault(tmp_path):
    text = "version: 1\nfaults:\n  - TASK-GET\n  - TASK-BATCH-ROUT\n"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, text))
    assert caught.value.problems == (
        f"{tmp_path / 'scenario.yaml'}: faults[1]: "
        "unknown fault 'TASK-BATCH-ROUT' (did you mean TASK-BATCH-ROUTE?)",
    )


def test_every_mistake_is_reported_one_line_each_in_file_order(tmp_path):
    text = """\
version: 2
descripton: typo
api_key_header: "X API"
faults:
  - TASK-BATCH-ROUTE
  - TASK-BATCH-ROUT
  - latency:ms=soon
  - {id: error-rate, params: {rate: 2}}
  - TASK-GET:x=1
  - TASK-BATCH-ROUTE
  - 5
  - {id: rate-limit, params: {rate: yes}}
  - nothing-like-it
latency: {ms: 100, jiter: 3}
fault_seed: abc
records:
  tasks:
    - subject: fine
      dueDate: 2024-01-15T10:00:00Z
    - subject: 5
    - 7
  widgets: []
  users: []
users: [{id: u1}]
max_body_bytes: 0
"""
    assert problems_of(tmp_path, text) == [
        "version: must be 1",
        "descripton: unknown field (did you mean description?)",
        "api_key_header: 'X API' is not a usable header name; use letters, digits and '-'",
        "faults[1]: unknown fault 'TASK-BATCH-ROUT' (did you mean TASK-BATCH-ROUTE?)",
        "faults[2]: latency: ms must be an integer, not 'soon'",
        "faults[3]: error-rate: rate must be at least 0 and at most 1",
        "faults[4]: fault TASK-GET takes no parameters; write just TASK-GET",
        "faults[5]: TASK-BATCH-ROUTE is already listed at faults[0]",
        "faults[6]: must be a string or a mapping, not an integer",
        "faults[7].params.rate: must be a number, not a string",
        "faults[8]: unknown fault 'nothing-like-it' (enginy-mock --list-faults lists them)",
        "latency.jiter: unknown field (did you mean jitter?)",
        "fault_seed: must be an integer, not a string",
        "records.tasks[1]: subject must be a string",
        "records.tasks[2]: must be a mapping, not an integer",
        "records.widgets: unknown kind 'widgets'; the kinds are tasks, contacts, companies, activities, "
        "associations",
        "records.users: users go at the top level (users: [...], or users: false)",
        "users[0]: name is required",
        "max_body_bytes: must be at least 1",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["the file is empty; a scenario starts with version: 1"]),
        ("- version: 1\n", ["must be a mapping, not a list"]),
        ("faults: []\n", ["version: is required (write version: 1 at the top)"]),
        ("version: 1\nfaults: TASK-GET\n", ["faults: must be a list, not a string"]),
        ("version: 1\nusers: yes\n", ["users: must be a list or true or false, not a string"]),
        ("version: 1\nlatency: -5\n", ["latency: must be at least 0"]),
        ("version: 1\nlatency: {jitter: 5}\n", ["latency.ms: is required"]),
        (
            "version: 1\nlatency: 5\nfaults: [latency]\n",
            ["latency: the latency fault is already listed at faults[0]; keep one"],
        ),
        ("version: 1\nlatency: 700000\n", ["latency: latency: ms must be at least 0 and at most 600000"]),
        ("version: 1\nfaults: ['']\n", ["faults[0]: must not be empty"]),
        ("version: 1\nfaults: [latncy]\n", ["faults[0]: unknown fault 'latncy' (did you mean latency?)"]),
        (
            "version: 1\nfaults: [error_rate]\n",
            ["faults[0]: unknown fault 'error_rate' (did you mean error-rate?)"],
        ),
        ("version: 1\nfaults: [{params: {}}]\n", ["faults[0].id: is required"]),
        (
            "version: 1\nrecords: {contacts: [{crmId: '', externalId: e}]}\n",
            ["records.contacts[0]: crmId must be a non-empty string"],
        ),
    ],
)
def test_single_mistakes(tmp_path, text, expected):
    assert problems_of(tmp_path, text) == expected


def test_fault_ids_ignore_case_like_the_command_line(tmp_path):
    scenario = load_scenario(write(tmp_path, "version: 1\nfaults: [task-get, LATENCY:ms=5]\n"))
    assert scenario.fault_specs == ("TASK-GET", "latency:ms=5,jitter=0")


def test_yaml_syntax_errors_name_the_line_and_column(tmp_path):
    (line,) = problems_of(tmp_path, "version: 1\nfaults: [TASK-GET\nlatency: 5\n")
    assert re.fullmatch(r"line \d+, column \d+: .+", line), line


def test_duplicate_keys_are_mistakes(tmp_path):
    assert problems_of(tmp_path, "version: 1\nfaults: []\nfaults: [TASK-GET]\n") == [
        "line 3: key 'faults' appears twice (YAML would silently keep the last)"
    ]


@pytest.mark.parametrize("field", ["api_key", "api_keys", "admin_token", "API_KEY"])
def test_keys_are_refused_without_echoing_them(tmp_path, field):
    (line,) = problems_of(tmp_path, f"version: 1\n{field}: {CANARY}\n")
    assert line.startswith(f"{field}: keys do not belong in a scenario file")
    assert "--api-key" in line and CANARY not in line


def test_unreadable_and_undecodable_files(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"version: 1\n\xff\xfe")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_scenario(binary)


def test_yaml_keeps_timestamps_as_text_and_only_true_false_as_booleans():
    scenario = parse_scenario(
        {"version": 1, "records": {"tasks": [{"subject": "no", "dueDate": "2024-01-15T10:00:00Z"}]}},
        source="x",
    )
    assert scenario.seed_data == {"tasks": [{"subject": "no", "dueDate": "2024-01-15T10:00:00Z"}]}


def test_what_the_file_sets_and_what_it_leaves_alone(tmp_path):
    bare = load_scenario(write(tmp_path, "version: 1\n"))
    assert bare.settings() == {}
    full = load_scenario(
        write(
            tmp_path,
            """\
version: 1
api_key_header: X-Crm-Key
faults: [{id: latency, params: {ms: 5}}, "TASK-GET"]
fault_seed: 3
records: {tasks: [{id: t-1, subject: s}]}
users: [{id: u-1, name: One}]
max_body_bytes: 1000
""",
        )
    )
    assert full.settings() == {
        "api_key_header": "X-Crm-Key",
        "fault_specs": ("latency:ms=5,jitter=0", "TASK-GET"),
        "fault_seed": 3,
        "seed_data": {"tasks": [{"id": "t-1", "subject": "s"}], "users": [{"id": "u-1", "name": "One"}]},
        "users_enabled": True,
        "max_body_bytes": 1000,
    }
    assert load_scenario(write(tmp_path, "version: 1\nusers: true\n")).settings() == {"users_enabled": True}
    assert load_scenario(write(tmp_path, "version: 1\nusers: false\n")).settings() == {"users_enabled": False}


# --- the command line ------------------------------------------------------------------------------


def test_a_bad_scenario_is_exit_2_with_one_line_per_mistake_and_no_traceback(tmp_path):
    path = write(tmp_path, "version: 1\nfaults: [TASK-BATCH-ROUT, latency:ms=x]\nmax_body_bytes: 0\n")
    result = CliRunner().invoke(cli, ["--api-key", "k", "--scenario", str(path)], prog_name="enginy-mock")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"enginy-mock: error: {path}: {problem}"
        for problem in (
            "faults[0]: unknown fault 'TASK-BATCH-ROUT' (did you mean TASK-BATCH-ROUTE?)",
            "faults[1]: latency: ms must be an integer, not 'x'",
            "max_body_bytes: must be at least 1",
        )
    ]
    assert "Traceback" not in result.output


def resolved(args: list[str], scenario: Scenario | None) -> dict:
    with cli.make_context("enginy-mock", ["--api-key", "k", *args]) as ctx:
        return resolve_settings(ctx, scenario)


FILE = Scenario(
    source="s.yaml",
    api_key_header="X-File-Key",
    fault_specs=("TASK-GET",),
    fault_seed=9,
    seed_data={"tasks": [{"subject": "from the file"}]},
    users_enabled=False,
    max_body_bytes=100,
)


def test_precedence_command_line_over_environment_over_file_over_defaults(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("ENGINY_MOCK_"):
            monkeypatch.delenv(name)
    assert resolved([], None) == {
        "api_key_header": "X-API-Key",
        "max_body_bytes": 5 * 1024 * 1024,
        "users_enabled": True,
        "seed_data": None,
        "fault_specs": (),
        "fault_seed": 0,
    }
    assert resolved([], FILE) == {
        "api_key_header": "X-File-Key",
        "max_body_bytes": 100,
        "users_enabled": False,
        "seed_data": {"tasks": [{"subject": "from the file"}]},
        "fault_specs": ("TASK-GET",),
        "fault_seed": 9,
    }
    seed = write(tmp_path, json.dumps({"users": []}), "seed.json")
    monkeypatch.setenv("ENGINY_MOCK_API_KEY_HEADER", "X-Env-Key")
    monkeypatch.setenv("ENGINY_MOCK_FAULT", "TASK-COMPLETE")
    explicit = resolved(
        ["--fault", "latency:ms=1", "--fault-seed", "0", "--seed-data", str(seed), "--max-body-bytes", "7"],
        FILE,
    )
    assert explicit == {
        "api_key_header": "X-Env-Key",  # environment over the file
        "max_body_bytes": 7,
        "users_enabled": False,  # the file's users: false stands: no flag turned users on
        "seed_data": {"users": []},  # --seed-data replaces the file's records and users
        "fault_specs": ("latency:ms=1",),  # the command line over the environment; replaces the list
        "fault_seed": 0,  # given explicitly, even though it equals the default
    }
    assert resolved(["--api-key-header", "X-Flag-Key"], FILE)["api_key_header"] == "X-Flag-Key"
    assert resolved([], FILE)["fault_specs"] == ("TASK-COMPLETE",)  # environment over the file
    assert resolved(["--no-users"], Scenario(source="s", users_enabled=True))["users_enabled"] is False


def test_a_real_run_with_a_scenario(tmp_path):
    """``python -m mock_server --scenario``: the file's header and faults apply, the key stays secret."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mock_server",
            "--port",
            "0",
            "--api-key",
            CANARY,
            "--admin-token",
            "admin-token-5150",
            "--scenario",
            str(REPO / "examples/scenarios/legacy-auth-header.yaml"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={key: value for key, value in os.environ.items() if not key.startswith("ENGINY_")},
    )
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=30), "no listening line"
        url = proc.stdout.readline().strip().rsplit(" ", 1)[1]

        def status(path: str, headers: dict[str, str]) -> int:
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(url + path, headers=headers), timeout=10
                ) as r:
                    return r.status
            except urllib.error.HTTPError as error:
                return error.code

        assert status("/health", {"X-CRM-Token": CANARY}) == 200
        assert status("/health", {"X-API-Key": CANARY}) == 403
        assert status("/users", {"X-CRM-Token": CANARY}) == 404
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "enginy-mock scenario: " in err and "(Key read from X-CRM-Token" in err
    assert CANARY not in out + err
