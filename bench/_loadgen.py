"""Load generator for the API benchmarks, run as its own process: N client threads, bounded requests, loopback.

Each client keeps one HTTP/1.1 connection (as an app server's connection pool does) and uses the standard
library's http.client: the client's own CPU is kept small, since it shares the machine's two cores with the
API it measures. Reads stdin ``{"url", "key", "paths", "clients", "bodies"?}``; a path whose entry in
``bodies`` is not null is POSTed with that JSON body. Prints latencies, non-2xx statuses, fallbacks and each
answer's ``x-twin-handler-ms`` (the time inside the Lambda handler).
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit


def main() -> None:
    spec = json.loads(sys.stdin.read())
    url, key, paths, clients = spec["url"], spec["key"], spec["paths"], spec["clients"]
    bodies: list[Any] = spec.get("bodies") or [None] * len(paths)
    target = urlsplit(url)
    if target.hostname != "127.0.0.1":
        raise SystemExit("loopback only")
    latencies: list[float] = []
    handler_ms: list[float] = []
    errors: list[int] = []
    fallbacks: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(len(paths)))

    def client() -> None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                conn.close()
                return
            body = None if bodies[i] is None else json.dumps(bodies[i]).encode()
            headers = {"x-api-key": key} | ({"Content-Type": "application/json"} if body else {})
            started = time.perf_counter()
            conn.request("POST" if body else "GET", paths[i], body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            elapsed = (time.perf_counter() - started) * 1000
            inside = resp.getheader("x-twin-handler-ms")
            with lock:
                latencies.append(elapsed)
                if inside is not None:
                    handler_ms.append(float(inside))
                if resp.status >= 300:
                    errors.append(resp.status)
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
