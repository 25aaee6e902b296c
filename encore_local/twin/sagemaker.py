"""The twin's SageMaker: training jobs as local processes, and an endpoint that answers InvokeEndpoint.

Training (``TrainingService``) runs the training-source asset's script in a process with the environment and
channel folders SageMaker gives a script-mode job, then uploads ``model.tar.gz`` where SageMaker would. The
endpoint server resolves an endpoint the way SageMaker does (endpoint -> configuration -> each production
variant's model -> ModelDataUrl, through the SageMaker API, i.e. moto), loads those artifacts with the inference
code they carry, routes each request to a variant (the one it targets, else one chosen by weight) and serves
``POST /endpoints/{name}/invocations`` and ``GET /ping``; ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` points boto3's
sagemaker-runtime at it. The twin runs it in a process of its own (``python -m
encore_local.twin.sagemaker``), as SageMaker runs endpoints on hosts of their own.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from encore.clients import get_client
from encore.promotion import s3_url
from encore_local.errors import UsageError
from encore_local.loopback import LOOPBACK, LoopbackServer, reply
from encore_local.twin.iam import client_for
from encore_local.twin.process import SAGEMAKER_LOG, copy_output, follow_output

if TYPE_CHECKING:
    from encore_local.twin.assembly import Deployment

ACCOUNT = "123456789012"
RESOLVE_TTL_S = 5.0


TRAINING_STATES = ("InProgress", "Completed", "Failed", "Stopped")


@dataclass
class TrainingJob:
    name: str
    request: dict[str, Any]
    status: str = "InProgress"
    secondary: str = "Starting"
    created: float = field(default_factory=time.time)
    ended: float | None = None
    failure: str | None = None
    model_data: str | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)

    def describe(self, region: str) -> dict[str, Any]:
        r = self.request
        out: dict[str, Any] = {
            "TrainingJobName": self.name,
            "TrainingJobArn": f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/{self.name}",
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary,
            "HyperParameters": r.get("HyperParameters", {}),
            "AlgorithmSpecification": r.get("AlgorithmSpecification", {}),
            "RoleArn": r.get("RoleArn"),
            "InputDataConfig": r.get("InputDataConfig", []),
            "OutputDataConfig": r.get("OutputDataConfig", {}),
            "ResourceConfig": r.get("ResourceConfig", {}),
            "StoppingCondition": r.get("StoppingCondition", {}),
            "CreationTime": self.created,
            "TrainingStartTime": self.created,
            "LastModifiedTime": self.ended or self.created,
            "FinalMetricDataList": self.metrics,
        }
        if self.ended:
            out["TrainingEndTime"] = self.ended
            out["TrainingTimeInSeconds"] = int(self.ended - self.created)
        if self.model_data:
            out["ModelArtifacts"] = {"S3ModelArtifacts": self.model_data}
        if self.failure:
            out["FailureReason"] = self.failure
        return out


class SageMakerError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _s3_uri(value: Any, what: str) -> tuple[str, str]:
    if not isinstance(value, str) or not value.startswith("s3://"):
        raise SageMakerError("ValidationException", f"{what} must be an s3:// URI, got {value!r}")
    bucket, _, key = value[5:].partition("/")
    return bucket, key


class TrainingService:
    """``CreateTrainingJob`` and ``DescribeTrainingJob`` as SageMaker answers them, for script-mode jobs.

    A job is its ``sagemaker_submit_directory`` (the training-source asset) unpacked and its ``sagemaker_program``
    run by this machine's Python, with the ``SM_*`` environment and channel folders SageMaker's File mode gives a
    script (channels copied from their ``s3://`` prefixes), as the job's role. ``model.tar.gz`` goes where
    SageMaker puts it (``<S3OutputPath><job>/output/``); the job's ``MetricDefinitions`` are read from its log
    into ``FinalMetricDataList``. ``extra_channels`` are folders the twin adds to every job (the demo's
    simulated ground truth): a twin-only convenience, not part of the request. The script's output goes to
    ``log_dir``'s ``sagemaker.log`` (CloudWatch Logs, for SageMaker), and with ``echo`` to standard error too.
    """

    def __init__(self, deployment: Deployment, env_for_role: Callable[[str], dict[str, str]], log_dir: Path, *,
                 echo: bool = False) -> None:  # fmt: skip
        self.deployment = deployment
        self.env_for_role = env_for_role
        self.log_dir, self.echo = log_dir, echo
        self.jobs: dict[str, TrainingJob] = {}
        self.extra_channels: dict[str, Path] = {}
        self._lock = threading.Lock()

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("TrainingJobName") or ""
        if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name):
            raise SageMakerError("ValidationException", f"TrainingJobName {name!r} is not a valid job name")
        for channel in request.get("InputDataConfig", []):
            _s3_uri(channel["DataSource"]["S3DataSource"]["S3Uri"], f"channel {channel['ChannelName']}'s S3Uri")
        _s3_uri(request.get("OutputDataConfig", {}).get("S3OutputPath"), "OutputDataConfig.S3OutputPath")
        hps = request.get("HyperParameters", {})
        _s3_uri(_hp(hps.get("sagemaker_submit_directory")), "HyperParameters.sagemaker_submit_directory")
        with self._lock:
            if name in self.jobs:
                raise SageMakerError("ResourceInUse", f"Training job {name} already exists")
            job = self.jobs[name] = TrainingJob(name, request)
        threading.Thread(target=self._run, args=(job,), name=f"training-{name}", daemon=True).start()
        return {"TrainingJobArn": job.describe(self.deployment.region)["TrainingJobArn"]}

    def describe(self, name: str) -> dict[str, Any]:
        job = self.jobs.get(name)
        if job is None:
            raise SageMakerError("ValidationException", f"Requested resource not found: training job {name}")
        return job.describe(self.deployment.region)

    def _run(self, job: TrainingJob) -> None:
        try:
            self._train(job)
            job.status, job.secondary = "Completed", "Completed"
        except Exception as exc:  # the job fails; DescribeTrainingJob says why
            job.status, job.secondary, job.failure = "Failed", "Failed", f"AlgorithmError: {exc}"
        job.ended = time.time()

    def _train(self, job: TrainingJob) -> None:
        request = job.request
        role = self.deployment.principal_of_arn(request.get("RoleArn", "")) or "unknown"
        env = os.environ | self.env_for_role(role)
        s3 = client_for("s3", env)
        hps = {k: _hp(v) for k, v in request.get("HyperParameters", {}).items()}
        with tempfile.TemporaryDirectory(prefix=f"encore-train-{job.name}-") as tmp:
            root = Path(tmp)
            job.secondary = "Downloading"
            for channel in request.get("InputDataConfig", []):
                name = channel["ChannelName"]
                bucket, prefix = _s3_uri(channel["DataSource"]["S3DataSource"]["S3Uri"], name)
                target = root / "input" / "data" / name
                target.mkdir(parents=True)
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                    for obj in page.get("Contents", []):
                        if obj["Key"].endswith("/"):
                            continue
                        dest = target / obj["Key"][len(prefix) :].lstrip("/")
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        s3.download_file(bucket, obj["Key"], str(dest))
                env[f"SM_CHANNEL_{name.upper()}"] = str(target)
            for name, path in self.extra_channels.items():
                env[f"SM_CHANNEL_{name.upper()}"] = str(path)
            code = root / "code"
            with tarfile.open(self.deployment.asset(hps["sagemaker_submit_directory"]), "r:gz") as tar:
                tar.extractall(code, filter="data")
            model_dir, output_dir = root / "model", root / "output" / "data"
            model_dir.mkdir()
            output_dir.mkdir(parents=True)
            user_hps = {k: v for k, v in hps.items() if not k.startswith("sagemaker_")}
            env |= {
                "SM_MODEL_DIR": str(model_dir),
                "SM_OUTPUT_DATA_DIR": str(output_dir),
                "SM_HPS": json.dumps(user_hps),
                "SM_CHANNELS": json.dumps(sorted(c["ChannelName"] for c in request.get("InputDataConfig", []))),
                "TRAINING_JOB_NAME": job.name,
                "SM_MODULE_DIR": hps["sagemaker_submit_directory"],
            }
            job.secondary = "Training"
            argv = [a for k, v in user_hps.items() for a in (f"--{k}", str(v))]
            script = [sys.executable, hps.get("sagemaker_program", "train.py"), *argv]
            proc = subprocess.Popen(script, cwd=code, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)  # fmt: skip
            lines: list[str] = []  # what it wrote, for its metric definitions and the failure's last line
            assert proc.stdout is not None
            copy_output(proc.stdout, self.log_dir / SAGEMAKER_LOG, f"training {job.name}", echo=self.echo, keep=lines)
            proc.wait()
            log = "\n".join(lines)
            job.log_tail = log.strip().splitlines()[-15:]
            job.metrics = _metrics(log, request.get("AlgorithmSpecification", {}).get("MetricDefinitions", []))
            if proc.returncode != 0:
                raise RuntimeError(job.log_tail[-1] if job.log_tail else f"exit code {proc.returncode}")
            job.secondary = "Uploading"
            archive = root / "model.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                for path in sorted(model_dir.iterdir()):
                    tar.add(path, arcname=path.name)
            bucket, prefix = _s3_uri(request["OutputDataConfig"]["S3OutputPath"], "S3OutputPath")
            key = f"{prefix.rstrip('/')}/{job.name}/output/model.tar.gz".lstrip("/")
            s3.upload_file(str(archive), bucket, key)
            job.model_data = f"s3://{bucket}/{key}"

    def handle(self, operation: str, request: dict[str, Any]) -> dict[str, Any] | None:
        if operation == "CreateTrainingJob":
            return self.create(request)
        if operation == "DescribeTrainingJob":
            return self.describe(request["TrainingJobName"])
        if operation == "UpdateEndpoint":
            return update_endpoint(request, self.deployment.region)
        return None


def update_endpoint(request: dict[str, Any], region: str) -> dict[str, Any]:
    """``UpdateEndpoint``, which moto lacks: the endpoint serves the new configuration's variants. SageMaker takes
    minutes (``Updating``, then ``InService``); the twin's update is done when the call returns."""
    from moto.sagemaker.models import sagemaker_backends  # here: the endpoint's own process never needs moto

    backend = sagemaker_backends[ACCOUNT][region]
    name, config_name = str(request.get("EndpointName")), str(request.get("EndpointConfigName"))
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        arn = f"arn:aws:sagemaker:{region}:{ACCOUNT}:endpoint/{name}"
        raise SageMakerError("ValidationException", f'Could not find endpoint "{arn}".')
    try:
        config = backend.describe_endpoint_config(config_name)
    except KeyError:
        arn = f"arn:aws:sagemaker:{region}:{ACCOUNT}:endpoint-config/{config_name}"
        raise SageMakerError("ValidationException", f'Could not find endpoint configuration "{arn}".') from None
    endpoint.endpoint_config_name = config_name
    endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
    endpoint.endpoint_status = "InService"
    return {"EndpointArn": endpoint.arn}


def _hp(value: Any) -> str:
    """Hyperparameters are strings; the SageMaker SDK JSON-encodes them, CDK does not."""
    text = str(value)
    if text.startswith('"') and text.endswith('"'):
        return str(json.loads(text))
    return text


def _metrics(log: str, definitions: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The last value each metric definition's regex finds in the log, as SageMaker reports them."""
    out = []
    for definition in definitions:
        found = re.findall(definition["Regex"], log)
        if found:
            out.append({"MetricName": definition["Name"], "Value": float(found[-1]), "Timestamp": time.time()})
    return out


def _accepts_current_instance_types() -> None:
    """moto checks endpoint instance types against a list from years ago (no ``ml.c6i``, ``ml.m7i``...); the
    twin's SageMaker accepts what the SDK's service model says SageMaker accepts."""
    import botocore.session
    from moto.sagemaker import exceptions, models

    valid = set(botocore.session.get_session().get_service_model("sagemaker").shape_for(
        "ProductionVariantInstanceType").enum)  # fmt: skip

    def validate_instance_type(self: Any, instance_type: str) -> None:
        if instance_type not in valid:
            raise exceptions.ValidationError(
                message=f"Value '{instance_type}' at 'instanceType' failed to satisfy constraint: Member must "
                f"satisfy enum value set: {sorted(valid)}"
            )

    models.FakeEndpointConfig.validate_instance_type = validate_instance_type  # type: ignore[method-assign]


def enable() -> None:
    _accepts_current_instance_types()


class LoadedModel:
    """An artifact unpacked, with its own inference module (the code inside model.tar.gz)."""

    def __init__(self, model_data: str) -> None:
        self.model_data = model_data
        self._dir = tempfile.TemporaryDirectory(prefix="encore-endpoint-")
        bucket, key = s3_url(model_data)
        archive = Path(self._dir.name) / "model.tar.gz"
        get_client("s3").download_file(bucket, key, str(archive))
        model_dir = Path(self._dir.name) / "model"
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(model_dir, filter="data")
        self.module = _import_inference(model_dir / "code" / "inference.py")
        self.model = self.module.model_fn(str(model_dir))

    def invoke(self, body: bytes, content_type: str, accept: str) -> str:
        request = self.module.input_fn(body, content_type)
        return str(self.module.output_fn(self.module.predict_fn(request, self.model), accept))


def _import_inference(path: Path) -> ModuleType:
    name = f"encore_inference_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Variant:
    """A production variant of an endpoint's current configuration, as the endpoint routes to it."""

    name: str
    weight: float
    model_data: str


# The twin's wording: SageMaker's text for a TargetVariant the endpoint does not have was not found in public
# references (its error code and status are botocore's: ValidationError, 400).
UNKNOWN_VARIANT = "Variant {variant} does not exist for endpoint {endpoint} of account {account}."


class EndpointServer(LoopbackServer):
    """``InvokeEndpoint`` on loopback for every endpoint the twin's SageMaker API knows, routed among its production
    variants as SageMaker routes: to ``X-Amzn-SageMaker-Target-Variant`` when given, else by variant weight."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._models: dict[tuple[str, str], LoadedModel] = {}  # (endpoint, variant) -> its loaded artifact
        self._lock = threading.Lock()
        self.predict_ms: list[float] = []  # time inside the model's handlers per invocation (benchmarks read it)
        self._resolved: dict[str, tuple[list[Variant], float]] = {}  # endpoint -> (variants, valid until)
        self.random = random.Random()  # the weighted choice of variant (tests seed it)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # answers leave at once (loopback.reply writes each in one piece)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request is noise
                return

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                reply(self, status, body, headers)

            def do_GET(self) -> None:
                if self.path == "/ping":
                    self._send(200, b"", {})
                elif self.path == "/timings":  # the twin's own: how long the model's handlers took
                    self._send(200, json.dumps(server.predict_ms).encode(), {"Content-Type": "application/json"})
                else:
                    self._send(404, b"", {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "endpoints" or parts[2] != "invocations":
                    self._send(404, b"", {})
                    return
                status, out, headers = server.invoke(unquote(parts[1]), body, self.headers)
                self._send(status, out, headers)

        LoopbackServer.__init__(self, Handler, host, port, "endpoint")

    def variants(self, endpoint: str) -> list[Variant]:
        """The endpoint's variants, re-resolved every few seconds (an update takes effect that soon, as SageMaker's
        own updates do, without the API calls on every invocation). Models of variants the configuration no longer
        has are dropped then."""
        now = time.monotonic()
        cached = self._resolved.get(endpoint)
        if cached and cached[1] > now:
            return cached[0]
        sm = get_client("sagemaker")
        config_name = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        urls: dict[str, str] = {}  # variants may share a model
        variants = []
        for pv in sm.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]:
            model = pv["ModelName"]
            if model not in urls:
                urls[model] = str(sm.describe_model(ModelName=model)["PrimaryContainer"]["ModelDataUrl"])
            variants.append(Variant(pv["VariantName"], float(pv.get("InitialVariantWeight", 1.0)), urls[model]))
        self._resolved[endpoint] = (variants, now + RESOLVE_TTL_S)
        names = {v.name for v in variants}
        with self._lock:
            for key in [k for k in self._models if k[0] == endpoint and k[1] not in names]:
                del self._models[key]
        return variants

    def invoke(self, endpoint: str, body: bytes, headers: Any) -> tuple[int, bytes, dict[str, str]]:
        def error(status: int, kind: str, message: str) -> tuple[int, bytes, dict[str, str]]:
            payload = {"__type": kind, "message": message, "OriginalStatusCode": 400, "OriginalMessage": message}
            return status, json.dumps(payload).encode(), {"Content-Type": "application/json", "x-amzn-ErrorType": kind}

        try:
            variants = self.variants(endpoint)
        except Exception:
            return error(400, "ValidationError", f"Endpoint {endpoint} of account {ACCOUNT} not found.")
        target = headers.get("X-Amzn-SageMaker-Target-Variant")
        if target is not None:
            chosen = next((v for v in variants if v.name == target), None)
            if chosen is None:
                return error(400, "ValidationError", UNKNOWN_VARIANT.format(variant=target, endpoint=endpoint,
                                                                            account=ACCOUNT))  # fmt: skip
        elif sum(v.weight for v in variants) > 0:
            chosen = self.random.choices(variants, weights=[v.weight for v in variants])[0]
        else:  # every weight 0: nothing to route to but by target (the twin's wording)
            return error(400, "ValidationError", f"Endpoint {endpoint} has no variant with a weight above 0.")
        with self._lock:
            loaded = self._models.get((endpoint, chosen.name))
            if loaded is None or loaded.model_data != chosen.model_data:  # a deploy switched the variant's model
                loaded = self._models[endpoint, chosen.name] = LoadedModel(chosen.model_data)
        started = time.perf_counter()
        try:
            out = loaded.invoke(body, headers.get("Content-Type", "application/json"), headers.get("Accept", "*/*"))
            self.predict_ms.append((time.perf_counter() - started) * 1000)
        except ValueError as exc:  # the container's "client error": SageMaker answers ModelError (424)
            return error(424, "ModelError", f"Received client error (400) from primary: {exc}")
        return (
            200,
            out.encode(),
            {"Content-Type": "application/json", "x-Amzn-Invoked-Production-Variant": chosen.name},
        )


class EndpointProcess:
    """The twin's SageMaker endpoint (``encore_local.twin.sagemaker``) in a process of its own, as a real endpoint
    runs on hosts of its own: its model's predictions and moto's answers do not queue for one interpreter lock.
    Under the API benchmark's 8 clients, next-song predictions took p50 3.7 / p99 44.7 ms inside moto's process,
    and a p99 of about 4 ms in a process of their own. Its output goes to ``log`` (and with ``echo`` to standard
    error too)."""

    def __init__(self, env: dict[str, str], log: Path, *, echo: bool = False) -> None:
        self.env = env
        self.log, self.echo = log, echo
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self, port: int | None = None) -> str:
        """Start on ``port`` (a restart after an outage) or on a free one; the process says which when ready."""
        ready_r, ready_w = os.pipe()
        self.proc = subprocess.Popen([sys.executable, "-m", "encore_local.twin.sagemaker", "--port", str(port or 0),
                                      "--ready-fd", str(ready_w)], env=self.env, pass_fds=(ready_w,),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)  # fmt: skip
        os.close(ready_w)
        assert self.proc.stdout is not None
        follow_output(self.proc.stdout, self.log, "endpoint", echo=self.echo)
        with os.fdopen(ready_r) as ready:
            said = ready.readline().strip()
        if not said.isdigit():
            self.stop()
            raise UsageError(f"the twin's model endpoint did not start (see {self.log})")
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


def _main(argv: list[str]) -> None:
    """Serve until the parent closes this process's stdin; write the port to ``--ready-fd`` once listening."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-fd", type=int, required=True)
    args = ap.parse_args(argv)
    server = EndpointServer(port=args.port)
    server.start()
    with os.fdopen(args.ready_fd, "w") as ready:
        ready.write(f"{server.port}\n")
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C in the twin's terminal reaches it too: it ends, quietly
        _main(sys.argv[1:])
