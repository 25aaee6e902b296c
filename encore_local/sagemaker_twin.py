"""The twin's SageMaker: training jobs as local processes, and an endpoint that answers InvokeEndpoint.

Training runs ``sagemaker/train.py`` in a process with the environment and channel folders SageMaker gives a
script-mode job, then uploads ``model.tar.gz`` where SageMaker would. The endpoint server resolves an endpoint
the way SageMaker does (endpoint -> configuration -> model -> ModelDataUrl, through the SageMaker API, i.e.
moto), loads that artifact with the inference code it carries, and serves ``POST /endpoints/{name}/invocations``
and ``GET /ping``; ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` points boto3's sagemaker-runtime at it. The twin runs
it in a process of its own (``python -m encore_local.sagemaker_twin``), as SageMaker runs endpoints on hosts of
their own.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.promotion import _s3_url
from encore_local.errors import UsageError
from encore_local.loopback import LoopbackServer, reply

ROOT = Path(__file__).resolve().parent.parent
TRAIN_SCRIPT = ROOT / "sagemaker" / "train.py"
RESOLVE_TTL_S = 5.0


@dataclass
class TrainingResult:
    job_name: str
    model_data: str
    seconds: float
    log_tail: list[str]


def run_training(
    config: EncoreConfig,
    job_name: str,
    channels: dict[str, str],
    hyperparameters: dict[str, Any] | None = None,
    extra_channels: dict[str, Path] | None = None,
) -> TrainingResult:
    """``channels`` maps a channel to an S3 prefix of the lake (mirrored like SageMaker's File mode)."""
    s3 = get_client("s3")
    bucket = config.resources.lake_bucket
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"encore-train-{job_name}-") as tmp:
        root = Path(tmp)
        env = dict(os.environ)
        for channel, prefix in channels.items():
            target = root / "input" / "data" / channel
            target.mkdir(parents=True)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith(".parquet"):
                        dest = target / obj["Key"][len(prefix) :]
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        s3.download_file(bucket, obj["Key"], str(dest))
            env[f"SM_CHANNEL_{channel.upper()}"] = str(target)
        for channel, path in (extra_channels or {}).items():
            env[f"SM_CHANNEL_{channel.upper()}"] = str(path)
        model_dir, output_dir = root / "model", root / "output" / "data"
        model_dir.mkdir()
        output_dir.mkdir(parents=True)
        hps = {"version": job_name, **(hyperparameters or {})}
        env |= {
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DATA_DIR": str(output_dir),
            "SM_HPS": json.dumps(hps),
            "TRAINING_JOB_NAME": job_name,
            "SM_CHANNELS": json.dumps(sorted(channels)),
        }
        proc = subprocess.run([sys.executable, str(TRAIN_SCRIPT)], env=env, capture_output=True, text=True, check=False)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        if proc.returncode != 0:
            raise UsageError(f"training job {job_name} failed: {tail[-1] if tail else 'no output'}")
        archive = root / "model.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(model_dir.iterdir()):
                tar.add(path, arcname=path.name)
        key = f"{config.lake.models}{job_name}/output/model.tar.gz"
        s3.upload_file(str(archive), bucket, key)
    return TrainingResult(job_name, f"s3://{bucket}/{key}", time.perf_counter() - start, tail)


class LoadedModel:
    """An artifact unpacked, with its own inference module (the code inside model.tar.gz)."""

    def __init__(self, model_data: str) -> None:
        self.model_data = model_data
        self._dir = tempfile.TemporaryDirectory(prefix="encore-endpoint-")
        bucket, key = _s3_url(model_data)
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


class EndpointServer(LoopbackServer):
    """``InvokeEndpoint`` on loopback for every endpoint the twin's SageMaker API knows."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self.predict_ms: list[float] = []  # time inside the model's handlers per invocation (benchmarks read it)
        self._resolved: dict[str, tuple[str, float]] = {}  # endpoint -> (model data URL, valid until)
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

    def model_data(self, endpoint: str) -> str:
        """The artifact behind an endpoint, re-resolved every few seconds (an update takes effect that soon,
        as SageMaker's own updates do, without three API calls on every invocation)."""
        now = time.monotonic()
        cached = self._resolved.get(endpoint)
        if cached and cached[1] > now:
            return cached[0]
        sm = get_client("sagemaker")
        config_name = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        variant = sm.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"][0]
        url = str(sm.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]["ModelDataUrl"])
        self._resolved[endpoint] = (url, now + RESOLVE_TTL_S)
        return url

    def invoke(self, endpoint: str, body: bytes, headers: Any) -> tuple[int, bytes, dict[str, str]]:
        def error(status: int, kind: str, message: str) -> tuple[int, bytes, dict[str, str]]:
            payload = {"__type": kind, "message": message, "OriginalStatusCode": 400, "OriginalMessage": message}
            return status, json.dumps(payload).encode(), {"Content-Type": "application/json", "x-amzn-ErrorType": kind}

        try:
            model_data = self.model_data(endpoint)
        except Exception:
            return error(400, "ValidationError", f"Endpoint {endpoint} of account 123456789012 not found.")
        with self._lock:
            loaded = self._models.get(endpoint)
            if loaded is None or loaded.model_data != model_data:  # a deploy switched the endpoint's model
                loaded = self._models[endpoint] = LoadedModel(model_data)
        started = time.perf_counter()
        try:
            out = loaded.invoke(body, headers.get("Content-Type", "application/json"), headers.get("Accept", "*/*"))
            self.predict_ms.append((time.perf_counter() - started) * 1000)
        except ValueError as exc:  # the container's "client error": SageMaker answers ModelError (424)
            return error(424, "ModelError", f"Received client error (400) from primary: {exc}")
        return (
            200,
            out.encode(),
            {"Content-Type": "application/json", "x-Amzn-Invoked-Production-Variant": "AllTraffic"},
        )


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
    _main(sys.argv[1:])
