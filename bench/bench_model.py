"""The hybrid model: quality on the default simulated service, training speed, and serving latency.

Quality (one split, side by side): home NDCG@10 of popularity, CF-only, content-only and the hybrid, and of
LightFM (WARP with item features, the ``lightfm-next`` fork) as an outside peer on the same split; next-track
hit rate@10 of item-CF, content and the hybrid; cold-start recall@50 against warm; the oracle fraction.
Features come from the real Glue jobs run on the twin.

Speed: training + evaluation on ~1,000,000 interactions beside a bare ``implicit`` ALS fit on the same matrix;
``predict_fn`` p50/p99 at 10k, 100k and 1M tracks beside a bare NumPy top-K on the same vectors (the floor).

    python bench/bench_model.py [--quality-only | --speed-only]

Targets: hybrid home NDCG@10 >= 1.05 x CF-only and >= 2 x popularity; next-song hybrid above both parts; cold
recall@50 >= 30 % of warm; training + evaluation on 1M interactions <= 90 s; predict p99 < 5 ms at 100k tracks.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from _common import save

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sagemaker"))

import inference  # noqa: E402
import train  # noqa: E402
from evaluation import ranking_metrics  # noqa: E402
from hybrid import HybridModel, top_k  # noqa: E402

from encore.clients import get_client  # noqa: E402
from encore.config import EncoreConfig  # noqa: E402
from encore_local.jobs import run_job  # noqa: E402
from encore_local.lake import import_simulation  # noqa: E402
from encore_local.simulator import SimulationParams, simulate  # noqa: E402
from encore_local.twin.services import TwinServices  # noqa: E402


def features_for(params: SimulationParams, root: Path) -> Path:
    """Simulate, then run load_catalog, curate_events and build_features on the twin; download the features."""
    simulate(params, root / "sim", progress=False)
    run_time = (params.start + timedelta(days=params.days)).isoformat()
    twin = TwinServices(EncoreConfig.for_stage("local"))
    with twin:
        config = twin.config
        import_simulation(config, root / "sim", progress=False)
        run_job("load_catalog", config)
        run_job("curate_events", config, run_time=f"{run_time}T00:00:00Z", lookback_days=0)
        run_job("build_features", config, run_time=f"{run_time}T00:00:00Z")
        s3 = get_client("s3")
        for table in ("interactions", "tracks", "transitions"):
            prefix = f"{config.lake.features}{table}/"
            for obj in s3.list_objects_v2(Bucket=config.resources.lake_bucket, Prefix=prefix).get("Contents", []):
                target = root / "features" / obj["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(config.resources.lake_bucket, obj["Key"], str(target))
    return root / "features" / config.lake.features


def lightfm_peer(features: Path, report: dict[str, Any]) -> dict[str, float]:
    """LightFM WARP with item features (genre tags and artist) on the same split as the hybrid's report."""
    try:
        from lightfm import LightFM  # noqa: PLC0415 - a benchmark peer, installed by requirements-bench.txt
    except ImportError:
        return {"skipped": 1.0}
    tracks = train.read_table(features / "tracks").drop_duplicates("track_id").reset_index(drop=True)
    inter = train.read_table(features / "interactions")
    cutoff = report["cutoff_ms"]
    train_df = inter[(inter["first_ts"] < cutoff) & (inter["rating"] > 0)]
    test_df = inter[(inter["first_ts"] >= cutoff) & (inter["rating"] > 0)]
    items = {t: i for i, t in enumerate(tracks["track_id"])}
    users = {u: i for i, u in enumerate(sorted(train_df["user_id"].unique()))}
    tr = train_df[train_df["track_id"].isin(items)]
    matrix = sp.coo_matrix(
        (np.ones(len(tr)), (tr["user_id"].map(users), tr["track_id"].map(items))), shape=(len(users), len(items))
    )
    tags = sorted({g for gs in tracks["genres"] for g in gs} | set(tracks["artist_id"]))
    tag_index = {t: len(items) + i for i, t in enumerate(tags)}
    rows, cols = list(range(len(items))), list(range(len(items)))
    for i, (gs, artist) in enumerate(zip(tracks["genres"], tracks["artist_id"], strict=True)):
        for t in [*gs, artist]:
            rows.append(i)
            cols.append(tag_index[t])
    item_features = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(items), len(items) + len(tags)))
    started = time.perf_counter()
    model = LightFM(loss="warp", no_components=64, random_state=7)
    model.fit(matrix, item_features=item_features, epochs=20, num_threads=2)
    fit_s = time.perf_counter() - started
    seen = {u: np.array([items[t] for t in g if t in items]) for u, g in tr.groupby("user_id")["track_id"]}
    truth = {}
    for u, g in test_df.groupby("user_id")["track_id"]:
        if u in users:
            truth[u] = {items[t] for t in g if t in items} - set(seen.get(u, np.empty(0)).tolist())
    truth = {u: s for u, s in truth.items() if s}
    all_items = np.arange(len(items))
    recs = {}
    for u in truth:
        scores = model.predict(users[u], all_items, item_features=item_features, num_threads=2)
        recs[u] = top_k(scores, 50, seen.get(u)).tolist()
    popularity = np.asarray(matrix.tocsr().getnnz(axis=0), dtype=float)
    metrics = ranking_metrics(recs, truth, len(items), popularity)
    return {"ndcg@10": metrics["ndcg@10"], "recall@10": metrics["recall@10"], "fit_seconds": fit_s}


def quality(root: Path) -> dict[str, Any]:
    params = SimulationParams()  # the default simulated service
    features = features_for(params, root)
    args = train.parse_args(["--interactions", str(features / "interactions"), "--tracks", str(features / "tracks"),
                             "--transitions", str(features / "transitions"), "--truth", str(root / "sim"),
                             "--model-dir", str(root / "model"), "--version", "bench"])  # fmt: skip
    report = train.train(args)
    home, nxt, cold = report["home"], report["next"], report["cold_start"]
    peer = lightfm_peer(features, report)
    checks = {
        "hybrid >= 1.05 x cf_only": home["hybrid"]["ndcg@10"] >= 1.05 * home["cf_only"]["ndcg@10"],
        "hybrid >= 2 x popularity": home["hybrid"]["ndcg@10"] >= 2 * home["popularity"]["ndcg@10"],
        "next hybrid above item_cf and content": nxt["hybrid"]["hit_rate@10"]
        > max(nxt["item_cf"]["hit_rate@10"], nxt["content_only"]["hit_rate@10"]),
        "cold recall@50 >= 30% of warm": cold["hybrid_recall@50_cold"] >= 0.3 * cold["hybrid_recall@50_warm"],
    }
    print(f"\nquality on the default simulated service ({report['train_pairs']:,} train pairs, "
          f"{report['test_pairs']:,} held-out pairs)")  # fmt: skip
    print(f"  {'home':22} {'NDCG@10':>8} {'recall@10':>10} {'coverage':>9} {'novelty':>8}")
    for name, m in home.items():
        print(f"  {name:22} {m['ndcg@10']:8.4f} {m['recall@10']:10.4f} {m['coverage@10']:9.3f} {m['novelty@10']:8.2f}")
    if "ndcg@10" in peer:
        print(f"  {'lightfm-next (WARP)':22} {peer['ndcg@10']:8.4f} {peer['recall@10']:10.4f}")
    print(f"  oracle NDCG@10 {report['oracle']['oracle_ndcg@10']:.4f}; hybrid at "
          f"{report['oracle']['hybrid_fraction_of_oracle']:.1%} of it")  # fmt: skip
    print(f"  {'next track':22} {'hit@10':>8} {'MRR@10':>10}")
    for name, m in nxt.items():
        print(f"  {name:22} {m['hit_rate@10']:8.4f} {m['mrr@10']:10.4f}")
    print(f"  cold-start recall@50 {cold['hybrid_recall@50_cold']:.3f} vs warm {cold['hybrid_recall@50_warm']:.3f}")
    for name, ok in checks.items():
        print(f"  [{'met' if ok else 'NOT met'}] {name}")
    return {"report": report, "lightfm_next": peer, "checks": checks}


def serving_latency() -> dict[int, dict[str, float]]:
    """predict_fn at 10k, 100k and 1M tracks beside a bare NumPy top-K on the same vectors (the floor)."""
    latency = {}
    rng = np.random.default_rng(0)
    for size in (10_000, 100_000, 1_000_000):
        # float32, as artifacts store and serving keeps them
        model = HybridModel("lat", np.array([f"t{i}" for i in range(size)]), np.array(["a"] * size),
                            rng.normal(size=(size, 64)).astype(np.float32), np.eye(size, 64, dtype=np.float32),
                            rng.random(size), np.ones(size, dtype=bool))  # fmt: skip
        body = json.dumps({"surface": "home", "user_vector": rng.normal(size=64).tolist(), "k": 20})
        v = np.asarray(json.loads(body)["user_vector"], dtype=np.float32)
        ours, floor = [], []
        for _ in range(200):
            t = time.perf_counter()
            inference.output_fn(inference.predict_fn(inference.input_fn(body), model))
            ours.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            s = model.item_cf @ v
            idx = np.argpartition(-s, 20)[:20]
            idx[np.argsort(-s[idx])]
            floor.append((time.perf_counter() - t) * 1000)
        latency[size] = {
            "p50_ms": float(np.percentile(ours, 50)),
            "p99_ms": float(np.percentile(ours, 99)),
            "floor_p50_ms": float(np.percentile(floor, 50)),
            "floor_p99_ms": float(np.percentile(floor, 99)),
        }
    return latency


def speed(root: Path) -> dict[str, Any]:
    """1M interactions: the full training + evaluation beside a bare implicit fit; then serving latency."""
    params = SimulationParams(users=12_000, tracks=30_000, days=30, seed=5)
    features = features_for(params, root / "speed")
    inter = train.read_table(features / "interactions")
    n = len(inter)
    args = train.parse_args(["--interactions", str(features / "interactions"), "--tracks", str(features / "tracks"),
                             "--transitions", str(features / "transitions"), "--model-dir", str(root / "m2"),
                             "--version", "speed"])  # fmt: skip
    started = time.perf_counter()
    train.train(args)
    full_s = time.perf_counter() - started
    users = {u: i for i, u in enumerate(inter["user_id"].unique())}
    items = {t: i for i, t in enumerate(inter["track_id"].unique())}
    matrix = train.interaction_matrix(inter, users, items, args.alpha)
    started = time.perf_counter()
    train.fit_als(matrix, args)
    bare_s = time.perf_counter() - started
    print(f"\ntraining on {n:,} interactions: full training + evaluation {full_s:.1f} s; "
          f"bare implicit ALS fit {bare_s:.1f} s (ratio {full_s / bare_s:.1f}x); target <= 90 s")  # fmt: skip
    latency = serving_latency()
    print(f"  {'tracks':>9} {'predict p50':>12} {'p99':>8} {'numpy top-K p50':>16} {'p99':>8}")
    for size, m in latency.items():
        ours_text = f"{m['p50_ms']:10.2f}ms {m['p99_ms']:6.2f}ms"
        print(f"  {size:9,} {ours_text} {m['floor_p50_ms']:14.2f}ms {m['floor_p99_ms']:6.2f}ms")
    return {
        "interactions": n,
        "train_eval_seconds": full_s,
        "bare_implicit_seconds": bare_s,
        "train_within_90s": full_s <= 90,
        "latency": latency,
        "p99_under_5ms_at_100k": latency[100_000]["p99_ms"] < 5,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality-only", action="store_true")
    ap.add_argument("--speed-only", action="store_true")
    ap.add_argument("--latency-only", action="store_true", help="only predict_fn against the NumPy floor")
    a = ap.parse_args()
    figures: dict[str, Any] = {}
    if a.latency_only:
        figures["latency"] = serving_latency()
        for size, m in figures["latency"].items():
            print(f"  {size:9,} tracks: predict p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms; "
                  f"NumPy top-K p50 {m['floor_p50_ms']:.2f} ms, p99 {m['floor_p99_ms']:.2f} ms")  # fmt: skip
        print(f"  figures written to {save('model_latency', figures)}")
        return
    with tempfile.TemporaryDirectory(prefix="encore-bench-model-") as tmp:
        if not a.speed_only:
            figures["quality"] = quality(Path(tmp))
        if not a.quality_only:
            figures["speed"] = speed(Path(tmp))
    print(f"  figures written to {save('model', figures)}")


if __name__ == "__main__":
    main()
