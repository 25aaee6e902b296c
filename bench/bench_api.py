"""The serving path through the twin's HTTP API: home (uncached and cached) and next song, 8 and 32 clients.

Beside each client-side latency, in the same run: the handler's own time (inside the Lambda handler) and the
model's predict time (inside the endpoint's handlers), so it shows where the time goes. The twin's services
run in their own process (as ``encore twin up`` runs them), the API in ``API_WORKERS`` processes (one Lambda
instance each), the clients in another. "Uncached" means the answer is not in the result cache: the instances
are warm and the catalog metadata cached, as in steady state (a warm-up round over other listeners sees to
that). Loopback only; every run is a bounded number of requests. Errors are non-200 answers; fallbacks
(trending instead of the model) are counted beside them.
Targets on this machine: uncached p99 < 100 ms and cached p99 < 15 ms at 8 clients, zero errors.

    python bench/bench_api.py [--scale small|default]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests
from _common import save

from encore.clients import reset_clients
from encore.config import EncoreConfig
from encore_local.http_api import DEFAULT_API_KEY, TwinApi
from encore_local.lake import import_simulation
from encore_local.pipeline import run_pipeline
from encore_local.simulator import SCALES, SimulationParams, simulate
from encore_local.twin import daemon

HERE = Path(__file__).parent
API_WORKERS = 8  # Lambda scales to one instance per concurrent request: 8 processes, one request at a time each
WARM_UP_LISTENERS = 400


def load(url: str, paths: list[str], clients: int) -> dict[str, Any]:
    spec = json.dumps({"url": url, "key": DEFAULT_API_KEY, "paths": paths, "clients": clients})
    out = subprocess.run([sys.executable, str(HERE / "_loadgen.py")], input=spec, capture_output=True, text=True,
                         check=True)  # fmt: skip
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def pct(values: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))} if values else {}


def predict_ms(model_url: str) -> list[float]:
    return requests.get(f"{model_url}/timings", timeout=30).json()  # type: ignore[no-any-return]


def measure(config: EncoreConfig, params: SimulationParams, tmp: Path, model_url: str) -> dict[str, Any]:
    simulate(params, tmp / "sim", progress=False)
    import_simulation(config, tmp / "sim", progress=False)
    run_time = f"{params.start + timedelta(days=params.days + 1)}T00:00:00Z"
    print("running the pipeline on the twin ...", flush=True)
    run_pipeline(config, run_time=run_time, lookback_days=0, job_name="bench-api")
    # Measure the path, not the usage plan; several processes, as API Gateway spreads load over Lambda instances.
    server = TwinApi(config, rate=100_000, burst=100_000, workers=API_WORKERS)
    url = server.start()
    # Listeners the model knows (they listened before the run); the others are answered from trending by design.
    events = pd.concat(pd.read_json(p, lines=True, convert_dates=False) for p in sorted((tmp / "sim/events").glob("*")))
    users = sorted(events["user_id"].unique().tolist())
    tracks = pd.read_csv(tmp / "sim/catalog/tracks.csv", usecols=["track_id"])["track_id"].tolist()
    rng = np.random.default_rng(1)
    order = rng.permutation(len(users)).tolist()
    # SageMaker reports an endpoint InService once its container has loaded the model; the twin loads it on
    # first use, so one request (with a listener left out of the measured ones) loads it before timing starts.
    warm = users[order.pop()]
    requests.get(f"{url}/v1/users/{warm}/recommendations", headers={"x-api-key": DEFAULT_API_KEY}, timeout=60)
    # Then every API process, its clients and the metadata cache, on listeners left out of the measured ones.
    warm_up = [f"/v1/users/{users[i]}/recommendations" for i in order[-WARM_UP_LISTENERS:]]
    warm_up += [f"/v1/users/{users[i]}/next?track_id={tracks[int(rng.integers(len(tracks)))]}"
                for i in order[-WARM_UP_LISTENERS:]]  # fmt: skip
    load(url, warm_up * 2, 8)
    del order[-WARM_UP_LISTENERS:]
    results: dict[str, Any] = {}
    cursor = 0
    try:
        for clients in (8, 32):
            n = 400 if clients == 8 else 800
            batch = [users[i] for i in order[cursor : cursor + n]]
            cursor += n
            home = [f"/v1/users/{u}/recommendations" for u in batch]
            nxt = [f"/v1/users/{u}/next?track_id={tracks[int(rng.integers(len(tracks)))]}" for u in batch]
            for name, paths in (("home_uncached", home), ("home_cached", home), ("next_uncached", nxt)):
                predict_mark = len(predict_ms(model_url))
                got = load(url, paths, clients)
                results[f"{name}@{clients}"] = {
                    "requests": len(paths),
                    "errors": len(got["errors"]),
                    "fallbacks": len(got["fallbacks"]),
                    "client": pct(got["latencies_ms"]),
                    "handler": pct(got["handler_ms"]),
                    "model_predict": pct(predict_ms(model_url)[predict_mark:]),
                    "requests_per_second": len(paths) / got["seconds"],
                }
    finally:
        server.stop()
    return results


def report(scale: str, params: SimulationParams, results: dict[str, Any]) -> None:
    print(f"\nserving through the twin's HTTP API ({scale} scale, {params.tracks:,} tracks), loopback")
    head = f"{'client p50':>10} {'p99':>8} {'handler p50':>11} {'p99':>8} {'model p50':>9} {'p99':>7}"
    print(f"  {'case':22} {head} {'req/s':>7} {'errors':>6} {'fallbacks':>9}")
    for case, r in results.items():
        c, h, m = r["client"], r["handler"], r["model_predict"]
        cols = f"{c['p50_ms']:10.1f} {c['p99_ms']:8.1f} {h.get('p50_ms', 0):11.1f} {h.get('p99_ms', 0):8.1f}"
        cols += f" {m.get('p50_ms', 0):9.2f} {m.get('p99_ms', 0):7.2f}"
        print(f"  {case:22} {cols} {r['requests_per_second']:7.0f} {r['errors']:6d} {r['fallbacks']:9d}")
    checks = {
        "uncached p99 < 100 ms at 8 clients": results["home_uncached@8"]["client"]["p99_ms"] < 100,
        "cached p99 < 15 ms at 8 clients": results["home_cached@8"]["client"]["p99_ms"] < 15,
        "zero errors": all(r["errors"] == 0 for r in results.values()),
        "no fallbacks for known listeners": all(r["fallbacks"] == 0 for r in results.values()),
    }
    for name, ok in checks.items():
        print(f"  [{'met' if ok else 'NOT met'}] {name}")
    print(f"  figures written to {save('api', {'scale': scale, 'results': results, 'checks': checks})}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["small", "default"], default="default")
    args = ap.parse_args()
    config = EncoreConfig.for_stage("local")
    params = SimulationParams(**SCALES[args.scale])
    with tempfile.TemporaryDirectory(prefix="encore-bench-api-") as tmp:
        state = daemon.up(Path(tmp) / "state", "local", None)
        os.environ.update(state["env"])
        reset_clients()
        try:
            results = measure(config, params, Path(tmp), state["model_endpoint"])
        finally:
            daemon.down(Path(tmp) / "state")
    report(args.scale, params, results)


if __name__ == "__main__":
    main()
