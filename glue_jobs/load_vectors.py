"""Glue job: the champion's user and track vectors -> ``vec#<id>`` items in the users and tracks tables.

Reads ``vectors/users.parquet`` and ``vectors/tracks.parquet`` out of the champion's model.tar.gz (named by the
serving record, ``models/serving.json``, or by ``--model_data``/``--model_version``), so the vectors served are
those of the model the endpoint serves to everyone outside an online test. The nightly run ends with it whether or
not a model was promoted (an online test may have promoted its challenger): when the tables already hold the
champion's vectors (``models/vectors.json`` says which were loaded) it does nothing.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql.types import ArrayType, BinaryType, StringType, StructField, StructType

from encore.clients import get_client
from encore.config import EncoreConfig, LakePrefixes
from encore.promotion import ModelRegistry
from encore.stores import VECTOR_PREFIX, read_json
from encore_spark.io import extract_artifact, parse_args, spark_session, write_dynamodb


def io_prefixes(lake: LakePrefixes) -> tuple[list[str], list[str]]:
    """It reads the artifact through S3 itself and writes only to DynamoDB: nothing to mirror."""
    return [], []


def read_vectors(model_data: str, region: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    with tempfile.TemporaryDirectory() as tmp:
        root = extract_artifact(model_data, region, Path(tmp), lambda name: name.startswith("vectors/"))
        return pd.read_parquet(root / "vectors/users.parquet"), pd.read_parquet(root / "vectors/tracks.parquet")


def deleted_since(config: EncoreConfig, promoted_ms: int | None) -> set[str]:
    """Listeners who asked to be deleted and whom a model promoted at ``promoted_ms`` may still hold: their
    events were not yet purged when it was trained (no purge since the request, or one after the promotion; an
    unknown promotion time holds everyone who asked)."""
    s3, bucket = get_client("s3", config.region), config.resources.lake_bucket
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=config.lake.deletions)
    held = set()
    for obj in (o for page in pages for o in page.get("Contents", [])):
        request = read_json(s3, bucket, obj["Key"]) or {}
        purged = request.get("purged_at_ms")
        if purged is None or promoted_ms is None or purged > promoted_ms:
            held.add(str(request.get("user_id")))
    return held


def main(argv: Sequence[str]) -> dict[str, int]:
    args = parse_args(argv)
    config, registry = args.config, ModelRegistry(args.config)
    if bool(args.model_data) != bool(args.model_version):
        raise SystemExit("load_vectors takes --model_data s3://.../model.tar.gz and --model_version together")
    promoted_ms = None
    if args.model_data:
        model_data, version = args.model_data, args.model_version
    else:
        serving = registry.serving()
        if serving is None:
            print("load_vectors: no model serves yet; nothing to load")
            return {"users": 0, "tracks": 0}
        model_data, version = serving["model_data"], serving["version"]
        promoted_ms = int(serving.get("promoted_at", 0)) * 1000 or None
        if registry.vectors_version() == version:
            print(f"load_vectors: the tables hold {version}'s vectors already")
            return {"users": 0, "tracks": 0}
    spark = spark_session("encore-load-vectors")
    users, tracks = read_vectors(model_data, config.region)
    users = users[~users["user_id"].isin(deleted_since(config, promoted_ms))]  # never load a deleted listener again

    def user_item(row: dict[str, Any]) -> dict[str, Any]:
        item = {"user_id": VECTOR_PREFIX + row["user_id"], "vector": bytes(row["vector"]), "model_version": version}
        if row.get("history"):
            item["history"] = list(row["history"])
        return item

    def track_item(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "track_id": VECTOR_PREFIX + row["track_id"],
            "cf_vector": bytes(row["cf"]),
            "content_vector": bytes(row["content"]),
            "model_version": version,
        }

    # An explicit schema: Spark cannot infer an array's element type from pandas (nor from an empty list).
    user_schema = StructType([StructField("user_id", StringType()), StructField("vector", BinaryType()),
                              StructField("history", ArrayType(StringType()))])  # fmt: skip
    columns = zip(users["user_id"], users["vector"], users["history"], strict=True)
    rows = [(u, bytes(v), [str(t) for t in h]) for u, v, h in columns]
    counts = {
        "users": write_dynamodb(
            spark.createDataFrame(rows, user_schema), config.resources.users_table, config.region, user_item
        ),
        "tracks": write_dynamodb(
            spark.createDataFrame(tracks[["track_id", "cf", "content"]]),
            config.resources.tracks_table,
            config.region,
            track_item,
        ),
    }
    registry.set_vectors_version(version)
    print(f"load_vectors: {counts}")
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
