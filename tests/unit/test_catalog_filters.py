"""Catalog filters inside the model's exact top-K: a request's filter checked and turned into a mask over the
catalog, each key alone and combined, against a mask computed here from the catalog's own columns; through the
endpoint's handlers, every answer holds only allowed tracks and is short only when fewer are allowed."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sagemaker"))
import filters
import inference
from filters import CatalogFacts
from hybrid import HybridModel

pytestmark = pytest.mark.unit

N = 120
TODAY = dt.date.today()
GENRES = ["rock", "pop", "jazz", "hip-hop"]


def catalog() -> dict[str, list[Any]]:
    rng = np.random.default_rng(3)
    released = [None if i % 17 == 0 else (TODAY - dt.timedelta(days=int(d))).isoformat()
                for i, d in enumerate(rng.integers(0, 2000, N))]  # fmt: skip
    return {
        "genres": [[GENRES[i % 4]] + ([GENRES[(i + 1) % 4].upper()] if i % 3 == 0 else []) for i in range(N)],
        "explicit": [i % 5 == 0 for i in range(N)],
        "release_date": released,
        "artist_id": [f"a{i % 12}" for i in range(N)],
    }


@pytest.fixture
def model(tmp_path: Path) -> HybridModel:
    c = catalog()
    rng = np.random.default_rng(4)
    content = rng.normal(size=(N, 6))
    artists = np.array(c["artist_id"])
    HybridModel(
        version="v-filters",
        track_ids=np.array([f"t{i}" for i in range(N)]),
        artist_ids=artists,
        item_cf=rng.normal(size=(N, 8)),
        content=content / np.linalg.norm(content, axis=1, keepdims=True),
        popularity=rng.permutation(N).astype(float),
        warm=np.ones(N, dtype=bool),
        facts=CatalogFacts.of(c["explicit"], c["release_date"], c["genres"], artists),
    ).save(tmp_path / "model")
    return inference.model_fn(str(tmp_path / "model"))


def expected(spec: dict[str, Any]) -> set[int]:
    """The allowed tracks, by reading the catalog's columns one track at a time."""
    c, out = catalog(), set()
    for i in range(N):
        genres = {g.lower() for g in c["genres"][i]}
        day = dt.date.fromisoformat(c["release_date"][i]) if c["release_date"][i] else None
        ok = (("genres_in" not in spec or genres & set(spec["genres_in"]))
              and ("genres_not_in" not in spec or not genres & set(spec["genres_not_in"]))
              and (spec.get("explicit", True) or not c["explicit"][i])
              and ("released_within_days" not in spec
                   or (day is not None and day >= TODAY - dt.timedelta(days=spec["released_within_days"])))
              and ("released_before" not in spec
                   or (day is not None and day < dt.date.fromisoformat(spec["released_before"])))
              and c["artist_id"][i] not in spec.get("exclude_artists", []))  # fmt: skip
        if ok:
            out.add(i)
    return out


SPECS = [
    {"genres_in": ["rock"]},
    {"genres_in": ["Jazz", "hip-hop"]},  # names match whatever their case
    {"genres_not_in": ["pop"]},
    {"explicit": False},
    {"released_within_days": 365},
    {"released_before": (TODAY - dt.timedelta(days=1000)).isoformat()},
    {"exclude_artists": ["a1", "a2"]},
    {"genres_in": ["rock", "pop"], "explicit": False, "released_within_days": 900, "exclude_artists": ["a0"]},
    {"genres_in": ["polka"]},  # a genre the catalog does not have: nothing passes
]


@pytest.mark.parametrize("spec", SPECS)
def test_the_mask_is_the_catalogs_own_answer(model: HybridModel, spec: dict[str, Any]) -> None:
    assert model.facts is not None
    mask = model.facts.mask(filters.check(spec), TODAY)
    assert mask is not None and set(np.flatnonzero(mask).tolist()) == expected(
        {k: [x.lower() for x in v] if k.startswith("genres") else v for k, v in spec.items()}
    )


@pytest.mark.parametrize("surface", ["home", "next", "similar"])
@pytest.mark.parametrize("spec", SPECS[:8])
def test_every_answer_holds_only_allowed_tracks_and_is_full_when_enough_are(
    model: HybridModel, surface: str, spec: dict[str, Any]
) -> None:
    allowed = expected({k: [x.lower() for x in v] if k.startswith("genres") else v for k, v in spec.items()})
    body: dict[str, Any] = {"surface": surface, "k": 10, "filter": spec, "user_vector": [0.1] * 8}
    if surface != "home":
        body["seed_track_id"] = "t7"
    answer = inference.predict_fn(inference.input_fn(json.dumps(body)), model)
    got = [int(i["track_id"][1:]) for i in answer["items"]]
    assert set(got) <= allowed, spec
    assert len(got) == min(10, len(allowed - {7} if surface != "home" else allowed)), (spec, got)


def test_a_filter_that_leaves_fewer_tracks_than_asked_returns_them_all(model: HybridModel) -> None:
    spec = {"genres_in": ["rock"], "explicit": False, "exclude_artists": [f"a{i}" for i in range(1, 12)]}
    allowed = expected({**spec})
    assert 0 < len(allowed) < 10
    body = {"surface": "home", "k": 10, "filter": spec, "user_vector": [0.1] * 8}
    got = {int(i["track_id"][1:]) for i in inference.predict_fn(inference.input_fn(json.dumps(body)), model)["items"]}
    assert got == allowed


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ([], "filter must be a JSON object"),
        ({"genre": ["rock"]}, "unknown filter keys: genre"),
        ({"genres_in": "rock"}, "filter.genres_in must be a list of genres"),
        ({"explicit": "no"}, "filter.explicit must be true or false"),
        ({"released_within_days": -1}, "filter.released_within_days must be a whole number"),
        ({"released_before": "last year"}, "filter.released_before must be a date, YYYY-MM-DD"),
        ({"exclude_artists": ["a"] * 101}, "at most 100"),
    ],
)
def test_a_bad_filter_says_what_to_change(model: HybridModel, spec: Any, fragment: str) -> None:
    body = {"surface": "home", "k": 5, "filter": spec, "user_vector": [0.1] * 8}
    with pytest.raises(inference.RequestError, match=fragment):
        inference.input_fn(json.dumps(body))


def test_catalog_facts_survive_the_artifact_and_unknown_dates_pass_no_date_filter(model: HybridModel) -> None:
    assert model.facts is not None
    unknown = np.isnan(model.facts.released_day)
    assert unknown.sum() == len([d for d in catalog()["release_date"] if d is None]) > 0
    mask = model.facts.mask({"released_within_days": 100_000}, TODAY)
    assert mask is not None and not mask[unknown].any() and mask[~unknown].all()
    assert model.facts.mask({}, TODAY) is None
