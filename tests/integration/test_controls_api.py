"""What a music team configures, through the twin's API over a model the pipeline trained: filters (each alone,
combined, named, one that leaves fewer tracks than asked), promotions (their share, the reasons), ranking a
supplied list, and the trending fallback held to the same filter. Each answer is checked against the catalog as
the tracks table holds it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from types import ModuleType
from typing import Any

import pytest

from encore.models import CatalogFilter, Promotion
from encore_local.apigw import call, home, load_handler

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMOTION = {"filter": {"explicit": False, "released_within_days": 1500}, "share": 0.2}


@pytest.fixture(scope="module")
def served(served_lake: dict[str, Any]) -> dict[str, Any]:
    config = served_lake["config"]
    promoting = config.model_copy(
        update={
            "serving": config.serving.model_copy(update={"promotions": {"autumn": Promotion.model_validate(PROMOTION)}})
        }
    )
    return {**served_lake, "api": load_handler("api", promoting), "user": served_lake["listener"]}


def passes(served: dict[str, Any], spec: dict[str, Any], track_id: str) -> bool:
    return CatalogFilter.model_validate(spec).allows(served["catalog"][track_id], dt.datetime.now(dt.UTC).date())


def ids(body: dict[str, Any]) -> list[str]:
    return [i["track_id"] for i in body["items"]]


def a_genre(served: dict[str, Any]) -> str:
    counts = Counter(g for t in served["catalog"].values() for g in t.genres)
    return counts.most_common(3)[-1][0]


def a_handful_of_days(served: dict[str, Any], tracks: int) -> int:
    """A released_within_days that allows about ``tracks`` tracks."""
    today = dt.datetime.now(dt.UTC).date()
    ages = sorted((today - dt.date.fromisoformat(t.release_date[:10])).days for t in served["catalog"].values()
                  if t.release_date)  # fmt: skip
    return ages[tracks - 1]


def spec_of(served: dict[str, Any], name: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Query parameters of one kind of filter, and the filter they mean."""
    genre = a_genre(served)
    artists = sorted({t.artist_id for t in served["catalog"].values() if t.artist_id})[:5]
    cases: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
        "genres": ({"genres": genre}, {"genres_in": [genre]}),
        "exclude_genres": ({"exclude_genres": genre}, {"genres_not_in": [genre]}),
        "explicit": ({"explicit": "false"}, {"explicit": False}),
        "released_within_days": ({"released_within_days": "700"}, {"released_within_days": 700}),
        "released_before": ({"released_before": "2024-01-01"}, {"released_before": "2024-01-01"}),
        "exclude_artists": ({"exclude_artists": ",".join(artists)}, {"exclude_artists": artists}),
        "combined": (
            {"exclude_genres": genre, "explicit": "false", "released_within_days": "1500"},
            {"genres_not_in": [genre], "explicit": False, "released_within_days": 1500},
        ),
        "named": ({"filter": "clean"}, {"explicit": False}),
    }
    return cases[name]


@pytest.mark.parametrize(
    "kind",
    [
        "genres",
        "exclude_genres",
        "explicit",
        "released_within_days",
        "released_before",
        "exclude_artists",
        "combined",
        "named",
    ],
)
def test_every_filter_holds_on_every_surface_and_the_answer_says_which(served: dict[str, Any], kind: str) -> None:
    api, user = served["api"], served["user"]
    params, spec = spec_of(served, kind)
    allowed = sum(passes(served, spec, t) for t in served["catalog"])
    assert 20 < allowed < len(served["catalog"])  # a filter that selects
    seed = next(t for t in served["catalog"] if passes(served, spec, t))
    answers = {
        "home": home(api, user, {**params, "limit": "20"}),
        "next": call(
            api,
            "GET",
            f"/v1/users/{user}/next",
            {**params, "track_id": seed, "limit": "10"},
        ),
        "similar": call(
            api,
            "GET",
            f"/v1/tracks/{seed}/similar",
            {**params, "limit": "10"},
        ),
    }
    for surface, (status, body) in answers.items():
        assert status == 200 and body["fallback"] is False, (surface, body)
        assert body["filter"]["spec"] == spec and body["filter"]["name"] == params.get("filter"), surface
        assert len(body["items"]) == (20 if surface == "home" else 10), surface
        assert all(passes(served, spec, t) for t in ids(body)), surface


def test_a_filter_that_leaves_fewer_tracks_than_asked_returns_every_one(served: dict[str, Any]) -> None:
    api, user = served["api"], served["user"]
    days = a_handful_of_days(served, 12)
    spec = {"released_within_days": days}
    allowed = {t for t in served["catalog"] if passes(served, spec, t)}
    status, body = home(api, user, {"released_within_days": str(days), "limit": "50", "exclude_played": "false",
                                    "max_per_artist": "50"})  # fmt: skip
    assert status == 200 and body["fallback"] is False
    assert set(ids(body)) == allowed and len(allowed) < 50  # short only because the filter allows no more


def test_tracks_to_exclude_are_left_out_and_change_the_cached_answer(served: dict[str, Any]) -> None:
    api, user = served["api"], served["user"]
    _, first = home(api, user, {"limit": "10"})
    leave_out = ids(first)[:3]
    status, second = home(api, user, {"limit": "10", "exclude_tracks": ",".join(leave_out)})
    assert status == 200 and not set(leave_out) & set(ids(second)) and len(second["items"]) == 10
    assert second["filter"]["exclude_tracks"] == leave_out


def test_a_promotion_takes_its_share_and_each_item_says_why(served: dict[str, Any]) -> None:
    api, user = served["api"], served["user"]
    status, body = home(api, user, {"promotion": "autumn", "limit": "10"})
    assert status == 200 and body["promotion"] == "autumn"
    reasons = [i["reason"] for i in body["items"]]
    assert reasons.count("promoted") == 2 and [r == "promoted" for r in reasons].index(True) == 2
    promoted = [i["track_id"] for i in body["items"] if i["reason"] == "promoted"]
    assert all(passes(served, PROMOTION["filter"], t) for t in promoted)
    assert set(reasons) <= {"personalised", "promoted", "exploration"}
    _, plain = home(api, user, {"limit": "10"})
    assert "promoted" not in {i["reason"] for i in plain["items"]} and plain["promotion"] is None
    # with a filter too, the promoted tracks hold to both
    _, both = home(api, user, {"promotion": "autumn", "limit": "20", "filter": "clean"})
    assert [i["reason"] for i in both["items"]].count("promoted") == 4
    assert all(passes(served, {"explicit": False}, t) for t in ids(both))


def rank(api: ModuleType, user: str, track_ids: list[str], query: dict[str, str] | None = None) -> tuple[int, Any]:
    return call(api, "POST", f"/v1/users/{user}/rank", query, body={"track_ids": track_ids})  # fmt: skip


def test_a_supplied_list_comes_back_as_a_permutation_with_the_unknown_named(served: dict[str, Any]) -> None:
    api, user = served["api"], served["user"]
    given = sorted(served["catalog"])[:40]
    status, body = rank(api, user, [*given, "no-such-track"])
    assert status == 200 and body["fallback"] is False and body["surface"] == "rank"
    assert sorted(ids(body)) == given and body["unknown"] == ["no-such-track"] and body["filtered"] == []
    assert ids(body) != given  # ordered for the listener, not as sent
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    status, clean = rank(api, user, given, {"filter": "clean", "exclude_tracks": given[0]})
    kept = [t for t in given if t != given[0] and passes(served, {"explicit": False}, t)]
    assert status == 200 and sorted(ids(clean)) == kept
    assert sorted(clean["filtered"]) == sorted(set(given) - set(kept))
    # a listener nobody knows: the tracks by popularity
    status, anon = rank(api, "nobody-at-all", given[:10])
    assert status == 200 and sorted(ids(anon)) == given[:10] and {i["reason"] for i in anon["items"]} == {"popular"}


@pytest.mark.parametrize(
    ("body", "query", "fragment"),
    [
        ({"track_ids": []}, None, "track_ids"),
        ({"track_ids": ["t1"] * 2}, None, "each track must be listed once"),
        ({"track_ids": [f"t{i}" for i in range(501)]}, None, "track_ids"),
        ({"track_ids": ["t1"]}, {"promotion": "autumn"}, "orders the tracks it is given"),
    ],
)
def test_a_bad_rank_request_is_a_400_that_says_why(
    served: dict[str, Any], body: dict[str, Any], query: dict[str, str] | None, fragment: str
) -> None:
    status, answer = call(served["api"], "POST", f"/v1/users/{served['user']}/rank", query, body=body)  # fmt: skip
    assert status == 400 and fragment in str(answer), answer


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"filter": "nope"}, "filter 'nope' is not a named filter"),
        ({"promotion": "nope"}, "promotion 'nope' is not a named promotion"),
        ({"filter": "clean", "explicit": "true"}, "both set explicit"),
        ({"released_within_days": "-1"}, "released_within_days"),
        ({"released_before": "yesterday"}, "released_before"),
        ({"explicit": "perhaps"}, "explicit"),
    ],
)
def test_a_control_that_cannot_be_honoured_is_a_400_naming_it(
    served: dict[str, Any], query: dict[str, str], fragment: str
) -> None:
    status, body = home(served["api"], served["user"], query)
    assert status == 400 and fragment in str(body), body


def test_the_trending_fallback_holds_to_the_filter(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    api, user = served["api"], served["user"]
    monkeypatch.setattr(api.deps.model, "endpoint", "no-such-endpoint")
    params, spec = spec_of(served, "combined")
    status, body = home(api, user, {**params, "limit": "10", "promotion": "autumn"})
    assert status == 200 and body["fallback"] is True and body["items"]
    assert body["filter"]["spec"] == spec and {i["reason"] for i in body["items"]} == {"trending"}
    assert all(passes(served, spec, t) for t in ids(body))
    status, ranked = rank(api, user, sorted(served["catalog"])[:20], {"explicit": "false"})
    assert status == 200 and ranked["fallback"] is True and {i["reason"] for i in ranked["items"]} == {"supplied"}
    assert ids(ranked) == [t for t in sorted(served["catalog"])[:20] if passes(served, {"explicit": False}, t)]
