"""``encore demo``: Encore end to end on one machine, with a report at the end.

Starts the twin's services, generates a simulated music service, imports its catalog and history into the
lake as Firehose would have delivered it, runs the nightly pipeline (the same ordered steps as the Step
Functions definition) and asks the API for sample recommendations through the very same Lambda handlers.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from encore.config import EncoreConfig
from encore.pipeline import PipelineStep
from encore_local.apigw import LambdaContext, load_handler, rest_event
from encore_local.lake import import_simulation
from encore_local.pipeline import run_pipeline
from encore_local.report import render_summary
from encore_local.simulator import SimulationParams, simulate
from encore_local.simulator.listeners import GroundTruth, load_ground_truth
from encore_local.simulator.world import GENRES
from encore_local.twin import TwinServices

SAMPLE_LISTENERS = 3


def _taste(truth: GroundTruth, user_id: str) -> str:
    row = truth.genre_norm[int(np.flatnonzero(truth.user_ids == user_id)[0])]
    top = np.argsort(-row)[:3]
    return ", ".join(f"{GENRES[g].name} {row[g]:.2f}" for g in top)


def _samples(config: EncoreConfig, sim_dir: Path) -> list[str]:
    api = load_handler("api", config, quiet=True)
    events = pd.concat(pd.read_json(p, lines=True, convert_dates=False) for p in sorted((sim_dir / "events").glob("*")))
    tracks = pd.read_csv(sim_dir / "catalog/tracks.csv", usecols=["track_id", "track_genre", "sub_genre"])
    genre = dict(zip(tracks["track_id"], tracks["track_genre"] + "/" + tracks["sub_genre"], strict=True))
    truth = load_ground_truth(sim_dir / "ground_truth.npz")
    lines = []
    for user in events["user_id"].value_counts().index[:SAMPLE_LISTENERS]:
        event = rest_event("GET", f"/v1/users/{user}/recommendations", resource="/v1/users/{user_id}/recommendations",
                           path_parameters={"user_id": user}, query=[("limit", "5")], api_key="demo")  # fmt: skip
        body: dict[str, Any] = json.loads(api.lambda_handler(event, LambdaContext("api"))["body"])
        lines.append(f"  {user} (true taste: {_taste(truth, user)}), model {body['model_version']}:")
        for item in body["items"]:
            lines.append(f"    {item['name']} - {item['artist_name']} [{genre.get(item['track_id'], '?')}]")
    return lines


def run_demo(params: SimulationParams, out_dir: Path, *, progress: bool = True) -> None:
    config = EncoreConfig.for_stage("local")
    timings: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    with TwinServices(config) as endpoints:
        timings.append(("start the twin (moto, redis, endpoint server, resources)", time.perf_counter() - t0))
        print(f"twin: AWS APIs at {endpoints.aws_endpoint}, cache ({endpoints.cache_kind}) at {endpoints.cache_url}")

        t = time.perf_counter()
        summary = simulate(params, out_dir / "sim", progress=progress)
        timings.append(("simulate the music service", time.perf_counter() - t))

        t = time.perf_counter()
        imported = import_simulation(config, out_dir / "sim", progress=progress)
        timings.append(("import catalog and history into the lake", time.perf_counter() - t))

        def announce(step: PipelineStep) -> None:
            if progress:
                print(f"  pipeline: {step.name} ({step.description}) ...", flush=True)

        run_time = f"{params.start + timedelta(days=params.days + 1)}T00:00:00Z"
        pipeline = run_pipeline(config, run_time=run_time, lookback_days=0, job_name="demo",
                                truth=out_dir / "sim" / "ground_truth.npz", on_step=announce)  # fmt: skip
        timings.extend((f"pipeline: {name}", seconds) for name, seconds, _ in pipeline.steps)
        samples = _samples(config, out_dir / "sim") if pipeline.promoted else []

    print()
    print(render_summary(summary))
    print()
    print(
        f"Lake s3://{config.resources.lake_bucket}/: {imported.catalog_objects} catalog objects, "
        f"{imported.event_objects} raw event objects ({imported.events:,} events, {imported.bytes / 1e6:.1f} MB gzip)"
    )
    gate = pipeline.state.get("gate", {})
    report = gate.get("metrics", {})
    print(f"Model {gate.get('version')}: {gate.get('reason')}")
    if report:
        figures = f"NDCG@10 {report.get('ndcg@10', 0):.4f}, recall@10 {report.get('recall@10', 0):.4f}"
        print(f"  hybrid {figures}, coverage@10 {report.get('coverage@10', 0):.3f} (report: docs/model.md)")
    if samples:
        print("Sample home recommendations:")
        print("\n".join(samples))
    print("Steps:")
    for name, seconds in timings:
        print(f"  {seconds:7.1f} s  {name}")
    print(f"  {time.perf_counter() - t0:7.1f} s  total")
