"""SageMaker training (script mode): the candidate sources, the ranking stage, evaluated on a held-out week.

Sources: ALS (its confidence chosen on a validation week), EASE or item-kNN, transitions and in-session
co-occurrence, the content encoder with its cold-start regression, popularity and trend. Three LightGBM
LambdaRank rankers (home, home in a session, next song) learn on the validation week from a model fit before
it; everything is then scored on the test week from a model fit before that, and the artifact is fit on all.

``python train.py`` reads the channels SageMaker mounts (``SM_CHANNEL_INTERACTIONS``, ``SM_CHANNEL_TRACKS``,
optional ``SM_CHANNEL_TRANSITIONS`` and ``SM_CHANNEL_TRUTH``), hyperparameters from ``SM_HPS`` or flags, and
writes to ``SM_MODEL_DIR``: the model arrays, ``evaluation.json`` (and .md, plots) and the user and track
vectors as Parquet for loading into DynamoDB. It prints ``name=value`` metric lines for SageMaker's metric
definitions. Python 3.9-compatible (the scikit-learn container).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
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

import ranker
import sources
from evaluation import (
    CONTINUATION_DEPTH,
    CONTINUATION_MODELS,
    KS,
    continuation_metrics,
    next_track_metrics,
    ranking_metrics,
    recall_on,
    write_report,
)
from filters import CatalogFacts
from hybrid import (
    CONTEXT,
    DEFAULT_WEIGHTS,
    EMPTY,
    FRESH_SHARE,
    HOME_FEATURES,
    NEXT_FEATURES,
    RECENT,
    HybridModel,
    Listener,
    session_blend,
    top_k,
)
from sources import Sessions

SERVING_CODE = ("inference.py", "hybrid.py", "ranker.py", "filters.py")

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
MAX_TRANSITIONS = 3_000
# Fixed-seed samples keep the ranker's training and the evaluation bounded at any scale.
MAX_RANKER_GROUPS = 2_000
MAX_EVAL_USERS = 3_000
HISTORY = 500  # the liked tracks a listener's profile keeps for the item-item source (most recent first)
TREND_DAYS = 7
OBSERVED = 3  # plays of a session serving has seen when home is asked mid-session (evaluation, ranker)
# Chosen on the default simulated service with the test week untouched (trained on one validation week, scored on
# the next): deeper or larger models overfit (31 leaves, 300 trees: -5 % NDCG@10), and shallow trees over a
# sample of each list's negatives scored highest while fitting in a third of the time. How many trees (at most
# n_estimators) is decided by early stopping on a fifth of the lists, so a small service gets a small model. Its
# patience matters: NDCG@10 of lists with one positive (next song) is noisy, and 25 rounds stopped the next-song
# ranker of the MPD-format playlists at 3 trees (hit@10 0.417); 50 rounds at a learning rate of 0.1 kept 87
# (0.426), as many rounds at 0.05 as 300 would have. At most 150 trees: none of the rankers measured kept more
# than 156 at half this rate, and serving walks every tree of every candidate.
STOP_PATIENCE = 50
RANKER_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "n_estimators": 150,
    "learning_rate": 0.1,
    "num_leaves": 15,
    "max_depth": 4,
    "min_child_samples": 200,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "lambdarank_truncation_level": 20,
}
NEGATIVES = 100  # of each candidate list's tracks not played, a fixed-seed sample of this many trains the ranker
# ALS (confidence = alpha x rating, regularisation) tried on the validation week: confidence near 40 (alpha 20 on
# ratings around 2) drowned the signal; 1-3 scored highest on every data source measured, and alpha 10 came last
# on the MPD-format playlists (0.258 against 0.325) and the 30,000-track simulated service (0.190 against
# 0.209), so the grid stops at 3.
ALS_GRID = ((1.0, 0.1), (3.0, 0.1))
HOME_MODELS = ("hybrid", "als", "item_item", "popularity", "simplest")
HOME_SOURCES = ("ranker", "item_item", "simplest")  # what home may serve (train.choose_home_source)
# What the served ranking must beat at the gate besides the serving model: each source alone.
SINGLE_SOURCES = ("popularity", "als", "item_item", "simplest")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    hps = json.loads(os.environ.get("SM_HPS", "{}"))
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factors", type=int, default=int(hps.get("factors", 64)))
    ap.add_argument("--regularization", type=float, default=float(hps.get("regularization", 0.1)))
    ap.add_argument("--iterations", type=int, default=int(hps.get("iterations", 15)))
    ap.add_argument(
        "--alpha",
        type=float,
        default=float(hps.get("alpha", 2.0)),
        help="confidence = alpha * rating (chosen on the validation week from ALS_GRID)",
    )
    ap.add_argument("--ease-lambda", type=float, default=float(hps.get("ease_lambda", 500.0)))
    ap.add_argument("--content-dims", type=int, default=int(hps.get("content_dims", 64)))
    ap.add_argument("--audio-weight", type=float, default=float(hps.get("audio_weight", 0.5)))
    ap.add_argument("--ridge", type=float, default=float(hps.get("ridge", 1.0)))
    ap.add_argument("--home-pop-weight", type=float, default=float(hps.get("home_pop_weight", 0.2)))
    ap.add_argument(
        "--weights",
        type=blend_weights,
        default=hps.get("weights", ""),
        help="the deployment's blend weights, cf=0.6,content=0.4,... (config.weights.as_training_argument())",
    )
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


def blend_weights(text: str) -> dict[str, float]:
    """The blend weights from ``name=value,...`` (the pipeline's ``weights`` hyperparameter,
    ``RecommendationWeights.as_training_argument``) over ``DEFAULT_WEIGHTS``: the ranker's session lists and the
    evaluation blend as serving will."""
    given = {name: value for name, _, value in (pair.partition("=") for pair in text.split(",") if pair)}
    if set(given) - set(DEFAULT_WEIGHTS) or not all(map(_is_fraction, given.values())):
        raise argparse.ArgumentTypeError(f"{text!r}: weights are {', '.join(DEFAULT_WEIGHTS)}, each =<0 to 1>")
    return {**DEFAULT_WEIGHTS, **{name: float(value) for name, value in given.items()}}


def _is_fraction(text: str) -> bool:
    try:
        return 0 <= float(text) <= 1
    except ValueError:
        return False


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


# -- the sources, fit on one window --------------------------------------------------------------------------


@dataclass
class Fitted:
    """A model fit on the interactions before ``end_ms``, with what its listeners looked like then."""

    model: HybridModel
    user_f: np.ndarray
    users: dict[str, int]
    listeners: dict[str, Listener]
    seen: dict[str, np.ndarray]


def read_sessions(transitions: pd.DataFrame | None, items: dict[str, int]) -> Sessions:
    """The ``transitions`` table (one row a play after the first of its session: previous track, track, time) as
    every session's plays in order; a play's time is that of the row that reached it (the first play takes its
    successor's)."""
    if transitions is None or transitions.empty:
        return Sessions.from_lists([])
    t = transitions.sort_values(["session_id", "timestamp"], kind="stable")
    sid = t["session_id"].to_numpy()
    first = np.concatenate([[True], sid[1:] != sid[:-1]])
    rows, n_sessions = len(t), int(first.sum())
    at = np.arange(rows) + np.cumsum(first)  # where each row's track lands; its session's first play just before
    starts = at[first] - 1
    lookup, codes = pd.Index(list(items)), np.fromiter(items.values(), dtype=np.int64, count=len(items))

    def index(column: str) -> np.ndarray:
        found = lookup.get_indexer(t[column])
        return np.where(found >= 0, codes[found], -1)

    tracks, times = np.empty(rows + n_sessions, np.int64), np.empty(rows + n_sessions, np.int64)
    tracks[at], tracks[starts] = index("track_id"), index("prev_track_id")[first]
    ts = t["timestamp"].to_numpy(np.int64)
    times[at], times[starts] = ts, ts[first]
    offsets = np.concatenate([starts, [rows + n_sessions]]).astype(np.int64)
    return Sessions(tracks, offsets, times, t["user_id"].to_numpy()[first])


def sessions_between(sessions: Sessions, start_ms: int, end_ms: int) -> Sessions:
    """The plays reached in [start, end), each session with the play before its first (its transition's start)."""
    inside = (sessions.times >= start_ms) & (sessions.times < end_ms)
    sid = sessions.session_of_play()
    leads_in = np.zeros_like(inside)
    leads_in[:-1] = inside[1:] & (sid[:-1] == sid[1:])
    return sessions.select(inside | leads_in)


def listener_state(inter: pd.DataFrame, items: dict[str, int],
                   end_ms: int) -> tuple[dict[str, Listener], dict[str, np.ndarray]]:  # fmt: skip
    """History (liked tracks, most recent first, at most HISTORY), recent plays (RECENT) and everything played, as
    of ``end_ms``. A pair played again after it is ordered by its first play: its last one before is unknown."""
    frame = inter[inter["track_id"].isin(items)]
    played_at = np.where(frame["last_ts"] < end_ms, frame["last_ts"], frame["first_ts"])
    frame = frame.assign(played_at=played_at).sort_values("played_at", ascending=False, kind="stable")
    idx = frame["track_id"].map(items).to_numpy()
    liked = frame["rating"].to_numpy() > 0
    state: dict[str, Listener] = {}
    seen: dict[str, np.ndarray] = {}
    for u, rows in frame.groupby("user_id", sort=False).indices.items():
        played = idx[rows]
        state[u] = Listener(None, played[liked[rows]][:HISTORY].astype(np.int64), played[:RECENT].astype(np.int64))
        seen[u] = played.astype(np.int64)
    return state, seen


def catalog_groups(tracks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each track's album (artist and album name: names repeat across artists) and its first two genre tags
    (genre, style), as indices; -1 where the catalog has none."""

    def index(keys: pd.Series) -> np.ndarray:
        codes, _ = pd.factorize(keys)
        return np.where(keys.isna() | (keys == ""), -1, codes).astype(np.int64)

    albums = tracks["album"].fillna("") if "album" in tracks else pd.Series([""] * len(tracks))
    album = index((tracks["artist_id"] + "\x1f" + albums).where(albums != ""))
    genres = tracks["genres"].map(lambda g: [] if g is None or isinstance(g, str) else list(g))
    tags = np.column_stack([index(genres.map(lambda g, j=j: g[j] if len(g) > j else "")) for j in range(2)])
    return album, tags


def catalog_facts(tracks: pd.DataFrame) -> CatalogFacts:
    """What request filters select on, in the model's track order (a catalog without a column: unknown)."""
    n = len(tracks)
    column = lambda name: tracks[name].tolist() if name in tracks else [None] * n  # noqa: E731
    genres = [[] if g is None or isinstance(g, str) else [str(x) for x in g] for g in column("genres")]
    return CatalogFacts.of(column("explicit"), column("release_date"), genres,
                           tracks["artist_id"].to_numpy().astype(str))  # fmt: skip


def fit_window(tracks: pd.DataFrame, inter: pd.DataFrame, sessions: Sessions, content: np.ndarray,
               args: argparse.Namespace, version: str, end_ms: int,
               als: tuple[np.ndarray, np.ndarray] | None = None) -> Fitted:  # fmt: skip
    """Every source on the interactions that began before ``end_ms`` (the ranker is attached by the caller);
    ``als``: ALS factors already fit on the same interactions."""
    items = {t: i for i, t in enumerate(tracks["track_id"].tolist())}
    inter = inter[inter["track_id"].isin(items)]
    user_ids = sorted(inter["user_id"].unique().tolist())
    users = {u: i for i, u in enumerate(user_ids)}
    matrix = interaction_matrix(inter, users, items, args.alpha)
    user_f, item_f = als if als is not None else fit_als(matrix, args)
    warm = np.asarray(matrix.getnnz(axis=0) > 0)
    popularity = np.asarray(matrix.getnnz(axis=0), dtype=np.float64)
    # trend: the listeners who took the track up in the window's last days
    recent = inter[(inter["rating"] > 0) & (inter["first_ts"] >= end_ms - TREND_DAYS * MS_PER_DAY)]
    trend = np.bincount(recent["track_id"].map(items).to_numpy(), minlength=len(items)).astype(np.float64)
    released = pd.to_datetime(tracks["release_date"], errors="coerce", format="mixed")
    age = (pd.Timestamp(end_ms, unit="ms") - released).dt.days.to_numpy(dtype=np.float64, na_value=np.nan)
    first_play = inter.groupby("track_id")["first_ts"].min()
    played_age = np.full(len(items), np.nan)
    played_age[first_play.index.map(items).to_numpy(dtype=np.int64)] = (end_ms - first_play.to_numpy()) / MS_PER_DAY
    age = np.where(np.isnan(age), np.nan_to_num(played_age, nan=0.0), age)
    kind, item_item = sources.item_item(matrix, args.ease_lambda)
    album, tags = catalog_groups(tracks)
    before = sessions_between(sessions, 0, end_ms)
    sequence = sources.sequence_model(before, len(items))
    transitions = sources.sequence_model(before, len(items), window=1, co_weight=0.0)
    model = HybridModel(
        version,
        tracks["track_id"].to_numpy().astype(str),
        tracks["artist_id"].to_numpy().astype(str),
        # float32, as the artifact stores them and serving computes with them
        cold_start_factors(content, item_f, warm, args.ridge).astype(np.float32),
        content.astype(np.float32),
        popularity,
        warm,
        args.home_pop_weight,
        trend=trend,
        age_days=age,
        item_item=item_item,
        item_item_kind=kind,
        sequence=sequence,
        transitions=transitions,
        album=album,
        tags=tags,
        facts=catalog_facts(tracks),
    )
    state, seen = listener_state(inter, items, end_ms)
    for u, who in state.items():
        who.vector = user_f[users[u]] if u in users else None
    return Fitted(model, user_f, users, state, seen)


def new_tracks(inter: pd.DataFrame, index: dict[str, int], seen: dict[str, np.ndarray], start_ms: int,
               end_ms: int) -> dict[str, set[int]]:  # fmt: skip
    """Each known listener's (``seen``) tracks first played and liked in [start, end) that they had not played
    before: what home is scored on."""
    window = inter[(inter["first_ts"] >= start_ms) & (inter["first_ts"] < end_ms) & (inter["rating"] > 0)]
    truth: dict[str, set[int]] = {}
    for u, g in window.groupby("user_id")["track_id"]:
        if u in seen:
            new = {index[t] for t in g if t in index} - set(seen[u].tolist())
            if new:
                truth[u] = new
    return truth


def held_out(inter: pd.DataFrame, fitted: Fitted, start_ms: int, end_ms: int) -> dict[str, set[int]]:
    return new_tracks(inter, fitted.model.index, fitted.seen, start_ms, end_ms)


def sample(keys: list, n: int, seed: int) -> list:
    if len(keys) <= n:
        return keys
    pick = np.random.default_rng(seed).choice(len(keys), n, replace=False)
    return [keys[i] for i in sorted(pick.tolist())]


def held_out_transitions(sessions: Sessions, fitted: Fitted, start_ms: int, end_ms: int, limit: int,
                         seed: int) -> list[tuple[int, int, str, np.ndarray]]:  # fmt: skip
    """(previous, next, listener, the plays before previous in the session, newest first), a fixed-seed sample of
    the transitions between known tracks in [start, end)."""
    window = sessions_between(sessions, start_ms, end_ms)
    tracks, sid = window.tracks, window.session_of_play()
    at = np.flatnonzero((sid[:-1] == sid[1:]) & (tracks[:-1] >= 0) & (tracks[1:] >= 0))
    out = []
    for p in sample(at.tolist(), limit, seed):
        s = sid[p]
        before = tracks[window.offsets[s] : p][::-1]
        out.append((int(tracks[p]), int(tracks[p + 1]), str(window.users[s]), before[before >= 0][:CONTEXT]))
    return out


def session_cases(sessions: Sessions, fitted: Fitted, start_ms: int, end_ms: int, limit: int,
                  args: argparse.Namespace) -> list[tuple[str, Listener, np.ndarray, set[int]]]:  # fmt: skip
    """Home asked in the middle of a session: the first ``OBSERVED`` plays of a session in [start, end) are what
    serving knows live (recent plays, the short-term vector blended as ``args.weights`` say); the new tracks
    played in the rest of the session are the truth. (listener, their live state, what is banned, truth), a
    fixed-seed sample."""
    model = fitted.model
    window = sessions_between(sessions, start_ms, end_ms)
    known = np.array([u in fitted.listeners and fitted.listeners[u].vector is not None for u in window.users], bool)
    long_enough = np.diff(window.offsets) > 2 * OBSERVED
    # Twice the sample (fixed seed) is looked at, in order, until ``limit`` have something new to find: a session
    # whose rest the listener had all played before is no case.
    cases = []
    w = args.weights
    for s in sample(np.flatnonzero(known & long_enough).tolist(), 2 * limit, args.seed):
        u = str(window.users[s])
        who = fitted.listeners[u]
        seq = window.tracks[window.offsets[s] : window.offsets[s + 1]]
        seq = seq[seq >= 0]
        observed = seq[:OBSERVED][::-1].astype(np.int64)
        banned = np.union1d(fitted.seen[u], observed)
        truth = set(seq[OBSERVED:].tolist()) - set(banned.tolist())
        if not truth:
            continue
        recent = np.concatenate([observed, who.recent[~np.isin(who.recent, observed)]])[:RECENT]
        short = model.item_cf[observed].mean(axis=0)
        live = Listener(session_blend(who.vector, short, w["long_term"], w["short_term"]), who.history, recent, True)
        cases.append((u, live, banned, truth))
        if len(cases) == limit:
            break
    return cases


def next_listener(fitted: Fitted, user: str, before: np.ndarray) -> Listener:
    who = fitted.listeners.get(user)
    if who is None:
        return Listener(None, EMPTY, before)
    return Listener(who.vector, who.history, before)


# -- the ranking stage ---------------------------------------------------------------------------------------


def train_rankers(inter: pd.DataFrame, sessions: Sessions, fitted: Fitted, start_ms: int,
                  end_ms: int, args: argparse.Namespace) -> dict:  # fmt: skip
    """LambdaRank for home (on the listeners' new tracks in [start, end)), for home in a session (on the rest of
    sessions in it) and for next song (on its transitions), over the candidates and features of a model fit
    before ``start``. One group per listener, session or transition; label 1 for what they went on to play."""
    model = fitted.model
    truth = held_out(inter, fitted, start_ms, end_ms)
    listeners = sample(sorted(truth), MAX_RANKER_GROUPS, args.seed)
    home = [(fitted.listeners[u], fitted.seen[u], truth[u]) for u in listeners]
    session = [c[1:] for c in session_cases(sessions, fitted, start_ms, end_ms, MAX_RANKER_GROUPS, args)]
    sets = {
        "home": ([model.home_candidates(who, banned) for who, banned, _ in home], [t for _, _, t in home]),
        "session": ([model.home_candidates(who, banned) for who, banned, _ in session], [t for _, _, t in session]),
    }
    pairs = held_out_transitions(sessions, fitted, start_ms, end_ms, MAX_RANKER_GROUPS, args.seed)
    sets["next"] = ([model.next_candidates(p, next_listener(fitted, u, before), EMPTY) for p, _, u, before in pairs],
                    [{nxt} for _, nxt, _, _ in pairs])  # fmt: skip
    labelled = {name: (built, [np.isin(cand, list(w)).astype(np.int32) for (cand, _), w in zip(built, wanted)])
                for name, (built, wanted) in sets.items()}  # fmt: skip
    info: dict = {}
    for name, (built, labels) in labelled.items():
        wanted = sets[name][1]
        info[f"{name}_groups"] = len(built)
        info[f"{name}_candidate_recall"] = sum(int(y.sum()) for y in labels) / max(sum(len(w) for w in wanted), 1)

    def fit(name: str, keep: list[int]) -> None:
        built, labels = labelled[name]
        if keep:
            model.rankers[name] = fit_ranker(np.vstack([built[i][1] for i in keep]),
                                             np.concatenate([labels[i] for i in keep]),
                                             np.array([built[i][0].size for i in keep]),
                                             NEXT_FEATURES if name == "next" else HOME_FEATURES, args.seed)  # fmt: skip

    # A fixed-seed fifth of the listeners, kept out of the home ranker's training, decide whether home serves
    # the ranker or one source alone; the ranker that serves then learns from every list (on a service with few
    # listeners a fifth more lists matters: the MPD-format playlists give about a thousand).
    judges = set(sample(listeners, len(listeners) // 5, args.seed + 1))
    fit("home", [i for i, u in enumerate(listeners) if u not in judges])
    for name in ("session", "next"):
        fit(name, list(range(len(labelled[name][0]))))
    info["home_source"] = choose_home_source(fitted, {u: truth[u] for u in judges})
    if model.home_source == "ranker":
        fit("home", list(range(len(listeners))))
    return info


def choose_home_source(fitted: Fitted, truth: dict[str, set[int]]) -> dict:
    """Serve the ranker on home only if it beats each source alone on listeners it did not learn from (on a small
    service it may not: a ranker learns from few lists); else the best of them. Sets ``home_source``."""
    model = fitted.model
    scores: dict[str, float] = {}
    for source in HOME_SOURCES:
        model.home_source = source
        recs = {}
        for u in truth:
            who = fitted.listeners[u]
            items = model.home(who.vector, 10, fitted.seen[u], who.history, who.recent)
            recs[u] = [model.index[r["track_id"]] for r in items]
        scores[source] = ranking_metrics(recs, truth, len(model.track_ids), model.popularity, ks=(10,)).get(
            "ndcg@10", 0.0
        )
    model.home_source = max(HOME_SOURCES, key=lambda name: (scores[name], name == "ranker"))
    return {"chosen": model.home_source, "listeners": len(truth), "validation_ndcg@10": scores}


def fit_ranker(x: np.ndarray, labels: np.ndarray, groups: np.ndarray, features: tuple[str, ...], seed: int,
        params: dict[str, Any] | None = None) -> ranker.Trees:  # fmt: skip
    """LambdaRank on candidate lists: every positive and ``NEGATIVES`` of the rest of each list (a list without a
    single positive teaches nothing and is dropped); a fixed-seed fifth of the lists, whole, decides when to stop
    adding trees (NDCG@10)."""
    rng = np.random.default_rng(seed)
    ends = np.cumsum(groups)
    lists = [np.arange(s, e) for s, e in zip(ends - groups, ends) if labels[s:e].any()]
    if not lists:
        return ranker.Trees.from_lightgbm({"tree_info": []}, features)
    held = rng.random(len(lists)) < 0.2 if len(lists) >= 20 else np.zeros(len(lists), dtype=bool)
    keep = []
    for rows in (r for r, h in zip(lists, held) if not h):
        negative = rows[labels[rows] <= 0]
        if negative.size > NEGATIVES:
            negative = rng.choice(negative, NEGATIVES, replace=False)
        keep.append(np.sort(np.concatenate([rows[labels[rows] > 0], negative])))
    fit_rows = np.concatenate(keep)
    model = lgb.LGBMRanker(**{**RANKER_PARAMS, **(params or {})}, random_state=seed, n_jobs=2, verbose=-1)
    options: dict[str, Any] = {}
    if held.any():
        stop = [r for r, h in zip(lists, held) if h]
        eval_rows = np.concatenate(stop)
        options = {"eval_set": [(x[eval_rows], labels[eval_rows])], "eval_group": [[r.size for r in stop]],
                   "eval_at": [10], "callbacks": [lgb.early_stopping(STOP_PATIENCE, verbose=False)]}  # fmt: skip
    model.fit(x[fit_rows], labels[fit_rows], group=[r.size for r in keep], **options)
    best = model.best_iteration_ or None
    return ranker.Trees.from_lightgbm(model.booster_.dump_model(num_iteration=best), features)


def tune_als(tracks: pd.DataFrame, inter: pd.DataFrame, args: argparse.Namespace, start_ms: int,
             end_ms: int) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """ALS confidence and regularisation chosen on the validation week by the NDCG@10 of ALS alone; the
    chosen fit is returned, for the validation model to use."""
    items = {t: i for i, t in enumerate(tracks["track_id"].tolist())}
    before = inter[(inter["first_ts"] < start_ms) & inter["track_id"].isin(items)]
    users = {u: i for i, u in enumerate(sorted(before["user_id"].unique().tolist()))}
    _, seen = listener_state(before, items, start_ms)
    truth = new_tracks(inter, items, seen, start_ms, end_ms)
    chosen = sample(sorted(truth), MAX_EVAL_USERS, args.seed)
    results, fits = [], []
    for alpha, reg in ALS_GRID:
        trial = argparse.Namespace(**{**vars(args), "alpha": alpha, "regularization": reg})
        user_f, item_f = fit_als(interaction_matrix(before, users, items, alpha), trial)
        recs = {}
        for start in range(0, len(chosen), EVAL_BATCH):
            batch = chosen[start : start + EVAL_BATCH]
            scores = user_f[[users[u] for u in batch]] @ item_f.T
            for row, u in enumerate(batch):
                recs[u] = top_k(scores[row], 10, seen[u]).tolist()
        ndcg = ranking_metrics(recs, truth, len(items), np.zeros(len(items)), ks=(10,)).get("ndcg@10", 0.0)
        results.append({"alpha": alpha, "regularization": reg, "validation_ndcg@10": ndcg})
        fits.append((user_f, item_f))
    best = int(np.argmax([r["validation_ndcg@10"] for r in results]))
    chosen_fit = {"grid": results, "alpha": results[best]["alpha"], "regularization": results[best]["regularization"]}
    return chosen_fit, fits[best]


class Laps:
    """Seconds per step of the evaluation, printed as each ends (SageMaker's log) and kept for the report."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = now - self._clock
        self._clock = now
        print(f"[step] {step} {self.seconds[step]:.1f} s", flush=True)


# -- evaluation on the test week ------------------------------------------------------------------------------


def evaluate(tracks: pd.DataFrame, inter: pd.DataFrame, sessions: Sessions, content: np.ndarray,
             args: argparse.Namespace, truth_path: Path | None) -> tuple[dict, dict, dict]:  # fmt: skip
    """Tune and train the rankers on the validation week, then score everything on the test week (the last
    ``holdout_days``), each model fit only on what came before the week it is scored on."""
    end = int(inter["last_ts"].max())
    # Training, validation and test each need a span: short histories get a third each.
    holdout_ms = min(args.holdout_days * MS_PER_DAY, (end - int(inter["first_ts"].min())) / 3)
    cutoff = int(end - holdout_ms)
    val_cutoff = int(cutoff - holdout_ms)
    report: dict = {"version": args.version, "cutoff_ms": cutoff, "validation_cutoff_ms": val_cutoff,
                    "holdout_days": holdout_ms / MS_PER_DAY, "weights": args.weights}  # fmt: skip
    lap = Laps()
    tuned, val_als = tune_als(tracks, inter, args, val_cutoff, cutoff)
    args.alpha, args.regularization = tuned["alpha"], tuned["regularization"]
    report["tuning"] = {"als": tuned}
    val = fit_window(tracks, inter[inter["first_ts"] < val_cutoff], sessions, content, args, "validation",
                     val_cutoff, val_als)  # fmt: skip
    lap("tune_als_and_validation_fit")
    report["tuning"]["ranker"] = train_rankers(inter, sessions, val, val_cutoff, cutoff, args)
    lap("rankers")
    train_part = inter[inter["first_ts"] < cutoff]
    test = fit_window(tracks, train_part, sessions, content, args, f"{args.version}-holdout", cutoff)
    test.model.rankers, test.model.home_source = val.model.rankers, val.model.home_source
    lap("fit_test")
    report["train_pairs"] = len(train_part)
    report["test_pairs"] = int(((inter["first_ts"] >= cutoff) & (inter["rating"] > 0)).sum())
    truth = held_out(inter, test, cutoff, end + 1)
    truth = {u: truth[u] for u in sample(sorted(truth), MAX_EVAL_USERS, args.seed)}
    model = test.model
    pairs = held_out_transitions(sessions, test, cutoff, end + 1, MAX_TRANSITIONS, args.seed)
    recs, next_song, session = in_parallel(
        lambda: home_recommendations(test, truth),
        lambda: next_song_metrics(test, pairs, args.weights),
        lambda: session_effect(sessions, test, cutoff, end + 1, args),
    )
    n = len(model.track_ids)
    home = {name: ranking_metrics(r, truth, n, model.popularity) for name, r in recs.items()}
    report["home"] = home
    report["continuation"] = {name: continuation_metrics(recs[name], truth) for name in CONTINUATION_MODELS}
    # the gate holds the served ranking against every source alone that it is not itself
    report["single_sources"] = [s for s in SINGLE_SOURCES if s in home and s != model.home_source]
    cold = set(np.flatnonzero(~model.warm).tolist())
    warm_items = set(np.flatnonzero(model.warm).tolist())
    report["cold_start"] = {
        "cold_tracks": float(len(cold)),
        "hybrid_recall@50_cold": recall_on(recs["hybrid"], truth, cold, 50),
        "hybrid_recall@50_warm": recall_on(recs["hybrid"], truth, warm_items, 50),
        "als_recall@50_cold": recall_on(recs["als"], truth, cold, 50),
    }
    report["freshness"] = freshness(test, truth, cold, args.seed)
    if next_song:
        report["next"] = next_song
    report["session"] = session
    lap("evaluation")
    report["step_seconds"] = lap.seconds
    if truth_path is not None:
        report["oracle"] = oracle_fractions(truth_path, model, truth, test.seen, home)
    rec_pop = {name: [float(model.popularity[i]) for u in r for i in r[u][:10]] for name, r in recs.items()}
    return report, rec_pop, (model.rankers, model.home_source)


FRESH_SHARES = (0.0, 0.1, 0.2, 0.3)
FRESH_LISTENERS = 300


def freshness(test: Fitted, truth: dict[str, set[int]], cold: set[int], seed: int) -> dict:
    """Home at each share of places for new releases without plays (``hybrid.FRESH_SHARE`` serves), on a sample of
    the evaluated listeners, each ranked once and placed per share: NDCG@10, recall@50, recall@50 of the tracks
    without plays in training, and how much of the top 50 the new releases take. What the share buys (new music
    heard) and what it costs (places taken from the ranking)."""
    model = test.model
    if model.home_source != "ranker" or model.home_trees(False) is None:
        return {}
    users = sample(sorted(truth), FRESH_LISTENERS, seed)
    ranked = {u: model.ranked_home(test.listeners[u], test.seen[u], model.home_trees(False)) for u in users}
    out = {}
    for share in FRESH_SHARES:
        recs, fresh = {}, 0
        for u, (cand, _, scores) in ranked.items():
            order, is_fresh = model._with_new_releases(top_k(scores, cand.size), cand, 50, share)
            recs[u], fresh = cand[order].tolist(), fresh + int(is_fresh.sum())
        metrics = ranking_metrics(recs, {u: truth[u] for u in users}, len(model.track_ids), model.popularity,
                                  ks=(10, 50))  # fmt: skip
        out[f"{share:.1f}"] = {"ndcg@10": metrics.get("ndcg@10", 0.0), "recall@50": metrics.get("recall@50", 0.0),
                               "recall@50_cold": recall_on(recs, truth, cold, 50),
                               "fresh_places_of_50": fresh / max(len(users), 1)}  # fmt: skip
    return {"listeners": len(users), "served_share": FRESH_SHARE, "by_share": out}


def home_recommendations(test: Fitted, truth: dict[str, set[int]]) -> dict[str, dict[str, list[int]]]:
    """Each evaluated listener's top 50 from the served ranking and from each source alone; the served ranking,
    ALS and popularity go on to ``CONTINUATION_DEPTH`` for the continuation metrics (the served ranking past
    its candidates in the order of ALS, the first stage's own)."""
    model, k = test.model, max(KS)
    recs: dict[str, dict[str, list[int]]] = {name: {} for name in HOME_MODELS}
    for u in truth:
        who, banned = test.listeners[u], test.seen[u]
        served = [model.index[r["track_id"]] for r in model.home(who.vector, CONTINUATION_DEPTH, banned, who.history,
                                                                 who.recent)]  # fmt: skip
        cf = model.cf_scores(who.vector)
        als = top_k(cf, CONTINUATION_DEPTH + len(served), banned).tolist()
        taken = set(served)
        recs["hybrid"][u] = served + [i for i in als if i not in taken][: CONTINUATION_DEPTH - len(served)]
        recs["als"][u] = als[:CONTINUATION_DEPTH]
        recs["item_item"][u] = top_k(model.item_scores(who.history), k, banned).tolist()
        recs["popularity"][u] = top_k(model.popularity, CONTINUATION_DEPTH, banned).tolist()
        recs["simplest"][u] = top_k(model.home_scores(who.vector, cf), k, banned).tolist()
    return recs


def next_song_metrics(test: Fitted, pairs: list[tuple[int, int, str, np.ndarray]],
                      weights: dict[str, float]) -> dict:  # fmt: skip
    """Hit rate and MRR at 10 on held-out transitions: the served ranking, the sequence source alone (the baseline
    to beat), the simplest configuration's blend (by ``weights``, as served) and ALS neighbours."""
    if not pairs:
        return {}
    model, none = test.model, np.empty(0, np.int64)
    w_cf, w_content = weights["cf"], weights["content"]

    def served(p: tuple) -> list[int]:
        who = next_listener(test, p[2], p[3])
        return [model.index[r["track_id"]] for r in model.next(p[0], who.vector, 10, none, w_cf, w_content,
                                                               who.history, who.recent)]  # fmt: skip

    def sequence(p: tuple) -> list[int]:
        return top_k(model._rows(model.sequence, np.array([p[0]])), 10, np.array([p[0]])).tolist()

    def simplest(p: tuple) -> list[int]:
        return [model.index[r["track_id"]] for r in model.similar(p[0], 10, none, w_cf, w_content)]

    def item_cf(p: tuple) -> list[int]:
        return top_k(model.cf_neighbour_scores(p[0]), 10, np.array([p[0]])).tolist()

    models = (("hybrid", served), ("sequence", sequence), ("simplest", simplest), ("item_cf", item_cf))
    return {name: next_track_metrics(pairs, fn) for name, fn in models}


_FORKED: list[Callable[[], Any]] = []


def _run_forked(i: int) -> Any:
    with threadpool_limits(1):  # one core a worker: BLAS threads beside another worker only contend
        return _FORKED[i]()


def in_parallel(*steps: Callable[[], Any]) -> list[Any]:
    """Independent steps at once, one a core, in forked workers that read what this process holds
    (copy-on-write) and send back their results: the evaluation's parts took a third of the training's time on
    one core. One after another where there is one core or no fork. (No worker enters an OpenMP region, which
    is not fork-safe: the evaluation calls NumPy and SciPy only.)"""
    workers = min(len(steps), os.cpu_count() or 1)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [step() for step in steps]
    _FORKED[:] = steps
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_run_forked, range(len(steps))))
    finally:
        _FORKED.clear()


def session_effect(sessions: Sessions, fitted: Fitted, start_ms: int, end_ms: int,
                   args: argparse.Namespace) -> dict:  # fmt: skip
    """Does the session move home? Home asked after the first plays of a test-week session, scored on the new
    tracks of the rest of it: with the session (its plays as recent plays, the blended session vector) against
    the long-term state alone; on every such session and on the shifted ones, the quarter whose first plays were
    furthest (content cosine) from the listener's history."""
    cases = session_cases(sessions, fitted, start_ms, end_ms, MAX_EVAL_USERS // 2, args)
    if not cases:
        return {}
    model = fitted.model
    shift = []
    for u, live, _, _ in cases:
        who = fitted.listeners[u]
        hist = model.content[who.history].mean(axis=0) if who.history.size else np.zeros(model.content.shape[1])
        sess = model.content[live.recent[:OBSERVED]].mean(axis=0)
        shift.append(float(hist @ sess / max(float(np.linalg.norm(hist) * np.linalg.norm(sess)), 1e-12)))
    threshold = float(np.quantile(shift, 0.25))
    recs: dict[str, dict[str, list[int]]] = {"with_session": {}, "long_term_only": {}}
    truth: dict[str, set[int]] = {}
    shifted: set[str] = set()
    for i, ((u, live, banned, held), s) in enumerate(zip(cases, shift)):
        key = f"{u}#{i}"
        who = fitted.listeners[u]
        recs["with_session"][key] = [model.index[r["track_id"]] for r in model.home(
            live.vector, 10, banned, live.history, live.recent, in_session=True)]  # fmt: skip
        recs["long_term_only"][key] = [model.index[r["track_id"]] for r in model.home(
            who.vector, 10, banned, who.history, who.recent)]  # fmt: skip
        truth[key] = held
        if s <= threshold:
            shifted.add(key)
    out: dict = {"sessions": float(len(truth)), "shifted_sessions": float(len(shifted))}
    for group, keys in (("all", set(truth)), ("shifted", shifted)):
        sub = {k: truth[k] for k in keys}
        for name, r in recs.items():
            out[f"{group}_{name}_ndcg@10"] = ranking_metrics(r, sub, len(model.track_ids), model.popularity,
                                                             ks=(10,)).get("ndcg@10", float("nan"))  # fmt: skip
    return out


def oracle_fractions(truth_path: Path, model: HybridModel, truth: dict[str, set[int]], seen: dict[str, np.ndarray],
                     home: dict) -> dict[str, float]:  # fmt: skip
    """The simulator's own ranking of each listener's likeliest plays (``oracle_tracks`` and ``oracle_scores`` of
    its ground truth: the best any model could do), scored as the models are, on the same listeners and held-out
    items with what they had played left out; and each model's NDCG@10 as a fraction of it."""
    path = truth_path / "ground_truth.npz" if truth_path.is_dir() else truth_path
    with np.load(path) as z:
        if "oracle_tracks" not in z:
            print(f"[oracle] {path} holds no oracle ranking (an older simulation): none reported", flush=True)
            return {}
        row = {u: i for i, u in enumerate(z["user_ids"].tolist())}
        in_model = np.array([model.index.get(t, -1) for t in z["track_ids"].tolist()], dtype=np.int64)
        tracks, scores = z["oracle_tracks"], z["oracle_scores"]
    oracle: dict[str, list[int]] = {}
    for u in truth:
        if u in row:
            ranked, s = in_model[tracks[row[u]]], scores[row[u]]
            kept = (ranked >= 0) & np.isfinite(s) & ~np.isin(ranked, seen.get(u, EMPTY))
            oracle[u] = ranked[kept][top_k(s[kept], max(KS))].tolist()
    ndcg = ranking_metrics(oracle, truth, len(model.track_ids), model.popularity)
    out = {"oracle_ndcg@10": ndcg.get("ndcg@10", float("nan"))}
    for name, metrics in home.items():
        out[f"{name}_fraction_of_oracle"] = metrics.get("ndcg@10", float("nan")) / max(out["oracle_ndcg@10"], 1e-12)
    return out


def train(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    tracks = read_table(args.tracks).drop_duplicates("track_id").reset_index(drop=True)
    inter = read_table(args.interactions)
    if "first_ts" not in inter:
        inter = inter.assign(first_ts=inter["last_ts"])
    transitions = read_table(args.transitions) if args.transitions and args.transitions.exists() else None
    content = content_vectors(tracks, args.content_dims, args.audio_weight, args.seed, args.encoder)
    sessions = read_sessions(transitions, {t: i for i, t in enumerate(tracks["track_id"].tolist())})
    report, rec_pop, rankers = evaluate(tracks, inter, sessions, content, args, args.truth)
    end = int(inter["last_ts"].max()) + 1
    if args.no_final_fit:
        inter, end = inter[inter["first_ts"] < report["cutoff_ms"]], report["cutoff_ms"]
    final = fit_window(tracks, inter, sessions, content, args, args.version, end)
    final.model.rankers, final.model.home_source = rankers
    report["train_seconds"] = time.perf_counter() - started
    model = final.model
    # ALS's settings as tuned (evaluate sets them): serving folds listeners in with the same equations
    model.save(args.model_dir, {"metrics": report["home"]["hybrid"], "trained_pairs": len(inter),
                                "als_alpha": args.alpha, "als_regularization": args.regularization})  # fmt: skip
    # The artifact carries its serving code (SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code): NumPy and SciPy,
    # which the serving container has. No requirements.txt there: the container would pip-install it on every
    # cold start.
    code = args.model_dir / "code"
    code.mkdir(exist_ok=True)
    for name in SERVING_CODE:
        shutil.copy(Path(__file__).resolve().parent / name, code / name)
    write_report(report, args.model_dir, rec_pop)
    vectors = args.model_dir / "vectors"
    vectors.mkdir(exist_ok=True)
    user_ids = sorted(final.users, key=final.users.get)  # type: ignore[arg-type]
    pd.DataFrame(
        {
            "user_id": user_ids,
            "vector": [final.user_f[final.users[u]].astype("<f4").tobytes() for u in user_ids],
            "history": [model.track_ids[final.listeners[u].history].tolist() for u in user_ids],
        }
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
    the other models' lines say ``[source <name>]`` so no definition can pick them up)."""
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
