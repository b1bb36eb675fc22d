"""Generated testing in worker processes: the shares of one pass, run `lanes` at a time, merged back.

Against a server far away, generated testing is waiting: a thousand requests one after another at
200 ms each is over three minutes. Schemathesis' own workers are threads, and on Python 3.11 two of them
crash Hypothesis (CPython gh-106905, see conformance.engine); where they do not, they share one GIL with
Hypothesis' generation, which is CPU-bound. So the pass is split into shares (conformance.engine
`plan_shares`: every operation's examples, coverage and fuzzing phases, and the stateful phase in a few
parts with seeds of their own), run by up to `lanes` worker processes, largest share first, and merged
in share order, so the evidence does not depend on which share finished first. Each operation draws
from a seed made of the run's seed and its name, so a share generates what the whole pass would.

Workers come from multiprocessing's fork server, which imports Schemathesis once: no interpreter start
per share, and never a fork of a process whose other threads hold locks. The key reaches them through
the pipe that carries their arguments, never a command line or the environment. Ctrl-C is the parent's
to handle: workers ignore SIGINT, and the parent stops them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.context
import queue as queue_module
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from conformance.engine import EngineError, Gate, Job, RequestsCallback, Share, ShareResult, run_share

__all__ = ["new_gate", "new_stop", "run_in_lanes", "start_fork_server"]

_CONTEXT: multiprocessing.context.ForkServerContext | None = None


def _context() -> multiprocessing.context.ForkServerContext:
    global _CONTEXT
    if _CONTEXT is None:
        context = multiprocessing.get_context("forkserver")
        # The fork server imports (and so runs) the warm-up once; every worker forked from it starts warm.
        context.set_forkserver_preload(["conformance.engine_warmup"])
        _CONTEXT = context
    return _CONTEXT


def new_gate(size: int) -> Gate:
    """A bound on the requests in flight that this process and its worker processes share."""
    gate: Gate = _context().BoundedSemaphore(size)
    return gate


def new_stop() -> Any:
    """An Event that stops a partitioned pass (its workers are stopped, their results dropped)."""
    return _context().Event()


def start_fork_server() -> None:
    """Start the fork server (and its warm-up) now, in the background of whatever runs meanwhile."""
    import multiprocessing.forkserver

    _context()
    multiprocessing.forkserver.ensure_running()


# A worker's side of the pipe to the parent, and the gate, set once when the worker starts.
_WORKER: dict[str, Any] = {}


def _start_worker(counts: Any, gate: Gate | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _WORKER["counts"] = counts
    _WORKER["gate"] = gate


def _run(job: Job, share: Share) -> ShareResult:
    counts = _WORKER["counts"]

    def count(done: int, phase: str) -> None:
        counts.put((done, phase))

    return run_share(job, share, gate=_WORKER["gate"], on_requests=count, quiet=True)


def run_in_lanes(
    job: Job,
    shares: Sequence[Share],
    *,
    lanes: int,
    gate: Gate | None = None,
    progress: Callable[[str], None] = lambda _: None,
    on_requests: RequestsCallback | None = None,
    stop: Any = None,
) -> list[ShareResult]:
    """Run every share in up to `lanes` worker processes; the results in the order of `shares`.

    Raises EngineError when a worker process died or `stop` was set, and whatever a share raised (the
    first of them).
    """
    context = _context()
    counts: Any = context.Queue()
    with _relaying(counts, on_requests):
        pool = ProcessPoolExecutor(
            max_workers=max(1, min(lanes, len(shares))),
            mp_context=context,
            initializer=_start_worker,
            initargs=(counts, gate),
        )
        try:
            futures: list[Future[ShareResult]] = [pool.submit(_run, job, share) for share in shares]
            while True:
                done, pending = wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
                failed = next((future for future in futures if future in done and future.exception()), None)
                if failed is not None or not pending:
                    break
                if stop is not None and stop.is_set():
                    _stop(pool)
                    raise EngineError("Generated testing was stopped before it finished.")
            if failed is not None:
                _stop(pool)
                error = failed.exception()
                assert error is not None
                if isinstance(error, BrokenProcessPool):
                    raise EngineError(
                        "A worker process of generated testing stopped unexpectedly (out of memory?); rerun "
                        "with --concurrency 1 to run generated testing in one process."
                    ) from None
                raise error
            results = [future.result() for future in futures]
        except BaseException:  # Ctrl-C included: no worker outlives the run
            _stop(pool)
            raise
        pool.shutdown(wait=True)
    progress(f"generated testing: {len(shares)} shares done in {min(lanes, len(shares))} worker processes")
    return results


def _stop(pool: ProcessPoolExecutor) -> None:
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=5)


@contextlib.contextmanager
def _relaying(counts: Any, on_requests: RequestsCallback | None) -> Iterator[None]:
    """Pass the workers' request counts on to `on_requests` from a thread of this process."""
    stop = threading.Event()

    def relay() -> None:
        while not stop.is_set():
            try:
                count, phase = counts.get(timeout=0.2)
            except queue_module.Empty:
                continue
            except (EOFError, OSError):
                return
            if on_requests is not None:
                on_requests(count, phase)

    thread = threading.Thread(target=relay, name="enginy-engine-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        with contextlib.suppress(Exception):
            counts.close()
            counts.join_thread()
