"""The listening simulator: deterministic, valid by contract, and carrying the signal it claims to carry."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encore.models import ListeningEvent
from encore_local.errors import UsageError
from encore_local.simulator import SimulationParams, SimulationSummary, simulate
from encore_local.simulator.catalog import CSV_COLUMNS, STYLES, build_catalog
from encore_local.simulator.listeners import build_listeners, load_ground_truth
from encore_local.simulator.listening import ListeningModel
from encore_local.simulator.run import ORACLE_DEPTH
from encore_local.simulator.world import GENRES

pytestmark = pytest.mark.unit
Sim = tuple[Path, SimulationSummary]


def _events(out: Path) -> pd.DataFrame:
    return pd.concat(pd.read_json(p, lines=True, convert_dates=False) for p in sorted((out / "events").glob("*.jsonl")))


@pytest.fixture(scope="module")
def events(small_sim: Sim) -> pd.DataFrame:
    return _events(small_sim[0])


@pytest.fixture(scope="module")
def tracks(small_sim: Sim) -> pd.DataFrame:
    return pd.read_csv(small_sim[0] / "catalog" / "tracks.csv", keep_default_na=False)


def test_every_event_meets_the_contract(small_sim: Sim) -> None:
    path = sorted((small_sim[0] / "events").glob("*.jsonl"))[0]
    lines = path.read_text().splitlines()
    for line in lines:
        ListeningEvent.model_validate_json(line)
    assert len({json.loads(line)["event_id"] for line in lines}) == len(lines)


def test_same_seed_same_world(tmp_path: Path, small_params: SimulationParams, small_sim: Sim) -> None:
    simulate(small_params, tmp_path, progress=False)
    for rel in ("catalog/tracks.csv", "listeners.csv", "events/2026-09-05.jsonl"):
        assert (tmp_path / rel).read_bytes() == (small_sim[0] / rel).read_bytes()


def test_another_seed_another_world(tmp_path: Path) -> None:
    a = simulate(SimulationParams(users=50, tracks=200, days=2, seed=1), tmp_path / "a", progress=False)
    b = simulate(SimulationParams(users=50, tracks=200, days=2, seed=2), tmp_path / "b", progress=False)
    assert (tmp_path / "a/catalog/tracks.csv").read_bytes() != (tmp_path / "b/catalog/tracks.csv").read_bytes()
    assert a.events != b.events or a.actions != b.actions


def test_catalog_has_the_public_dataset_shape(tracks: pd.DataFrame, small_params: SimulationParams) -> None:
    assert list(tracks.columns) == CSV_COLUMNS
    assert len(tracks) == small_params.tracks
    assert tracks["track_id"].is_unique
    assert tracks["track_genre"].nunique() >= 12
    assert tracks["sub_genre"].nunique() >= 24
    for col in ("danceability", "energy", "valence", "acousticness", "instrumentalness", "speechiness"):
        assert tracks[col].between(0, 1).all()
    assert tracks["popularity"].between(0, 100).all()
    assert (tracks["lyrics"] != "").mean() > 0.5


def test_audio_and_lyrics_carry_genre_signal(tracks: pd.DataFrame) -> None:
    by_genre = tracks.groupby("track_genre")
    assert by_genre["energy"].mean()["metal"] > by_genre["energy"].mean()["ambient"] + 0.4
    assert by_genre["acousticness"].mean()["classical"] > by_genre["acousticness"].mean()["electronic"] + 0.5
    latin = " ".join(tracks.loc[tracks["track_genre"] == "latin", "lyrics"])
    metal = " ".join(tracks.loc[tracks["track_genre"] == "metal", "lyrics"])
    assert latin.count("corazon") > 5
    assert metal.count("corazon") == 0


def test_cold_start_tracks_appear_only_after_release(
    events: pd.DataFrame, tracks: pd.DataFrame, small_params: SimulationParams
) -> None:
    release = pd.to_datetime(tracks.set_index("track_id")["release_date"])
    new = release[release >= pd.Timestamp(small_params.start)]
    assert len(new) > 0
    played = events[events["track_id"].isin(new.index)]
    assert len(played) > 0
    first_play = pd.to_datetime(played.groupby("track_id")["timestamp"].min(), unit="ms")
    assert (first_play.dt.normalize() >= release[first_play.index]).all()


def test_new_listeners_only_listen_after_signing_up(small_sim: Sim, events: pd.DataFrame) -> None:
    listeners = pd.read_csv(small_sim[0] / "listeners.csv").set_index("user_id")
    signup = pd.to_datetime(listeners["signup_date"])
    first = pd.to_datetime(events.groupby("user_id")["timestamp"].min(), unit="ms").dt.normalize()
    # sessions start in local time, so a UTC date may be one day earlier than the local sign-up date
    assert (first >= signup[first.index] - pd.Timedelta(days=1)).all()
    assert small_sim[1].new_listeners > 0
    assert small_sim[1].new_listener_event_share > 0


def test_actions_follow_true_affinity(small_sim: Sim, events: pd.DataFrame) -> None:
    truth = load_ground_truth(small_sim[0] / "ground_truth.npz")
    uidx = {u: i for i, u in enumerate(truth.user_ids.tolist())}
    tidx = {t: i for i, t in enumerate(truth.track_ids.tolist())}
    z = np.array(
        [
            truth.affinity(uidx[u])[tidx[t]]
            for u, t in zip(events["user_id"][:3000], events["track_id"][:3000], strict=False)
        ]
    )
    actions = events["action"][:3000].to_numpy()
    assert z[actions == "complete"].mean() > z[actions == "listen"].mean() > z[actions == "skip"].mean()


def test_listeners_prefer_what_they_like(small_sim: Sim, events: pd.DataFrame) -> None:
    truth = load_ground_truth(small_sim[0] / "ground_truth.npz")
    uidx = {u: i for i, u in enumerate(truth.user_ids.tolist())}
    tidx = {t: i for i, t in enumerate(truth.track_ids.tolist())}
    sample = events.sample(2000, random_state=0)
    played = np.array(
        [truth.affinity(uidx[u])[tidx[t]] for u, t in zip(sample["user_id"], sample["track_id"], strict=False)]
    )
    random_tracks = np.random.default_rng(0).integers(0, truth.track_ids.size, 2000)
    rand = np.array([truth.affinity(uidx[u])[t] for u, t in zip(sample["user_id"], random_tracks, strict=False)])
    assert played.mean() > rand.mean() + 0.15


def test_next_track_depends_on_the_current_one(events: pd.DataFrame, tracks: pd.DataFrame) -> None:
    style = tracks.set_index("track_id")["sub_genre"]
    ev = events.sort_values(["session_id", "timestamp"])
    same_session = ev["session_id"].to_numpy()[1:] == ev["session_id"].to_numpy()[:-1]
    styles = style[ev["track_id"]].to_numpy()
    same_style = (styles[1:] == styles[:-1])[same_session].mean()
    # Two random plays share a sub-style far less often than consecutive plays in a session do.
    shares = pd.Series(styles).value_counts(normalize=True)
    assert same_style > 2 * float((shares**2).sum())
    assert same_style < 0.9  # and listeners do wander


def test_popularity_is_concentrated(small_sim: Sim) -> None:
    s = small_sim[1]
    assert s.top_10pct_track_share > 0.4
    assert 0.4 < s.gini < 0.95


def test_summary_matches_the_files(small_sim: Sim, events: pd.DataFrame) -> None:
    s = small_sim[1]
    assert s.events == len(events)
    assert set(s.actions) == {"listen", "skip", "complete"}
    assert sum(s.actions.values()) == len(events)
    assert abs(sum(s.genre_mix.values()) - 1) < 0.01
    assert set(s.genre_mix) == {g.name for g in GENRES}
    assert json.loads((small_sim[0] / "summary.json").read_text())["events"] == s.events


def test_ground_truth_oracle_ranks_played_tracks_high(small_sim: Sim, events: pd.DataFrame) -> None:
    truth = load_ground_truth(small_sim[0] / "ground_truth.npz")
    assert truth.genre_norm.shape == (300, len(GENRES))
    assert truth.style_norm.shape[1] == len(STYLES)
    user = events["user_id"].value_counts().index[0]
    z = truth.affinity(int(np.flatnonzero(truth.user_ids == user)[0]))
    assert z.shape == (800,)
    assert z.min() >= 0
    assert z.max() <= 1
    completed = events.loc[(events["user_id"] == user) & (events["action"] == "complete"), "track_id"].unique()
    ranks = pd.Series(z, index=truth.track_ids).rank(ascending=False)
    assert ranks[completed].median() < 800 / 4


def test_the_oracle_is_the_choice_models_own_ranking() -> None:
    params = SimulationParams(users=30, tracks=300, days=20, new_release_share=0.2, seed=5)
    rng = np.random.default_rng(5)
    catalog = build_catalog(params, rng)
    model = ListeningModel(params, catalog, build_listeners(params, rng), rng)
    day = 5  # some new releases are still to come
    top, scores = model.oracle(day, 40)
    assert top.shape == scores.shape == (30, 40)
    with np.errstate(divide="ignore"):
        every = model.appeal(np.arange(30)[:, None], np.arange(300)) + np.log(catalog.weights_on(day, params))
    for u in range(30):
        # each listener's best 40 by the model's own appeal and offer weights, best first, scored by them
        assert np.all(np.diff(scores[u]) <= 0)
        assert np.allclose(scores[u], every[u, top[u]])
        assert scores[u, -1] >= np.delete(every[u], top[u]).max()
    unreleased = catalog.release_day > day
    assert unreleased.any() and not np.isin(top, np.flatnonzero(unreleased)).any()


def test_the_saved_oracle_ranks_what_listeners_went_on_to_play(small_sim: Sim, events: pd.DataFrame) -> None:
    with np.load(small_sim[0] / "ground_truth.npz") as z:
        row = {u: i for i, u in enumerate(z["user_ids"].tolist())}
        track = {t: i for i, t in enumerate(z["track_ids"].tolist())}
        oracle = z["oracle_tracks"]
    assert oracle.shape == (300, ORACLE_DEPTH)
    last_week = events[events["timestamp"] >= events["timestamp"].max() - 7 * 86_400_000]
    plays = zip(last_week["user_id"], last_week["track_id"], strict=True)
    listed = [track[t] in set(oracle[row[u]].tolist()) for u, t in plays]
    assert np.mean(listed) > 1.5 * ORACLE_DEPTH / 800  # well above a list of random tracks


def test_gzip_output(tmp_path: Path) -> None:
    s = simulate(SimulationParams(users=20, tracks=150, days=2), tmp_path, compress=True, progress=False)
    assert all(f.endswith(".jsonl.gz") for f in s.events_files)
    assert len(pd.read_json(tmp_path / s.events_files[0], lines=True)) > 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"users": 0}, "--users"), ({"tracks": 10}, "--tracks"), ({"days": 0}, "--days"), ({"p_replay": 0.9}, "sum")],
)
def test_bad_parameters_say_which(kwargs: dict[str, int], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        SimulationParams(**kwargs)  # type: ignore[arg-type]


def test_listeners_file(small_sim: Sim) -> None:
    with (small_sim[0] / "listeners.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 300
    assert set(rows[0]) == {"user_id", "display_name", "region", "signup_date"}
