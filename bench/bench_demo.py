"""The small demo end to end (`make demo` at small scale), this checkout against an earlier revision, in one run.

Runs alternate (baseline, this, baseline, this, ...) so the machine's drift falls on both alike; each is
`encore demo --scale small --exit --quiet` in a fresh interpreter, timed from outside. The baseline revision is
checked out in a scratch worktree and run with this checkout's virtualenv and node_modules.
Target: this checkout's mean within 20% of the baseline's.

    python bench/bench_demo.py [--baseline d85ce94] [--pairs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import save

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.20


def _worktree(revision: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(where), revision],
                   check=True, capture_output=True)  # fmt: skip
    for shared in ("node_modules", ".venv"):
        (where / shared).symlink_to(ROOT / shared)
    return where


def _demo(checkout: Path, out: Path) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(checkout / p) for p in ("", "layers/shared", "glue_jobs")))
    cmd = [sys.executable, "-m", "encore_local.cli", "demo", "--scale", "small", "--exit", "--quiet", "--port", "0",
           "--out", str(out)]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"the demo failed in {checkout}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="d85ce94", help="the revision to compare with (default: before the twin "
                    "ran the synthesized assembly)")  # fmt: skip
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--this", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="encore-bench-demo-") as tmp:
        base = _worktree(args.baseline, Path(tmp) / "baseline")
        try:
            times: dict[str, list[float]] = {"baseline": [], "this": []}
            for i in range(args.pairs):
                for name, checkout in (("baseline", base), ("this", args.this)):
                    seconds = _demo(checkout, Path(tmp) / f"{name}-{i}")
                    times[name].append(seconds)
                    print(f"  pair {i + 1}/{args.pairs}  {name:8s} {seconds:7.1f} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    mean = {k: statistics.mean(v) for k, v in times.items()}
    ratio = mean["this"] / mean["baseline"]
    worst = max(t / b for t, b in zip(times["this"], times["baseline"], strict=True))
    print(f"small demo: baseline ({args.baseline}) mean {mean['baseline']:.1f} s "
          f"[{min(times['baseline']):.1f}-{max(times['baseline']):.1f}], this checkout mean {mean['this']:.1f} s "
          f"[{min(times['this']):.1f}-{max(times['this']):.1f}]: {ratio:.3f}x (worst pair {worst:.3f}x; "
          f"target <= {TARGET_RATIO:.2f}x) {'ok' if ratio <= TARGET_RATIO else 'MISSED'}")  # fmt: skip
    save("demo", {"baseline": args.baseline, "seconds": times, "ratio": ratio, "worst_pair_ratio": worst,
                  "target_ratio": TARGET_RATIO})  # fmt: skip


if __name__ == "__main__":
    main()
