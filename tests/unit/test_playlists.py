"""Playlists in MPD format: the generator writes valid slices, and the mapping turns them into valid contracts."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from encore.imports.mpd import (
    DEFAULT_REGION,
    catalog_rows,
    playlist_events,
    read_release_dates,
    read_slice,
    slice_files,
)
from encore.imports.tracks import CATALOG_COLUMNS
from encore.models import ListeningEvent
from encore_local.errors import UsageError
from encore_local.playlists import (
    CATALOG_EXTRA,
    GROUND_TRUTH,
    SECONDS_PER_DAY,
    PlaylistParams,
    continuation_scores,
    generate_mpd,
)
from encore_spark.transforms import UUID_PATTERN

pytestmark = pytest.mark.unit
PARAMS = PlaylistParams(playlists=1200, tracks=1000, days=20, themes=15, seed=3)
MS_PER_DAY = 86_400_000
PLAYLIST_KEYS = {
    "name",
    "collaborative",
    "pid",
    "modified_at",
    "num_tracks",
    "num_albums",
    "num_followers",
    "num_edits",
    "duration_ms",
    "num_artists",
    "tracks",
}
TRACK_KEYS = {"pos", "artist_name", "track_uri", "artist_uri", "track_name", "album_uri", "duration_ms", "album_name"}
Mpd = tuple[Path, dict[str, Any]]
Truth = dict[str, np.ndarray]


@pytest.fixture(scope="module")
def mpd(tmp_path_factory: pytest.TempPathFactory) -> Mpd:
    out = tmp_path_factory.mktemp("mpd")
    return out, generate_mpd(PARAMS, out)


@pytest.fixture(scope="module")
def playlists(mpd: Mpd) -> list[dict[str, Any]]:
    return [p for path in slice_files(mpd[0]) for p in read_slice(path)[0]]


def _truth(path: Path) -> Truth:
    with np.load(path) as z:  # allow_pickle is off: a pickled array would fail here
        return {key: z[key] for key in z.files}


def _window_ms(params: PlaylistParams) -> tuple[int, int]:
    start = int(datetime(params.start.year, params.start.month, params.start.day, tzinfo=UTC).timestamp() * 1000)
    return start, start + params.days * MS_PER_DAY


def _playlist(pid: int, durations: list[int], num_edits: int, modified_at: int = 1_790_000_000) -> dict[str, Any]:
    tracks = [
        {
            "pos": i,
            "artist_name": f"Artist {i % 2}",
            "track_uri": f"spotify:track:T{pid:03d}{i:018d}",
            "artist_uri": f"spotify:artist:A{i % 2:021d}",
            "track_name": f"Track {i}",
            "album_uri": f"spotify:album:B{i % 3:021d}",
            "duration_ms": d,
            "album_name": f"Album {i % 3}",
        }
        for i, d in enumerate(durations)
    ]
    return {"pid": pid, "modified_at": modified_at, "num_edits": num_edits, "tracks": tracks}


# -- the generator -----------------------------------------------------------------------------------------


def test_slices_have_the_mpd_layout(mpd: Mpd) -> None:
    out, summary = mpd
    assert [p.name for p in slice_files(out)] == ["mpd.slice.0-999.json", "mpd.slice.1000-1999.json"]
    assert summary["files"] == [p.name for p in slice_files(out)]
    data = json.loads((out / "mpd.slice.1000-1999.json").read_text())
    assert set(data) == {"info", "playlists"}
    assert set(data["info"]) == {"generated_on", "slice", "version"} and data["info"]["slice"] == "1000-1999"
    assert [p["pid"] for p in data["playlists"]] == list(range(1000, 1200))
    for playlist in data["playlists"]:
        assert set(playlist) == PLAYLIST_KEYS and playlist["collaborative"] == "false"
        for track in playlist["tracks"]:
            assert set(track) == TRACK_KEYS
            assert re.fullmatch(r"spotify:track:[0-9A-Za-z]{22}", track["track_uri"])
            assert re.fullmatch(r"spotify:artist:[0-9A-Za-z]{22}", track["artist_uri"])
            assert re.fullmatch(r"spotify:album:[0-9A-Za-z]{22}", track["album_uri"])


def test_each_playlist_is_consistent(playlists: list[dict[str, Any]]) -> None:
    start_ms, end_ms = _window_ms(PARAMS)
    for p in playlists:
        tracks = p["tracks"]
        assert [t["pos"] for t in tracks] == list(range(len(tracks)))
        assert len({t["track_uri"] for t in tracks}) == len(tracks) == p["num_tracks"]
        assert p["num_albums"] == len({t["album_uri"] for t in tracks})
        assert p["num_artists"] == len({t["artist_uri"] for t in tracks})
        assert p["duration_ms"] == sum(t["duration_ms"] for t in tracks)
        assert PARAMS.length_min <= p["num_tracks"] <= PARAMS.length_max
        assert 1 <= p["num_edits"] <= min(PARAMS.days, 30, p["num_tracks"])
        assert start_ms <= p["modified_at"] * 1000 < end_ms
        assert p["num_followers"] >= 1


def _repeated_share(orders: list[list[str]]) -> float:
    """Share of consecutive pairs that occur more than once across playlists."""
    pairs = Counter(pair for order in orders for pair in pairwise(order))
    return sum(n for n in pairs.values() if n > 1) / sum(pairs.values())


def test_playlists_carry_album_runs_order_and_popularity(playlists: list[dict[str, Any]], mpd: Mpd) -> None:
    pairs = [pair for p in playlists for pair in pairwise(p["tracks"])]
    same_album = sum(a["album_uri"] == b["album_uri"] for a, b in pairs) / len(pairs)
    assert 0.05 < same_album < 0.5
    # The themes' flows: the same track follows the same track across playlists, far more than in shuffled ones.
    orders = [[t["track_uri"] for t in p["tracks"]] for p in playlists]
    rng = random.Random(0)
    shuffled = [rng.sample(order, len(order)) for order in orders]
    assert _repeated_share(orders) > 1.5 * _repeated_share(shuffled)
    assert mpd[1]["tracks_used"] > 0.8 * PARAMS.tracks
    counts = Counter(uri for order in orders for uri in order)
    top = sum(c for _, c in counts.most_common(PARAMS.tracks // 100))
    assert top / sum(counts.values()) > 0.03  # the top 1 % of tracks: popularity is skewed (Zipf-like)


def test_same_seed_same_bytes(tmp_path: Path, mpd: Mpd) -> None:
    generate_mpd(PARAMS, tmp_path / "again")
    for name in [*mpd[1]["files"], CATALOG_EXTRA]:
        assert (tmp_path / "again" / name).read_bytes() == (mpd[0] / name).read_bytes()
    again, first = _truth(tmp_path / "again" / GROUND_TRUTH), _truth(mpd[0] / GROUND_TRUTH)
    assert again.keys() == first.keys() and all(np.array_equal(again[k], first[k]) for k in first)
    other = PlaylistParams(playlists=50, tracks=1000, days=20, themes=15, seed=4)
    generate_mpd(other, tmp_path / "other")
    first = (tmp_path / "other" / "mpd.slice.0-999.json").read_text()
    assert first[:2000] != (mpd[0] / "mpd.slice.0-999.json").read_text()[:2000]


def test_new_releases_only_in_playlists_edited_after_them(mpd: Mpd, playlists: list[dict[str, Any]]) -> None:
    released = read_release_dates(mpd[0] / CATALOG_EXTRA)
    assert len(released) == PARAMS.tracks
    new = {uri: date.fromisoformat(d) for uri, d in released.items() if date.fromisoformat(d) >= PARAMS.start}
    assert new and mpd[1]["new_release_plays"] > 0
    seen = 0
    for p in playlists:
        modified = datetime.fromtimestamp(p["modified_at"], UTC).date()
        for event in playlist_events(p):
            uri = f"spotify:track:{event['track_id']}"
            if uri in new:
                seen += 1
                assert new[uri] < modified
                assert (
                    event["timestamp"] - event["played_ms"]
                    >= _window_ms(PARAMS)[0] + (new[uri] - PARAMS.start).days * MS_PER_DAY
                )
    assert seen == mpd[1]["new_release_plays"]


def test_ground_truth_records_what_the_slices_hold(mpd: Mpd, playlists: list[dict[str, Any]]) -> None:
    truth = _truth(mpd[0] / GROUND_TRUTH)
    ids, chosen, theme_at = truth["track_ids"], truth["chosen"], truth["theme_at"]
    assert ids.size == PARAMS.tracks and chosen.shape[0] == PARAMS.playlists
    for p in playlists:
        pid, n = p["pid"], p["num_tracks"]
        assert ids[chosen[pid, :n]].tolist() == [t["track_uri"].removeprefix("spotify:track:") for t in p["tracks"]]
        assert (chosen[pid, n:] == -1).all() and (theme_at[pid, n:] == -1).all()
        assert [truth[key][pid] for key in ("length", "modified_at", "num_edits")] == [
            n,
            p["modified_at"],
            p["num_edits"],
        ]
        # The current theme is one of the mix's until the drift, its dominant theme's successor from then on.
        drift = truth["drift_pos"][pid]
        before = theme_at[pid, : n if drift < 0 else min(drift, n)]
        assert np.isin(before, truth["mix"][pid]).all()
        if 0 <= drift < n:
            assert (theme_at[pid, drift:n] == truth["successor"][truth["dominant"][pid]]).all()
    released = read_release_dates(mpd[0] / CATALOG_EXTRA)
    days = [(date.fromisoformat(released[f"spotify:track:{t}"]) - PARAMS.start).days for t in ids.tolist()]
    assert days == truth["release_day"].tolist()
    np.testing.assert_allclose(truth["mix_weight"].sum(axis=1), 1.0)
    assert PlaylistParams.from_json(json.loads(str(truth["params"]))) == PARAMS


def test_oracle_scores_are_chances_of_joining_the_rest(mpd: Mpd) -> None:
    path = mpd[0] / GROUND_TRUTH
    truth = _truth(path)
    pids = np.arange(0, PARAMS.playlists, 7)
    length = truth["length"][pids]
    prefix = length * 2 // 3
    scores = continuation_scores(path, pids, prefix, rollouts=100)
    assert scores.shape == (pids.size, PARAMS.tracks)
    assert ((scores >= 0) & (scores <= 1)).all()
    # Each rollout adds exactly the tracks left, none of the prefix, none out after the playlist's last edit.
    np.testing.assert_allclose(scores.sum(axis=1), length - prefix)
    last_out_by = (truth["modified_at"][pids] - int(truth["start_s"])) // SECONDS_PER_DAY - 1
    assert not scores[truth["release_day"][None, :] > last_out_by[:, None]].any()
    true_share = []
    for i, pid in enumerate(pids.tolist()):
        assert not scores[i, truth["chosen"][pid, : prefix[i]]].any()
        true_share.append(scores[i, truth["chosen"][pid, prefix[i] : length[i]]].mean())
    # The tracks the playlist really went on with score far above a random track of the catalog.
    assert np.mean(true_share) > 5 * np.mean((length - prefix) / PARAMS.tracks)
    assert np.array_equal(scores, continuation_scores(path, pids, prefix, rollouts=100))
    with pytest.raises(ValueError, match="prefix length"):
        continuation_scores(path, pids[:1], length[:1] + 1)


# Worlds where the next track is certain: one theme, each track followed by the next along its flow, or by the
# next on its artist's one album.
DETERMINED = {
    "flow": {"p_album_run": 0.0, "p_flow": 1.0, "flow_step_mean": 1.0},
    "album run": {"tracks_per_artist": 400.0, "album_size_mean": 1e9, "p_album_run": 1.0, "p_flow": 0.0},
}


@pytest.mark.parametrize("world", list(DETERMINED))
def test_oracle_puts_all_mass_on_a_certain_continuation(world: str, tmp_path: Path) -> None:
    params = PlaylistParams(playlists=60, tracks=400, days=10, themes=1, length_max=150, new_release_share=0.0,
                            seed=2, **DETERMINED[world])  # fmt: skip
    generate_mpd(params, tmp_path)
    truth = _truth(tmp_path / GROUND_TRUTH)
    flow_next = np.empty(params.tracks, dtype=np.int64)
    flow_next[truth["flow_track"]] = np.roll(truth["flow_track"], -1)
    # The track after each (the album's last has none: "params.tracks", past the catalog, where it stays).
    follow = np.append(flow_next if world == "flow" else np.arange(1, params.tracks + 1), params.tracks)
    pids, prefix, expected = [], [], []
    for pid, n in enumerate(truth["length"].tolist()):
        k, t, rest = n // 2, int(truth["chosen"][pid, n // 2 - 1]), []
        for _ in range(n - k):
            t = int(follow[t])
            rest.append(t)
        if max(rest) < params.tracks and not set(rest) & set(truth["chosen"][pid, :k].tolist()):
            assert truth["chosen"][pid, k:n].tolist() == rest
            pids.append(pid)
            prefix.append(k)
            expected.append(rest)
    # A flow of 400 never comes round within a playlist; an album run may reach the album's end.
    assert len(pids) == params.playlists if world == "flow" else len(pids) > 20
    scores = continuation_scores(tmp_path, pids, prefix, rollouts=50)
    certain = np.zeros_like(scores)
    for i, rest in enumerate(expected):
        certain[i, rest] = 1.0
    assert np.array_equal(scores, certain)


def test_oracle_rolls_out_from_before_or_after_the_drift(tmp_path: Path) -> None:
    # Two themes of disjoint tracks, each drifting to the other halfway through every playlist; each track a
    # popular one of the current theme (after 15 redraws of tracks already there, one of the whole catalog).
    params = PlaylistParams(playlists=80, tracks=400, days=10, themes=2, length_max=40, theme_counts=(1.0, 0.0, 0.0),
                            second_theme_share=0.0, drifting_themes=1.0, p_drift=1.0, drift_at=0.5, p_album_run=0.0,
                            p_flow=0.0, new_release_share=0.0, seed=2)  # fmt: skip
    generate_mpd(params, tmp_path)
    truth = _truth(tmp_path / GROUND_TRUTH)
    pids = np.arange(params.playlists)
    drift, first = truth["drift_pos"], truth["dominant"]
    assert (drift == np.ceil(truth["length"] / 2)).all() and (truth["successor"][first] == 1 - first).all()
    in_first = truth["theme1"][None, :] == first[:, None]  # (playlists, tracks)
    after = continuation_scores(tmp_path, pids, drift + 1, rollouts=100)
    assert after[in_first].sum() < 0.01 * after.sum()
    # From just before the drift, one more track of the first theme, then the second's.
    before = continuation_scores(tmp_path, pids, drift - 1, rollouts=100)
    assert np.mean(np.where(in_first, before, 0.0).sum(axis=1)) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"playlists": 0}, "--playlists"),
        ({"tracks": 300}, "--tracks"),
        ({"themes": 2000}, "--themes"),
        ({"p_album_run": 0.6, "p_flow": 0.6}, "p_album_run + p_flow"),
        ({"new_release_share": 0.9}, "new_release_share"),
    ],
)
def test_bad_parameters_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        PlaylistParams(**change)


# -- the mapping -------------------------------------------------------------------------------------------


def test_every_event_meets_the_contract(playlists: list[dict[str, Any]]) -> None:
    now_ms = _window_ms(PARAMS)[1] + MS_PER_DAY
    events = [e for p in playlists[:300] for e in playlist_events(p)]
    for event in events:
        parsed = ListeningEvent.model_validate(event, context={"now_ms": now_ms})
        assert parsed.action == "complete" and parsed.source == "import" and parsed.context == "other"
        assert parsed.region == DEFAULT_REGION and parsed.played_ms == parsed.track_duration_ms
        assert parsed.user_id.startswith("mpd-")
    assert playlist_events(playlists[0], region="VN")[0]["region"] == "VN"


def test_event_ids_are_deterministic_unique_uuids(playlists: list[dict[str, Any]]) -> None:
    events = [e for p in playlists for e in playlist_events(p)]
    again = [e for p in playlists for e in playlist_events(p)]
    assert events == again
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids) == sum(p["num_tracks"] for p in playlists)
    assert all(re.match(UUID_PATTERN, i) for i in ids)


def test_edits_are_contiguous_blocks_ending_a_day_apart() -> None:
    durations = [200_000, 180_000, 240_000, 210_000, 190_000, 230_000, 220_000]
    modified_at = 1_790_000_000
    events = playlist_events(_playlist(7, durations, num_edits=3, modified_at=modified_at))
    assert [e["session_id"] for e in events] == ["mpd-7-0"] * 3 + ["mpd-7-1"] * 2 + ["mpd-7-2"] * 2
    ends = {e["session_id"]: e["timestamp"] for e in events}  # the last event of each edit
    end_ms = modified_at * 1000
    assert ends == {"mpd-7-0": end_ms - 2 * MS_PER_DAY, "mpd-7-1": end_ms - MS_PER_DAY, "mpd-7-2": end_ms}
    for a, b in pairwise(events):
        assert a["timestamp"] < b["timestamp"]
        if a["session_id"] == b["session_id"]:
            assert b["timestamp"] - a["timestamp"] == b["played_ms"]  # back to back
    assert [e["track_duration_ms"] for e in events] == durations


def test_edit_count_is_bounded_by_the_tracks() -> None:
    assert {e["session_id"] for e in playlist_events(_playlist(1, [100_000] * 2, num_edits=5))} == {
        "mpd-1-0",
        "mpd-1-1",
    }
    assert {e["session_id"] for e in playlist_events(_playlist(2, [100_000] * 3, num_edits=0))} == {"mpd-2-0"}
    unplayable = _playlist(3, [100_000, 0, 100_000], num_edits=1)
    assert len(playlist_events(unplayable)) == 2 and len(catalog_rows([unplayable])) == 2


def test_generated_playlists_map_as_documented(playlists: list[dict[str, Any]]) -> None:
    for p in playlists:
        events = playlist_events(p)
        stamps = [e["timestamp"] for e in events]
        assert stamps == sorted(set(stamps))
        assert stamps[-1] == p["modified_at"] * 1000
        assert len({e["session_id"] for e in events}) == p["num_edits"]
        assert [e["track_id"] for e in events] == [t["track_uri"].split(":")[-1] for t in p["tracks"]]


def test_catalog_rows_one_per_track(mpd: Mpd, playlists: list[dict[str, Any]]) -> None:
    released = read_release_dates(mpd[0] / CATALOG_EXTRA)
    rows = catalog_rows(playlists, released)
    assert all(list(r) == CATALOG_COLUMNS for r in rows)
    assert len(rows) == len({r["track_id"] for r in rows}) == mpd[1]["tracks_used"]
    counts = Counter(t["track_uri"] for p in playlists for t in p["tracks"])
    for row in rows[:200]:
        uri = f"spotify:track:{row['track_id']}"
        assert row["popularity"] == counts[uri]
        assert row["release_date"] == released[uri]
        assert row["track_genre"] == "" and row["explicit"] == ""
    assert catalog_rows(playlists) == catalog_rows(playlists)
    assert {r["release_date"] for r in catalog_rows(playlists[:5])} == {""}


def test_catalog_first_seen_wins() -> None:
    a, b = _playlist(1, [100_000, 120_000], 1), _playlist(2, [100_000], 1)
    b["tracks"][0] |= {"track_uri": a["tracks"][0]["track_uri"], "track_name": "Another name"}
    rows = catalog_rows([a, b])
    assert [r["track_name"] for r in rows] == ["Track 0", "Track 1"]
    assert [r["popularity"] for r in rows] == [2, 1]


def test_a_truncated_slice_is_named_in_the_error_and_a_bad_playlist_is_rejected_whole(mpd: Mpd, tmp_path: Path) -> None:
    text = (mpd[0] / "mpd.slice.0-999.json").read_text()
    bad = tmp_path / "mpd.slice.0-999.json"
    bad.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=re.escape(str(bad)) + ".*bad JSON"):
        read_slice(bad)
    data = json.loads(text)
    del data["playlists"][3]["tracks"][2]["track_uri"]
    bad.write_text(json.dumps(data))
    playlists, rejected = read_slice(bad)
    assert len(playlists) == len(data["playlists"]) - 1 and 3 not in {p["pid"] for p in playlists}
    assert rejected.summary() == {
        "track: missing track_uri": {"count": 1, "examples": ["mpd.slice.0-999.json: playlist 3 (pid 3), track 2"]}
    }
    bad.write_text(json.dumps({"info": {}}))
    with pytest.raises(ValueError, match="no 'playlists' list"):
        read_slice(bad)


def test_slices_are_read_in_playlist_order(tmp_path: Path) -> None:
    for name in ("mpd.slice.10000-10999.json", "mpd.slice.2000-2999.json", "mpd.slice.0-999.json", "other.json"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in slice_files(tmp_path)] == [
        "mpd.slice.0-999.json",
        "mpd.slice.2000-2999.json",
        "mpd.slice.10000-10999.json",
    ]


def test_release_dates_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / CATALOG_EXTRA
    path.write_text(json.dumps({"spotify:track:x": "2026-09-31"}))
    with pytest.raises(ValueError, match=CATALOG_EXTRA):
        read_release_dates(path)
    path.write_text(json.dumps({"spotify:track:x": (date(2026, 9, 1) + timedelta(days=3)).isoformat()}))
    assert read_release_dates(path) == {"spotify:track:x": "2026-09-04"}
