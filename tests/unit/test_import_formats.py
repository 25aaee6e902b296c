"""``encore import``'s conversions, on small files written here in each format, malformed ones included.

Pure: the shared conversions (``encore.imports``) and ``run_import`` as a dry run with no lake (``config`` None),
so nothing here needs the twin; landing is tests/integration/test_import.py's.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from encore.imports import Rejections, stable_id
from encore.imports import events as event_rows
from encore.imports.lastfm import DEFAULT_DURATION_MS, History, parse_profiles, parse_time
from encore.imports.tracks import AUDIO_COLUMNS, LISTED_AGAIN, OUTPUT_COLUMNS, Catalog, check_row, normalise
from encore.models import ListeningEvent
from encore_local.cli import main
from encore_local.errors import UsageError
from encore_local.importer import country_code, render, run_import

pytestmark = pytest.mark.unit
NOW_MS = parse_time("2026-11-01T00:00:00Z")
AUDIO = dict(zip(AUDIO_COLUMNS, ["0.5", "0.6", "1", "-5.5", "1", "0.1", "0.2", "0", "0.1", "0.4", "120", "4"],
                 strict=True))  # fmt: skip


def track(track_id: str, **extra: str) -> dict[str, str]:
    row = {"track_id": track_id, "artists": "Ana Lua", "album_name": "Tides", "track_name": f"Song {track_id}",
           "duration_ms": "200000", "explicit": "False", "popularity": "10", "track_genre": "pop"}  # fmt: skip
    return row | AUDIO | extra


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(c for r in rows for c in r))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


# --- catalog rows ----------------------------------------------------------------------------------------------


def test_a_good_row_is_normalised() -> None:
    row, reason = check_row(track("t1", sub_genre="indie pop", explicit="TRUE"))
    assert reason == "" and row is not None
    assert list(row) == OUTPUT_COLUMNS
    assert row["track_genre"] == "pop;indie pop" and row["sub_genre"] == "" and row["explicit"] == "true"
    assert row["loudness"] == "-5.5" and row["key"] == "1.0"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"track_id": ""}, "track_id: missing or not an id"),
        ({"track_id": "has space"}, "track_id: missing or not an id"),
        ({"track_name": " "}, "track_name: missing"),
        ({"artists": ""}, "artists: missing"),
        ({"duration_ms": "0"}, "duration_ms: not positive"),
        ({"duration_ms": "long"}, "duration_ms: not positive"),
        ({"danceability": "very"}, "danceability: not a number"),
        ({"tempo": ""}, "tempo: not a number"),  # some audio, not all
        ({"track_id": "", "energy": "x"}, "track_id: missing or not an id; energy: not a number"),
    ],
)
def test_a_bad_row_says_why(change: dict[str, str], reason: str) -> None:
    assert check_row(track("t1") | change) == (None, reason)


def test_a_row_without_any_audio_loads_without_it() -> None:
    row, _ = check_row(track("t1") | dict.fromkeys(AUDIO_COLUMNS, ""))
    assert row is not None and all(row[c] == "" for c in AUDIO_COLUMNS)


def test_a_track_listed_twice_merges_and_a_conflict_is_quarantined() -> None:
    catalog, rejections = Catalog(), Rejections()
    assert catalog.add(track("t1", track_genre="pop", popularity="10", release_date=""), "f:2", rejections)
    assert catalog.add(track("t1", track_genre="dance;pop", popularity="30", release_date="2020-01-02"), "f:3",
                       rejections)  # fmt: skip
    assert not catalog.add(track("t1", track_name="Another song"), "f:4", rejections)
    assert not catalog.add(track("t2", duration_ms="-1"), "f:5", rejections)
    merged = catalog.get("t1")
    assert merged is not None and len(catalog) == 1
    assert merged["track_genre"] == "pop;dance" and merged["popularity"] == "30"
    assert merged["release_date"] == "2020-01-02" and merged["track_name"] == "Song t1"
    assert rejections.summary() == {
        LISTED_AGAIN: {"count": 1, "examples": ["f:4"]},
        "duration_ms: not positive": {"count": 1, "examples": ["f:5"]},
    }
    assert json.loads(json.dumps([r.to_json() for r in rejections.rows]))[0]["record"].startswith("{'track_id'")


def test_names_match_across_case_accents_and_punctuation() -> None:
    assert normalise("Beyoncé – Halo (Live!)") == normalise("BEYONCE halo live") == "beyonce halo live"


# --- events -----------------------------------------------------------------------------------------------------


def event(**extra: Any) -> dict[str, Any]:
    base = {"event_id": "8a1c2d4e-1111-4222-8333-944455556666", "user_id": "u1", "track_id": "t1",
            "action": "complete", "timestamp": NOW_MS - 60_000, "played_ms": 200_000,
            "track_duration_ms": 200_000, "region": "GB"}  # fmt: skip
    return base | extra


def test_an_event_row_is_validated_by_the_contract() -> None:
    good, reason = event_rows.event_from_row(event(session_id="s1"), NOW_MS)
    assert reason == "" and good is not None and ListeningEvent.model_validate(good) is not None
    assert good["source"] == "app" and good["context"] == "other" and "recommendation_id" not in good
    bad, reason = event_rows.event_from_row(event(timestamp=1_700_000_000, region="UK"), NOW_MS)
    assert bad is None
    assert reason == ("timestamp: must be epoch milliseconds (this looks like seconds, or is before N-N-N); "
                      "region: 'UK' is not an ISO N-N alpha-N country code (for example US, GB, VN)")  # fmt: skip


def test_csv_text_and_missing_ids_become_the_contract() -> None:
    row = {k: str(v) for k, v in event().items() if k != "event_id"} | {"session_id": ""}
    first, _ = event_rows.event_from_row(row, NOW_MS)
    again, _ = event_rows.event_from_row(dict(row), NOW_MS)
    assert first is not None and first == again  # the same row, the same derived id
    assert first["timestamp"] == NOW_MS - 60_000 and "session_id" not in first


def test_an_events_file_with_unknown_columns_is_refused() -> None:
    assert event_rows.header_problem(["event_id", "user"]) is not None
    assert event_rows.header_problem(list(event())) is None


# --- Last.fm ----------------------------------------------------------------------------------------------------


def scrobble(user: str, when: str, artist: str, title: str, track_id: str = "", artist_id: str = "") -> str:
    return "\t".join([user, when, artist_id, artist, track_id, title]) + "\n"


def test_lastfm_plays_become_sessions_and_new_tracks() -> None:
    catalog, rejections = Catalog(), Rejections()
    catalog.add(track("known", track_name="Halo", artists="Beyoncé", duration_ms="240000"), "c:2", rejections)
    history = History(catalog, NOW_MS)
    lines = [
        scrobble("user_1", "2026-10-01T10:00:00Z", "BEYONCE", "halo!"),  # matched by name: 240 s
        scrobble("user_1", "2026-10-01T10:03:00Z", "Nova", "First"),  # new; the next play 3 min later
        scrobble("user_1", "2026-10-01T10:06:00Z", "Nova", "First"),
        scrobble("user_1", "2026-10-01T12:00:00Z", "Nova", "Second", track_id="mbid-2"),  # a new session
        scrobble("user_1", "2026-10-01T12:00:00Z", "Nova", "Second", track_id="mbid-2"),  # listed twice: once
        scrobble("user_2", "not a time", "Nova", "First"),
        "user_2\tonly two fields\n",
        scrobble("user_2", "1999-01-01T00:00:00Z", "Nova", "First"),
    ]
    for n, line in enumerate(lines, 1):
        history.add(line, f"plays.tsv:{n}", rejections)
    events = history.events(lambda user: "GB", rejections)
    assert len(events) == 4 and history.matched_by_name == 1
    halo, first, first_again, second = events
    assert halo["track_id"] == "known" and halo["action"] == "listen" and halo["played_ms"] == 180_000
    assert first["track_id"].startswith("lfm-") and first["track_duration_ms"] == 180_000
    assert first["action"] == "complete" and first_again["action"] == "complete"
    assert first["session_id"] == halo["session_id"] != second["session_id"]
    assert second["track_id"] == "mbid-2" and second["track_duration_ms"] == DEFAULT_DURATION_MS
    assert halo["timestamp"] == parse_time("2026-10-01T10:03:00Z")  # when the play ended
    assert all(ListeningEvent.model_validate(e, context={"now_ms": NOW_MS}) for e in events)
    assert len({e["event_id"] for e in events}) == 4
    assert set(rejections.counts) == {"timestamp: not a time like 2009-05-04T23:08:57Z", "timestamp: before 2000",
                                      "not 6 tab-separated fields (user_id | timestamp | artist_id | artist_name | "
                                      "track_id | track_name)"}  # fmt: skip
    assert {first["track_id"], second["track_id"]} <= {r["track_id"] for r in catalog.rows()}
    assert catalog.get(second["track_id"])["duration_ms"] == str(DEFAULT_DURATION_MS)  # type: ignore[index]


def test_lastfm_profiles_give_regions_and_signup_dates() -> None:
    rejections = Rejections()
    lines = ["#id\tgender\tage\tcountry\tregistered\n", "user_1\tf\t22\tUnited Kingdom\tAug 13, 2006\n",
             "user_2\tm\t\tKorea, Republic of\t\n", "user_3\t\t\tAtlantis\tFeb 1, 2007\n",
             "user_4\tm\t30\tJapan\tyesterday\n", "broken line\n"]  # fmt: skip
    profiles = parse_profiles(lines, country_code, "profile.tsv", rejections)
    assert profiles["user_1"] == {"region": "GB", "signup_date": "2006-08-13"}
    assert profiles["user_2"] == {"region": "KR", "signup_date": ""}
    assert profiles["user_3"]["region"] == ""  # unknown: the caller's default applies
    assert len(rejections) == 2 and "user_4" not in profiles


# --- the command's conversion, as a dry run ---------------------------------------------------------------------


def test_dry_run_of_each_format_reports_and_writes_nothing(tmp_path: Path) -> None:
    tracks_csv = write_csv(tmp_path / "tracks.csv", [track("t1"), track("t1", track_genre="rock"),
                                                     track("t2", danceability="high"), track("")])  # fmt: skip
    report = run_import(None, "spotify-tracks", [tracks_csv], dry_run=True, now_ms=NOW_MS)
    assert (report.rows, report.catalog_tracks, len(report.rejections)) == (4, 1, 2)
    assert set(report.rejections.counts) == {"danceability: not a number", "track_id: missing or not an id"}
    printed = render(report)
    assert "rejected: 2" in printed and "danceability: not a number  (e.g. tracks.csv:4)" in printed

    lines = [json.dumps(event()), json.dumps(event()), "{not json", json.dumps(event(event_id="x"))]
    jsonl = tmp_path / "events.jsonl.gz"
    jsonl.write_bytes(gzip.compress("\n".join(lines).encode()))
    report = run_import(None, "events", [jsonl], dry_run=True, now_ms=NOW_MS)
    assert (report.rows, report.events, len(report.rejections)) == (4, 1, 2)

    rows = [{k: str(v) for k, v in event(event_id=stable_id(i)).items()} for i in range(3)]
    rows[2]["action"] = "pause"
    events_csv = write_csv(tmp_path / "events.csv", rows)
    report = run_import(None, "events", [events_csv], dry_run=True, now_ms=NOW_MS)
    assert (report.events, list(report.rejections.counts)) == (2, ["action: Input should be 'listen', 'skip' or "
                                                                   "'complete'"])  # fmt: skip
    pd.DataFrame([event(), event(event_id=stable_id("x"), played_ms=-1)]).to_parquet(tmp_path / "e.parquet")
    report = run_import(None, "events", [tmp_path / "e.parquet"], dry_run=True, now_ms=NOW_MS)
    assert (report.events, list(report.rejections.counts)) == (1, ["played_ms: Input should be greater than or "
                                                                   "equal to N"])  # fmt: skip

    (tmp_path / "lfm").mkdir()
    plays = [scrobble("user_1", "2026-10-01T10:00:00Z", "Nova", "First"),
             scrobble("user_1", "2026-13-01T10:00:00Z", "Nova", "First")]  # fmt: skip
    (tmp_path / "lfm" / "plays.tsv").write_text("".join(plays))
    (tmp_path / "lfm" / "userid-profile.tsv").write_text("#id\tgender\tage\tcountry\tregistered\n"
                                                         "user_1\tf\t\tJapan\tAug 13, 2006\n")  # fmt: skip
    report = run_import(None, "lastfm", [tmp_path / "lfm"], dry_run=True, now_ms=NOW_MS)
    assert (report.events, report.listeners, report.catalog_tracks, len(report.rejections)) == (1, 1, 1, 1)


def test_a_truncated_slice_is_rejected_whole_and_the_others_convert(tmp_path: Path) -> None:
    good = {"playlists": [{"pid": 0, "modified_at": 1_790_000_000, "num_edits": 1, "tracks": [
        {"pos": 0, "artist_name": "A", "track_uri": "spotify:track:t1", "artist_uri": "spotify:artist:a1",
         "track_name": "T", "duration_ms": 200_000, "album_name": "B"}]},
        {"pid": 1, "modified_at": 1_790_000_000, "num_edits": 1, "tracks": [{"pos": 0}]}]}  # fmt: skip
    (tmp_path / "mpd.slice.0-999.json").write_text(json.dumps(good))
    (tmp_path / "mpd.slice.1000-1999.json").write_text(json.dumps(good)[:50])
    report = run_import(None, "mpd", [tmp_path], dry_run=True, now_ms=NOW_MS)
    assert report.events == 1 and report.catalog_tracks == 1
    assert report.rejections.summary() == {
        "file: not a valid MPD slice (bad JSON or no playlists list)": {
            "count": 1, "examples": [str(tmp_path / "mpd.slice.1000-1999.json")]},
        "track: missing artist_name, track_uri, artist_uri, track_name, duration_ms, album_name": {
            "count": 1, "examples": ["mpd.slice.0-999.json: playlist 1 (pid 1), track 0"]},
    }  # fmt: skip


def test_a_file_that_is_not_the_format_is_refused_whole(tmp_path: Path) -> None:
    other = write_csv(tmp_path / "other.csv", [{"id": "1", "name": "x"}])
    report = run_import(None, "spotify-tracks", [other], dry_run=True, now_ms=NOW_MS)
    assert report.catalog_tracks == 0 and list(report.rejections.counts) == [
        "file: not a tracks CSV: no track_id, artists, track_name, duration_ms column (columns: id, name)"
    ]
    with pytest.raises(UsageError, match="no such file"):
        run_import(None, "events", [tmp_path / "missing.jsonl"], dry_run=True)
    with pytest.raises(UsageError, match="no mpd files"):
        run_import(None, "mpd", [tmp_path], dry_run=True)


def test_the_command_line_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tracks_csv = write_csv(tmp_path / "tracks.csv", [track("t1"), track("t2", duration_ms="0")])
    code = main(["import", "spotify-tracks", str(tracks_csv), "--dry-run", "--quiet", "--json",
                 "--state-dir", str(tmp_path / "no-twin")])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["catalog_tracks"] == 1 and out["landed"] is False
    assert out["rejected_by_reason"] == {"duration_ms: not positive": {"count": 1, "examples": ["tracks.csv:3"]}}
    assert main(["import", "events", str(tracks_csv), "--region", "XX", "--dry-run"]) == 2
    assert "not an ISO 3166-1 alpha-2" in capsys.readouterr().err
