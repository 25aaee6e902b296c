"""The simulated catalog: artists and tracks with sub-style, mood, audio features, lyrics and popularity.

Tracks are held sorted by (genre, sub-style, artist) so that each of those is one contiguous block, which
lets the session model draw "a popular track of this artist / sub-style / genre" with one ``searchsorted``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from encore_local.simulator.params import SimulationParams
from encore_local.simulator.world import COMMON_WORDS, GENRES, MOOD_WORDS, NAME_WORDS, SYLLABLES

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_BASE62 = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))

# Columns of the public Spotify tracks dataset, then the ones it lacks that our contract needs.
CSV_COLUMNS = [
    "track_id",
    "artists",
    "album_name",
    "track_name",
    "popularity",
    "duration_ms",
    "explicit",
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "time_signature",
    "track_genre",
    "artist_id",
    "sub_genre",
    "release_date",
    "lyrics",
]
AUDIO_COLUMNS = ["danceability", "energy", "speechiness", "acousticness", "instrumentalness", "valence"]

STYLES = [(g, s) for g, genre in enumerate(GENRES) for s in genre.styles]
STYLE_GENRE = np.array([g for g, _ in STYLES])


def random_ids(rng: np.random.Generator, n: int, length: int = 22) -> list[str]:
    """Spotify-like base62 ids (22 characters), distinct."""
    while True:
        chars = _BASE62[rng.integers(0, 62, size=(n, length))]
        ids = ["".join(row) for row in chars.tolist()]
        if len(set(ids)) == n:
            return ids


@dataclass
class Catalog:
    track_ids: list[str]
    artist_ids: list[str]
    artist_names: list[str]
    track_artist: IntArray  # artist index per track
    track_style: IntArray  # index into STYLES
    track_genre: IntArray
    track_mood: IntArray  # index into MOODS
    quality: FloatArray  # own appeal in [0, 1]
    base_weight: FloatArray  # popularity weight before release dates and hype
    release_day: IntArray  # days since the simulation start (negative: released before it)
    duration_ms: IntArray
    audio: dict[str, FloatArray]
    explicit: npt.NDArray[np.bool_]
    names: list[str]
    albums: list[str]
    lyrics: list[str]
    # Contiguous blocks [lo, hi) of tracks per artist, style and genre.
    artist_block: tuple[IntArray, IntArray]
    style_block: tuple[IntArray, IntArray]
    genre_block: tuple[IntArray, IntArray]

    @property
    def size(self) -> int:
        return len(self.track_ids)

    def weights_on(self, day: int, params: SimulationParams) -> FloatArray:
        """Popularity weights on ``day``: unreleased tracks 0, new releases boosted for their first days."""
        since = day - self.release_day
        hype = 1.0 + params.new_release_hype * np.exp(-np.maximum(since, 0) / params.new_release_hype_days)
        w = self.base_weight * np.where(self.release_day >= 0, hype, 1.0)
        return np.where(since >= 0, w, 0.0) ** params.popularity_exponent


def _blocks(sorted_keys: IntArray, n_keys: int) -> tuple[IntArray, IntArray]:
    keys = np.arange(n_keys)
    return np.searchsorted(sorted_keys, keys, "left"), np.searchsorted(sorted_keys, keys, "right")


def _words(rng: np.random.Generator, vocab: tuple[str, ...], n: int) -> list[str]:
    return [vocab[i] for i in rng.integers(0, len(vocab), size=n)]


def _artist_name(rng: np.random.Generator) -> str:
    kind = rng.random()
    if kind < 0.4:
        return "The " + " ".join(w.title() for w in _words(rng, NAME_WORDS, 2))
    given = "".join(_words(rng, SYLLABLES, int(rng.integers(2, 4)))).title()
    family = "".join(_words(rng, SYLLABLES, int(rng.integers(2, 4)))).title()
    return given if kind < 0.6 else f"{given} {family}"


def build_catalog(params: SimulationParams, rng: np.random.Generator) -> Catalog:
    n = params.tracks
    n_artists = max(len(STYLES), round(n / params.tracks_per_artist))
    genre_share = np.array([g.share for g in GENRES])
    style_share = np.array([genre_share[g] / len(GENRES[g].styles) for g, _ in STYLES])
    # Every sub-style gets at least one artist; the rest follow the genre shares.
    artist_style = np.concatenate(
        [np.arange(len(STYLES)), rng.choice(len(STYLES), n_artists - len(STYLES), p=style_share / style_share.sum())]
    )
    artist_style.sort()  # artists ordered by (genre, style) since STYLES is
    artist_pop = rng.pareto(params.artist_popularity_alpha, n_artists) + 1.0
    productivity = rng.lognormal(0.0, 0.8, n_artists)
    # Each artist has at least one track; the rest by productivity.
    track_artist = np.concatenate(
        [np.arange(n_artists), rng.choice(n_artists, n - n_artists, p=productivity / productivity.sum())]
    )
    track_artist.sort()
    track_style = artist_style[track_artist]
    track_genre = STYLE_GENRE[track_style]

    log_track = rng.normal(0.0, params.track_popularity_sigma, n)
    base_weight = artist_pop[track_artist] * np.exp(log_track)
    z = np.log(base_weight)
    quality = 1.0 / (1.0 + np.exp(-(0.8 * (z - z.mean()) / z.std() + rng.normal(0, 0.6, n))))

    audio = _audio_features(params, rng, track_style)
    mood = 2 * (audio["valence"] > 0.5) + (audio["energy"] > 0.5)
    minutes = np.array([s.minutes for _, s in STYLES])[track_style]
    duration_ms = np.clip(rng.lognormal(np.log(minutes * 60_000), 0.25), 60_000, 20 * 60_000).astype(np.int64)
    explicit = rng.random(n) < np.array([g.explicit_rate for g in GENRES])[track_genre]

    # Catalog history: most tracks from recent years; a share released during the simulated period.
    release_day = -rng.exponential(6 * 365, n).astype(np.int64) - 1
    release_day = np.maximum(release_day, -(params.start - date(1960, 1, 1)).days)
    new = rng.random(n) < params.new_release_share
    release_day[new] = rng.integers(0, params.days, new.sum())

    artist_names = [_artist_name(rng) for _ in range(n_artists)]
    lyrics = _lyrics(rng, track_genre, track_style, mood, audio["instrumentalness"], params)
    names = [_title(rng, g, m) for g, m in zip(track_genre.tolist(), mood.tolist(), strict=True)]
    albums = [_title(rng, g, m) for g, m in zip(track_genre.tolist(), mood.tolist(), strict=True)]
    return Catalog(
        track_ids=random_ids(rng, n),
        artist_ids=random_ids(rng, n_artists),
        artist_names=artist_names,
        track_artist=track_artist,
        track_style=track_style,
        track_genre=track_genre,
        track_mood=mood.astype(np.int64),
        quality=quality,
        base_weight=base_weight,
        release_day=release_day,
        duration_ms=duration_ms,
        audio=audio,
        explicit=explicit,
        names=names,
        albums=albums,
        lyrics=lyrics,
        artist_block=_blocks(track_artist, n_artists),
        style_block=_blocks(track_style, len(STYLES)),
        genre_block=_blocks(track_genre, len(GENRES)),
    )


def _audio_features(params: SimulationParams, rng: np.random.Generator, style: IntArray) -> dict[str, FloatArray]:
    n = style.size
    styles = [s for _, s in STYLES]
    out: dict[str, FloatArray] = {}
    for col in AUDIO_COLUMNS:
        mean = np.array([getattr(s, col) for s in styles])[style]
        out[col] = np.clip(mean + rng.normal(0, params.feature_noise, n), 0.0, 1.0).round(3)
    tempo = np.array([s.tempo for s in styles])[style]
    out["tempo"] = np.clip(tempo * rng.lognormal(0, 0.08, n), 40, 240).round(3)
    loud = np.array([s.loudness for s in styles])[style]
    out["loudness"] = np.clip(loud + rng.normal(0, 2.0, n), -50, 0).round(3)
    out["liveness"] = np.clip(rng.beta(1.5, 8, n), 0, 1).round(3)
    out["key"] = rng.integers(0, 12, n).astype(np.float64)
    out["mode"] = (rng.random(n) < 0.35 + 0.4 * out["valence"]).astype(np.float64)
    out["time_signature"] = np.where(rng.random(n) < 0.9, 4, rng.choice([3, 5], n)).astype(np.float64)
    return out


def _title(rng: np.random.Generator, genre: int, mood: int) -> str:
    pool = GENRES[genre].words + MOOD_WORDS[mood] + NAME_WORDS
    return " ".join(w.title() for w in _words(rng, pool, int(rng.integers(1, 4))))


def _lyrics(
    rng: np.random.Generator,
    genre: IntArray,
    style: IntArray,
    mood: IntArray,
    instrumentalness: FloatArray,
    params: SimulationParams,
) -> list[str]:
    """Lyrics-like text: words from the genre's, the sub-style's and the mood's vocabularies plus common words."""
    out = []
    sources = np.array([0.35, 0.15, 0.30, 0.20])
    for g, s, m, instr in zip(genre.tolist(), style.tolist(), mood.tolist(), instrumentalness.tolist(), strict=True):
        if instr > params.instrumental_threshold:
            out.append("")
            continue
        vocabs = (GENRES[g].words, STYLES[s][1].words, MOOD_WORDS[m], COMMON_WORDS)
        n_words = int(rng.integers(30, 70))
        picks = rng.choice(4, n_words, p=sources)
        idx = rng.random(n_words)
        words = [vocabs[p][int(u * len(vocabs[p]))] for p, u in zip(picks.tolist(), idx.tolist(), strict=True)]
        out.append(" / ".join(" ".join(words[i : i + 7]) for i in range(0, n_words, 7)))
    return out


def popularity_score(catalog: Catalog) -> npt.NDArray[np.int64]:
    """0-100 like the public dataset: the percentile of popularity before the period; 0 for new releases."""
    released = catalog.release_day < 0
    ranks = np.argsort(np.argsort(catalog.base_weight))
    pct = ranks / max(catalog.size - 1, 1)
    return np.where(released, np.round(100 * pct**2), 0).astype(np.int64)


def write_catalog_csv(catalog: Catalog, params: SimulationParams, path: Path, rng: np.random.Generator) -> None:
    """The catalog in the public dataset's shape (rows shuffled so row order reveals nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    popularity = popularity_score(catalog).tolist()
    audio = {k: v.tolist() for k, v in catalog.audio.items()}
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for i in rng.permutation(catalog.size).tolist():
            a = int(catalog.track_artist[i])
            g, s = STYLES[int(catalog.track_style[i])]
            released = params.start + timedelta(days=int(catalog.release_day[i]))
            writer.writerow(
                [
                    catalog.track_ids[i],
                    catalog.artist_names[a],
                    catalog.albums[i],
                    catalog.names[i],
                    popularity[i],
                    int(catalog.duration_ms[i]),
                    bool(catalog.explicit[i]),
                    audio["danceability"][i],
                    audio["energy"][i],
                    int(audio["key"][i]),
                    audio["loudness"][i],
                    int(audio["mode"][i]),
                    audio["speechiness"][i],
                    audio["acousticness"][i],
                    audio["instrumentalness"][i],
                    audio["liveness"][i],
                    audio["valence"][i],
                    audio["tempo"][i],
                    int(audio["time_signature"][i]),
                    GENRES[g].name,
                    catalog.artist_ids[a],
                    s.name,
                    released.isoformat(),
                    catalog.lyrics[i],
                ]
            )
