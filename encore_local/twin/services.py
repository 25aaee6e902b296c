"""The offline twin's emulated services: moto (AWS APIs) and redis (ElastiCache), on loopback ports of their own.

``TwinServices`` is a context manager used three ways: by ``encore twin serve`` (a foreground process that
``encore twin up`` starts in the background), by ``encore demo``, and by the pytest fixtures. Starting it
exports the endpoint variables into this process, so every boto3 client made through ``encore.clients`` from
then on talks to the twin; nothing in the application code knows.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Literal

import redis
import requests
from cheroot import wsgi
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from encore.clients import reset_clients
from encore.config import EncoreConfig
from encore_local.errors import UsageError
from encore_local.sagemaker_twin import EndpointServer
from encore_local.twin.provision import provision

LOOPBACK = "127.0.0.1"
RedisKind = Literal["redis-server", "fakeredis"]
# Credentials moto accepts; they never leave this machine.
_FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


@dataclass(frozen=True)
class TwinEndpoints:
    aws_endpoint: str
    cache_url: str
    cache_kind: RedisKind
    region: str
    model_endpoint: str

    def environment(self) -> dict[str, str]:
        """What a process needs in its environment to use the twin instead of AWS."""
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **_FAKE_CREDENTIALS,
            "ENCORE_CACHE_URL": self.cache_url,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.model_endpoint,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def free_port() -> int:
    """A loopback port nothing listens on now (the caller binds it at once; collisions are retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


FAULTS_PATH = "/_encore/faults"


class FaultInjector:
    """WSGI middleware in front of moto: answers a share of DynamoDB's calls as DynamoDB does when it throttles.

    ``POST /_encore/faults`` with ``{"DynamoDB": 0.5}`` throttles half the calls whose ``X-Amz-Target`` starts
    with ``DynamoDB`` (``{}`` clears it; other services are refused, their errors have other shapes). The
    clients see the very error AWS sends, so their retries, backoff and the application's fallbacks run as they
    would. Faults live in the twin's process, so they reach every process using it (the API's workers, Spark's).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.shares: dict[str, float] = {}
        self.injected: dict[str, int] = {}
        self._random = random.Random(7)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == FAULTS_PATH:
            return self._control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        for prefix, share in self.shares.items():
            if target.startswith(prefix) and self._random.random() < share:
                self.injected[prefix] = self.injected.get(prefix, 0) + 1
                body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{THROTTLED}",
                                   "message": "The level of configured provisioned throughput for the table was "
                                              "exceeded (injected by the twin)"}).encode()  # fmt: skip
                start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                                   ("x-amzn-ErrorType", THROTTLED),
                                                   ("Content-Length", str(len(body)))])  # fmt: skip
                return [body]
        return self.app(environ, start_response)

    def _control(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            wanted = json.loads(environ["wsgi.input"].read(length) or b"{}")
            unknown = set(wanted) - set(INJECTABLE)
            if unknown:
                body = json.dumps({"error": f"cannot inject faults into {sorted(unknown)}; only {INJECTABLE}"}).encode()
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [body]
            self.shares = {str(k): float(v) for k, v in wanted.items()}
        body = json.dumps({"shares": self.shares, "injected": self.injected}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


THROTTLED = "ProvisionedThroughputExceededException"
INJECTABLE = ("DynamoDB",)


def set_faults(aws_endpoint: str, shares: dict[str, float]) -> dict[str, Any]:
    """Set the twin's injected faults (``{}`` clears them); returns what was injected so far."""
    resp = requests.post(aws_endpoint + FAULTS_PATH, json=shares, timeout=10)
    resp.raise_for_status()
    return resp.json()  # type: ignore[no-any-return]


class _MotoServer:
    """moto's AWS APIs served by cheroot: HTTP/1.1 keep-alive and a thread pool. (moto's own server, werkzeug's
    development server, closes the connection after every answer, so each AWS call paid a TCP connect and a
    new thread; on the serving path that was a tenth of the CPU.)"""

    def __init__(self, threads: int = 16) -> None:
        self.faults = FaultInjector(DomainDispatcherApplication(create_backend_app))
        self.server = wsgi.Server((LOOPBACK, 0), self.faults, numthreads=threads, server_name="encore-twin")
        self.thread = threading.Thread(target=self.server.serve, name="moto", daemon=True)

    def start(self) -> str:
        self.server.prepare()
        self.thread.start()
        return f"http://{LOOPBACK}:{self.server.bind_addr[1]}"

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(5)


class _RedisServerProcess:
    """A real ``redis-server`` with no persistence, in a scratch directory."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._dir = tempfile.TemporaryDirectory(prefix="encore-redis-")

    def start(self, attempts: int = 5) -> str:
        for _ in range(attempts):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    LOOPBACK,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    self._dir.name,
                    "--protected-mode",
                    "yes",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if _wait_for_redis(f"redis://{LOOPBACK}:{self.port}/0", self.proc):
                return f"redis://{LOOPBACK}:{self.port}/0"
            self.stop()
        raise UsageError(f"{self.binary} did not start on a loopback port after {attempts} attempts")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()


class _FakeRedisServer:
    """fakeredis's TCP server (speaks RESP) in a thread: the stand-in when redis-server is not installed."""

    def __init__(self) -> None:
        from fakeredis import TcpFakeServer

        self.server = TcpFakeServer((LOOPBACK, 0), server_type="redis")
        self.thread = threading.Thread(target=self.server.serve_forever, name="fakeredis", daemon=True)

    def start(self) -> str:
        self.thread.start()
        port = self.server.server_address[1]
        url = f"redis://{LOOPBACK}:{port}/0"
        if not _wait_for_redis(url, None):
            raise UsageError("fakeredis's TCP server did not answer")
        return url

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_for_redis(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return False
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    return True
            time.sleep(0.05)
        return False
    finally:
        client.close()


class TwinServices:
    """Start moto and redis on free loopback ports, export their endpoints, create the application's resources."""

    def __init__(self, config: EncoreConfig, *, cache: RedisKind | None = None, export_env: bool = True) -> None:
        self.config = config
        self.cache_preference = cache
        self.export_env = export_env
        self.endpoints: TwinEndpoints | None = None
        self._moto: _MotoServer | None = None
        self._redis: _RedisServerProcess | _FakeRedisServer | None = None
        self._endpoint: EndpointServer | None = None
        self._saved_env: dict[str, str | None] = {}
        self.resources: dict[str, list[str]] = {}

    @property
    def model_endpoint(self) -> EndpointServer | None:
        """The twin's SageMaker endpoint server (benchmarks read its timings)."""
        return self._endpoint

    def start(self) -> TwinEndpoints:
        try:
            self._moto = _MotoServer()
            aws_url = self._moto.start()
            cache_url, kind = self._start_cache()
            self._endpoint = EndpointServer(LOOPBACK)
            model_url = self._endpoint.start()
            self.endpoints = TwinEndpoints(aws_url, cache_url, kind, self.config.region, model_url)
            if self.export_env:
                self._export(self.endpoints.environment())
            self.resources = provision(self.config)
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def _start_cache(self) -> tuple[str, RedisKind]:
        binary = shutil.which("redis-server")
        if self.cache_preference == "redis-server" and binary is None:
            raise UsageError("redis-server is not installed (apt-get install redis-server), or use fakeredis")
        if binary and self.cache_preference != "fakeredis":
            self._redis = _RedisServerProcess(binary)
            return self._redis.start(), "redis-server"
        self._redis = _FakeRedisServer()
        return self._redis.start(), "fakeredis"

    def _export(self, env: dict[str, str]) -> None:
        for key, value in env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        reset_clients()

    def stop(self) -> None:
        if self._endpoint is not None:
            self._endpoint.stop()
            self._endpoint = None
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        if self._moto is not None:
            with contextlib.suppress(Exception):
                self._moto.stop()
            self._moto = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        reset_clients()

    def __enter__(self) -> TwinEndpoints:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
