"""Catalog rows: the tracks CSV (the public Spotify tracks dataset's columns, and ours), checked and merged.

The Python statement of the ``load_catalog`` job's rules (``encore_spark.transforms.catalog_tracks``, which is
the lake's defence for a catalog that arrives another way); ``tests/unit/test_import_contract.py`` holds the
two to the same answers.

- **Checks.** ``track_id`` an id; ``track_name`` and ``artists`` present; ``duration_ms`` a positive number.
  Audio features come all or none per row: a row with none loads without them (MPD's and Last.fm's tracks have
  none), a row with some needs every one to be a number.
- **Genres.** ``track_genre`` holds one genre or several separated by ``;``; ``sub_genre`` adds one more.
- **A track listed twice** merges when the listings agree: genres are united (first listing's first), the
  larger popularity is kept, and a blank is filled from a later listing. A listing whose details (name,
  artists, album, duration, explicit, release date, audio) differ from the first listing's, where both have
  one, is rejected.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from encore.imports import Rejections
from encore.models import AudioFeatures

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
AUDIO_COLUMNS = tuple(AudioFeatures.model_fields)
# The columns the load_catalog job reads, in the order an import writes them.
CATALOG_COLUMNS = [
    "track_id",
    "artists",
    "artist_id",
    "album_name",
    "track_name",
    "duration_ms",
    "explicit",
    "popularity",
    "track_genre",
    "release_date",
]
OUTPUT_COLUMNS = [*CATALOG_COLUMNS, *AUDIO_COLUMNS, "sub_genre", "lyrics", "image_url"]
REQUIRED_COLUMNS = ("track_id", "artists", "track_name", "duration_ms")
IDENTITY_COLUMNS = ("track_name", "artists", "album_name", "duration_ms", "explicit", "release_date", *AUDIO_COLUMNS)
GENRE_SEPARATOR = ";"
LISTED_AGAIN = "track_id: listed again with different details (the first listing is kept)"


def header_problem(columns: Iterable[str]) -> str | None:
    """Why a catalog file with these columns cannot be read at all, or None."""
    have = set(columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in have]
    if missing:
        return f"not a tracks CSV: no {', '.join(missing)} column (columns: {', '.join(sorted(have)) or 'none'})"
    partial = [c for c in AUDIO_COLUMNS if c not in have]
    if len(partial) < len(AUDIO_COLUMNS) and partial:
        return f"audio features come all or none: no {', '.join(partial)} column"
    return None


def _text(row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value).strip()


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def genres(row: Mapping[str, Any]) -> list[str]:
    """The row's genres in order, without blanks or repeats."""
    found = [g.strip() for g in _text(row, "track_genre").split(GENRE_SEPARATOR)] + [_text(row, "sub_genre")]
    return list(dict.fromkeys(g for g in found if g))


def check_row(row: Mapping[str, Any]) -> tuple[dict[str, str] | None, str]:
    """The row in ``OUTPUT_COLUMNS`` (text, normalised), or None and the reasons it cannot be loaded."""
    problems = []
    if not ID.match(_text(row, "track_id")):
        problems.append("track_id: missing or not an id")
    if not _text(row, "track_name"):
        problems.append("track_name: missing")
    if not _text(row, "artists"):
        problems.append("artists: missing")
    duration = _number(_text(row, "duration_ms"))
    if duration is None or int(duration) <= 0:
        problems.append("duration_ms: not positive")
    audio = {c: _text(row, c) for c in AUDIO_COLUMNS}
    if any(audio.values()):
        problems += [f"{c}: not a number" for c, v in audio.items() if _number(v) is None]
    if problems:
        return None, "; ".join(problems)
    out = {c: _text(row, c) for c in OUTPUT_COLUMNS}
    out["duration_ms"] = str(int(duration))  # type: ignore[arg-type]  # checked above
    out["explicit"] = "true" if out["explicit"].lower() == "true" else ("" if not out["explicit"] else "false")
    popularity = _number(out["popularity"])
    out["popularity"] = str(int(popularity)) if popularity is not None else ""
    out["track_genre"], out["sub_genre"] = GENRE_SEPARATOR.join(genres(row)), ""
    for c, v in audio.items():
        out[c] = repr(float(v)) if v else ""
    return out, ""


class Catalog:
    """Catalog rows by track id, merged as they arrive (``add``), in first-listed order (``rows``)."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, str]] = {}
        self._first: dict[str, dict[str, str]] = {}  # each track's first listing as it was, to compare against
        self._genres: dict[str, list[str]] = {}

    def __contains__(self, track_id: str) -> bool:
        return track_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, track_id: str) -> dict[str, str] | None:
        return self._rows.get(track_id)

    def add(self, row: Mapping[str, Any], where: str, rejections: Rejections) -> bool:
        """Check and merge one source row; a row that cannot be loaded or conflicts goes to ``rejections``."""
        checked, reason = check_row(row)
        if checked is None:
            rejections.add(where, reason, dict(row))
            return False
        track_id = checked["track_id"]
        first = self._rows.get(track_id)
        if first is None:
            self._rows[track_id], self._first[track_id] = checked, dict(checked)
            self._genres[track_id] = genres(checked)
            return True
        listed = self._first[track_id]
        if any(checked[c] and listed[c] and checked[c] != listed[c] for c in IDENTITY_COLUMNS):
            rejections.add(where, LISTED_AGAIN, dict(row))
            return False
        for column, value in checked.items():
            if value and not first[column]:
                first[column] = value
        if checked["popularity"] and first["popularity"]:
            first["popularity"] = str(max(int(first["popularity"]), int(checked["popularity"])))
        merged = self._genres[track_id]
        merged += [g for g in genres(checked) if g not in merged]
        first["track_genre"] = GENRE_SEPARATOR.join(merged)
        return True

    def rows(self) -> list[dict[str, str]]:
        return list(self._rows.values())

    def artist_ids(self) -> dict[str, str]:
        """Normalised artist name -> artist id, from the rows that have one (first listing wins)."""
        out: dict[str, str] = {}
        for row in self._rows.values():
            if row["artist_id"]:
                out.setdefault(normalise(row["artists"]), row["artist_id"])
        return out


@functools.lru_cache(maxsize=1 << 18)  # names repeat: an artist's for each of their tracks, a hit's for each play
def normalise(text: str) -> str:
    """Text for matching names across sources: case, accents, punctuation and spacing ignored."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    kept = "".join(ch if ch.isalnum() else " " for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(kept.split())
