"""``enginy-mock --workers N``: N processes serving one port, supervised by the process the user started.

Pre-fork: the supervisor builds the app once (the spec's validators compiled once), binds the
listening sockets (on Linux a group per worker on the one port, ``SO_REUSEPORT``: the kernel hashes
each new connection to one worker; elsewhere one group that every worker accepts from), closes its
SQLite connections and forks N workers. Each serves its inherited sockets with its own waitress and
opens its own connections to the shared files (see ``mock_server.shared``). The supervisor keeps
every socket open, so connections queued for a worker that died wait for its replacement. It then
only watches:

* SIGINT or SIGTERM stops every worker (SIGTERM, each finishes its in-flight requests), then returns;
* a worker that dies is reported on stderr (one line) and replaced by a new one; a pool whose
  workers keep dying (more than 3 per worker within 10 s) is stopped and the run fails;
* a worker whose supervisor vanished (``kill -9``) stops by itself (``MockServer(parent_pid=...)``),
  so no orphan keeps the port.

POSIX only (``os.fork``), like the rest of the mock's process handling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from types import FrameType

__all__ = ["describe_exit", "supervise"]

logger = logging.getLogger("mock_server")

_POLL = 0.1  # seconds between looks for a dead worker or a stop request
_STOP_GRACE = 15.0  # seconds a stopping worker may take before it is killed
_CRASH_WINDOW = 10.0
_CRASHES_PER_WORKER = 3


def describe_exit(status: int) -> str:
    """A wait status as words: ``exited with status 1``, ``was killed by SIGKILL``."""
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _run_worker(serve: Callable[[int], None], index: int) -> None:
    """In the child: serve, then leave without running the supervisor's clean-up (``os._exit``)."""
    code = 0
    try:
        serve(index)
    except BaseException:
        logger.exception("worker %d failed", index + 1)
        code = 1
    finally:
        os._exit(code)


def supervise(
    count: int,
    serve: Callable[[int], None],
    *,
    started: Callable[[list[int]], None],
    report: Callable[[str], None],
) -> int:
    """Fork ``count`` workers running ``serve(index)``; return 0 after a clean stop, 1 if they kept dying.

    ``started(pids)`` runs once, in the supervisor, when the first workers are forked; ``report``
    gets one line per event worth telling (a worker died, the pool gave up).
    """
    stopping = threading.Event()  # set by the signal handler; only read in the loop, so never blocks

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    workers: dict[int, int] = {}  # pid -> index

    def fork(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            _run_worker(serve, index)
        workers[pid] = index

    code = 0
    try:
        for index in range(count):
            fork(index)
        started(list(workers))
        deaths: deque[float] = deque()
        while not stopping.is_set():
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(_POLL)  # a signal cuts nothing short here: the flag is read within _POLL
                continue
            index = workers.pop(pid)
            now = time.monotonic()
            deaths.append(now)
            while deaths and deaths[0] < now - _CRASH_WINDOW:
                deaths.popleft()
            if len(deaths) > _CRASHES_PER_WORKER * count:
                report(
                    f"worker {index + 1} (pid {pid}) {describe_exit(status)}; workers keep dying "
                    f"({len(deaths)} in {_CRASH_WINDOW:g} s), stopping"
                )
                code = 1
                break
            if stopping.is_set():
                break
            fork(index)
            report(f"worker {index + 1} (pid {pid}) {describe_exit(status)}; started another")
    finally:
        _stop_all(workers)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def _stop_all(workers: dict[int, int]) -> None:
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):  # already gone: reaped below all the same
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE
    while workers:
        for pid in list(workers):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                del workers[pid]
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                del workers[pid]
        time.sleep(0.02)
