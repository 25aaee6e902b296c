"""Playlists in MPD format through the pipeline on the twin: import, load_catalog, curate_events, build_features.

As bench/bench_model.py's ``features_for`` runs them, and with the jobs' script assets. MPD has no audio features
and no genres, so this is also the catalog job's check on a catalog without them; the last test gives it one with
a bad audio value, which must still be rejected.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.playlists import CATALOG_COLUMNS, read_release_dates
from encore_local.jobs import run_job
from encore_local.lake import import_playlists
from encore_local.playlists import CATALOG_EXTRA, PlaylistParams, generate_mpd
from encore_local.twin.services import TwinServices

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PARAMS = PlaylistParams(playlists=60, tracks=300, days=10, themes=8, length_max=120, seed=5)
RUN_DAY = PARAMS.start + timedelta(days=PARAMS.days)
RUN_TIME = f"{RUN_DAY.isoformat()}T00:00:00Z"


def _empty_lake(config: EncoreConfig) -> None:
    """The dev stage's lake may hold another module's data (test_jobs): start from nothing."""
    s3 = get_client("s3")
    bucket = config.resources.lake_bucket
    lake = config.lake
    for prefix in (lake.raw_events, lake.curated_events, lake.features, lake.quarantine, lake.catalog):
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        while keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[:1000]]})
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


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
def mpd_lake(twin_services: TwinServices, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    config = twin_services.deploy("dev")
    _empty_lake(config)
    out = tmp_path_factory.mktemp("mpd")
    summary = generate_mpd(PARAMS, out)
    imported = import_playlists(config, out, arrived=(RUN_DAY - timedelta(days=1)).isoformat())
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
    assert imported.events == mpd_lake["summary"]["plays"] and imported.catalog_objects == 1
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


def test_a_non_numeric_audio_value_is_still_rejected(mpd_lake: dict[str, Any], tmp_path: Path) -> None:
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
    ]
    text = io.StringIO()
    writer = csv.DictWriter(text, [*CATALOG_COLUMNS, *audio])
    writer.writeheader()
    writer.writerows(rows)
    get_client("s3").put_object(
        Bucket=config.resources.lake_bucket, Key=f"{config.lake.catalog}tracks.csv", Body=text.getvalue().encode()
    )
    run = run_job("load_catalog", config)
    assert run.result["tracks"] == 1 and run.result["rejected"] == 1
    bad = _table(config, f"{config.lake.quarantine}catalog/", tmp_path)
    assert list(bad["reason"]) == ["danceability: not a number"]
    assert '"track_id":"bad1"' in bad["record"].iloc[0]
