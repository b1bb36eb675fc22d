"""The GitHub Action (action.yml): valid metadata, the promises its users rely on, and its shell steps
run for real against the bundled mock.

The run step and the summary step are executed by bash the way the runner executes them (local_ci.py):
their `env:` resolved from the inputs, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY as files. The install step
only pip-installs the package, so `suite_bin` (the suite of this test environment) stands in for its
output; the `uses:` steps are GitHub's own and are checked by what they are given.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ci.local_ci import (
    REPO,
    StepRun,
    action_inputs,
    check_jsonschema,
    fenced_blocks,
    load_yaml,
    run_step,
    step_by_id,
    step_by_name,
)
from tests.conformance.conftest import free_port

ACTION_FILE = REPO / "action.yml"
ACTION = load_yaml(ACTION_FILE)
STEPS: list[dict[str, Any]] = ACTION["runs"]["steps"]
SCRIPTS = {step["name"]: step["run"] for step in STEPS if "run" in step}
REPORTS = "enginy-conformance-reports"  # the report-dir input's default


def one_line(script: str) -> str:
    """A script with its line continuations joined and its whitespace collapsed, for matching."""
    return " ".join(script.replace("\\\n", " ").split())


# --- the metadata ---------------------------------------------------------------------------------


def test_action_yml_is_valid_github_action_metadata():
    done = check_jsonschema("vendor.github-actions", ACTION_FILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_metadata_schema_rejects_a_composite_output_without_its_value(tmp_path):
    # The check above can fail: the same schema refuses an action that is wrong in a way GitHub refuses.
    broken = copy.deepcopy(ACTION)
    del broken["outputs"]["verdict"]["value"]
    (tmp_path / "action.yml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    done = check_jsonschema("vendor.github-actions", tmp_path / "action.yml")
    assert done.returncode == 1
    assert "'value' is a required property" in done.stdout


def test_the_documented_workflows_are_valid_and_give_only_inputs_the_action_has(tmp_path):
    docs = (REPO / "docs" / "ci-gating.md").read_text(encoding="utf-8")
    blocks = [block for block in fenced_blocks(docs, "yaml") if "uses: enginy/enginy-crm-contract@" in block]
    workflows = [block for block in blocks if isinstance(yaml.safe_load(block), dict)]
    assert workflows, "docs/ci-gating.md shows no whole workflow using the action"
    steps: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        parsed = yaml.safe_load(block)
        if isinstance(parsed, dict):
            path = tmp_path / f"workflow-{index}.yml"
            path.write_text(block, encoding="utf-8")
            done = check_jsonschema("vendor.github-workflows", path)
            assert done.returncode == 0, done.stdout + done.stderr
            steps += [step for job in parsed["jobs"].values() for step in job.get("steps", [])]
        else:  # a few steps, shown on their own
            steps += parsed
    uses = [step for step in steps if str(step.get("uses", "")).startswith("enginy/enginy-crm-contract@")]
    assert len(uses) == len(blocks)
    for step in uses:
        assert set(step.get("with", {})) <= set(ACTION["inputs"]), step
        assert {"base-url", "api-key"} <= set(step["with"]), step


# --- what users rely on, read from the file ---------------------------------------------------------


def test_the_key_reaches_the_suite_only_as_ENGINY_API_KEY_of_the_run_step():
    key_input = re.compile(r"inputs\.api-key(?![\w-])")
    given = [
        (step.get("id", step.get("name")), block, name)
        for step in STEPS
        for block in ("env", "with")
        for name, value in step.get(block, {}).items()
        if key_input.search(str(value))
    ]
    assert given == [("run", "env", "ENGINY_API_KEY")]
    assert step_by_id(ACTION, "run")["env"]["ENGINY_API_KEY"] == "${{ inputs.api-key }}"
    # No script names the key, so none can echo it, pass it as --api-key or trace it with set -x.
    for name, script in SCRIPTS.items():
        assert not re.search(r"ENGINY_API_KEY(?!_HEADER)|--api-key(?!-header)|set -x|inputs\.", script), name


def test_no_expression_is_pasted_into_a_script():
    # ${{ }} inside run: is substituted into the script text before bash reads it (script injection).
    assert [name for name, script in SCRIPTS.items() if "${{" in script] == []


def test_the_reports_are_uploaded_and_summarised_after_the_run_whatever_its_verdict():
    order = [step.get("id", step.get("name")) for step in STEPS]
    (upload,) = [step for step in STEPS if str(step.get("uses", "")).startswith("actions/upload-artifact@")]
    summary = step_by_name(ACTION, "Write the job summary")
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "${{ inputs.report-dir }}"
    assert summary["if"] == "always()"
    assert '>> "$GITHUB_STEP_SUMMARY"' in summary["run"]
    assert order.index("run") < order.index(summary["name"]) and order.index("run") < STEPS.index(upload)


def test_the_outputs_are_the_run_steps():
    assert {name: spec["value"] for name, spec in ACTION["outputs"].items()} == {
        "verdict": "${{ steps.run.outputs.verdict }}",
        "exit-code": "${{ steps.run.outputs.exit-code }}",
    }


def test_the_suite_is_installed_from_the_actions_checkout_with_its_constraints_in_a_venv_of_its_own():
    setup = STEPS[0]
    assert setup["uses"].startswith("actions/setup-python@")
    # The job's own python, pip and PATH stay as the job set them.
    assert setup["with"]["update-environment"] is False
    install = step_by_id(ACTION, "install")
    assert install["env"] == {
        "ACTION_PATH": "${{ github.action_path }}",
        "SUITE_PYTHON": "${{ steps." + setup["id"] + ".outputs.python-path }}",
    }
    script = one_line(install["run"])
    assert '"$SUITE_PYTHON" -m venv "$venv"' in script
    assert '"$venv/bin/python" -m pip install' in script
    assert '-c "$ACTION_PATH/constraints.txt" "$ACTION_PATH"' in script
    assert (REPO / "constraints.txt").is_file() and (REPO / "pyproject.toml").is_file()
    assert step_by_id(ACTION, "run")["env"]["SUITE_BIN"] == "${{ steps.install.outputs.bin }}"


# --- the shell steps, run ---------------------------------------------------------------------------


def run_action(
    given: dict[str, str], *, suite_bin: Path, runner_env: dict[str, str], tmp_path: Path
) -> tuple[StepRun, StepRun, str]:
    """The run step, then the summary step, as the runner runs them in the workspace tmp_path/workspace.

    Returns both runs and what the job summary shows.
    """
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    contexts: dict[str, Any] = {
        "inputs": action_inputs(ACTION, given),
        "github": {"action_path": str(REPO)},
        "steps": {"install": {"outputs": {"bin": str(suite_bin)}}},
    }
    common = {"base_env": runner_env, "cwd": workspace, "runner_temp": tmp_path / "runner-temp"}
    run = run_step(step_by_id(ACTION, "run"), contexts, summary=tmp_path / "run-summary.md", **common)
    contexts["steps"]["run"] = {"outputs": run.outputs}
    job_summary = tmp_path / "job-summary.md"
    job_summary.touch()
    published = run_step(
        step_by_name(ACTION, "Write the job summary"), contexts, summary=job_summary, **common
    )
    return run, published, job_summary.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("faults", "args", "code", "verdict"),
    [
        pytest.param((), "--only HEALTH-OK", 0, "passed", id="0-passed"),
        pytest.param(("TASK-BATCH-ROUTE",), "--only TASK-BATCH-ROUTE", 1, "failed", id="1-must-rule-failed"),
        pytest.param((), "--only TASK-GET --max-writes 0", 3, "incomplete", id="3-not-judged"),
    ],
)
def test_the_step_exits_with_the_suites_code_and_the_job_summary_shows_its_summary(
    mock, suite_bin, runner_env, tmp_path, faults, args, code, verdict
):
    mock.switch(*faults)
    run, published, job_summary = run_action(
        {"base-url": mock.url, "api-key": mock.key, "args": args},
        suite_bin=suite_bin,
        runner_env=runner_env,
        tmp_path=tmp_path,
    )
    assert run.returncode == code, run.stdout + run.stderr
    assert run.outputs == {"verdict": verdict, "exit-code": str(code)}
    reports = tmp_path / "workspace" / REPORTS
    report = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    assert (report["verdict"], report["exit_code"]) == (verdict, code)
    assert report["profile"] == "quick"  # the profile input's default reached the suite
    assert published.returncode == 0, published.stderr
    assert job_summary == (reports / "summary.md").read_text(encoding="utf-8")
    shown = [run.stdout, run.stderr, published.stdout, published.stderr, job_summary, *run.outputs.values()]
    assert not [text for text in shown if mock.key in text]


def test_the_baseline_input_lets_an_accepted_failure_pass(mock, suite_bin, runner_env, tmp_path):
    mock.switch("TASK-BATCH-ROUTE")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "known.json").write_text(
        json.dumps({"version": 1, "accepted": [{"rule": "TASK-BATCH-ROUTE", "reason": "fixed in CRM-812"}]}),
        encoding="utf-8",
    )
    run, _, job_summary = run_action(
        {
            "base-url": mock.url,
            "api-key": mock.key,
            "baseline": "known.json",
            "args": "--only TASK-BATCH-ROUTE",
        },
        suite_bin=suite_bin,
        runner_env=runner_env,
        tmp_path=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs == {"verdict": "passed", "exit-code": "0"}
    assert "accepted" in job_summary


def test_a_run_that_judges_nothing_exits_2_and_never_shows_an_earlier_runs_summary(
    suite_bin, runner_env, tmp_path
):
    reports = tmp_path / "workspace" / REPORTS
    reports.mkdir(parents=True)
    (reports / "summary.md").write_text("## ✅ Enginy conformance: PASSED (earlier)\n", encoding="utf-8")
    (reports / "report.json").write_text(json.dumps({"verdict": "passed", "exit_code": 0}), encoding="utf-8")
    run, published, job_summary = run_action(
        {"base-url": f"http://127.0.0.1:{free_port()}", "api-key": "not-listened-to"},
        suite_bin=suite_bin,
        runner_env=runner_env,
        tmp_path=tmp_path,
    )
    assert run.returncode == 2
    assert "connection refused" in run.stderr
    assert run.outputs == {"verdict": "error", "exit-code": "2"}
    assert published.returncode == 0
    assert "PASSED" not in job_summary
    assert "no verdict: the run wrote no report (exit 2)" in job_summary


def test_the_summary_says_the_suite_did_not_run_when_an_earlier_step_failed(runner_env, tmp_path):
    # The install step failed: the run step never ran, so it set no outputs.
    contexts = {"inputs": action_inputs(ACTION, {}), "steps": {}}
    job_summary = tmp_path / "job-summary.md"
    job_summary.touch()
    published = run_step(
        step_by_name(ACTION, "Write the job summary"),
        contexts,
        base_env=runner_env,
        cwd=tmp_path,
        summary=job_summary,
        runner_temp=tmp_path / "runner-temp",
    )
    assert published.returncode == 0
    assert "the suite did not run" in job_summary.read_text(encoding="utf-8")


def test_an_empty_report_dir_is_a_usage_error_not_a_failed_rule(suite_bin, runner_env, tmp_path):
    run, _, _ = run_action(
        {"base-url": "http://127.0.0.1:9", "api-key": "k", "report-dir": ""},
        suite_bin=suite_bin,
        runner_env=runner_env,
        tmp_path=tmp_path,
    )
    assert run.returncode == 2
    assert run.outputs == {"verdict": "error", "exit-code": "2"}
    assert "::error::The report-dir input is empty" in run.stdout


def test_extra_args_may_span_lines(mock, suite_bin, runner_env, tmp_path):
    mock.switch()
    run, _, _ = run_action(
        {"base-url": mock.url, "api-key": mock.key, "args": "--only HEALTH-OK\n  --timeout 7\n"},
        suite_bin=suite_bin,
        runner_env=runner_env,
        tmp_path=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / "workspace" / REPORTS / "report.json").read_text(encoding="utf-8"))
    assert (report["settings"]["only"], report["settings"]["timeout"]) == (["HEALTH-OK"], 7.0)


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        # A file named HEALTH-OK sits in the workspace: globbed, the pattern would select that rule.
        pytest.param("--only HEALTH-O?", "Unknown rule id HEALTH-O?", id="no-glob"),
        pytest.param(
            "--only HEALTH-OK $(touch pwned) `touch pwned`", "unexpected extra argument", id="no-code"
        ),
    ],
)
def test_extra_args_are_only_split_never_expanded_or_run(suite_bin, runner_env, tmp_path, args, refused):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "HEALTH-OK").touch()
    run, _, _ = run_action(
        {"base-url": "http://127.0.0.1:9", "api-key": "k", "args": args},
        suite_bin=suite_bin,
        runner_env=runner_env,
        tmp_path=tmp_path,
    )
    assert run.returncode == 2
    assert refused in run.stderr
    assert not (workspace / "pwned").exists()
