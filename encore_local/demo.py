"""``encore demo``: what Encore can do so far, end to end on one machine, with a report at the end.

Today that is: start the twin's services, generate a simulated music service, and import its catalog and
listening history into the twin's data lake in the layout Firehose writes. The pipeline, model and API steps
join this run as they are built.
"""

from __future__ import annotations

import time
from pathlib import Path

from encore.config import EncoreConfig
from encore_local.lake import import_simulation
from encore_local.report import render_summary
from encore_local.simulator import SimulationParams, simulate
from encore_local.twin import TwinServices


def run_demo(params: SimulationParams, out_dir: Path, *, progress: bool = True) -> None:
    config = EncoreConfig.for_stage("local")
    timings: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    with TwinServices(config) as endpoints:
        timings.append(("start the twin (moto, redis, resources)", time.perf_counter() - t0))
        print(f"twin: AWS APIs at {endpoints.aws_endpoint}, cache ({endpoints.cache_kind}) at {endpoints.cache_url}")

        t = time.perf_counter()
        summary = simulate(params, out_dir / "sim", progress=progress)
        timings.append(("simulate the music service", time.perf_counter() - t))

        t = time.perf_counter()
        imported = import_simulation(config, out_dir / "sim", progress=progress)
        timings.append(("import catalog and history into the lake", time.perf_counter() - t))

    print()
    print(render_summary(summary))
    print()
    print(
        f"Lake s3://{config.resources.lake_bucket}/: {imported.catalog_objects} catalog objects, "
        f"{imported.event_objects} raw event objects ({imported.events:,} events, {imported.bytes / 1e6:.1f} MB gzip)"
    )
    print("Steps:")
    for name, seconds in timings:
        print(f"  {seconds:7.1f} s  {name}")
    print(f"  {time.perf_counter() - t0:7.1f} s  total")
