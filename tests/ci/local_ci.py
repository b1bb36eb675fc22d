"""The shell parts of the CI definitions, run here the way GitHub's and GitLab's runners run them.

Only the shell: `uses:` steps (actions/setup-python, actions/upload-artifact) are GitHub's code, so the
tests check what the action hands them, not what they do. What this module fakes is small and named:
the `${{ context.path }}` expressions the action's `env:` blocks use (anything more is refused, so a
test never runs a script with an expression guessed at), the files a runner gives a step
(GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, RUNNER_TEMP), and GitLab's `extends:` (hashes merged, the
extending job's keys winning, lists replaced).
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]

# GitHub runs `shell: bash` steps as `bash --noprofile --norc -eo pipefail {0}`; GitLab's runner runs a
# job's script lines in one bash with `set -eo pipefail` (or sh -e in an image without bash).
GITHUB_BASH = ("bash", "--noprofile", "--norc", "-eo", "pipefail")
GITLAB_SHELLS = {"bash": ("bash", "--noprofile", "--norc", "-eo", "pipefail"), "sh": ("sh", "-e")}

_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
_CONTEXT_PATH = re.compile(r"[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)+")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def resolve(value: str, contexts: Mapping[str, Any]) -> str:
    """The string GitHub makes of `value`: each `${{ a.b.c }}` replaced by that context value.

    A path with nothing at its end is empty, as GitHub makes it (an output a skipped step never set).
    """

    def one(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if not _CONTEXT_PATH.fullmatch(expression):
            raise ValueError(f"not a plain context path, which these tests cannot evaluate: {expression!r}")
        found: Any = contexts
        for part in expression.split("."):
            found = found.get(part) if isinstance(found, Mapping) else None
        return "" if found is None else str(found)

    return _EXPRESSION.sub(one, value)


def action_inputs(action: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """The `inputs` context of a composite action: what the workflow gave, else each input's default."""
    unknown = set(given) - set(action["inputs"])
    if unknown:
        raise ValueError(f"the action has no inputs {sorted(unknown)}")
    return {name: given.get(name, str(spec.get("default", ""))) for name, spec in action["inputs"].items()}


def step_by_id(action: Mapping[str, Any], step_id: str) -> dict[str, Any]:
    (step,) = [step for step in action["runs"]["steps"] if step.get("id") == step_id]
    return dict(step)


def step_by_name(action: Mapping[str, Any], name: str) -> dict[str, Any]:
    (step,) = [step for step in action["runs"]["steps"] if step.get("name") == name]
    return dict(step)


def parse_outputs(text: str) -> dict[str, str]:
    """A GITHUB_OUTPUT file: `name=value` lines, and `name<<DELIMITER` ... `DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block: list[str] = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            else:
                raise ValueError(f"output {name!r} has no closing {delimiter!r}")
            outputs[name] = "\n".join(block)
        elif line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@dataclass(frozen=True)
class StepRun:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    env: dict[str, str]  # the step's own env:, resolved


def run_step(
    step: Mapping[str, Any],
    contexts: Mapping[str, Any],
    *,
    base_env: Mapping[str, str],
    cwd: Path,
    summary: Path,
    runner_temp: Path,
    timeout: float = 60,
) -> StepRun:
    """Run one `shell: bash` step of a composite action as the runner does, in `cwd` (the workspace)."""
    if step.get("shell") != "bash":
        raise ValueError(f"step {step.get('name')!r} is not a bash step")
    runner_temp.mkdir(parents=True, exist_ok=True)
    index = len(list(runner_temp.glob("step-*.sh")))
    script = runner_temp / f"step-{index}.sh"
    script.write_text(step["run"], encoding="utf-8")
    output_file = runner_temp / f"step-{index}.output"
    output_file.touch()
    step_env = {name: resolve(str(value), contexts) for name, value in step.get("env", {}).items()}
    env = {
        **base_env,
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(cwd),
        "GITHUB_OUTPUT": str(output_file),
        "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(runner_temp),
        **step_env,
    }
    done = subprocess.run(
        [*GITHUB_BASH, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    outputs = parse_outputs(output_file.read_text(encoding="utf-8"))
    return StepRun(done.returncode, done.stdout, done.stderr, outputs, step_env)


def extend(template: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """GitLab's `extends:`: the template's keys, hashes merged deeply with the job's, the job winning."""
    merged = copy.deepcopy(dict(template))
    for key, value in job.items():
        if key == "extends":
            continue
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = extend(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def run_gitlab_lines(
    lines: list[str], *, shell: str, env: Mapping[str, str], cwd: Path, scratch: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `script:` (or `after_script:`) lines in one shell, stopping at the first that fails."""
    scratch.mkdir(parents=True, exist_ok=True)
    script = scratch / f"gitlab-script-{len(list(scratch.glob('gitlab-script-*')))}.sh"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return subprocess.run(
        [*GITLAB_SHELLS[shell], str(script)],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with one of the schemas it vendors: nothing is downloaded."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def fenced_blocks(markdown: str, language: str) -> list[str]:
    """The ```language blocks of a Markdown text, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
