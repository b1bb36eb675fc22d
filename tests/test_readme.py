"""The README's support loop runs exactly as written: report → reproduction → fix → proxy.

The block under "The support loop, end to end" is a script for several terminals. `# [name] ...`
says which terminal the next command runs in (`Ctrl-C` first: stop what runs there); a command that
serves (the mock, the proxy) keeps running in its terminal; the `#    ...` lines under a command are
what it prints. The test runs every command on free ports and holds each to what the block shows: its
exit code, the rule ids it names and its verdict word.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
RULE_ID = re.compile(r"\b[A-Z]+(?:-[A-Z0-9]+){2,}\b")
VERDICTS = ("PASSED", "FAILED", "INCOMPLETE")
SERVES = ("enginy-mock ", "enginy-conformance proxy ")


@dataclass
class Step:
    terminal: str
    command: str | None  # None: Ctrl-C in the terminal
    shown: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int | None:
        found = [int(code) for line in self.shown for code in re.findall(r"\(exit (\d+)\)", line)]
        return found[-1] if found else None


def _loop_block() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### The support loop, end to end", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()


def _steps(lines: list[str]) -> list[Step]:
    steps: list[Step] = []
    terminal = ""
    pending = ""
    for line in lines:
        if pending:
            pending += " " + line.strip()
        elif header := re.match(r"# \[(.+?)\] (.*)", line):
            terminal = header.group(1)
            if header.group(2).startswith("Ctrl-C"):
                steps.append(Step(terminal, None))
            continue
        elif re.match(r"#    \S", line):  # what the command printed (a header goes on further indented)
            steps[-1].shown.append(line[5:])
            continue
        elif line.startswith("#") or not line.strip():
            continue
        else:
            pending = line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        steps.append(Step(terminal, pending))
        pending = ""
    return steps


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _holds_to(step: Step, output: str, code: int) -> None:
    if step.exit_code is not None:
        assert code == step.exit_code, (
            f"{step.command or 'Ctrl-C'} in [{step.terminal}]: exit {code}\n{output}"
        )
    for line in step.shown:
        for rule_id in RULE_ID.findall(line):
            assert rule_id in output, f"{rule_id} is not in what [{step.terminal}] printed:\n{output}"
        for verdict in VERDICTS:
            if f"{verdict}:" in line:
                assert f"{verdict}:" in output, f"[{step.terminal}] did not say {verdict}:\n{output}"


def test_the_block_is_a_loop_the_test_understands() -> None:
    steps = _steps(_loop_block())
    serving = [step for step in steps if step.command and step.command.startswith(SERVES)]
    assert [step.terminal for step in serving] == ["staging", "support", "staging", "support"]
    assert sum(1 for step in steps if step.command is None) == 3
    assert [step.exit_code for step in steps if step.command and not step.command.startswith(SERVES)] == [
        1,
        1,
        0,
    ]


@pytest.mark.skipif(
    not all(
        subprocess.run(["which", name], capture_output=True).returncode == 0
        for name in ("enginy-mock", "enginy-conformance")
    ),
    reason="the console scripts are not on PATH (pip install -e . puts them there)",
)
def test_the_support_loop_runs_as_written(tmp_path: Path) -> None:
    ports = {"8080": str(_free_port()), "8081": str(_free_port()), "8787": str(_free_port())}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("ENGINY_API_KEY", None)
    # A serving process writes a line per request; files, not pipes, so it never blocks on a full one.
    logs = tmp_path / "terminals"
    logs.mkdir()
    running: dict[str, tuple[subprocess.Popen[str], Step, Path]] = {}
    try:
        for step in _steps(_loop_block()):
            if step.command is None:
                process, started, out = running.pop(step.terminal)
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
                printed = out.read_text(encoding="utf-8") + out.with_suffix(".err").read_text(
                    encoding="utf-8"
                )
                _holds_to(started, printed, process.returncode)
                _holds_to(step, printed, process.returncode)
                continue
            command = re.sub(r"\b(8080|8081|8787)\b", lambda m: ports[m.group(1)], step.command)
            if command.startswith(SERVES):
                assert step.terminal not in running, f"[{step.terminal}] already runs something"
                out = logs / f"{step.terminal}-{len(list(logs.iterdir()))}.out"
                with out.open("w") as stdout, out.with_suffix(".err").open("w") as stderr:
                    process = subprocess.Popen(
                        shlex.split(command), cwd=tmp_path, env=env, text=True, stdout=stdout, stderr=stderr
                    )
                _wait_until_listening(process, out, command)
                running[step.terminal] = (process, step, out)
                continue
            done = subprocess.run(
                ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
            )
            _holds_to(step, done.stdout + done.stderr, done.returncode)
    finally:
        for process, _, _ in running.values():
            process.kill()
            process.wait()
    assert {path.name for path in (tmp_path / "live").iterdir()} >= {"report.json", "traffic.har"}
    for written in tmp_path.rglob("*"):
        if written.is_file():
            text = written.read_text(encoding="utf-8", errors="replace")
            assert "their-key" not in text and "test-key" not in text, written


def _wait_until_listening(process: subprocess.Popen[str], out: Path, command: str) -> None:
    deadline = time.monotonic() + 30
    while " listening on http://127.0.0.1:" not in out.read_text(encoding="utf-8"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"{command} did not start: {out.with_suffix('.err').read_text()}")
        time.sleep(0.05)
