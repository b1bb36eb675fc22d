"""Load benchmark for the reference mock: requests per second and p50/p99 latency at 16 connections.

Not a test. It starts the mock (``python -m mock_server``, 8 waitress threads, in-memory store, log
level warning) and, as the ceiling, a bare WSGI app on the same waitress integration, each as its
own process, seeds 10,000 tasks through the admin API, then drives each scenario with wrk when it is
installed (``apt-get install -y wrk``) or else with a small Python client (threads with keep-alive
connections; on a 2-core box it is itself the bottleneck, so its numbers are a floor).

With ``--against-prism`` it also starts Stoplight Prism on the same spec, in static mode (answers
from the spec's examples) and in dynamic mode (``-d``, answers generated from the schemas), sends
both the same request mix, and prints each mock row as a ratio of Prism's and of the bare ceiling.
It installs nothing: Prism is taken from ``--prism PATH``, else ``prism`` on PATH, else
``node_modules/.bin/prism`` under the working directory (``npm install @stoplight/prism-cli``); when
none is there it says so and measures the mock alone.

Before the load, it measures the service time of large batches in process (the app called as a
WSGI callable, no sockets): 100, 1,000 and 10,000 ids, to show the cost is linear in the ids.

Usage::

    python bench/mock_load.py                      # wrk if present, 10 s per scenario
    python bench/mock_load.py --client python      # force the Python client
    python bench/mock_load.py --duration 5 --connections 16 --markdown
    python bench/mock_load.py --against-prism --prism /work/prism/node_modules/.bin/prism
    python bench/mock_load.py --against-prism --workers 1,2 # the mock with 1 and with 2 workers, side by side
    python bench/mock_load.py --against-prism --workers 1,2 --rounds 3  # interleaved, medians of 3 rounds
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
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
# The scenarios Prism is sent too (it keeps no state, so the 10,000-id batches would only measure
# its example answer again).
SHARED = ("GET /health", "POST /tasks (create)", "GET /tasks/{id}", "POST /tasks/batch, 100 ids")


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
    import logging

    from mock_server.serving import MockServer

    # Logged as the mock logs (mock_server.cli): without this, waitress's per-request "Task queue depth"
    # warnings go to stderr through logging's last resort, and the ceiling measures them.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "15")])
        return [b'{"status":"ok"}']

    server = MockServer(app, port=port, threads=8)
    print(f"bare listening on {server.url}", flush=True)
    server.serve_forever()


@contextmanager
def _process(args: list[str], *, startup_s: float = 60) -> Iterator[str]:
    """Start a server, wait for its "listening on URL" line (Prism prints others first), yield the URL.

    Its output is drained by a thread afterwards: a server blocked on a full pipe stops answering.
    """
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        stdout = proc.stdout
        found: list[str] = []
        seen: list[str] = []

        def read() -> None:
            for line in stdout:
                if not found:
                    seen.append(line)
                    match = LISTENING.search(line)
                    if match:
                        found.append(match.group(1))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + startup_s
        while not found and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not found:
            raise RuntimeError(f"{args[0]} did not start: {''.join(seen)[-500:]!r}")
        yield found[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_prism(explicit: str | None) -> str | None:
    """Prism's executable: --prism PATH, else on PATH, else node_modules/.bin under the working dir."""
    if explicit:
        return explicit if Path(explicit).is_file() else None
    found = shutil.which("prism")
    if found:
        return found
    local = Path("node_modules/.bin/prism")
    return str(local.resolve()) if local.is_file() else None


def _prism_command(prism: str, *, dynamic: bool) -> list[str]:
    from enginy_spec import OPENAPI_PATH

    command = [prism, "mock", "-h", "127.0.0.1", "-p", str(_free_port()), str(OPENAPI_PATH)]
    return [*command, "-d"] if dynamic else command


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
    # --timeout 30s: a 10,000-id batch queued behind 15 others takes over wrk's default 2 s.
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
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


def service_times(sizes: tuple[int, ...] = (100, 1_000, 10_000)) -> list[tuple[str, int, float]]:
    """Median in-process service time of batch get and batch complete for each size (ms).

    Timed as CPU time of this process (``time.process_time``), not wall time: on a shared 2-core box
    wall time mostly measures the neighbours, and the call is single-threaded, so its CPU time is the
    time it would take on an idle core.
    """
    import falcon.testing

    from mock_server import MockConfig, create_app

    app = create_app(MockConfig(api_keys=(API_KEY,), admin_token=ADMIN_TOKEN))
    ids = [f"task-bench-{n:05d}" for n in range(max(sizes))]
    seed = {"tasks": [{"id": i, "subject": f"Seeded task {n}", "type": "call"} for n, i in enumerate(ids)]}

    def call(method: str, path: str, body: bytes, headers: dict[str, str]) -> str:
        environ = falcon.testing.create_environ(
            path=path, method=method, body=body, headers={"Content-Type": "application/json", **headers}
        )
        status: list[str] = []
        b"".join(app(environ, lambda code, _headers, _exc=None: status.append(code)))  # type: ignore[arg-type]
        return status[0]

    assert call("POST", "/__admin/seed", json.dumps(seed).encode(), {"X-Admin-Token": ADMIN_TOKEN})[0] == "2"
    results = []
    for label, method, extra in (
        ("POST /tasks/batch", "POST", {}),
        ("PATCH /tasks/batch", "PATCH", {"completed": True}),
    ):
        for size in sizes:
            body = json.dumps({"ids": ids[:size], **extra}).encode()
            rounds = max(5, 20_000 // size)
            timings = []
            for _ in range(rounds):
                started = time.process_time()
                status = call(method, "/tasks/batch", body, {"X-API-Key": API_KEY})
                timings.append((time.process_time() - started) * 1000)
                assert status.startswith("200"), status
            results.append((label, size, statistics.median(timings)))
    return results


def _drive(
    client: str,
    url: str,
    scenario: Scenario,
    args: argparse.Namespace,
    folder: Path,
    *,
    duration: int | None = None,
) -> Outcome:
    seconds = duration or args.duration
    if client == "wrk":
        return _run_wrk(url, scenario, seconds, args.connections, folder)
    return _run_python(url, scenario, seconds, args.connections)


def _line(target: str, outcome: Outcome) -> str:
    rate = f"{outcome.requests_per_second:>9.1f} req/s"
    latency = f"p50 {outcome.p50_ms:>8.2f} ms  p99 {outcome.p99_ms:>8.2f} ms"
    return f"{target:<14} {outcome.scenario.name:<34} {rate}  {latency}  non-2xx {outcome.non_2xx}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="seconds of load before each scenario, not measured (Prism's JIT needs it)",
    )
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument(
        "--against-prism",
        action="store_true",
        help="also measure Prism (static and dynamic) on the same spec",
    )
    parser.add_argument(
        "--prism", metavar="PATH", help="Prism's executable (default: on PATH or node_modules)"
    )
    parser.add_argument(
        "--workers",
        type=_worker_counts,
        default=(1,),
        metavar="N[,N...]",
        help="measure the mock with each of these --workers counts, side by side in the run (e.g. 1,2)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with more than 1: every server up at once, taking turns scenario by scenario, each figure "
        "the median of the rounds (1: one server at a time, one measurement each)",
    )
    parser.add_argument("--skip-service-time", action="store_true", help="no in-process batch timings")
    parser.add_argument("--service-time-only", action="store_true", help="only the in-process batch timings")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.serve_bare is not None:
        _serve_bare(args.serve_bare)
        return
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    prism = find_prism(args.prism) if args.against_prism else None
    if args.against_prism and prism is None:
        where = args.prism or "prism on PATH or ./node_modules/.bin/prism"
        print(
            f"Prism not found ({where}); install it with `npm install @stoplight/prism-cli` "
            "(this script installs nothing). Measuring the mock and the ceiling only.",
            flush=True,
        )

    if not args.skip_service_time:
        print(
            "in-process service time (median CPU time; the app as a WSGI callable, no sockets):", flush=True
        )
        for label, size, ms in service_times():
            print(
                f"  {label:<20} {size:>6,} ids  {ms:>8.2f} ms  ({ms / size * 1000:.2f} us per id)", flush=True
            )
    if args.service_time_only:
        return

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
    mocks = {_mock_label(n): [*mock_command, "--workers", str(n)] for n in args.workers}
    bare_command = [sys.executable, __file__, "--serve-bare", "0"]
    targets: list[tuple[str, list[str]]] = [("bare", bare_command), *mocks.items()]
    if prism:
        targets += [
            ("prism static", _prism_command(prism, dynamic=False)),
            ("prism dynamic", _prism_command(prism, dynamic=True)),
        ]
    results: dict[tuple[str, str], Outcome] = {}
    rounds: dict[tuple[str, str], list[Outcome]] = {}
    task_ids = [f"task-bench-{n:05d}" for n in range(SEEDED)]
    scenarios = _scenarios(task_ids)

    def seed(target: str, url: str) -> None:
        if target in mocks:
            seed = {
                "tasks": [
                    {"id": task_id, "subject": f"Seeded task {n}", "type": "call"}
                    for n, task_id in enumerate(task_ids)
                ]
            }
            _call(url, "POST", "/__admin/seed", json.dumps(seed).encode(), {"X-Admin-Token": ADMIN_TOKEN})

    def applies(target: str, scenario: Scenario) -> bool:
        if (scenario.target == "bare") != (target == "bare"):
            return False
        return not (target.startswith("prism") and scenario.name not in SHARED)

    def measure(target: str, url: str, scenario: Scenario, tmp: Path) -> None:
        if args.warmup:
            _drive(client, url, scenario, args, tmp, duration=args.warmup)
        outcome = _drive(client, url, scenario, args, tmp)
        rounds.setdefault((target, scenario.name), []).append(outcome)
        print(_line(target, outcome), flush=True)

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.rounds == 1:
            # One server at a time, so none of them competes with another for the 2 CPUs.
            for target, command in targets:
                with _process(command) as url:
                    seed(target, url)
                    for scenario in scenarios:
                        if applies(target, scenario):
                            measure(target, url, scenario, tmp)
        else:
            # Every server up at once (idle, they cost nothing that shows) and the targets taking turns
            # scenario by scenario, who goes first rotating each round: a noisy minute on the box lands
            # on all of them alike, and each figure is the median of its rounds.
            urls = {target: stack.enter_context(_process(command)) for target, command in targets}
            for target, url in urls.items():
                seed(target, url)
            names = list(urls)
            for round_index in range(args.rounds):
                print(f"round {round_index + 1} of {args.rounds}", flush=True)
                order = names[round_index % len(names) :] + names[: round_index % len(names)]
                for scenario in scenarios:
                    for target in order:
                        if applies(target, scenario):
                            measure(target, urls[target], scenario, tmp)
    for key, outcomes in rounds.items():
        middle = statistics.median_low(outcome.requests_per_second for outcome in outcomes)
        results[key] = next(outcome for outcome in outcomes if outcome.requests_per_second == middle)
    for index, mock_label in enumerate(mocks):
        _report(results, mock_label, args, full_table=index == 0)
    workers = " and ".join(f"{n} worker process{'es' if n > 1 else ''}" for n in args.workers)
    print(
        f"\nclient: {client}, {args.connections} connections, {args.duration} s per scenario"
        f"{f', median of {args.rounds} interleaved rounds' if args.rounds > 1 else ''}, "
        f"{os.cpu_count()} CPUs, mock: {workers}, 8 waitress threads, {SEEDED:,} seeded tasks "
        "(MemoryStore with one worker, the shared temporary SQLite store with more)"
    )


def _worker_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of worker counts: {text!r} (e.g. 1,2)") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"worker counts start at 1: {text!r}")
    return counts


def _mock_label(workers: int) -> str:
    return "mock" if workers == 1 else f"mock x{workers}"


def _report(
    results: dict[tuple[str, str], Outcome], mock_label: str, args: argparse.Namespace, *, full_table: bool
) -> None:
    ceiling = results[("bare", "bare WSGI app (ceiling)")].requests_per_second
    has_prism = any(target.startswith("prism") for target, _ in results)

    def ratio(scenario: str, target: str) -> str:
        other = results.get((target, scenario))
        mine = results.get((mock_label, scenario))
        if other is None or mine is None or not other.requests_per_second:
            return "-"
        return f"{mine.requests_per_second / other.requests_per_second:.2f}x"

    print(f"\nratios ({mock_label} req/s over the other's, same run):")
    for (target, scenario), outcome in results.items():
        if target != mock_label:
            continue
        parts = [f"bare {outcome.requests_per_second / ceiling:.2f}x"]
        if has_prism and scenario in SHARED:
            parts += [
                f"prism static {ratio(scenario, 'prism static')}",
                f"dynamic {ratio(scenario, 'prism dynamic')}",
            ]
        print(f"  {scenario:<34} " + ", ".join(parts))
    if args.markdown and full_table:
        print("\n| server | scenario | req/s | p50 | p99 | non-2xx |\n|---|---|---:|---:|---:|---:|")
        for (target, scenario), o in results.items():
            print(
                f"| {target} | {scenario} | {o.requests_per_second:,.0f} | {o.p50_ms:.2f} ms | "
                f"{o.p99_ms:.2f} ms | {o.non_2xx} |"
            )
    if args.markdown and has_prism:
        print(f"\n| scenario | {mock_label} req/s | ÷ Prism static | ÷ Prism dynamic | ÷ bare ceiling |")
        print("|---|---:|---:|---:|---:|")
        for scenario in SHARED:
            mine = results[(mock_label, scenario)].requests_per_second
            print(
                f"| {scenario} | {mine:,.0f} | {ratio(scenario, 'prism static')} | "
                f"{ratio(scenario, 'prism dynamic')} | {mine / ceiling:.2f}x |"
            )


if __name__ == "__main__":
    main()
