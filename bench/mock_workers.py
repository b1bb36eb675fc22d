"""Throughput of ``enginy-mock --workers N``, side by side in one run: 1 worker vs 2, with wrk.

Not a test. For each configuration it starts the mock (``python -m mock_server --port 0 --threads 8
--log-level warning``, plus the configuration's flags), creates 100 tasks to read, and drives each
scenario with ``wrk -t2`` (``apt-get install -y wrk``); the configurations take turns scenario by
scenario, ``--rounds`` times, so that a noisy neighbour on the box hits them alike, and the table
shows the median of the rounds.

Usage::

    python bench/mock_workers.py                          # 5 s per scenario, 16 connections, 3 rounds
    python bench/mock_workers.py --duration 10 --connections 64 --markdown
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

API_KEY = "bench-key-0123"
LISTENING = re.compile(r"listening on (http://[\d.]+:\d+)")
CONFIGS: dict[str, list[str]] = {
    "1 worker, memory": ["--workers", "1"],
    "1 worker, --db": ["--workers", "1", "--db", "{tmp}/one.db"],
    "2 workers (temporary SQLite)": ["--workers", "2"],
    "2 workers, --db": ["--workers", "2", "--db", "{tmp}/two.db"],
}


@contextmanager
def mock(flags: list[str]) -> Iterator[str]:
    command = [sys.executable, "-m", "mock_server", "--port", "0", "--api-key", API_KEY]
    command += ["--threads", "8", "--log-level", "warning", *flags]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        found = LISTENING.search(proc.stdout.readline())
        if not found:
            raise SystemExit(f"the mock did not start: {' '.join(command)}")
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def create_tasks(url: str, count: int) -> list[str]:
    return [create_task(url) for _ in range(count)]


def create_task(url: str) -> str:
    request = urllib.request.Request(
        f"{url}/tasks",
        data=b'{"subject": "read me"}',
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        task_id: str = json.loads(response.read())["id"]
        return task_id


def wrk(url: str, method: str, path: str, body: str, duration: int, connections: int, folder: Path) -> float:
    script = folder / "scenario.lua"
    lines = [f'wrk.method = "{method}"', f'wrk.path = "{path}"', f'wrk.headers["X-API-Key"] = "{API_KEY}"']
    if body:
        lines += ['wrk.headers["Content-Type"] = "application/json"', f"wrk.body = '{body}'"]
    script.write_text("\n".join(lines) + "\n")
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"non-2xx answers in {method} {path}:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert found, out
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario and round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk).")
    scenarios = [
        ("GET /health", "GET", "/health", ""),
        ("GET /tasks/{id}", "GET", "/tasks/{id}", ""),
        ("POST /tasks", "POST", "/tasks", '{"subject": "Follow up"}'),
        # Reads 100 records a request: with workers, what the per-worker read cache is for.
        ("POST /tasks/batch, 100 ids", "POST", "/tasks/batch", '{"ids": {ids}}'),
    ]
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, method, path, body in scenarios:
                for config, flags in CONFIGS.items():
                    with mock([flag.replace("{tmp}", tmp) for flag in flags]) as url:
                        task_ids = create_tasks(url, 100)
                        time.sleep(0.5)  # let every worker reach its poll loop
                        rps = wrk(
                            url,
                            method,
                            path.replace("{id}", task_ids[0]),
                            body.replace("{ids}", json.dumps(task_ids)),
                            args.duration,
                            args.connections,
                            Path(tmp),
                        )
                    results.setdefault((name, config), []).append(rps)
    header = ["scenario", *CONFIGS]
    rows = [
        [name, *(f"{statistics.median(results[name, config]):,.0f}" for config in CONFIGS)]
        for name, *_ in scenarios
    ]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * len(CONFIGS))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        for row in [header, *rows]:
            print("  ".join(f"{cell:>28}" for cell in row))


if __name__ == "__main__":
    main()
