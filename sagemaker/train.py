"""SageMaker training (script mode): ALS + content encoder + cold-start regression + popularity, evaluated.

``python train.py`` reads the channels SageMaker mounts (``SM_CHANNEL_INTERACTIONS``, ``SM_CHANNEL_TRACKS``,
optional ``SM_CHANNEL_TRANSITIONS`` and ``SM_CHANNEL_TRUTH``), hyperparameters from ``SM_HPS`` or flags, and
writes to ``SM_MODEL_DIR``: the model arrays, ``evaluation.json`` (and .md, plots) and the user and track
vectors as Parquet for loading into DynamoDB. It prints ``name=value`` metric lines for SageMaker's metric
definitions. Python 3.9-compatible (the scikit-learn container).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))  # script mode runs us from elsewhere

from evaluation import KS, next_track_metrics, ranking_metrics, recall_on, write_report
from hybrid import HybridModel, top_k

SERVING_CODE = ("inference.py", "hybrid.py")

AUDIO = [
    "danceability",
    "energy",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "loudness",
]
MS_PER_DAY = 86_400_000
EVAL_BATCH = 256
MAX_TRANSITIONS = 5_000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    hps = json.loads(os.environ.get("SM_HPS", "{}"))
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factors", type=int, default=int(hps.get("factors", 64)))
    ap.add_argument("--regularization", type=float, default=float(hps.get("regularization", 0.05)))
    ap.add_argument("--iterations", type=int, default=int(hps.get("iterations", 15)))
    ap.add_argument("--alpha", type=float, default=float(hps.get("alpha", 20.0)), help="confidence = alpha * rating")
    ap.add_argument("--content-dims", type=int, default=int(hps.get("content_dims", 64)))
    ap.add_argument("--audio-weight", type=float, default=float(hps.get("audio_weight", 0.5)))
    ap.add_argument("--ridge", type=float, default=float(hps.get("ridge", 1.0)))
    ap.add_argument("--home-pop-weight", type=float, default=float(hps.get("home_pop_weight", 0.2)))
    ap.add_argument("--holdout-days", type=float, default=float(hps.get("holdout_days", 7)))
    ap.add_argument("--encoder", choices=["tfidf", "minilm"], default=hps.get("encoder", "tfidf"))
    ap.add_argument("--seed", type=int, default=int(hps.get("seed", 7)))
    ap.add_argument(
        "--version", default=hps.get("version") or env("TRAINING_JOB_NAME") or time.strftime("%Y%m%d%H%M%S")
    )
    ap.add_argument("--no-final-fit", action="store_true", help="keep the holdout model (benchmarks)")
    ap.add_argument("--model-dir", type=Path, default=Path(env("SM_MODEL_DIR", "model")))
    ap.add_argument("--interactions", type=Path, default=Path(env("SM_CHANNEL_INTERACTIONS", "data/interactions")))
    ap.add_argument("--tracks", type=Path, default=Path(env("SM_CHANNEL_TRACKS", "data/tracks")))
    ap.add_argument("--transitions", type=Path, default=_optional(env("SM_CHANNEL_TRANSITIONS")))
    ap.add_argument("--truth", type=Path, default=_optional(env("SM_CHANNEL_TRUTH")))
    return ap.parse_args(argv)


def _optional(value: str | None) -> Path | None:
    return Path(value) if value else None


def read_table(path: Path) -> pd.DataFrame:
    files = sorted(p for p in path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise SystemExit(f"no Parquet files under {path}")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


# -- components -----------------------------------------------------------------------------------------------


def content_vectors(
    tracks: pd.DataFrame, dims: int, audio_weight: float, seed: int, encoder: str = "tfidf"
) -> np.ndarray:
    """Text (title, artist, genres, lyrics) reduced with TruncatedSVD, beside scaled audio features; L2-normalised."""

    genres = tracks["genres"].map(lambda g: " ".join(g) if g is not None and not isinstance(g, str) else (g or ""))
    text = (
        tracks["name"].fillna("")
        + " "
        + tracks["artist_name"].fillna("")
        + " "
        + genres
        + " "
        + genres
        + " "
        + tracks["lyrics"].fillna("").str.replace(" / ", " ", regex=False)
    )
    audio = StandardScaler().fit_transform(tracks[AUDIO].astype(float).fillna(0.0).to_numpy())
    text_dims = max(2, dims - len(AUDIO))
    if encoder == "minilm":
        from sentence_transformers import SentenceTransformer  # noqa: PLC0415 - optional, only where torch is

        emb = SentenceTransformer("all-MiniLM-L6-v2").encode(text.tolist(), batch_size=64, show_progress_bar=False)
        text_part = TruncatedSVD(n_components=min(text_dims, emb.shape[1] - 1), random_state=seed).fit_transform(emb)
    else:
        tfidf = TfidfVectorizer(max_features=30_000, sublinear_tf=True, min_df=2, token_pattern=r"(?u)\b[\w-]{2,}\b")  # noqa: S106 - a regex, not a password
        matrix = tfidf.fit_transform(text)
        n_comp = max(1, min(text_dims, matrix.shape[1] - 1, matrix.shape[0] - 1))
        text_part = TruncatedSVD(n_components=n_comp, random_state=seed).fit_transform(matrix)
    text_part /= np.maximum(np.linalg.norm(text_part, axis=1, keepdims=True), 1e-12)
    audio_part = audio_weight * audio / np.sqrt(len(AUDIO))
    vectors = np.hstack([text_part, audio_part])
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def fit_als(matrix: sp.csr_matrix, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    model = AlternatingLeastSquares(
        factors=args.factors,
        regularization=args.regularization,
        iterations=args.iterations,
        random_state=args.seed,
        calculate_training_loss=False,
    )
    with threadpool_limits(1, "blas"):  # implicit parallelises itself; a BLAS thread pool beside it only contends
        model.fit(matrix, show_progress=False)
    users, items = model.user_factors, model.item_factors
    if hasattr(users, "to_numpy"):
        users, items = users.to_numpy(), items.to_numpy()
    return np.asarray(users, dtype=np.float64), np.asarray(items, dtype=np.float64)


def cold_start_factors(content: np.ndarray, items: np.ndarray, warm: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge from content to CF factor, fit on warm tracks; cold tracks get its prediction, rescaled to the warm
    tracks' mean factor norm (ridge shrinks towards zero, which would hide every new release)."""

    out = items.copy()
    if warm.sum() < 10 or warm.all():
        return out
    reg = Ridge(alpha=ridge).fit(content[warm], items[warm])
    predicted = reg.predict(content[~warm])
    target = np.linalg.norm(items[warm], axis=1).mean()
    predicted *= target / np.maximum(np.linalg.norm(predicted, axis=1, keepdims=True), 1e-12)
    out[~warm] = predicted
    return out


def interaction_matrix(
    inter: pd.DataFrame, users: dict[str, int], items: dict[str, int], alpha: float
) -> sp.csr_matrix:
    pos = inter[inter["rating"] > 0]
    rows = pos["user_id"].map(users).to_numpy()
    cols = pos["track_id"].map(items).to_numpy()
    return sp.csr_matrix((alpha * pos["rating"].to_numpy(), (rows, cols)), shape=(len(users), len(items)))


# -- training and evaluation -----------------------------------------------------------------------------------


def build(tracks: pd.DataFrame, inter: pd.DataFrame, content: np.ndarray, args: argparse.Namespace,
          version: str) -> tuple[HybridModel, np.ndarray, dict[str, int], np.ndarray]:  # fmt: skip
    items = {t: i for i, t in enumerate(tracks["track_id"].tolist())}
    inter = inter[inter["track_id"].isin(items)]
    user_ids = sorted(inter["user_id"].unique().tolist())
    users = {u: i for i, u in enumerate(user_ids)}
    matrix = interaction_matrix(inter, users, items, args.alpha)
    user_f, item_f = fit_als(matrix, args)
    warm = np.asarray(matrix.getnnz(axis=0) > 0)
    cf_only = np.where(warm[:, None], item_f, 0.0)
    hybrid_items = cold_start_factors(content, item_f, warm, args.ridge)
    popularity = np.asarray(matrix.getnnz(axis=0), dtype=np.float64)
    model = HybridModel(
        version,
        tracks["track_id"].to_numpy().astype(str),
        tracks["artist_id"].to_numpy().astype(str),
        hybrid_items,
        content,
        popularity,
        warm,
        args.home_pop_weight,
    )
    return model, user_f, users, cf_only


def evaluate(tracks: pd.DataFrame, inter: pd.DataFrame, transitions: pd.DataFrame | None, content: np.ndarray,
             args: argparse.Namespace, truth_path: Path | None) -> tuple[dict, dict[str, list[float]]]:  # fmt: skip
    """Train on interactions that began before the cutoff; score the pairs that began after it."""
    cutoff = int(inter["last_ts"].max() - args.holdout_days * MS_PER_DAY)
    first = inter["first_ts"] if "first_ts" in inter else inter["last_ts"]
    train, test = inter[first < cutoff], inter[(first >= cutoff) & (inter["rating"] > 0)]
    model, user_f, users, cf_only = build(tracks, train, content, args, f"{args.version}-holdout")
    index = model.index
    seen: dict[str, np.ndarray] = {
        u: np.array([index[t] for t in g if t in index], dtype=np.int64)
        for u, g in train.groupby("user_id")["track_id"]
    }
    truth: dict[str, set[int]] = {}
    for u, g in test.groupby("user_id")["track_id"]:
        if u in users:
            truth[u] = {index[t] for t in g if t in index} - set(seen.get(u, np.empty(0)).tolist())
    truth = {u: s for u, s in truth.items() if s}
    k = max(KS)
    content_profiles = {u: content[s].mean(axis=0) for u, s in seen.items() if s.size}
    recs: dict[str, dict[str, list[int]]] = {"popularity": {}, "cf_only": {}, "content_only": {}, "hybrid": {}}
    empty = np.empty(0, dtype=np.int64)
    # Popularity ranks the same for everyone: rank once, then drop each listener's own tracks.
    longest = max((s.size for s in seen.values()), default=0)
    by_popularity = top_k(model.popularity, k + longest).tolist()
    ordered = list(truth)
    for start in range(0, len(ordered), EVAL_BATCH):  # one matrix product per batch of listeners
        batch = ordered[start : start + EVAL_BATCH]
        factors = user_f[[users[u] for u in batch]].astype(model.item_cf.dtype)
        cf_batch, cf_only_batch = factors @ model.item_cf.T, factors @ cf_only.T.astype(factors.dtype)
        profiles = np.stack([content_profiles.get(u, np.zeros(content.shape[1])) for u in batch])
        content_batch = profiles @ content.T
        for row, u in enumerate(batch):
            banned = seen.get(u, empty)
            own = set(banned.tolist())
            recs["popularity"][u] = [i for i in by_popularity if i not in own][:k]
            recs["cf_only"][u] = top_k(cf_only_batch[row], k, banned).tolist()
            recs["content_only"][u] = top_k(content_batch[row], k, banned).tolist() if u in content_profiles else []
            recs["hybrid"][u] = top_k(model.home_scores(factors[row], cf_batch[row]), k, banned).tolist()
    n = len(model.track_ids)
    home = {name: ranking_metrics(r, truth, n, model.popularity) for name, r in recs.items()}
    report: dict = {
        "version": args.version,
        "cutoff_ms": cutoff,
        "train_pairs": len(train),
        "test_pairs": len(test),
        "home": home,
    }
    cold = set(np.flatnonzero(~model.warm).tolist())
    warm_items = set(np.flatnonzero(model.warm).tolist())
    report["cold_start"] = {
        "cold_tracks": float(len(cold)),
        "hybrid_recall@50_cold": recall_on(recs["hybrid"], truth, cold, 50),
        "hybrid_recall@50_warm": recall_on(recs["hybrid"], truth, warm_items, 50),
        "cf_only_recall@50_cold": recall_on(recs["cf_only"], truth, cold, 50),
    }
    if transitions is not None and len(transitions):
        held = transitions[transitions["timestamp"] >= cutoff]
        pairs = [
            (index[a], index[b]) for a, b in zip(held["prev_track_id"], held["track_id"]) if a in index and b in index
        ]
        if len(pairs) > MAX_TRANSITIONS:  # a fixed-seed sample keeps evaluation time bounded at any scale
            keep = np.random.default_rng(args.seed).choice(len(pairs), MAX_TRANSITIONS, replace=False)
            pairs = [pairs[i] for i in sorted(keep.tolist())]

        def item_cf(prev: int) -> list[int]:
            return top_k(model.cf_neighbour_scores(prev), 10, np.array([prev])).tolist()

        def content_only(prev: int) -> list[int]:
            return top_k(model.content_scores(prev), 10, np.array([prev])).tolist()

        def hybrid(prev: int) -> list[int]:
            return [model.index[r["track_id"]] for r in model.next(prev, None, 10, np.empty(0, np.int64), 0.6, 0.4)]

        report["next"] = {
            name: next_track_metrics(pairs, fn)
            for name, fn in (("item_cf", item_cf), ("content_only", content_only), ("hybrid", hybrid))
        }
    if truth_path is not None:
        report["oracle"] = oracle_fractions(truth_path, recs, truth, seen, model, home)
    rec_pop = {name: [float(model.popularity[i]) for u in r for i in r[u][:10]] for name, r in recs.items()}
    return report, rec_pop


def oracle_fractions(truth_path: Path, recs: dict, truth: dict[str, set[int]], seen: dict[str, np.ndarray],
                     model: HybridModel, home: dict) -> dict[str, float]:  # fmt: skip
    """Rank by the simulator's true affinity (the best any model can do) and report each model's NDCG@10 as a
    fraction of the oracle's on the same users and held-out items."""
    path = truth_path / "ground_truth.npz" if truth_path.is_dir() else truth_path
    with np.load(path) as z:
        t_index = {t: i for i, t in enumerate(z["track_ids"].tolist())}
        u_index = {u: i for i, u in enumerate(z["user_ids"].tolist())}
        gn, sn, mn = z["genre_norm"], z["style_norm"], z["mood_norm"]
        tg, ts, tm, q = z["track_genre"], z["track_style"], z["track_mood"], z["quality"]
        wg, ws, wm, wq = z["weights"].tolist()
        # The simulator offers tracks by popularity and picks by affinity / temperature: rank by both.
        log_pop = np.log(z["popularity"]) if "popularity" in z else np.zeros(tg.size)
        temperature = float(z["temperature"]) if "temperature" in z else 1.0
    order = np.array([t_index.get(t, -1) for t in model.track_ids.tolist()])
    valid = order >= 0
    oracle: dict[str, list[int]] = {}
    for u in truth:
        if u not in u_index:
            continue
        i = u_index[u]
        z = np.full(order.size, -np.inf)
        o = order[valid]
        affinity = wg * gn[i, tg[o]] + ws * sn[i, ts[o]] + wm * mn[i, tm[o]] + wq * q[o]
        z[valid] = affinity / temperature + log_pop[o]
        oracle[u] = top_k(z, max(KS), seen.get(u, np.empty(0, dtype=np.int64))).tolist()
    ndcg = ranking_metrics(oracle, truth, len(model.track_ids), model.popularity)
    out = {"oracle_ndcg@10": ndcg.get("ndcg@10", float("nan"))}
    for name in recs:
        out[f"{name}_fraction_of_oracle"] = home[name].get("ndcg@10", float("nan")) / max(out["oracle_ndcg@10"], 1e-12)
    return out


def train(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    tracks = read_table(args.tracks).drop_duplicates("track_id").reset_index(drop=True)
    inter = read_table(args.interactions)
    transitions = read_table(args.transitions) if args.transitions and args.transitions.exists() else None
    content = content_vectors(tracks, args.content_dims, args.audio_weight, args.seed, args.encoder)
    report, rec_pop = evaluate(tracks, inter, transitions, content, args, args.truth)
    if args.no_final_fit:
        model, user_f, users, _ = build(
            tracks, inter[inter["last_ts"] < report["cutoff_ms"]], content, args, args.version
        )
    else:
        model, user_f, users, _ = build(tracks, inter, content, args, args.version)
    report["train_seconds"] = time.perf_counter() - started
    model.save(args.model_dir, {"metrics": report["home"]["hybrid"], "trained_pairs": len(inter)})
    # The artifact carries its serving code (SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code): NumPy only, which the
    # serving container has. No requirements.txt there: the container would pip-install it on every cold start.
    code = args.model_dir / "code"
    code.mkdir(exist_ok=True)
    for name in SERVING_CODE:
        shutil.copy(Path(__file__).resolve().parent / name, code / name)
    write_report(report, args.model_dir, rec_pop)
    vectors = args.model_dir / "vectors"
    vectors.mkdir(exist_ok=True)
    user_ids = sorted(users, key=users.get)  # type: ignore[arg-type]
    pd.DataFrame(
        {"user_id": user_ids, "vector": [user_f[users[u]].astype("<f4").tobytes() for u in user_ids]}
    ).to_parquet(vectors / "users.parquet", index=False)
    pd.DataFrame(
        {
            "track_id": model.track_ids,
            "cf": [row.astype("<f4").tobytes() for row in model.item_cf],
            "content": [row.astype("<f4").tobytes() for row in model.content],
            "warm": model.warm,
        }
    ).to_parquet(vectors / "tracks.parquet", index=False)
    print_metrics(report)
    return report


def print_metrics(report: dict) -> None:  # type: ignore[type-arg]
    """The log lines SageMaker's metric definitions read (``[metric] name=value``: the candidate's own figures;
    the other sources' lines say ``[source <name>]`` so no definition can pick them up)."""
    for name, metrics in report["home"].items():
        print(f"[source {name}] ndcg@10={metrics.get('ndcg@10', 0):.6f}")
    hybrid = report["home"]["hybrid"]
    print(f"[metric] ndcg_at_10={hybrid.get('ndcg@10', 0):.6f}")
    print(f"[metric] recall_at_10={hybrid.get('recall@10', 0):.6f}")
    print(f"[metric] coverage={hybrid.get('coverage@10', 0):.6f}")
    if "next" in report:
        print(f"[metric] hit_rate_at_10={report['next']['hybrid'].get('hit_rate@10', 0):.6f}")


if __name__ == "__main__":
    train(parse_args())
