"""Catalog filters applied inside the model's exact top-K: what the catalog says of each track (explicit, release
day, genres, artist), and a request's filter turned into a mask over the catalog. Tracks outside the mask are
banned like the listener's own plays, so every source ranks only allowed tracks and a page comes back short only
when the filter leaves fewer tracks than it asks for. Python 3.9-compatible (the scikit-learn container).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

MAX_LISTED = 100  # genres or artists named in one filter
MAX_GENRE = 100  # characters in a genre's name
MAX_DAYS = 36_500
ID = r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}"  # a track or artist id, as ``encore.models.Identifier`` has it
# A request's filter (``encore.models.CatalogFilter``): what each key takes.
KEYS = {
    "genres_in": f"a list of genres (a track passes with any of them), each at most {MAX_GENRE} characters",
    "genres_not_in": f"a list of genres (a track with any of them is left out), each at most {MAX_GENRE} characters",
    "explicit": "true or false (false leaves explicit tracks out)",
    "released_within_days": f"a whole number of days, 0 to {MAX_DAYS}",
    "released_before": "a date, YYYY-MM-DD",
    "exclude_artists": "a list of artist ids",
}
EPOCH = dt.date(1970, 1, 1)


def check(spec: Any) -> dict[str, Any]:
    """The filter as the model applies it; a ``ValueError`` that says what to change otherwise."""
    if not isinstance(spec, dict):
        raise ValueError("filter must be a JSON object")
    unknown = set(spec) - set(KEYS)
    if unknown:
        raise ValueError(f"unknown filter keys: {', '.join(sorted(unknown))} (known: {', '.join(KEYS)})")
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if value is None:
            continue
        if key in ("genres_in", "genres_not_in", "exclude_artists"):
            if not _is_list_of(value, key):
                raise ValueError(f"filter.{key} must be {KEYS[key]}: at least 1, at most {MAX_LISTED}")
            out[key] = [v.lower() for v in value] if key != "exclude_artists" else list(value)
        elif key == "explicit":
            if not isinstance(value, bool):
                raise ValueError(f"filter.explicit must be {KEYS[key]}")
            out[key] = value
        elif key == "released_within_days":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DAYS:
                raise ValueError(f"filter.released_within_days must be {KEYS[key]}")
            out[key] = value
        else:
            try:
                out[key] = dt.date.fromisoformat(value) if isinstance(value, str) else None
            except ValueError:
                out[key] = None
            if out[key] is None:
                raise ValueError(f"filter.released_before must be {KEYS[key]}")
    return out


def _is_list_of(value: Any, key: str) -> bool:
    """Whether ``value`` lists 1 to ``MAX_LISTED`` of what ``key`` names: artist ids, or genres."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LISTED or not all(isinstance(v, str) for v in value):
        return False
    if key == "exclude_artists":
        return all(re.fullmatch(ID, v) for v in value)
    return all(1 <= len(v) <= MAX_GENRE for v in value)


@dataclass
class CatalogFacts:
    """Per track (aligned with the model's track ids): explicit or not, release day, genres, artist."""

    explicit: np.ndarray  # (n,) bool; unknown counts as not explicit
    released_day: np.ndarray  # (n,) days since 1970-01-01; NaN where the catalog has no date
    genre_names: np.ndarray  # (g,) lower-case genre names
    genre_of: sp.csr_matrix  # (n, g): 1 where the track has the genre
    artist_ids: np.ndarray  # (n,) str

    def arrays(self) -> dict[str, np.ndarray]:
        m = sp.csr_matrix(self.genre_of, dtype=np.int8)
        return {"facts_explicit": self.explicit, "facts_released_day": self.released_day.astype(np.float32),
                "facts_genre_names": self.genre_names.astype(str), "facts_genre_data": m.data,
                "facts_genre_indices": m.indices, "facts_genre_indptr": m.indptr}  # fmt: skip

    @classmethod
    def from_arrays(cls, z: Any, artist_ids: np.ndarray) -> CatalogFacts | None:
        if "facts_explicit" not in z:
            return None
        n, names = int(z["facts_explicit"].size), z["facts_genre_names"]
        genre_of = sp.csr_matrix((z["facts_genre_data"], z["facts_genre_indices"], z["facts_genre_indptr"]),
                                 shape=(n, names.size))  # fmt: skip
        return cls(z["facts_explicit"].astype(bool), z["facts_released_day"].astype(np.float64), names, genre_of,
                   artist_ids)  # fmt: skip

    @classmethod
    def of(cls, explicit: list[Any], release_dates: list[Any], genres: list[list[str]],
           artist_ids: np.ndarray) -> CatalogFacts:  # fmt: skip
        """From the catalog's columns, in the model's track order."""
        names = sorted({g.lower() for gs in genres for g in gs if g})
        column = {g: j for j, g in enumerate(names)}
        rows = [i for i, gs in enumerate(genres) for g in dict.fromkeys(x.lower() for x in gs if x)]
        cols = [column[g] for gs in genres for g in dict.fromkeys(x.lower() for x in gs if x)]
        genre_of = sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(len(genres), len(names)))
        days = np.full(len(release_dates), np.nan)
        for i, value in enumerate(release_dates):
            try:
                days[i] = (dt.date.fromisoformat(str(value)[:10]) - EPOCH).days
            except ValueError:
                continue  # a year alone, or nothing: unknown
        flags = np.array([v is True or str(v).lower() == "true" for v in explicit], dtype=bool)
        return cls(flags, days, np.array(names, dtype=str), genre_of, artist_ids)

    def __post_init__(self) -> None:
        # Serving builds a mask per request: the tracks of a genre are a column of the CSC form, and an artist's
        # tracks a run of the artist-sorted order (comparing 100k strings per request would cost milliseconds).
        self._by_genre = sp.csc_matrix(self.genre_of)
        self._column = {g: j for j, g in enumerate(self.genre_names.tolist())}
        self._by_artist = np.argsort(self.artist_ids, kind="stable")
        self._sorted_artists = self.artist_ids[self._by_artist]

    def _of_genres(self, genres: list[str]) -> np.ndarray:
        cols = [self._column[g] for g in genres if g in self._column]
        starts, ends = self._by_genre.indptr[cols], self._by_genre.indptr[np.asarray(cols, dtype=np.int64) + 1]
        rows = [self._by_genre.indices[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
        return np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)

    def _of_artists(self, artists: list[str]) -> np.ndarray:
        lo = np.searchsorted(self._sorted_artists, artists, side="left")
        hi = np.searchsorted(self._sorted_artists, artists, side="right")
        runs = [self._by_artist[a:b] for a, b in zip(lo.tolist(), hi.tolist()) if b > a]
        return np.concatenate(runs) if runs else np.empty(0, dtype=np.int64)

    def mask(self, spec: dict[str, Any], today: dt.date) -> np.ndarray | None:
        """The tracks the filter allows (``None``: it allows every track)."""
        if not spec:
            return None
        allowed = np.ones(self.explicit.size, dtype=bool)
        if "genres_in" in spec:
            having = np.zeros(allowed.size, dtype=bool)
            having[self._of_genres(spec["genres_in"])] = True
            allowed &= having
        if "genres_not_in" in spec:
            allowed[self._of_genres(spec["genres_not_in"])] = False
        if spec.get("explicit") is False:
            allowed &= ~self.explicit
        today_day = (today - EPOCH).days
        with np.errstate(invalid="ignore"):  # an unknown release date passes no date filter
            if "released_within_days" in spec:
                allowed &= self.released_day >= today_day - spec["released_within_days"]
            if "released_before" in spec:
                allowed &= self.released_day < (spec["released_before"] - EPOCH).days
        if "exclude_artists" in spec:
            allowed[self._of_artists(spec["exclude_artists"])] = False
        return allowed
