"""Every way the read path degrades, with dict-backed stores: each cause is named in the outcome, the answer is
still a 200's body (a fallback where the model's ranking cannot be had), and nothing raises."""

from __future__ import annotations

import numpy as np
import pytest

from encore.catalog import Catalog
from encore.charts import GLOBAL
from encore.config import EncoreConfig
from encore.controls import ControlsQuery
from encore.errors import NotFound
from encore.models import (
    ChartRow,
    InferenceItem,
    InferenceRequest,
    InferenceResponse,
    StoredProfile,
    Surface,
    TrackInfo,
)
from encore.recommend import Options, ServingDeps, rank, recommend
from encore_local.memory_stores import Cache, Charts, Endpoint, OnlineTests, Profiles, Tracks

pytestmark = pytest.mark.unit
NOW = 1_790_000_000_000
TRACKS = {
    f"t{i}": TrackInfo(track_id=f"t{i}", name=f"Song {i}", artist_id=f"a{i % 7}", genres=["rock" if i % 2 else "jazz"])
    for i in range(40)
}
LISTENER = StoredProfile("u1", region="GB", recently_played=("t0", "t1"), long_term_vector=np.ones(4),
                         history=("t2",), model_version="v1")  # fmt: skip


def ranking(request: InferenceRequest) -> InferenceResponse:
    """The model's answer: every track it may recommend, in id order."""
    allowed = [t for t in TRACKS if t not in set(request.exclude)]
    items = [
        InferenceItem(track_id=t, score=1.0 - i / 100, artist_id=TRACKS[t].artist_id) for i, t in enumerate(allowed)
    ]
    return InferenceResponse(items=items[: request.k], model_version="v1")


def serving(**down: bool) -> ServingDeps:
    """Given: a listener with a profile and a session, a catalog, a trending chart, a model that answers."""
    tracks, cache = Tracks(dict(TRACKS), down=down.get("tracks", False)), Cache(down=down.get("cache", False))
    cache.sessions["u1"] = np.ones(4)
    trending = [ChartRow(i + 1, f"t{39 - i}", 100 - i, "2026-12-01") for i in range(30)]
    return ServingDeps(
        config=EncoreConfig.for_stage("local"),
        profiles=Profiles({"u1": LISTENER}, down=down.get("profiles", False)),
        catalog=Catalog(tracks, cache),
        charts=Charts({("trending", GLOBAL, "7d", "latest"): trending}, down=down.get("charts", False)),
        cache=cache,
        model=Endpoint(ranking),
        now_ms=lambda: NOW,
        tests=OnlineTests(readable=not down.get("serving_record", False)),
    )


def opts(limit: int = 10, **query: str) -> Options:
    return Options.of(EncoreConfig.for_stage("local"), ControlsQuery.model_validate(query), limit, True, None)


def test_with_everything_up_the_model_answers_and_a_repeat_is_a_cache_hit() -> None:
    deps = serving()
    first, outcome = recommend(deps, Surface.HOME, "u1", None, opts())
    assert not first.fallback and outcome.degraded == [] and len(first.items) == 10
    assert {"t0", "t1", "t2"}.isdisjoint(i.track_id for i in first.items)  # played is played
    again, outcome = recommend(deps, Surface.HOME, "u1", None, opts())
    assert outcome.cache_hit and [i.track_id for i in again.items] == [i.track_id for i in first.items]


def test_a_cache_that_is_down_is_skipped() -> None:
    response, outcome = recommend(serving(cache=True), Surface.HOME, "u1", None, opts())
    # without the session vector the listener's long-term vector still reaches the model
    assert not response.fallback and len(response.items) == 10 and set(outcome.degraded) == {"cache_unavailable"}


def test_an_unreadable_serving_record_serves_on() -> None:
    response, outcome = recommend(serving(serving_record=True), Surface.HOME, "u1", None, opts())
    assert not response.fallback and outcome.degraded == ["serving_record_unavailable"]


def test_profiles_down_home_with_a_session_still_asks_the_model() -> None:
    deps = serving(profiles=True)
    response, outcome = recommend(deps, Surface.HOME, "u1", None, opts())
    assert not response.fallback and outcome.degraded == ["profiles_unavailable"]


def test_profiles_down_and_no_session_falls_back_to_trending_saying_why() -> None:
    deps = serving(profiles=True)
    deps.cache.sessions.clear()  # type: ignore[attr-defined]
    response, _ = recommend(deps, Surface.HOME, "u1", None, opts())
    assert response.fallback and response.fallback_reason == "profiles_unavailable"
    assert [i.track_id for i in response.items][:2] == ["t39", "t38"] and response.items[0].reason == "trending"


def test_an_unknown_listener_gets_the_worlds_trending() -> None:
    response, outcome = recommend(serving(), Surface.HOME, "stranger", None, opts())
    assert response.fallback and response.fallback_reason == "unknown_user" and outcome.degraded == ["unknown_user"]
    assert len(response.items) == 10


@pytest.mark.parametrize("cause", ["endpoint_timeout", "endpoint_error", "rejected"])
def test_a_model_that_fails_gives_trending_with_its_cause(cause: str) -> None:
    deps = serving()
    deps.model.failure = cause  # type: ignore[attr-defined]
    response, outcome = recommend(deps, Surface.HOME, "u1", None, opts())
    named = "model_rejected" if cause == "rejected" else cause
    assert response.fallback and response.fallback_reason == named and outcome.degraded == [named]
    assert len(response.items) == 10 and {"t0", "t1", "t2"}.isdisjoint(i.track_id for i in response.items)


def test_tracks_down_the_seed_is_left_to_the_model_then_the_page_falls_back() -> None:
    response, outcome = recommend(serving(tracks=True), Surface.NEXT, "u1", "t5", opts())
    # the seed cannot be checked (the model decides); the page's metadata cannot be read: trending, which the
    # model named the artists of nowhere, so it has no tracks either
    assert response.fallback and response.fallback_reason == "tracks_unavailable"
    assert outcome.degraded[0] == "tracks_unavailable" and response.items == []


def test_charts_down_a_fallback_is_empty_and_says_so() -> None:
    deps = serving(charts=True)
    deps.model.failure = "endpoint_timeout"  # type: ignore[attr-defined]
    response, outcome = recommend(deps, Surface.HOME, "u1", None, opts())
    assert response.fallback and response.items == []
    assert outcome.degraded == ["endpoint_timeout", "charts_unavailable"]


def test_a_filtered_fallback_holds_to_the_filter() -> None:
    deps = serving()
    deps.model.failure = "endpoint_error"  # type: ignore[attr-defined]
    response, _ = recommend(deps, Surface.HOME, "u1", None, opts(genres="rock"))
    assert response.items and all("rock" in TRACKS[i.track_id].genres for i in response.items)


def test_an_unknown_seed_is_a_404() -> None:
    with pytest.raises(NotFound):
        recommend(serving(), Surface.SIMILAR, None, "no-such-track", opts())


def test_rank_without_the_model_answers_the_list_as_given() -> None:
    deps = serving()
    deps.model.failure = "endpoint_timeout"  # type: ignore[attr-defined]
    response, outcome = rank(deps, "u1", ["t9", "nope", "t3"], opts().controls)
    assert response.fallback and [i.track_id for i in response.items] == ["t9", "t3"]
    assert response.unknown == ["nope"] and outcome.degraded == ["endpoint_timeout"]


def test_rank_without_the_model_or_the_catalog_cannot_honour_a_filter() -> None:
    deps = serving(tracks=True)
    deps.model.failure = "endpoint_timeout"  # type: ignore[attr-defined]
    response, outcome = rank(deps, "u1", ["t9", "t3"], opts(genres="rock").controls)
    assert response.items == [] and response.filtered == ["t9", "t3"]
    assert outcome.degraded == ["endpoint_timeout", "tracks_unavailable"]


def test_the_catalogs_memory_answers_until_it_expires_and_keeps_the_newest_within_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("encore.catalog.LOCAL_ITEMS", 3)
    now = [0.0]
    tracks, cache = Tracks(dict(TRACKS)), Cache(down=True)  # no shared cache: memory or the table
    catalog = Catalog(tracks, cache, clock=lambda: now[0])
    assert catalog.metadata(["t1", "t2"], []) == {"t1": TRACKS["t1"], "t2": TRACKS["t2"]}
    assert catalog.metadata(["t1"], []) == {"t1": TRACKS["t1"]} and len(tracks.reads) == 1  # from memory
    catalog.metadata(["t3", "t4"], [])  # over the bound: t1, the oldest, goes
    catalog.metadata(["t1", "t4"], [])
    assert tracks.reads[-1] == ["t1"]
    now[0] = 301.0  # past LOCAL_TTL_S
    catalog.metadata(["t4"], [])
    assert tracks.reads[-1] == ["t4"]
