"""The GitLab CI template (ci/gitlab/enginy-conformance.gitlab-ci.yml): valid CI configuration, what a
job extending it gets, and its script run for real against the bundled mock.

GitLab's schema does not look inside hidden jobs (keys starting with a dot may hold anything), so the
template is also validated the way GitLab sees it in use: as the job a pipeline gets from `extends:`.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ci.local_ci import REPO, check_jsonschema, extend, fenced_blocks, load_yaml, run_gitlab_lines

TEMPLATE_FILE = REPO / "ci" / "gitlab" / "enginy-conformance.gitlab-ci.yml"
TEMPLATE = load_yaml(TEMPLATE_FILE)
HIDDEN = ".enginy-conformance"
JOB: dict[str, Any] = TEMPLATE[HIDDEN]


def documented_pipelines() -> list[dict[str, Any]]:
    docs = (REPO / "docs" / "ci-gating.md").read_text(encoding="utf-8")
    return [yaml.safe_load(block) for block in fenced_blocks(docs, "yaml") if f"extends: {HIDDEN}" in block]


def as_used(pipeline: dict[str, Any]) -> dict[str, Any]:
    """A pipeline that includes the template, with every job that extends the hidden job expanded."""
    expanded = {key: value for key, value in pipeline.items() if key != "include"}
    for name, job in pipeline.items():
        if isinstance(job, dict) and job.get("extends") == HIDDEN:
            expanded[name] = extend(JOB, job)
    return expanded


def write(tmp_path: Path, name: str, content: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


# --- validity -------------------------------------------------------------------------------------


def test_the_template_is_valid_gitlab_ci_configuration():
    done = check_jsonschema("vendor.gitlab-ci", TEMPLATE_FILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_its_hidden_job_is_a_valid_job_once_extended(tmp_path):
    done = check_jsonschema("vendor.gitlab-ci", write(tmp_path, "job.yml", {"enginy-conformance": JOB}))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_hidden_job_passes_as_hidden_but_not_once_extended(tmp_path):
    # Why the check above is needed, and proof that it can fail.
    broken = copy.deepcopy(JOB)
    broken["artifacts"]["when"] = "sometimes"
    as_hidden = check_jsonschema("vendor.gitlab-ci", write(tmp_path, "hidden.yml", {HIDDEN: broken}))
    assert as_hidden.returncode == 0
    done = check_jsonschema("vendor.gitlab-ci", write(tmp_path, "job.yml", {"enginy-conformance": broken}))
    assert done.returncode == 1
    assert "'sometimes' is not one of" in done.stdout


def test_the_documented_pipelines_are_valid_and_set_only_variables_the_template_has(tmp_path):
    pipelines = documented_pipelines()
    assert pipelines, f"docs/ci-gating.md shows no pipeline that extends {HIDDEN}"
    for index, pipeline in enumerate(pipelines):
        assert "include" in pipeline
        for path in (
            write(tmp_path, f"as-written-{index}.yml", pipeline),
            write(tmp_path, f"as-used-{index}.yml", as_used(pipeline)),
        ):
            done = check_jsonschema("vendor.gitlab-ci", path)
            assert done.returncode == 0, done.stdout + done.stderr
        for job in pipeline.values():
            if isinstance(job, dict) and job.get("extends") == HIDDEN:
                assert set(job.get("variables", {})) <= set(JOB["variables"]), job


# --- what a job extending it gets -------------------------------------------------------------------


def test_the_reports_are_kept_and_junit_published_whatever_the_outcome():
    artifacts = JOB["artifacts"]
    report_dir = JOB["variables"]["ENGINY_REPORT_DIR"]
    assert artifacts["when"] == "always"
    # Literal paths (expose_as ignores paths holding variables), the same directory the suite writes to.
    assert artifacts["paths"] == [f"{report_dir}/"]
    assert artifacts["reports"]["junit"] == f"{report_dir}/junit.xml"
    assert any("summary.md" in line for line in JOB["after_script"])


def test_there_is_a_variable_for_each_input_but_none_for_the_key():
    assert {
        "ENGINY_BASE_URL",
        "ENGINY_PROFILE",
        "ENGINY_BASELINE",
        "ENGINY_REPORT_DIR",
        "ENGINY_CONFORMANCE_ARGS",
    } <= set(JOB["variables"])
    # The key comes from the project's masked CI/CD variable; a value in the file would be no secret.
    assert "ENGINY_API_KEY" not in JOB["variables"]
    for line in [*JOB["script"], *JOB["after_script"]]:
        assert not re.search(r"ENGINY_API_KEY(?!_HEADER)|--api-key(?!-header)|set -x", line), line


# --- the script, run ---------------------------------------------------------------------------------


def run_lines(
    lines: list[str], env: dict[str, str], cwd: Path, tmp_path: Path, shell: str = "bash"
) -> subprocess.CompletedProcess[str]:
    return run_gitlab_lines(lines, shell=shell, env=env, cwd=cwd, scratch=tmp_path / "scratch")


def job_env(runner_env: dict[str, str], suite_bin: Path, **variables: str) -> dict[str, str]:
    """What the job's shell sees: the template's variables, the extending job's, the project's key.

    ENGINY_CONFORMANCE_INSTALL is emptied: the suite is already on PATH, as in an image that holds it.
    """
    return {
        **runner_env,
        "PATH": f"{suite_bin}:{runner_env['PATH']}",
        **{name: str(value) for name, value in JOB["variables"].items()},
        "ENGINY_CONFORMANCE_INSTALL": "",
        **variables,
    }


@pytest.mark.parametrize(
    ("shell", "faults", "args", "code", "verdict"),
    [
        pytest.param("bash", (), "--only HEALTH-OK", 0, "passed", id="bash-0"),
        pytest.param("bash", ("TASK-BATCH-ROUTE",), "--only TASK-BATCH-ROUTE", 1, "failed", id="bash-1"),
        pytest.param("bash", (), "--only TASK-GET --max-writes 0", 3, "incomplete", id="bash-3"),
        # GitLab falls back to sh in an image without bash.
        pytest.param("sh", ("TASK-BATCH-ROUTE",), "--only TASK-BATCH-ROUTE", 1, "failed", id="sh-1"),
    ],
)
def test_the_job_exits_with_the_suites_code_and_leaves_junit_where_artifacts_look(
    mock, suite_bin, runner_env, tmp_path, shell, faults, args, code, verdict
):
    mock.switch(*faults)
    project = tmp_path / "project"
    project.mkdir()
    env = job_env(
        runner_env, suite_bin, ENGINY_BASE_URL=mock.url, ENGINY_API_KEY=mock.key, ENGINY_CONFORMANCE_ARGS=args
    )
    done = run_lines(JOB["script"], env, project, tmp_path, shell)
    assert done.returncode == code, done.stdout + done.stderr
    reports = project / JOB["variables"]["ENGINY_REPORT_DIR"]
    assert json.loads((reports / "report.json").read_text(encoding="utf-8"))["verdict"] == verdict
    assert (project / JOB["artifacts"]["reports"]["junit"]).is_file()
    after = run_lines(JOB["after_script"], env, project, tmp_path, shell)
    summary = (reports / "summary.md").read_text(encoding="utf-8")
    assert after.returncode == 0 and summary in after.stdout
    assert mock.key not in done.stdout + done.stderr + after.stdout


def test_a_job_that_judges_nothing_exits_2_and_says_there_is_no_summary(suite_bin, runner_env, tmp_path):
    env = job_env(runner_env, suite_bin, ENGINY_BASE_URL="http://127.0.0.1:9", ENGINY_API_KEY="k")
    done = run_lines(JOB["script"], env, tmp_path, tmp_path)
    after = run_lines(JOB["after_script"], env, tmp_path, tmp_path)
    assert done.returncode == 2
    assert after.returncode == 0 and "wrote no summary.md" in after.stdout


def test_the_install_line_passes_constraints_only_when_given_and_never_globs(runner_env, tmp_path):
    # A stand-in python records the arguments pip would get.
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "python").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGV_FILE"\n', encoding="utf-8")
    (fake / "python").chmod(0o755)
    spec = "enginy-crm-contract==0.1.0*"
    (tmp_path / "enginy-crm-contract==0.1.0.whl").touch()  # what the spec would match, globbed
    install_lines = JOB["script"][:-1]  # everything before the suite runs
    argv = tmp_path / "argv"
    for constraints in ("", "https://example.invalid/constraints.txt"):
        env = {
            **runner_env,
            "PATH": f"{fake}:{runner_env['PATH']}",
            "ARGV_FILE": str(argv),
            "ENGINY_CONFORMANCE_INSTALL": spec,
            "ENGINY_CONFORMANCE_CONSTRAINTS": constraints,
        }
        done = run_lines(install_lines, env, tmp_path, tmp_path)
        assert done.returncode == 0, done.stderr
        words = argv.read_text(encoding="utf-8").splitlines()
        assert words[:3] == ["-m", "pip", "install"]
        if constraints:
            assert words[-3:] == ["--constraint", constraints, spec]
        else:
            assert "--constraint" not in words and words[-1] == spec


def test_the_extra_args_are_never_globbed(suite_bin, runner_env, tmp_path):
    (tmp_path / "HEALTH-OK").touch()  # globbed, the pattern below would select that rule
    env = job_env(
        runner_env,
        suite_bin,
        ENGINY_BASE_URL="http://127.0.0.1:9",
        ENGINY_API_KEY="k",
        ENGINY_CONFORMANCE_ARGS="--only HEALTH-O?",
    )
    done = run_lines(JOB["script"], env, tmp_path, tmp_path)
    assert done.returncode == 2
    assert "Unknown rule id HEALTH-O?" in done.stderr
