"""The twin's Glue driver: ``python -m encore_local.twin.glue_worker``, one process holding a local SparkSession.

It runs job scripts as Glue runs them: the script asset, the ``--extra-py-files`` zips on the driver's path and
shipped to Spark's Python workers (``addPyFile``, as Glue's ``--py-files``), and nothing else of this
repository: imports are limited to what ships, what Glue's Python environment provides (and what
``--additional-python-modules`` installs) and the standard library (``encore_local.twin.sandbox``).

Spark here has no ``s3a`` connector, so each run mirrors what the job reads (and what it overwrites in part)
from S3 to a folder kept between runs (only objects it has not seen are fetched), runs the script with
``--lake_root file://<folder>/``, then makes each prefix the job writes in S3 equal to the folder. Runs arrive as
JSON lines on ``--in-fd``, one at a time; each answer is a JSON line on ``--out-fd``. The JVM stays up between
runs (a Glue job starts a new one each time: this is the twin's shortcut, worth several seconds per run).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from encore_local.twin.sandbox import install

# Where AWS and the cache are, and as whom: Spark's Python workers get these explicitly (spark.executorEnv).
_WORKER_VARIABLES = (
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "ENCORE_CACHE_URL", "AWS_DEFAULT_REGION", "AWS_REGION",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
)  # fmt: skip


def session(shipped: list[str], log_level: str | None = None) -> Any:
    """The driver's SparkSession (local, two cores), with the shipped zips on its workers' path; Spark logs at its
    default level (WARN) unless ``log_level`` says otherwise."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter, not the PATH's python3
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("encore-twin-glue")
        .config("spark.driver.memory", "6g")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    )
    for name in _WORKER_VARIABLES:
        if name in os.environ:
            builder = builder.config(f"spark.executorEnv.{name}", os.environ[name])
    spark = builder.getOrCreate()
    if log_level:
        spark.sparkContext.setLogLevel(log_level)
    for path in shipped:
        if path.endswith(".zip"):
            spark.sparkContext.addPyFile(path)
    return spark


def load_script(path: str, job: str) -> Any:
    """A job script as a module (its main is called with Glue's argv)."""
    spec = importlib.util.spec_from_file_location(f"glue_script_{job.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    # Glue runs the script as __main__, whose functions Spark ships by value; do the same for this module.
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]
    return module


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def _run(request: dict[str, Any], mirror: S3Mirror) -> dict[str, Any]:
    import boto3

    from encore.config import EncoreConfig  # from the job's --extra-py-files, like the script's own imports

    argv: list[str] = request["argv"]
    module = load_script(request["script"], request["job"])
    values = json.loads(_option(argv, "--encore_config") or "{}")
    config = EncoreConfig.for_stage(values.get("stage", "dev"), values)
    reads, writes = module.io_prefixes(config.lake)
    s3 = boto3.client("s3", region_name=config.region)
    bucket = config.resources.lake_bucket
    for prefix in dict.fromkeys([*reads, *writes]):
        mirror.pull(s3, bucket, prefix)
    try:
        result = module.main([*argv, "--lake_root", f"file://{mirror.root / bucket}/"]) or {}
    except BaseException:
        mirror.forget(bucket)  # what the failed run left in the folder is not what S3 holds: fetch it all again
        raise
    finally:
        # Each Glue run has a session of its own: what one run cached must not answer the next. Spark matches a
        # cached plan by its shape, and a folder read again at the same path has the same shape.
        from pyspark.sql import SparkSession

        SparkSession.builder.getOrCreate().catalog.clearCache()  # the worker's one session
    for prefix in writes:
        mirror.push(s3, bucket, prefix)
    return dict(result)


class S3Mirror:
    """S3 prefixes as folders, kept between runs: an object whose ETag is the one the mirror last saw (it
    downloaded or uploaded it) is not fetched again, so a job reading what the previous one wrote copies only
    what changed. Spark's checksum files stay local."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.etags: dict[tuple[str, str], str] = {}

    def pull(self, s3: Any, bucket: str, prefix: str) -> None:
        """Make ``<root>/bucket/prefix`` hold what S3 holds under ``prefix``."""
        listed = {o["Key"]: o["ETag"] for o in _list(s3, bucket, prefix) if not o["Key"].endswith("/")}
        for path in self._files(bucket, prefix):
            key = str(path.relative_to(self.root / bucket))
            if key not in listed:
                path.unlink()
                path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
                self.etags.pop((bucket, key), None)
        self._prune(bucket, prefix)
        stale = [k for k, etag in listed.items() if self.etags.get((bucket, k)) != etag
                 or not (self.root / bucket / k).exists()]  # fmt: skip

        def fetch(key: str) -> None:
            target = self.root / bucket / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            self.etags[(bucket, key)] = listed[key]

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(fetch, stale))

    def push(self, s3: Any, bucket: str, prefix: str) -> None:
        """Make ``s3://bucket/prefix`` equal to ``<root>/bucket/prefix``."""
        local = {str(p.relative_to(self.root / bucket)): p for p in self._files(bucket, prefix)}
        listed = {o["Key"]: o["ETag"] for o in _list(s3, bucket, prefix)}

        def put(item: tuple[str, Path]) -> None:
            key, path = item
            data = path.read_bytes()
            if listed.get(key) == f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"':
                self.etags[(bucket, key)] = listed[key]
                return  # S3 holds these very bytes
            self.etags[(bucket, key)] = s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"]

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, local.items()))
        stale = [k for k in listed if k not in local]
        for i in range(0, len(stale), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stale[i : i + 1000]]})
        for key in stale:
            self.etags.pop((bucket, key), None)

    def forget(self, bucket: str) -> None:
        self.etags = {k: v for k, v in self.etags.items() if k[0] != bucket}

    def _prune(self, bucket: str, prefix: str) -> None:
        """Remove the folders left empty (deepest first): S3 has no empty folders, and Spark, finding one where a
        table was, cannot read it as a table that is not there."""
        base = self.root / bucket
        folders = [p for p in base.glob(prefix + "**/") if p.is_dir()] if prefix.endswith("/") else []
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()

    def _files(self, bucket: str, prefix: str) -> list[Path]:
        base = self.root / bucket
        found = base.glob(prefix + "**/*") if prefix.endswith("/") else [base / prefix]
        return [p for p in found if p.is_file() and not p.name.endswith(".crc")]


def _list(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects.extend(page.get("Contents", []))
    return objects


class _Tee(io.TextIOBase):
    """What a run prints, kept for its log stream (as Glue sends a job's stdout to CloudWatch Logs)."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.buffer = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        return self.buffer.write(text)

    def lines(self) -> list[str]:
        return self.buffer.getvalue().splitlines()


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shipped", required=True, help="the --extra-py-files, os.pathsep-separated")
    ap.add_argument("--provided", default="")
    ap.add_argument("--log-level", help="Spark's (default: its own, WARN)")
    ap.add_argument("--in-fd", type=int, required=True)
    ap.add_argument("--out-fd", type=int, required=True)
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a job's lines reach the log as printed
    shipped = [p for p in args.shipped.split(os.pathsep) if p]
    install(shipped, filter(None, args.provided.split(",")), "the Glue job")
    session(shipped, args.log_level)
    mirror = S3Mirror(Path(tempfile.mkdtemp(prefix="encore-glue-mirror-")))
    try:
        _serve(args, mirror)
    finally:
        shutil.rmtree(mirror.root, ignore_errors=True)


def _serve(args: argparse.Namespace, mirror: S3Mirror) -> None:
    with os.fdopen(args.in_fd, "rb") as requests, os.fdopen(args.out_fd, "wb") as answers:
        answers.write(b'{"ready": true}\n')
        answers.flush()
        for line in requests:
            request = json.loads(line)
            started = time.perf_counter()
            output = _Tee(sys.stdout)
            try:
                with contextlib.redirect_stdout(output):
                    answer: dict[str, Any] = {"result": _run(request, mirror)}
            except Exception as exc:
                traceback.print_exc()
                print(f"{type(exc).__name__}: {exc}", file=output)
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            answer["output"] = output.lines()
            answer["seconds"] = time.perf_counter() - started
            answers.write(json.dumps(answer, default=str).encode() + b"\n")
            answers.flush()
            sys.stdout.flush()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C in the twin's terminal reaches it too: it ends, quietly
        main(sys.argv[1:])
