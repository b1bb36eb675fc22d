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

``MockServer`` runs the asyncore loop in the calling thread until ``stop()`` (safe from any thread or
a signal handler) and then shuts the worker threads and sockets down in that same thread.
"""

from __future__ import annotations

import threading
from typing import Any

# waitress ships no type hints (and types-waitress is not among our pinned dependencies).
from waitress import create_server, wasyncore  # type: ignore[import-untyped]
from waitress.channel import HTTPChannel  # type: ignore[import-untyped]
from waitress.parser import HTTPRequestParser, get_header_lines  # type: ignore[import-untyped]
from waitress.server import BaseWSGIServer  # type: ignore[import-untyped]
from waitress.task import ErrorTask, WSGITask  # type: ignore[import-untyped]

from mock_server.errors import DropConnection, error_body
from mock_server.middleware import RAW_HEADER_NAMES

__all__ = ["MockServer"]

# waitress buffers a whole body before calling the app. Let it take comfortably more than the app's
# own limit, so that the app (not waitress) answers 413 and the client has finished sending by then.
_BODY_SLACK = 64 * 1024 * 1024
_LOOP_TIMEOUT = 0.2  # how long stop() may wait for the poll loop to notice


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
    ) -> None:
        self._stop = threading.Event()
        self._server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="enginy-mock",
            max_request_body_size=max_body_bytes + _BODY_SLACK,
            expose_tracebacks=False,
            clear_untrusted_proxy_headers=True,
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

    def serve_forever(self) -> None:
        """Serve until ``stop()``; then finish in-flight requests, stop the threads, close every socket."""
        socket_map = self._socket_map()
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=_LOOP_TIMEOUT, map=socket_map, use_poll=True, count=1)
        finally:
            self._listeners[0].task_dispatcher.shutdown()
            wasyncore.close_all(socket_map)

    def stop(self) -> None:
        """Ask ``serve_forever`` to return; only sets a flag, so it is safe in a signal handler."""
        self._stop.set()
