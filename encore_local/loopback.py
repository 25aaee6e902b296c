"""A threaded HTTP server on loopback, started in the background: the twin's endpoint and API front door."""

from __future__ import annotations

import contextlib
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port nothing listens on now (the caller binds it at once; collisions are retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


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
    # Clients that connect at once (a benchmark's 32) all find room in the accept queue; past it, a dropped SYN
    # costs a client a one-second retransmission.
    request_queue_size = 128


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str], *,
          head_only: bool = False) -> None:  # fmt: skip
    """Status line, headers and body in one write: one packet and one wake-up of the client, where http.server's
    own ``send_response``/``end_headers`` and a body write make two. ``head_only``: an answer to HEAD, the
    headers GET would carry and no body."""
    head = [f"{handler.protocol_version} {status} {HTTPStatus(status).phrase}", f"Date: {handler.date_time_string()}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    handler.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body))


class LoopbackServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str, port: int, name: str) -> None:
        self.httpd = _Server((host, port), handler)
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
