"""The recommendation math the Lambdas and jobs run, as pure functions (no I/O, no AWS): the implicit rating,
the short-term vector, the page's composition. The model's own math (blends, normalisation, exact top-K) lives
once, in ``sagemaker/hybrid.py``, which travels in the artifact.

Vectors are 1-D float arrays. ``None`` stands for "not known" (a new listener has no long-term vector, a
listener without a qualifying play in the session has no short-term vector) and degrades as documented.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
