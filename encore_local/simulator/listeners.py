"""Simulated listeners (region, sign-up day, activity, taste) and the ground truth of their affinities.

The true affinity of listener u for track i is, with each part in [0, 1]::

    z(u, i) = w_genre * genre_taste[u, genre(i)] / max(genre_taste[u])
            + w_style * style_pref[u, style(i)] / max(style_pref[u, styles of genre(i)])
            + w_mood  * mood_taste[u, mood(i)] / max(mood_taste[u])
            + w_quality * quality[i]

The saved ground truth holds these arrays, and the oracle: each listener's likeliest plays as the simulator's
own choice model ranks them (``ListeningModel.oracle``: the best ranking any model could produce), which
evaluation reads to report a model as a fraction of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from encore_local.simulator.catalog import STYLE_GENRE, STYLES, Catalog
from encore_local.simulator.params import AffinityWeights, SimulationParams
from encore_local.simulator.world import GENRES, MOODS, REGIONS

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass
class Listeners:
    user_ids: list[str]
    region: IntArray  # index into REGIONS
    signup_day: IntArray  # days since the start (negative: already a listener on day 0)
    activity: FloatArray  # chance of listening on a given day
    genre_norm: FloatArray  # [users, genres], genre taste / favourite genre's taste
    style_norm: FloatArray  # [users, styles], preference / favourite sub-style of the same genre
    mood_norm: FloatArray  # [users, moods]
    genre_cdf: FloatArray  # [users, genres], cumulative genre taste, for drawing a genre to explore

    @property
    def size(self) -> int:
        return len(self.user_ids)


def _dirichlet_rows(rng: np.random.Generator, alpha: FloatArray) -> FloatArray:
    g = rng.gamma(np.maximum(alpha, 1e-3))
    return np.asarray(g / g.sum(axis=1, keepdims=True))


def build_listeners(params: SimulationParams, rng: np.random.Generator) -> Listeners:
    n = params.users
    region_share = np.array([r.share for r in REGIONS])
    region = rng.choice(len(REGIONS), n, p=region_share / region_share.sum())
    existing = rng.random(n) < params.initial_user_share
    signup_day = np.where(existing, -rng.integers(1, 3 * 365, n), rng.integers(1, max(params.days, 2), n))
    activity = np.clip(rng.lognormal(np.log(params.daily_activity_median), params.daily_activity_sigma, n), 0.02, 0.95)

    base = np.array([g.share for g in GENRES])
    tilt = np.array([[r.genre_tilt.get(g.name, 1.0) for g in GENRES] for r in REGIONS])
    prior = base * tilt[region]
    prior /= prior.sum(axis=1, keepdims=True)
    genre_taste = _dirichlet_rows(rng, params.taste_concentration * len(GENRES) * prior)
    style_raw = rng.gamma(params.style_concentration, size=(n, len(STYLES)))
    mood_taste = _dirichlet_rows(rng, np.full((n, len(MOODS)), params.mood_concentration))

    style_best = np.zeros_like(style_raw)
    for g in range(len(GENRES)):
        cols = g == STYLE_GENRE
        style_best[:, cols] = style_raw[:, cols].max(axis=1, keepdims=True)
    width = len(str(n))
    return Listeners(
        user_ids=[f"u{i:0{max(width, 6)}d}" for i in range(n)],
        region=region.astype(np.int64),
        signup_day=signup_day.astype(np.int64),
        activity=activity,
        genre_norm=genre_taste / genre_taste.max(axis=1, keepdims=True),
        style_norm=style_raw / style_best,
        mood_norm=mood_taste / mood_taste.max(axis=1, keepdims=True),
        genre_cdf=np.cumsum(genre_taste, axis=1),
    )


def true_affinity(
    listeners: Listeners | GroundTruth,
    track_genre: IntArray,
    track_style: IntArray,
    track_mood: IntArray,
    quality: FloatArray,
    weights: AffinityWeights,
    users: IntArray,
    tracks: IntArray,
) -> FloatArray:
    """z(u, i) for aligned (or broadcastable) arrays of listener and track indices."""
    return np.asarray(
        weights.genre * listeners.genre_norm[users, track_genre[tracks]]
        + weights.style * listeners.style_norm[users, track_style[tracks]]
        + weights.mood * listeners.mood_norm[users, track_mood[tracks]]
        + weights.quality * quality[tracks]
    )


@dataclass
class GroundTruth:
    """What the simulator knows and a model must learn; loaded by evaluation for the oracle."""

    user_ids: npt.NDArray[np.str_]
    track_ids: npt.NDArray[np.str_]
    genre_norm: FloatArray
    style_norm: FloatArray
    mood_norm: FloatArray
    track_genre: IntArray
    track_style: IntArray
    track_mood: IntArray
    quality: FloatArray
    weights: AffinityWeights

    def affinity(self, user_index: int) -> FloatArray:
        """The true affinity of one listener for every track (aligned with ``track_ids``)."""
        tracks = np.arange(self.track_ids.size)
        users = np.full(tracks.size, user_index)
        return true_affinity(
            self, self.track_genre, self.track_style, self.track_mood, self.quality, self.weights, users, tracks
        )


def save_ground_truth(path: Path, listeners: Listeners, catalog: Catalog, params: SimulationParams,
                      oracle: tuple[IntArray, FloatArray]) -> None:  # fmt: skip
    """``oracle``: each listener's likeliest tracks (indices into ``track_ids``), best first, and their scores."""
    w = params.affinity
    np.savez_compressed(
        path,
        user_ids=np.array(listeners.user_ids),
        track_ids=np.array(catalog.track_ids),
        genre_norm=listeners.genre_norm.astype(np.float32),
        style_norm=listeners.style_norm.astype(np.float32),
        mood_norm=listeners.mood_norm.astype(np.float32),
        track_genre=catalog.track_genre,
        track_style=catalog.track_style,
        track_mood=catalog.track_mood,
        quality=catalog.quality.astype(np.float32),
        weights=np.array([w.genre, w.style, w.mood, w.quality]),
        oracle_tracks=oracle[0].astype(np.int32),
        oracle_scores=oracle[1].astype(np.float32),
    )


def load_ground_truth(path: Path) -> GroundTruth:
    with np.load(path) as z:
        wg, ws, wm, wq = z["weights"].tolist()
        return GroundTruth(
            user_ids=z["user_ids"],
            track_ids=z["track_ids"],
            genre_norm=z["genre_norm"].astype(np.float64),
            style_norm=z["style_norm"].astype(np.float64),
            mood_norm=z["mood_norm"].astype(np.float64),
            track_genre=z["track_genre"],
            track_style=z["track_style"],
            track_mood=z["track_mood"],
            quality=z["quality"].astype(np.float64),
            weights=AffinityWeights(genre=wg, style=ws, mood=wm, quality=wq),
        )
