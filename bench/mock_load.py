"""Load benchmark for the reference mock: requests per second and p50/p99 latency at 16 connections.

Not a test. It starts the mock (``python -m mock_server``, 8 waitress threads, in-memory store, log
level warning) and, as the ceiling, a bare WSGI app on the same waitress integration, each as its
own process, seeds 10,000 tasks through the admin API, then drives each scenario with wrk when it is
installed (``apt-get install -y wrk``) or else with a small Python client (threads with keep-alive
connections; on a 2-core box it is itself the bottleneck, so its numbers are a floor).

Usage::

    python bench/mock_load.py                      # wrk if present, 10 s per scenario
    python bench/mock_load.py --client python      # force the Python client
    python bench/mock_load.py --duration 5 --connections 16 --markdown
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

API_KEY = "bench-key-0123"
ADMIN_TOKEN = "bench-admin-0123"
SEEDED = 10_000
LISTENING = re.compile(r"listening on (http://([\d.]+):(\d+))")


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    path: str
    body: bytes = b""
    target: str = "mock"  # or "bare"


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    client: str


def _serve_bare(port: int) -> None:
    """The ceiling: the smallest WSGI app, served by the same MockServer (waitress, 8 threads)."""
    from mock_server.serving import MockServer

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "15")])
        return [b'{"status":"ok"}']

    server = MockServer(app, port=port, threads=8)
    print(f"bare listening on {server.url}", flush=True)
    server.serve_forever()


@contextmanager
def _process(args: list[str]) -> Iterator[str]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = LISTENING.search(line)
        if not found:
            raise RuntimeError(f"server did not start: {line!r}")
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _call(
    url: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    conn.request(
        method, path, body=body or None, headers={"Content-Type": "application/json", **(headers or {})}
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status >= 400:
        raise RuntimeError(f"{method} {path} -> {response.status}: {data[:200]!r}")
    return data


def _scenarios(task_ids: list[str]) -> list[Scenario]:
    def ids_body(ids: list[str], **extra: object) -> bytes:
        return json.dumps({"ids": ids, **extra}).encode()

    return [
        Scenario("bare WSGI app (ceiling)", "GET", "/", target="bare"),
        Scenario("GET /health", "GET", "/health"),
        Scenario("POST /tasks (create)", "POST", "/tasks", b'{"subject":"Follow up","type":"call"}'),
        Scenario("GET /tasks/{id}", "GET", f"/tasks/{task_ids[0]}"),
        Scenario("POST /tasks/batch, 100 ids", "POST", "/tasks/batch", ids_body(task_ids[:100])),
        Scenario("POST /tasks/batch, 10,000 ids", "POST", "/tasks/batch", ids_body(task_ids)),
        Scenario(
            "PATCH /tasks/batch, 10,000 ids", "PATCH", "/tasks/batch", ids_body(task_ids, completed=True)
        ),
    ]


def _lua(scenario: Scenario, folder: Path) -> Path:
    body_file = folder / f"body-{abs(hash(scenario.name))}.json"
    body_file.write_bytes(scenario.body)
    script = folder / f"script-{abs(hash(scenario.name))}.lua"
    lines = [
        f'wrk.method = "{scenario.method}"',
        f'wrk.path = "{scenario.path}"',
        f'wrk.headers["X-API-Key"] = "{API_KEY}"',
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    if scenario.body:
        lines.append(f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*a"); f:close()')
    script.write_text("\n".join(lines) + "\n")
    return script


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _run_wrk(url: str, scenario: Scenario, duration: int, connections: int, folder: Path) -> Outcome:
    script = _lua(scenario, folder)
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 120
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Outcome(scenario, rps, p50, p99, int(bad.group(1)) if bad else 0, "wrk -t2")


def _run_python(url: str, scenario: Scenario, duration: int, connections: int) -> Outcome:
    host, port = url.removeprefix("http://").split(":")
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures = [0] * connections
    deadline = time.perf_counter() + duration

    def work(slot: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            conn.request(scenario.method, scenario.path, body=scenario.body or None, headers=headers)
            response = conn.getresponse()
            response.read()
            latencies[slot].append((time.perf_counter() - started) * 1000)
            if response.status >= 300:
                failures[slot] += 1
        conn.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(slot,)) for slot in range(connections)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    every = sorted(value for chunk in latencies for value in chunk)
    quantiles = statistics.quantiles(every, n=100) if len(every) > 1 else [every[0]] * 99
    return Outcome(
        scenario, len(every) / elapsed, quantiles[49], quantiles[98], sum(failures), "python threads"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        _serve_bare(args.serve_bare)
        return
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    mock_command = [
        sys.executable,
        "-m",
        "mock_server",
        "--port",
        "0",
        "--api-key",
        API_KEY,
        "--admin-token",
        ADMIN_TOKEN,
        "--log-level",
        "warning",
        "--threads",
        "8",
    ]
    bare_command = [sys.executable, __file__, "--serve-bare", "0"]
    outcomes = []
    with (
        _process(mock_command) as mock_url,
        _process(bare_command) as bare_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        task_ids = [f"task-bench-{n:05d}" for n in range(SEEDED)]
        seed = {
            "tasks": [
                {"id": task_id, "subject": f"Seeded task {n}", "type": "call"}
                for n, task_id in enumerate(task_ids)
            ]
        }
        _call(mock_url, "POST", "/__admin/seed", json.dumps(seed).encode(), {"X-Admin-Token": ADMIN_TOKEN})
        for scenario in _scenarios(task_ids):
            url = bare_url if scenario.target == "bare" else mock_url
            if client == "wrk":
                outcome = _run_wrk(url, scenario, args.duration, args.connections, Path(tmp))
            else:
                outcome = _run_python(url, scenario, args.duration, args.connections)
            outcomes.append(outcome)
            rate = f"{outcome.requests_per_second:>9.1f} req/s"
            latency = f"p50 {outcome.p50_ms:>8.2f} ms  p99 {outcome.p99_ms:>8.2f} ms"
            print(
                f"{scenario.name:<34} {rate}  {latency}  non-2xx {outcome.non_2xx}  ({outcome.client})",
                flush=True,
            )
    if args.markdown:
        print("\n| scenario | req/s | p50 | p99 | non-2xx |\n|---|---:|---:|---:|---:|")
        for outcome in outcomes:
            print(
                f"| {outcome.scenario.name} | {outcome.requests_per_second:,.0f} | {outcome.p50_ms:.2f} ms | "
                f"{outcome.p99_ms:.2f} ms | {outcome.non_2xx} |"
            )
    print(
        f"\nclient: {outcomes[0].client}, {args.connections} connections, {args.duration} s per scenario, "
        f"{os.cpu_count()} CPUs, mock: 8 waitress threads, MemoryStore, {SEEDED:,} seeded tasks"
    )


if __name__ == "__main__":
    main()
