"""Glue jobs on a local SparkSession: curate + features + charts over ~5,000,000 simulated events.

Baseline in the same run, on the same raw files and session: a bare Spark read of the JSON with the same
schema, one aggregation (plays per track) and a Parquet write. The ratio says what the jobs' validation,
de-duplication, features and charts cost beyond just reading and aggregating the data once.
Target: the three jobs together within 3 minutes on this machine.

    python bench/bench_jobs.py [--users 36500 --tracks 60000 --days 30]

The lake is a local folder (``--lake_root file://...``) and the scripts run in this process (the twin's Glue
would add mirroring the lake to and from S3); the Glue Data Catalog and the charts table are the twin's (moto).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from _common import save

from encore.config import EncoreConfig, runtime_values
from encore_local.simulator import SimulationParams, simulate
from encore_local.twin.glue_worker import load_script, session
from encore_local.twin.services import TwinServices
from encore_spark.transforms import RAW_EVENT_SCHEMA

TARGET_SECONDS = 180.0
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=36_500)
    ap.add_argument("--tracks", type=int, default=60_000)
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()
    twin = TwinServices(EncoreConfig.for_stage("local"))
    with tempfile.TemporaryDirectory(prefix="encore-bench-jobs-") as tmp, twin:
        config = twin.config
        root = Path(tmp)
        print(f"simulating {args.users:,} listeners x {args.days} days ...", flush=True)
        summary = simulate(SimulationParams(users=args.users, tracks=args.tracks, days=args.days, seed=3), root / "sim",
                           progress=False)  # fmt: skip
        raw = root / "lake" / config.lake.raw_events
        for name in summary.events_files:
            day = Path(name).name.split(".")[0]
            target = raw / day.replace("-", "/") / "00"
            target.mkdir(parents=True, exist_ok=True)
            shutil.move(str(root / "sim" / name), target / Path(name).name)
        events = summary.events
        spark = session([])

        started = time.perf_counter()
        baseline = spark.read.schema(RAW_EVENT_SCHEMA).option("recursiveFileLookup", "true").json(str(raw))
        baseline.groupBy("track_id").count().write.mode("overwrite").parquet(str(root / "baseline"))
        baseline_s = time.perf_counter() - started

        last_day = SimulationParams().start + timedelta(days=args.days + 1)  # after the last session ends
        argv = ["--encore_config", json.dumps(runtime_values(config)), "--lake_root", f"file://{root / 'lake'}/",
                "--run_time", f"{last_day}T00:00:00Z", "--lookback_days", "0"]  # fmt: skip
        timings: dict[str, float] = {}
        results: dict[str, dict[str, int]] = {}
        for job in ("curate_events", "build_features", "build_charts"):
            module = load_script(str(ROOT / "glue_jobs" / f"{job}.py"), job)
            t = time.perf_counter()
            results[job] = module.main(argv)
            timings[job] = time.perf_counter() - t
            print(f"  {job:15} {timings[job]:7.1f} s  {results[job]}", flush=True)
    total = sum(timings.values())
    figures = {
        "params": vars(args),
        "events": events,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "events_per_second": {k: round(events / v) for k, v in timings.items()},
        "jobs_total_seconds": round(total, 1),
        "baseline_read_aggregate_seconds": round(baseline_s, 1),
        "ratio_to_baseline": round(total / baseline_s, 2),
        "target_seconds": TARGET_SECONDS,
        "meets_target": total <= TARGET_SECONDS,
        "results": results,
    }
    path = save("jobs", figures)
    print(f"jobs over {events:,} events on a local SparkSession (2 cores)")
    print(f"  {'step':34} {'seconds':>8} {'events/s':>10}")
    for job, seconds in timings.items():
        print(f"  {job:34} {seconds:8.1f} {events / seconds:10,.0f}")
    print(f"  {'the three jobs':34} {total:8.1f} {events / total:10,.0f}")
    print(f"  {'baseline: bare read + aggregate':34} {baseline_s:8.1f} {events / baseline_s:10,.0f}")
    verdict = "met" if total <= TARGET_SECONDS else "NOT met"
    print(f"  ratio to baseline {total / baseline_s:.2f}x; target <= {TARGET_SECONDS:.0f} s: {verdict}")
    print(f"  figures written to {path}")


if __name__ == "__main__":
    main()
