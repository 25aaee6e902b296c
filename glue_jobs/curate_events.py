"""Glue job: raw Firehose objects -> curated Parquet by event date, exactly once per event_id; rejects quarantined.

Reads the raw objects of the last ``--lookback_days`` arrival days (0: all), merges them with what the
curated partitions of the same event dates already hold, de-duplicates by ``event_id`` and rewrites just
those partitions, so a re-run or a duplicate delivery never duplicates an event. Events of deleted listeners
dated before their request (``deletions/``) are left out. Rejected rows go to
``quarantine/events/arrival_dt=.../`` with their reason; a re-run rewrites those days rather than appending.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.utils import AnalysisException

from encore.config import LakePrefixes
from encore_spark.io import (
    JobArgs,
    deleted_listeners,
    parse_args,
    path_exists,
    register_table,
    spark_session,
    without_deleted,
)
from encore_spark.transforms import CURATED_COLUMNS, RAW_EVENT_SCHEMA, dedupe_events, validate_events


def raw_paths(spark: SparkSession, args: JobArgs) -> list[str]:
    root = args.path(args.config.lake.raw_events)
    if args.lookback_days <= 0:
        return [root] if path_exists(spark, root) else []
    run_day = datetime.fromtimestamp(args.run_ms / 1000, UTC).date()
    paths = [f"{root}{run_day - timedelta(days=n):%Y/%m/%d}/" for n in range(args.lookback_days)]
    return [p for p in paths if path_exists(spark, p)]


def io_prefixes(lake: LakePrefixes) -> tuple[list[str], list[str]]:
    """What the job reads and (over)writes, for mirroring a local run."""
    return [lake.raw_events, lake.deletions], [lake.curated_events, f"{lake.quarantine}events/"]


def main(argv: Sequence[str]) -> dict[str, int]:
    args = parse_args(argv)
    spark = spark_session("encore-curate-events")
    lake = args.config.lake
    paths = raw_paths(spark, args)
    if not paths:
        print("curate_events: no raw objects in the window; nothing to do")
        return {"curated": 0, "rejected": 0, "dates": 0}
    # The arrival day is in the object's key (Firehose: raw/events/YYYY/MM/DD/HH/...).
    day = F.regexp_extract(F.input_file_name(), r"/(\d{4})/(\d{2})/(\d{2})/\d{2}/[^/]*$", 0)
    raw = (
        spark.read.schema(RAW_EVENT_SCHEMA)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt_record")
        .option("recursiveFileLookup", "true")
        .json(paths)
        .withColumn(
            "arrival_dt", F.when(day == "", "unknown").otherwise(F.regexp_replace(F.substring(day, 2, 10), "/", "-"))
        )
    )
    valid, rejected = validate_events(raw, now_ms=args.run_ms, keep=["arrival_dt"])
    # A deleted listener's events still in the raw zone (until its retention ends) are not curated again
    new = without_deleted(dedupe_events(valid), deleted_listeners(spark, args)).select(*CURATED_COLUMNS)
    curated_path = args.path(lake.curated_events)
    if path_exists(spark, curated_path):
        # Merge with what the same event dates already hold, then rewrite just those partitions.
        new = new.persist(StorageLevel.MEMORY_AND_DISK)
        dates = [r.dt for r in new.select("dt").distinct().collect()]
        existing = spark.read.parquet(curated_path).where(F.col("dt").isin(dates)).select(*CURATED_COLUMNS)
        merged = dedupe_events(existing.unionByName(new)).localCheckpoint(eager=True)  # before overwriting its source
        new.unpersist()
    else:
        merged = new  # a first load: one pass, nothing to merge
    merged.repartition("dt").write.mode("overwrite").partitionBy("dt").parquet(curated_path)
    written = spark.read.parquet(curated_path)
    by_date = {r.dt: r["count"] for r in written.groupBy("dt").count().collect()}
    register_table(args, "curated_events", lake.curated_events, written.schema, ["dt"], [[d] for d in sorted(by_date)],
                   "listening events, one row per event_id, by event date (UTC)")  # fmt: skip

    prefix = f"{lake.quarantine}events/"
    rejected.write.mode("overwrite").partitionBy("arrival_dt").parquet(args.path(prefix))
    try:
        bad = spark.read.parquet(args.path(prefix))
        n_rejected = bad.count()
    except AnalysisException:  # nothing was rejected: the folder holds no file to read a schema from
        n_rejected = 0
    if n_rejected:
        days = sorted(r.arrival_dt for r in bad.select("arrival_dt").distinct().collect())
        register_table(args, "quarantine_events", prefix, bad.schema, ["arrival_dt"], [[d] for d in days],
                       "raw rows that failed validation, with the reason")  # fmt: skip
    counts = {"curated": sum(by_date.values()), "rejected": n_rejected, "dates": len(by_date)}
    print(f"curate_events: {counts}")
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
