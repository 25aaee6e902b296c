"""A threaded HTTP server on loopback, started in the background: the twin's endpoint and API front door."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ClosesConnections:
    """Mixin for a threading ``socketserver``: stopping it also closes the keep-alive connections it is serving,
    as a stopped process does (otherwise clients' pooled connections would go on being answered)."""

    _open: set[socket.socket]
    _open_lock: threading.Lock

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        if not hasattr(self, "_open"):
            self._open, self._open_lock = set(), threading.Lock()
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            with self._open_lock:
                self._open.discard(request)

    def close_connections(self) -> None:
        for sock in list(getattr(self, "_open", ())):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Server(ClosesConnections, ThreadingHTTPServer):
    pass


class _SharedPortServer(_Server):
    """Several processes may listen on one port; the kernel spreads new connections over them."""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class LoopbackServer:
    def __init__(
        self, handler: type[BaseHTTPRequestHandler], host: str, port: int, name: str, *, shared_port: bool = False
    ) -> None:
        self.httpd = (_SharedPortServer if shared_port else _Server)((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> str:
        self.thread.start()
        return self.url

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_connections()
