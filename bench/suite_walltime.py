"""Wall time of the conformance suite against the local reference mock, next to plain Schemathesis.

    python bench/suite_walltime.py                      # every measurement once
    python bench/suite_walltime.py --repeat 3           # best and median of three
    python bench/suite_walltime.py --only engine-quick,schemathesis-quick

Measurements (each against a freshly started `python -m mock_server --port 0`, so no run inherits the
records of another):

    suite-quick / suite-full     `enginy-conformance run --profile quick|full` (scripted checks + the
                                 Schemathesis pass + reports), as a subprocess, the key in ENGINY_API_KEY
    engine-quick / engine-full   `conformance.engine.judge_generated` alone, in this process
    schemathesis-quick / -full   `schemathesis run spec/openapi.yaml` with the same phases, checks, examples
                                 per operation, stateful steps, seed and workers as the engine's budget

The suite measurements need `conformance/cli.py`; they are reported as "not available" until it exists.
Prints a Markdown table and the exact commands, for docs/benchmarks.md ("## Conformance suite").
Every child process is started and stopped by PID here; scratch files go to a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from conformance.engine import BUDGETS, ENGINE_RULES, Budget, judge_generated  # noqa: E402
from conformance.failure_map import checks_for  # noqa: E402
from conformance.settings import RunSettings  # noqa: E402
from enginy_spec import OPENAPI_PATH, load_catalogue  # noqa: E402

_LISTENING = re.compile(r"listening on (http://\S+)")
_STARTUP_TIMEOUT = 30.0
_RUN_TIMEOUT = 900.0
PROFILES = ("quick", "full")


@dataclass
class Measurement:
    name: str
    command: str
    seconds: list[float] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    note: str = ""

    def cell(self) -> str:
        if not self.seconds:
            return self.note or "not run"
        best = min(self.seconds)
        if len(self.seconds) == 1:
            return f"{best:.1f} s"
        return f"{best:.1f} s (median {statistics.median(self.seconds):.1f} s, n={len(self.seconds)})"


@contextmanager
def mock(api_key: str) -> Iterator[str]:
    """Start the reference mock on a free port and yield its base URL; stop it by PID afterwards."""
    # The mock also reads ENGINY_* variables (faults, keys, a database file); benchmark it plain.
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "--port", "0", "--api-key", api_key],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the access log; not part of what is measured
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        url = None
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            match = _LISTENING.search(line)
            url = match.group(1) if match else None
        if url is None:
            raise RuntimeError(
                "The mock did not print 'enginy-mock listening on …'; run python -m mock_server."
            )
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _timed(argv: Sequence[str], *, env: dict[str, str], cwd: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        list(argv),
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=_RUN_TIMEOUT,
    )
    return time.perf_counter() - started, done.returncode


def suite_argv() -> list[str] | None:
    """How to start the CLI: the console script if installed, else the module; None if there is none."""
    if not (REPO / "conformance" / "cli.py").exists():
        return None
    script = shutil.which("enginy-conformance")
    return [script] if script else [sys.executable, "-m", "conformance.cli"]


def schemathesis_argv() -> list[str]:
    script = shutil.which("schemathesis")
    return [script] if script else [sys.executable, "-m", "schemathesis.cli"]


def _toml(budget: Budget, timeout: float) -> str:
    # The same knobs conformance.engine.build_config sets, spelled for the CLI's config file.
    lines = [
        "seed = 0",
        "workers = 1",
        f"request-timeout = {timeout}",
        "request-retries = 0",
        "continue-on-failure = true",
        'suppress-health-check = ["too_slow"]',
        "[cache]",
        "enabled = false",
        "[generation]",
        'database = "none"',
        f"max-examples = {budget.max_examples}",
    ]
    for phase in ("examples", "coverage", "fuzzing", "stateful"):
        lines += [f"[phases.{phase}]", f"enabled = {'true' if phase in budget.phases else 'false'}"]
        if phase == "coverage":
            lines.append("unexpected-methods = []")
        if phase == "stateful":
            lines.append(f"max-steps = {budget.stateful_steps}")
    return "\n".join(lines) + "\n"


def measure(names: Sequence[str], repeat: int) -> list[Measurement]:
    key = "bench-" + secrets.token_hex(8)
    scratch = Path(tempfile.mkdtemp(prefix="enginy-bench-"))
    env = {**os.environ, "ENGINY_API_KEY": key}
    results: list[Measurement] = []
    try:
        cli = suite_argv()
        for name in names:
            kind, _, profile = name.rpartition("-")
            budget = BUDGETS[profile]  # type: ignore[index]
            if kind == "suite":
                shown = (
                    f"ENGINY_API_KEY=… enginy-conformance run --base-url $URL --profile {profile} "
                    "--report-dir DIR"
                )
                item = Measurement(name, shown)
                if cli is None:
                    item.note = "not available (conformance/cli.py missing)"
                    results.append(item)
                    continue
                for _ in range(repeat):
                    with mock(key) as url:
                        reports = scratch / f"{name}-reports"
                        argv = [
                            *cli,
                            "run",
                            "--base-url",
                            url,
                            "--profile",
                            profile,
                            "--report-dir",
                            str(reports),
                        ]
                        seconds, code = _timed(argv, env=env, cwd=scratch)
                    item.seconds.append(seconds)
                    item.exit_codes.append(code)
            elif kind == "engine":
                item = Measurement(
                    name, f"judge_generated(RunSettings(base_url=URL, api_key=KEY, profile={profile!r}))"
                )
                for _ in range(repeat):
                    with mock(key) as url:
                        settings = RunSettings(base_url=url, api_key=key, profile=profile)  # type: ignore[arg-type]
                        started = time.perf_counter()
                        evidence = judge_generated(settings, load_catalogue())
                        item.seconds.append(time.perf_counter() - started)
                        item.exit_codes.append(int(any(e.outcome == "failed" for e in evidence)))
            elif kind == "schemathesis":
                toml = scratch / f"{name}.toml"
                toml.write_text(_toml(budget, 10.0), encoding="utf-8")
                checks = ",".join(checks_for(ENGINE_RULES))
                shown = (
                    f"schemathesis --config-file {name}.toml run spec/openapi.yaml --url $URL "
                    f"-H 'X-API-Key: …' --checks {checks}"
                )
                item = Measurement(name, shown)
                for _ in range(repeat):
                    with mock(key) as url:
                        argv = [
                            *schemathesis_argv(), "--config-file", str(toml), "run",
                            str(OPENAPI_PATH), "--url", url, "-H", f"X-API-Key: {key}", "--checks", checks,
                        ]  # fmt: skip
                        seconds, code = _timed(argv, env=env, cwd=scratch)
                    item.seconds.append(seconds)
                    item.exit_codes.append(code)
            else:
                raise SystemExit(f"Unknown measurement {name!r}; choose from {', '.join(ALL)}.")
            results.append(item)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


ALL = tuple(f"{kind}-{profile}" for kind in ("suite", "engine", "schemathesis") for profile in PROFILES)


def render(results: Sequence[Measurement], out: Callable[[str], None] = print) -> None:
    out(f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    for profile in PROFILES:
        budget = BUDGETS[profile]  # type: ignore[index]
        out(
            f"Profile {profile}: phases {', '.join(budget.phases)}; {budget.max_examples} examples per "
            f"operation; stateful max-steps {budget.stateful_steps}; seed 0; 1 worker"
        )
    out("")
    out("| measurement | wall time | exit codes | command |")
    out("|---|---|---|---|")
    for item in results:
        codes = ", ".join(str(code) for code in item.exit_codes) or "-"
        out(f"| {item.name} | {item.cell()} | {codes} | `{item.command}` |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (default 1)")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {', '.join(ALL)}")
    args = parser.parse_args(argv)
    names = [name for name in args.only.split(",") if name]
    render(measure(names, max(1, args.repeat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
