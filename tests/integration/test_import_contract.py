"""The catalog's rules are stated twice: in Python for ``encore import`` (``encore.imports.tracks``) and in Spark
for the load_catalog job (``encore_spark.transforms.catalog_tracks``, the lake's defence). Both read the same file
here and must keep the same tracks, merged the same way, and reject the same rows for the same reasons."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from encore.imports import Rejections
from encore.imports.tracks import AUDIO_COLUMNS, GENRE_SEPARATOR, Catalog
from encore_spark.io import spark_session
from encore_spark.transforms import catalog_tracks

pytestmark = [pytest.mark.integration, pytest.mark.slow]
AUDIO = dict(zip(AUDIO_COLUMNS, ["0.5", "0.6", "1", "-5", "1", "0.1", "0.2", "0", "0.1", "0.4", "120", "4"],
                 strict=True))  # fmt: skip
NO_AUDIO = dict.fromkeys(AUDIO_COLUMNS, "")


def row(track_id: str, **extra: str) -> dict[str, str]:
    base = {"track_id": track_id, "artists": "Ana", "artist_id": "", "album_name": "Tides", "track_name": "Song",
            "duration_ms": "200000", "explicit": "False", "popularity": "10", "track_genre": "pop",
            "sub_genre": "", "release_date": "2020-01-01"}  # fmt: skip
    return base | AUDIO | extra


ROWS = [
    row("plain"),
    row("twice", track_genre="pop", popularity="5"),
    row("twice", track_genre="rock; pop", popularity="50", sub_genre="indie"),  # merges
    row("twice", track_name="Other"),  # conflicts with the first listing
    row("fills", release_date="", album_name=""),
    row("fills", release_date="2021-02-03", album_name="Late"),  # fills the blanks
    row("silent", **NO_AUDIO),  # no audio at all: loads without
    row("silent", track_genre="ambient", **NO_AUDIO),
    row("mixed", danceability="", energy="0.3"),  # some audio: every value must be a number
    row("loud", tempo="fast"),
    row("noise", **dict.fromkeys(AUDIO_COLUMNS, "n/a")),
    row("", track_name=""),
    row("bad id!"),
    row("short", duration_ms="0"),
    row("float", duration_ms="215000.7", popularity="7.0"),
]


@pytest.fixture(scope="module")
def spark() -> SparkSession:
    return spark_session("encore-import-contract")


@pytest.fixture(scope="module")
def catalog_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "tracks.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    return path


def test_python_and_spark_keep_and_reject_the_same_rows(spark: SparkSession, catalog_csv: Path) -> None:
    catalog, rejections = Catalog(), Rejections()
    with catalog_csv.open(encoding="utf-8", newline="") as fh:
        for n, source in enumerate(csv.DictReader(fh), 2):
            catalog.add(source, f"tracks.csv:{n}", rejections)
    python = {
        r["track_id"]: (r["track_name"], r["album_name"], r["release_date"], int(r["duration_ms"]),
                        int(r["popularity"]), r["track_genre"].split(GENRE_SEPARATOR), r["danceability"] != "")
        for r in catalog.rows()
    }  # fmt: skip

    frame = spark.read.option("header", True).option("multiLine", True).option("escape", '"').csv(str(catalog_csv))
    good, bad = catalog_tracks(frame)
    spark_rows = {
        r.track_id: (r.name, r.album, r.release_date, r.duration_ms, r.popularity, list(r.genres),
                     r.danceability is not None)
        for r in good.collect()
    }  # fmt: skip
    assert spark_rows == python
    assert Counter(r.reason for r in bad.collect()) == rejections.counts
    assert python["twice"][4:6] == (50, ["pop", "rock", "indie"])
    assert python["fills"][1:3] == ("Late", "2021-02-03")
    assert python["silent"][5:] == (["pop", "ambient"], False)
    assert python["float"][3:5] == (215000, 7)
    assert set(python) == {"plain", "twice", "fills", "silent", "float"}
