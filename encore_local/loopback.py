"""A threaded HTTP server on loopback, started in the background: the twin's endpoint and API front door."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _SharedPortServer(ThreadingHTTPServer):
    """Several processes may listen on one port; the kernel spreads new connections over them."""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class LoopbackServer:
    def __init__(
        self, handler: type[BaseHTTPRequestHandler], host: str, port: int, name: str, *, shared_port: bool = False
    ) -> None:
        self.httpd = (_SharedPortServer if shared_port else ThreadingHTTPServer)((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        self.thread.start()
        return self.url

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
