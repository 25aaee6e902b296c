"""Load generator for bench_api.py, run as its own process: N client threads, bounded requests, loopback only."""

from __future__ import annotations

import json
import sys
import threading
import time

import requests


def main() -> None:
    spec = json.loads(sys.stdin.read())
    url, key, paths, clients = spec["url"], spec["key"], spec["paths"], spec["clients"]
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit("loopback only")
    latencies: list[float] = []
    errors: list[int] = []
    fallbacks: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(len(paths)))

    def client() -> None:
        session = requests.Session()
        session.headers["x-api-key"] = key
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            started = time.perf_counter()
            resp = session.get(url + paths[i], timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                if resp.status_code != 200:
                    errors.append(resp.status_code)
                elif resp.json().get("fallback"):
                    fallbacks.append(resp.json().get("fallback_reason") or "")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    print(json.dumps({"latencies_ms": latencies, "errors": errors, "fallbacks": fallbacks, "seconds": seconds}))


if __name__ == "__main__":
    main()
