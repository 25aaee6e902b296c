"""Glue job: the last 90 days of curated events -> interactions, track_stats and user_stats (Parquet + catalog)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from encore.config import LakePrefixes
from encore_spark.io import parse_args, read_curated, register_table, spark_session
from encore_spark.transforms import interactions, track_stats, transitions, user_stats

DESCRIPTIONS = {
    "interactions": "implicit rating per (user, track): decayed sum over the window (the training matrix)",
    "track_stats": "per track: plays_7d, plays_total, skip rate, listeners",
    "user_stats": "per listener: events, plays, tracks, skip rate, last activity, main region",
    "transitions": "consecutive plays in a session (previous track -> qualifying next play)",
}


def io_prefixes(lake: LakePrefixes) -> tuple[list[str], list[str]]:
    """What the job reads and (over)writes, for mirroring a local run."""
    return [lake.curated_events], [f"{lake.features}{name}/" for name in DESCRIPTIONS]


def main(argv: Sequence[str]) -> dict[str, int]:
    args = parse_args(argv)
    spark = spark_session("encore-build-features")
    config = args.config
    events = read_curated(spark, args, config.rating.window_days)
    if events is None:
        print("build_features: no curated events yet; nothing to do")
        return {}
    qualifying = config.session.qualifying_play_ms
    tables = {
        "interactions": interactions(events, args.run_ms, config.rating),
        "track_stats": track_stats(events, args.run_ms, qualifying),
        "user_stats": user_stats(events, args.run_ms, qualifying),
        "transitions": transitions(events, args.run_ms, qualifying),
    }
    counts = {}
    for name, df in tables.items():
        prefix = f"{config.lake.features}{name}/"
        df.write.mode("overwrite").parquet(args.path(prefix))
        register_table(args, name, prefix, df.schema, description=DESCRIPTIONS[name])
        counts[name] = spark.read.parquet(args.path(prefix)).count()
    print(f"build_features: {counts}")
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
