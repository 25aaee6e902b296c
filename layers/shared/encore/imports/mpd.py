"""Playlists in the Spotify Million Playlist Dataset (MPD) format, mapped onto Encore's contracts.

Pure (standard library and the event contract's enums), so the command line and a Glue job can share it. MPD
has playlists, not plays; the mapping reads each playlist as its owner's listening, spread over its edits:

- **Listener.** A playlist is one listener, ``user_id = "mpd-<pid>"``.
- **Edits.** Its tracks, in ``pos`` order, form ``n = min(max(num_edits, 1), tracks)`` contiguous, near-equal
  blocks: the i-th of ``L`` tracks belongs to edit ``i * n // L``. Edit ``j`` ends ``n - 1 - j`` days before
  ``modified_at``, so the last one ends at ``modified_at``. Each edit is one session
  (``session_id = "mpd-<pid>-<j>"``).
- **Plays.** Within an edit the tracks play back to back for their ``duration_ms``. One ``complete`` event per
  track, its ``timestamp`` the moment the play ended (as the player posts it, and as the simulator writes it):
  the edit's last event is at the edit's end. ``played_ms = track_duration_ms = duration_ms``.
- **Contract values.** ``source`` is ``import``; ``context`` is ``other`` (the contract has no playlist
  context); MPD has no country, so ``region`` is the caller's, by default ``US`` (``DEFAULT_REGION``).
- **Idempotency.** ``event_id`` is a UUID5 of (pid, pos, track URI) (``encore.imports.stable_id``): importing
  a slice again yields the same ids, which the curate job keeps once.
- **Catalog.** One row per distinct track (first seen wins, in reading order) in the tracks-CSV columns the
  load_catalog job reads (``tracks.CATALOG_COLUMNS``): the 22-character ids after ``spotify:track:`` and
  ``spotify:artist:``, ``popularity`` the number of playlists holding the track, no genre (MPD has none), no
  audio features, ``explicit`` unknown (blank: loaded as false), and ``release_date`` from a release-date file
  (``{track_uri: date}``, such as the generator's ``catalog_extra.json``) when one is given, else empty.

A track without a positive duration (of at most six hours) has no play to map: it yields no event and no row.
A playlist that lacks a key the mapping reads is rejected whole (``read_slice``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from encore.imports import Rejections, stable_id
from encore.models import MAX_TRACK_DURATION_MS, Action, Context, Source

DEFAULT_REGION = "US"
MS_PER_DAY = 86_400_000
PLAYLIST_KEYS = ("pid", "modified_at", "num_edits", "tracks")
TRACK_KEYS = ("pos", "artist_name", "track_uri", "artist_uri", "track_name", "duration_ms", "album_name")
_INTEGER_KEYS = ("pid", "modified_at", "num_edits")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_TRACK_KEY_SET = frozenset(TRACK_KEYS)
_URI_TAIL = re.compile(r"(?:^|:)[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\Z")  # the part after the last colon is an id
_COMPLETE, _IMPORT, _OTHER = Action.COMPLETE.value, Source.IMPORT.value, Context.OTHER.value
_SLICE = re.compile(r"^mpd\.slice\.(\d+)-(\d+)\.json$")


def uri_id(uri: str) -> str:
    """``spotify:track:6rqhFgbbKwnb9MLmUQDhG6`` -> ``6rqhFgbbKwnb9MLmUQDhG6`` (the part after the last colon)."""
    return uri.rsplit(":", 1)[-1]


def slice_files(directory: Path) -> list[Path]:
    """The directory's ``mpd.slice.<start>-<end>.json`` files in playlist order (by start, not by name)."""
    found = [(int(m.group(1)), p) for p in directory.glob("mpd.slice.*.json") if (m := _SLICE.match(p.name))]
    return [p for _, p in sorted(found)]


def _problem(playlist: Any) -> tuple[str, str] | None:  # noqa: PLR0911 - one return per check
    """Where in the playlist (``""`` or ``track <i>``) and what is wrong with it, or None if it can be mapped."""
    if not isinstance(playlist, dict):
        return "", "not a JSON object"
    missing = [k for k in PLAYLIST_KEYS if k not in playlist]
    if missing:
        return "", f"missing {', '.join(missing)}"
    for key in _INTEGER_KEYS:
        if not isinstance(playlist[key], int) or isinstance(playlist[key], bool):
            return "", f"{key} is not an integer"
    if not isinstance(playlist["tracks"], list):
        return "", "tracks is not a list"
    for i, track in enumerate(playlist["tracks"]):  # the hot loop of an import: cheap checks first
        at = f"track {i}"
        if type(track) is not dict:
            return at, "track: not a JSON object"
        if not track.keys() >= _TRACK_KEY_SET:
            return at, f"track: missing {', '.join(k for k in TRACK_KEYS if k not in track)}"
        for key in ("pos", "duration_ms"):
            if type(track[key]) is not int:  # not isinstance: a bool is not a position
                return at, f"track: {key} is not an integer"
        for key in ("track_uri", "artist_uri"):
            if type(track[key]) is not str or not _URI_TAIL.search(track[key]):
                return at, f"track: {key} does not end in an id"
    return None


def read_slice(path: Path) -> tuple[list[dict[str, Any]], Rejections]:
    """The playlists of one MPD slice file that can be mapped, and the rest with their reasons (``parse_slice``)."""
    return parse_slice(path.read_bytes(), str(path))


def parse_slice(data: bytes | str, name: str) -> tuple[list[dict[str, Any]], Rejections]:
    """The playlists of one MPD slice (its bytes, ``name`` for messages) that can be mapped, and the rest with
    their reasons: a playlist is taken whole or not at all. A file that is not a slice (bad JSON, as a truncated
    download leaves it, or no ``playlists`` list) is a ``ValueError`` naming it: nothing of it can be trusted."""
    try:
        parsed = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: not a valid MPD slice (bad JSON: {exc})") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("playlists"), list):
        raise ValueError(f"{name}: not a valid MPD slice (no 'playlists' list at the top level)")
    good: list[dict[str, Any]] = []
    rejections = Rejections()
    short = name.rsplit("/", 1)[-1]
    for i, playlist in enumerate(parsed["playlists"]):
        problem = _problem(playlist)
        if problem is None:
            good.append(playlist)
            continue
        pid = playlist.get("pid", "?") if isinstance(playlist, dict) else "?"
        where = ", ".join(filter(None, [f"{short}: playlist {i} (pid {pid})", problem[0]]))
        rejections.add(where, problem[1], json.dumps(playlist, ensure_ascii=False))
    return good, rejections


def read_release_dates(path: Path) -> dict[str, str]:
    """A release-date file, ``{track_uri: "YYYY-MM-DD"}``; a ``ValueError`` naming the file if it is not one."""
    return read_release_dates_text(path.read_text(encoding="utf-8"), str(path))


def read_release_dates_text(text: str, name: str) -> dict[str, str]:
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return {str(uri): date.fromisoformat(day).isoformat() for uri, day in data.items()}
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: not a release-date file ({{track_uri: YYYY-MM-DD}}): {exc}") from exc


def _playable(track: Mapping[str, Any]) -> bool:
    return 0 < int(track["duration_ms"]) <= MAX_TRACK_DURATION_MS


def ordered_tracks(playlist: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The playlist's playable tracks in ``pos`` order."""
    return sorted((t for t in playlist["tracks"] if _playable(t)), key=lambda t: int(t["pos"]))


def edit_count(num_edits: int, n_tracks: int) -> int:
    """Edits the plays are spread over: MPD's ``num_edits``, at least one, at most one per track."""
    return max(1, min(num_edits, n_tracks))


def edit_of(index: int, n_tracks: int, n_edits: int) -> int:
    """The edit of the ``index``-th track: contiguous blocks whose sizes differ by at most one."""
    return index * n_edits // n_tracks


def event_id(pid: int, pos: int, track_uri: str) -> str:
    return stable_id(f"{pid}:{pos}:{track_uri}")


def playlist_events(playlist: Mapping[str, Any], region: str = DEFAULT_REGION) -> list[dict[str, Any]]:
    """One ``complete`` event per playable track, in the listening-event contract, oldest first."""
    tracks = ordered_tracks(playlist)
    if not tracks:
        return []
    pid = int(playlist["pid"])
    n_edits = edit_count(int(playlist["num_edits"]), len(tracks))
    modified_ms = int(playlist["modified_at"]) * 1000
    user_id = f"mpd-{pid}"
    events: list[dict[str, Any]] = []
    # Backwards from each edit's end: a play ends where the next one of its edit starts.
    clock, edit = 0, n_edits
    for i in range(len(tracks) - 1, -1, -1):
        track = tracks[i]
        j = edit_of(i, len(tracks), n_edits)
        if j != edit:
            edit, clock = j, modified_ms - (n_edits - 1 - j) * MS_PER_DAY
        else:
            clock -= int(tracks[i + 1]["duration_ms"])
        duration = int(track["duration_ms"])
        events.append(
            {
                "event_id": event_id(pid, int(track["pos"]), track["track_uri"]),
                "user_id": user_id,
                "track_id": uri_id(track["track_uri"]),
                "action": _COMPLETE,
                "timestamp": clock,
                "played_ms": duration,
                "track_duration_ms": duration,
                "session_id": f"{user_id}-{j}",
                "region": region,
                "source": _IMPORT,
                "context": _OTHER,
            }
        )
    events.reverse()
    return events


def catalog_row(track: Mapping[str, Any], playlists: int, release_date: str = "") -> dict[str, Any]:
    """A track's catalog row (``tracks.CATALOG_COLUMNS``) from its first listing and the playlists holding it."""
    return {
        "track_id": uri_id(track["track_uri"]),
        "artists": track["artist_name"],
        "artist_id": uri_id(track["artist_uri"]),
        "album_name": track["album_name"],
        "track_name": track["track_name"],
        "duration_ms": int(track["duration_ms"]),
        "explicit": "",
        "popularity": playlists,
        "track_genre": "",
        "release_date": release_date,
    }


class CatalogRows:
    """Catalog rows accumulated playlist by playlist, so a million playlists need not be held at once."""

    def __init__(self) -> None:
        self._first: dict[str, dict[str, Any]] = {}
        self._playlists: dict[str, int] = {}

    def add(self, playlist: Mapping[str, Any]) -> None:
        tracks = ordered_tracks(playlist)
        for track in tracks:
            self._first.setdefault(track["track_uri"], track)
        for uri in {t["track_uri"] for t in tracks}:
            self._playlists[uri] = self._playlists.get(uri, 0) + 1

    def rows(self, release_dates: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        dates = release_dates or {}
        return [catalog_row(track, self._playlists[uri], dates.get(uri, "")) for uri, track in self._first.items()]


def catalog_rows(
    playlists: Iterable[Mapping[str, Any]], release_dates: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """One row per distinct track of ``playlists`` (first seen wins), in ``CATALOG_COLUMNS``."""
    acc = CatalogRows()
    for playlist in playlists:
        acc.add(playlist)
    return acc.rows(release_dates)
