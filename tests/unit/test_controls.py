"""What an app asks of a page: filters resolved from names and query parameters, promotions given their places,
and the serving Lambda's own filter check held to the model's mask."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from encore.config import EncoreConfig
from encore.controls import NO_CONTROLS, ControlsQuery, resolve
from encore.errors import BadRequest
from encore.models import CatalogFilter, TrackInfo
from encore.scoring import compose_page

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sagemaker"))
from filters import CatalogFacts

pytestmark = pytest.mark.unit

TODAY = dt.date(2026, 12, 4)
CONFIG = EncoreConfig.for_stage(
    "dev", {"serving": {"promotions": {"summer": {"filter": {"genres_in": ["pop"]}, "share": 0.2}}}}
)


def catalog(n: int = 200) -> list[dict[str, Any]]:
    rng = np.random.default_rng(8)
    genres = ["rock", "Pop", "jazz", "hip-hop"]
    return [
        {
            "genres": [genres[i % 4]] + ([genres[(i + 1) % 4]] if i % 3 == 0 else []),
            "explicit": i % 5 == 0,
            "release_date": None
            if i % 13 == 0
            else (TODAY - dt.timedelta(days=int(rng.integers(-5, 900)))).isoformat(),
            "artist_id": f"a{i % 9}",
        }
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "spec",
    [
        {"genres_in": ["pop", "JAZZ"]},
        {"genres_not_in": ["rock"]},
        {"explicit": False},
        {"explicit": True},
        {"released_within_days": 30},
        {"released_before": "2025-06-01"},
        {"exclude_artists": ["a1", "a2"]},
        {"genres_in": ["hip-hop"], "explicit": False, "released_within_days": 400, "exclude_artists": ["a3"]},
    ],
)
def test_the_lambdas_check_is_the_models_mask(spec: dict[str, Any]) -> None:
    """Where the model cannot apply a filter (the trending fallback) the Lambda checks catalog entries itself:
    both must allow exactly the same tracks."""
    tracks = catalog()
    facts = CatalogFacts.of([t["explicit"] for t in tracks], [t["release_date"] for t in tracks],
                            [t["genres"] for t in tracks], np.array([t["artist_id"] for t in tracks]))  # fmt: skip
    the_filter = CatalogFilter.model_validate(spec)
    mask = facts.mask(__import__("filters").check(the_filter.spec()), TODAY)
    assert mask is not None
    assert [the_filter.allows(TrackInfo(track_id="t", **t), TODAY) for t in tracks] == mask.tolist()
    assert int(mask.sum()) > 0


def query(**params: Any) -> ControlsQuery:
    return ControlsQuery.model_validate(params)


def test_a_named_filter_and_the_requests_own_keys_apply_together() -> None:
    controls = resolve(CONFIG, query(filter="clean", genres="rock, jazz", exclude_tracks="t1,t2,t1"))
    assert controls.filter is not None
    assert controls.filter.spec() == {"explicit": False, "genres_in": ["rock", "jazz"]}
    assert controls.exclude_tracks == ("t1", "t2")
    applied = controls.applied()
    assert applied is not None and applied.name == "clean" and applied.exclude_tracks == ["t1", "t2"]
    assert resolve(CONFIG, query()) == NO_CONTROLS and NO_CONTROLS.applied() is None


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"filter": "nope"}, "filter 'nope' is not a named filter of this stage (clean, new_releases)"),
        ({"filter": "clean", "explicit": True}, "filter 'clean' and the request both set explicit"),
        ({"genres": " , "}, "genres names nothing"),
        ({"exclude_artists": ",".join(f"a{i}" for i in range(101))}, "at most 100"),
        ({"exclude_artists": "a b"}, "exclude_artists"),
        ({"exclude_tracks": "t1,\x07x"}, "is not a track id"),
        ({"promotion": "winter"}, "promotion 'winter' is not a named promotion of this stage (summer)"),
    ],
)
def test_what_cannot_be_honoured_is_a_400_naming_it(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        resolve(CONFIG, query(**params))


def test_a_promotion_is_refused_where_the_tracks_are_given() -> None:
    assert resolve(CONFIG, query(promotion="summer")).promotion is not None
    with pytest.raises(BadRequest, match="orders the tracks it is given"):
        resolve(CONFIG, query(promotion="summer"), promotions=False)


def test_the_cache_key_changes_with_every_control() -> None:
    keys = {
        resolve(CONFIG, query(**params)).key
        for params in (
            {},
            {"filter": "clean"},
            {"explicit": False, "genres": "rock"},
            {"exclude_tracks": "t1"},
            {"promotion": "summer"},
            {"genres": "rock"},
        )
    }
    assert len(keys) == 6
    assert resolve(CONFIG, query(genres="rock")).key == resolve(CONFIG, query(genres="rock")).key


def test_promoted_places_are_the_share_spread_over_the_page() -> None:
    personal = [f"p{i}" for i in range(40)]
    promoted = [f"x{i}" for i in range(40)]
    page = compose_page(personal, promoted, {}, 3, 10, 2)
    assert [i for i, (_, is_promoted) in enumerate(page) if is_promoted] == [2, 7]
    assert [t for t, _ in page] == ["p0", "p1", "x0", "p2", "p3", "p4", "p5", "x1", "p6", "p7"]
    assert sum(p for _, p in compose_page(personal, promoted, {}, 3, 20, 4)) == 4


def test_the_artist_cap_holds_over_the_whole_page_and_no_track_comes_twice() -> None:
    artist = {f"p{i}": "A" for i in range(5)} | {"x0": "A", "x1": "B", "p5": "C", "p6": "D"}
    # places 1 and 4 are promoted; A's two are p0 and x0, so p1..p4 are passed over
    page = compose_page([f"p{i}" for i in range(7)], ["x0", "p0", "x1"], artist, 2, 6, 2)
    assert page == [("p0", False), ("x0", True), ("p5", False), ("p6", False), ("x1", True)]
    # p0 is on the page already: the promotion's next track takes the place


def test_a_promotion_short_of_tracks_leaves_its_places_to_the_page() -> None:
    page = compose_page([f"p{i}" for i in range(10)], ["x0"], {}, 3, 10, 3)
    assert len(page) == 10 and [t for t, p in page if p] == ["x0"]
    assert len(compose_page(["p0", "p1"], [f"x{i}" for i in range(9)], {}, 3, 10, 2)) == 3  # ends short
