"""``encore job run``: a Glue job script on a local SparkSession, against S3 prefixes mirrored to a folder.

Spark here has no ``s3a`` connector, so the runner downloads what the job reads (and what it overwrites in
part), runs the very same script with ``--lake_root file://<folder>/``, then makes each prefix the job writes
in S3 equal to the folder (new and changed objects uploaded, removed ones deleted).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from encore.clients import get_client
from encore.config import EncoreConfig, runtime_values
from encore.pipeline import GLUE_JOBS
from encore_local.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
JOBS_DIR = ROOT / "glue_jobs"
JOB_NAMES = tuple(step.name for step in GLUE_JOBS)


@dataclass
class JobRun:
    name: str
    seconds: float
    result: dict[str, Any]
    downloaded: int = 0
    uploaded: int = 0
    deleted: int = 0
    notes: list[str] = field(default_factory=list)


def load_job(name: str) -> ModuleType:
    if name not in JOB_NAMES:
        raise UsageError(f"unknown job '{name}': one of {', '.join(JOB_NAMES)}")
    spec = importlib.util.spec_from_file_location(f"encore_glue_job_{name}", JOBS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    # Glue runs a script as __main__, whose functions Spark ships by value; do the same for this module.
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]
    return module


# Spark's Python workers run with the environment of the JVM, which outlives a SparkContext: a session started
# while one twin ran would send later jobs' workers to that twin's ports. So the variables that say where AWS
# and the cache are go to the workers explicitly (spark.executorEnv), and new values mean a new session.
_WORKER_VARIABLES = (
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "ENCORE_CACHE_URL", "AWS_DEFAULT_REGION", "AWS_REGION",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
)  # fmt: skip
_sessions: dict[str, Any] = {}


def local_spark() -> Any:
    """One local session per set of endpoints, sized for this machine (the jobs' getOrCreate picks it up)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter, with our packages
    worker_env = {name: os.environ[name] for name in _WORKER_VARIABLES if name in os.environ}
    key = json.dumps(worker_env, sort_keys=True)
    if key in _sessions:
        return _sessions[key]
    for stale in _sessions.values():
        stale.stop()
    _sessions.clear()
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("encore-twin")
        .config("spark.driver.memory", "6g")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=ERROR")
    )
    for name, value in worker_env.items():
        builder = builder.config(f"spark.executorEnv.{name}", value)
    _sessions[key] = builder.getOrCreate()
    return _sessions[key]


def _list(bucket: str, prefix: str) -> dict[str, str]:
    s3 = get_client("s3")
    out: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj["ETag"].strip('"')
    return out


def _download(bucket: str, prefix: str, root: Path) -> int:
    s3 = get_client("s3")
    keys = _list(bucket, prefix)
    for key in keys:
        if key.endswith("/"):
            continue
        target = root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
    return len(keys)


def _sync_up(bucket: str, prefix: str, root: Path) -> tuple[int, int]:
    """Make ``s3://bucket/prefix`` equal to ``root/prefix`` (Spark's checksum files are left out)."""
    s3 = get_client("s3")
    local_dir = root / prefix
    local = {
        str(p.relative_to(root)): p
        for p in (local_dir.rglob("*") if local_dir.exists() else [])
        if p.is_file() and not p.name.endswith(".crc")
    }
    remote = _list(bucket, prefix)
    for key, path in local.items():
        s3.upload_file(str(path), bucket, key)
    stale = [k for k in remote if k not in local]
    for i in range(0, len(stale), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stale[i : i + 1000]]})
    return len(local), len(stale)


def job_arguments(config: EncoreConfig, **values: Any) -> list[str]:
    """The job's arguments as Glue passes them (``--name value``)."""
    argv = ["--encore_config", json.dumps(runtime_values(config))]
    for key, value in values.items():
        if value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def run_job(
    name: str,
    config: EncoreConfig,
    *,
    run_time: str | None = None,
    lookback_days: int | None = None,
    extra: dict[str, Any] | None = None,
    work_dir: Path | None = None,
) -> JobRun:
    module = load_job(name)
    reads, writes = module.io_prefixes(config.lake)
    bucket = config.resources.lake_bucket
    start = time.perf_counter()
    local_spark()
    with tempfile.TemporaryDirectory(prefix=f"encore-{name}-", dir=work_dir) as tmp:
        root = Path(tmp)
        downloaded = sum(_download(bucket, prefix, root) for prefix in dict.fromkeys([*reads, *writes]))
        argv = job_arguments(
            config, lake_root=f"file://{root}/", run_time=run_time, lookback_days=lookback_days, **(extra or {})
        )
        result = module.main(argv) or {}
        uploaded = deleted = 0
        for prefix in writes:
            up, gone = _sync_up(bucket, prefix, root)
            uploaded, deleted = uploaded + up, deleted + gone
    return JobRun(name, time.perf_counter() - start, result, downloaded, uploaded, deleted)
