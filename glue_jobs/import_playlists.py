"""Glue job: MPD slices uploaded to ``imports/mpd/`` -> raw events, catalog rows and rejects, at any scale.

The same conversion as ``encore import mpd`` (``encore.imports.mpd``, through
``encore_spark.transforms.playlist_import``) for the full Million Playlist Dataset (1,000 slices, 66 million
entries), which one machine converts too slowly. Run on demand (``encore job run import_playlists``, or
StartJobRun), after ``aws s3 cp --recursive mpd_data/ s3://<lake>/imports/mpd/``:

- events: gzipped JSON lines added to the raw zone under the run's day (``raw/events/YYYY/MM/DD/00/``), where the
  next curate run reads them; event ids are UUID5s of (pid, pos, track URI), so a second run adds files but no
  events (curation keeps one row per ``event_id``);
- catalog rows: ``catalog/imports/mpd/`` (CSV), which ``load_catalog`` merges after ``catalog/tracks.csv``;
- rejected playlists and slices: ``quarantine/import/mpd/<run time>/`` (JSON: where, reason, record).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from encore.config import LakePrefixes
from encore.imports.mpd import DEFAULT_REGION, read_release_dates_text
from encore_spark.io import parse_args, path_exists, spark_session
from encore_spark.transforms import playlist_import

SLICES = "mpd/"
RELEASE_DATES = "catalog_extra.json"


def io_prefixes(lake: LakePrefixes) -> tuple[list[str], list[str]]:
    """What the job reads and (over)writes, for mirroring a local run."""
    return [f"{lake.imports}{SLICES}"], [lake.raw_events, f"{lake.catalog}imports/", f"{lake.quarantine}import/"]


def main(argv: Sequence[str]) -> dict[str, int]:
    args = parse_args(argv)
    spark = spark_session("encore-import-playlists")
    # No _SUCCESS marker among the raw zone's objects: the raw zone holds events only.
    spark.sparkContext._jsc.hadoopConfiguration().set(  # type: ignore[attr-defined]
        "mapreduce.fileoutputcommitter.marksuccessfuljobs", "false"
    )
    lake = args.config.lake
    source = args.path(f"{lake.imports}{SLICES}")
    if not path_exists(spark, source):
        print(f"import_playlists: nothing at {source}; nothing to do")
        return {}
    extra = f"{source}{RELEASE_DATES}"
    dates = read_release_dates_text(spark.sparkContext.wholeTextFiles(extra).first()[1], extra) if path_exists(
        spark, extra) else {}  # fmt: skip
    files = spark.sparkContext.binaryFiles(f"{source}mpd.slice.*.json")
    events, catalog, rejected = playlist_import(files, DEFAULT_REGION, dates)
    run = datetime.fromtimestamp(args.run_ms / 1000, UTC)
    events.write.mode("append").option("compression", "gzip").json(args.path(f"{lake.raw_events}{run:%Y/%m/%d}/00/"))
    catalog.coalesce(1).write.mode("overwrite").option("header", True).csv(args.path(f"{lake.catalog}imports/mpd/"))
    n_rejected = rejected.count()
    if n_rejected:
        rejected.write.mode("overwrite").json(args.path(f"{lake.quarantine}import/mpd/{run:%Y%m%dT%H%M%SZ}/"))
    counts = {"slices": files.count(), "events": events.count(), "tracks": catalog.count(), "rejected": n_rejected}
    print(f"import_playlists: {counts}")
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
