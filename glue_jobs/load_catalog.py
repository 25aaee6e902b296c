"""Glue job: the tracks CSV (``catalog/tracks.csv``) -> the Parquet catalog ``features/tracks/`` and the tracks table.

The catalog rows the import_playlists job wrote (``catalog/imports/``) follow the tracks CSV's, so a track both
list merges as a track listed twice does (``catalog_tracks``): the tracks CSV's listing first.

Rows that cannot be read (no id, no name, a non-numeric audio feature) go to ``quarantine/catalog/`` with their
reason; a catalog with no audio columns at all (playlists in MPD format) loads without audio features. Each
track's item is replaced by its catalog metadata (its vectors are items of their own, ``vec#<id>``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from encore.config import LakePrefixes
from encore_spark.io import decimal, parse_args, path_exists, register_table, spark_session, write_dynamodb
from encore_spark.transforms import AUDIO_FIELDS, catalog_tracks


def to_item(row: dict[str, Any]) -> dict[str, Any]:
    attrs = {
        "track_id": row["track_id"],
        "name": row["name"],
        "artist_id": row["artist_id"],
        "artist_name": row["artist_name"],
        "album": row["album"],
        "genres": list(row["genres"]),
        "release_date": row["release_date"],
        "duration_ms": int(row["duration_ms"]),
        "explicit": bool(row["explicit"]),
        "popularity": int(row["popularity"] or 0),
    }
    # A catalog without audio features (MPD's) stores none rather than a map of NULLs.
    audio = {k: decimal(row[k]) if isinstance(row[k], float) else row[k] for k in AUDIO_FIELDS if row[k] is not None}
    if audio:
        attrs["audio"] = audio
    if row.get("image_url"):
        attrs["image_url"] = row["image_url"]
    return attrs


def io_prefixes(lake: LakePrefixes) -> tuple[list[str], list[str]]:
    """What the job reads and (over)writes, for mirroring a local run."""
    reads = [f"{lake.catalog}tracks.csv", f"{lake.catalog}imports/"]
    return reads, [f"{lake.features}tracks/", f"{lake.quarantine}catalog/"]


def main(argv: Sequence[str]) -> dict[str, int]:
    args = parse_args(argv)
    spark = spark_session("encore-load-catalog")
    config = args.config
    sources = [args.path(f"{config.lake.catalog}{name}") for name in ("tracks.csv", "imports/")]
    found = [s for s in sources if path_exists(spark, s)]
    if not found:
        print(f"load_catalog: no catalog at {' or '.join(sources)}; nothing to do")
        return {}
    frames = [
        spark.read.options(header=True, multiLine=True, escape='"', recursiveFileLookup=s.endswith("/")).csv(s)
        for s in found
    ]
    csv = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1], allowMissingColumns=True)
    good, bad = catalog_tracks(csv)
    good = good.cache()
    prefix = f"{config.lake.features}tracks/"
    good.write.mode("overwrite").parquet(args.path(prefix))
    register_table(args, "tracks", prefix, good.schema, description="the track catalog (metadata, audio, lyrics)")
    n_bad = bad.count()
    if n_bad:
        bad.write.mode("overwrite").parquet(args.path(f"{config.lake.quarantine}catalog/"))
    loaded = write_dynamodb(good, config.resources.tracks_table, config.region, to_item)
    counts = {"tracks": good.count(), "rejected": n_bad, "items": loaded}
    print(f"load_catalog: {counts}")
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
