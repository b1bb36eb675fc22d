"""Serving the proxy with waitress, the way the mock is served, plus what a proxy needs of it.

* The header lines as written: WSGI upper-cases header names and folds repeats into one value, so a
  proxy on plain WSGI would send `X-Api-Key` for `x-api-key`, and a server whose header lookup is
  case-sensitive (a bug the catalogue names) would answer the proxy otherwise than Enginy. Our parser
  keeps the (name, value) pairs of the request as they came; the task puts them in the environ under
  `conformance.proxy.RAW_HEADERS`.
* A stop that loses nothing: `stop()` only sets a flag (safe in a signal handler). `serve_until_stopped`
  then closes the listening socket, goes on serving what is already in flight until every connection
  is idle (at most `drain_s`), so that answers being written reach their clients and are recorded, and
  only then stops the worker threads.

waitress itself adds a Date header to an answer without one and, to an answer that names its Server,
a `Via` (RFC 9110 §7.6.3: a proxy says it passed the answer on); it invents no Server header.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Final

# waitress ships no type hints (and types-waitress is not among our pinned dependencies).
from waitress import create_server, wasyncore  # type: ignore[import-untyped]
from waitress.channel import HTTPChannel  # type: ignore[import-untyped]
from waitress.parser import HTTPRequestParser, get_header_lines  # type: ignore[import-untyped]
from waitress.task import WSGITask  # type: ignore[import-untyped]

from conformance.proxy import RAW_HEADERS, ProxyApp

__all__ = ["MAX_REQUEST_BYTES", "ProxyServer"]

_LOOP_TIMEOUT: Final = 0.2  # how long stop() may wait for the poll loop to notice
_DRAIN_S: Final = 5.0
MAX_REQUEST_BYTES: Final = 64 * 1024 * 1024


class _Parser(HTTPRequestParser):  # type: ignore[misc]  # waitress ships no type hints
    header_lines: tuple[tuple[str, str], ...] = ()

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)  # validates every line first
        block = header_plus.partition(b"\r\n")[2]
        pairs = (line.partition(b":") for line in get_header_lines(block))
        self.header_lines = tuple(
            (name.decode("latin-1"), value.strip(b" \t").decode("latin-1")) for name, _, value in pairs
        )


class _Task(WSGITask):  # type: ignore[misc]
    def get_environment(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environment()
        environ[RAW_HEADERS] = getattr(self.request, "header_lines", ())
        return environ


class _Channel(HTTPChannel):  # type: ignore[misc]
    parser_class = _Parser
    task_class = _Task


class ProxyServer:
    """A waitress server for the proxy app, bound on construction (so the port is known).

    It binds one socket itself (the first address `host` resolves to), so that there is exactly one
    listener, whose port `--port 0` chose. Raises OSError when it cannot listen (the port is taken,
    the host is not this machine's).
    """

    def __init__(self, app: ProxyApp, *, host: str = "127.0.0.1", port: int = 8787, threads: int = 8) -> None:
        self._stop = threading.Event()
        sock = socket.create_server((host, port))
        try:
            self._server = create_server(
                app,
                sockets=[sock],
                threads=threads,
                ident="",  # no Server header of the proxy's own on answers that have none
                expose_tracebacks=False,
                # waitress holds a body whole before the app sees it; past this it answers 413 itself.
                max_request_body_size=MAX_REQUEST_BYTES,
            )
        except BaseException:
            sock.close()
            raise
        self._server.channel_class = _Channel
        self.host: str = sock.getsockname()[0]
        self.port: int = sock.getsockname()[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_until_stopped(self, *, drain_s: float = _DRAIN_S) -> None:
        """Serve until `stop()`; then let what is in flight finish (at most `drain_s`) and shut down."""
        socket_map: dict[int, Any] = self._server._map
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=_LOOP_TIMEOUT, map=socket_map, use_poll=True, count=1)
            # No new connections from here on. Only the listening socket closes: the server's own close()
            # would also close the trigger by which worker threads wake this loop to send their answers.
            wasyncore.dispatcher.close(self._server)
            deadline = time.monotonic() + drain_s
            while _busy(socket_map) and time.monotonic() < deadline:
                wasyncore.loop(timeout=0.05, map=socket_map, use_poll=True, count=1)
        finally:
            self._server.task_dispatcher.shutdown()
            wasyncore.close_all(socket_map)

    def stop(self) -> None:
        """Ask `serve_until_stopped` to return; only sets a flag, so it is safe in a signal handler."""
        self._stop.set()


def _busy(socket_map: dict[int, Any]) -> bool:
    """Whether a connection still has a request being handled or an answer not yet sent."""
    return any(
        isinstance(channel, HTTPChannel) and (channel.requests or channel.total_outbufs_len)
        for channel in list(socket_map.values())
    )
