"""Fixtures for the CI definitions' tests: the bundled mock, the suite as an install step leaves it,
and an environment as bare as a runner's.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

# The conformant mock, once per session (tests switch its faults: `mock.switch("TASK-BATCH-ROUTE")`):
# the fixture of tests/conformance, re-exported, so there is one definition of it.
from tests.conformance.conftest import mock  # noqa: F401


@pytest.fixture(scope="session")
def suite_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding `enginy-conformance` and `python`, as the action's install step leaves its venv.

    Only those two: PATH in the tests does not hold the test environment's own scripts, so a CI
    script that calls anything else by name fails here as it would on a runner.
    """
    scripts = Path(sysconfig.get_path("scripts"))
    tool = scripts / "enginy-conformance"
    if not tool.is_file():
        found = shutil.which("enginy-conformance")
        if found is None:
            pytest.fail(
                'enginy-conformance is not installed: python -m pip install -c constraints.txt -e ".[test]"'
            )
        tool = Path(found)
    directory = tmp_path_factory.mktemp("suite-bin")
    (directory / "enginy-conformance").symlink_to(tool)
    # A wrapper rather than a symlink: a venv's python finds its site-packages from its own path.
    python = directory / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    python.chmod(0o755)
    return directory


@pytest.fixture
def runner_env() -> dict[str, str]:
    """The environment a runner starts a step in: none of the developer's ENGINY_* settings or venv."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
    }
