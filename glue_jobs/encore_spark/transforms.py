"""Pure DataFrame -> DataFrame transforms of the Glue jobs (no I/O), tested on a local SparkSession.

The formulas are the architecture's, with their constants from ``encore.config`` (the same values the Lambda
functions use); ``encore.scoring.event_rating`` is the NumPy statement of the rating below.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pyspark import RDD, StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from encore.config import RatingWeights
from encore.imports import mpd
from encore.imports import tracks as tracks_contract
from encore.imports.tracks import GENRE_SEPARATOR, LISTED_AGAIN
from encore.models import (
    MAX_FUTURE_SKEW_MS,
    MAX_TRACK_DURATION_MS,
    MIN_TIMESTAMP_MS,
    PLAYED_OVER_DURATION_TOLERANCE_MS,
    Action,
    AudioFeatures,
    Context,
    ListeningEvent,
    Source,
)
from encore.regions import ISO_3166_ALPHA2

MS_PER_DAY = 86_400_000
AUDIO_FIELDS = tuple(AudioFeatures.model_fields)  # the contract's audio features, in its order
AUDIO_INTEGERS = ("key", "mode", "time_signature")
MS_PER_HOUR = 3_600_000
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
GLOBAL = "GLOBAL"

# The event contract's fields, in its order: raw events are read with every field as text, so that a wrong
# type becomes a reason instead of a null; curated rows add their event date.
EVENT_FIELDS = tuple(ListeningEvent.model_fields)
RAW_EVENT_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType()) for name in EVENT_FIELDS] + [T.StructField("_corrupt_record", T.StringType())]
)
CURATED_COLUMNS = [*EVENT_FIELDS, "dt"]


def _as_long(col: str) -> Column:
    """An integer field, or null when the text is not a whole number."""
    return F.when(F.col(col).rlike(r"^-?[0-9]{1,18}$"), F.col(col).cast(T.LongType()))


def validate_events(raw: DataFrame, now_ms: int, keep: Sequence[str] = ()) -> tuple[DataFrame, DataFrame]:
    """Split raw rows into valid events (typed, with ``dt``) and rejected rows (``record``, ``reason``, ``keep``).

    The rules are those of ``encore.models.ListeningEvent``; the API applies them first, this is the lake's
    defence against anything that reached the raw zone another way.
    """
    fields = list(EVENT_FIELDS)
    typed = raw.select(
        "*",
        _as_long("timestamp").alias("_ts"),
        _as_long("played_ms").alias("_played"),
        _as_long("track_duration_ms").alias("_duration"),
    )
    checks: list[tuple[Column, str]] = [
        (F.col("_corrupt_record").isNotNull(), "malformed JSON"),
        (~F.coalesce(F.col("event_id").rlike(UUID_PATTERN), F.lit(False)), "event_id: not a UUID"),
        (~F.coalesce(F.col("user_id").rlike(ID_PATTERN), F.lit(False)), "user_id: missing or not an id"),
        (~F.coalesce(F.col("track_id").rlike(ID_PATTERN), F.lit(False)), "track_id: missing or not an id"),
        (
            ~F.coalesce(F.col("action").isin([a.value for a in Action]), F.lit(False)),
            "action: not listen|skip|complete",
        ),
        (F.col("_ts").isNull(), "timestamp: not an integer"),
        (F.col("_ts") < MIN_TIMESTAMP_MS, "timestamp: before 2000 (seconds sent as milliseconds?)"),
        (F.col("_ts") > F.lit(now_ms + MAX_FUTURE_SKEW_MS), "timestamp: in the future"),
        (F.col("_played").isNull() | (F.col("_played") < 0), "played_ms: not a non-negative integer"),
        (
            F.col("_duration").isNull() | (F.col("_duration") <= 0) | (F.col("_duration") > MAX_TRACK_DURATION_MS),
            "track_duration_ms: not a positive duration",
        ),
        (F.col("_played") > F.col("_duration") + PLAYED_OVER_DURATION_TOLERANCE_MS, "played_ms: exceeds the duration"),
        (~F.coalesce(F.col("region").isin(sorted(ISO_3166_ALPHA2)), F.lit(False)), "region: not ISO 3166-1 alpha-2"),
        (F.col("source").isNotNull() & ~F.col("source").isin([s.value for s in Source]), "source: unknown"),
        (F.col("context").isNotNull() & ~F.col("context").isin([c.value for c in Context]), "context: unknown"),
    ]
    reasons = F.concat_ws("; ", *[F.when(cond, F.lit(text)) for cond, text in checks])
    checked = typed.withColumn("reason", reasons)
    rejected = checked.where(F.col("reason") != "").select(
        F.coalesce(F.col("_corrupt_record"), F.to_json(F.struct(*fields))).alias("record"), "reason", *keep
    )
    valid = checked.where(F.col("reason") == "").select(
        "event_id",
        "user_id",
        "track_id",
        "action",
        F.col("_ts").alias("timestamp"),
        F.col("_played").alias("played_ms"),
        F.col("_duration").alias("track_duration_ms"),
        "session_id",
        "region",
        F.coalesce("source", F.lit(Source.APP.value)).alias("source"),
        F.coalesce("context", F.lit(Context.OTHER.value)).alias("context"),
        "recommendation_id",
        F.date_format(F.from_unixtime(F.col("_ts") / 1000), "yyyy-MM-dd").alias("dt"),
    )
    return valid, rejected


def dedupe_events(events: DataFrame) -> DataFrame:
    """One row per ``event_id``. The pipeline is at-least-once and a client's event id names one event, so
    copies carry the same content; a hash aggregation keeps one without sorting millions of rows."""
    return events.dropDuplicates(["event_id"])


def is_qualifying(action: Column, played_ms: Column, qualifying_ms: int) -> Column:
    """A play that counts: completed, or listened to for longer than the threshold."""
    return (action == Action.COMPLETE.value) | (played_ms > qualifying_ms)


def event_rating(events: DataFrame, run_ms: int, rating: RatingWeights) -> DataFrame:
    """Each event's decayed contribution to its (user, track) rating (0 outside the window)."""
    age_days = (F.lit(run_ms) - F.col("timestamp")) / MS_PER_DAY
    base = (
        F.lit(rating.listened_log) * F.log1p(F.greatest(F.col("played_ms"), F.lit(0)) / 1000.0)
        + F.when(F.col("action") == Action.COMPLETE.value, rating.complete).otherwise(0.0)
        - F.when(
            (F.col("action") == Action.SKIP.value) & (F.col("played_ms") < rating.early_skip_ms), rating.early_skip
        ).otherwise(0.0)
    )
    decay = F.pow(F.lit(0.5), age_days / rating.half_life_days)
    in_window = (age_days >= 0) & (age_days <= rating.window_days)
    return events.withColumn("contribution", F.when(in_window, base * decay).otherwise(0.0))


def interactions(events: DataFrame, run_ms: int, rating: RatingWeights) -> DataFrame:
    """Implicit rating per (user, track) over the window: the training matrix."""
    rated = event_rating(events, run_ms, rating).where(
        (F.col("timestamp") <= run_ms) & (F.col("timestamp") >= run_ms - rating.window_days * MS_PER_DAY)
    )
    return rated.groupBy("user_id", "track_id").agg(
        F.sum("contribution").alias("rating"),
        F.min("timestamp").alias("first_ts"),
        F.count(F.lit(1)).alias("events"),
        F.sum(F.when(F.col("action") == Action.COMPLETE.value, 1).otherwise(0)).alias("completes"),
        F.sum(F.when(F.col("action") == Action.SKIP.value, 1).otherwise(0)).alias("skips"),
        F.max("timestamp").alias("last_ts"),
    )


def transitions(events: DataFrame, run_ms: int, qualifying_ms: int) -> DataFrame:
    """Consecutive plays within a session (previous track -> a qualifying next play): next-song's training data."""
    w = Window.partitionBy("session_id").orderBy("timestamp", "event_id")
    ordered = events.where(F.col("session_id").isNotNull() & (F.col("timestamp") <= run_ms)).withColumn(
        "prev_track_id", F.lag("track_id").over(w)
    )
    return ordered.where(
        F.col("prev_track_id").isNotNull()
        & (F.col("prev_track_id") != F.col("track_id"))
        & is_qualifying(F.col("action"), F.col("played_ms"), qualifying_ms)
    ).select("user_id", "session_id", "prev_track_id", "track_id", "timestamp")


def track_stats(events: DataFrame, run_ms: int, qualifying_ms: int) -> DataFrame:
    """plays_7d, plays_total, skip rate and distinct listeners per track (plays are qualifying plays)."""
    play = is_qualifying(F.col("action"), F.col("played_ms"), qualifying_ms)
    recent = F.col("timestamp") > run_ms - 7 * MS_PER_DAY
    past = events.where(F.col("timestamp") <= run_ms)
    return past.groupBy("track_id").agg(
        F.sum(F.when(play & recent, 1).otherwise(0)).cast("long").alias("plays_7d"),
        F.sum(F.when(play, 1).otherwise(0)).cast("long").alias("plays_total"),
        (F.sum(F.when(F.col("action") == Action.SKIP.value, 1).otherwise(0)) / F.count(F.lit(1))).alias("skip_rate"),
        F.countDistinct("user_id").alias("listeners"),
        F.max("timestamp").alias("last_ts"),
    )


def user_stats(events: DataFrame, run_ms: int, qualifying_ms: int) -> DataFrame:
    """Activity per listener: events, plays, distinct tracks, skip rate, last activity, most frequent region."""
    play = is_qualifying(F.col("action"), F.col("played_ms"), qualifying_ms)
    past = events.where(F.col("timestamp") <= run_ms)
    region = (
        past.groupBy("user_id", "region")
        .count()
        .withColumn("_n", F.row_number().over(Window.partitionBy("user_id").orderBy(F.desc("count"), "region")))
        .where(F.col("_n") == 1)
        .select("user_id", "region")
    )
    stats = past.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("events"),
        F.sum(F.when(play, 1).otherwise(0)).cast("long").alias("plays"),
        F.countDistinct("track_id").alias("tracks"),
        (F.sum(F.when(F.col("action") == Action.SKIP.value, 1).otherwise(0)) / F.count(F.lit(1))).alias("skip_rate"),
        F.max("timestamp").alias("last_ts"),
    )
    return stats.join(region, "user_id", "left")


def _ranked(counts: DataFrame, keys: list[str], size: int) -> DataFrame:
    w = Window.partitionBy(*keys).orderBy(F.desc("plays"), F.asc("track_id"))
    return counts.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= size)


def top_charts(
    events: DataFrame, window: str, size: int, since_ms: int, until_ms: int, qualifying_ms: int
) -> DataFrame:
    """Top ``size`` tracks by qualifying plays per region (and GLOBAL) per UTC hour or day.

    Columns: kind ("top"), region, window, period ("2026-11-21T10" or "2026-11-21"), rank, track_id, plays.
    """
    fmt = {"hour": "yyyy-MM-dd'T'HH", "day": "yyyy-MM-dd"}[window]
    plays = events.where(
        (F.col("timestamp") >= since_ms)
        & (F.col("timestamp") < until_ms)
        & is_qualifying(F.col("action"), F.col("played_ms"), qualifying_ms)
    ).withColumn("period", F.date_format(F.from_unixtime(F.col("timestamp") / 1000), fmt))
    per_region = plays.groupBy("region", "period", "track_id").agg(F.count(F.lit(1)).alias("plays"))
    world = (
        plays.groupBy("period", "track_id").agg(F.count(F.lit(1)).alias("plays")).withColumn("region", F.lit(GLOBAL))
    )
    counts = per_region.unionByName(world)
    return _ranked(counts, ["region", "period"], size).select(
        F.lit("top").alias("kind"), "region", F.lit(window).alias("window"), "period", "rank", "track_id", "plays"
    )


def trending(events: DataFrame, run_ms: int, size: int, qualifying_ms: int, prior: float = 5.0) -> DataFrame:
    """7-day trending per region (and GLOBAL): plays in the last 7 days times their growth over the 7 before.

    ``score = plays_7d * (plays_7d + prior) / (plays_prev_7d + prior)``; the prior keeps a track with 2 plays
    after 0 from outranking one with 500 after 400.
    """
    week = 7 * MS_PER_DAY
    plays = events.where(
        (F.col("timestamp") > run_ms - 2 * week)
        & (F.col("timestamp") <= run_ms)
        & is_qualifying(F.col("action"), F.col("played_ms"), qualifying_ms)
    ).withColumn("recent", F.col("timestamp") > run_ms - week)

    def agg(df: DataFrame, keys: list[str]) -> DataFrame:
        return df.groupBy(*keys).agg(
            F.sum(F.when(F.col("recent"), 1).otherwise(0)).alias("plays_7d"),
            F.sum(F.when(~F.col("recent"), 1).otherwise(0)).alias("plays_prev_7d"),
        )

    counts = agg(plays, ["region", "track_id"]).unionByName(
        agg(plays, ["track_id"]).withColumn("region", F.lit(GLOBAL))
    )
    scored = counts.where(F.col("plays_7d") > 0).withColumn(
        "score", F.col("plays_7d") * (F.col("plays_7d") + prior) / (F.col("plays_prev_7d") + prior)
    )
    w = Window.partitionBy("region").orderBy(F.desc("score"), F.desc("plays_7d"), F.asc("track_id"))
    day = F.date_format(F.from_unixtime(F.lit(run_ms // 1000)), "yyyy-MM-dd")
    return (
        scored.withColumn("rank", F.row_number().over(w))
        .where(F.col("rank") <= size)
        .select(
            F.lit("trending").alias("kind"),
            "region",
            F.lit("7d").alias("window"),
            day.alias("period"),
            "rank",
            "track_id",
            F.col("plays_7d").alias("plays"),
            "plays_prev_7d",
            "score",
        )
    )


def catalog_tracks(csv: DataFrame) -> tuple[DataFrame, DataFrame]:
    """The tracks CSV (public dataset's columns, plus ours where present) -> typed catalog rows, rejects.

    The rules are ``encore.imports.tracks``'s (the import's Python statement of them). Audio features come all
    or none per row: a row without any (playlists in MPD format, Last.fm tracks) loads with null features; a row
    with some needs every one to be a number, and a file with some audio columns needs them all. ``track_genre``
    holds one genre or several separated by ``;``. A track listed twice merges: genres united in listing order,
    the larger popularity, a blank filled from a later listing; a listing whose details differ from the first
    listing's (where both have one) is rejected with ``LISTED_AGAIN``.
    """
    cols = set(csv.columns)

    def opt(name: str) -> Column:
        return F.col(name) if name in cols else F.lit(None).cast("string")

    def given(name: str) -> Column:
        """The trimmed value, or null where the column is absent or the cell blank."""
        return F.when(F.trim(opt(name)) != "", F.trim(opt(name)))

    numeric = [f for f in AUDIO_FIELDS if f not in AUDIO_INTEGERS]
    has_audio = any(f in cols for f in AUDIO_FIELDS)
    missing_audio = [F.lit(f"{c}: no such column") for c in AUDIO_FIELDS if has_audio and c not in cols]
    row_has_audio = F.greatest(*[given(c).isNotNull() for c in AUDIO_FIELDS]) if has_audio else F.lit(False)
    listed = F.transform(F.split(F.coalesce(given("track_genre"), F.lit("")), GENRE_SEPARATOR), F.trim)
    genres = F.concat(listed, F.array(F.coalesce(given("sub_genre"), F.lit(""))))
    typed = csv.select(
        F.monotonically_increasing_id().alias("_listed"),  # file order: the first listing of a track wins
        given("track_id").alias("track_id"),
        given("track_name").alias("name"),
        F.coalesce(given("artist_id"), F.sha2(given("artists"), 256).substr(1, 22)).alias("artist_id"),
        given("artists").alias("artist_name"),
        given("album_name").alias("album"),
        F.array_distinct(F.filter(genres, lambda g: g != "")).alias("genres"),
        given("release_date").alias("release_date"),
        given("duration_ms").cast("double").cast("long").alias("duration_ms"),
        F.when(given("explicit").isNotNull(), F.lower(given("explicit")) == "true").alias("explicit"),
        *[given(c).cast("double").alias(c) for c in numeric],
        *[given(c).cast("double").cast("int").alias(c) for c in AUDIO_INTEGERS],
        given("popularity").cast("double").cast("int").alias("popularity"),
        given("lyrics").alias("lyrics"),
        given("image_url").alias("image_url"),
        *[given(c).alias(f"_raw_{c}") for c in AUDIO_FIELDS],
        row_has_audio.alias("_has_audio"),
    )
    not_numbers = [
        F.when(F.col("_has_audio") & F.col(f"_raw_{c}").cast("double").isNull(), F.lit(f"{c}: not a number"))
        for c in AUDIO_FIELDS
        if c in cols
    ]
    problems = F.concat_ws(
        "; ",
        F.when(~F.coalesce(F.col("track_id").rlike(ID_PATTERN), F.lit(False)), F.lit("track_id: missing or not an id")),
        F.when(F.col("name").isNull(), F.lit("track_name: missing")),
        F.when(F.col("artist_name").isNull(), F.lit("artists: missing")),
        F.when(F.col("duration_ms").isNull() | (F.col("duration_ms") <= 0), F.lit("duration_ms: not positive")),
        *missing_audio,
        *not_numbers,
    )
    record = F.to_json(F.struct(*[c for c in typed.columns if not c.startswith("_")]))
    checked = typed.withColumn("reason", problems).withColumn("record", record)
    valid = checked.where(F.col("reason") == "")
    # A later listing conflicts when a detail it has differs from the first listing's.
    first = Window.partitionBy("track_id").orderBy("_listed")
    whole = first.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    identity = ["name", "artist_name", "album", "duration_ms", "explicit", "release_date", *AUDIO_FIELDS]
    differs = [F.coalesce(F.col(c) != F.first(c).over(whole), F.lit(False)) for c in identity]
    flagged = valid.withColumn("_conflict", F.greatest(F.lit(False), *differs))
    kept = flagged.where(~F.col("_conflict"))
    filled = ["name", "artist_id", "artist_name", "album", "release_date", "duration_ms", "explicit", *AUDIO_FIELDS]
    merged = kept.select(
        "_listed",
        "track_id",
        *[F.first(c, ignorenulls=True).over(whole).alias(c) for c in [*filled, "lyrics", "image_url"]],
        F.array_distinct(F.flatten(F.collect_list("genres").over(whole))).alias("genres"),
        F.max("popularity").over(whole).alias("popularity"),
    )
    good = (
        merged.withColumn("_n", F.row_number().over(first))
        .where(F.col("_n") == 1)
        .select(
            "track_id",
            "name",
            "artist_id",
            "artist_name",
            F.coalesce("album", F.lit("")).alias("album"),
            "genres",
            F.coalesce("release_date", F.lit("1970-01-01")).alias("release_date"),
            "duration_ms",
            F.coalesce("explicit", F.lit(False)).alias("explicit"),
            *AUDIO_FIELDS,
            "popularity",
            F.coalesce("lyrics", F.lit("")).alias("lyrics"),
            "image_url",
        )
    )
    bad = (
        checked.where(F.col("reason") != "")
        .select("record", "reason")
        .unionByName(flagged.where(F.col("_conflict")).select("record", F.lit(LISTED_AGAIN).alias("reason")))
    )
    return good, bad


# --- import_playlists: MPD slices, converted by the command line's own mapping (encore.imports.mpd) ------------

_LONGS = ("timestamp", "played_ms", "track_duration_ms", "duration_ms", "popularity")
# The fields an MPD play has: the contract's but the last (recommendation_id).
IMPORTED_EVENT_SCHEMA = T.StructType(
    [T.StructField(n, T.LongType() if n in _LONGS else T.StringType()) for n in EVENT_FIELDS[:-1]]
)
IMPORTED_CATALOG_SCHEMA = T.StructType(
    [T.StructField(n, T.LongType() if n in _LONGS else T.StringType()) for n in tracks_contract.CATALOG_COLUMNS]
)
REJECTED_SCHEMA = T.StructType([T.StructField(name, T.StringType()) for name in ("where", "reason", "record")])
BAD_SLICE = "file: not a valid MPD slice (bad JSON or no playlists list)"


def _slice_records(item: tuple[str, bytes], region: str) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """One slice file -> ("event", row), ("track", (uri, (pid, pos), listing)) and ("rejected", row) records."""
    path, data = item
    try:
        playlists, rejections = mpd.parse_slice(data, path)
    except ValueError as exc:
        yield "rejected", (path, BAD_SLICE, str(exc))
        return
    for r in rejections.rows:
        yield "rejected", (r.where, r.reason, r.record)
    columns = IMPORTED_EVENT_SCHEMA.fieldNames()
    for playlist in playlists:
        for event in mpd.playlist_events(playlist, region):
            yield "event", tuple(event[c] for c in columns)
        first: dict[str, dict[str, Any]] = {}
        for track in mpd.ordered_tracks(playlist):
            first.setdefault(track["track_uri"], track)
        for uri, track in first.items():
            keep = {k: track[k] for k in ("track_uri", "artist_uri", "artist_name", "album_name", "track_name",
                                          "duration_ms")}  # fmt: skip
            yield "track", (uri, ((int(playlist["pid"]), int(track["pos"])), keep, 1))


def playlist_import(
    files: RDD[tuple[str, bytes]], region: str, release_dates: dict[str, str]
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """MPD slice files (path, bytes) -> events, catalog rows and rejected rows, exactly as ``encore import mpd``
    maps them: one catalog row per track, its first listing (lowest pid, then pos) with the number of playlists
    holding it as its popularity. The caller persists nothing: the records are cached here, read three times."""
    spark = SparkSession.builder.getOrCreate()
    records = files.flatMap(lambda item: _slice_records(item, region)).persist(StorageLevel.MEMORY_AND_DISK)

    def of(kind: str) -> RDD[Any]:
        return records.filter(lambda r: r[0] == kind).map(lambda r: r[1])

    def earlier(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
        first = a if a[0] <= b[0] else b
        return first[0], first[1], a[2] + b[2]

    rows = (
        of("track")
        .reduceByKey(earlier)
        .map(lambda kv: tuple(mpd.catalog_row(kv[1][1], kv[1][2], release_dates.get(kv[0], "")).values()))
    )
    return (
        spark.createDataFrame(of("event"), IMPORTED_EVENT_SCHEMA),
        spark.createDataFrame(rows, IMPORTED_CATALOG_SCHEMA),
        spark.createDataFrame(of("rejected"), REJECTED_SCHEMA),
    )


# -- attribution: what listeners did with each recommendation ----------------------------------------------------

ATTRIBUTION_KEYS = ("day", "surface", "model_version", "variant")
EARLY_PLAY_SLACK_MS = 60_000  # a play stamped this much before its impression is clock skew, not a stray id


def first_impressions(impressions: DataFrame) -> DataFrame:
    """One impression per ``recommendation_id``, the earliest (a log line may be delivered more than once)."""
    w = Window.partitionBy("recommendation_id").orderBy(F.asc("at_ms"))
    return impressions.withColumn("_n", F.row_number().over(w)).where(F.col("_n") == 1).drop("_n")


def attributed_plays(impressions: DataFrame, events: DataFrame, window_ms: int) -> DataFrame:
    """Every event that carried a ``recommendation_id``, with what became of it (``outcome``):

    - ``attributed``: its impression is known, the track was in it (``position``, 1-based) and it was played
      within ``window_ms`` of the answer;
    - ``outside_window``: later than that (or before the answer, past clock skew);
    - ``off_list``: the track was not among the answer's (a client that sent the wrong id);
    - ``unknown``: no impression has the id (lost, or never an answer of this deployment).
    """
    shown = first_impressions(impressions).select(
        "recommendation_id", "surface", "model_version", "variant", "track_ids", F.col("at_ms").alias("shown_ms")
    )
    plays = events.where(F.col("recommendation_id").isNotNull()).select(
        "event_id", "recommendation_id", "track_id", "action", "timestamp", "played_ms"
    )
    joined = plays.join(shown, "recommendation_id", "left")
    position = F.expr("array_position(track_ids, track_id)")  # 1-based; 0 when absent
    in_window = (F.col("timestamp") >= F.col("shown_ms") - EARLY_PLAY_SLACK_MS) & (
        F.col("timestamp") <= F.col("shown_ms") + window_ms
    )
    outcome = (
        F.when(F.col("shown_ms").isNull(), "unknown")
        .when(position == 0, "off_list")
        .when(~in_window, "outside_window")
        .otherwise("attributed")
    )
    return joined.select(
        "event_id",
        "recommendation_id",
        "track_id",
        "action",
        "timestamp",
        "played_ms",
        F.coalesce("surface", F.lit("unknown")).alias("surface"),
        "model_version",
        "variant",
        F.date_format(F.from_unixtime(F.coalesce("shown_ms", "timestamp") / 1000), "yyyy-MM-dd").alias("day"),
        F.when(position > 0, position).alias("position"),
        outcome.alias("outcome"),
    )


def attribution(impressions: DataFrame, events: DataFrame, window_ms: int) -> DataFrame:
    """Per day (of the answer) x surface x model version x variant: impressions, the plays they led to and how
    those went, and the plays that carried an id but could not be attributed (so every one is accounted for).

    Columns: ``ATTRIBUTION_KEYS``, impressions, plays, completes, early_skips, play_through_rate, early_skip_rate,
    mean_position, minutes_listened, outside_window, off_list, unknown.
    """
    shown = first_impressions(impressions).select(
        F.date_format(F.from_unixtime(F.col("at_ms") / 1000), "yyyy-MM-dd").alias("day"),
        "surface",
        "model_version",
        "variant",
        F.lit(1).alias("is_impression"),
        F.lit(None).cast("string").alias("outcome"),
        F.lit(None).cast("string").alias("action"),
        F.lit(None).cast("int").alias("position"),
        F.lit(None).cast("long").alias("played_ms"),
    )
    plays = attributed_plays(impressions, events, window_ms).select(
        *ATTRIBUTION_KEYS, F.lit(0).alias("is_impression"), "outcome", "action", "position", "played_ms"
    )
    rows = shown.unionByName(plays)
    attributed = F.col("outcome") == "attributed"

    def count(condition: Column) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0)).cast("long")

    table = rows.groupBy(*ATTRIBUTION_KEYS).agg(
        F.sum("is_impression").cast("long").alias("impressions"),
        count(attributed).alias("plays"),
        count(attributed & (F.col("action") == Action.COMPLETE.value)).alias("completes"),
        count(attributed & (F.col("action") == Action.SKIP.value)).alias("early_skips"),
        F.avg(F.when(attributed, F.col("position"))).alias("mean_position"),
        (F.sum(F.when(attributed, F.col("played_ms")).otherwise(0)) / 60_000.0).alias("minutes_listened"),
        count(F.col("outcome") == "outside_window").alias("outside_window"),
        count(F.col("outcome") == "off_list").alias("off_list"),
        count(F.col("outcome") == "unknown").alias("unknown"),
    )
    rate = lambda part: F.when(F.col("plays") > 0, F.col(part) / F.col("plays"))  # noqa: E731
    return table.select(
        *ATTRIBUTION_KEYS,
        "impressions",
        "plays",
        "completes",
        "early_skips",
        rate("completes").alias("play_through_rate"),
        rate("early_skips").alias("early_skip_rate"),
        "mean_position",
        "minutes_listened",
        "outside_window",
        "off_list",
        "unknown",
    )
