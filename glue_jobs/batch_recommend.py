"""Glue job: each active listener's home page, computed ahead for e-mail and push, as Parquet under
``batch/dt=<date>/`` (table ``batch_recommendations``).

The champion's own artifact does the ranking: its inference code (``code/inference.py``, NumPy and SciPy, which
Glue provides) runs on the executors, one model per Python worker, over the listeners a partition holds. The
listeners are those the champion has vectors for (``vectors/users.parquet``: long-term vector and liked
history) with a play in the last ``batch.active_days``; their plays come from the curated events. Nothing a
listener played in that window, nor a liked track, is recommended; ``batch.filter`` (a named filter) applies
inside the model as it does online, new releases get their share of places, and the artist cap holds. A listener
who first played after the champion was trained gets a list once a model has learnt them.

Why Glue and not a SageMaker batch transform: the listeners' state is in the lake (events) and the artifact
(vectors), the result is a catalogued Parquet table, and the scoring code is already in the artifact; a
transform would add a job to write its JSON-lines input and another to turn its output into a table.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pyspark import SparkFiles
from pyspark.sql import Row, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from encore.config import LakePrefixes
from encore.promotion import ModelRegistry
from encore.scoring import cap_per_artist
from encore_spark.io import extract_artifact, parse_args, read_curated, register_table, spark_session

RECENT = 50  # the recent plays the ranking sees, as the profile keeps them
MAX_PLAYED = 4000  # what a list leaves out: every track played in the window (with the liked history, the model's 5000)
OUTPUT = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("rank", T.IntegerType()),
        T.StructField("track_id", T.StringType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("reason", T.StringType()),
        T.StructField("model_version", T.StringType()),
        T.StructField("filter", T.StringType()),
        T.StructField("generated_at_ms", T.LongType()),
        T.StructField("dt", T.StringType()),
    ]
)
_MODELS: dict[str, Any] = {}  # per Python worker: the artifact's inference module and model, loaded once


def io_prefixes(lake: LakePrefixes) -> tuple[list[str], list[str]]:
    """What the job reads and (over)writes, for mirroring a local run (the artifact it reads through S3)."""
    return [lake.curated_events], [lake.batch]


def _model(name: str) -> tuple[Any, Any]:
    if name not in _MODELS:
        root = Path(SparkFiles.get(name))
        sys.path.insert(0, str(root / "code"))
        inference = importlib.import_module("inference")  # the artifact's own serving code, shipped in it
        _MODELS[name] = (inference, inference.model_fn(str(root)))
    return _MODELS[name]  # type: ignore[no-any-return]


def score(rows: Iterator[Row], name: str, job: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """Each listener's list, ranked by the artifact's ``predict_fn`` as the endpoint would."""
    inference, model = _model(name)
    for row in rows:
        history, played = list(row.history or []), list(row.played or [])
        request = {"surface": "home", "user_vector": np.frombuffer(bytes(row.vector), "<f4").astype(float).tolist(),
                   "vectors_of": job["version"], "history": history[:1000], "recent": played[:RECENT],
                   "exclude": list(dict.fromkeys(played + history))[:5000], "k": min(job["size"] * 3, 500),
                   "filter": job["filter"], "fresh_share": job["fresh_share"], "weights": job["weights"]}  # fmt: skip
        items = inference.predict_fn(inference.input_fn(json.dumps(request)), model)["items"]
        kept = cap_per_artist([i["track_id"] for i in items], {i["track_id"]: i["artist_id"] for i in items},
                              job["max_per_artist"], job["size"])  # fmt: skip
        by_id = {i["track_id"]: i for i in items}
        for rank, track in enumerate(kept, start=1):
            item = by_id[track]
            yield (row.user_id, rank, track, float(item["score"]), item.get("reason"), job["version"],
                   job["filter_name"], job["at_ms"], job["dt"])  # fmt: skip


def main(argv: Sequence[str]) -> dict[str, int]:
    args = parse_args(argv)
    config = args.config
    serving = ModelRegistry(config).serving()
    if serving is None:
        print("batch_recommend: no model serves yet; nothing to do")
        return {"listeners": 0, "rows": 0}
    spark = spark_session("encore-batch-recommend")
    events = read_curated(spark, args, days=config.batch.active_days)
    if events is None:
        print("batch_recommend: no curated events yet; nothing to do")
        return {"listeners": 0, "rows": 0}
    run = datetime.fromtimestamp(args.run_ms / 1000, UTC)
    since = int((run - timedelta(days=config.batch.active_days)).timestamp() * 1000)
    newest = Window.partitionBy("user_id").orderBy(F.col("timestamp").desc())
    played = (  # every track each listener played in the window, newest first (at most MAX_PLAYED)
        events.where(F.col("timestamp") >= since)
        .groupBy("user_id", "track_id")
        .agg(F.max("timestamp").alias("timestamp"))
        .withColumn("n", F.row_number().over(newest))
        .where(F.col("n") <= MAX_PLAYED)
        .groupBy("user_id")
        .agg(F.sort_array(F.collect_list(F.struct(-F.col("timestamp"), F.col("track_id")))).alias("plays"))
        .select("user_id", F.col("plays.track_id").alias("played"))
    )
    with tempfile.TemporaryDirectory() as tmp:
        # The model, shipped to the executors, apart from the listeners' vectors the driver reads; under a name of
        # its own per run (Spark refuses a second file of one name in a session, and each Python worker keeps the
        # model it loaded under its name).
        root = extract_artifact(serving["model_data"], config.region,
                                Path(tmp) / f"artifact-{args.run_ms}-{time.time_ns()}", lambda name: True)  # fmt: skip
        vectors = shutil.move(root / "vectors", Path(tmp) / "vectors")
        users = spark.read.parquet(str(Path(vectors) / "users.parquet"))
        listeners = users.join(played, "user_id").cache()  # active, and known to the champion
        n = listeners.count()
        spark.sparkContext.addFile(str(root), recursive=True)
        named = config.batch.filter
        job = {"version": serving["version"], "size": config.batch.size,
               "max_per_artist": config.serving.max_per_artist, "fresh_share": config.serving.fresh_share,
               "filter_name": named, "weights": config.weights.model_dump(),
               "filter": config.serving.filters[named].spec() if named else None, "at_ms": args.run_ms,
               "dt": run.date().isoformat()}  # fmt: skip
        parts = max(1, min(n // 2000 + 1, 64))
        out = spark.createDataFrame(
            listeners.repartition(parts).rdd.mapPartitions(lambda rows: score(rows, root.name, job)), OUTPUT
        ).cache()
        rows = out.count()
        prefix = config.lake.batch
        out.write.mode("overwrite").partitionBy("dt").parquet(args.path(prefix))
        listeners.unpersist()
    days = sorted(r.dt for r in spark.read.parquet(args.path(prefix)).select("dt").distinct().collect())
    register_table(args, "batch_recommendations", prefix, out.schema, ["dt"], [[d] for d in days],
                   "each active listener's home page computed ahead by the champion, for e-mail and push")  # fmt: skip
    counts = {"listeners": n, "rows": rows}
    print(f"batch_recommend: lists of {serving['version']} in {prefix}dt={job['dt']}/")
    print(f"batch_recommend: {counts}")
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
