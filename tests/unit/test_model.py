"""The hybrid model's code under sagemaker/: metrics, the artifact round trip, inference surfaces and errors,
and the promotion decision."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from encore.config import RecommendationWeights
from encore.promotion import decide

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sagemaker"))
import evaluation
import inference
import train
from hybrid import DEFAULT_WEIGHTS, EMPTY, HybridModel, minmax, top_k

pytestmark = pytest.mark.unit
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def test_ranking_metrics_worked_example() -> None:
    recs = {"a": [1, 2, 3, 4, 5], "b": [9, 8, 7, 6, 5]}
    truth = {"a": {1, 3}, "b": {5}}
    m = evaluation.ranking_metrics(recs, truth, n_items=10, popularity=np.ones(10), ks=(5,))
    assert m["precision@5"] == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert m["recall@5"] == pytest.approx((1 + 1) / 2)
    assert m["map@5"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 5) / 2)
    ideal_a = 1 + 1 / np.log2(3)
    assert m["ndcg@5"] == pytest.approx(((1 + 1 / np.log2(4)) / ideal_a + (1 / np.log2(6))) / 2)
    assert m["mrr"] == pytest.approx((1 + 1 / 5) / 2)
    assert m["coverage@10"] == pytest.approx(9 / 10)


def test_continuation_metrics_as_the_recsys_challenge_2018_defined_them() -> None:
    # a: G = {1, 3, 8}; R = 3, 9, 1, 5, 8 -> the first |G| = 3 hold 3 and 1; relevant at places 1, 3 and 5.
    # b: nothing found: both 0. c: no held-out tracks, not counted.
    recs = {"a": [3, 9, 1, 5, 8], "b": [1, 2], "c": [1]}
    m = evaluation.continuation_metrics(recs, {"a": {1, 3, 8}, "b": {7}, "c": set()}, depth=5)
    dcg = 1 + 1 / np.log2(3) + 1 / np.log2(5)
    idcg = 1 + 1 / np.log2(2) + 1 / np.log2(3)  # as many ideal places as tracks were found (3)
    assert m == pytest.approx({"users": 2.0, "r_precision": (2 / 3 + 0) / 2, "ndcg@5": (dcg / idcg + 0) / 2})
    assert evaluation.continuation_metrics({"a": [1]}, {"a": {1}}, depth=5)["ndcg@5"] == 1.0


def test_next_track_metrics_and_restricted_recall() -> None:
    m = evaluation.next_track_metrics([(0, 1), (0, 2), (3, 4)], lambda case: [1, 9, 2] if case[0] == 0 else [5])
    assert m["hit_rate@10"] == pytest.approx(2 / 3) and m["mrr@10"] == pytest.approx((1 + 1 / 3) / 3)
    assert evaluation.recall_on({"u": [1, 2]}, {"u": {2, 3}}, items={3}, k=2) == 0.0
    assert np.isnan(evaluation.recall_on({"u": [1]}, {"u": {2}}, items={7}, k=1))


def test_top_k_and_minmax() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.9])
    assert top_k(scores, 3).tolist() == [1, 3, 2]
    assert top_k(scores, 3, banned=np.array([1])).tolist() == [3, 2, 0]
    assert top_k(scores, 10, banned=np.array([0, 1, 2, 3])).tolist() == []
    assert minmax(np.array([2.0, 2.0])).tolist() == [0.0, 0.0]


@given(arrays(np.float64, st.integers(0, 50), elements=finite))
def test_minmax_bounds(x: np.ndarray) -> None:
    y = minmax(x)
    assert y.shape == x.shape
    if x.size:
        assert np.all((y >= 0) & (y <= 1))
        if x.max() > x.min():
            assert y[np.argmax(x)] == 1
            assert y[np.argmin(x)] == 0
        else:
            assert np.all(y == 0)


@given(arrays(np.float64, st.integers(2, 50), elements=finite))
def test_minmax_keeps_order(x: np.ndarray) -> None:
    y = minmax(x)
    i, j = np.argsort(x)[0], np.argsort(x)[-1]
    assert y[i] <= y[j]


@given(
    arrays(np.float64, st.integers(0, 100), elements=finite),
    st.integers(0, 120),
    st.lists(st.integers(0, 99), max_size=30),
)
def test_top_k_is_the_k_best_not_banned_in_order(x: np.ndarray, k: int, banned_at: list[int]) -> None:
    banned = np.array([i for i in banned_at if i < x.size], dtype=np.int64)
    got = top_k(x, k, banned)
    allowed = np.setdiff1d(np.arange(x.size), banned)
    assert got.size == min(k, allowed.size)
    assert not np.isin(got, banned).any()
    assert np.all(np.diff(x[got]) <= 0)
    passed_over = np.setdiff1d(allowed, got)
    if got.size and passed_over.size:
        assert x[got[-1]] >= x[passed_over].max()


def seed_and_neighbours(cf: np.ndarray, content: np.ndarray) -> HybridModel:
    """Track t0 the seed, and track t<j>, whose CF and content cosines with it are ``cf[j - 1]`` and
    ``content[j - 1]`` (vectors on the unit circle)."""

    def circle(cosines: np.ndarray) -> np.ndarray:
        c = np.concatenate([[1.0], cosines])
        return np.column_stack([c, np.sqrt(np.maximum(1.0 - c**2, 0.0))])

    n = cf.size + 1
    return HybridModel(version="v-circle", track_ids=np.array([f"t{i}" for i in range(n)]),
                       artist_ids=np.array([f"a{i}" for i in range(n)]), item_cf=circle(cf), content=circle(content),
                       popularity=np.ones(n), warm=np.ones(n, dtype=bool))  # fmt: skip


def test_similar_blends_the_normalised_sources_worked_example() -> None:
    model = seed_and_neighbours(np.array([0.1, 0.3, 0.2]), np.array([0.5, 0.0, 0.25]))
    got = model.similar(0, 3, EMPTY, 0.6, 0.4)
    assert [i["track_id"] for i in got] == ["t2", "t3", "t1"]
    assert [i["score"] for i in got] == pytest.approx([0.6, 0.5, 0.4])


cosines = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


@given(
    st.integers(1, 40).flatmap(lambda n: st.tuples(arrays(np.float64, n, elements=cosines),
                                                   arrays(np.float64, n, elements=cosines))),
    st.floats(min_value=0.0, max_value=1.0),
)  # fmt: skip
def test_similar_is_bounded_by_the_weights(pair: tuple[np.ndarray, np.ndarray], w_cf: float) -> None:
    model = seed_and_neighbours(*pair)
    got = model.similar(0, pair[0].size, EMPTY, w_cf, 1.0 - w_cf)
    assert len(got) == pair[0].size and "t0" not in {i["track_id"] for i in got}
    for item in got:
        assert 0 <= item["cf"] <= 1 and 0 <= item["content"] <= 1
        assert -1e-12 <= item["score"] <= 1.0 + 1e-12


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n, f = 200, 8
    model = HybridModel(
        version="v-test",
        track_ids=np.array([f"t{i}" for i in range(n)]),
        artist_ids=np.array([f"a{i % 20}" for i in range(n)]),
        item_cf=rng.normal(size=(n, f)),
        content=(c := rng.normal(size=(n, 6))) / np.linalg.norm(c, axis=1, keepdims=True),
        popularity=rng.integers(0, 50, n).astype(float),
        warm=np.ones(n, dtype=bool),
    )
    model.save(tmp_path / "model", {"metrics": {"ndcg@10": 0.2}})
    return tmp_path / "model"


def ask(model: Any, body: dict[str, Any]) -> dict[str, Any]:
    return json.loads(inference.output_fn(inference.predict_fn(inference.input_fn(json.dumps(body)), model)))


def test_artifact_round_trip_and_every_surface(model_dir: Path) -> None:
    model = inference.model_fn(str(model_dir))
    assert model.version == "v-test" and model.factors == 8
    v = [0.3] * 8
    home = ask(model, {"surface": "home", "user_vector": v, "k": 10, "exclude": ["t1", "t2"]})
    assert len(home["items"]) == 10 and home["model_version"] == "v-test"
    assert not {"t1", "t2"} & {i["track_id"] for i in home["items"]}
    scores = [i["score"] for i in home["items"]]
    assert scores == sorted(scores, reverse=True)
    expected = top_k(model.home_scores(np.array(v)), 10, model.indices(["t1", "t2"]))
    assert [i["track_id"] for i in home["items"]] == [f"t{i}" for i in expected]  # exact top-K
    nxt = ask(model, {"surface": "next", "seed_track_id": "t5", "short_vector": v, "k": 7})
    assert len(nxt["items"]) == 7 and "t5" not in {i["track_id"] for i in nxt["items"]}
    assert all(0 <= i["cf"] <= 1 and 0 <= i["content"] <= 1 for i in nxt["items"])
    sim = ask(
        model,
        {
            "surface": "similar",
            "seed_track_id": "t5",
            "k": 3,
            "weights": {**DEFAULT_WEIGHTS, "cf": 0.0, "content": 1.0},
        },
    )
    content_order = top_k(model.content_scores(5), 3, np.array([5]))
    assert [i["track_id"] for i in sim["items"]] == [f"t{i}" for i in content_order]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("not json", "not valid JSON"),
        ('{"surface": "radio"}', "surface must be one of"),
        ('{"surface": "home"}', "needs user_vector or short_vector"),
        ('{"surface": "next"}', "needs seed_track_id"),
        ('{"surface": "home", "user_vector": [1, 2]}', "has 2 dimensions"),
        ('{"surface": "home", "user_vector": ["a"]}', "list of numbers"),
        ('{"surface": "home", "user_vector": [1,1,1,1,1,1,1,1], "k": 0}', "k must be"),
        ('{"surface": "similar", "seed_track_id": "nope"}', "not in model v-test"),
        ('{"surface": "home", "user_vector": [1,1,1,1,1,1,1,1], "colour": 1}', "unknown fields: colour"),
        ('{"surface": "home", "user_vector": [1,1,1,1,1,1,1,1], "weights": {"cf": 3}}', "between 0 and 1"),
    ],
)
def test_malformed_requests_say_what_is_wrong(model_dir: Path, body: str, fragment: str) -> None:
    model = inference.model_fn(str(model_dir))
    with pytest.raises(inference.RequestError, match=fragment):
        inference.predict_fn(inference.input_fn(body), model)


def test_the_configured_weights_reach_training(monkeypatch: pytest.MonkeyPatch) -> None:
    configured = RecommendationWeights(cf=0.2, content=0.8, long_term=0.9, short_term=0.1, ema_keep=0.25)
    # Given the hyperparameter the pipeline passes: SageMaker hands it over on the command line and in SM_HPS
    argument = configured.as_training_argument()
    assert train.parse_args(["--weights", argument]).weights == configured.model_dump()
    monkeypatch.setenv("SM_HPS", json.dumps({"weights": argument}))
    assert train.parse_args([]).weights == configured.model_dump()
    monkeypatch.delenv("SM_HPS")
    assert train.parse_args([]).weights == RecommendationWeights().model_dump()  # the one default agrees
    with pytest.raises(SystemExit):
        train.parse_args(["--weights", "cf=2"])


def test_next_song_is_evaluated_with_the_configured_blend() -> None:
    # t1 is the seed's nearest CF neighbour, t2 its nearest in content; the listener went on to t2
    model = seed_and_neighbours(np.array([0.9, 0.1]), np.array([0.1, 0.9]))
    fitted = train.Fitted(model, np.zeros((0, 2)), {}, {}, {})
    pairs = [(0, 2, "u1", EMPTY)]
    by_cf = train.next_song_metrics(fitted, pairs, {"cf": 1.0, "content": 0.0})
    by_content = train.next_song_metrics(fitted, pairs, {"cf": 0.0, "content": 1.0})
    assert by_cf["simplest"]["mrr@10"] == 0.5 and by_content["simplest"]["mrr@10"] == 1.0
    assert by_content["hybrid"] == by_content["simplest"]  # without a next-song ranker the blend is served


def test_the_oracle_is_the_simulators_ranking_less_what_was_played(tmp_path: Path) -> None:
    # Given the simulator's scores: u1's likeliest t9 (not in the model's catalog), t3 (played), t1, t0, t2 and
    # u2's t0, t1, t2, t3 (in the file in any order: the scores rank)
    np.savez(tmp_path / "ground_truth.npz", user_ids=np.array(["u1", "u2"]),
             track_ids=np.array(["t0", "t1", "t2", "t3", "t9"]),
             oracle_tracks=np.array([[2, 0, 4, 1, 3], [3, 2, 1, 0, 4]]),
             oracle_scores=np.array([[1.0, 3.0, 9.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, -np.inf]]))  # fmt: skip
    model = seed_and_neighbours(np.zeros(4), np.zeros(4))
    truth, seen = {"u1": {1}, "u2": {2}}, {"u1": np.array([3])}
    got = train.oracle_fractions(tmp_path, model, truth, seen, {"hybrid": {"ndcg@10": 0.375}})
    # Then u1's held-out t1 comes first (NDCG 1), u2's t2 third (1 / log2(4))
    assert got == pytest.approx({"oracle_ndcg@10": 0.75, "hybrid_fraction_of_oracle": 0.5})


def _report(hybrid: float, popularity: float) -> dict[str, Any]:
    return {"home": {"hybrid": {"ndcg@10": hybrid}, "popularity": {"ndcg@10": popularity}}}


def test_gate_both_ways() -> None:
    assert decide(_report(0.2, 0.1), None)[0] is True
    assert decide(_report(0.1, 0.2), None) == (False, "ndcg@10 0.1000 does not beat popularity (0.2000)")
    serving = {"metrics": {"ndcg@10": 0.25}}
    promote, reason = decide(_report(0.2, 0.1), serving)
    assert promote is False and "serving model's 0.2500" in reason
    assert decide(_report(0.3, 0.1), serving)[0] is True
    assert decide(_report(0.25, 0.1), serving)[0] is False  # equal is not better
    assert decide(_report(0.26, 0.1), serving, min_gain=0.1)[0] is False


def test_training_writes_a_servable_artifact(tmp_path: Path, small_sim: Any) -> None:
    """train.py end to end on features computed from the small simulation (pandas stand-in for the jobs)."""
    sim_dir, _ = small_sim
    files = sorted((sim_dir / "events").glob("*.jsonl"))
    ev = pd.concat(pd.read_json(p, lines=True, convert_dates=False) for p in files)
    ev["rating"] = np.where(ev["action"] == "complete", 1.0, np.where(ev["action"] == "skip", -1.0, 0.5))
    inter = ev.groupby(["user_id", "track_id"]).agg(rating=("rating", "sum"), first_ts=("timestamp", "min"),
                                                     last_ts=("timestamp", "max")).reset_index()  # fmt: skip
    tracks = pd.read_csv(sim_dir / "catalog/tracks.csv", keep_default_na=False).rename(
        columns={"track_name": "name", "artists": "artist_name"}
    )
    tracks["genres"] = [[g, sub] for g, sub in zip(tracks["track_genre"], tracks["sub_genre"], strict=True)]
    (tmp_path / "i").mkdir()
    (tmp_path / "t").mkdir()
    inter.to_parquet(tmp_path / "i" / "part.parquet")
    tracks.to_parquet(tmp_path / "t" / "part.parquet")
    args = train.parse_args(["--interactions", str(tmp_path / "i"), "--tracks", str(tmp_path / "t"),
                             "--model-dir", str(tmp_path / "model"), "--factors", "16", "--iterations", "5",
                             "--truth", str(sim_dir / "ground_truth.npz"), "--version", "small"])  # fmt: skip
    report = train.train(args)
    assert report["home"]["hybrid"]["ndcg@10"] > report["home"]["popularity"]["ndcg@10"]
    assert 0 < report["oracle"]["hybrid_fraction_of_oracle"] < 1.5
    for name in ("hybrid.npz", "meta.json", "evaluation.json", "evaluation.md", "metric_by_k.png",
                 "vectors/users.parquet", "vectors/tracks.parquet", "code/inference.py"):  # fmt: skip
        assert (tmp_path / "model" / name).exists(), name
    # The serving container pip-installs code/requirements.txt at every cold start: serving needs NumPy only.
    assert sorted(p.name for p in (tmp_path / "model" / "code").iterdir()) == sorted(train.SERVING_CODE)
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        for path in (tmp_path / "model").iterdir():
            tar.add(path, arcname=path.name)
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    served = inference.model_fn(str(tmp_path / "unpacked"))
    users = pd.read_parquet(tmp_path / "model/vectors/users.parquet")
    v = np.frombuffer(users["vector"].iloc[0], dtype="<f4").tolist()
    answer = ask(served, {"surface": "home", "user_vector": v, "k": 5})
    assert answer["model_version"] == "small" and len(answer["items"]) == 5
    # the catalog's facts travel with the artifact: a filtered answer holds only what the filter allows
    assert served.facts is not None and served.facts.genre_names.size > 0
    genre = str(served.facts.genre_names[0])
    picked = ask(served, {"surface": "home", "user_vector": v, "k": 5, "filter": {"genres_in": [genre]}})["items"]
    column = served.facts.genre_of[:, 0].toarray().ravel()
    assert picked and all(column[served.index[i["track_id"]]] for i in picked)
