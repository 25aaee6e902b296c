"""Encore's model beside the strongest simple peers, on one time-based split of the same features.

Home (NDCG@10 and recall@10 on each listener's held-out new tracks): popularity, ALS as Encore trains it, ALS
tuned on a validation week (never the test week), EASE, item-kNN, and Encore's served hybrid. Next song
(hit@10 on held-out transitions): Encore's hybrid and item-CF beside first-order transitions plus in-session
co-occurrence. Each peer's setting is chosen on the validation week (the last week of the training part).

    python bench/bench_peers.py [--users 3000 --tracks 6000 --days 30]

The features come from the real Glue jobs on the twin over a simulated service (``bench_model.features_for``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from _common import save
from bench_model import features_for

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sagemaker"))

import sources  # noqa: E402
import train  # noqa: E402
from evaluation import next_track_metrics, ranking_metrics  # noqa: E402
from hybrid import top_k  # noqa: E402

from encore_local.simulator import SimulationParams  # noqa: E402

DAY_MS = 86_400_000
K = 10


class Split:
    """Training interactions before ``cutoff``; the held-out new tracks of each listener after it."""

    def __init__(self, inter: pd.DataFrame, items: dict[str, int], cutoff: int) -> None:
        inter = inter[inter["track_id"].isin(items)]
        train_df = inter[inter["first_ts"] < cutoff]
        test_df = inter[(inter["first_ts"] >= cutoff) & (inter["rating"] > 0)]
        self.users = {u: i for i, u in enumerate(sorted(train_df["user_id"].unique()))}
        pos = train_df[train_df["rating"] > 0]
        self.ratings = sp.csr_matrix(
            (pos["rating"].to_numpy(), (pos["user_id"].map(self.users), pos["track_id"].map(items))),
            shape=(len(self.users), len(items)),
        )
        self.train_df = train_df
        self.seen = {
            u: np.array([items[t] for t in g], dtype=np.int64) for u, g in train_df.groupby("user_id")["track_id"]
        }
        truth = {}
        for u, g in test_df.groupby("user_id")["track_id"]:
            if u in self.users:
                truth[u] = {items[t] for t in g} - set(self.seen.get(u, np.empty(0)).tolist())
        self.truth = {u: s for u, s in truth.items() if s}
        self.popularity = np.asarray(self.ratings.getnnz(axis=0), dtype=np.float64)

    def score(self, scorer: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        """``scorer(user rows) -> scores (rows x items)``; the listener's own tracks are never recommended."""
        ordered = list(self.truth)
        recs: dict[str, list[int]] = {}
        for start in range(0, len(ordered), 512):
            batch = ordered[start : start + 512]
            scores = scorer(np.array([self.users[u] for u in batch]))
            for row, u in enumerate(batch):
                recs[u] = top_k(scores[row], 50, self.seen.get(u)).tolist()
        m = ranking_metrics(recs, self.truth, self.ratings.shape[1], self.popularity, ks=(10, 50))
        return {"ndcg@10": m["ndcg@10"], "recall@10": m["recall@10"]}


def als_scorer(split: Split, alpha: float, reg: float, factors: int = 64) -> Callable[[np.ndarray], np.ndarray]:
    args = argparse.Namespace(factors=factors, regularization=reg, iterations=15, seed=7)
    users_f, items_f = train.fit_als((split.ratings * alpha).tocsr(), args)
    return lambda rows: users_f[rows] @ items_f.T


def ease_scorer(split: Split, lam: float) -> Callable[[np.ndarray], np.ndarray]:
    b = sources.ease(split.ratings, lam)
    x = sources.binarize(split.ratings)
    return lambda rows: np.asarray(x[rows] @ b)


def knn_scorer(split: Split, neighbours: int) -> Callable[[np.ndarray], np.ndarray]:
    s = sources.item_knn(split.ratings, neighbours)
    x = sources.binarize(split.ratings)
    return lambda rows: (x[rows] @ s).toarray()


def tuned(name: str, val: Split, test: Split, grid: list[dict[str, Any]], make: Callable[..., Any],
          table: dict[str, Any]) -> None:  # fmt: skip
    """Pick the setting with the best validation NDCG@10, then score it on the test split."""
    started = time.perf_counter()
    on_val = [(make(val, **p), p) for p in grid]
    scored = [(val.score(scorer)["ndcg@10"], p) for scorer, p in on_val]
    best_val, best = max(scored, key=lambda x: x[0])
    table[name] = {**test.score(make(test, **best)), "chosen": best, "validation_ndcg@10": best_val,
                   "seconds": time.perf_counter() - started}  # fmt: skip


def hybrid_scores(split: Split, model: Any, user_f: np.ndarray, users: dict[str, int]) -> dict[str, float]:
    ids = np.array(list(split.users))
    return split.score(lambda rows: np.stack([model.home_scores(user_f[users[u]]) for u in ids[rows]]))


def sessions_of(transitions: pd.DataFrame, items: dict[str, int]) -> list[list[int]]:
    out = []
    for _, g in transitions.sort_values("timestamp").groupby("session_id"):
        seq = [g["prev_track_id"].iloc[0], *g["track_id"].tolist()]
        out.append([items[t] for t in seq if t in items])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=3000)
    ap.add_argument("--tracks", type=int, default=6000)
    ap.add_argument("--days", type=int, default=30)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="encore-bench-peers-") as tmp:
        features = features_for(SimulationParams(users=a.users, tracks=a.tracks, days=a.days), Path(tmp))
        tracks = train.read_table(features / "tracks").drop_duplicates("track_id").reset_index(drop=True)
        inter = train.read_table(features / "interactions")
        transitions = train.read_table(features / "transitions")
        items = {t: i for i, t in enumerate(tracks["track_id"])}
        cutoff = int(inter["last_ts"].max() - 7 * DAY_MS)
        test, val = Split(inter, items, cutoff), Split(inter[inter["first_ts"] < cutoff], items, cutoff - 7 * DAY_MS)

        home: dict[str, Any] = {"popularity": test.score(lambda rows: np.tile(test.popularity, (rows.size, 1)))}
        home["ALS as Encore trains it (alpha 20, reg 0.05)"] = test.score(als_scorer(test, 20.0, 0.05))
        tuned("ALS tuned", val, test, [{"alpha": al, "reg": r} for al in (1.0, 2.0, 5.0, 20.0) for r in (0.01, 0.1)],
              als_scorer, home)  # fmt: skip
        if len(items) <= sources.EASE_MAX_ITEMS:
            tuned("EASE", val, test, [{"lam": lam} for lam in (50.0, 200.0, 500.0, 1000.0)], ease_scorer, home)
        tuned("item-kNN", val, test, [{"neighbours": n} for n in (50, 200)], knn_scorer, home)
        args = train.parse_args(["--version", "peers"])
        content = train.content_vectors(tracks, args.content_dims, args.audio_weight, args.seed, args.encoder)
        model, user_f, users, _ = train.build(tracks, test.train_df, content, args, "peers")
        home["Encore hybrid (served scores)"] = hybrid_scores(test, model, user_f, users)
        best = home["ALS tuned"]["chosen"]
        retuned = train.parse_args(["--alpha", str(best["alpha"]), "--regularization", str(best["reg"])])
        home["Encore hybrid on the tuned ALS"] = hybrid_scores(test, *train.build(tracks, test.train_df, content,
                                                                                   retuned, "peers")[:3])  # fmt: skip

        held = transitions[transitions["timestamp"] >= cutoff]
        pairs = [(items[p], items[t]) for p, t in zip(held["prev_track_id"], held["track_id"], strict=True)
                 if p in items and t in items][:5000]  # fmt: skip
        seq = sources.sequence_model(sessions_of(transitions[transitions["timestamp"] < cutoff], items), len(items))
        nxt = {
            "transitions + co-occurrence": next_track_metrics(
                pairs, lambda p: top_k(seq[p].toarray().ravel(), K, np.array([p])).tolist()
            ),
            "Encore hybrid (0.6 cf / 0.4 content)": next_track_metrics(
                pairs,
                lambda p: [model.index[r["track_id"]] for r in model.next(p, None, K, np.empty(0, np.int64), 0.6, 0.4)],
            ),
        }
    print(f"\nhome, {len(test.truth):,} listeners with held-out new tracks ({a.users:,} x {a.tracks:,}, {a.days} days)")
    print(f"  {'model':48} {'NDCG@10':>8} {'recall@10':>10}  chosen on validation")
    for name, m in home.items():
        print(f"  {name:48} {m['ndcg@10']:8.4f} {m['recall@10']:10.4f}  {m.get('chosen', '')}")
    print(f"next song, {len(pairs):,} held-out transitions")
    for name, m in nxt.items():
        print(f"  {name:48} hit@10 {m['hit_rate@10']:.4f}  MRR@10 {m['mrr@10']:.4f}")
    print(f"  figures written to {save('peers', {'home': home, 'next': nxt})}")


if __name__ == "__main__":
    main()
