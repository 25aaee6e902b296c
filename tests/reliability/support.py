"""What the reliability suites share: the API key, their sizes, fresh events, and the raw zone's contents."""

from __future__ import annotations

import gzip
import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from encore.clients import get_client
from encore.config import EncoreConfig
from encore_local.twin.apigateway import DEFAULT_API_KEY

KEY = {"x-api-key": DEFAULT_API_KEY}
# `make test` runs the suites at small scale; `make reliability` sets these to the full sizes.
LOAD_SECONDS = float(os.environ.get("ENCORE_LOAD_SECONDS", "20"))
GENERATED_PER_OPERATION = int(os.environ.get("ENCORE_GENERATED_PER_OPERATION", "70"))
HOSTILE_PER_CLASS = int(os.environ.get("ENCORE_HOSTILE_PER_CLASS", "15"))
RETRY_ROUNDS = int(os.environ.get("ENCORE_RETRY_ROUNDS", "5"))


def history(sim_dir: Path) -> pd.DataFrame:
    """The simulated history's events (what the served lake was built from)."""
    files = sorted((sim_dir / "events").glob("*"))
    return pd.concat(pd.read_json(p, lines=True, convert_dates=False) for p in files)


def new_events(users: list[str], tracks: list[str], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Valid events of now, with fresh ids."""
    now = int(time.time() * 1000)
    return [
        {
            "event_id": str(uuid.uuid4()),
            "user_id": users[(seed + i) % len(users)],
            "track_id": tracks[(seed * 7 + i) % len(tracks)],
            "action": "complete",
            "timestamp": now - 1000 * i,
            "played_ms": 180_000,
            "track_duration_ms": 180_000,
            "region": "US",
        }
        for i in range(n)
    ]


def raw_event_ids(config: EncoreConfig) -> Counter[str]:
    """Event ids in the raw zone as Firehose delivered them (imports of simulated history left out)."""
    s3 = get_client("s3", config.region)
    bucket = config.resources.lake_bucket
    found: Counter[str] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=config.lake.raw_events):
        for obj in page.get("Contents", []):
            if "encore-import-" in obj["Key"]:
                continue
            data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            found.update(json.loads(line)["event_id"] for line in data.splitlines() if line.strip())
    return found
