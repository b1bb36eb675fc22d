"""Serving the app with waitress, plus three things plain WSGI cannot do, via waitress's extension points.

* Raw header names: WSGI upper-cases header names, so the app could not tell ``x-api-key`` from
  ``X-API-Key``. Our parser keeps the names as sent and our task puts them into the environ under
  ``RAW_HEADER_NAMES``; only the AUTH-HEADER-CASE-INSENSITIVE fault reads them.
* Dropping a connection: when the app raises ``DropConnection``, our task writes nothing and marks the
  channel to close, so the client sees the socket closed without a status line. (Raising anything
  else makes waitress answer a text/plain 500 instead.)
* JSON errors from waitress itself: requests waitress rejects before the app sees them (a header
  block over ``max_request_header_size``, a malformed request line, a body over
  ``max_request_body_size``) get the one JSON error body instead of waitress's text/plain one.

Not being locked out by idle sockets: waitress stops accepting at ``connection_limit`` open
connections (100 by default) and closes an idle one only after ``channel_timeout`` (120 s), so about
a hundred sockets that send nothing lock every new client out for two minutes. ``ConnectionLimits``
raises the limit and adds a *request deadline*: a connection must deliver a whole request (head and
body) within ``request_timeout`` seconds of opening, or of the first byte of a later request, or it
is closed. Our own poll loop sweeps the channels for it (waitress's own maintenance only knows
inactivity, which a client trickling one header byte a second never shows).

``MockServer`` runs the asyncore loop in the calling thread until ``stop()`` (safe from any thread or
a signal handler) and then shuts the worker threads and sockets down in that same thread. It binds
its own socket, or serves sockets bound by a parent process (``bind_sockets``, for ``--workers``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# waitress ships no type hints (and types-waitress is not among our pinned dependencies).
from waitress import create_server, wasyncore  # type: ignore[import-untyped]
from waitress.adjustments import Adjustments  # type: ignore[import-untyped]
from waitress.channel import HTTPChannel  # type: ignore[import-untyped]
from waitress.parser import HTTPRequestParser, get_header_lines  # type: ignore[import-untyped]
from waitress.server import BaseWSGIServer  # type: ignore[import-untyped]
from waitress.task import ErrorTask, WSGITask  # type: ignore[import-untyped]

from mock_server.errors import DropConnection, error_body
from mock_server.middleware import RAW_HEADER_NAMES

__all__ = ["BACKLOG_REPORT_INTERVAL", "ConnectionLimits", "MockServer", "bind_sockets"]

logger = logging.getLogger("mock_server")

# waitress buffers a whole body before calling the app. Let it take comfortably more than the app's
# own limit, so that the app (not waitress) answers 413 and the client has finished sending by then.
_BODY_SLACK = 64 * 1024 * 1024
_LOOP_TIMEOUT = 0.2  # how long stop() may wait for the poll loop to notice
_SWEEP_INTERVAL = 0.5  # how often the request deadline is checked; a deadline is at most this late
BACKLOG_REPORT_INTERVAL = 10.0
"""Seconds between two "requests are waiting for a thread" warnings (waitress's own are silenced)."""


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    """What one client may hold: the limits a mock reachable by others should have.

    ``connection_limit``: open connections per process before waitress stops accepting (new
    clients then wait in the kernel's backlog). ``request_timeout``: seconds a connection has to
    deliver a whole request. ``idle_timeout``: seconds a connection may sit idle between requests
    (waitress's ``channel_timeout``; pooled keep-alive connections live here).
    """

    connection_limit: int = 1000
    request_timeout: float = 10.0
    idle_timeout: int = 120
    backlog: int = 1024

    def __post_init__(self) -> None:
        if self.connection_limit < 1 or self.request_timeout <= 0 or self.idle_timeout < 1:
            raise ValueError("connection limits must be positive")


class _Parser(HTTPRequestParser):  # type: ignore[misc]  # waitress ships no type hints
    raw_header_names: tuple[str, ...] = ()

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        index = header_plus.find(b"\r\n")
        names = []
        for line in get_header_lines(header_plus[index + 2 :]):
            name, colon, _ = line.partition(b":")
            if colon:
                names.append(name.strip().decode("latin-1"))
        self.raw_header_names = tuple(names)


class _Task(WSGITask):  # type: ignore[misc]
    dropped = False

    def get_environment(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environment()
        environ[RAW_HEADER_NAMES] = getattr(self.request, "raw_header_names", ())
        return environ

    def execute(self) -> None:
        try:
            super().execute()
        except DropConnection:
            self.dropped = True
            self.close_on_finish = True

    def finish(self) -> None:
        if not self.dropped:
            super().finish()


class _ErrorTask(ErrorTask):  # type: ignore[misc]
    def execute(self) -> None:
        error = self.request.error
        message = {
            400: "The request could not be parsed as HTTP.",
            413: "The body is larger than this server accepts.",
            431: "The request headers are larger than this server accepts.",
        }.get(error.code, "The server could not handle the request.")
        body = error_body(error.reason[:1] + error.reason[1:].lower(), message)
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):  # type: ignore[misc]
    parser_class = _Parser
    task_class = _Task
    error_task_class = _ErrorTask
    # When the request being received began (its first byte); None between requests.
    request_started: float | None = None
    # Whether a whole request ever arrived: until then the deadline runs from the connection's opening.
    had_request = False

    def received(self, data: bytes) -> bool:
        if data and self.request is None and self.request_started is None:
            self.request_started = time.time()
        handled: bool = super().received(data)
        if self.requests:
            self.had_request = True
        if self.request is None:
            self.request_started = None  # every byte so far belongs to whole requests
        return handled

    def service(self) -> None:
        self.had_request = True
        super().service()

    def overdue(self, cutoff: float) -> bool:
        """Has this connection failed to deliver a whole request since before ``cutoff``?"""
        if self.requests or self.will_close:
            return False  # being answered (or already closing): the app's time is not the client's
        started = self.request_started
        if started is None and not self.had_request:
            started = self.creation_time
        return started is not None and started < cutoff


class MockServer:
    """A waitress server bound on construction (so the port is known), served by ``serve_forever``."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        threads: int = 8,
        max_body_bytes: int = 5 * 1024 * 1024,
        limits: ConnectionLimits | None = None,
        sockets: Sequence[socket.socket] = (),
        parent_pid: int | None = None,
    ) -> None:
        """``sockets``: listening sockets bound elsewhere (then ``host``/``port`` are ignored).
        ``parent_pid``: stop once this process is no longer our parent (a worker outliving its
        supervisor, e.g. after ``kill -9``, would hold the port forever)."""
        self._stop = threading.Event()
        self._parent_pid = parent_pid
        self._threads = threads
        self._next_backlog_report = 0.0
        self.limits = limits if limits is not None else ConnectionLimits()
        where: dict[str, Any] = {"sockets": list(sockets)} if sockets else {"host": host, "port": port}
        self._server = create_server(
            app,
            **where,
            threads=threads,
            ident="enginy-mock",
            max_request_body_size=max_body_bytes + _BODY_SLACK,
            expose_tracebacks=False,
            clear_untrusted_proxy_headers=True,
            connection_limit=self.limits.connection_limit,
            channel_timeout=self.limits.idle_timeout,
            # waitress's own idle sweep; an int for waitress. Once a second keeps idle_timeout exact.
            cleanup_interval=1,
            backlog=self.limits.backlog,
        )
        servers = (
            [self._server] if isinstance(self._server, BaseWSGIServer) else list(self._server.map.values())
        )
        self._listeners = [server for server in servers if isinstance(server, BaseWSGIServer)]
        for listener in self._listeners:
            listener.channel_class = _Channel
        first = self._listeners[0]
        self.host: str = first.effective_host
        self.port: int = first.effective_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _socket_map(self) -> dict[int, Any]:
        socket_map: dict[int, Any] = getattr(self._server, "_map", None) or self._server.map
        return socket_map

    def _sweep(self, socket_map: dict[int, Any], now: float) -> None:
        """Close the connections past the request deadline (in the loop's thread, as waitress does)."""
        cutoff = now - self.limits.request_timeout
        for channel in list(socket_map.values()):
            if isinstance(channel, _Channel) and channel.overdue(cutoff):
                channel.will_close = True  # the loop closes it on its next pass (writable() says so)

    def _report_backlog(self, now: float) -> None:
        """Warn, at most once per BACKLOG_REPORT_INTERVAL, that requests wait for a free thread."""
        waiting = len(self._listeners[0].task_dispatcher.queue)
        if waiting and now >= self._next_backlog_report:
            self._next_backlog_report = now + BACKLOG_REPORT_INTERVAL
            logger.warning(
                "%d request(s) waiting: all %d threads are busy (more --threads, or --workers, may help)",
                waiting,
                self._threads,
            )

    def serve_forever(self) -> None:
        """Serve until ``stop()``; then finish in-flight requests, stop the threads, close every socket."""
        socket_map = self._socket_map()
        next_sweep = 0.0
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=_LOOP_TIMEOUT, map=socket_map, use_poll=True, count=1)
                now = time.time()
                if now >= next_sweep:
                    next_sweep = now + _SWEEP_INTERVAL
                    self._sweep(socket_map, now)
                    self._report_backlog(now)
                    if self._parent_pid is not None and os.getppid() != self._parent_pid:
                        break
        finally:
            self._listeners[0].task_dispatcher.shutdown()
            wasyncore.close_all(socket_map)

    def stop(self) -> None:
        """Ask ``serve_forever`` to return; only sets a flag, so it is safe in a signal handler."""
        self._stop.set()


def bind_sockets(
    host: str, port: int, *, backlog: int = 1024, reuse_port: bool = False
) -> list[socket.socket]:
    """Bind and listen on every address ``host`` resolves to, the way waitress would.

    For ``--workers``: the parent binds before it forks, so one port serves every worker. With
    ``reuse_port`` (``SO_REUSEPORT``) several such groups can bind the same port, one per worker,
    and Linux hashes each new connection to one of them. With port 0 the first address picks a free
    port and the others take the same one. Raises OSError when it cannot bind.
    """
    bound: list[socket.socket] = []
    try:
        for family, socktype, proto, sockaddr in Adjustments(host=host, port=port).listen:
            sock = socket.socket(family, socktype, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if bound[1:] and sockaddr[1] == 0:
                sockaddr = (sockaddr[0], bound[0].getsockname()[1], *sockaddr[2:])
            sock.bind(sockaddr)
            sock.listen(backlog)
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    return bound
