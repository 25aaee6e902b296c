"""Load generator for the API benchmarks, run as its own process: N client threads, bounded requests, loopback.

Each client keeps one HTTP/1.1 connection (as an app server's connection pool does). The client shares the
machine's two cores with the API it measures, so it speaks HTTP over a plain socket: requests are written as
bytes and answers read by their Content-Length, without the standard library's header parser. That halves the
client's CPU per request (measured over 400 requests, start-up included: 0.33-0.58 ms with http.client,
0.16-0.30 ms this way), which the API then has.
Reads stdin ``{"url", "key", "paths", "clients", "bodies"?}``; a path whose entry in ``bodies`` is not null is
POSTed with that JSON body. Prints latencies, non-2xx statuses, fallbacks and each answer's
``x-twin-handler-ms`` (the time inside the Lambda handler).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit


class Connection:
    """One keep-alive HTTP/1.1 connection; answers must carry Content-Length (the twin's always do)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"] + [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        answer = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            answer[name.strip().lower()] = value.strip()
        length = int(answer.get("content-length", 0))
        while len(self.buffer) < length:
            self._read()
        data, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), answer, data

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def main() -> None:
    spec = json.loads(sys.stdin.read())
    url, key, paths, clients = spec["url"], spec["key"], spec["paths"], spec["clients"]
    bodies: list[Any] = spec.get("bodies") or [None] * len(paths)
    target = urlsplit(url)
    if target.hostname != "127.0.0.1" or target.port is None:
        raise SystemExit("loopback only")
    latencies: list[float] = []
    handler_ms: list[float] = []
    errors: list[int] = []
    fallbacks: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(len(paths)))

    def client() -> None:
        conn = Connection(target.hostname or "", target.port or 0)
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                conn.close()
                return
            body = None if bodies[i] is None else json.dumps(bodies[i]).encode()
            headers = {"x-api-key": key} | ({"Content-Type": "application/json"} if body else {})
            started = time.perf_counter()
            status, answer, data = conn.request("POST" if body else "GET", paths[i], headers, body)
            elapsed = (time.perf_counter() - started) * 1000
            inside = answer.get("x-twin-handler-ms")
            with lock:
                latencies.append(elapsed)
                if inside is not None:
                    handler_ms.append(float(inside))
                if status >= 300:
                    errors.append(status)
                elif body is None and b'"fallback":true' in data.replace(b" ", b""):
                    fallbacks.append(json.loads(data).get("fallback_reason") or "")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    print(json.dumps({"latencies_ms": latencies, "handler_ms": handler_ms, "errors": errors,
                      "fallbacks": fallbacks, "seconds": seconds}))  # fmt: skip


if __name__ == "__main__":
    main()
