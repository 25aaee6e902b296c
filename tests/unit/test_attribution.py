"""The attribution join (``encore_spark.transforms.attribution``) on a local SparkSession, against an independent
pandas computation of the same rules, on data with every awkward case: late and early plays, plays of tracks
not in the answer, impressions delivered twice, ids no impression has, fallback answers without a model."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T  # noqa: N812 - PySpark's own idiom

from encore_spark.transforms import ATTRIBUTION_KEYS, EARLY_PLAY_SLACK_MS, attributed_plays, attribution

pytestmark = pytest.mark.unit
WINDOW_MS = 6 * 3_600_000
OTHER_OUTCOMES = ("outside_window", "off_list", "unknown")
DAY0 = 1_790_000_000_000  # 2026-09-21
IMPRESSIONS = T.StructType([
    T.StructField("recommendation_id", T.StringType()), T.StructField("surface", T.StringType()),
    T.StructField("model_version", T.StringType()), T.StructField("variant", T.StringType()),
    T.StructField("track_ids", T.ArrayType(T.StringType())), T.StructField("at_ms", T.LongType()),
])  # fmt: skip
EVENTS = T.StructType([
    T.StructField("event_id", T.StringType()), T.StructField("recommendation_id", T.StringType()),
    T.StructField("track_id", T.StringType()), T.StructField("action", T.StringType()),
    T.StructField("timestamp", T.LongType()), T.StructField("played_ms", T.LongType()),
])  # fmt: skip


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = (SparkSession.builder.master("local[1]").appName("attribution-test")
               .config("spark.sql.session.timeZone", "UTC").config("spark.sql.shuffle.partitions", "2")
               .config("spark.ui.enabled", "false").getOrCreate())  # fmt: skip
    yield session
    session.stop()


def generated(seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    tracks = [f"t{i}" for i in range(60)]
    rows = []
    for i in range(300):
        fallback = rng.random() < 0.15
        rows.append({
            "recommendation_id": f"r{i}",
            "surface": str(rng.choice(["home", "next", "similar"])),
            "model_version": None if fallback else str(rng.choice(["m1", "m2"])),
            "variant": None if fallback else str(rng.choice(["champion", "challenger"])),
            "track_ids": [str(t) for t in rng.choice(tracks, size=int(rng.integers(0, 10)), replace=False)],
            "at_ms": DAY0 + int(rng.integers(0, 3 * 86_400_000)),
        })  # fmt: skip
    impressions = pd.DataFrame(rows)
    again = impressions.sample(30, random_state=seed).copy()  # delivered twice, the copy later
    again["at_ms"] += 1000
    impressions = pd.concat([impressions, again], ignore_index=True)
    events = []
    for j in range(900):
        shown = impressions.iloc[int(rng.integers(0, 300))]
        kind = rng.random()
        listed = list(shown["track_ids"])
        track = str(rng.choice(listed)) if listed and kind < 0.8 else str(rng.choice(tracks))
        offset = {0: int(rng.integers(0, WINDOW_MS)), 1: WINDOW_MS + int(rng.integers(1, 10**8)),
                  2: -EARLY_PLAY_SLACK_MS - int(rng.integers(1, 10**6)), 3: int(rng.integers(0, WINDOW_MS))}[
            int(rng.choice(4, p=[0.7, 0.1, 0.05, 0.15]))]  # fmt: skip
        rid = shown["recommendation_id"] if rng.random() > 0.05 else f"unknown-{j}"
        events.append({
            "event_id": f"e{j}", "recommendation_id": rid, "track_id": track,
            "action": str(rng.choice(["listen", "skip", "complete"])),
            "timestamp": int(shown["at_ms"]) + offset, "played_ms": int(rng.integers(0, 300_000)),
        })  # fmt: skip
    events.append({"event_id": "organic", "recommendation_id": None, "track_id": "t1", "action": "complete",
                   "timestamp": DAY0, "played_ms": 200_000})  # fmt: skip
    return impressions, pd.DataFrame(events)


def day(ms: pd.Series) -> pd.Series:
    return pd.to_datetime(ms, unit="ms", utc=True).dt.strftime("%Y-%m-%d")


def reference(impressions: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The rules, written again in pandas, row by row where that is clearer."""
    first = impressions.sort_values("at_ms", kind="stable").drop_duplicates("recommendation_id")
    by_id = first.set_index("recommendation_id")
    plays = []
    for e in events[events["recommendation_id"].notna()].itertuples():
        if e.recommendation_id not in by_id.index:
            plays.append({"day": day(pd.Series([e.timestamp]))[0], "surface": "unknown", "model_version": None,
                          "variant": None, "outcome": "unknown", "action": e.action, "position": None,
                          "played_ms": e.played_ms})  # fmt: skip
            continue
        shown = by_id.loc[e.recommendation_id]
        listed = list(shown["track_ids"])
        if e.track_id not in listed:
            outcome = "off_list"
        elif not shown["at_ms"] - EARLY_PLAY_SLACK_MS <= e.timestamp <= shown["at_ms"] + WINDOW_MS:
            outcome = "outside_window"
        else:
            outcome = "attributed"
        plays.append({"day": day(pd.Series([shown["at_ms"]]))[0], "surface": shown["surface"],
                      "model_version": shown["model_version"], "variant": shown["variant"], "outcome": outcome,
                      "action": e.action, "position": listed.index(e.track_id) + 1 if e.track_id in listed else None,
                      "played_ms": e.played_ms})  # fmt: skip
    plays_df = pd.DataFrame(plays)
    shown_df = first.assign(day=day(first["at_ms"]))[list(ATTRIBUTION_KEYS)]
    keys = list(ATTRIBUTION_KEYS)
    groups: dict[tuple, dict] = {}
    for row in shown_df.itertuples(index=False):
        groups.setdefault(tuple(row), {"impressions": 0, "rows": []})["impressions"] += 1
    for row in plays_df.to_dict("records"):
        groups.setdefault(tuple(row[k] for k in keys), {"impressions": 0, "rows": []})["rows"].append(row)
    out = []
    for key, g in groups.items():
        got = [r for r in g["rows"] if r["outcome"] == "attributed"]
        n = len(got)
        completes = sum(r["action"] == "complete" for r in got)
        skips = sum(r["action"] == "skip" for r in got)
        out.append({**dict(zip(keys, key, strict=True)), "impressions": g["impressions"], "plays": n,
                    "completes": completes, "early_skips": skips, "play_through_rate": completes / n if n else None,
                    "early_skip_rate": skips / n if n else None,
                    "mean_position": float(np.mean([r["position"] for r in got])) if n else None,
                    "minutes_listened": sum(r["played_ms"] for r in got) / 60_000.0,
                    **{o: sum(r["outcome"] == o for r in g["rows"]) for o in OTHER_OUTCOMES}})  # fmt: skip
    return pd.DataFrame(out)


def normalised(frame: pd.DataFrame) -> pd.DataFrame:
    keyed = frame.assign(**{k: frame[k].fillna("-") for k in ATTRIBUTION_KEYS})
    return keyed.sort_values(list(ATTRIBUTION_KEYS)).reset_index(drop=True)


def test_the_table_matches_an_independent_computation(spark: SparkSession) -> None:
    impressions, events = generated()
    table = attribution(spark.createDataFrame(impressions, IMPRESSIONS),
                        spark.createDataFrame(events, EVENTS), WINDOW_MS).toPandas()  # fmt: skip
    expected = reference(impressions, events)
    got, want = normalised(table), normalised(expected)
    assert list(got[list(ATTRIBUTION_KEYS)].itertuples(index=False)) == list(
        want[list(ATTRIBUTION_KEYS)].itertuples(index=False)
    )
    for column in ("impressions", "plays", "completes", "early_skips", "outside_window", "off_list", "unknown"):
        assert got[column].astype(int).tolist() == want[column].astype(int).tolist(), column
    for column in ("play_through_rate", "early_skip_rate", "mean_position", "minutes_listened"):
        np.testing.assert_allclose(got[column].astype(float), want[column].astype(float), rtol=1e-9, err_msg=column)
    assert (table[["plays", *OTHER_OUTCOMES]].sum() > 0).all()  # the data has every case
    # every play that carried an id is accounted for, exactly once
    carried = int(events["recommendation_id"].notna().sum())
    assert int(table[["plays", "outside_window", "off_list", "unknown"]].to_numpy().sum()) == carried
    assert int(table["impressions"].sum()) == impressions["recommendation_id"].nunique()


def test_each_awkward_case_gets_its_outcome(spark: SparkSession) -> None:
    impressions = pd.DataFrame([
        {"recommendation_id": "r1", "surface": "home", "model_version": "m1", "variant": "champion",
         "track_ids": ["a", "b", "c"], "at_ms": DAY0},
        {"recommendation_id": "r1", "surface": "home", "model_version": "m1", "variant": "champion",
         "track_ids": ["a", "b", "c"], "at_ms": DAY0 + 5000},  # the same line delivered twice
    ])  # fmt: skip
    events = pd.DataFrame([
        {"event_id": "on-time", "recommendation_id": "r1", "track_id": "b", "action": "complete",
         "timestamp": DAY0 + 1000, "played_ms": 180_000},
        {"event_id": "late", "recommendation_id": "r1", "track_id": "c", "action": "listen",
         "timestamp": DAY0 + WINDOW_MS + 1, "played_ms": 40_000},
        {"event_id": "skewed", "recommendation_id": "r1", "track_id": "a", "action": "skip",
         "timestamp": DAY0 - EARLY_PLAY_SLACK_MS + 1, "played_ms": 3_000},
        {"event_id": "off-list", "recommendation_id": "r1", "track_id": "z", "action": "complete",
         "timestamp": DAY0 + 1000, "played_ms": 180_000},
        {"event_id": "stray", "recommendation_id": "r9", "track_id": "a", "action": "listen",
         "timestamp": DAY0 + 1000, "played_ms": 60_000},
    ])  # fmt: skip
    plays = attributed_plays(spark.createDataFrame(impressions, IMPRESSIONS), spark.createDataFrame(events, EVENTS),
                             WINDOW_MS).toPandas().set_index("event_id")  # fmt: skip
    assert plays["outcome"].to_dict() == {
        "on-time": "attributed", "late": "outside_window", "skewed": "attributed", "off-list": "off_list",
        "stray": "unknown",
    }  # fmt: skip
    assert plays.loc["on-time", "position"] == 2 and plays.loc["skewed", "position"] == 1
