"""Glue job: remove deleted listeners' events from the curated zone (``deletions/``, written by
``DELETE /v1/users/{user_id}``; ``encore.deletion``).

Rewrites only the event dates that hold such events (a date left with none is removed whole), after curate_events
and before build_features: the features, and so the next model, are built without them. Each request is then
marked with when it was honoured and how many events went. Running it again removes nothing more.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from encore.clients import get_client
from encore.config import LakePrefixes
from encore_spark.io import (
    JobArgs,
    deleted_listeners,
    of_deleted,
    parse_args,
    path_exists,
    spark_session,
    without_deleted,
)


def io_prefixes(lake: LakePrefixes) -> tuple[list[str], list[str]]:
    """What the job reads and (over)writes, for mirroring a local run (the requests it marks through S3)."""
    return [lake.deletions, lake.curated_events], [lake.curated_events]


def _remove_dates(spark: SparkSession, root: str, dates: list[str]) -> None:
    """Delete ``dt=<date>`` partitions outright: an overwrite of dynamic partitions leaves a date it writes no
    row for as it was."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    for day in dates:
        path = jvm.org.apache.hadoop.fs.Path(f"{root.rstrip('/')}/dt={day}")
        path.getFileSystem(conf).delete(path, True)


def _mark(args: JobArgs, removed: dict[str, int], requests: list[Any]) -> None:
    """Each request not yet honoured, with when it was and what went (kept in S3, which load_vectors and operators
    read)."""
    config = args.config
    s3 = get_client("s3", config.region)
    for row in requests:
        if row.purged_at_ms is not None:
            continue  # honoured on an earlier night: its record (and what it removed then) stands
        body = {"user_id": row.user_id, "requested_at_ms": row.requested_at_ms, "purged_at_ms": args.run_ms,
                "curated_events_removed": removed.get(row.user_id, 0)}  # fmt: skip
        s3.put_object(Bucket=config.resources.lake_bucket, Key=config.lake.deletion(row.user_id),
                      Body=json.dumps(body).encode())  # fmt: skip


def main(argv: Sequence[str]) -> dict[str, int]:
    args = parse_args(argv)
    spark = spark_session("encore-purge-listeners")
    deleted = deleted_listeners(spark, args)
    curated_path = args.path(args.config.lake.curated_events)
    if deleted is None:
        print("purge_listeners: no deletion requests; nothing to do")
        return {"listeners": 0, "events_removed": 0, "dates_rewritten": 0}
    requests = deleted.collect()
    removed: dict[str, int] = {}
    dates: list[str] = []
    if path_exists(spark, curated_path):
        curated = spark.read.parquet(curated_path)
        found = of_deleted(curated, deleted).groupBy("user_id", "dt").count().collect()
        for r in found:
            removed[r.user_id] = removed.get(r.user_id, 0) + r["count"]
        dates = sorted({r.dt for r in found})
    if dates:
        kept = without_deleted(curated.where(F.col("dt").isin(dates)), deleted)
        rewritten = kept.localCheckpoint(eager=True)  # before overwriting its source
        emptied = sorted(set(dates) - {r.dt for r in rewritten.select("dt").distinct().collect()})
        rewritten.repartition("dt").write.mode("overwrite").partitionBy("dt").parquet(curated_path)
        _remove_dates(spark, curated_path, emptied)
    _mark(args, removed, requests)
    counts = {"listeners": len(requests), "events_removed": sum(removed.values()), "dates_rewritten": len(dates)}
    print(f"purge_listeners: {counts}")
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
