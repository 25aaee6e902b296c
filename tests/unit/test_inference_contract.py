"""The serving Lambda's request to the endpoint (``encore.models.InferenceRequest``) and the endpoint's own check
(``sagemaker/inference.py`` ``input_fn``) accept and refuse the same requests, and what both accept reaches the
model with the values the Lambda sent."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from encore.config import RecommendationWeights
from encore.models import CatalogFilter, InferenceRequest, InferenceWeights

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sagemaker"))
import inference
from hybrid import DEFAULT_WEIGHTS

pytestmark = pytest.mark.unit

V = [0.1, -0.2, 0.3]
HOME = {"surface": "home", "user_vector": V}
NEXT = {"surface": "next", "seed_track_id": "t1"}
SIMILAR = {"surface": "similar", "seed_track_id": "t1"}
RANK = {"surface": "rank", "candidates": ["t1", "t2"]}
SPEC = CatalogFilter(genres_in=["Rock"], genres_not_in=["Metal"], explicit=False, released_within_days=3650,
                     released_before=dt.date(2024, 1, 1), exclude_artists=["a1"]).spec()  # fmt: skip
PROMOTION = {"filter": {"genres_in": ["jazz"]}, "k": 3}
CONTROLS = {"k": 500, "filter": SPEC, "promotion": PROMOTION, "fresh_share": 0.5}
IDS = [f"t{i}" for i in range(5000)]
WEIGHTS = RecommendationWeights().model_dump()

VALID: dict[str, dict[str, Any]] = {
    "home, long-term vector": HOME,
    "home, session vector alone": {"surface": "home", "short_vector": V},
    "home, both vectors, whole numbers among them": {**HOME, "short_vector": [1, 0, 2]},
    "home, another version's vectors": {**HOME, "vectors_of": "v-champion", "history": ["t1"], "recent": ["t2"]},
    "home, every control": {**HOME, **CONTROLS, "weights": RecommendationWeights().model_dump()},
    "home, the longest lists": {**HOME, "exclude": IDS, "history": IDS[:1000], "recent": IDS[:100]},
    "home, no new releases, k 1": {**HOME, "fresh_share": 0, "k": 1},
    "home, other weights": {
        **HOME,
        "weights": {"cf": 0.3, "content": 0.7, "long_term": 1, "short_term": 0, "ema_keep": 0.9},
    },
    "home, nulls for the optional": {**HOME, "weights": None, "filter": None, "promotion": None, "candidates": None},
    "home, candidates (rank's, unused)": {**HOME, "candidates": ["t1"]},
    "next, no vectors": NEXT,
    "next, vectors and every control": {**NEXT, **CONTROLS, "user_vector": V, "short_vector": V},
    "similar": SIMILAR,
    "similar, filter and exclusions": {**SIMILAR, "filter": {"exclude_artists": ["a1", "a2"]}, "exclude": ["t2"]},
    "rank": RANK,
    "rank, listener and filter": {**RANK, "user_vector": V, "history": ["t3"], "filter": {"explicit": False}},
    "rank, 500 candidates": {"surface": "rank", "candidates": IDS[:500]},
    "ids of every allowed character": {**NEXT, "seed_track_id": "A-z_0.9:x", "exclude": ["x" * 128]},
}

INVALID: dict[str, dict[str, Any]] = {
    "unknown surface": {"surface": "radio"},
    "no surface": {"user_vector": V},
    "surface in capitals": {**HOME, "surface": "HOME"},
    "unknown field": {**HOME, "colour": "red"},
    "k 0": {**HOME, "k": 0},
    "k 501": {**HOME, "k": 501},
    "k a string": {**HOME, "k": "10"},
    "k a float": {**HOME, "k": 10.0},
    "k true": {**HOME, "k": True},
    "home without a vector": {"surface": "home", "history": ["t1"]},
    "next without a seed": {"surface": "next", "user_vector": V},
    "similar with a null seed": {**SIMILAR, "seed_track_id": None},
    "seed not an id": {**NEXT, "seed_track_id": "t 1"},
    "seed a number": {**HOME, "seed_track_id": 7},
    "seed empty": {**NEXT, "seed_track_id": ""},
    "rank without candidates": {"surface": "rank", "user_vector": V},
    "rank, empty candidates": {"surface": "rank", "candidates": []},
    "501 candidates": {"surface": "rank", "candidates": IDS[:501]},
    "5001 exclusions": {**HOME, "exclude": [*IDS, "t5000"]},
    "1001 in history": {**HOME, "history": IDS[:1001]},
    "101 recent": {**HOME, "recent": IDS[:101]},
    "exclude null": {**HOME, "exclude": None},
    "exclude a string": {**HOME, "exclude": "t1"},
    "history of numbers": {**HOME, "history": [1, 2]},
    "recent holds no id": {**HOME, "recent": ["bad id"]},
    "an id of 129 characters": {**HOME, "exclude": ["x" * 129]},
    "an id across two lines": {**HOME, "exclude": ["t1\nt2"]},
    "vector a string": {"surface": "home", "user_vector": "0.1"},
    "vector of strings": {"surface": "home", "user_vector": ["0.1"]},
    "vector of booleans": {"surface": "home", "user_vector": [True]},
    "vectors_of a number": {**HOME, "vectors_of": 3},
    "weight above 1": {**HOME, "weights": {**WEIGHTS, "cf": 2}},
    "weight below 0": {**HOME, "weights": {**WEIGHTS, "ema_keep": -0.1}},
    "unknown weight": {**HOME, "weights": {**WEIGHTS, "colour": 1}},
    "weight true": {**HOME, "weights": {**WEIGHTS, "cf": True}},
    "weights a list": {**HOME, "weights": []},
    "some of the weights": {**HOME, "weights": {"cf": 0.3, "long_term": 1}},
    "weights a number": {**HOME, "weights": 0.5},
    "fresh share above 0.5": {**HOME, "fresh_share": 0.6},
    "fresh share below 0": {**HOME, "fresh_share": -0.1},
    "fresh share a string": {**HOME, "fresh_share": "0.1"},
    "fresh share true": {**HOME, "fresh_share": True},
    "filter a string": {**HOME, "filter": "rock"},
    "promotion without a filter": {**HOME, "promotion": {"k": 2}},
    "promotion k 0": {**HOME, "promotion": {**PROMOTION, "k": 0}},
    "promotion, unknown field": {**HOME, "promotion": {**PROMOTION, "share": 0.2}},
    "empty vector": {"surface": "home", "user_vector": []},
    "NaN in a vector": {"surface": "home", "user_vector": [float("nan")]},
    "infinity in a vector": {**HOME, "short_vector": [float("inf")]},
    "filter, unknown key": {**HOME, "filter": {"genre": ["rock"]}},
    "filter, explicit a string": {**HOME, "filter": {"explicit": "no"}},
    "filter, empty genre list": {**HOME, "filter": {"genres_in": []}},
    "filter, a genre too long": {**HOME, "filter": {"genres_not_in": ["x" * 101]}},
    "filter, days out of range": {**HOME, "filter": {"released_within_days": 36_501}},
    "filter, not a date": {**HOME, "filter": {"released_before": "last year"}},
    "filter, not an artist id": {**HOME, "filter": {"exclude_artists": ["a 1"]}},
    "promotion of everything": {**HOME, "promotion": {"filter": {}, "k": 2}},
    "promotion, unknown key": {**HOME, "promotion": {"filter": {"mood": "x"}, "k": 2}},
    "rank with a promotion": {**RANK, "promotion": PROMOTION},
}


def lambda_accepts(data: dict[str, Any]) -> bool:
    try:
        InferenceRequest.model_validate(data)
    except ValidationError:
        return False
    return True


def endpoint_accepts(data: dict[str, Any]) -> bool:
    try:
        inference.input_fn(json.dumps(data))
    except inference.RequestError:
        return False
    return True


def as_applied(spec: dict[str, Any] | None) -> dict[str, Any]:
    """A filter as the model applies it: genres compared in lower case, the date a date."""
    out = dict(spec or {})
    for key in ("genres_in", "genres_not_in"):
        if key in out:
            out[key] = [g.lower() for g in out[key]]
    if "released_before" in out:
        out["released_before"] = dt.date.fromisoformat(out["released_before"])
    return out


def meant(request: InferenceRequest) -> dict[str, Any]:
    """What the Lambda's request asks of the model, in the endpoint's terms (a request without weights means the
    endpoint's defaults)."""
    sent = request.model_dump(mode="json")
    promotion = sent["promotion"]
    return {
        **sent,
        "filter": as_applied(sent["filter"]),
        "promotion": promotion and {"filter": as_applied(promotion["filter"]), "k": promotion["k"]},
        "weights": sent["weights"] or DEFAULT_WEIGHTS,
    }


def read(parsed: dict[str, Any]) -> dict[str, Any]:
    """The endpoint's parsed request with its vectors (arrays) as lists."""
    vectors = ("user_vector", "short_vector")
    return {**parsed, **{name: None if parsed[name] is None else parsed[name].tolist() for name in vectors}}


@pytest.mark.parametrize("data", VALID.values(), ids=VALID.keys())
def test_both_accept_and_the_model_gets_what_the_lambda_sent(data: dict[str, Any]) -> None:
    # Given a request the Lambda builds, on the wire as ModelClient sends it
    request = InferenceRequest.model_validate(data)
    sent = read(inference.input_fn(request.model_dump_json(exclude_none=True)))
    # Then the endpoint reads the values the Lambda meant
    assert sent == meant(request)
    # And the same request as anyone might send it, without what it leaves to the defaults, reads the same
    assert read(inference.input_fn(json.dumps(data))) == sent


@pytest.mark.parametrize("data", INVALID.values(), ids=INVALID.keys())
def test_both_refuse(data: dict[str, Any]) -> None:
    assert not endpoint_accepts(data)
    assert not lambda_accepts(data)


def test_one_default_blend_on_every_side() -> None:
    assert RecommendationWeights().model_dump() == DEFAULT_WEIGHTS
    InferenceWeights.model_validate(DEFAULT_WEIGHTS)  # the Lambda's contract takes them
