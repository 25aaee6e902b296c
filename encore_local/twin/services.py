"""The offline twin's emulated services: moto (AWS APIs) and redis (ElastiCache), on loopback ports of their own.

``TwinServices`` is a context manager used three ways: by ``encore twin serve`` (a foreground process that
``encore twin up`` starts in the background), by ``encore demo``, and by the pytest fixtures. Starting it
exports the endpoint variables into this process, so every boto3 client made through ``encore.clients`` from
then on talks to the twin; nothing in the application code knows.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

import redis
import requests
from cheroot import wsgi
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from encore.clients import reset_clients
from encore.config import EncoreConfig, Stage
from encore_local.errors import UsageError
from encore_local.loopback import ClosesConnections
from encore_local.twin import firehose, sagemaker, stepfunctions
from encore_local.twin.assembly import TWIN_BUILD, Deployment, Function, TwinStack, stage_config, synthesize
from encore_local.twin.glue import GlueService
from encore_local.twin.iam import client_for, credentials
from encore_local.twin.lambda_ import LambdaService, refused_at_creation
from encore_local.twin.provision import provision
from encore_local.twin.router import TwinRouter
from encore_local.twin.sagemaker import TrainingService

LOOPBACK = "127.0.0.1"
RedisKind = Literal["redis-server", "fakeredis"]
# Credentials moto accepts; they never leave this machine.
_FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


def _aws_environment(aws_endpoint: str, region: str) -> dict[str, str]:
    """boto3 in a process with these variables talks to the twin's moto."""
    return {"AWS_ENDPOINT_URL": aws_endpoint, "AWS_DEFAULT_REGION": region, "AWS_REGION": region, **_FAKE_CREDENTIALS}


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
            **_aws_environment(self.aws_endpoint, self.region),
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
    """WSGI middleware in front of moto: answers as AWS does when a service is past its capacity.

    ``POST /_encore/faults`` sets the shares (``{}`` clears them):

    - ``{"DynamoDB": 0.5}`` answers half the calls whose ``X-Amz-Target`` starts with ``DynamoDB`` with
      ``ProvisionedThroughputExceededException``;
    - ``{"Firehose": 0.3}`` fails 30% of the records of each ``PutRecordBatch`` with ``ServiceUnavailableException``
      in their ``RequestResponses`` entry (``FailedPutCount`` says how many); the others are delivered.

    Other services are refused: their errors have other shapes. The clients see the very answers AWS sends, so
    their retries, backoff and the application's fallbacks run as they would. Faults live in the twin's
    process, so they reach every process using it (the API's workers, Spark's).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.shares: dict[str, float] = {}
        self.injected: dict[str, int] = {}
        self._random = random.Random(7)
        self._lock = threading.Lock()

    def _hit(self, service: str) -> bool:
        share = self.shares.get(service, 0.0)
        if share <= 0:
            return False
        with self._lock:
            hit = self._random.random() < share
            if hit:
                self.injected[service] = self.injected.get(service, 0) + 1
        return hit

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == FAULTS_PATH:
            return self._control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB") and self._hit("DynamoDB"):
            body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{THROTTLED}",
                               "message": "The level of configured provisioned throughput for the table was "
                                          "exceeded (injected by the twin)"}).encode()  # fmt: skip
            return _answer(start_response, "400 Bad Request", body, "application/x-amz-json-1.0",
                           [("x-amzn-ErrorType", THROTTLED)])  # fmt: skip
        if target == "Firehose_20150804.PutRecordBatch" and self.shares.get("Firehose"):
            return self._partial_batch(environ, start_response)
        return self.app(environ, start_response)

    def _partial_batch(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Deliver the records that were not picked to fail, then answer for all of them in their order."""
        request = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        records = request.get("Records", [])
        failing = [self._hit("Firehose") for _ in records]
        delivered: list[dict[str, Any]] = []
        kept = [r for r, fail in zip(records, failing, strict=True) if not fail]
        if kept:
            body = json.dumps({**request, "Records": kept}).encode()
            inner = dict(environ, CONTENT_LENGTH=str(len(body)))
            inner["wsgi.input"] = io.BytesIO(body)
            status: list[str] = []
            answer = b"".join(self.app(inner, lambda s, h, *_: status.append(s)))
            if not status or not status[0].startswith("200"):  # moto refused the call itself: pass that on
                return _answer(start_response, status[0] if status else "500 Internal Server Error", answer,
                               "application/x-amz-json-1.1")  # fmt: skip
            delivered = json.loads(answer)["RequestResponses"]
        it = iter(delivered)
        responses = [
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down (injected by the twin)"}
            if fail
            else next(it)
            for fail in failing
        ]
        answered = json.dumps({"FailedPutCount": sum(failing), "Encrypted": False, "RequestResponses": responses})
        return _answer(start_response, "200 OK", answered.encode(), "application/x-amz-json-1.1")

    def _control(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            wanted = json.loads(environ["wsgi.input"].read(length) or b"{}")
            unknown = set(wanted) - set(INJECTABLE)
            if unknown:
                body = json.dumps({"error": f"cannot inject faults into {sorted(unknown)}; only {INJECTABLE}"})
                return _answer(start_response, "400 Bad Request", body.encode(), "application/json")
            self.shares = {str(k): float(v) for k, v in wanted.items()}
        body = json.dumps({"shares": self.shares, "injected": self.injected})
        return _answer(start_response, "200 OK", body.encode(), "application/json")


def _answer(start_response: Any, status: str, body: bytes, content_type: str,
            headers: list[tuple[str, str]] | None = None) -> list[bytes]:  # fmt: skip
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


THROTTLED = "ProvisionedThroughputExceededException"
INJECTABLE = ("DynamoDB", "Firehose")


def set_faults(aws_endpoint: str, shares: dict[str, float]) -> dict[str, Any]:
    """Set the twin's injected faults (``{}`` clears them); returns what was injected so far."""
    resp = requests.post(aws_endpoint + FAULTS_PATH, json=shares, timeout=10)
    resp.raise_for_status()
    return resp.json()  # type: ignore[no-any-return]


class _Dispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend serves which host. moto looks that up on every request by
    listing its own package folder and testing each entry for a folder (two listings and some 400 ``stat`` calls
    per AWS call); the answer never changes while the process runs. Measured on a 2-key BatchGetItem: 3.3 ms
    of the twin's CPU per call before, 1.2-2.7 ms after (this machine is noisy)."""

    def __init__(self) -> None:
        super().__init__(create_backend_app)
        self._backend_by_host: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        # moto calls this holding its own lock, so the dictionary needs none of its own
        if host not in self._backend_by_host:
            self._backend_by_host[host] = super().get_backend_for_host(host)
        return self._backend_by_host[host]


class _MotoServer:
    """moto's AWS APIs served by cheroot: HTTP/1.1 keep-alive and a thread pool. (moto's own server, werkzeug's
    development server, closes the connection after every answer, so each AWS call paid a TCP connect and a
    new thread; on the serving path that was a tenth of the CPU.)"""

    def __init__(self, threads: int = 16) -> None:
        self.router = TwinRouter(_Dispatcher())
        self.faults = FaultInjector(self.router)
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
    """A real ``redis-server`` with no persistence, in a scratch directory, as a one-node cluster: ElastiCache
    Serverless always runs in cluster mode, so the twin's cache refuses a multi-key command whose keys are in
    different slots (``CROSSSLOT``) as AWS does. Every start is a new node (its cluster configuration file is
    removed first) that is given all 16384 slots; it serves once ``CLUSTER INFO`` says ``cluster_state:ok``
    (redis-server holds a new master in ``fail`` for its first 2 s, which ``launch`` then ``ready`` lets the
    caller spend on other work). ``cluster=False`` gives a plain single node (a self-hosted redis), for tests."""

    def __init__(self, binary: str, cluster: bool = True) -> None:
        self.binary = binary
        self.cluster = cluster
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._dir = tempfile.TemporaryDirectory(prefix="encore-redis-")

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self, attempts: int = 5, port: int | None = None) -> str:
        """Start on ``port`` (a restart after an outage) or on a free one, and wait until it serves."""
        self.launch(attempts, port)
        return self.ready()

    def launch(self, attempts: int = 5, port: int | None = None) -> None:
        """Start the node and give it every slot; ``ready`` waits until the cluster serves them."""
        nodes_conf = os.path.join(self._dir.name, "nodes.conf")
        for _ in range(attempts):
            self.port = port or free_port()
            with contextlib.suppress(FileNotFoundError):
                os.remove(nodes_conf)  # a new node: its slots are assigned below, as to a replaced node
            # The cluster bus is on port + 10000 unless told: past 65535 for half the ephemeral ports.
            cluster = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                nodes_conf,
                "--cluster-port",
                str(free_port()),
            ]
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    LOOPBACK,
                    *(cluster if self.cluster else []),
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
            if _wait_for_redis(self.url, self.proc):
                if self.cluster:
                    _assign_all_slots(self.url)
                return
            self.stop()
        raise UsageError(f"{self.binary} did not start on a loopback port after {attempts} attempts")

    def ready(self, timeout: float = 10.0) -> str:
        if self.cluster and not _wait_for_cluster(self.url, timeout):
            raise UsageError(f"the twin's redis cluster node at {self.url} did not reach cluster_state:ok")
        return self.url

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


def _assign_all_slots(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=5)
    try:
        client.cluster("ADDSLOTSRANGE", 0, 16383)
    finally:
        client.close()


def _wait_for_cluster(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if cast(dict[str, str], client.cluster("INFO")).get("cluster_state") == "ok":
                    return True
            time.sleep(0.05)
        return False
    finally:
        client.close()


class _FakeRedisServer:
    """fakeredis's TCP server (speaks RESP) in a thread: the stand-in when redis-server is not installed. It is a
    single node, not a cluster (fakeredis has no cluster commands): the cache's client sees that and talks to it
    with a plain client, so ``CROSSSLOT`` mistakes do not show with this fallback."""

    def __init__(self) -> None:
        from fakeredis import TcpFakeServer

        class Server(ClosesConnections, TcpFakeServer):
            pass

        self._server_class = Server
        self.server = Server((LOOPBACK, 0), server_type="redis")
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="fakeredis", daemon=True)

    def start(self, port: int | None = None) -> str:
        self.launch(port)
        return self.ready()

    def launch(self, port: int | None = None) -> None:
        if port is not None:  # a restart after an outage: a new, empty server on the same port
            self.server = self._server_class((LOOPBACK, port), server_type="redis")
            self.thread = threading.Thread(target=self.server.serve_forever, name="fakeredis", daemon=True)
        self.thread.start()

    def ready(self) -> str:
        url = f"redis://{LOOPBACK}:{self.server.server_address[1]}/0"
        if not _wait_for_redis(url, None):
            raise UsageError("fakeredis's TCP server did not answer")
        return url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()

    def close(self) -> None:
        self.stop()


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


class _EndpointProcess:
    """The twin's SageMaker endpoint (``encore_local.twin.sagemaker``) in a process of its own, as a real endpoint
    runs on hosts of its own: its model's predictions and moto's answers do not queue for one interpreter lock.
    Under the API benchmark's 8 clients, next-song predictions took p50 3.7 / p99 44.7 ms inside moto's process,
    and a p99 of about 4 ms in a process of their own."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self, port: int | None = None) -> str:
        """Start on ``port`` (a restart after an outage) or on a free one; the process says which when ready."""
        ready_r, ready_w = os.pipe()
        self.proc = subprocess.Popen([sys.executable, "-m", "encore_local.twin.sagemaker", "--port", str(port or 0),
                                      "--ready-fd", str(ready_w)], env=self.env, pass_fds=(ready_w,),
                                     stdin=subprocess.PIPE, text=True)  # fmt: skip
        os.close(ready_w)
        with os.fdopen(ready_r) as ready:
            said = ready.readline().strip()
        if not said.isdigit():
            self.stop()
            raise UsageError("the twin's model endpoint did not start (see the twin's log)")
        self.port = int(said)
        return f"http://{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # the endpoint stops when its parent's pipe closes
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _freeze_after_full_collections(phase: str, info: dict[str, Any]) -> None:
    """moto keeps every table item and S3 object as Python objects, and a full garbage collection walks them all:
    351 ms at default scale (measured), during which no AWS call is answered. What survives a full collection
    is frozen, so the next one walks only what arrived since."""
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


class TwinServices:
    """Start moto (with the twin's own Glue, SageMaker training, Lambda and Step Functions behind it), redis and the
    model endpoint on free loopback ports, export their endpoints, and deploy the stage's synthesized stack."""

    def __init__(self, config: EncoreConfig, *, cache: RedisKind | None = None, export_env: bool = True,
                 progress: bool = False) -> None:  # fmt: skip
        self.config = config
        self.cache_preference = cache
        self.export_env = export_env
        self.progress = progress
        self.endpoints: TwinEndpoints | None = None
        self._moto: _MotoServer | None = None
        self._redis: _RedisServerProcess | _FakeRedisServer | None = None
        self._endpoint: _EndpointProcess | None = None
        self._saved_env: dict[str, str | None] = {}
        self.resources: dict[str, list[str]] = {}
        self.deployment = Deployment(config.region)
        self.configs: dict[str, EncoreConfig] = {}
        self.log_dir = Path(tempfile.mkdtemp(prefix="encore-twin-logs-"))
        self.glue = GlueService(self.deployment, self.environment_of, self.log_dir)
        self.training = TrainingService(self.deployment, self.environment_of)
        self.lambda_ = LambdaService(self.deployment, self._function_environment, self.log_dir / "lambda")
        self._previous_tasks: tuple[Any, ...] | None = None

    def start(self) -> TwinEndpoints:
        if _freeze_after_full_collections not in gc.callbacks:
            gc.callbacks.append(_freeze_after_full_collections)
        try:
            self._moto = _MotoServer()
            self._moto.router.glue, self._moto.router.training = self.glue, self.training
            self._moto.router.lambda_, self._moto.router.deployment = self.lambda_, self.deployment
            aws_url = self._moto.start()
            self._previous_tasks = stepfunctions.enable(aws_url, self._state_machine_credentials)
            firehose.enable()
            sagemaker.enable()
            kind = self._launch_cache()
            # The endpoint reads its model's artifact from the twin's S3, whether or not this process is pointed at it.
            self._endpoint = _EndpointProcess(os.environ | _aws_environment(aws_url, self.config.region))
            model_url = self._endpoint.start()
            assert self._redis is not None
            cache_url = self._redis.ready()  # a new cluster node's first 2 s went by while the endpoint started
            self.endpoints = TwinEndpoints(aws_url, cache_url, kind, self.config.region, model_url)
            if self.export_env:
                self._export(self.endpoints.environment())
            self.config = self.deploy(self.config.stage)
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def deploy(self, stage: Stage) -> EncoreConfig:
        """Synthesize ``stage`` (or reuse its fresh cloud assembly), create its resources, and return the stage's
        configuration with the names the stack gave them, as its outputs would say."""
        assert self.endpoints is not None, "the twin is not running"
        out_dir = synthesize(stage, self.config.region, TWIN_BUILD / stage / "cdk.out", progress=self.progress)
        stack = TwinStack.load(out_dir)
        refused = refused_at_creation(stack)
        if refused:
            raise UsageError(f"the {stage} stack would not deploy: " + "; ".join(refused))
        self.deployment.add(stack)
        self.resources = provision(stack, self.client)
        config = stage_config(stage)
        resources = config.resources.model_copy(update={"lake_bucket": stack.output("LakeBucket")})
        config = config.model_copy(update={"resources": resources})
        self.configs[stage] = config
        return config

    def client(self, service: str) -> Any:
        """A client of this twin's AWS as the operator (whatever this process's environment points at)."""
        return client_for(service, self.environment_of(None))

    def environment_of(self, principal: str | None) -> dict[str, str]:
        """What a process needs to call this twin's AWS as ``principal`` (None: the operator)."""
        assert self.endpoints is not None, "the twin is not running"
        env = self.endpoints.environment()
        return env | credentials(principal) if principal else env

    def _function_environment(self, fn: Function) -> dict[str, str]:
        # ElastiCache Serverless takes TLS (rediss://) on its endpoint; the twin's node speaks plain RESP.
        return self.environment_of(fn.role) | {"ENCORE_CACHE_URL": self.endpoints.cache_url if self.endpoints else ""}

    def _state_machine_credentials(self, role_arn: str) -> tuple[str, str]:
        principal = self.deployment.principal_of_arn(role_arn)
        if principal is None:
            return "testing", "testing"
        creds = credentials(principal)
        return creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"]

    @contextlib.contextmanager
    def outage(self, service: Literal["cache", "endpoint"]) -> Iterator[None]:
        """Stop the cache (its node gone: connections refused, contents lost) or the model endpoint for the
        duration, then start it again on the same port, so clients reconnect as they would to a replaced node."""
        if service not in ("cache", "endpoint"):
            raise UsageError(f"no outage for '{service}': cache or endpoint")
        node = self._redis if service == "cache" else self._endpoint
        assert node is not None, "the twin is not running"
        port = node.port
        node.stop()
        try:
            yield
        finally:
            node.start(port=port)

    def _launch_cache(self) -> RedisKind:
        """redis-server (a one-node cluster, as ElastiCache Serverless is) when installed, else fakeredis (one
        plain node); ``self._redis.ready()`` then waits until it serves."""
        binary = shutil.which("redis-server")
        if self.cache_preference == "redis-server" and binary is None:
            raise UsageError("redis-server is not installed (apt-get install redis-server), or use fakeredis")
        if binary and self.cache_preference != "fakeredis":
            self._redis = _RedisServerProcess(binary)
            self._redis.launch()
            return "redis-server"
        self._redis = _FakeRedisServer()
        self._redis.launch()
        return "fakeredis"

    def _export(self, env: dict[str, str]) -> None:
        for key, value in env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        reset_clients()

    def stop(self) -> None:
        if self._previous_tasks is not None:
            stepfunctions.restore(self._previous_tasks)
            self._previous_tasks = None
        self.lambda_.close()
        self.glue.close()
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
