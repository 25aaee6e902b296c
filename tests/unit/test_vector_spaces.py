"""A model given another model version's vectors (a challenger beside the champion) derives its own from the
listener's plays: ALS fold-in and the session's moving average; and the popularity baseline challenger."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sagemaker"))
import inference
import train
from hybrid import DEFAULT_WEIGHTS, HybridModel

pytestmark = pytest.mark.unit

N, F = 200, 8


@pytest.fixture
def model(tmp_path: Path) -> HybridModel:
    """A small model as the endpoint loads it (no ranker: home is the simplest configuration)."""
    rng = np.random.default_rng(1)
    content = rng.normal(size=(N, 6))
    HybridModel(
        version="v-test",
        track_ids=np.array([f"t{i}" for i in range(N)]),
        artist_ids=np.array([f"a{i % 20}" for i in range(N)]),
        item_cf=rng.normal(size=(N, F)),
        content=content / np.linalg.norm(content, axis=1, keepdims=True),
        popularity=rng.permutation(N).astype(float),  # distinct: which of equals top_k keeps at its cut is open
        warm=np.arange(N) < 180,  # the last 20 are cold: not in the Gram matrix
        als_alpha=3.0,
        als_regularization=0.5,
    ).save(tmp_path / "model")
    return inference.model_fn(str(tmp_path / "model"))


def ask(model: HybridModel, body: dict[str, Any]) -> dict[str, Any]:
    return json.loads(inference.output_fn(inference.predict_fn(inference.input_fn(json.dumps(body)), model)))


def ids(tracks: list[str]) -> np.ndarray:
    return np.array([int(t[1:]) for t in tracks])


def test_fold_in_reproduces_a_trained_users_als_vector() -> None:
    # Given implicit's ALS fit as train.py fits it, on confidences alpha x rating
    rng = np.random.default_rng(0)
    users, items, alpha, reg = 80, 50, 2.0, 0.1
    ratings = (rng.random((users, items)) < 0.15) * rng.integers(1, 4, (users, items))
    ratings[np.arange(items) % users, np.arange(items)] = 1  # every item has a listener (warm)
    matrix = sp.csr_matrix(alpha * ratings.astype(np.float64))
    args = argparse.Namespace(factors=F, regularization=reg, iterations=30, seed=0)
    user_f, item_f = train.fit_als(matrix, args)
    model = HybridModel("v", np.array([f"t{i}" for i in range(items)]), np.array(["a"] * items),
                        item_f.astype(np.float32), np.eye(items), np.ones(items), np.ones(items, dtype=bool),
                        als_alpha=alpha, als_regularization=reg)  # fmt: skip
    # When each user is folded in with their actual confidences
    for u in range(0, users, 7):
        row = matrix[u]
        folded = model.fold_in(row.indices, confidence=row.data)
        # Then the vector is the one ALS trained, in direction and in length (a λ scaled by the user's item count,
        # as some ALS implementations do, would keep the direction and shrink the length by up to 13% here)
        assert folded is not None
        norm, trained_norm = np.linalg.norm(folded), np.linalg.norm(user_f[u])
        assert folded @ user_f[u] / (norm * trained_norm) > 0.99
        assert norm == pytest.approx(trained_norm, rel=0.05)


def test_another_models_vectors_are_ignored_and_home_comes_from_history(model: HybridModel) -> None:
    history = ["t3", "t17", "t42", "t190", "unknown"]
    garbage = {"surface": "home", "user_vector": [1.0, 2.0], "history": history, "k": 10, "exclude": ["t5"]}
    # Given vectors of this model's version, a vector of the wrong dimension is an error
    with pytest.raises(inference.RequestError, match="has 2 dimensions"):
        ask(model, {**garbage, "vectors_of": "v-test"})
    # When the vectors are another version's, the model folds the listener's history in instead
    answer = ask(model, {**garbage, "vectors_of": "v-champion"})
    folded = model.fold_in(model.indices(history))
    assert folded is not None
    own = ask(model, {**garbage, "user_vector": folded.tolist(), "vectors_of": "v-test"})
    # Then the answer is the one the folded-in vector gives
    assert answer == own and len(answer["items"]) == 10 and answer["model_version"] == "v-test"
    # And with nothing known of the listener, home falls back to the most popular tracks
    unknown = ask(model, {**garbage, "vectors_of": "v-champion", "history": ["unknown"]})
    expected = [t for t in np.argsort(-model.popularity) if t != 5][:10]
    assert ids([i["track_id"] for i in unknown["items"]]).tolist() == expected


def test_the_short_vector_is_the_sessions_moving_average_in_this_models_space(model: HybridModel) -> None:
    recent, keep = ["t5", "t6", "t7"], 0.3  # newest first
    y = model.item_cf.astype(np.float64)
    by_hand = keep * (keep * y[7] + (1 - keep) * y[6]) + (1 - keep) * y[5]
    np.testing.assert_allclose(model.session_vector(model.indices(recent), keep), by_hand)
    assert model.session_vector(model.indices([]), keep) is None
    # Through the endpoint: another version's short vector is replaced by this one, the long-term one by the
    # fold-in of the recent plays
    body = {"surface": "home", "recent": recent, "k": 10, "weights": {**DEFAULT_WEIGHTS, "ema_keep": keep}}
    derived = ask(model, {**body, "user_vector": [9.0], "short_vector": [9.0], "vectors_of": "v-champion"})
    folded = model.fold_in(model.indices(recent))
    assert folded is not None
    given = ask(model, {**body, "user_vector": folded.tolist(), "short_vector": by_hand.tolist()})
    assert derived == given


def test_vectors_of_must_be_a_string() -> None:
    with pytest.raises(inference.RequestError, match="vectors_of must be a model version"):
        inference.input_fn(json.dumps({"surface": "home", "user_vector": [1.0], "vectors_of": 3}))
    assert inference.input_fn(json.dumps({"surface": "home", "user_vector": [1.0], "vectors_of": None}))


def test_the_popularity_baseline_answers_every_surface_with_the_most_popular(
    model: HybridModel, tmp_path: Path
) -> None:
    # Given the baseline made from the model, saved and loaded as the endpoint loads it
    model.as_popularity_baseline("v-popularity").save(tmp_path / "baseline")
    baseline = inference.model_fn(str(tmp_path / "baseline"))
    assert (baseline.version, baseline.home_source, model.home_source) == ("v-popularity", "popularity", "ranker")
    assert (baseline.als_alpha, baseline.als_regularization) == (3.0, 0.5)
    by_popularity = np.argsort(-model.popularity)
    exclude = [f"t{i}" for i in by_popularity[:3]]
    seed = f"t{by_popularity[4]}"
    bodies = {
        "home": {"surface": "home", "user_vector": [0.3] * F},
        "next": {"surface": "next", "seed_track_id": seed},
        "similar": {"surface": "similar", "seed_track_id": seed},
    }
    for surface, body in bodies.items():
        # When it answers
        answer = ask(baseline, {**body, "k": 5, "exclude": exclude})
        # Then with the most popular tracks not excluded (nor the seed), in order, scored by popularity
        gone = set(ids([*exclude, seed])) if surface != "home" else set(ids(exclude))
        expected = [t for t in by_popularity if t not in gone][:5]
        got = ids([i["track_id"] for i in answer["items"]])
        assert got.tolist() == expected, surface
        assert [i["score"] for i in answer["items"]] == model.popularity[expected].tolist()
        assert answer["model_version"] == "v-popularity"
