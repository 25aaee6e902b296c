"""The ranking stage under sagemaker/: sources, the LightGBM trees as arrays, the session blend, and a model
with sources and rankers served through inference.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sagemaker"))
import inference
import ranker
import sources
import train
from filters import CatalogFacts
from hybrid import EMPTY, HOME_FEATURES, NEXT_FEATURES, HybridModel, Listener, session_blend
from sources import Sessions

pytestmark = pytest.mark.unit


def test_ease_is_the_closed_form_regression() -> None:
    rng = np.random.default_rng(1)
    x = sp.csr_matrix((rng.random((40, 12)) < 0.3).astype(np.float32))
    lam = 5.0
    b = sources.ease(x, lam)
    p = np.linalg.inv(x.T.toarray() @ x.toarray() + lam * np.eye(12))
    expected = np.eye(12) - p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    assert np.allclose(b, expected, atol=1e-4)
    pruned = sources.keep_top(b, 3)
    assert pruned.getnnz(axis=1).max() <= 3 and (pruned.data > 0).all()


def test_sequence_model_counts_transitions_and_neighbours() -> None:
    m = sources.sequence_model(Sessions.from_lists([[0, 1, 2], [0, 1]]), n_items=4, window=1, co_weight=0.5).toarray()
    assert np.allclose(m.sum(axis=1)[:3], 1.0) and m[3].sum() == 0  # rows normalised; an unplayed track has none
    assert m[0, 1] > 0 and m[0, 2] == 0  # 0 -> 1 twice; 2 is two plays away, outside the window
    assert m[1, 2] > m[1, 0]  # after 1 came 2 (a transition); 0 came before it (a neighbour only)


def test_a_play_the_catalog_lacks_breaks_only_its_own_pairs() -> None:
    m = sources.sequence_model(Sessions.from_lists([[0, -1, 2, 3]]), n_items=4, window=2, co_weight=0.3).toarray()
    # 2 -> 3 is a transition (1) and neighbours (0.3); 0 and 2, two plays apart, are neighbours (0.3 / 2) only:
    # never a transition through the unknown play
    assert np.isclose(m[2, 3] / m[2, 0], 1.3 / 0.15) and m[0, 2] > 0


def test_keep_top_of_a_sparse_matrix_keeps_each_rows_largest() -> None:
    rng = np.random.default_rng(3)
    dense = rng.random((40, 30)) * (rng.random((40, 30)) < 0.5)
    kept = sources.keep_top(sp.csr_matrix(dense), 4).toarray()
    for row, out in zip(dense, kept, strict=True):
        expected = np.sort(row[row > 0])[::-1][:4]
        assert np.allclose(np.sort(out[out > 0])[::-1], expected, atol=1e-6)


def transitions_table(rows: list[tuple[str, str, str, str, int]]) -> Any:
    import pandas as pd  # noqa: PLC0415

    return pd.DataFrame(rows, columns=["session_id", "user_id", "prev_track_id", "track_id", "timestamp"])


def test_sessions_are_read_in_order_and_cut_by_time() -> None:
    items = {"a": 0, "b": 1, "c": 2, "d": 3}
    table = transitions_table([  # shuffled on purpose; "x" is not in the catalog
        ("s2", "u2", "c", "d", 50), ("s1", "u1", "b", "c", 20), ("s1", "u1", "a", "b", 10), ("s1", "u1", "c", "x", 30),
    ])  # fmt: skip
    sessions = train.read_sessions(table, items)
    assert sessions.tracks.tolist() == [0, 1, 2, -1, 2, 3] and sessions.offsets.tolist() == [0, 4, 6]
    assert sessions.users.tolist() == ["u1", "u2"]
    # the plays reached in [15, 40): b -> c -> x, with a play before the first (b, reached at 10)
    window = train.sessions_between(sessions, 15, 40)
    assert window.tracks.tolist() == [1, 2, -1] and window.users.tolist() == ["u1"]


def test_held_out_transitions_skip_unknown_tracks_and_carry_what_came_before() -> None:
    items = {t: i for i, t in enumerate("abcde")}
    table = transitions_table([("s", "u", "a", "b", 10), ("s", "u", "b", "x", 20), ("s", "u", "x", "c", 30),
                               ("s", "u", "c", "d", 40), ("s", "u", "d", "e", 50)])  # fmt: skip
    sessions = train.read_sessions(table, items)
    fitted = train.Fitted(None, np.zeros((0, 1)), {}, {}, {})  # type: ignore[arg-type]
    pairs = train.held_out_transitions(sessions, fitted, 0, 100, 10, seed=1)
    assert [(p, n, u) for p, n, u, _ in pairs] == [(0, 1, "u"), (2, 3, "u"), (3, 4, "u")]
    assert pairs[2][3].tolist() == [2, 1, 0]  # before d: c, b, a (newest first; the unknown play left out)


def test_item_knn_block_by_block_is_the_whole_matrix_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "KNN_BLOCK_CELLS", 64 * 500)  # 64 tracks a block: eight blocks
    rng = np.random.default_rng(2)
    x = sp.csr_matrix((rng.random((300, 500)) < 0.05).astype(np.float32))
    got = sources.item_knn(x, neighbours=10, shrink=10.0).toarray()
    co = (x.T @ x).toarray()
    np.fill_diagonal(co, 0.0)
    norms = np.sqrt(np.diag((x.T @ x).toarray()))
    sim = co / (norms[:, None] * norms[None, :] + 1e-12) * (co / (co + 10.0))
    for expected, row in zip(sim, got, strict=True):
        assert np.allclose(np.sort(row[row > 0])[::-1], np.sort(expected[expected > 0])[::-1][:10], atol=1e-5)


def test_item_item_falls_back_to_knn_beyond_the_dense_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    x = sp.csr_matrix((np.random.default_rng(2).random((30, 10)) < 0.4).astype(np.float32))
    assert sources.item_item(x)[0] == "ease"
    monkeypatch.setattr(sources, "EASE_MAX_ITEMS", 5)
    kind, m = sources.item_item(x)
    assert kind == "item_knn" and m.shape == (10, 10) and m.diagonal().sum() == 0


def test_trees_score_exactly_as_lightgbm() -> None:
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(3)
    x = rng.random((2000, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.2 * rng.random(2000) > 0.9).astype(int)
    model = lgb.LGBMRanker(n_estimators=25, num_leaves=7, min_child_samples=5, verbose=-1)
    model.fit(x, y, group=[50] * 40)
    trees = ranker.Trees.from_lightgbm(model.booster_.dump_model(), tuple("abcde"))
    probe = rng.random((300, 5))
    assert np.allclose(trees.predict(probe), model.booster_.predict(probe), atol=1e-9)
    z = trees.arrays("t")
    again = ranker.Trees.from_arrays(z, "t")
    assert np.allclose(again.predict(probe), trees.predict(probe)) and again.features == tuple("abcde")


def test_fit_keeps_every_positive_and_drops_lists_without_one() -> None:
    pytest.importorskip("lightgbm")
    rng = np.random.default_rng(4)
    x = rng.random((600, 3))
    labels = np.zeros(600, dtype=int)
    labels[:300][x[:300, 0] > 0.8] = 1  # the second half's lists have no positive at all
    trees = train.fit_ranker(
        x, labels, np.array([150, 150, 150, 150]), ("a", "b", "c"), seed=7, params={"min_child_samples": 5}
    )
    assert trees.feature.shape[0] > 0
    scores = trees.predict(np.array([[0.95, 0.5, 0.5], [0.1, 0.5, 0.5]]))
    assert scores[0] > scores[1]
    empty = train.fit_ranker(x, np.zeros(600, dtype=int), np.array([600]), ("a", "b", "c"), seed=7)
    assert np.array_equal(empty.predict(x[:3]), np.zeros(3))


def test_session_blend_normalises_both_parts() -> None:
    long, short = np.array([30.0, 0.0]), np.array([0.0, 0.05])
    # raw, the short part would move the blend by 0.05 %; normalised it has its 30 % of the direction
    assert np.allclose(session_blend(long, short, 0.7, 0.3), 30.0 * np.array([0.7, 0.3]))
    assert session_blend(long, None, 0.7, 0.3) is long and session_blend(None, short, 0.7, 0.3) is short
    assert session_blend(None, None, 0.7, 0.3) is None
    assert np.allclose(session_blend(long, long, 0.7, 0.3), long)


@pytest.fixture
def ranked_model(tmp_path: Path) -> HybridModel:
    """A model with every source and three rankers, trained on random lists, through a save and a load."""
    pytest.importorskip("lightgbm")
    rng = np.random.default_rng(5)
    n, f = 300, 8
    x = sp.csr_matrix((rng.random((60, n)) < 0.05).astype(np.float32))
    sessions = [rng.choice(n, 8, replace=False).tolist() for _ in range(80)]
    model = HybridModel(
        version="v-ranked",
        track_ids=np.array([f"t{i}" for i in range(n)]),
        artist_ids=np.array([f"a{i % 30}" for i in range(n)]),
        item_cf=rng.normal(size=(n, f)).astype(np.float32),
        content=(c := rng.normal(size=(n, 6)).astype(np.float32)) / np.linalg.norm(c, axis=1, keepdims=True),
        popularity=rng.integers(0, 50, n).astype(float),
        warm=rng.random(n) > 0.1,
        trend=rng.integers(0, 10, n).astype(float),
        age_days=rng.integers(0, 900, n).astype(float),
        item_item=sources.item_item(x)[1],
        item_item_kind="ease",
        sequence=sources.sequence_model(Sessions.from_lists(sessions), n),
        facts=CatalogFacts.of(
            [i % 4 == 0 for i in range(n)],
            ["2020-01-01"] * n,
            [["rock" if i % 3 else "jazz"] for i in range(n)],
            np.array([f"a{i % 30}" for i in range(n)]),
        ),
    )
    lists: dict[str, list[Any]] = {"home": [], "session": [], "next": []}
    for _ in range(40):
        history = rng.choice(n, 20, replace=False)
        who = Listener(rng.normal(size=f), history, history[:10], False)
        lists["home"].append(model.home_candidates(who, history))
        lists["session"].append(model.home_candidates(Listener(who.vector, history, history[:10], True), history))
        lists["next"].append(model.next_candidates(int(history[0]), who, history))
    for name, built in lists.items():
        xs = np.vstack([b[1] for b in built])
        labels = (rng.random(xs.shape[0]) < 0.1).astype(int)
        features = NEXT_FEATURES if name == "next" else HOME_FEATURES
        model.rankers[name] = train.fit_ranker(xs, labels, np.array([b[0].size for b in built]), features, seed=7,
                                         params={"min_child_samples": 5})  # fmt: skip
    model.save(tmp_path / "m")
    return HybridModel.load(tmp_path / "m")


def ask(model: HybridModel, body: dict[str, Any]) -> dict[str, Any]:
    return json.loads(inference.output_fn(inference.predict_fn(inference.input_fn(json.dumps(body)), model)))


def test_the_ranking_stage_serves_every_surface(ranked_model: HybridModel) -> None:
    model = ranked_model
    assert set(model.rankers) == {"home", "session", "next"} and model.item_item is not None
    v = [0.2] * 8
    history, recent = [f"t{i}" for i in range(0, 40, 2)], ["t3", "t5", "t7"]
    body = {"surface": "home", "user_vector": v, "k": 15, "history": history, "recent": recent,
            "exclude": history + recent}  # fmt: skip
    home = ask(model, body)["items"]
    assert len(home) == 15 and not {i["track_id"] for i in home} & set(history + recent)
    assert [i["score"] for i in home] == sorted((i["score"] for i in home), reverse=True)
    # a short-term vector means a session is going on: the session ranker answers, over the same candidates
    live = ask(model, {**body, "short_vector": [0.5] * 8})["items"]
    assert len(live) == 15 and not {i["track_id"] for i in live} & set(history + recent)
    nxt = ask(model, {"surface": "next", "seed_track_id": "t9", "user_vector": v, "recent": ["t9", *recent],
                      "history": history, "k": 10, "exclude": ["t11"]})["items"]  # fmt: skip
    assert len(nxt) == 10 and not {"t9", "t11"} & {i["track_id"] for i in nxt}
    similar = ask(model, {"surface": "similar", "seed_track_id": "t9", "k": 5})["items"]
    assert len(similar) == 5 and all(0 <= i["cf"] <= 1 for i in similar)


def test_a_new_listener_with_only_a_session_gets_a_home(ranked_model: HybridModel) -> None:
    home = ask(ranked_model, {"surface": "home", "short_vector": [0.1] * 8, "recent": ["t1", "t2"], "k": 5})
    assert len(home["items"]) == 5


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"surface": "home", "user_vector": [1.0] * 8, "history": "t1"}, "history must be a list"),
        ({"surface": "home", "user_vector": [1.0] * 8, "recent": [1, 2]}, "recent must be a list"),
        ({"surface": "home", "user_vector": [1.0] * 8, "recent": ["t"] * 101}, "at most 100"),
        ({"surface": "home", "user_vector": [1.0] * 8, "weights": {"long_term": 2}}, "between 0 and 1"),
        ({"surface": "home", "user_vector": [1.0] * 8, "weights": {"colour": 1}}, "weights must be"),
    ],
)
def test_malformed_listener_state_is_refused(ranked_model: HybridModel, body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(inference.RequestError, match=fragment):
        inference.predict_fn(inference.input_fn(json.dumps(body)), ranked_model)


def test_a_supplied_list_comes_back_ordered_for_the_listener(ranked_model: HybridModel) -> None:
    given = [f"t{i}" for i in range(100, 160)] + ["nope", "t7"]
    body = {"surface": "rank", "user_vector": [0.2] * 8, "history": ["t1", "t2"], "candidates": given}
    answer = ask(ranked_model, body)
    ranked = [i["track_id"] for i in answer["items"]]
    assert sorted(ranked) == sorted(set(given) - {"nope"}) and answer["unknown"] == ["nope"]
    assert [i["score"] for i in answer["items"]] == sorted((i["score"] for i in answer["items"]), reverse=True)
    assert {i["reason"] for i in answer["items"]} == {"personalised"}
    # the ranker's order, not the input's
    assert ranked != [t for t in given if t != "nope"]
    # with a filter, what it leaves out is named and not ranked
    clean = ask(ranked_model, {**body, "filter": {"genres_in": ["jazz"]}})
    jazz = {f"t{i}" for i in range(ranked_model.track_ids.size) if i % 3 == 0}
    assert {i["track_id"] for i in clean["items"]} == (set(given) - {"nope"}) & jazz
    assert set(clean["filtered"]) == set(given) - {"nope"} - jazz
    # a listener the model knows nothing of: the most popular first
    anon = ask(ranked_model, {"surface": "rank", "candidates": given})["items"]
    pops = [ranked_model.popularity[ranked_model.index[i["track_id"]]] for i in anon]
    assert pops == sorted(pops, reverse=True) and {i["reason"] for i in anon} == {"popular"}


def test_a_promotion_is_the_surface_again_within_its_filter(ranked_model: HybridModel) -> None:
    history = [f"t{i}" for i in range(0, 40, 2)]
    body = {"surface": "home", "user_vector": [0.2] * 8, "k": 15, "history": history, "exclude": history}
    plain = ask(ranked_model, body)
    promoted = ask(ranked_model, {**body, "promotion": {"filter": {"genres_in": ["jazz"]}, "k": 4}})
    assert promoted["items"] == plain["items"]  # the page itself does not change
    ids = [i["track_id"] for i in promoted["promoted"]]
    assert len(ids) == 4 and all(ranked_model.index[t] % 3 == 0 for t in ids) and not set(ids) & set(history)
    within = ask(ranked_model, {**body, "k": 4, "filter": {"genres_in": ["jazz"]}})["items"]
    assert ids == [i["track_id"] for i in within]  # the best jazz for this listener, as a jazz filter ranks it
    nxt = ask(ranked_model, {"surface": "next", "seed_track_id": "t9", "user_vector": [0.2] * 8, "k": 5,
                             "promotion": {"filter": {"explicit": False}, "k": 3}})  # fmt: skip
    assert len(nxt["promoted"]) == 3 and all(ranked_model.index[i["track_id"]] % 4 for i in nxt["promoted"])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"surface": "rank"}, "needs candidates"),
        ({"surface": "rank", "candidates": ["t1"] * 501}, "at most 500"),
        (
            {"surface": "rank", "candidates": ["t1"], "promotion": {"filter": {"explicit": False}, "k": 2}},
            "no promotion",
        ),
        ({"surface": "home", "user_vector": [1.0] * 8, "promotion": {"filter": {}, "k": 2}}, "must select tracks"),
        (
            {"surface": "home", "user_vector": [1.0] * 8, "promotion": {"filter": {"mood": "x"}, "k": 2}},
            "unknown filter",
        ),
        ({"surface": "home", "user_vector": [1.0] * 8, "promotion": {"k": 2}}, "promotion must be"),
        ({"surface": "home", "user_vector": [1.0] * 8, "fresh_share": 0.9}, "fresh_share must be"),
    ],
)
def test_malformed_controls_are_refused(ranked_model: HybridModel, body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(inference.RequestError, match=fragment):
        inference.predict_fn(inference.input_fn(json.dumps(body)), ranked_model)


def flat_model(n: int, **parts: Any) -> HybridModel:
    """``n`` tracks alike in every vector, one artist each, played by one listener each, with ``parts`` over that."""
    return HybridModel(
        **{
            "version": "v-flat",
            "track_ids": np.array([f"t{i}" for i in range(n)]),
            "artist_ids": np.array([f"a{i}" for i in range(n)]),
            "item_cf": np.ones((n, 2), dtype=np.float32),
            "content": np.ones((n, 2), dtype=np.float32) / np.sqrt(2),
            "popularity": np.ones(n),
            "warm": np.ones(n, dtype=bool),
            **parts,
        }
    )


def test_every_tenth_place_after_the_first_ten_goes_to_a_new_release() -> None:
    n = 60
    model = flat_model(
        n,
        warm=np.arange(n) < 50,  # t50..t59 have no plays yet ...
        age_days=np.where(np.arange(n) < 55, 400.0, 3.0),  # ... and t55..t59 are new releases
    )
    order = np.arange(n)  # the ranker's order: every new release last
    placed, fresh = model._with_new_releases(order, np.arange(n), 40)
    placed = placed.tolist()
    assert placed[:19] == list(range(19)) and placed[19] == 55 and placed[29] == 56 and placed[39] == 57
    assert len(placed) == 40 and len(set(placed)) == 40 and not {50, 51, 52, 53, 54} & set(placed)
    assert np.flatnonzero(fresh).tolist() == [19, 29, 39]  # the places that went to new releases
    assert model._with_new_releases(order, np.arange(n), 5)[0].tolist() == [0, 1, 2, 3, 4]
    # when the other tracks run out, new releases fill the rest of the page
    assert model._with_new_releases(np.array([55, 0, 56, 1, 57]), np.arange(n), 5)[0].tolist() == [0, 1, 55, 56, 57]


@pytest.mark.parametrize(("share", "places"), [(0.0, []), (0.2, [9, 14, 19]), (0.5, [3, 5, 7, 9, 11, 13, 15, 17, 19])])
def test_the_fresh_share_sets_how_many_places_go_to_new_releases(share: float, places: list[int]) -> None:
    n = 60
    model = flat_model(n, warm=np.arange(n) < 50, age_days=np.where(np.arange(n) < 50, 400.0, 3.0))
    placed, fresh = model._with_new_releases(np.arange(n), np.arange(n), 20, share)
    assert np.flatnonzero(fresh).tolist() == places
    assert all(placed[i] >= 50 for i in np.flatnonzero(fresh)) and all(placed[i] < 50 for i in np.flatnonzero(~fresh))


def chain_model(n: int = 8) -> HybridModel:
    """Tracks 0 -> 1 -> 2 -> ... in every session: the transitions are a chain."""
    sessions = Sessions.from_lists([list(range(n))] * 3)
    return flat_model(
        n,
        sequence=sources.sequence_model(sessions, n),
        transitions=sources.sequence_model(sessions, n, window=1, co_weight=0.0),
        album=np.array([0, 0, 0, 1, 1, 1, -1, -1]),
    )


def test_the_walk_follows_the_transitions_beyond_the_next_track() -> None:
    model = chain_model()
    walk = model._walk(np.array([2]))
    # 3 is one step away, 4 two, ... each step weighted 0.7 less; nothing behind the start
    assert np.allclose(walk[3:], [0.7, 0.49, 0.343, 0.2401, 0.7**5]) and not walk[:3].any()
    assert model._two_steps(np.array([2])).tolist() == [0, 0, 0, 0, 1, 0, 0, 0]


def test_next_song_knows_the_seeds_album() -> None:
    model = chain_model()
    cand, x = model.next_candidates(1, Listener(), EMPTY)
    same = dict(zip(cand.tolist(), x[:, NEXT_FEATURES.index("same_album")].tolist(), strict=True))
    assert same[0] == 1.0 and same[2] == 1.0 and same[3] == 0.0 and same.get(6, 0.0) == 0.0  # 6 has no album


def test_catalog_groups_key_albums_by_artist_and_leave_missing_tags_out() -> None:
    import pandas as pd  # noqa: PLC0415

    tracks = pd.DataFrame({
        "artist_id": ["a", "a", "b", "b"],
        "album": ["Live", "Live", "Live", ""],  # the same name by another artist is another album
        "genres": [["rock", "punk"], ["rock"], [], None],
    })  # fmt: skip
    album, tags = train.catalog_groups(tracks)
    assert album[0] == album[1] != album[2] and album[3] == -1
    assert tags[0, 0] == tags[1, 0] >= 0 and tags[0, 1] >= 0 and tags[1, 1] == -1
    assert (tags[2:] == -1).all()


def test_independent_steps_run_at_once_and_answer_in_order() -> None:
    import os  # noqa: PLC0415

    pids = train.in_parallel(os.getpid, os.getpid, lambda: "third")
    assert pids[2] == "third"
    if (os.cpu_count() or 1) > 1:  # each in a worker of its own, not here
        assert os.getpid() not in pids[:2]
