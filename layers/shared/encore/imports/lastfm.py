"""Last.fm listening histories (the ``userid-timestamp-artid-artname-traid-traname.tsv`` layout, with the
``userid-profile.tsv`` of country and sign-up) mapped onto Encore's contracts.

- **Rows.** Six tab-separated fields: user, ISO time the play started (``2009-05-04T23:08:57Z``), artist
  MusicBrainz id, artist name, track MusicBrainz id, track name; the ids may be blank.
- **Tracks.** A scrobble is matched to the catalog by track id, else by normalised artist + title
  (``tracks.normalise``: case, accents and punctuation ignored); the rest become catalog rows of their own,
  ``track_id`` the MusicBrainz id or ``lfm-<uuid5 of artist and title>``, without audio features or genres.
  Last.fm has no durations: a new track's is the median time from its plays to the listener's next scrobble,
  over the gaps between 30 s and 15 min, else 4 minutes (Last.fm's own scrobbling threshold).
- **Plays.** A listener's scrobbles in time order; a gap of more than 30 minutes after a play ends starts a new
  session (``session_id = <user>-<epoch seconds the session started>``). A play lasts its track's duration, cut
  short by the next scrobble: ``complete`` if it ran its length, else ``listen``. The event's ``timestamp`` is
  when the play ended, as the player posts it. ``source`` is ``import``.
- **Listeners.** ``region`` is the profile's country as an ISO 3166-1 alpha-2 code (the caller's lookup), else
  the caller's default; ``signup_date`` is the profile's ``registered``.
- **Idempotency.** ``event_id`` is a UUID5 of the whole source row; a row listed twice is one event.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import pairwise
from typing import Any

from encore.imports import Rejections, stable_id
from encore.imports.tracks import ID, Catalog, normalise
from encore.models import MAX_FUTURE_SKEW_MS, MIN_TIMESTAMP_MS, Action, Context, Source

FIELDS = ("user_id", "timestamp", "artist_id", "artist_name", "track_id", "track_name")
SESSION_GAP_MS = 30 * 60_000
DEFAULT_DURATION_MS = 240_000
GAP_RANGE_MS = (30_000, 15 * 60_000)  # gaps that look like one track played through, for estimating durations
PROFILE_DATE_FORMATS = ("%b %d, %Y", "%Y-%m-%d")


def parse_time(text: str) -> int:
    """``2009-05-04T23:08:57Z`` -> epoch milliseconds; ``ValueError`` if it is not such a time."""
    text = text.strip()
    if len(text) != 20 or text[10] != "T" or text[-1] != "Z":  # fromisoformat alone takes other spellings too
        raise ValueError(f"not a time like 2009-05-04T23:08:57Z: {text!r}")
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def parse_row(line: str, now_ms: int) -> tuple[dict[str, Any] | None, str]:  # noqa: PLR0911 - one per check
    """One TSV line -> its fields (``start_ms`` for the time), or None and the reason."""
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) != len(FIELDS):
        return None, f"not {len(FIELDS)} tab-separated fields ({' | '.join(FIELDS)})"
    row: dict[str, Any] = dict(zip(FIELDS, (p.strip() for p in parts), strict=True))
    if not ID.match(row["user_id"]):
        return None, "user: missing or not an id"
    try:
        start = parse_time(row["timestamp"])
    except ValueError:
        return None, "timestamp: not a time like 2009-05-04T23:08:57Z"
    if start < MIN_TIMESTAMP_MS:
        return None, "timestamp: before 2000"
    if start > now_ms + MAX_FUTURE_SKEW_MS:
        return None, "timestamp: in the future"
    if not row["artist_name"]:
        return None, "artist name: missing"
    if not row["track_name"]:
        return None, "track name: missing"
    row["start_ms"] = start
    return row, ""


class History:
    """Scrobbles gathered file by file (``add``), then converted at once (``events``): a new track's duration
    needs all its plays, and a play's length the listener's next scrobble."""

    def __init__(self, catalog: Catalog, now_ms: int) -> None:
        self.catalog, self.now_ms = catalog, now_ms
        self.plays: dict[str, set[tuple[int, str, str]]] = defaultdict(set)  # user -> (start, track, row)
        self._by_name = {(normalise(r["artists"]), normalise(r["track_name"])): r["track_id"] for r in catalog.rows()}
        self._artists = catalog.artist_ids()
        self.new_tracks: dict[str, dict[str, str]] = {}  # catalog rows still without a duration
        self.matched_by_id = self.matched_by_name = 0

    def add(self, line: str, where: str, rejections: Rejections) -> bool:
        row, reason = parse_row(line, self.now_ms)
        if row is None:
            rejections.add(where, reason, line.rstrip("\r\n"))
            return False
        self.plays[row["user_id"]].add((row["start_ms"], self._match(row), line.rstrip("\r\n")))
        return True

    def _match(self, row: dict[str, Any]) -> str:
        if row["track_id"] in self.catalog:
            self.matched_by_id += 1
            return str(row["track_id"])
        key = (normalise(row["artist_name"]), normalise(row["track_name"]))
        found = self._by_name.get(key)
        if found is not None:
            self.matched_by_name += found not in self.new_tracks
            return found
        track_id = row["track_id"] if ID.match(row["track_id"]) else "lfm-" + stable_id("track", *key)
        artist_id = row["artist_id"] if ID.match(row["artist_id"]) else ""
        artist_id = artist_id or self._artists.get(key[0]) or "lfm-" + stable_id("artist", key[0])
        self._artists.setdefault(key[0], artist_id)
        self._by_name[key] = track_id
        self.new_tracks[track_id] = {"track_id": track_id, "artists": row["artist_name"], "artist_id": artist_id,
                                     "track_name": row["track_name"], "album_name": ""}  # fmt: skip
        return track_id

    def _durations(self) -> dict[str, int]:
        gaps: dict[str, list[int]] = defaultdict(list)
        for plays in self.plays.values():
            ordered = sorted(plays)
            for (start, track, _), (after, _, _) in pairwise(ordered):
                if track in self.new_tracks and GAP_RANGE_MS[0] <= after - start <= GAP_RANGE_MS[1]:
                    gaps[track].append(after - start)
        known = {t: int(r["duration_ms"]) for t in self._used() if (r := self.catalog.get(t))}
        return known | {t: int(statistics.median(gaps[t])) if gaps[t] else DEFAULT_DURATION_MS for t in self.new_tracks}

    def _used(self) -> set[str]:
        return {track for plays in self.plays.values() for _, track, _ in plays}

    def events(self, region_of: Callable[[str], str], rejections: Rejections) -> list[dict[str, Any]]:
        """Every listener's plays as listening events, oldest first per listener; the new tracks join the
        catalog (with their estimated durations) first."""
        durations = self._durations()
        for track_id, row in self.new_tracks.items():
            self.catalog.add(row | {"duration_ms": durations[track_id]}, f"lastfm track {track_id}", rejections)
        out: list[dict[str, Any]] = []
        for user, plays in self.plays.items():
            region, session, last_end = region_of(user), "", None
            ordered = sorted(plays)
            for i, (start, track, source) in enumerate(ordered):
                duration = durations[track]
                after = ordered[i + 1][0] if i + 1 < len(ordered) else None
                played = duration if after is None else max(0, min(duration, after - start))
                if last_end is None or start - last_end > SESSION_GAP_MS:
                    session = f"{user}-{start // 1000}"
                last_end = start + played
                out.append({
                    "event_id": stable_id("lastfm", source),
                    "user_id": user,
                    "track_id": track,
                    "action": (Action.COMPLETE if played >= duration else Action.LISTEN).value,
                    "timestamp": last_end,
                    "played_ms": played,
                    "track_duration_ms": duration,
                    "session_id": session,
                    "region": region,
                    "source": Source.IMPORT.value,
                    "context": Context.OTHER.value,
                })  # fmt: skip
        return out


def parse_profiles(
    lines: Iterable[str], country_code: Callable[[str], str | None], where: str, rejections: Rejections
) -> dict[str, dict[str, str]]:
    """``#id, gender, age, country, registered`` rows -> ``{user_id: {"region": code or "", "signup_date": ...}}``."""
    out: dict[str, dict[str, str]] = {}
    for n, line in enumerate(lines, 1):
        if n == 1 and line.startswith("#"):
            continue
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) != 5 or not ID.match(parts[0].strip()):
            rejections.add(f"{where}:{n}", "profile: not 5 tab-separated fields starting with a user id", line)
            continue
        user, country, registered = parts[0].strip(), parts[3].strip(), parts[4].strip()
        signup = ""
        for fmt in PROFILE_DATE_FORMATS:
            try:
                signup = datetime.strptime(registered, fmt).date().isoformat()
                break
            except ValueError:
                continue
        if registered and not signup:
            rejections.add(f"{where}:{n}", "profile: registered is not a date like Aug 13, 2006", line)
            continue
        out[user] = {"region": (country_code(country) or "") if country else "", "signup_date": signup}
    return out
