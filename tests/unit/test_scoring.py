"""The Lambda-side recommendation math: worked examples from the architecture, and invariants checked by
hypothesis. (The model's own math, ``sagemaker/hybrid.py``, is tested in test_model.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from encore.config import RatingWeights, RecommendationWeights, SessionSettings
from encore.scoring import MS_PER_DAY, cap_per_artist, ema_update, event_rating, is_qualifying_play

pytestmark = pytest.mark.unit
W = RecommendationWeights()
R = RatingWeights()
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
vectors = arrays(np.float64, st.integers(1, 16), elements=finite)


def test_event_rating_worked_example() -> None:
    got = event_rating(
        ["complete", "skip", "listen", "skip", "complete"],
        [180_000, 5_000, 60_000, 45_000, 180_000],
        [0, 0, 0, 0, 30 * MS_PER_DAY],
        R,
    )
    assert got[0] == pytest.approx(1.0 + 0.5 * math.log1p(180))
    assert got[1] == pytest.approx(-1.0 + 0.5 * math.log1p(5))
    assert got[2] == pytest.approx(0.5 * math.log1p(60))
    assert got[3] == pytest.approx(0.5 * math.log1p(45))  # a late skip is not an early skip
    assert got[4] == pytest.approx(got[0] / 2)  # one half-life old


def test_event_rating_ignores_events_outside_the_window() -> None:
    got = event_rating(["complete"] * 3, [1000] * 3, [-1, 91 * MS_PER_DAY, 90 * MS_PER_DAY], R)
    assert got[0] == 0
    assert got[1] == 0
    assert got[2] > 0


@given(
    st.lists(st.sampled_from(["listen", "skip", "complete"]), min_size=1, max_size=20),
    st.integers(0, 10**7),
    st.integers(0, 89 * MS_PER_DAY),
)
def test_older_events_never_weigh_more(actions: list[str], played: int, age: int) -> None:
    newer = event_rating(actions, [played] * len(actions), [age] * len(actions), R)
    older = event_rating(actions, [played] * len(actions), [age + MS_PER_DAY] * len(actions), R)
    assert np.all(np.abs(older) <= np.abs(newer) + 1e-12)


def test_qualifying_play() -> None:
    s = SessionSettings()
    assert is_qualifying_play("complete", 1000, s)
    assert is_qualifying_play("listen", 30_001, s)
    assert not is_qualifying_play("listen", 30_000, s)
    assert not is_qualifying_play("skip", 5_000, s)


def test_ema_worked_example_and_first_play() -> None:
    track = np.array([1.0, 0.0])
    assert np.array_equal(ema_update(None, track, W), track)
    assert np.allclose(ema_update(np.array([0.0, 1.0]), track, W), [0.5, 0.5])


@given(vectors, vectors)
def test_ema_stays_between_its_inputs(a: np.ndarray, b: np.ndarray) -> None:
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    got = ema_update(a, b, W)
    assert np.all(got >= np.minimum(a, b) - 1e-6)
    assert np.all(got <= np.maximum(a, b) + 1e-6)


def test_artist_cap_worked_example() -> None:
    artist = {"a1": "X", "a2": "X", "a3": "X", "b1": "Y", "c1": "Z"}
    assert cap_per_artist(["a1", "a2", "a3", "b1", "c1"], artist, 2, 10) == ["a1", "a2", "b1", "c1"]
    assert cap_per_artist(["a1", "a2", "a3", "b1", "c1"], artist, 1, 2) == ["a1", "b1"]
    assert cap_per_artist(["u1", "u2"], {}, 1, 5) == ["u1", "u2"]  # unknown artists are their own
    with pytest.raises(ValueError, match="at least 1"):
        cap_per_artist(["a1"], artist, 0, 5)


@given(
    st.lists(st.integers(0, 200), unique=True, max_size=60),
    st.integers(0, 5).map(lambda k: k + 1),
    st.integers(0, 80),
)
def test_artist_cap_invariants(ranked: list[int], cap: int, k: int) -> None:
    artist_of = {t: f"artist{t % 7}" for t in ranked}
    got = cap_per_artist(ranked, artist_of, cap, k)
    assert len(got) <= k
    positions = [ranked.index(t) for t in got]
    assert positions == sorted(positions)  # a subsequence: order kept
    counts: dict[str, int] = {}
    for t in got:
        counts[artist_of[t]] = counts.get(artist_of[t], 0) + 1
    assert max(counts.values(), default=0) <= cap
