"""The offline twin's emulated services: moto (AWS APIs) and redis (ElastiCache), on loopback ports of their own.

``TwinServices`` is a context manager used three ways: by ``encore twin serve`` (a foreground process that
``encore twin up`` starts in the background), by ``encore demo``, and by the pytest fixtures. Starting it
exports the endpoint variables into this process, so every boto3 client made through ``encore.clients`` from
then on talks to the twin; nothing in the application code knows.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from cheroot import wsgi
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from encore.clients import reset_clients
from encore.config import EncoreConfig, Stage
from encore_local.errors import UsageError
from encore_local.loopback import LOOPBACK
from encore_local.twin import firehose, sagemaker, stepfunctions
from encore_local.twin.apigateway import TwinApi
from encore_local.twin.assembly import TWIN_BUILD, Deployment, Function, TwinStack, stage_config, synthesize
from encore_local.twin.elasticache import FakeRedisServer, RedisServerProcess
from encore_local.twin.faults import FaultInjector
from encore_local.twin.glue import GlueService
from encore_local.twin.iam import client_for, credentials
from encore_local.twin.lambda_ import LambdaService, refused_at_creation, twin_function_environment
from encore_local.twin.logs import LogSubscriptions
from encore_local.twin.process import SAGEMAKER_LOG
from encore_local.twin.provision import provision
from encore_local.twin.router import TwinRouter
from encore_local.twin.sagemaker import EndpointProcess, TrainingService
from encore_local.twin.site import TwinSite

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


def _freeze_after_full_collections(phase: str, info: dict[str, Any]) -> None:
    """moto keeps every table item and S3 object as Python objects, and a full garbage collection walks them all:
    351 ms at default scale (measured), during which no AWS call is answered. What survives a full collection
    is frozen, so the next one walks only what arrived since."""
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


# moto keeps each emulated account in module-level backends, which outlive its server: twins started one after
# another in a process would share one account. The last twin of a process to stop empties it.
_RUNNING_TWINS = [0]
_RUNNING_LOCK = threading.Lock()


class TwinServices:
    """Start moto (with the twin's own Glue, SageMaker training, Lambda and Step Functions behind it), redis and the
    model endpoint on free loopback ports, export their endpoints, and deploy the stage's synthesized stack.

    What the twin's processes write (Spark's log, the functions' log lines and metrics, training's output) goes to
    ``glue.log``, ``lambda.log`` and ``sagemaker.log`` in ``log_dir`` (a new temporary folder if none is given);
    with ``verbose``, to this process's standard error too, and Spark logs at INFO."""

    def __init__(self, config: EncoreConfig, *, cache: RedisKind | None = None, export_env: bool = True,
                 progress: bool = False, warm: bool = False, log_dir: Path | None = None,
                 verbose: bool = False) -> None:  # fmt: skip
        self.config = config
        self.cache_preference = cache
        self.export_env = export_env
        self.progress = progress
        self.warm = warm  # start a deployed stack's Glue drivers and pipeline functions at once, in the background
        self.endpoints: TwinEndpoints | None = None
        self._moto: _MotoServer | None = None
        self._redis: RedisServerProcess | FakeRedisServer | None = None
        self._endpoint: EndpointProcess | None = None
        self._saved_env: dict[str, str | None] = {}
        self.resources: dict[str, list[str]] = {}
        self.deployment = Deployment(config.region)
        self.configs: dict[str, EncoreConfig] = {}
        self._temporary_logs = log_dir is None  # removed at stop: nobody was told where it is
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="encore-twin-logs-"))
        self.verbose = verbose
        self.glue = GlueService(self.deployment, self.environment_of, self.log_dir, verbose=verbose)
        self.training = TrainingService(self.deployment, self.environment_of, self.log_dir, echo=verbose)
        outputs = LogSubscriptions(self.deployment, lambda who: client_for("firehose", self.environment_of(who)))
        self.lambda_ = LambdaService(self.deployment, self._function_environment, self.log_dir, on_output=outputs,
                                     echo=verbose)  # fmt: skip
        self._previous_tasks: tuple[Any, ...] | None = None

    def start(self) -> TwinEndpoints:
        if _freeze_after_full_collections not in gc.callbacks:
            gc.callbacks.append(_freeze_after_full_collections)
        try:
            self._moto = _MotoServer()
            self._moto.router.glue, self._moto.router.training = self.glue, self.training
            self._moto.router.lambda_, self._moto.router.deployment = self.lambda_, self.deployment
            aws_url = self._moto.start()
            with _RUNNING_LOCK:
                _RUNNING_TWINS[0] += 1
            self._previous_tasks = stepfunctions.enable(aws_url, self._state_machine_credentials)
            firehose.enable()
            sagemaker.enable()
            kind = self._launch_cache()
            # The endpoint reads its model's artifact from the twin's S3, whether or not this process is pointed at it.
            self._endpoint = EndpointProcess(os.environ | _aws_environment(aws_url, self.config.region),
                                             self.log_dir / SAGEMAKER_LOG, echo=self.verbose)  # fmt: skip
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
        if self.warm:
            self.glue.warm(stack.stack_name)
            # The functions the state machines invoke, one warm instance each, started while other work goes on.
            definitions = " ".join(m.definition for m in stack.state_machines().values())
            invoked = [fn for fn in stack.functions().values() if fn.arn in definitions]
            threading.Thread(target=self.lambda_.start, args=(invoked, 1), name="warm-functions", daemon=True).start()
        config = stage_config(stage)
        resources = config.resources.model_copy(update={"lake_bucket": stack.output("LakeBucket")})
        config = config.model_copy(update={"resources": resources})
        self.configs[stage] = config
        return config

    @property
    def iam_refusals(self) -> list[dict[str, str]]:
        """Every call a role made that its policies did not allow (principal, action, resource, message)."""
        return list(self._moto.router.iam_refusals) if self._moto is not None else []

    def client(self, service: str) -> Any:
        """A client of this twin's AWS as the operator (whatever this process's environment points at)."""
        return client_for(service, self.environment_of(None))

    def environment_of(self, principal: str | None) -> dict[str, str]:
        """What a process needs to call this twin's AWS as ``principal`` (None: the operator)."""
        assert self.endpoints is not None, "the twin is not running"
        env = self.endpoints.environment()
        return env | credentials(principal) if principal else env

    def _function_environment(self, fn: Function) -> dict[str, str]:
        assert self.endpoints is not None, "the twin is not running"
        environment: dict[str, str] = twin_function_environment(self.environment_of, self.endpoints.cache_url)(fn)
        return environment

    def stack(self, stage: str) -> TwinStack:
        """The deployed stack of ``stage``."""
        return next(s for s in self.deployment.stacks if s.stack_name == f"Encore-{stage}")

    def api(self, config: EncoreConfig | None = None, **options: Any) -> TwinApi:
        """The twin's API Gateway for a deployed stage (the primary one by default), with a pool of its own."""
        config = config or self.config
        stack = self.stack(config.stage)
        return TwinApi(config, stack, self._function_environment, self.log_dir, environment_of=self.environment_of,
                       echo=self.verbose, **options)  # fmt: skip

    def site(self, api: TwinApi) -> TwinSite:
        """The stage's CloudFront distribution in front of ``api``: the web app from its bucket, ``/v1/*`` to it."""
        return TwinSite(api, self.client)

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
            self._redis = RedisServerProcess(binary)
            self._redis.launch()
            return "redis-server"
        self._redis = FakeRedisServer()
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
            with _RUNNING_LOCK:
                _RUNNING_TWINS[0] -= 1
                if _RUNNING_TWINS[0] == 0:
                    moto_api_backend.reset()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        reset_clients()
        if self._temporary_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> TwinEndpoints:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
