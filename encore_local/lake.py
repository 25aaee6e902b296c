"""Moving simulator output and MPD playlists into the data lake, in the layout the pipeline reads."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.playlists import (
    CATALOG_COLUMNS,
    DEFAULT_REGION,
    CatalogRows,
    playlist_events,
    read_release_dates,
    read_slice,
    slice_files,
)
from encore_local.errors import UsageError
from encore_local.playlists import CATALOG_EXTRA
from encore_local.simulator.run import CATALOG_CSV, EVENTS_DIR, LISTENERS_CSV

T = TypeVar("T")


@dataclass
class ImportResult:
    catalog_objects: int = 0
    event_objects: int = 0
    events: int = 0
    bytes: int = 0


def raw_key(config: EncoreConfig, day: str, name: str) -> str:
    """Firehose's layout: ``<prefix>YYYY/MM/DD/HH/<name>``; imports land in hour 00 of their day."""
    yyyy, mm, dd = day.split("-")
    return f"{config.lake.raw_events}{yyyy}/{mm}/{dd}/00/{name}"


def import_simulation(
    config: EncoreConfig, sim_dir: Path, *, days: int | None = None, progress: bool = True, arrived: str | None = None
) -> ImportResult:
    """Upload the catalog and listeners to ``catalog/`` and each day's events (the first ``days`` only, if
    given), gzipped, to the raw zone: under the day each arrived, which is ``arrived`` (``YYYY-MM-DD``) for a
    bulk import of history (the curate job's next scheduled run then picks it all up), else the events' own day
    (as if Firehose had delivered each day as it happened)."""
    s3 = get_client("s3", config.region)
    bucket = config.resources.lake_bucket
    result = ImportResult()
    for rel in (CATALOG_CSV, LISTENERS_CSV):
        s3.upload_file(str(sim_dir / rel), bucket, f"{config.lake.catalog}{Path(rel).name}")
        result.catalog_objects += 1
    files = sorted((sim_dir / EVENTS_DIR).glob("*.jsonl*"))[:days]
    for path in tqdm(files, desc="importing history", unit="day", disable=not progress, leave=False):
        data = path.read_bytes()
        raw = gzip.decompress(data) if path.suffix == ".gz" else data
        body = data if path.suffix == ".gz" else gzip.compress(raw, compresslevel=5)
        day = path.name.split(".")[0]
        s3.put_object(Bucket=bucket, Key=raw_key(config, arrived or day, f"encore-import-{day}.gz"), Body=body)
        result.event_objects += 1
        result.events += raw.count(b"\n")
        result.bytes += len(body)
    return result


def _checked(read: Callable[[Path], T], path: Path) -> T:
    """A reader's ``ValueError`` (bad JSON, a missing key) as the one-line error the command line reports."""
    try:
        return read(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def import_playlists(
    config: EncoreConfig,
    mpd_dir: Path,
    *,
    progress: bool = False,
    arrived: str | None = None,
    region: str = DEFAULT_REGION,
) -> ImportResult:
    """Map MPD slices (``mpd.slice.*.json``, and ``catalog_extra.json`` release dates if present) onto the
    contracts (``encore.playlists``) and upload them as ``import_simulation`` does: the catalog of these slices
    to ``catalog/tracks.csv``, the events gzipped to the raw zone, under ``arrived`` (``YYYY-MM-DD``) for a bulk
    import, else under each event's own day. Each slice is checked whole before its events are uploaded, and
    object names follow the slice, so importing again after a bad slice replaces, never duplicates."""
    paths = slice_files(mpd_dir)
    if not paths:
        raise UsageError(f"no mpd.slice.<start>-<end>.json files in {mpd_dir}")
    extra = mpd_dir / CATALOG_EXTRA
    release_dates = _checked(read_release_dates, extra) if extra.exists() else None
    s3 = get_client("s3", config.region)
    bucket = config.resources.lake_bucket
    result = ImportResult()
    catalog = CatalogRows()
    for path in tqdm(paths, desc="importing playlists", unit="slice", disable=not progress, leave=False):
        by_day: dict[str, list[str]] = defaultdict(list)
        for playlist in _checked(read_slice, path):
            catalog.add(playlist)
            for event in playlist_events(playlist, region):
                day = arrived or datetime.fromtimestamp(event["timestamp"] / 1000, UTC).date().isoformat()
                by_day[day].append(json.dumps(event, separators=(",", ":")) + "\n")
        stem = path.name.removesuffix(".json").replace(".", "-")
        for day, lines in sorted(by_day.items()):
            body = gzip.compress("".join(lines).encode(), compresslevel=5)
            name = f"encore-import-{stem}.gz" if arrived else f"encore-import-{stem}-{day}.gz"
            s3.put_object(Bucket=bucket, Key=raw_key(config, day, name), Body=body)
            result.event_objects += 1
            result.events += len(lines)
            result.bytes += len(body)
    text = io.StringIO()
    writer = csv.DictWriter(text, CATALOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(catalog.rows(release_dates))
    s3.put_object(Bucket=bucket, Key=f"{config.lake.catalog}tracks.csv", Body=text.getvalue().encode())
    result.catalog_objects += 1
    return result
