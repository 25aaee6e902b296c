"""Moving simulator output into the data lake, in the layout the pipeline reads (outside data: ``importer``)."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from encore.clients import get_client
from encore.config import EncoreConfig
from encore_local.simulator.run import CATALOG_CSV, EVENTS_DIR, LISTENERS_CSV


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


def read_table(config: EncoreConfig, prefix: str, scratch: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The Parquet files of a lake table (everything under ``prefix``), downloaded under ``scratch`` in their
    layout, so partition folders (``dt=...``) become columns; an empty frame when there are none."""
    s3 = get_client("s3", config.region)
    bucket, found = config.resources.lake_bucket, False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".parquet"):
                target = scratch / obj["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, obj["Key"], str(target))
                found = True
    return pd.read_parquet(scratch / prefix, columns=list(columns) if columns else None) if found else pd.DataFrame()
