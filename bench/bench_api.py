"""The serving path through the twin's HTTP API: home (uncached and cached) and next song, 8 and 32 clients.

Beside each client-side latency, in the same run: the handler's own time (inside the Lambda handler) and the
model's predict time (inside the endpoint's handlers), so it shows where the time goes. The twin's services
run in their own processes (moto and redis as ``encore twin up`` runs them, the model endpoint in another), the
clients in another, and the API in ``API_INSTANCES`` Lambda instances (a process each, one invocation at a time;
a request waits for a free one): one per client at 8 clients, as Lambda scales. The baseline beside it runs as
many instances as the machine has cores, plus one, so requests queue for an instance instead of the CPU.
"Uncached" means the answer is not in the result cache: the instances are warm and the catalog's metadata
cached, as in steady state. The 8-client cases run ``--rounds`` times on fresh listeners each time, so the
targets are judged on every round, not on a lucky one. Loopback only; every run is a bounded number of
requests. Errors are non-200 answers; fallbacks (trending instead of the model) are counted beside them.
Targets on this machine: uncached p99 < 100 ms and cached p99 < 15 ms at 8 clients, zero errors.

    python bench/bench_api.py [--scale small|default] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests
from _common import save

from encore.clients import reset_clients
from encore_local.jobs import run_job
from encore_local.lake import import_simulation
from encore_local.pipeline import run_state_machine
from encore_local.simulator import SCALES, SimulationParams, simulate
from encore_local.twin import daemon
from encore_local.twin.apigateway import DEFAULT_API_KEY

HERE = Path(__file__).parent
API_INSTANCES = 8
FEWER_INSTANCES = (os.cpu_count() or 1) + 1  # the baseline
WARM_UP_LISTENERS = 200
PER_ROUND = {8: 400, 32: 640}  # listeners per case
# Cached answers need no fresh listeners, so the cached case asks each listener's home this many times: a p99 of
# 2,000 answers rests on 20 of them rather than 4.
CACHED_REPEATS = 5


def load(url: str, paths: list[str], clients: int) -> dict[str, Any]:
    spec = json.dumps({"url": url, "key": DEFAULT_API_KEY, "paths": paths, "clients": clients})
    out = subprocess.run([sys.executable, str(HERE / "_loadgen.py")], input=spec, capture_output=True, text=True,
                         check=True)  # fmt: skip
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def pct(values: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))} if values else {}


def predict_ms(model_url: str) -> list[float]:
    return requests.get(f"{model_url}/timings", timeout=30).json()  # type: ignore[no-any-return]


class Listeners:
    """Listeners the model knows, each measured uncached once: every case takes listeners no case used before."""

    def __init__(self, users: list[str], tracks: list[str]) -> None:
        self.rng = np.random.default_rng(1)
        self.users = [users[i] for i in self.rng.permutation(len(users))]
        self.tracks = tracks

    def take(self, n: int) -> list[str]:
        if n > len(self.users):
            raise SystemExit(f"not enough listeners for another case ({len(self.users)} left, {n} needed)")
        taken, self.users = self.users[:n], self.users[n:]
        return taken

    def home(self, users: list[str]) -> list[str]:
        return [f"/v1/users/{u}/recommendations" for u in users]

    def next(self, users: list[str]) -> list[str]:
        return [f"/v1/users/{u}/next?track_id={self.tracks[int(self.rng.integers(len(self.tracks)))]}" for u in users]


def run_cases(
    url: str, model_url: str, listeners: Listeners, clients: int, label: dict[str, Any]
) -> list[dict[str, Any]]:
    """Home for listeners no case asked before (uncached), the same again (cached), then next song for them (another
    result key, so uncached too)."""
    batch = listeners.take(PER_ROUND[clients])
    rows = []
    cases = [("home uncached", listeners.home(batch)), ("home cached", listeners.home(batch) * CACHED_REPEATS),
             ("next uncached", listeners.next(batch))]  # fmt: skip
    for case, paths in cases:
        predict_mark = len(predict_ms(model_url))
        got = load(url, paths, clients)
        rows.append({
            **label, "case": case, "clients": clients, "requests": len(paths),
            "errors": len(got["errors"]), "fallbacks": len(got["fallbacks"]),
            "client": pct(got["latencies_ms"]), "handler": pct(got["handler_ms"]),
            "model_predict": pct(predict_ms(model_url)[predict_mark:]),
            "requests_per_second": len(paths) / got["seconds"],
        })  # fmt: skip
    return rows


def warm(url: str, listeners: Listeners) -> None:
    """Steady state: every track's metadata in the shared cache, and each instance warm on listeners left out."""
    load(url, [f"/v1/tracks/{t}" for t in listeners.tracks], 8)
    others = listeners.take(WARM_UP_LISTENERS)
    load(url, (listeners.home(others) + listeners.next(others)) * 2, 8)


def measure(
    state: dict[str, Any], params: SimulationParams, tmp: Path, model_url: str, rounds: int
) -> list[dict[str, Any]]:
    config = daemon.deployed_config(state, "local")
    simulate(params, tmp / "sim", progress=False)
    import_simulation(config, tmp / "sim", progress=False)
    run_day = params.start + timedelta(days=params.days + 1)
    print("running the nightly state machine on the twin ...", flush=True)
    run_job("curate_events", config, run_time=f"{run_day}T00:00:00Z", lookback_days=0)
    at = datetime(run_day.year, run_day.month, run_day.day, tzinfo=UTC)
    nightly = run_state_machine(config, config.resources.state_machine, name="bench-api", at=at)
    assert nightly.status == "SUCCEEDED" and nightly.promoted, nightly.states
    # Listeners the model knows (they listened before the run); the others are answered from trending by design.
    events = pd.concat(pd.read_json(p, lines=True, convert_dates=False) for p in sorted((tmp / "sim/events").glob("*")))
    tracks = pd.read_csv(tmp / "sim/catalog/tracks.csv", usecols=["track_id"])["track_id"].tolist()
    listeners = Listeners(sorted(events["user_id"].unique().tolist()), tracks)
    rows: list[dict[str, Any]] = []
    for instances in dict.fromkeys((API_INSTANCES, FEWER_INSTANCES)):
        # Measure the path, not the usage plan: its throttle is set out of reach.
        server = daemon.api(state, tmp / "state", rate=100_000, burst=100_000, workers=instances)
        url = server.start()
        try:
            # SageMaker reports an endpoint InService once its container has loaded the model; the twin loads it
            # on first use, so one request (with a listener left out of the measured ones) loads it first.
            first = listeners.take(1)[0]
            requests.get(f"{url}/v1/users/{first}/recommendations", headers={"x-api-key": DEFAULT_API_KEY}, timeout=60)
            warm(url, listeners)
            if instances == API_INSTANCES:
                for r in range(rounds):
                    print(f"{instances} instances, 8 clients, round {r + 1} of {rounds} ...", flush=True)
                    rows += run_cases(url, model_url, listeners, 8, {"instances": instances, "round": r + 1})
                print(f"{instances} instances, 32 clients ...", flush=True)
                rows += run_cases(url, model_url, listeners, 32, {"instances": instances, "round": 1})
            else:
                print(f"baseline: {instances} instances, 8 clients ...", flush=True)
                rows += run_cases(url, model_url, listeners, 8, {"instances": instances, "round": 1})
        finally:
            server.stop()
    return rows


def report(scale: str, params: SimulationParams, rows: list[dict[str, Any]]) -> None:
    print(f"\nserving through the twin's HTTP API ({scale} scale, {params.tracks:,} tracks), loopback")
    head = f"{'client p50':>10} {'p99':>8} {'handler p50':>11} {'p99':>8} {'model p50':>9} {'p99':>7} {'req/s':>7}"
    print(f"  {'instances':>9} {'clients':>7} {'round':>5}  {'case':14} {head} {'errors':>6} {'fallbacks':>9}")
    for r in rows:
        c, h, m = r["client"], r["handler"], r["model_predict"]
        cols = f"{c['p50_ms']:10.1f} {c['p99_ms']:8.1f} {h.get('p50_ms', 0):11.1f} {h.get('p99_ms', 0):8.1f}"
        cols += f" {m.get('p50_ms', 0):9.2f} {m.get('p99_ms', 0):7.2f}"
        print(f"  {r['instances']:9d} {r['clients']:7d} {r['round']:5d}  {r['case']:14} {cols} "
              f"{r['requests_per_second']:7.0f} {r['errors']:6d} {r['fallbacks']:9d}")  # fmt: skip
    judged = [r for r in rows if r["instances"] == API_INSTANCES and r["clients"] == 8]

    def worst(case: str) -> float:
        return float(max(r["client"]["p99_ms"] for r in judged if r["case"] == case))

    checks = {
        f"uncached p99 < 100 ms at 8 clients, every round (worst {worst('home uncached'):.1f} ms)":
            worst("home uncached") < 100,
        f"cached p99 < 15 ms at 8 clients, every round (worst {worst('home cached'):.1f} ms)":
            worst("home cached") < 15,
        "zero errors": all(r["errors"] == 0 for r in rows),
        "no fallbacks for known listeners": all(r["fallbacks"] == 0 for r in rows),
    }  # fmt: skip
    for name, ok in checks.items():
        print(f"  [{'met' if ok else 'NOT met'}] {name}")
    figures = {"scale": scale, "api_instances": API_INSTANCES, "rows": rows, "checks": checks}
    print(f"  figures written to {save('api', figures)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["small", "default"], default="default")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the 8-client cases (default: %(default)s)")
    args = ap.parse_args()
    params = SimulationParams(**SCALES[args.scale])
    with tempfile.TemporaryDirectory(prefix="encore-bench-api-") as tmp:
        state = daemon.up(Path(tmp) / "state", "local", None)
        os.environ.update(state["env"])
        reset_clients()
        try:
            rows = measure(state, params, Path(tmp), state["model_endpoint"], args.rounds)
        finally:
            daemon.down(Path(tmp) / "state")
    report(args.scale, params, rows)


if __name__ == "__main__":
    main()
