"""conformance.terminal: what `enginy-conformance run` shows, as a user sees it in a real process.

Piped (a CI log): one line per stage start and end, no ANSI escape unless --color always. On a
terminal (a real pseudo-terminal here): the live progress display, then the end screen. Every run is
a real subprocess against the real mock; `--only` keeps them short (TASK-GET brings the Schemathesis
stateful phase alone, about 60 requests).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from conformance.terminal import Mode, decide

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
WITH_A_PHASE = "HEALTH-OK,TASK-GET"  # a scripted stage, then Schemathesis' stateful phase


def _env(key: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINY_") and k not in ("NO_COLOR",)}
    env.update(ENGINY_API_KEY=key, **extra)
    return env


def run_piped(url: str, key: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "conformance", "run", "--base-url", url, "--report-dir", str(cwd / "r")]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(key, **env),
        cwd=cwd,
        check=False,
    )


@pytest.mark.parametrize(
    ("choice", "is_tty", "env", "mode"),
    [
        ("auto", True, {"TERM": "xterm"}, Mode(color=True, live=True)),
        ("auto", False, {"TERM": "xterm"}, Mode(color=False, live=False)),
        ("auto", True, {"TERM": "xterm", "NO_COLOR": "1"}, Mode(color=False, live=True)),
        ("always", False, {"NO_COLOR": "1"}, Mode(color=True, live=False)),  # the explicit choice wins
        ("never", True, {"TERM": "xterm"}, Mode(color=False, live=True)),
        ("auto", True, {"TERM": "dumb"}, Mode(color=False, live=False)),  # no cursor to move
    ],
)
def test_colour_and_live_display_follow_the_choice_the_stream_and_the_environment(choice, is_tty, env, mode):
    assert decide(choice, is_tty=is_tty, env=env) == mode


def test_piped_output_has_no_ansi_one_line_per_stage_start_and_end_and_no_rule_twice(mock, tmp_path):
    done = run_piped(mock.url, mock.key, "--only", WITH_A_PHASE, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "\x1b" not in out
    stages = [line for line in out.splitlines() if line[:2] in ("▸ ", "✓ ", "- ")]
    assert [line.split(":")[0] for line in stages] == [
        "▸ scripted checks",
        "✓ scripted checks",
        "▸ Schemathesis stateful",
        "✓ Schemathesis stateful",
    ], out
    assert re.search(r"✓ Schemathesis stateful: \d+ requests in [\d.]+ s", out)
    # Each rule once at most: the passed ones are one row of the table.
    assert "2 rules passed" in out and "HEALTH-OK" not in out and "TASK-GET" not in out
    assert "PASSED: every selected MUST rule was judged and holds." in out
    assert "Seed: 0" in out
    assert mock.key not in out + done.stderr


@pytest.mark.parametrize(
    ("args", "env", "coloured"),
    [
        (("--color", "always"), {}, True),
        (("--color", "auto"), {"NO_COLOR": "1"}, False),
        ((), {"ENGINY_COLOR": "always"}, True),
        (("--color", "never"), {"ENGINY_COLOR": "always"}, False),  # the flag wins over the environment
    ],
)
def test_color_flag_environment_and_no_color(mock, tmp_path, args, env, coloured):
    done = run_piped(mock.url, mock.key, "--only", "HEALTH-OK", *args, cwd=tmp_path, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert bool(ANSI.search(done.stdout)) is coloured, done.stdout
    assert "PASSED:" in ANSI.sub("", done.stdout)


def test_color_in_the_config_file_and_a_bad_value_is_one_line(mock, tmp_path):
    (tmp_path / "enginy-conformance.toml").write_text('color = "always"\n', encoding="utf-8")
    done = run_piped(mock.url, mock.key, "--only", "HEALTH-OK", cwd=tmp_path)
    assert ANSI.search(done.stdout), done.stdout
    bad = run_piped(mock.url, mock.key, cwd=tmp_path, ENGINY_COLOR="sometimes")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "ENGINY_COLOR in the environment must be one of auto, always, never" in bad.stderr


def test_a_failure_block_shows_the_response_and_a_curl_reading_the_key_from_the_environment(
    start_mocks, tmp_path
):
    broken = start_mocks("--fault", "TASK-BATCH-ROUTE", key="canary-terminal-key-4d1f9a7e")
    only = ("--only", "HEALTH-OK,TASK-BATCH-ROUTE")
    done = run_piped(broken.url, broken.key, *only, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    block = out[out.index("✗ TASK-BATCH-ROUTE (MUST, failed)") :]
    assert "Expected: the batch handler's answer" in block and "Received: 405" in block
    assert "Response: 405 Method Not Allowed (application/json" in block
    assert '"error": "Method not allowed",' in block  # the body, pretty-printed, its first lines
    lines = [line.strip() for line in block.splitlines()]
    curl = [line for line in lines if line.startswith(("curl ", "-H ", "--data"))]
    assert curl[0].startswith("curl -sS -i -X POST") and curl[0].endswith("/tasks/batch \\")
    assert '-H "X-API-Key: $ENGINY_API_KEY" \\' in curl
    assert broken.key not in out + done.stderr
    # The table: the failure first, the passed rule collapsed; listed with -v.
    assert out.index("TASK-BATCH-ROUTE") < out.index("1 rule passed")
    assert "HEALTH-OK" not in out
    verbose = run_piped(broken.url, broken.key, *only, "-v", cwd=tmp_path)
    assert re.search(r"HEALTH-OK +MUST +✓ passed", verbose.stdout), verbose.stdout
    assert "rule passed" not in verbose.stdout


def test_on_a_terminal_the_live_progress_shows_and_the_end_screen_is_intact(mock, tmp_path):
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    command = [sys.executable, "-m", "conformance", "run", "--base-url", mock.url, "--only", WITH_A_PHASE]
    process = subprocess.Popen(
        [*command, "--report-dir", str(tmp_path / "r")],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=_env(mock.key, TERM="xterm-256color"),
        cwd=tmp_path,
        close_fds=True,
    )
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait(30)
    finally:
        os.close(primary)
        if process.poll() is None:
            process.kill()
            process.wait()
    raw = b"".join(chunks).decode("utf-8", errors="replace")
    assert code == 0, raw
    assert "\x1b[?25l" in raw and "\x1b[?25h" in raw  # the live display hid the cursor, and gave it back
    assert re.search(r"Schemathesis stateful .*\d+/~\d+ requests", ANSI.sub("", raw)), raw  # while running
    assert "\x1b[32m" in raw or "\x1b[1;32m" in raw or "\x1b[38;5;" in raw  # colour: auto on a terminal
    screen = ANSI.sub("", raw).replace("\r", "")
    end = screen[screen.rindex("Rule ") :]  # the end screen, printed once after the display stopped
    assert "2 rules passed" in end and "PASSED: every selected MUST rule was judged and holds." in end
    assert "Reports:" in end and "json: " in end
    assert "▸ scripted checks" not in screen  # the plain stage lines are for pipes
    assert mock.key not in raw
