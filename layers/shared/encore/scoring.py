"""The recommendation math of the architecture as pure functions (no I/O, no AWS).

Vectors are 1-D float arrays. ``None`` stands for "not known" (a new listener has no long-term vector, a
listener without a qualifying play in the session has no short-term vector) and degrades as documented.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from encore.config import RatingWeights, RecommendationWeights, SessionSettings

FloatArray = npt.NDArray[np.float64]
T = TypeVar("T")

MS_PER_DAY = 86_400_000


def event_rating(
    action: npt.ArrayLike,
    played_ms: npt.ArrayLike,
    age_ms: npt.ArrayLike,
    weights: RatingWeights,
) -> FloatArray:
    """Each event's contribution to its (user, track) implicit rating, decayed by its age.

    complete adds ``weights.complete``; a skip before ``early_skip_ms`` subtracts ``weights.early_skip``; every
    event adds ``listened_log * log(1 + seconds played)``. The sum is multiplied by ``0.5 ** (age / half_life)``.
    Events older than the window (or from the future) contribute 0.
    """
    action = np.asarray(action)
    played = np.asarray(played_ms, dtype=np.float64)
    age_days = np.asarray(age_ms, dtype=np.float64) / MS_PER_DAY
    base = weights.listened_log * np.log1p(np.maximum(played, 0.0) / 1000.0)
    base = base + np.where(action == "complete", weights.complete, 0.0)
    early_skip = (action == "skip") & (played < weights.early_skip_ms)
    base = base - np.where(early_skip, weights.early_skip, 0.0)
    decay = np.power(0.5, age_days / weights.half_life_days)
    in_window = (age_days >= 0) & (age_days <= weights.window_days)
    return np.where(in_window, base * decay, 0.0)


def is_qualifying_play(action: str, played_ms: int, session: SessionSettings) -> bool:
    """Whether a play moves the short-term vector: completed, or listened to for longer than the threshold."""
    return action == "complete" or played_ms > session.qualifying_play_ms


def ema_update(v_short: FloatArray | None, v_track: FloatArray, weights: RecommendationWeights) -> FloatArray:
    """``v_short = keep * v_short + (1 - keep) * v_track``; the first qualifying play starts it at ``v_track``."""
    v_track = np.asarray(v_track, dtype=np.float64)
    if v_short is None:
        return v_track.copy()
    return weights.ema_keep * np.asarray(v_short, dtype=np.float64) + (1.0 - weights.ema_keep) * v_track


def minmax_normalise(scores: npt.ArrayLike) -> FloatArray:
    """Scale to [0, 1]; a constant (or empty) array maps to zeros, so it adds nothing to a blend."""
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        return x
    lo, hi = float(np.min(x)), float(np.max(x))
    if not np.isfinite(hi - lo) or hi - lo <= 0.0:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


def hybrid_scores(cf: npt.ArrayLike, content: npt.ArrayLike, weights: RecommendationWeights) -> FloatArray:
    """``cf_w * norm(cf) + content_w * norm(content)``, each normalised over the same candidate union."""
    cf_arr, content_arr = np.asarray(cf, dtype=np.float64), np.asarray(content, dtype=np.float64)
    if cf_arr.shape != content_arr.shape:
        raise ValueError(f"cf and content scores differ in shape: {cf_arr.shape} vs {content_arr.shape}")
    return weights.cf * minmax_normalise(cf_arr) + weights.content * minmax_normalise(content_arr)


def exclude_items(ranked: Iterable[T], excluded: Iterable[T]) -> list[T]:
    """``ranked`` without the excluded ids, order kept."""
    drop = set(excluded)
    return [item for item in ranked if item not in drop]


def cap_per_artist(ranked: Sequence[T], artist_of: dict[T, str], max_per_artist: int, k: int) -> list[T]:
    """The first ``k`` of ``ranked`` taking at most ``max_per_artist`` tracks of any one artist.

    A track whose artist is unknown counts as its own artist. Order is kept.
    """
    if max_per_artist < 1:
        raise ValueError("max_per_artist must be at least 1")
    counts: dict[str, int] = {}
    out: list[T] = []
    for item in ranked:
        if len(out) >= k:
            break
        artist = artist_of.get(item, f"\x00{item}")
        if counts.get(artist, 0) < max_per_artist:
            counts[artist] = counts.get(artist, 0) + 1
            out.append(item)
    return out


def top_k_indices(scores: npt.ArrayLike, k: int) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` highest scores, best first (exact; ties by lower index)."""
    x = np.asarray(scores, dtype=np.float64)
    k = min(max(k, 0), x.size)
    if k == 0:
        return np.empty(0, dtype=np.intp)
    part = np.argpartition(-x, k - 1)[:k] if k < x.size else np.arange(x.size)
    order: npt.NDArray[np.intp] = part[np.lexsort((part, -x[part]))]
    return order
