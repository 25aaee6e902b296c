"""The Glue jobs' I/O: arguments, the SparkSession, lake paths, the Glue Data Catalog, DynamoDB loads.

Every path is ``<lake_root>/<prefix>``: ``s3://<bucket>/`` in Glue, a local folder mirrored from S3 when the
offline twin runs a job (``encore job run``). Nothing else differs.
"""

from __future__ import annotations

import argparse
import json
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from encore.clients import get_client, get_resource
from encore.config import EncoreConfig
from encore.promotion import s3_url


@dataclass(frozen=True)
class JobArgs:
    config: EncoreConfig
    lake_root: str  # "s3://bucket/" or "file:///tmp/mirror/" (always ends with "/")
    run_ms: int
    lookback_days: int
    model_version: str | None = None
    model_data: str | None = None
    reload_all_periods: bool = False

    def path(self, prefix: str) -> str:
        return f"{self.lake_root}{prefix}"


def _run_ms(text: str | None) -> int:
    if not text:
        return int(time.time() * 1000)
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1000)


def parse_args(argv: Sequence[str]) -> JobArgs:
    """Glue passes ``--name value`` pairs plus its own (``--JOB_ID`` ...), which are ignored here."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--encore_config", required=True, help="the runtime configuration as JSON")
    ap.add_argument("--lake_root", default=None, help="default: s3://<lake bucket>/")
    ap.add_argument("--run_time", default=None, help="ISO time or epoch ms; default: now")
    ap.add_argument("--lookback_days", type=int, default=2, help="raw days to (re)read; 0 = everything")
    ap.add_argument("--model_version", default=None)
    ap.add_argument("--model_data", default=None, help="s3:// URL of the promoted model.tar.gz (load_vectors)")
    ap.add_argument("--reload_all_periods", default="false", help="build_charts: load every period (a backfill)")
    args, _ = ap.parse_known_args(list(argv))
    values = json.loads(args.encore_config)
    config = EncoreConfig.for_stage(values.get("stage", "dev"), values)
    root = args.lake_root or f"s3://{config.resources.lake_bucket}/"
    return JobArgs(
        config=config,
        lake_root=root if root.endswith("/") else root + "/",
        run_ms=_run_ms(args.run_time),
        lookback_days=args.lookback_days,
        model_version=args.model_version,
        model_data=args.model_data,
        reload_all_periods=args.reload_all_periods.lower() == "true",
    )


def spark_session(app: str) -> SparkSession:
    """Glue's session where there is one; else a small local one (the twin)."""
    return (
        SparkSession.builder.appName(app)
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "8")
        # dt=2026-09-01 stays a string partition value, as the catalog declares it
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .getOrCreate()
    )


def path_exists(spark: SparkSession, path: str) -> bool:
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    p = jvm.org.apache.hadoop.fs.Path(path)
    return bool(p.getFileSystem(conf).exists(p))


def read_curated(spark: SparkSession, args: JobArgs, days: int) -> DataFrame | None:
    """Curated events of the ``days`` event dates up to the run (cached: every job reads them several times),
    or None before the first curation."""
    curated = args.path(args.config.lake.curated_events)
    if not path_exists(spark, curated):
        return None
    first_day = datetime.fromtimestamp(args.run_ms / 1000, UTC).date() - timedelta(days=days)
    return spark.read.parquet(curated).where(F.col("dt") >= first_day.isoformat()).cache()


def extract_artifact(model_data: str, region: str, into: Path, wanted: Callable[[str], bool]) -> Path:
    """The members of a model's ``model.tar.gz`` that ``wanted`` takes (by their path inside it), unpacked into
    ``into``, which is returned."""
    bucket, key = s3_url(model_data)
    body = get_client("s3", region).get_object(Bucket=bucket, Key=key)["Body"]
    with tarfile.open(fileobj=body, mode="r|gz") as tar:  # streamed: nothing the job does not want lands on disk
        for member in tar:
            if wanted(member.name.removeprefix("./")):
                tar.extract(member, into, filter="data")
    return into


# Deleted listeners (encore.deletion): one JSON object per listener under the lake's deletions/ prefix
DELETION_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("requested_at_ms", T.LongType()),
        T.StructField("purged_at_ms", T.LongType()),
    ]
)


def deleted_listeners(spark: SparkSession, args: JobArgs) -> DataFrame | None:
    """Every deletion request: the listener and when they asked (None when there is none)."""
    path = args.path(args.config.lake.deletions)
    if not path_exists(spark, path):
        return None
    found = spark.read.schema(DELETION_SCHEMA).json(path).where(F.col("user_id").isNotNull())
    return found if found.limit(1).count() else None


def _deletion_join(events: DataFrame, deleted: DataFrame, how: str) -> DataFrame:
    gone = F.broadcast(deleted.select(F.col("user_id").alias("_gone"), "requested_at_ms"))
    return events.join(gone, (events["user_id"] == gone["_gone"]) & (events["timestamp"] < gone["requested_at_ms"]),
                       how)  # fmt: skip


def without_deleted(events: DataFrame, deleted: DataFrame | None) -> DataFrame:
    """``events`` less those of deleted listeners dated before their request (a listener who comes back after
    deleting starts again)."""
    return events if deleted is None else _deletion_join(events, deleted, "left_anti")


def of_deleted(events: DataFrame, deleted: DataFrame) -> DataFrame:
    """The events ``without_deleted`` leaves out."""
    return _deletion_join(events, deleted, "left_semi")


# -- Glue Data Catalog ---------------------------------------------------------------------------------------

_HIVE_TYPES = {
    T.StringType: "string",
    T.LongType: "bigint",
    T.IntegerType: "int",
    T.DoubleType: "double",
    T.FloatType: "float",
    T.BooleanType: "boolean",
    T.BinaryType: "binary",
    T.DateType: "date",
    T.TimestampType: "timestamp",
    T.ShortType: "smallint",
}


def hive_type(dt: T.DataType) -> str:
    if isinstance(dt, T.ArrayType):
        return f"array<{hive_type(dt.elementType)}>"
    if isinstance(dt, T.StructType):
        return "struct<" + ",".join(f"{f.name}:{hive_type(f.dataType)}" for f in dt.fields) + ">"
    return _HIVE_TYPES[type(dt)]


def register_table(
    args: JobArgs,
    table: str,
    prefix: str,
    schema: T.StructType,
    partition_keys: Sequence[str] = (),
    partitions: Iterable[Sequence[str]] = (),
    description: str = "",
) -> None:
    """Create or update a Parquet table in the lake's database, and add partitions it does not have yet.

    Locations are always the S3 ones (``s3://<bucket>/<prefix>``), whatever root the job ran against, so
    Athena reads what the catalog says.
    """
    glue = get_client("glue", args.config.region)
    db = args.config.resources.glue_database
    location = f"s3://{args.config.resources.lake_bucket}/{prefix}"
    columns = [{"Name": f.name, "Type": hive_type(f.dataType)} for f in schema.fields if f.name not in partition_keys]
    storage = {
        "Columns": columns,
        "Location": location,
        "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
    }
    table_input = {
        "Name": table,
        "Description": description,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
        "StorageDescriptor": storage,
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in partition_keys],
    }
    try:
        glue.update_table(DatabaseName=db, TableInput=table_input)
    except glue.exceptions.EntityNotFoundException:
        glue.create_table(DatabaseName=db, TableInput=table_input)
    wanted = [list(p) for p in partitions]
    if not wanted:
        return
    existing = set()
    for page in glue.get_paginator("get_partitions").paginate(DatabaseName=db, TableName=table):
        existing.update(tuple(p["Values"]) for p in page["Partitions"])
    new = [values for values in wanted if tuple(values) not in existing]
    for i in range(0, len(new), 100):
        glue.batch_create_partition(
            DatabaseName=db,
            TableName=table,
            PartitionInputList=[
                {
                    "Values": values,
                    "StorageDescriptor": {
                        **storage,
                        "Location": location
                        + "/".join(f"{k}={v}" for k, v in zip(partition_keys, values, strict=True))
                        + "/",
                    },
                }
                for values in new[i : i + 100]
            ],
        )


# -- DynamoDB --------------------------------------------------------------------------------------------------


def write_dynamodb(df: DataFrame, table: str, region: str, to_item: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """Put every row as an item (batched, retried by boto3's batch writer). Returns the number written."""

    def put_partition(rows: Iterable[Any]) -> Iterable[int]:
        written = 0
        with get_resource("dynamodb", region).Table(table).batch_writer() as batch:
            for row in rows:
                batch.put_item(Item=to_item(row.asDict(recursive=True)))
                written += 1
        yield written

    return int(sum(df.rdd.mapPartitions(put_partition).collect()))


def decimal(value: float | None) -> Decimal | None:
    """DynamoDB numbers from floats (boto3 refuses float)."""
    return None if value is None else Decimal(repr(float(value)))
