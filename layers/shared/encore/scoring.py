"""The recommendation math of the architecture as pure functions (no I/O, no AWS).

Vectors are 1-D float arrays. ``None`` stands for "not known" (a new listener has no long-term vector, a
listener without a qualifying play in the session has no short-term vector) and degrades as documented.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def cap_per_artist(ranked: Sequence[T], artist_of: Mapping[T, str], max_per_artist: int, k: int) -> list[T]:
    """The first ``k`` of ``ranked`` taking at most ``max_per_artist`` tracks of any one artist.

    A track whose artist is unknown counts as its own artist. Order is kept.
    """
    return [t for t, _ in compose_page(ranked, (), artist_of, max_per_artist, k, 0)]


def compose_page(personal: Sequence[T], promoted: Sequence[T], artist_of: Mapping[T, str], max_per_artist: int,
                 k: int, promoted_places: int) -> list[tuple[T, bool]]:  # fmt: skip
    """A page of at most ``k``: ``promoted_places`` of its places, spread evenly from a little way in (places 3
    and 8 of ten for two), go to ``promoted`` in its order, the others to ``personal`` in its; whether each is
    promoted. No track twice, at most ``max_per_artist`` of one artist over the whole page (a track whose
    artist is unknown is its own artist). A promoted place the promotion cannot fill goes to ``personal``; when
    ``personal`` runs out the page ends short rather than give the promotion more than its places.
    """
    if max_per_artist < 1:
        raise ValueError("max_per_artist must be at least 1")
    places = {int((j + 0.5) * k / promoted_places) for j in range(promoted_places)} if promoted_places else set()
    counts: dict[str, int] = {}
    used: set[T] = set()
    streams = {False: iter(personal), True: iter(promoted)}

    def take(is_promoted: bool) -> T | None:
        for item in streams[is_promoted]:
            artist = artist_of.get(item, f"\x00{item}")
            if item not in used and counts.get(artist, 0) < max_per_artist:
                counts[artist] = counts.get(artist, 0) + 1
                used.add(item)
                return item
        return None

    page: list[tuple[T, bool]] = []
    while len(page) < k:
        wanted = len(page) in places
        item = take(wanted)
        if item is None and wanted:
            wanted, item = False, take(False)
        if item is None:
            break
        page.append((item, wanted))
    return page


def top_k_indices(scores: npt.ArrayLike, k: int) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` highest scores, best first (exact; ties by lower index)."""
    x = np.asarray(scores, dtype=np.float64)
    k = min(max(k, 0), x.size)
    if k == 0:
        return np.empty(0, dtype=np.intp)
    part = np.argpartition(-x, k - 1)[:k] if k < x.size else np.arange(x.size)
    order: npt.NDArray[np.intp] = part[np.lexsort((part, -x[part]))]
    return order
