"""The twin's API Gateway: an HTTP server on loopback that turns each request into a REST proxy event and calls
the very same Lambda handlers, enforcing the API key and the usage plan's throttle as API Gateway does.

Routes come from ``encore.routes.ROUTES`` (the table the CDK app builds API Gateway from). Answers API Gateway
gives itself are reproduced: 403 ``{"message": "Forbidden"}`` without a valid key, 429 ``{"message": "Too Many
Requests"}`` past the throttle, 404/405 ``Missing Authentication Token`` for unknown routes, and 502
``{"message": "Internal server error"}`` when an instance dies mid-invocation, each with the CORS header the
stack's gateway responses add; OPTIONS gets the stack's preflight answer. It does not verify Cognito tokens.

Behind the front door is a pool of warm Lambda instances, each running one invocation at a time, as Lambda
does: Powertools keeps the current event on its router class, so two invocations in one process would read
each other's requests (the reliability suite's load run caught a POST that saw a GET's empty body). A request
takes whichever instance is idle, the most recently used first, and waits only if all are busy, as API
Gateway waits for Lambda to scale. ``workers=1`` runs the one instance in this process; more run each in a
process of its own, fed events over a pipe. Every answer carries the time spent inside the handler in
``x-twin-handler-ms`` (the twin's stand-in for API Gateway's IntegrationLatency metric).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from encore.config import EncoreConfig
from encore.routes import CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS, ROUTES, Route, allowed_origin
from encore_local.apigw import LambdaContext, load_handler, match_route, rest_event
from encore_local.loopback import LoopbackServer, reply

DEFAULT_API_KEY = "encore-twin-key"
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
FUNCTIONS = sorted({r.function for r in ROUTES})


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


class InstanceDied(Exception):
    """An instance's process ended or answered nonsense in the middle of an invocation."""


class _InProcessInstance:
    """One warm instance in this process: each function's handler module imported once (a cold start each),
    invoked one at a time and timed."""

    def __init__(self, config: EncoreConfig, quiet: bool) -> None:
        self.modules: dict[str, ModuleType] = {name: load_handler(name, config, quiet=quiet) for name in FUNCTIONS}

    def invoke(self, function: str, event: dict[str, Any]) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        result = self.modules[function].lambda_handler(event, LambdaContext(function))
        return result, (time.perf_counter() - started) * 1000

    def alive(self) -> bool:
        return True

    def wait_ready(self) -> None:
        return

    def close(self) -> None:
        return


class _ProcessInstance:
    """An instance in a process of its own (``_instance_main``): one JSON line in per invocation, one line out."""

    def __init__(self, config: EncoreConfig, quiet: bool) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        args = ["--stage", config.stage, "--in-fd", str(to_child_r), "--out-fd", str(from_child_w)]
        args += ["--quiet"] if quiet else []
        self.proc = subprocess.Popen([sys.executable, "-m", "encore_local.http_api", *args], env=os.environ.copy(),
                                     pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL)  # fmt: skip
        os.close(to_child_r)
        os.close(from_child_w)
        self.writer = os.fdopen(to_child_w, "wb")
        self.reader = os.fdopen(from_child_r, "rb")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self) -> None:
        if self.reader.readline().strip() != b"ready":
            self.close()
            raise RuntimeError("an API instance process did not start")

    def invoke(self, function: str, event: dict[str, Any]) -> tuple[dict[str, Any], float]:
        try:
            self.writer.write(json.dumps({"function": function, "event": event}).encode() + b"\n")
            self.writer.flush()
            answer = json.loads(self.reader.readline())
            return answer["result"], float(answer["ms"])
        except (OSError, ValueError, KeyError) as exc:
            raise InstanceDied(f"API instance process {self.proc.pid} ended mid-invocation") from exc

    def close(self) -> None:
        for stream in (self.writer, self.reader):
            with contextlib.suppress(OSError):
                stream.close()  # the instance stops when its input closes
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


Instance = _InProcessInstance | _ProcessInstance


def _instance_main(argv: list[str]) -> None:
    """One Lambda instance in its own process, invoked over the pipes ``_ProcessInstance`` made."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", required=True)
    ap.add_argument("--in-fd", type=int, required=True)
    ap.add_argument("--out-fd", type=int, required=True)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    instance = _InProcessInstance(EncoreConfig.for_stage(args.stage), args.quiet)
    with os.fdopen(args.in_fd, "rb") as events, os.fdopen(args.out_fd, "wb") as answers:
        answers.write(b"ready\n")
        answers.flush()
        for line in events:
            request = json.loads(line)
            result, ms = instance.invoke(request["function"], request["event"])
            answers.write(json.dumps({"result": result, "ms": ms}).encode() + b"\n")
            answers.flush()


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
    ) -> None:
        self.config = config
        self.workers = max(1, workers)
        self.quiet = quiet
        self.api_keys = set(api_keys)
        self.instances: list[Instance] = []
        # Idle instances, the most recently used on top (the warmest, as Lambda reuses them).
        self.idle: queue.LifoQueue[Instance] = queue.LifoQueue()
        self.templates = [r.path for r in ROUTES]
        self.by_path: dict[str, Route] = {r.path: r for r in ROUTES}
        deploy = config.deploy
        self.buckets = {
            key: TokenBucket(rate or deploy.api_rate_limit, burst or deploy.api_burst_limit) for key in self.api_keys
        }
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # answers leave at once (loopback.reply writes each in one piece)

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
                headers.setdefault("Content-Type", "application/json")
                reply(self, status, data, headers)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815 - http.server's naming

        LoopbackServer.__init__(self, Handler, host, port, "twin-api")

    def _new_instance(self) -> Instance:
        if self.workers == 1:
            return _InProcessInstance(self.config, self.quiet)
        return _ProcessInstance(self.config, self.quiet)

    def start(self) -> str:
        try:
            self.instances = [self._new_instance() for _ in range(self.workers)]  # their cold starts overlap
            for instance in self.instances:
                instance.wait_ready()
                self.idle.put(instance)
        except BaseException:
            self.stop()
            raise
        return super().start()

    def stop(self) -> None:
        if self.thread.is_alive():
            super().stop()
        else:
            self.httpd.server_close()
        for instance in self.instances:
            instance.close()
        self.instances.clear()

    def invoke(self, function: str, event: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """Run one invocation on an idle instance (waiting for one if all are busy)."""
        instance = self._take()
        try:
            answer = instance.invoke(function, event)
        except InstanceDied:
            replacement = self._replace(instance)
            if replacement is not None:
                self.idle.put(replacement)
            raise
        except BaseException:
            self.idle.put(instance)
            raise
        self.idle.put(instance)
        return answer

    def _take(self) -> Instance:
        """An idle instance; one whose process ended while idle is replaced first (Lambda never routes to it)."""
        while True:
            instance = self.idle.get()
            if instance.alive():
                return instance
            replacement = self._replace(instance)
            if replacement is not None:
                return replacement
            if not self.instances:
                raise InstanceDied("no API instance could be started")

    def _replace(self, dead: Instance) -> Instance | None:
        """A new instance in place of one that died (a cold start, as Lambda's would be); None if it cannot start."""
        dead.close()
        self.instances.remove(dead)
        try:
            instance = self._new_instance()
            instance.wait_ready()
        except (OSError, RuntimeError):
            return None
        self.instances.append(instance)
        return instance

    def dispatch(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(raw_path)
        path = url.path.rstrip("/") or "/"
        origin = next((v for k, v in headers if k.lower() == "origin"), None)
        cors = self._gateway_cors(origin)
        found = match_route(self.templates, path)
        if found is None:
            return 403, {"message": "Missing Authentication Token"}, cors
        template, params = found
        route = self.by_path[template]
        if method == "OPTIONS":  # the stack's preflight (a mock integration): no key, no function
            allow = allowed_origin(self.config.serving.cors_origins, origin)
            preflight = {"Access-Control-Allow-Headers": ",".join(CORS_ALLOW_HEADERS),
                         "Access-Control-Allow-Methods": ",".join(CORS_ALLOW_METHODS)}  # fmt: skip
            return 204, b"", preflight | ({"Access-Control-Allow-Origin": allow} if allow else {})
        if method not in route.methods:
            return 403, {"message": "Missing Authentication Token"}, cors
        key = next((v for k, v in headers if k.lower() == "x-api-key"), None)
        if route.api_key:
            if key not in self.api_keys:
                return 403, {"message": "Forbidden"}, cors
            if not self.buckets[key].take():
                return 429, {"message": "Too Many Requests"}, cors
        event = rest_event(method, path, resource=template, path_parameters=params, query=parse_qsl(url.query),
                           headers=headers, body=body, stage=self.config.stage, api_key=key)  # fmt: skip
        return self._integrate(route.function, event, cors)

    def _gateway_cors(self, origin: str | None) -> dict[str, str]:
        """The CORS header of API Gateway's own answers, as the stack's gateway responses set it (cdk_app.api)."""
        origins = self.config.serving.cors_origins
        if len(origins) == 1:
            return {"Access-Control-Allow-Origin": origins[0]}
        if len(origins) > 1:
            return {"Vary": "Origin"} | ({"Access-Control-Allow-Origin": origin} if origin else {})
        return {}

    def _integrate(
        self, function: str, event: dict[str, Any], cors: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """The Lambda proxy integration: the handler's answer as HTTP, or API Gateway's 502 if the instance died."""
        try:
            result, inside_ms = self.invoke(function, event)
        except InstanceDied:
            return 502, {"message": "Internal server error"}, dict(cors or {})
        out_headers = {k: v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()}
        out_headers.update(result.get("headers") or {})
        out_headers["x-twin-handler-ms"] = f"{inside_ms:.3f}"
        raw = result.get("body") or ""
        data = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        return int(result["statusCode"]), data, out_headers


if __name__ == "__main__":
    _instance_main(sys.argv[1:])
