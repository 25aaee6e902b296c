"""``encore import`` into the twin's lake, then the pipeline's jobs (their script assets) on what landed.

MPD playlists go through load_catalog, curate_events and build_features, as bench/bench_model.py's
``features_for`` runs them; MPD has no audio features and no genres, so this is also the catalog job's check on a
catalog without them. Then: importing again adds nothing twice, a catalog that lists a track twice merges or
quarantines, and the other formats land where the pipeline reads them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.imports.mpd import read_release_dates, slice_files
from encore.imports.tracks import CATALOG_COLUMNS, LISTED_AGAIN
from encore_local.importer import convert, run_import
from encore_local.jobs import run_job
from encore_local.playlists import CATALOG_EXTRA, PlaylistParams, generate_mpd

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PARAMS = PlaylistParams(playlists=60, tracks=300, days=10, themes=8, length_max=120, seed=5)
RUN_DAY = PARAMS.start + timedelta(days=PARAMS.days)
RUN_TIME = f"{RUN_DAY.isoformat()}T00:00:00Z"


def _table(config: EncoreConfig, prefix: str, tmp: Path) -> pd.DataFrame:
    s3 = get_client("s3")
    bucket = config.resources.lake_bucket
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        if obj["Key"].endswith(".parquet"):
            target = tmp / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
    return pd.read_parquet(tmp / prefix)


@pytest.fixture(scope="module")
def mpd_lake(dev_stage: EncoreConfig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    config = dev_stage
    out = tmp_path_factory.mktemp("mpd")
    summary = generate_mpd(PARAMS, out)
    imported = run_import(config, "mpd", [out], arrived=(RUN_DAY - timedelta(days=1)).isoformat())
    runs = {
        "load_catalog": run_job("load_catalog", config),
        "curate_events": run_job("curate_events", config, run_time=RUN_TIME, lookback_days=0),
        "build_features": run_job("build_features", config, run_time=RUN_TIME),
    }
    tmp = tmp_path_factory.mktemp("features")
    tables = {
        name: _table(config, f"{config.lake.features}{name}/", tmp)
        for name in ("interactions", "transitions", "tracks")
    }
    return {"config": config, "out": out, "summary": summary, "imported": imported, "runs": runs, "tables": tables}


def test_every_play_is_imported_and_curated(mpd_lake: dict[str, Any]) -> None:
    imported, runs = mpd_lake["imported"], mpd_lake["runs"]
    assert imported.events == mpd_lake["summary"]["plays"] and len(imported.rejections) == 0
    assert imported.objects == 1 + len(slice_files(mpd_lake["out"]))  # the catalog, one object per slice
    assert runs["curate_events"].result["curated"] == imported.events
    assert runs["curate_events"].result["rejected"] == 0


def test_the_catalog_without_audio_or_genres_loads_whole(mpd_lake: dict[str, Any]) -> None:
    tracks = mpd_lake["tables"]["tracks"]
    result = mpd_lake["runs"]["load_catalog"].result
    assert result["rejected"] == 0 and result["tracks"] == mpd_lake["summary"]["tracks_used"] == len(tracks)
    assert tracks["danceability"].isna().all() and tracks["tempo"].isna().all() and tracks["key"].isna().all()
    assert all(len(g) == 0 for g in tracks["genres"])
    released = read_release_dates(mpd_lake["out"] / CATALOG_EXTRA)
    assert set(tracks["release_date"]) <= set(released.values())
    item = get_client("dynamodb").get_item(
        TableName=mpd_lake["config"].resources.tracks_table, Key={"track_id": {"S": tracks["track_id"].iloc[0]}}
    )["Item"]
    assert "audio" not in item and item["genres"]["L"] == []


def test_features_have_interactions_and_transitions_for_every_track(mpd_lake: dict[str, Any]) -> None:
    inter, trans, tracks = (mpd_lake["tables"][t] for t in ("interactions", "transitions", "tracks"))
    assert len(inter) > 0 and len(trans) > 0
    assert inter["user_id"].str.startswith("mpd-").all()
    assert inter["user_id"].nunique() == PARAMS.playlists
    assert set(inter["track_id"]) == set(tracks["track_id"])  # every track of the catalog was played


def _keys(config: EncoreConfig, prefix: str) -> set[str]:
    pages = (
        get_client("s3").get_paginator("list_objects_v2").paginate(Bucket=config.resources.lake_bucket, Prefix=prefix)
    )
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _read(config: EncoreConfig, key: str) -> str:
    body = get_client("s3").get_object(Bucket=config.resources.lake_bucket, Key=key)["Body"].read()
    return str(body.decode("utf-8"))


def test_importing_again_adds_nothing_twice(mpd_lake: dict[str, Any]) -> None:
    """Again, landed under another arrival day (new objects): the event ids are the first import's."""
    config, first = mpd_lake["config"], mpd_lake["imported"]
    before = _keys(config, config.lake.raw_events)
    again = run_import(config, "mpd", [mpd_lake["out"]], arrived=(RUN_DAY - timedelta(days=2)).isoformat())
    assert again.events == first.events and len(_keys(config, config.lake.raw_events) - before) == again.objects - 1
    run = run_job("curate_events", config, run_time=RUN_TIME, lookback_days=0)
    assert run.result["curated"] == first.events and run.result["rejected"] == 0


def test_a_tracks_csv_adds_to_the_catalog_and_quarantines_what_conflicts(mpd_lake: dict[str, Any],
                                                                        tmp_path: Path) -> None:  # fmt: skip
    config = mpd_lake["config"]
    existing = next(csv.DictReader(io.StringIO(_read(config, f"{config.lake.catalog}tracks.csv"))))
    rows = [
        {"track_id": "newTrack1", "artists": "Ana", "track_name": "One", "duration_ms": "180000", "popularity": "3",
         "track_genre": "pop;dance", "album_name": "Tides", "explicit": "True", "release_date": "2026-08-01"},
        {"track_id": "newTrack2", "artists": "Ana", "track_name": "Two", "duration_ms": "181000", "popularity": "4",
         "track_genre": "pop", "album_name": "Tides", "explicit": "False", "release_date": "2026-08-01"},
        {**{k: existing[k] for k in ("track_id", "artists", "album_name", "duration_ms")}, "track_name": "Renamed",
         "popularity": "1", "track_genre": "rock", "explicit": "", "release_date": ""},
    ]  # fmt: skip
    path = tmp_path / "tracks.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = run_import(config, "spotify-tracks", [path], arrived=RUN_DAY.isoformat())
    assert report.catalog_tracks == mpd_lake["summary"]["tracks_used"] + 2 and report.events == 0
    assert list(report.rejections.counts) == [LISTED_AGAIN]
    quarantine = report.quarantine.removeprefix(f"s3://{config.resources.lake_bucket}/")
    summary = json.loads(_read(config, f"{quarantine}summary.json"))
    assert summary["rejected_by_reason"] == {LISTED_AGAIN: {"count": 1, "examples": ["tracks.csv:4"]}}
    run = run_job("load_catalog", config)
    assert run.result["tracks"] == report.catalog_tracks and run.result["rejected"] == 0
    item = get_client("dynamodb").get_item(TableName=config.resources.tracks_table,
                                           Key={"track_id": {"S": "newTrack1"}})["Item"]  # fmt: skip
    assert [g["S"] for g in item["genres"]["L"]] == ["pop", "dance"] and item["explicit"]["BOOL"] is True


def test_lastfm_and_event_files_land_where_the_pipeline_reads(mpd_lake: dict[str, Any], tmp_path: Path) -> None:
    config = mpd_lake["config"]
    day = (RUN_DAY - timedelta(days=3)).isoformat()
    plays = [f"user_{u:06d}\t{day}T{10 + u}:{m:02d}:00Z\t\tNova\t\tSong {m % 3}\n" for u in range(3) for m in (0, 4, 8)]
    (tmp_path / "lastfm").mkdir()
    (tmp_path / "lastfm" / "userid-timestamp-artid-artname-traid-traname.tsv").write_text("".join(plays))
    (tmp_path / "lastfm" / "userid-profile.tsv").write_text(
        "#id\tgender\tage\tcountry\tregistered\nuser_000000\tf\t22\tGermany\tAug 13, 2006\n"
    )
    lastfm = run_import(config, "lastfm", [tmp_path / "lastfm"], arrived=RUN_DAY.isoformat())
    assert lastfm.events == 9 and lastfm.listeners == 3 and len(lastfm.rejections) == 0
    listeners = {
        r["user_id"]: r for r in csv.DictReader(io.StringIO(_read(config, f"{config.lake.catalog}listeners.csv")))
    }
    assert listeners["user_000000"]["region"] == "DE" and listeners["user_000001"]["region"] == "US"
    lines = [json.dumps({"user_id": "app-user", "track_id": "newTrack2", "action": "complete",
                         "timestamp": lastfm_ms(day) + i, "played_ms": 181000, "track_duration_ms": 181000,
                         "region": "GB"}) for i in range(4)]  # fmt: skip
    (tmp_path / "events.jsonl").write_text("\n".join([*lines, lines[0], '{"user_id": 1}']))
    events = run_import(config, "events", [tmp_path / "events.jsonl"], arrived=RUN_DAY.isoformat())
    assert events.events == 4 and len(events.rejections) == 1
    run = run_job("curate_events", config, run_time=RUN_TIME, lookback_days=0)
    assert run.result["curated"] == mpd_lake["imported"].events + 9 + 4 and run.result["rejected"] == 0


def lastfm_ms(day: str) -> int:
    return int(datetime.fromisoformat(f"{day}T09:00:00+00:00").timestamp() * 1000)


def test_the_catalog_job_rejects_a_bad_audio_value_and_merges_a_track_listed_twice(
    mpd_lake: dict[str, Any], tmp_path: Path
) -> None:
    """Last in this module: it replaces the catalog."""
    config = mpd_lake["config"]
    audio = {"danceability": "0.5", "energy": "0.6", "key": "1", "loudness": "-5", "mode": "1", "speechiness": "0.1",
             "acousticness": "0.2", "instrumentalness": "0", "liveness": "0.1", "valence": "0.4", "tempo": "120",
             "time_signature": "4"}  # fmt: skip
    base = {"artists": "A", "artist_id": "A1", "album_name": "B", "duration_ms": "200000", "explicit": "false",
            "popularity": "1", "track_genre": "", "release_date": "2026-09-01"}  # fmt: skip
    rows = [
        base | audio | {"track_id": "good1", "track_name": "Fine"},
        base | audio | {"track_id": "bad1", "track_name": "Loud", "danceability": "very"},
        base | audio | {"track_id": "good1", "track_name": "Fine", "track_genre": "rock"},  # merges
        base | audio | {"track_id": "good1", "track_name": "Not fine"},  # conflicts
    ]
    text = io.StringIO()
    writer = csv.DictWriter(text, [*CATALOG_COLUMNS, *audio])
    writer.writeheader()
    writer.writerows(rows)
    get_client("s3").put_object(
        Bucket=config.resources.lake_bucket, Key=f"{config.lake.catalog}tracks.csv", Body=text.getvalue().encode()
    )
    run = run_job("load_catalog", config)
    assert run.result["tracks"] == 1 and run.result["rejected"] == 2
    bad = _table(config, f"{config.lake.quarantine}catalog/", tmp_path)
    assert sorted(bad["reason"]) == sorted(["danceability: not a number", LISTED_AGAIN])
    assert any('"track_id":"bad1"' in r for r in bad["record"])
    item = get_client("dynamodb").get_item(TableName=config.resources.tracks_table, Key={"track_id": {"S": "good1"}})
    assert [g["S"] for g in item["Item"]["genres"]["L"]] == ["rock"]


def test_the_glue_job_converts_the_full_dataset_as_the_command_line_does(mpd_lake: dict[str, Any]) -> None:
    """import_playlists over slices uploaded to imports/mpd/ (one of them cut short): the same events and
    catalog rows as ``encore import mpd``; curation finds nothing new, and load_catalog merges its rows."""
    config, out = mpd_lake["config"], mpd_lake["out"]
    s3, bucket = get_client("s3"), config.resources.lake_bucket
    for path in [*slice_files(out), out / CATALOG_EXTRA]:
        s3.upload_file(str(path), bucket, f"{config.lake.imports}mpd/{path.name}")
    cut = (out / "mpd.slice.0-999.json").read_bytes()[:-100]
    s3.put_object(Bucket=bucket, Key=f"{config.lake.imports}mpd/mpd.slice.9000-9999.json", Body=cut)
    converted, report = convert(None, "mpd", [out])
    curated_before = run_job("curate_events", config, run_time=RUN_TIME, lookback_days=0).result["curated"]

    run = run_job("import_playlists", config, run_time=RUN_TIME)
    assert run.result == {"slices": 2, "events": report.events, "tracks": report.catalog_tracks, "rejected": 1}
    day = f"{config.lake.raw_events}{RUN_DAY:%Y/%m/%d}/00/"
    written = [k for k in _keys(config, day) if k.rsplit("/", 1)[-1].startswith("part-")]
    ids = {json.loads(line)["event_id"] for k in written for line in gzip.decompress(
        s3.get_object(Bucket=bucket, Key=k)["Body"].read()).decode().splitlines()}  # fmt: skip
    assert ids == {e["event_id"] for events in converted.events.values() for e in events}
    catalog_keys = [k for k in _keys(config, f"{config.lake.catalog}imports/mpd/") if k.endswith(".csv")]
    rows = {r["track_id"]: r for k in catalog_keys for r in csv.DictReader(io.StringIO(_read(config, k)))}
    expected = {r["track_id"]: r for r in converted.catalog.rows()}  # type: ignore[union-attr]
    assert rows.keys() == expected.keys()
    for column in ("track_name", "artist_id", "duration_ms", "popularity", "release_date"):
        assert {t: r[column] for t, r in rows.items()} == {t: expected[t][column] for t in rows}, column
    assert _keys(config, f"{config.lake.quarantine}import/mpd/")

    again = run_job("curate_events", config, run_time=RUN_TIME, lookback_days=0)
    assert again.result["curated"] == curated_before  # the job's events were all there already
    loaded = run_job("load_catalog", config)
    assert loaded.result["tracks"] == 1 + report.catalog_tracks  # the tracks CSV's one track and the import's
