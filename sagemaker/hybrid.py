"""The recommender: candidate sources, a learned ranking stage, and exact top-K over the whole catalog.

Sources: ALS factors (cold tracks through factors regressed from content), an item-item model (EASE or item-kNN)
over the listener's history and their most recent plays, a sequence model (transitions and in-session
co-occurrence) from the current track and the session, content neighbours, popularity and its 7-day trend.
Each surface gathers candidates from the sources, describes each candidate by features every source provides,
and ranks them with a LightGBM LambdaRank model exported to arrays (``ranker.Trees``). Without a ranker (the
simplest configuration) home is ``0.8 norm(cf) + 0.2 norm(log popularity)`` and next song the blend of CF and
content neighbours by the configured weights (``DEFAULT_WEIGHTS``).

Self-contained (NumPy and SciPy at serving time) and Python 3.9-compatible: it runs inside SageMaker's
scikit-learn container. The artifact is plain arrays (``.npz``), so serving never unpickles anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from filters import CatalogFacts
from ranker import Trees

ARTIFACT = "hybrid.npz"
META = "meta.json"
RANKERS = ("home", "session", "next")
POOL = 100  # candidates each source proposes
TREND_POOL = 30
NEW_POOL = 30
NEW_RELEASE_DAYS = 30
FRESH_SHARE = 0.1  # home: places 20, 30, ... go to new releases (``HybridModel._with_new_releases``)
# Why an item is on the page (each item's ``reason``)
PERSONALISED, EXPLORATION, POPULAR = "personalised", "exploration", "popular"
RECENT = 50  # the recent plays a listener's request carries (the profile keeps as many)
CONTEXT = 3  # the plays before the current one that next song looks at
RECENT_DECAY = 10.0  # a recent play's weight halves every this many plays back
WALK_STEPS, WALK_DECAY = 6, 0.7  # home: a walk along the transitions from the last play (``HybridModel._walk``)
EMPTY = np.empty(0, dtype=np.int64)
# The blend weights are the deployment's ``config.weights`` (``encore.config.RecommendationWeights``), which the
# serving Lambda sends in each request and the pipeline passes to training (``train.py --weights``). These are its
# defaults, for a request or a training run that names none; the contract test checks that they agree.
DEFAULT_WEIGHTS = {"cf": 0.6, "content": 0.4, "long_term": 0.7, "short_term": 0.3, "ema_keep": 0.5}

HOME_FEATURES = (
    "als", "als_rank", "item", "item_rank", "recent_item", "recent_item_rank", "sequence", "sequence_rank",
    "recent_content", "popularity", "trend", "trend_ratio", "age_days", "artist_share", "artist_recent_share",
    "history_size", "cold", "in_session", "session_item", "session_item_rank", "session_content",
    "session_artist", "new_release", "album_recent_share", "genre_within", "genre_history_within",
    "genre_recent_within", "style_within", "style_history_within", "style_recent_within", "sequence_2hop", "walk",
)  # fmt: skip
NEXT_FEATURES = (
    "sequence", "sequence_rank", "context_sequence", "item", "item_rank", "cf_neighbour", "content", "same_artist",
    "popularity", "trend", "als", "has_listener", "artist_share", "same_album", "sequence_2hop", "transition",
    "transition_rank",
)  # fmt: skip


def minmax(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the given candidates; a constant array maps to zeros (adds nothing to a blend)."""
    if x.size == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def top_k(scores: np.ndarray, k: int, banned: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k best scores, best first, never a banned index (exact)."""
    s, k = scores, min(k, scores.size)
    if banned is not None and banned.size:
        s = scores.copy()
        s[banned] = -np.inf
        if k > scores.size - banned.size:  # only near exhaustion is it worth counting the distinct banned
            k = min(k, scores.size - np.unique(banned).size)
    k = int(k)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-s, k - 1)[:k]
    return part[np.lexsort((part, -s[part]))]


def _with(banned: np.ndarray, seed: int) -> np.ndarray:
    """``banned`` and the seed (repeats are harmless where it is used: a sorted union of the tens of thousands a
    narrow filter bans would cost milliseconds)."""
    return np.concatenate([banned, np.array([seed], dtype=np.int64)])


def percentile(x: np.ndarray) -> np.ndarray:
    """Each value's rank among all, in [0, 1]: the same meaning whatever the length of the training window."""
    order = np.argsort(x, kind="stable")
    out = np.empty(x.size)
    out[order] = np.arange(x.size) / max(x.size - 1, 1)
    return out


def session_blend(v_long: np.ndarray | None, v_short: np.ndarray | None, w_long: float,
                  w_short: float) -> np.ndarray | None:  # fmt: skip
    """``w_long v_long + w_short v_short`` with both parts at unit length (then at the long-term part's length):
    ALS user factors are two orders longer than the item factors a short-term vector is averaged from, so a
    blend of the raw vectors is the long-term vector. A missing part leaves the other alone."""
    if v_short is None or v_long is None:
        return v_long if v_short is None else v_short
    long_norm, short_norm = float(np.linalg.norm(v_long)), float(np.linalg.norm(v_short))
    if long_norm == 0 or short_norm == 0:
        return v_long if short_norm == 0 else v_short
    return long_norm * (w_long * v_long / long_norm + w_short * v_short / short_norm)


@dataclass
class Listener:
    """What a request knows of the listener: long-term (or session) vector, history, recent plays newest first."""

    vector: np.ndarray | None = None
    history: np.ndarray = field(default_factory=lambda: EMPTY)
    recent: np.ndarray = field(default_factory=lambda: EMPTY)
    in_session: bool = False  # the recent plays are of a session still going on (the session cache has it)


def _csr(z: Any, prefix: str, n: int) -> sp.csr_matrix | None:
    if f"{prefix}_indptr" not in z:
        return None
    return sp.csr_matrix((z[f"{prefix}_data"], z[f"{prefix}_indices"], z[f"{prefix}_indptr"]), shape=(n, n))


@dataclass
class HybridModel:
    version: str
    track_ids: np.ndarray  # (n,) str
    artist_ids: np.ndarray  # (n,) str
    item_cf: np.ndarray  # (n, f) ALS item factors; cold tracks get factors regressed from content
    content: np.ndarray  # (n, d) L2-normalised content vectors
    popularity: np.ndarray  # (n,) listeners in the training window
    warm: np.ndarray  # (n,) bool: the track had plays when the model was trained
    home_pop_weight: float = 0.2  # simplest configuration: (1 - w) norm(cf) + w norm(log(1 + popularity))
    trend: np.ndarray | None = None  # (n,) listeners who took the track up in the window's last 7 days
    age_days: np.ndarray | None = None  # (n,) days since release (or first play) at the end of the window
    item_item: sp.csr_matrix | None = None  # row i: tracks that go with track i (EASE or item-kNN)
    item_item_kind: str = "none"
    sequence: sp.csr_matrix | None = None  # row i: tracks played after or around track i in sessions
    transitions: sp.csr_matrix | None = None  # row i: tracks played right after track i (the directed part)
    # "home" (from the long-term state), "session" (home while a session goes on), "next"
    rankers: dict[str, Trees] = field(default_factory=dict)
    # What home serves: "ranker", or one source alone where the ranker did not beat it on validation
    # ("item_item", "simplest"); "popularity" answers every surface with the most popular tracks (a deliberately
    # weak challenger, ``as_popularity_baseline``)
    home_source: str = "ranker"
    album: np.ndarray | None = None  # (n,) the track's album (an index; -1: none known)
    tags: np.ndarray | None = None  # (n, 2) its first two genre tags, genre and style (indices; -1: none)
    facts: CatalogFacts | None = None  # explicit, release day, genres: what request filters select on
    # ALS as trained (confidence = alpha x rating, regularisation): ``fold_in`` solves the same equations
    als_alpha: float = 2.0
    als_regularization: float = 0.1

    def __post_init__(self) -> None:
        n = self.track_ids.size
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.track_ids.tolist())}
        self._prior = minmax(np.log1p(self.popularity)).astype(self.item_cf.dtype)
        norms = np.linalg.norm(self.item_cf, axis=1, keepdims=True)
        self._cf_unit = self.item_cf / np.maximum(norms, 1e-12)
        # YᵀY of ALS's last solve: the rows of the items in the training matrix. Only warm tracks had plays there
        # (the others' factors were near zero, then replaced by factors regressed from content).
        warm_cf = self.item_cf[self.warm].astype(np.float64)
        self._gram = warm_cf.T @ warm_cf
        self._artist = np.unique(self.artist_ids, return_inverse=True)[1].astype(np.int64).ravel()
        trend = self.trend if self.trend is not None else np.zeros(n)
        self._popularity_pct, self._trend_pct = percentile(self.popularity), percentile(trend)
        self._trend_ratio = np.log1p(trend) - np.log1p(self.popularity)
        self._age = self.age_days if self.age_days is not None else np.zeros(n)
        self._by_trend = top_k(trend, min(n, TREND_POOL + RECENT + 500))
        self._new = np.flatnonzero(self._age <= NEW_RELEASE_DAYS)  # released lately
        # What ALS may propose: tracks someone played, and new releases. A catalog track nobody played in the
        # whole window is a poor guess whatever its regressed factors say, and a ranker shown many of them
        # learns that every track without plays (new releases too) is one.
        self._unproposable = np.flatnonzero(~(self.warm | (self._age <= NEW_RELEASE_DAYS)))
        self._artists = int(self._artist.max()) + 1 if n else 0
        self._album = self.album if self.album is not None else np.full(n, -1, dtype=np.int64)
        tags = self.tags if self.tags is not None else np.full((n, 2), -1, dtype=np.int64)
        # per tag column: the tag shifted by one (0: none), and the track's share of its tag's listeners (a
        # popularity model per genre and per style: what a listener who picks the genre is likely to play)
        self._tag = [tags[:, j].astype(np.int64) + 1 for j in range(2)]
        self._slots = {"album": int(self._album.max()) + 2 if n else 1}
        self._slots.update({f"tag{j}": int(t.max()) + 1 if n else 1 for j, t in enumerate(self._tag)})
        self._within = []
        for tag in self._tag:
            totals = np.bincount(tag, weights=self.popularity)
            share = self.popularity / np.maximum(totals[tag], 1e-12)
            self._within.append(np.where(tag > 0, share, 0.0))

    @property
    def factors(self) -> int:
        return int(self.item_cf.shape[1])

    def indices(self, track_ids: Sequence[str]) -> np.ndarray:
        return np.array([self.index[t] for t in track_ids if t in self.index], dtype=np.int64)

    # -- source scores over the whole catalog -----------------------------------------------------------------

    def cf_scores(self, vector: np.ndarray) -> np.ndarray:
        return self.item_cf @ vector.astype(self.item_cf.dtype, copy=False)

    def content_scores(self, seed: int) -> np.ndarray:
        return self.content @ self.content[seed]

    def cf_neighbour_scores(self, seed: int) -> np.ndarray:
        return self._cf_unit @ self._cf_unit[seed]

    @staticmethod
    def _entries(matrix: sp.csr_matrix, rows: np.ndarray,
                 weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The columns and (weighted) values of the given rows' entries, straight from the CSR arrays: SciPy's row
        slicing costs more than the work itself at this size."""
        starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
        counts = ends - starts
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        w = matrix.data[offsets]
        if weights is not None:
            w = w * np.repeat(weights, counts)
        return matrix.indices[offsets], w

    def _rows(self, matrix: sp.csr_matrix | None, rows: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """``sum_i w_i matrix[i]`` over the given rows (a listener's history, or a seed), dense."""
        n = self.track_ids.size
        if matrix is None or rows.size == 0:
            return np.zeros(n)
        columns, w = self._entries(matrix, rows, weights)
        return np.bincount(columns, weights=w, minlength=n) if columns.size else np.zeros(n)

    @staticmethod
    def _top_sparse(scores: np.ndarray, k: int, banned: np.ndarray) -> np.ndarray:
        """``top_k`` of a source that scores few tracks (the rest 0): only its positive scores are ranked (a
        boolean mask finds them several times faster than a search for non-zero floats)."""
        scored = scores > 0
        scored[banned] = False
        nz = np.flatnonzero(scored)
        return nz[top_k(scores[nz], k)]

    def item_scores(self, history: np.ndarray) -> np.ndarray:
        return self._rows(self.item_item, history)

    def recent_weights(self, recent: np.ndarray) -> np.ndarray:
        return np.power(0.5, np.arange(recent.size) / RECENT_DECAY)

    def home_scores(self, vector: np.ndarray, cf: np.ndarray | None = None) -> np.ndarray:
        """The simplest configuration: CF affinity blended with the popularity prior."""
        w = self.home_pop_weight
        return (1.0 - w) * minmax(self.cf_scores(vector) if cf is None else cf) + w * self._prior

    # -- the listener in this model's own factor space ---------------------------------------------------------

    def fold_in(self, tracks: np.ndarray, confidence: np.ndarray | None = None) -> np.ndarray | None:
        """A listener's ALS vector for their ``tracks``, solved as implicit's ALS solves a user against fixed item
        factors: ``(YᵀY + Σ_i (c_i − 1) y_i y_iᵀ + λI) x = Σ_i c_i y_i`` (implicit 0.7 neither scales λ nor, as
        train.py calls it, multiplies by alpha: the matrix holds ``c = alpha x rating``). For a model whose vectors
        the request does not carry (a challenger given the champion's).

        Approximated: serving does not know the ratings, so each track gets ``c = alpha x 1`` (``confidence``
        overrides it, for tests); the solve is exact where training took 3 conjugate-gradient steps from the last
        iteration, against the final item factors where training's last user solve saw the previous iteration's;
        tracks not in the training matrix (cold: regressed factors) enter with their whole ``c``, since ``YᵀY``
        lacks their row. None when no track is known."""
        if confidence is None:
            tracks = np.unique(tracks)
            confidence = np.full(tracks.size, self.als_alpha)
        if tracks.size == 0:
            return None
        y = self.item_cf[tracks].astype(np.float64)
        c = np.asarray(confidence, dtype=np.float64)
        a = self._gram + (y.T * (c - self.warm[tracks])) @ y + self.als_regularization * np.eye(self.factors)
        return np.linalg.solve(a, y.T @ c)

    def session_vector(self, recent: np.ndarray, keep: float) -> np.ndarray | None:
        """The short-term vector in this model's space: the serving Lambda's moving average (the first play sets
        ``v = y``, each next ``v = keep v + (1 - keep) y``) replayed over ``recent`` (newest first) oldest first.
        None without plays."""
        v = None
        for i in recent[::-1]:
            y = self.item_cf[i].astype(np.float64)
            v = y if v is None else keep * v + (1.0 - keep) * y
        return v

    # -- home -------------------------------------------------------------------------------------------------

    def _popular(self, k: int, banned: np.ndarray) -> list[dict]:
        return [self._item(i, float(self.popularity[i]), None, None, POPULAR)
                for i in top_k(self.popularity, k, banned)]  # fmt: skip

    def _home_sources(self, who: Listener) -> dict[str, np.ndarray]:
        """Every home source's scores over the whole catalog for a listener."""
        recent_w = self.recent_weights(who.recent)
        return {
            "item": self.item_scores(who.history),
            "recent_item": self._rows(self.item_item, who.recent, recent_w),
            "sequence": self._rows(self.sequence, who.recent[:CONTEXT], recent_w[:CONTEXT]),
            "session_item": self._rows(self.item_item, who.recent[:CONTEXT], recent_w[:CONTEXT]),
            "walk": self._walk(who.recent[:1]),
            "als": (self.cf_scores(who.vector) if who.vector is not None
                    else np.zeros(self.track_ids.size, dtype=np.float32)),
        }  # fmt: skip

    def home_candidates(self, who: Listener, banned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates from every source for a listener, and their features (``HOME_FEATURES``)."""
        scores = self._home_sources(who)
        sparse = ("item", "recent_item", "sequence", "session_item", "walk")
        pools = [self._top_sparse(scores[name], POOL, banned) for name in sparse]
        is_banned = np.zeros(self.track_ids.size, dtype=bool)
        is_banned[banned] = True
        if who.vector is not None:
            pools.append(top_k(scores["als"], POOL, np.concatenate([self._unproposable, banned])))
            # new releases compete among themselves: the other sources know too little of them
            new = self._new[~is_banned[self._new]]
            pools.append(new[top_k(scores["als"][new], NEW_POOL)])
        pools.append(self._by_trend[~is_banned[self._by_trend]][:TREND_POOL])
        cand = np.unique(np.concatenate(pools))
        return cand, self.home_features(who, cand, scores)

    def home_features(self, who: Listener, cand: np.ndarray, scores: dict[str, np.ndarray]) -> np.ndarray:
        """``HOME_FEATURES`` of the candidates ``cand`` (any tracks: a supplied list is ranked on the same)."""
        recent_w = self.recent_weights(who.recent)
        feats = [self._scaled(scores[name], cand) for name in ("als", "item", "recent_item", "sequence")]
        recent_content = self._content_affinity(who.recent, recent_w, cand)
        session_content = self._content_affinity(who.recent[:CONTEXT], recent_w[:CONTEXT], cand)
        artists = self._artist[cand]
        hist_artists = np.bincount(self._artist[who.history], minlength=self._artists)
        recent_artists = np.bincount(self._artist[who.recent], weights=recent_w, minlength=self._artists)
        return np.column_stack(
            [
                *(f for pair in feats for f in pair),
                recent_content,
                self._popularity_pct[cand],
                self._trend_pct[cand],
                self._trend_ratio[cand],
                self._age[cand],
                hist_artists[artists] / max(who.history.size, 1),
                recent_artists[artists] / max(float(recent_w.sum()), 1e-12),
                np.full(cand.size, float(who.history.size)),
                (~self.warm[cand]).astype(np.float64),
                np.full(cand.size, float(who.in_session)),
                *self._scaled(scores["session_item"], cand),
                session_content,
                np.isin(artists, self._artist[who.recent[:CONTEXT]]).astype(np.float64),
                (self._age[cand] <= NEW_RELEASE_DAYS).astype(np.float64),
                self._share(self._album + 1, self._slots["album"], who.recent, recent_w, cand),
                *self._tag_features(who, recent_w, cand),
                self._scaled(self._two_steps(who.recent[:CONTEXT], recent_w[:CONTEXT]), cand)[0],
                self._scaled(scores["walk"], cand)[0],
            ]
        )

    def _share(self, groups: np.ndarray, slots: int, plays: np.ndarray, weights: np.ndarray,
               cand: np.ndarray) -> np.ndarray:  # fmt: skip
        """The (weighted) share of ``plays`` in each candidate's group (groups shifted by one: 0 is none)."""
        if plays.size == 0:
            return np.zeros(cand.size)
        counts = np.bincount(groups[plays], weights=weights, minlength=slots)
        counts[0] = 0.0
        return counts[groups[cand]] / max(float(weights.sum()), 1e-12)

    def _tag_features(self, who: Listener, recent_w: np.ndarray, cand: np.ndarray) -> list[np.ndarray]:
        """Per tag (genre, style): the candidate's share of its tag's listeners, and that times the listener's
        share of history and of recent plays in the tag."""
        out = []
        ones = np.ones(who.history.size)
        for j, (tag, within) in enumerate(zip(self._tag, self._within)):
            w, slots = within[cand], self._slots[f"tag{j}"]
            out += [w, w * self._share(tag, slots, who.history, ones, cand),
                    w * self._share(tag, slots, who.recent, recent_w, cand)]  # fmt: skip
        return out

    def _content_affinity(self, plays: np.ndarray, weights: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Cosine of each candidate's content vector with the weighted mean of ``plays``'."""
        if plays.size == 0:
            return np.zeros(cand.size)
        profile = (weights[:, None] * self.content[plays]).sum(axis=0)
        return self.content[cand] @ (profile / max(float(np.linalg.norm(profile)), 1e-12))

    def _scaled(self, scores: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A source's score over the candidates scaled by its best, and its rank among them (1 = best)."""
        s = scores[cand].astype(np.float64)
        best = float(np.max(np.abs(s))) if s.size else 0.0
        rank = np.empty(s.size)
        rank[np.argsort(-s, kind="stable")] = np.arange(1, s.size + 1)
        return (s / best if best > 0 else s), rank

    def home(self, vector: np.ndarray | None, k: int, banned: np.ndarray, history: np.ndarray = EMPTY,
             recent: np.ndarray = EMPTY, in_session: bool = False,
             fresh_share: float = FRESH_SHARE) -> list[dict]:  # fmt: skip
        """The listener's page; with the ranker, a ``fresh_share`` of its places (``_with_new_releases``) goes to
        new releases without plays yet (``reason`` "exploration")."""
        who, trees = Listener(vector, history, recent, in_session), self.home_trees(in_session)
        way = self._home_way(who, trees)
        if way != "ranker":
            scores, cf = self._catalog_scores(way, who)
            reason = POPULAR if way == "popular" else PERSONALISED
            return [self._item(i, float(scores[i]), None if cf is None else float(cf[i]), None, reason)
                    for i in top_k(scores, k, banned)]  # fmt: skip
        assert trees is not None
        cand, x, ranked = self.ranked_home(who, banned, trees)
        order, fresh = self._with_new_releases(top_k(ranked, cand.size), cand, k, fresh_share)
        items = [self._item(cand[j], float(ranked[j]), float(x[j, 0]), None, EXPLORATION if is_new else PERSONALISED)
                 for j, is_new in zip(order.tolist(), fresh.tolist())]  # fmt: skip
        if len(items) < k:  # a narrow filter left the sources little to propose: the most popular of the rest
            floor = float(ranked.min()) if ranked.size else 0.0
            more = top_k(self.popularity, k - len(items), np.concatenate([banned, cand]))
            items += [self._item(i, floor - 1.0 - n, None, None, POPULAR) for n, i in enumerate(more.tolist())]
        return items

    def home_trees(self, in_session: bool) -> Trees | None:
        return self.rankers.get("session" if in_session else "home") or self.rankers.get("home")

    def _home_way(self, who: Listener, trees: Trees | None) -> str:
        """How home ranks for this listener: "popular" (a weak baseline, or nothing is known of them),
        "item_item" or "simplest" (the one source validation chose, or no ranker), or "ranker"."""
        if self.home_source == "popularity" or (who.vector is None and who.history.size == 0 and who.recent.size == 0):
            return "popular"
        if self.home_source == "item_item" and self.item_item is not None and who.history.size:
            return "item_item"
        if trees is None or self.home_source == "simplest":
            return "simplest" if who.vector is not None else "popular"
        return "ranker"

    def _catalog_scores(self, way: str, who: Listener) -> tuple[np.ndarray, np.ndarray | None]:
        """Over the whole catalog, the scores home ranks by in ``way`` (not the ranker), and the CF scores where
        they are part of them."""
        if way == "item_item":
            return self.item_scores(who.history), None
        if way == "simplest":
            cf = self.cf_scores(who.vector)
            return self.home_scores(who.vector, cf), cf
        return self.popularity.astype(np.float64), None

    def ranked_home(self, who: Listener, banned: np.ndarray, trees: Trees) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Home's candidates, their features and the ranker's scores (before new releases get their places)."""
        cand, x = self.home_candidates(who, banned)
        return cand, x, trees.predict(x)

    def rank(self, vector: np.ndarray | None, cand: np.ndarray, history: np.ndarray = EMPTY,
             recent: np.ndarray = EMPTY, in_session: bool = False) -> list[dict]:  # fmt: skip
        """The supplied tracks ``cand`` ordered for the listener, best first, the way home ranks for them."""
        cand = np.asarray(cand, dtype=np.int64)
        who, trees = Listener(vector, history, recent, in_session), self.home_trees(in_session)
        way = self._home_way(who, trees)
        if way == "ranker":
            assert trees is not None
            scores = trees.predict(self.home_features(who, cand, self._home_sources(who)))
        else:
            scores = self._catalog_scores(way, who)[0][cand]
        reason = POPULAR if way == "popular" else PERSONALISED
        return [self._item(cand[j], float(scores[j]), None, None, reason) for j in top_k(scores, cand.size)]

    def _with_new_releases(self, order: np.ndarray, cand: np.ndarray, k: int,
                           share: float = FRESH_SHARE) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The first ``k`` of ``order``, where one place in ``round(1 / share)`` after the first such run (places
        20, 30, ... at 0.1; 10, 15, 20, ... at 0.2) goes to the best-ranked new release without plays yet; and
        which of them are those. Ranked on their own they would rarely reach a page: the ranker rightly finds a
        track nobody has played less likely than one many have, and new releases would never get the plays that
        change that."""
        fresh_mask = (~self.warm[cand] & (self._age[cand] <= NEW_RELEASE_DAYS))[order]
        fresh, rest = order[fresh_mask], order[~fresh_mask]
        places = np.arange(1, min(k, order.size) + 1)
        is_fresh = np.zeros(places.size, dtype=bool)
        if share > 0:
            every = max(2, round(1.0 / share))
            is_fresh[np.flatnonzero((places > every) & (places % every == 0))[: fresh.size]] = True
        is_fresh[np.flatnonzero(~is_fresh)[rest.size :]] = True  # the rest ran out: new releases fill the page
        out = np.empty(places.size, dtype=np.int64)
        out[is_fresh], out[~is_fresh] = fresh[: int(is_fresh.sum())], rest[: int((~is_fresh).sum())]
        return out, is_fresh

    def _item(self, i: int, score: float, cf: float | None, content: float | None,
              reason: str = PERSONALISED) -> dict:  # fmt: skip
        return {"track_id": self.track_ids[i], "artist_id": self.artist_ids[i], "score": score, "cf": cf,
                "content": content, "reason": reason}  # fmt: skip

    # -- next song and similar --------------------------------------------------------------------------------

    def next_candidates(self, seed: int, who: Listener, banned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates for the track after ``seed``, and their features (``NEXT_FEATURES``)."""
        banned = _with(banned, seed)
        context = who.recent[who.recent != seed][:CONTEXT]
        scores = {
            "sequence": self._rows(self.sequence, np.array([seed])),
            "transition": self._rows(self.transitions, np.array([seed])),
            "context": self._rows(self.sequence, context, self.recent_weights(context)),
            "item": self._rows(self.item_item, np.array([seed])),
            "cf_neighbour": self.cf_neighbour_scores(seed),
            "content": self.content_scores(seed),
        }
        pools = [self._top_sparse(scores[name], POOL, banned) for name in ("sequence", "transition", "item")]
        pools += [top_k(scores[name], POOL, banned) for name in ("cf_neighbour", "content")]
        listener = self.cf_scores(who.vector) if who.vector is not None else None
        if listener is not None:  # the listener's own taste proposes too: not every next track follows the seed
            pools.append(top_k(listener, POOL, np.concatenate([self._unproposable, banned])))
        cand = np.unique(np.concatenate(pools))
        two_hop = self._two_steps(np.array([seed]))
        seq, seq_rank = self._scaled(scores["sequence"], cand)
        item, item_rank = self._scaled(scores["item"], cand)
        als = self._scaled(listener, cand)[0] if listener is not None else np.zeros(cand.size)
        hist_artists = np.bincount(self._artist[who.history], minlength=self._artists)
        x = np.column_stack(
            [
                seq,
                seq_rank,
                self._scaled(scores["context"], cand)[0],
                item,
                item_rank,
                scores["cf_neighbour"][cand],
                scores["content"][cand],
                (self._artist[cand] == self._artist[seed]).astype(np.float64),
                self._popularity_pct[cand],
                self._trend_pct[cand],
                als,
                np.full(cand.size, float(who.vector is not None)),
                hist_artists[self._artist[cand]] / max(who.history.size, 1),
                ((self._album[cand] == self._album[seed]) & (self._album[seed] >= 0)).astype(np.float64),
                self._scaled(two_hop, cand)[0],
                *self._scaled(scores["transition"], cand),
            ]
        )
        return cand, x

    def _walk(self, start: np.ndarray) -> np.ndarray:
        """Where a playlist or a session is heading beyond its next track: a walk along the transitions from
        ``start``, each step keeping its ``POOL`` likeliest tracks (a beam: the exact walk spreads over the whole
        catalog), its steps summed with weight ``WALK_DECAY ** step``. On the MPD-format playlists it lifted the
        home ranking's NDCG@10 from 0.309 to 0.322."""
        m = self.transitions if self.transitions is not None else self.sequence
        total = np.zeros(self.track_ids.size)
        if m is None or start.size == 0:
            return total
        at, weights = start.astype(np.int64), np.ones(start.size)
        for step in range(1, WALK_STEPS + 1):
            reached = self._rows(m, at, weights)
            total += WALK_DECAY**step * reached
            at = self._top_sparse(reached, POOL, EMPTY)
            weights = reached[at]
            if at.size == 0:
                break
        return total

    def _two_steps(self, plays: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Two steps along the transitions from ``plays`` (the sequence model where there are none): what follows
        what follows them."""
        m = self.transitions if self.transitions is not None else self.sequence
        if m is None or plays.size == 0:
            return np.zeros(self.track_ids.size)
        return self._rows(m, *self._entries(m, plays, weights))

    def next(self, seed: int, vector: np.ndarray | None, k: int, banned: np.ndarray, w_cf: float,
             w_content: float, history: np.ndarray = EMPTY, recent: np.ndarray = EMPTY) -> list[dict]:  # fmt: skip
        """The ranking stage over the sources' candidates; without a ranker, the simplest configuration."""
        if self.home_source == "popularity":
            return self._popular(k, _with(banned, seed))
        trees = self.rankers.get("next")
        if trees is None:
            return self.similar(seed, k, banned, w_cf, w_content)
        cand, x = self.next_candidates(seed, Listener(vector, history, recent), banned)
        ranked = trees.predict(x)
        cf_col, content_col = NEXT_FEATURES.index("cf_neighbour"), NEXT_FEATURES.index("content")
        return [self._item(cand[j], float(ranked[j]), float(x[j, cf_col]), float(x[j, content_col]))
                for j in top_k(ranked, k)]  # fmt: skip

    def similar(self, seed: int, k: int, banned: np.ndarray, w_cf: float, w_content: float,
                pool: int = 200) -> list[dict]:  # fmt: skip
        """The seed's CF neighbours and content neighbours, each min-max normalised over their union, blended
        ``w_cf / w_content``."""
        banned = _with(banned, seed)
        if self.home_source == "popularity":
            return self._popular(k, banned)
        cf, content = self.cf_neighbour_scores(seed), self.content_scores(seed)
        union = np.union1d(top_k(cf, pool, banned), top_k(content, pool, banned))
        if union.size == 0:
            return []
        cf_n, content_n = minmax(cf[union]), minmax(content[union])
        blended = w_cf * cf_n + w_content * content_n
        return [self._item(union[j], float(blended[j]), float(cf_n[j]), float(content_n[j]))
                for j in top_k(blended, k)]  # fmt: skip

    # -- artifact ---------------------------------------------------------------------------------------------

    def as_popularity_baseline(self, version: str) -> HybridModel:
        """This model (the same arrays) answering every surface with the most popular tracks: the deliberately
        weaker challenger that checks online that the model beats popularity."""
        return replace(self, version=version, home_source="popularity")

    def save(self, directory: Path, extra_meta: dict | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "track_ids": self.track_ids.astype(str),
            "artist_ids": self.artist_ids.astype(str),
            "item_cf": self.item_cf.astype(np.float32),
            "content": self.content.astype(np.float32),
            "popularity": self.popularity.astype(np.float32),
            "warm": self.warm,
        }
        if self.trend is not None:
            arrays["trend"] = self.trend.astype(np.float32)
        if self.age_days is not None:
            arrays["age_days"] = self.age_days.astype(np.float32)
        if self.album is not None:
            arrays["album"] = self.album.astype(np.int32)
        if self.tags is not None:
            arrays["tags"] = self.tags.astype(np.int32)
        if self.facts is not None:
            arrays.update(self.facts.arrays())
        for name, matrix in (("item_item", self.item_item), ("sequence", self.sequence),
                             ("transitions", self.transitions)):  # fmt: skip
            if matrix is not None:
                m = sp.csr_matrix(matrix, dtype=np.float32)
                arrays.update({f"{name}_data": m.data, f"{name}_indices": m.indices, f"{name}_indptr": m.indptr})
        for name, trees in self.rankers.items():
            arrays.update(trees.arrays(f"ranker_{name}"))
        np.savez(directory / ARTIFACT, **arrays)
        meta = {
            "version": self.version,
            "factors": self.factors,
            "content_dims": int(self.content.shape[1]),
            "tracks": int(self.track_ids.size),
            "home_pop_weight": self.home_pop_weight,
            "item_item": self.item_item_kind,
            "home_source": self.home_source,
            "als_alpha": self.als_alpha,
            "als_regularization": self.als_regularization,
            **(extra_meta or {}),
        }
        (directory / META).write_text(json.dumps(meta, indent=2, default=float))

    @classmethod
    def load(cls, directory: Path) -> HybridModel:
        meta = json.loads((directory / META).read_text())
        with np.load(directory / ARTIFACT, allow_pickle=False) as z:
            n = int(z["track_ids"].size)
            return cls(
                version=meta["version"],
                track_ids=z["track_ids"],
                artist_ids=z["artist_ids"],
                # float32 as stored: half the memory, twice the speed of the per-request scan
                item_cf=z["item_cf"],
                content=z["content"],
                popularity=z["popularity"].astype(np.float64),
                warm=z["warm"],
                home_pop_weight=float(meta.get("home_pop_weight", 0.2)),
                trend=z["trend"].astype(np.float64) if "trend" in z else None,
                age_days=z["age_days"].astype(np.float64) if "age_days" in z else None,
                item_item=_csr(z, "item_item", n),
                item_item_kind=str(meta.get("item_item", "none")),
                home_source=str(meta.get("home_source", "ranker")),
                sequence=_csr(z, "sequence", n),
                transitions=_csr(z, "transitions", n),
                album=z["album"].astype(np.int64) if "album" in z else None,
                tags=z["tags"].astype(np.int64) if "tags" in z else None,
                facts=CatalogFacts.from_arrays(z, z["artist_ids"]),
                rankers={r: Trees.from_arrays(z, f"ranker_{r}") for r in RANKERS if f"ranker_{r}_feature" in z},
                als_alpha=float(meta.get("als_alpha", 2.0)),
                als_regularization=float(meta.get("als_regularization", 0.1)),
            )
