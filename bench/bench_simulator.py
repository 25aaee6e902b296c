"""Simulator throughput: events generated and written per second, and peak memory, at >= 1,000,000 events.

Baseline in the same run: the serialisation floor, i.e. stdlib ``json.dumps`` of the same number of event
dicts written to disk, with nothing simulated. The ratio says how much the simulation costs above just
writing its output. Target: 1,000,000 events in 20 s or less on this machine.

    python bench/bench_simulator.py [--users 10000 --tracks 30000 --days 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _common import run_child, save

TARGET_SECONDS_PER_MILLION = 20.0

SIMULATE = """
import json, time
from pathlib import Path
from encore_local.simulator import SimulationParams, simulate
s = simulate(SimulationParams(users={users}, tracks={tracks}, days={days}, seed=1), Path({out!r}), progress=False)
print(json.dumps({{"events": s.events}}))
"""

FLOOR = """
import json
n = {events}
with open({out!r}, "w") as fh:
    for i in range(n):
        fh.write(json.dumps({{"event_id": "0b9f6a0e-3c1d-4c7e-9a55-%012x" % i, "user_id": "u%06d" % (i % 10000),
            "track_id": "5SuOikwiRyPMVoIQDJUgSV", "action": "complete", "timestamp": 1788220970735 + i,
            "played_ms": 136762, "track_duration_ms": 136762, "session_id": "1714ae5728c8e21a", "region": "US",
            "source": "simulation", "context": "home"}}) + "\\n")
print(json.dumps({{"events": n}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--tracks", type=int, default=30_000)
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sim_s, sim_mib, out = run_child(SIMULATE.format(users=args.users, tracks=args.tracks, days=args.days, out=tmp))
        events = json.loads(out)["events"]
        floor_s, _, _ = run_child(FLOOR.format(events=events, out=str(Path(tmp) / "floor.jsonl")))
    per_million = sim_s * 1e6 / events
    figures = {
        "params": vars(args),
        "events": events,
        "simulate_seconds": round(sim_s, 2),
        "simulate_events_per_second": round(events / sim_s),
        "seconds_per_million_events": round(per_million, 2),
        "peak_rss_mib": round(sim_mib, 1),
        "baseline_json_dumps_seconds": round(floor_s, 2),
        "ratio_to_baseline": round(sim_s / floor_s, 2),
        "target_seconds_per_million": TARGET_SECONDS_PER_MILLION,
        "meets_target": events >= 1_000_000 and per_million <= TARGET_SECONDS_PER_MILLION,
    }
    path = save("simulator", figures)
    print(f"simulator: {events:,} events ({args.users:,} listeners, {args.tracks:,} tracks, {args.days} days)")
    print(f"  {'':28} {'seconds':>8} {'events/s':>11}")
    print(f"  {'encore simulate':28} {sim_s:8.2f} {events / sim_s:11,.0f}   peak RSS {sim_mib:,.0f} MiB")
    print(f"  {'baseline: json.dumps only':28} {floor_s:8.2f} {events / floor_s:11,.0f}")
    verdict = "met" if figures["meets_target"] else "NOT met"
    print(
        f"  ratio to baseline {sim_s / floor_s:.2f}x; {per_million:.1f} s per million events "
        f"(target <= {TARGET_SECONDS_PER_MILLION:.0f} s): {verdict}"
    )
    print(f"  figures written to {path}")


if __name__ == "__main__":
    main()
