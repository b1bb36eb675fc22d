"""Fixtures every test folder may need: a headless browser.

The mock's pages (Swagger UI, the inspector) and the suite's report.html are all checked in a real
browser, so the fixture lives here rather than in one folder's conftest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# Quiet and offline: no first-run UI, no background fetches, no QUIC; --no-sandbox because CI runs as root.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@dataclass
class Chromium:
    """Debian's chromium, headless, with a profile of its own in the test's tmp_path."""

    executable: str
    profile: Path

    def run(self, url: str, *extra: str, timeout: float = 90) -> str:
        done = subprocess.run(
            [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
        return done.stdout

    def dump_dom(
        self, url: str, *, virtual_time_ms: int | None = None, window: tuple[int, int] | None = None
    ) -> str:
        """The DOM after load; ``virtual_time_ms`` lets scripts and their fetches run that long first.

        ``window`` fixes the viewport (width, height in CSS pixels) the page is laid out in.
        """
        budget = (f"--virtual-time-budget={virtual_time_ms}",) if virtual_time_ms else ()
        return self.run(url, *budget, *_window_flags(window), "--dump-dom")

    def screenshot(
        self,
        url: str,
        path: Path,
        *,
        virtual_time_ms: int | None = None,
        window: tuple[int, int] = (1280, 900),
    ) -> Path:
        budget = (f"--virtual-time-budget={virtual_time_ms}",) if virtual_time_ms else ()
        self.run(url, *budget, f"--screenshot={path}", *_window_flags(window))
        return path


def _window_flags(window: tuple[int, int] | None) -> tuple[str, ...]:
    if window is None:
        return ()
    # One device pixel per CSS pixel, so a screenshot's pixels line up with getBoundingClientRect().
    return (f"--window-size={window[0]},{window[1]}", "--force-device-scale-factor=1")


@pytest.fixture
def chromium(tmp_path: Path) -> Chromium:
    """Skip when chromium is missing, except under CI (CI=...), where .ci/run installs it: then fail."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not installed; .ci/run installs Debian's chromium.")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); browser tests need it.")
    return Chromium(executable=executable, profile=tmp_path / "chromium-profile")


# The modules that take a minute or more, slowest first. Under xdist's --dist loadfile (pyproject's
# addopts) each module goes whole to one worker, in collection order: started last, the zoo alone would
# keep one core busy for two minutes after the other has run out of work.
SLOW_FIRST = (
    "tests/conformance/test_zoo.py",
    "tests/conformance/test_mock_faults.py",
    "tests/conformance/test_cli.py",
    "tests/conformance/test_load.py",
    "tests/conformance/test_reproduction.py",
    "tests/conformance/test_stranger_crm.py",
    "tests/test_readme.py",
    "tests/conformance/test_terminal.py",
    "tests/conformance/test_concurrency.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(SLOW_FIRST)}
    root = config.rootpath

    def slowness(item: pytest.Item) -> int:
        relative = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        return rank.get(relative, len(SLOW_FIRST))

    items.sort(key=slowness)  # stable: within a module, and among the others, the order stays
