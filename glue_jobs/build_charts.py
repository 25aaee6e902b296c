"""Glue job: top tracks per region per hour and per day, and 7-day trending -> Parquet and the charts table.

Each chart is stored under ``chart_key = kind#region#window#period`` with one item per rank; the newest
period of each (kind, region, window) is also stored as ``...#latest`` so the API reads "now" in one query.
Parquet gets every recomputed period; the table only those that can still change (the last hours and days:
older ones were loaded when they were recent) and each chart's newest, unless ``--reload_all_periods true`` (a
backfill).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import Window
from pyspark.sql import functions as F

from encore.config import LakePrefixes
from encore_spark.io import parse_args, read_curated, register_table, spark_session, write_dynamodb
from encore_spark.transforms import MS_PER_DAY, MS_PER_HOUR, top_charts, trending

HOURS_BACK = 48  # hourly charts recomputed each run
DAYS_BACK = 7  # daily charts recomputed each run
LIVE_HOURS = 3  # ... of which these are still changing (late events) and reloaded into the table
LIVE_DAYS = 2
TTL_DAYS = {"hour": 14, "day": 90, "7d": 30}


def io_prefixes(lake: LakePrefixes) -> tuple[list[str], list[str]]:
    """What the job reads and (over)writes, for mirroring a local run."""
    return [lake.curated_events], [f"{lake.features}charts/"]


def _period(ms: int, fmt: str) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(fmt)


def main(argv: Sequence[str]) -> dict[str, int]:
    args = parse_args(argv)
    spark = spark_session("encore-build-charts")
    config = args.config
    events = read_curated(spark, args, days=15)  # two trending weeks and a day of slack
    if events is None:
        print("build_charts: no curated events yet; nothing to do")
        return {}
    run_ms, size, qualifying = args.run_ms, config.serving.chart_size, config.session.qualifying_play_ms
    hour_start = run_ms - run_ms % MS_PER_HOUR
    day_start = run_ms - run_ms % MS_PER_DAY
    charts = (
        top_charts(events, "hour", size, hour_start - (HOURS_BACK - 1) * MS_PER_HOUR, run_ms + 1, qualifying)
        .unionByName(top_charts(events, "day", size, day_start - (DAYS_BACK - 1) * MS_PER_DAY, run_ms + 1, qualifying))
        .withColumn("plays_prev_7d", F.lit(None).cast("long"))
        .withColumn("score", F.lit(None).cast("double"))
        .unionByName(trending(events, run_ms, size, qualifying))
        .cache()
    )
    prefix = f"{config.lake.features}charts/"
    charts.write.mode("overwrite").partitionBy("kind", "window").parquet(args.path(prefix))
    register_table(
        args,
        "charts",
        prefix,
        charts.schema,
        ["kind", "window"],
        [[r.kind, r.window] for r in charts.select("kind", "window").distinct().collect()],
        "top tracks per region per hour and day, and 7-day trending",
    )

    newest = F.max("period").over(Window.partitionBy("kind", "region", "window"))
    flagged = charts.withColumn("_is_newest", F.col("period") == newest)
    latest = flagged.where("_is_newest").drop("_is_newest")
    live = charts
    if not args.reload_all_periods:
        hour_from = _period(hour_start - (LIVE_HOURS - 1) * MS_PER_HOUR, "%Y-%m-%dT%H")
        day_from = _period(day_start - (LIVE_DAYS - 1) * MS_PER_DAY, "%Y-%m-%d")
        # The newest period is stored under its own key too, however old: asked for by date (the dashboard's
        # history), a region's last active hour answers instead of coming back empty.
        live = flagged.where(
            F.col("_is_newest")
            | (F.col("window") == "7d")
            | ((F.col("window") == "hour") & (F.col("period") >= hour_from))
            | ((F.col("window") == "day") & (F.col("period") >= day_from))
        ).drop("_is_newest")
    items = live.withColumn("key_period", F.col("period")).unionByName(latest.withColumn("key_period", F.lit("latest")))
    expires_from = run_ms // 1000

    def to_item(row: dict[str, Any]) -> dict[str, Any]:
        item = {
            "chart_key": f"{row['kind']}#{row['region']}#{row['window']}#{row['key_period']}",
            "rank": int(row["rank"]),
            "track_id": row["track_id"],
            "plays": int(row["plays"]),
            "period": row["period"],
            "expires_at": expires_from + TTL_DAYS[row["window"]] * 86_400,
        }
        if row.get("plays_prev_7d") is not None:
            item["plays_prev_7d"] = int(row["plays_prev_7d"])
        return item

    loaded = write_dynamodb(items, config.resources.charts_table, config.region, to_item)
    counts = {"rows": charts.count(), "items": loaded}
    print(f"build_charts: {counts}")
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
