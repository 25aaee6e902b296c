"""The twin's API Gateway: an HTTP server on loopback that turns each request into a REST proxy event and calls
the very same Lambda handlers, enforcing the API key and the usage plan's throttle as API Gateway does.

Routes come from ``encore.routes.ROUTES`` (the table the CDK app builds API Gateway from). Answers API Gateway
gives itself are reproduced: 403 ``{"message": "Forbidden"}`` without a valid key, 429 ``{"message": "Too Many
Requests"}`` past the throttle, 404/405 ``Missing Authentication Token`` for unknown routes.

A process runs one handler invocation at a time, as a Lambda instance does: Powertools keeps the current event
on its router class, so two invocations in one process would read each other's requests (the reliability
suite's load run caught a POST that saw a GET's empty body). Concurrency comes from ``workers``: the same port
is served by that many processes (SO_REUSEPORT), each with its own clients and its own share of the usage
plan's rate. Every answer carries the time spent inside
the handler in ``x-twin-handler-ms`` (the twin's stand-in for API Gateway's IntegrationLatency metric).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from encore.config import EncoreConfig
from encore.routes import ROUTES, Route
from encore_local.apigw import LambdaContext, load_handler, match_route, rest_event
from encore_local.loopback import LoopbackServer

DEFAULT_API_KEY = "encore-twin-key"
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


class TokenBucket:
    """The usage plan's throttle: ``rate`` requests per second with bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.capacity = rate, float(burst)
        self.tokens, self.updated = float(burst), time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class TwinApi(LoopbackServer):
    def __init__(
        self,
        config: EncoreConfig,
        *,
        api_keys: tuple[str, ...] = (DEFAULT_API_KEY,),
        host: str = "127.0.0.1",
        port: int = 0,
        rate: float | None = None,
        burst: int | None = None,
        quiet: bool = True,
        workers: int = 1,
        shared_port: bool = False,
    ) -> None:
        self.config = config
        self.workers = max(1, workers)
        self.extra: list[subprocess.Popen[str]] = []
        self.api_keys = set(api_keys)
        # One warm Lambda instance per function in this process, one invocation at a time (module docstring).
        self.handlers: dict[str, ModuleType] = {
            name: load_handler(name, config, quiet=quiet) for name in sorted({r.function for r in ROUTES})
        }
        self.one_invocation = threading.Lock()
        self.templates = [r.path for r in ROUTES]
        self.by_path: dict[str, Route] = {r.path: r for r in ROUTES}
        deploy = config.deploy
        self.rate = (rate or deploy.api_rate_limit) / self.workers
        self.burst = max(1, (burst or deploy.api_burst_limit) // self.workers)
        self.buckets = {key: TokenBucket(self.rate, self.burst) for key in self.api_keys}
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: without this, Nagle's algorithm holds the body back until the
            # client's delayed ACK (about 40 ms on Linux), on every keep-alive request.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._reply(413, {"message": "Request Too Long"}, {})
                    return
                body = self.rfile.read(length) if length else None
                status, payload, headers = api.dispatch(self.command, self.path, list(self.headers.items()), body)
                self._reply(status, payload, headers)

            def _reply(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                headers.setdefault("Content-Type", "application/json")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815 - http.server's naming

        LoopbackServer.__init__(self, Handler, host, port, "twin-api", shared_port=shared_port or self.workers > 1)

    def start(self) -> str:
        url = super().start()
        port = str(self.httpd.server_address[1])
        for _ in range(self.workers - 1):
            ready_r, ready_w = os.pipe()  # the worker says "ready" here; its stdout is this process's
            args = ["--port", port, "--stage", self.config.stage, "--rate", str(self.rate), "--burst", str(self.burst),
                    "--ready-fd", str(ready_w)]  # fmt: skip
            for key in sorted(self.api_keys):
                args += ["--api-key", key]
            proc = subprocess.Popen([sys.executable, "-m", "encore_local.http_api", *args], stdin=subprocess.PIPE,
                                    pass_fds=(ready_w,), text=True, env=os.environ.copy())  # fmt: skip
            os.close(ready_w)
            self.extra.append(proc)
            with os.fdopen(ready_r) as ready:
                if ready.readline().strip() != "ready":
                    self.stop()
                    raise RuntimeError("an API worker process did not start")
        return url

    def stop(self) -> None:
        for proc in self.extra:
            if proc.stdin is not None:
                proc.stdin.close()  # a worker stops when its parent's pipe closes
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.extra.clear()
        super().stop()

    def dispatch(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(raw_path)
        path = url.path.rstrip("/") or "/"
        found = match_route(self.templates, path)
        if found is None:
            return 403, {"message": "Missing Authentication Token"}, {}
        template, params = found
        route = self.by_path[template]
        if method == "OPTIONS":
            cors = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "Content-Type,X-Api-Key"}
            return 204, b"", cors | {"Access-Control-Allow-Methods": ",".join(route.methods)}
        if method not in route.methods:
            return 403, {"message": "Missing Authentication Token"}, {}
        key = next((v for k, v in headers if k.lower() == "x-api-key"), None)
        if route.api_key:
            if key not in self.api_keys:
                return 403, {"message": "Forbidden"}, {}
            if not self.buckets[key].take():
                return 429, {"message": "Too Many Requests"}, {}
        event = rest_event(method, path, resource=template, path_parameters=params, query=parse_qsl(url.query),
                           headers=headers, body=body, stage=self.config.stage, api_key=key)  # fmt: skip
        with self.one_invocation:  # a request waits for the instance, as API Gateway waits for Lambda to scale
            started = time.perf_counter()
            result = self.handlers[route.function].lambda_handler(event, LambdaContext(route.function))
            inside_ms = (time.perf_counter() - started) * 1000
        out_headers = {k: v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()}
        out_headers.update(result.get("headers") or {})
        out_headers["x-twin-handler-ms"] = f"{inside_ms:.3f}"
        raw = result.get("body") or ""
        data = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        return int(result["statusCode"]), data, out_headers


def _worker(argv: list[str]) -> None:
    """One more process serving a TwinApi's port; it stops when the parent closes its stdin."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--stage", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--burst", type=int, required=True)
    ap.add_argument("--api-key", action="append", default=[])
    ap.add_argument("--ready-fd", type=int, required=True)
    args = ap.parse_args(argv)
    server = TwinApi(EncoreConfig.for_stage(args.stage), api_keys=tuple(args.api_key), port=args.port,
                     rate=args.rate, burst=args.burst, shared_port=True)  # fmt: skip
    server.start()
    with os.fdopen(args.ready_fd, "w") as ready:
        ready.write("ready\n")
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    _worker(sys.argv[1:])
