"""A plain (non-editable) `pip install` ships every package of the repo, with its data files."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Never copied into the build tree: VCS data, caches, old builds and run output could mask a packaging bug.
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".tox",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".schemathesis",
    "reports",
)
PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
PROBE = textwrap.dedent(
    """\
    import json, sysconfig
    import enginy_spec

    print(json.dumps({
        "module": enginy_spec.__file__,
        "openapi": str(enginy_spec.OPENAPI_PATH),
        "rules": str(enginy_spec.RULES_PATH),
        "purelib": sysconfig.get_paths()["purelib"],
        "operations": len(enginy_spec.operations()),
        "rules_count": len(enginy_spec.load_catalogue()),
        "openapi_version": enginy_spec.load_spec()["openapi"],
    }))
    # The shipped packages import from the install too (their modules read data files at import).
    import conformance.cli, conformance.report, mock_server.app, mock_server.cli  # noqa: E401, F401
    """
)


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def plain_install(tmp_path: Path) -> Path:
    """Install a copy of the repo into a new venv with a plain `pip install`; its site-packages."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_COPIED)
    venv_dir = tmp_path / "venv"
    # --without-pip: the venv borrows pip, setuptools and wheel (the test extra) from the environment
    # running this test, which keeps it fast and offline. --system-site-packages only reaches the base
    # interpreter, so when that environment is itself a venv (tox) its site-packages are added with a .pth.
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv_dir)], check=True
    )
    python = venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "PYTHONHOME"}}
    env["PIP_NO_INPUT"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    venv_purelib = Path(run(python, "-c", PURELIB, cwd=tmp_path, env=env).strip())
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (venv_purelib / "_enginy_test_parent.pth").write_text("".join(f"{path}\n" for path in ours))
    run(
        python,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--check-build-dependencies",
        "--ignore-installed",
        "--no-index",
        str(source),
        cwd=tmp_path,
        env=env,
    )
    return venv_purelib


@pytest.mark.slow
def test_plain_install_ships_the_spec_and_the_catalogue(tmp_path):
    if importlib.util.find_spec("venv") is None:
        pytest.skip("the venv module is not available in this Python")
    site_packages = plain_install(tmp_path)
    venv_dir = tmp_path / "venv"
    python = venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "PYTHONHOME"}}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = json.loads(run(python, "-c", PROBE, cwd=elsewhere, env=env))

    assert Path(found["purelib"]).resolve() == site_packages.resolve()
    site_packages = site_packages.resolve()
    assert site_packages.is_relative_to(venv_dir.resolve())
    for key in ("module", "openapi", "rules"):
        where = Path(found[key]).resolve()
        assert where.is_relative_to(site_packages / "enginy_spec"), f"{key} loaded from {where}"
        assert not where.is_relative_to(REPO), f"{key} loaded from the repo, not the install"
    assert (site_packages / "enginy_spec" / "py.typed").is_file()
    assert found["operations"] > 0
    assert found["rules_count"] > 0
    assert str(found["openapi_version"]).startswith("3.")


# Packages whose directory name is their import name (enginy_spec is spec/, checked above).
SHIPPED = ("mock_server", "conformance")


def shipped_files(root: Path) -> set[str]:
    """Every file a package directory holds that an install must carry: modules and data files."""
    return {
        path.relative_to(root).as_posix()
        for package in SHIPPED
        for path in (root / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.mark.slow
def test_plain_install_ships_every_module_and_data_file(tmp_path):
    if importlib.util.find_spec("venv") is None:
        pytest.skip("the venv module is not available in this Python")
    site_packages = plain_install(tmp_path)
    missing = shipped_files(REPO) - shipped_files(site_packages)
    assert not missing, f"a plain install leaves out {sorted(missing)}: list them in pyproject.toml"
