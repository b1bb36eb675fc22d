"""The container image (Dockerfile, .dockerignore): read with buildkit's own parser (the `dockerfile`
package), so the instructions checked are the ones `docker build` sees; then built and run against the
bundled mock where a Docker daemon is there to do it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import dockerfile
import pytest

from tests.ci.local_ci import REPO

INSTRUCTIONS = dockerfile.parse_file(str(REPO / "Dockerfile"))
# Names that must never be set in an image: the word list conformance.redaction scrubs settings by.
SECRET_NAME = re.compile(r"key|token|secret|passw|credential|auth", re.IGNORECASE)


def each(command: str) -> list[dockerfile.Command]:
    return [instruction for instruction in INSTRUCTIONS if instruction.cmd == command]


def env_pairs() -> dict[str, str]:
    pairs: dict[str, str] = {}
    for instruction in each("ENV") + each("ARG"):
        values = instruction.value
        if instruction.cmd == "ENV":
            pairs.update(zip(values[::2], values[1::2], strict=True))
        else:
            for value in values:
                name, _, default = value.partition("=")
                pairs[name] = default
    return pairs


# --- what the image is ------------------------------------------------------------------------------


def test_it_is_one_stage_on_slim_python_3_11():
    (base,) = each("FROM")
    slim_3_11 = r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?"
    assert re.fullmatch(slim_3_11, base.value[0]), base.original


def test_it_runs_as_a_non_root_user_it_creates():
    user = each("USER")[-1].value[0]
    uid = user.split(":", 1)[0]
    assert uid not in {"root", "0"}
    assert uid.isdigit(), "a numeric uid lets Kubernetes' runAsNonRoot verify the user"
    assert any(f"--uid {uid}" in run.value[0] for run in each("RUN"))


def test_the_entrypoint_is_the_suite_in_exec_form():
    (entrypoint,) = each("ENTRYPOINT")
    (cmd,) = each("CMD")
    # Exec form (JSON): the suite is the process signals reach, not a shell around it.
    assert (entrypoint.json, entrypoint.value) == (True, ("enginy-conformance",))
    assert (cmd.json, cmd.value) == (True, ("run",))


def test_reports_go_to_a_volume_the_user_owns():
    assert env_pairs()["ENGINY_REPORT_DIR"] == "/reports"
    assert "/reports" in each("VOLUME")[-1].value
    assert any(re.search(r"chown \S+ .*/reports\b", run.value[0]) for run in each("RUN"))


def test_no_secret_is_baked_in():
    assert [name for name in env_pairs() if SECRET_NAME.search(name)] == []
    assert each("ADD") == [], "COPY only: ADD would fetch URLs and unpack archives into the image"
    for instruction in INSTRUCTIONS:
        assert "ENGINY_API_KEY" not in instruction.original, instruction.original


def test_the_install_is_held_to_constraints_txt():
    (install,) = [run for run in each("RUN") if "pip install" in run.value[0]]
    match = re.search(r"(?:--constraint|-c) (\S+)", install.value[0])
    assert match, install.original
    copied = {
        f"{target.rstrip('/')}/{Path(source).name}" if target.endswith("/") else target
        for copy in each("COPY")
        for target in [copy.value[-1]]
        for source in copy.value[:-1]
    }
    assert match.group(1) in copied


# --- what goes into it -------------------------------------------------------------------------------


def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as Docker reads it: one pattern a line, `!` re-includes, the last match wins."""
    patterns = []
    for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!")).lstrip("/")
        if "[" in pattern:
            raise ValueError(f"character classes are not understood here: {line!r}")
        regex = ""
        for token in re.findall(r"\*\*/|\*\*|\*|\?|[^*?]+", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
        patterns.append((negate, re.compile(regex)))
    return patterns


def build_context() -> Iterator[str]:
    """The files `docker build .` sends: each is excluded when the last pattern matching it, or one of
    its parent directories, is not a `!` one."""
    patterns = dockerignore()

    def excluded(path: str) -> bool:
        parts = path.split("/")
        verdict = False
        for negate, regex in patterns:
            if any(regex.fullmatch("/".join(parts[: end + 1])) for end in range(len(parts))):
                verdict = not negate
        return verdict

    reincluding = [regex.pattern for negate, regex in patterns if negate]
    for root, directories, files in os.walk(REPO):
        relative = Path(root).relative_to(REPO).as_posix()
        prefix = "" if relative == "." else relative + "/"
        # Skip walking a directory nothing below can come back from (.git, a venv): fast, same answer.
        directories[:] = [
            name
            for name in directories
            if not excluded(prefix + name) or any(p.startswith(re.escape(prefix + name)) for p in reincluding)
        ]
        yield from (prefix + name for name in files if not excluded(prefix + name))


def test_the_build_context_holds_the_package_sources_and_nothing_else():
    context = set(build_context())
    assert {path.split("/", 1)[0] for path in context} == {
        "pyproject.toml",
        "constraints.txt",
        "README.md",
        "spec",
        "conformance",
        "mock_server",
    }
    assert not [path for path in context if "__pycache__" in path or path.endswith((".pyc", ".db"))]
    for copy in each("COPY"):
        for source in copy.value[:-1]:
            below = source.rstrip("/") + "/"
            assert any(path == source or path.startswith(below) for path in context), source


@pytest.mark.slow
def test_the_copied_sources_are_enough_to_build_the_package(tmp_path):
    # What the image's pip install gets, laid out as the COPY lines lay it out (a daemon-free build).
    context = set(build_context())
    root = tmp_path / "image"
    for copy in each("COPY"):
        target = root / copy.value[-1].lstrip("/")
        for source in copy.value[:-1]:
            if source.endswith("/"):
                for path in sorted(p for p in context if p.startswith(source)):
                    (target / path[len(source) :]).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(REPO / path, target / path[len(source) :])
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(REPO / source, target / Path(source).name)
    (install,) = [run for run in each("RUN") if "pip install" in run.value[0]]
    source_dir = root / install.value[0].split()[-1].lstrip("/")
    # --no-build-isolation --no-index: offline, with the build backend of the test environment.
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            *offline,
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(source_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("enginy_spec/rules.yaml", "conformance/cli.py", "conformance/report/report.schema.json"):
        assert shipped in names


# --- built and run ------------------------------------------------------------------------------------


def docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "the Docker daemon did not answer `docker info` within 20 s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"no Docker daemon ({lines[-1] if lines else 'docker info failed'})"
    return None


@pytest.mark.slow
def test_the_image_builds_and_judges_the_mock(request, tmp_path):
    why = docker_unavailable()
    if why:
        pytest.skip(
            f"{why}: the image is checked statically only. Even with a daemon, the build needs the base "
            "image, and no registry reachable from this machine serves base images."
        )
    mock = request.getfixturevalue("mock")  # started only when there is a daemon to use it
    base = each("FROM")[0].value[0]
    if subprocess.run(["docker", "image", "inspect", base], capture_output=True, check=False).returncode != 0:
        pulled = subprocess.run(
            ["docker", "pull", base], capture_output=True, text=True, timeout=300, check=False
        )
        if pulled.returncode != 0:
            pytest.skip(
                f"the base image {base} is not here and cannot be pulled: {pulled.stderr.strip()[-300:]}"
            )
    tag = f"enginy-conformance:test-{secrets.token_hex(4)}"
    built = subprocess.run(
        ["docker", "build", "--tag", tag, str(REPO)], capture_output=True, text=True, timeout=900, check=False
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    try:
        mock.switch("TASK-BATCH-ROUTE")
        reports = tmp_path / "reports"
        reports.mkdir()
        reports.chmod(0o777)  # the image's user (uid 10001) writes here
        # -e NAME passes the variable by name: the key's value is on no command line.
        docker_run = ["docker", "run", "--rm", "--network", "host", "-e", "ENGINY_API_KEY"]
        ran = subprocess.run(
            [
                *docker_run,
                "-v",
                f"{reports}:/reports",
                tag,
                "run",
                "--base-url",
                mock.url,
                "--only",
                "TASK-BATCH-ROUTE",
            ],
            env={**os.environ, "ENGINY_API_KEY": mock.key},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert ran.returncode == 1, ran.stdout + ran.stderr
        assert (reports / "report.json").is_file() and (reports / "summary.md").is_file()
        assert mock.key not in ran.stdout + ran.stderr
        whoami = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert whoami.stdout.strip() not in {"", "0"}
    finally:
        subprocess.run(
            ["docker", "image", "rm", "--force", tag], capture_output=True, timeout=120, check=False
        )
