"""Wall time of the conformance suite against the reference mock at 0, 50 and 200 ms a request.

    python bench/suite_walltime.py                              # the whole matrix, once
    python bench/suite_walltime.py --repeat 3                   # best and median of three
    python bench/suite_walltime.py --latency 200 --only suite-quick,suite-quick-seq

Every measurement gets a freshly started `python -m mock_server --port 0 --threads 64`, with its
`latency:ms=N` fault when N > 0 (so every answer costs N ms, as across the internet), so no run
inherits the records of another. Measurements:

    suite-quick / suite-full           `enginy-conformance run --profile quick|full` at the default
                                       --concurrency (scripted checks + Schemathesis pass + reports)
    suite-quick-seq / suite-full-seq   the same with --concurrency 1: one request after another
    schemathesis-quick / -full         plain `schemathesis run spec/openapi.yaml` with the same phases,
                                       checks, examples per operation, stateful steps and seed, and
                                       --workers as given (--st-workers; a run that crashes says so)
    engine-quick / engine-full         `conformance.engine.judge_generated` alone, in this process

Prints a Markdown table (a row per measurement, a column per latency) and the exact commands, for
docs/benchmarks.md ("## Conformance suite"). Every child process is started and stopped by PID here;
scratch files go to a temporary directory.
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

from conformance.engine import BUDGETS, ENGINE_RULES, Budget, judge_generated, phases_for  # noqa: E402
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
    latency_ms: int
    command: str
    seconds: list[float] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    note: str = ""

    def cell(self) -> str:
        if not self.seconds:
            return self.note or "not run"
        best = min(self.seconds)
        text = f"{best:.1f} s"
        if len(self.seconds) > 1:
            text += f" (median {statistics.median(self.seconds):.1f} s, n={len(self.seconds)})"
        codes = ",".join(str(code) for code in self.exit_codes)
        return f"{text}, exit {codes}" + (f"; {self.note}" if self.note else "")


@contextmanager
def mock(api_key: str, latency_ms: int = 0) -> Iterator[str]:
    """Start the reference mock on a free port and yield its base URL; stop it by PID afterwards.

    64 waitress threads: at 200 ms an answer, the default 8 would cap the mock at 40 requests a second
    and measure the mock, not the suite.
    """
    fault = ["--fault", f"latency:ms={latency_ms}"] if latency_ms > 0 else []
    # The mock also reads ENGINY_* variables (faults, keys, a database file); benchmark it plain.
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "--port", "0", "--api-key", api_key, "--threads", "64", *fault],
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


def _timed(argv: Sequence[str], *, env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(
        list(argv),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=_RUN_TIMEOUT,
    )
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


# How a plain `schemathesis run` shows the Python 3.11 thread crash (CPython gh-106905).
_CRASHED = re.compile(r"recursion depth mismatch|SystemError|Traceback")


def suite_argv() -> list[str] | None:
    """How to start the CLI: the console script if installed, else the module; None if there is none."""
    if not (REPO / "conformance" / "cli.py").exists():
        return None
    script = shutil.which("enginy-conformance")
    return [script] if script else [sys.executable, "-m", "conformance.cli"]


def schemathesis_argv() -> list[str]:
    script = shutil.which("schemathesis")
    return [script] if script else [sys.executable, "-m", "schemathesis.cli"]


def _toml(budget: Budget, timeout: float, workers: int) -> str:
    # The same knobs conformance.engine.build_config sets, spelled for the CLI's config file.
    lines = [
        "seed = 0",
        f"workers = {workers}",
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
    phases = phases_for(budget, checks_for(ENGINE_RULES))  # the phases the suite's pass runs
    for phase in ("examples", "coverage", "fuzzing", "stateful"):
        lines += [f"[phases.{phase}]", f"enabled = {'true' if phase in phases else 'false'}"]
        if phase == "coverage":
            lines.append("unexpected-methods = []")
        if phase == "stateful":
            lines.append(f"max-steps = {budget.stateful_steps}")
    return "\n".join(lines) + "\n"


def measure(
    names: Sequence[str], latencies: Sequence[int], repeat: int, st_workers: int
) -> list[Measurement]:
    key = "bench-" + secrets.token_hex(8)
    scratch = Path(tempfile.mkdtemp(prefix="enginy-bench-"))
    env = {**os.environ, "ENGINY_API_KEY": key}
    results: list[Measurement] = []
    try:
        cli = suite_argv()
        for latency in latencies:
            for name in names:
                results.append(_measure_one(name, latency, repeat, st_workers, cli, key, env, scratch))
                print(f"  {name} at {latency} ms: {results[-1].cell()}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _measure_one(
    name: str,
    latency: int,
    repeat: int,
    st_workers: int,
    cli: list[str] | None,
    key: str,
    env: dict[str, str],
    scratch: Path,
) -> Measurement:
    kind, profile, *variant = name.split("-")
    if kind not in ("suite", "engine", "schemathesis") or profile not in PROFILES:
        raise SystemExit(f"Unknown measurement {name!r}; choose from {', '.join(ALL)}.")
    budget = BUDGETS[profile]  # type: ignore[index]
    if kind == "suite":
        flags = ["--concurrency", "1"] if variant == ["seq"] else []
        shown = (
            f"ENGINY_API_KEY=… enginy-conformance run --base-url $URL --profile {profile} "
            f"--report-dir DIR {' '.join(flags)}"
        ).strip()
        item = Measurement(name, latency, shown)
        if cli is None:
            item.note = "not available (conformance/cli.py missing)"
            return item
        for _ in range(repeat):
            with mock(key, latency) as url:
                reports = scratch / f"{name}-reports"
                argv = [*cli, "run", "--base-url", url, "--profile", profile, "--report-dir", str(reports)]
                seconds, code, _ = _timed([*argv, *flags], env=env, cwd=scratch)
            item.seconds.append(seconds)
            item.exit_codes.append(code)
    elif kind == "engine":
        item = Measurement(
            name, latency, f"judge_generated(RunSettings(base_url=URL, api_key=KEY, profile={profile!r}))"
        )
        for _ in range(repeat):
            with mock(key, latency) as url:
                settings = RunSettings(base_url=url, api_key=key, profile=profile)  # type: ignore[arg-type]
                started = time.perf_counter()
                evidence = judge_generated(settings, load_catalogue())
                item.seconds.append(time.perf_counter() - started)
                item.exit_codes.append(int(any(e.outcome == "failed" for e in evidence)))
    else:
        toml = scratch / f"{name}.toml"
        toml.write_text(_toml(budget, 10.0, st_workers), encoding="utf-8")
        checks = ",".join(checks_for(ENGINE_RULES))
        shown = (
            f"schemathesis --config-file {name}.toml run spec/openapi.yaml --url $URL "
            f"-H 'X-API-Key: …' --checks {checks}  # workers = {st_workers}"
        )
        item = Measurement(name, latency, shown)
        crashes = 0
        for _ in range(repeat):
            with mock(key, latency) as url:
                argv = [
                    *schemathesis_argv(), "--config-file", str(toml), "run",
                    str(OPENAPI_PATH), "--url", url, "-H", f"X-API-Key: {key}", "--checks", checks,
                ]  # fmt: skip
                seconds, code, output = _timed(argv, env=env, cwd=scratch)
            crashes += bool(_CRASHED.search(output))
            item.seconds.append(seconds)
            item.exit_codes.append(code)
        item.note = f"{st_workers} workers" + (f", crashed {crashes} of {repeat}" if crashes else ", clean")
    return item


ALL = tuple(
    f"{kind}-{profile}{variant}"
    for kind, variants in (("suite", ("", "-seq")), ("schemathesis", ("",)))
    for profile in PROFILES
    for variant in variants
)
OPTIONAL = ("engine-quick", "engine-full")


def render(results: Sequence[Measurement], out: Callable[[str], None] = print) -> None:
    out(f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    for profile in PROFILES:
        budget = BUDGETS[profile]  # type: ignore[index]
        phases = phases_for(budget, checks_for(ENGINE_RULES))  # what the suite's pass runs
        out(
            f"Profile {profile}: the suite's phases {', '.join(phases)}; {budget.max_examples} examples "
            f"per operation; stateful max-steps {budget.stateful_steps}; seed 0"
        )
    out(f"Default --concurrency: {RunSettings(base_url='http://x', api_key='k').concurrency}")
    out("")
    latencies = sorted({item.latency_ms for item in results})
    names = list(dict.fromkeys(item.name for item in results))
    cells = {(item.name, item.latency_ms): item for item in results}
    out("| measurement | " + " | ".join(f"{ms} ms" for ms in latencies) + " |")
    out("|---|" + "---:|" * len(latencies))
    for name in names:
        row = [cells[(name, ms)].cell() if (name, ms) in cells else "-" for ms in latencies]
        out(f"| {name} | " + " | ".join(row) + " |")
    out("")
    for name in names:
        item = next(item for item in results if item.name == name)
        out(f"* {name}: `{item.command}`")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (default 1)")
    parser.add_argument(
        "--only", default=",".join(ALL), help=f"comma-separated subset of {', '.join(ALL + OPTIONAL)}"
    )
    parser.add_argument("--latency", default="0,50,200", help="ms per answer, comma-separated (0,50,200)")
    parser.add_argument(
        "--st-workers",
        type=int,
        default=4,
        help="workers of the plain schemathesis runs (default 4; on Python 3.11 more crash Hypothesis)",
    )
    args = parser.parse_args(argv)
    names = [name for name in args.only.split(",") if name]
    latencies = [int(ms) for ms in args.latency.split(",") if ms.strip()]
    render(measure(names, latencies, max(1, args.repeat), max(1, args.st_workers)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
