"""What `enginy-conformance proxy` adds to each request: latency direct to the mock vs through the proxy.

Not a test. It starts three servers, each as its own process:

    direct       the mock (``python -m mock_server``, 8 waitress threads, in-memory store, log level
                 warning), which the other two forward to
    forwarding   the proxy's forwarding alone: the same app and waitress server (conformance.proxy,
                 conformance.proxy_server) with each exchange dropped instead of judged: the hop
    proxy        the real thing, ``python -m conformance proxy --port 0``, its lines to a scratch file

It seeds 7 tasks, then sends a request mix one request at a time over one keep-alive connection per
target:

    GET /health                         the smallest exchange (4 rules judged)
    POST /tasks                         a create: request body validated, answer judged (4 rules)
    POST /tasks/batch, 10 ids           7 known ids and 3 unknown ones (6 rules)

Each round sends every request of the mix to all three, back to back, who goes first rotating from
round to round, so that whatever else the box is doing lands on all sides alike. The proxy judges off
the serving path (its judging thread), so what it costs a client beyond the hop is the CPU (and the
GIL) the judging of earlier exchanges takes from its serving threads. Back to back, judging always
overlaps the next request; `--pause-ms` leaves a gap after each request's round of three, as a client
that is not a benchmark does. The proxy is stopped with SIGINT at the end and must have judged every
exchange it forwarded. Prints a Markdown table (for docs/benchmarks.md, "## Proxy overhead").

Usage::

    python bench/proxy_overhead.py                    # 2,000 rounds (18,000 requests), about a minute
    python bench/proxy_overhead.py --rounds 500
    python bench/proxy_overhead.py --pause-ms 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

# bench/ is on sys.path when this script runs. _process starts a server, reads its "listening on URL"
# line and stops it by its pid; a Scenario is one request (name, method, path, body).
from mock_load import Scenario, _process

API_KEY = "bench-key-0123"
ADMIN_TOKEN = "bench-admin-0123"
LISTENING = re.compile(r"listening on (http://[\d.]+:\d+)")
WARMUP_ROUNDS = 100
START_S = 30.0


SIDES = ("direct", "forwarding", "proxy")


def _quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _serve_forwarding(upstream: str) -> None:
    """The proxy's forwarding alone: the same app and server, each exchange dropped instead of judged."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
    from conformance.proxy import create_proxy_app
    from conformance.proxy_server import ProxyServer

    server = ProxyServer(create_proxy_app(upstream=upstream, record=lambda _exchange: None), port=0)
    print(f"forwarding listening on {server.url}", flush=True)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: server.stop())
    server.serve_until_stopped()


def _mock() -> AbstractContextManager[str]:
    command = [sys.executable, "-m", "mock_server", "--port", "0", "--api-key", API_KEY, "--threads", "8"]
    return _process([*command, "--admin-token", ADMIN_TOKEN, "--log-level", "warning"])


@contextmanager
def _proxy(upstream: str, folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """The proxy, its lines going to a file (a pipe read here would take CPU from the measurement)."""
    lines = folder / "proxy.out"
    command = [sys.executable, "-m", "conformance", "proxy", "--upstream", upstream, "--port", "0"]
    command += ["--report-dir", str(folder / "reports")]
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}
    with lines.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + START_S
        while not (found := LISTENING.search(lines.read_text(encoding="utf-8"))):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the proxy did not start: {lines.read_text(encoding='utf-8')!r}")
            time.sleep(0.05)
        yield found.group(1), proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)


def _connection(url: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=60)


def _send(conn: http.client.HTTPConnection, request: Scenario) -> tuple[float, int]:
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    started = time.perf_counter()
    conn.request(request.method, request.path, body=request.body or None, headers=headers)
    response = conn.getresponse()
    response.read()
    return (time.perf_counter() - started) * 1000, response.status


def _mix(mock_url: str) -> list[Scenario]:
    conn = _connection(mock_url)
    ids = []
    for n in range(7):
        body = json.dumps({"subject": f"Bench task {n}", "type": "call"}).encode()
        conn.request("POST", "/tasks", body=body, headers={"X-API-Key": API_KEY})
        ids.append(json.loads(conn.getresponse().read())["id"])
    conn.close()
    batch = json.dumps({"ids": [*ids, "task-unknown-1", "task-unknown-2", "task-unknown-3"]}).encode()
    return [
        Scenario("GET /health", "GET", "/health"),
        Scenario("POST /tasks", "POST", "/tasks", b'{"subject":"Follow up","type":"call"}'),
        Scenario("POST /tasks/batch, 10 ids", "POST", "/tasks/batch", batch),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000, help="measured rounds (each: the mix, every way)")
    parser.add_argument("--pause-ms", type=float, default=0.0, help="pause after each request's round trip")
    parser.add_argument("--serve-forwarding", metavar="UPSTREAM", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_forwarding:
        _serve_forwarding(args.serve_forwarding)
        return
    samples: dict[str, dict[str, list[float]]] = {}
    with _mock() as mock_url, tempfile.TemporaryDirectory() as tmp:
        mix = _mix(mock_url)
        samples = {request.name: {side: [] for side in SIDES} for request in mix}
        forwarding = _process([sys.executable, __file__, "--serve-forwarding", mock_url])
        with forwarding as forwarding_url, _proxy(mock_url, Path(tmp)) as (proxy_url, proc, lines):
            urls = {"direct": mock_url, "forwarding": forwarding_url, "proxy": proxy_url}
            connections = {side: _connection(url) for side, url in urls.items()}
            sent_through = 0
            for round_number in range(WARMUP_ROUNDS + args.rounds):
                # Who goes first rotates, so that no side always meets a just-woken box.
                turn = round_number % len(SIDES)
                order = SIDES[turn:] + SIDES[:turn]
                for request in mix:
                    for side in order:
                        elapsed, status = _send(connections[side], request)
                        if status >= 300:
                            raise RuntimeError(f"{request.name} answered {status} ({side})")
                        sent_through += side == "proxy"
                        if round_number >= WARMUP_ROUNDS:
                            samples[request.name][side].append(elapsed)
                    if args.pause_ms:
                        time.sleep(args.pause_ms / 1000)
            for conn in connections.values():
                conn.close()
            stop_started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=300)
            stop_s = time.monotonic() - stop_started
            judged = len(re.findall(r"^#\d+ ", lines.read_text(encoding="utf-8"), re.MULTILINE))
    if code != 0 or judged != sent_through:
        raise RuntimeError(f"the proxy exited {code} having judged {judged} of {sent_through} exchanges")
    every = {side: [value for found in samples.values() for value in found[side]] for side in SIDES}
    rows = [*samples.items(), ("the whole mix", every)]
    table = []
    for name, found in rows:
        quantiles = {side: (_quantile(found[side], 50), _quantile(found[side], 95)) for side in SIDES}
        table.append((name, quantiles))
    columns = "direct p50 | direct p95 | forwarding only p50 | p95 | proxy p50 | proxy p95"
    print(f"| request | {columns} | p50 overhead | of it, forwarding |")
    print("|---|" + "---:|" * 8)
    for name, quantiles in table:
        cells = " | ".join(f"{quantiles[side][0]:.2f} ms | {quantiles[side][1]:.2f} ms" for side in SIDES)
        overhead = quantiles["proxy"][0] - quantiles["direct"][0]
        hop = quantiles["forwarding"][0] - quantiles["direct"][0]
        print(f"| {name} | {cells} | {overhead:+.2f} ms | {hop:+.2f} ms |")
    whole = table[-1][1]
    each_way = args.rounds * len(mix)
    print(
        f"\np50 overhead per request: {whole['proxy'][0] - whole['direct'][0]:.2f} ms, of which forwarding "
        f"alone {whole['forwarding'][0] - whole['direct'][0]:.2f} ms ({args.rounds:,} rounds, {each_way:,} "
        f"requests each way, {args.pause_ms:g} ms pause; {judged:,} exchanges judged, the reports written "
        f"{stop_s:.1f} s after SIGINT)"
    )
    print(f"{os.cpu_count()} CPUs, Python {platform.python_version()}, mock: 8 waitress threads, MemoryStore")


if __name__ == "__main__":
    main()
