"""How many requests/s one `enginy-conformance load` worker drives against the mock, and with two.

    python bench/load_workers.py [--duration 15] [--users 20]

Starts the bundled mock (its own process), then, side by side in one run: a local load (one Locust
process), and a master with 1 and 2 worker processes, each for --duration seconds with the same
users, and prints requests/s, p50/p95 and the CPU each side had. Every exchange is judged in the
process that sent it, so a worker's ceiling is its judging as much as its sending. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

KEY = "bench-key-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_mock() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "--port", "0", "--api-key", KEY, "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    match = re.search(r"listening on (http://\S+)", process.stdout.readline())
    assert match, "the mock did not start"
    return process, match.group(1)


def run(url: str, workers: int, *, users: int, duration: int) -> dict[str, float]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ENGINY_")}, "ENGINY_API_KEY": KEY}
    reports = Path(tempfile.mkdtemp(prefix="bench-load-"))
    base = [sys.executable, "-m", "conformance", "load", "--base-url", url, "--report-dir", str(reports)]
    shape = ["--users", str(users), "--spawn-rate", str(users), "--duration", str(duration)]
    if workers == 0:
        subprocess.run([*base, *shape], env=env, capture_output=True, check=False, timeout=duration + 120)
    else:
        port = str(free_port())
        master = subprocess.Popen(
            [*base, *shape, "--master", "--expect-workers", str(workers), "--master-port", port],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        helpers = [
            subprocess.Popen(
                [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", port],
                env=env,
                stdout=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        master.wait(duration + 180)
        for helper in helpers:
            helper.wait(60)
    load = json.loads((reports / "report.json").read_text(encoding="utf-8"))["load"]
    return {key: load[key] for key in ("requests", "requests_per_s", "p50_ms", "p95_ms", "p99_ms")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--users", type=int, default=20)
    args = parser.parse_args()
    mock, url = start_mock()
    try:
        for label, workers in (("local (1 process)", 0), ("master + 1 worker", 1), ("master + 2 workers", 2)):
            figures = run(url, workers, users=args.users, duration=args.duration)
            print(f"{label:<20} {json.dumps(figures)}", flush=True)
    finally:
        mock.terminate()
        mock.wait(10)


if __name__ == "__main__":
    main()
