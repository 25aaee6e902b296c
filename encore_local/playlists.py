"""Playlists in the Million Playlist Dataset (MPD) format, from a generative process unlike the simulator's.

The listening simulator draws plays from listeners' genre, style and mood affinities; this draws playlists from
latent themes with their own track orderings, album runs and drift, so a model benchmarked on both is not tuned
to one world. The output is MPD's layout (``mpd.slice.<start>-<end>.json``, 1,000 playlists each) plus
``catalog_extra.json``, this generator's own addition (MPD has no dates): ``{track_uri: release_date}``, which
``encore.playlists`` uses when given; and ``ground_truth.npz``, the process's latent state, from which
``continuation_scores`` rolls playlists forward (the continuation oracle). The process and its knobs are in
docs/simulator.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from encore_local.errors import UsageError
from encore_local.simulator.catalog import random_ids
from encore_local.simulator.world import COMMON_WORDS, MOOD_WORDS, NAME_WORDS, SYLLABLES

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
CATALOG_EXTRA = "catalog_extra.json"
GROUND_TRUTH = "ground_truth.npz"
SLICE_SIZE = 1000
# An edit is one sitting: at most this many tracks, so even at the longest duration it lasts under a day and
# the edits of a playlist (a day apart) never overlap in time.
EDIT_MAX_TRACKS = 100
DURATION_MS = (60_000, 600_000)
SECONDS_PER_DAY = 86_400
_RETRIES = 30  # redraws of a track already in the playlist (or not yet released) before an exhaustive pick
_ROLLOUT_CELLS = 1 << 26  # the oracle rolls playlists out in chunks whose bitmaps (rollouts x tracks) hold this many
_THEME_WORDS = NAME_WORDS + tuple(w for mood in MOOD_WORDS for w in mood)


@dataclass(frozen=True)
class PlaylistParams:
    # Scale
    playlists: int = 3000
    tracks: int = 6000
    days: int = 30
    seed: int = 11
    start: date = date(2026, 9, 1)
    themes: int = 60

    # Catalog
    tracks_per_artist: float = 6.0  # mean; artists' output is log-normal, so a few are prolific
    artist_sigma: float = 1.0  # s.d. of log output per artist
    album_size_mean: float = 8.0  # an artist's tracks fall into albums of this mean size, geometric
    artist_theme_loyalty: float = 0.85  # a track's first theme is its artist's with this probability
    second_theme_share: float = 0.3  # tracks that also belong to a second theme
    zipf_exponent: float = 0.9  # the track ranked r in popularity has weight r ** -this
    new_release_share: float = 0.05  # tracks released during the window, late in it ...
    new_release_from: float = 0.5  # ... on a uniform day after this fraction of the window
    new_release_boost: float = 3.0  # a new release's popularity weight is multiplied by this

    # Playlists
    theme_counts: tuple[float, float, float] = (0.5, 0.3, 0.2)  # chance a playlist mixes 1, 2 or 3 themes
    mix_concentration: float = 1.0  # Dirichlet concentration of the mix's weights
    length_median: float = 40.0  # tracks per playlist, log-normal ...
    length_sigma: float = 0.8
    length_min: int = 5  # ... clipped to [min, max]
    length_max: int = 250
    p_album_run: float = 0.2  # the next track follows the current one on its album (else its artist)
    p_flow: float = 0.45  # ... else is near it in the current theme's flow: a geometric step forward ...
    flow_step_mean: float = 2.0  # ... of this mean
    drifting_themes: float = 0.3  # share of themes with a successor theme ...
    p_drift: float = 0.6  # ... to which a playlist dominated by one switches, with this chance ...
    drift_at: float = 0.7  # ... after this fraction of its tracks
    edits_median: float = 3.0  # num_edits, log-normal, clipped to [1, min(days, 30)]
    edits_sigma: float = 0.9

    def __post_init__(self) -> None:
        checks = [
            (self.playlists >= 1, "--playlists must be at least 1"),
            (1 <= self.days <= 3650, "--days must be between 1 and 3650"),
            (self.seed >= 0, "--seed must be 0 or more"),
            (1 <= self.length_min <= self.length_max, "length_min must be at least 1 and at most length_max"),
            (self.tracks >= max(100, 2 * self.length_max), "--tracks must be at least 100 and twice length_max"),
            (1 <= self.themes <= self.tracks // 5, "--themes must be between 1 and a fifth of --tracks"),
            (self.tracks_per_artist >= 1, "tracks_per_artist must be at least 1"),
            (self.album_size_mean >= 1, "album_size_mean must be at least 1"),
            (0 <= self.new_release_share <= 0.5, "new_release_share must be in [0, 0.5]"),
            (0 <= self.new_release_from < 1, "new_release_from must be in [0, 1)"),
            (self.p_album_run >= 0 and self.p_flow >= 0, "p_album_run and p_flow must not be negative"),
            (self.p_album_run + self.p_flow <= 1, "p_album_run + p_flow must be at most 1"),
            (all(w >= 0 for w in self.theme_counts) and sum(self.theme_counts) > 0, "theme_counts must be weights"),
            (self.flow_step_mean >= 1, "flow_step_mean must be at least 1"),
            (0 <= self.drift_at <= 1 and 0 <= self.p_drift <= 1, "drift_at and p_drift must be in [0, 1]"),
            (0 <= self.drifting_themes <= 1, "drifting_themes must be in [0, 1]"),
            (self.length_median > 0 and self.edits_median > 0, "length_median and edits_median must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["start"] = self.start.isoformat()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlaylistParams:
        return cls(**{**data, "start": date.fromisoformat(data["start"]), "theme_counts": tuple(data["theme_counts"])})


@dataclass
class _Catalog:
    artist: IntArray  # per track, tracks sorted by artist then album
    album: IntArray
    artist_lo: IntArray  # [lo, hi) block of tracks per artist
    artist_hi: IntArray
    theme1: IntArray
    theme2: IntArray  # -1: one theme only
    flow_track: IntArray  # the themes' flows, concatenated: theme k is flow_track[theme_lo[k]:theme_hi[k]]
    flow_pos1: IntArray  # each track's index in flow_track for its first theme ...
    flow_pos2: IntArray  # ... and its second (-1: none)
    theme_lo: IntArray
    theme_hi: IntArray
    theme_share: FloatArray
    weight: FloatArray  # popularity weight
    release_day: IntArray  # days since the start (negative: before the window)
    duration_ms: IntArray

    @property
    def size(self) -> int:
        return int(self.artist.size)


def _catalog(p: PlaylistParams, rng: np.random.Generator) -> _Catalog:
    n, k = p.tracks, p.themes
    n_artists = min(n, max(k, round(n / p.tracks_per_artist)))
    output = rng.lognormal(0.0, p.artist_sigma, n_artists)
    # Every artist has a track; the rest by output. Sorting makes each artist (and album) a contiguous block.
    artist = np.sort(
        np.concatenate([np.arange(n_artists), rng.choice(n_artists, n - n_artists, p=output / output.sum())])
    )
    starts = np.r_[True, artist[1:] != artist[:-1]] | (rng.random(n) < 1.0 / p.album_size_mean)
    album = np.cumsum(starts) - 1
    keys = np.arange(n_artists)
    artist_lo, artist_hi = np.searchsorted(artist, keys, "left"), np.searchsorted(artist, keys, "right")

    # Popularity: Zipf over a ranking that artists' fame and the track's own appeal both shape.
    appeal = rng.normal(0.0, 1.0, n_artists)[artist] + rng.normal(0.0, 1.0, n)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-appeal, kind="stable")] = np.arange(1, n + 1)
    weight = rank.astype(np.float64) ** -p.zipf_exponent

    theme_share = rng.lognormal(0.0, 0.7, k)
    theme_share /= theme_share.sum()
    artist_theme = np.concatenate([np.arange(k), rng.choice(k, n_artists - k, p=theme_share)])
    rng.shuffle(artist_theme)
    theme1 = np.where(rng.random(n) < p.artist_theme_loyalty, artist_theme[artist], rng.choice(k, n, p=theme_share))
    theme2 = np.full(n, -1, dtype=np.int64)
    if k > 1:
        second = rng.random(n) < p.second_theme_share
        theme2[second] = (theme1[second] + 1 + rng.integers(0, k - 1, int(second.sum()))) % k
    # A theme no track landed in would have nothing to draw from: it becomes the second theme of a track with
    # one (adding a membership never empties another theme).
    empty = np.setdiff1d(np.arange(k), np.concatenate([theme1, theme2[theme2 >= 0]]))
    if empty.size:
        single = np.flatnonzero(theme2 < 0)
        theme2[rng.choice(single, empty.size, replace=False)] = empty

    # Each theme's flow: its tracks in an order of its own, which playlists of the theme tend to follow.
    member_track = np.concatenate([np.arange(n), np.flatnonzero(theme2 >= 0)])
    member_theme = np.concatenate([theme1, theme2[theme2 >= 0]])
    order = np.lexsort((rng.random(member_track.size), member_theme))
    flow_track, flow_theme = member_track[order], member_theme[order]
    theme_lo = np.searchsorted(flow_theme, np.arange(k), "left")
    theme_hi = np.searchsorted(flow_theme, np.arange(k), "right")
    flow_pos1 = np.full(n, -1, dtype=np.int64)
    flow_pos2 = np.full(n, -1, dtype=np.int64)
    idx = np.arange(flow_track.size)
    first = flow_theme == theme1[flow_track]
    flow_pos1[flow_track[first]] = idx[first]
    flow_pos2[flow_track[~first]] = idx[~first]

    # Catalog history: most tracks from recent years; a share released late in the window (new releases).
    release_day = np.maximum(-1 - rng.exponential(5 * 365, n).astype(np.int64), (date(1960, 1, 1) - p.start).days)
    new = rng.random(n) < p.new_release_share
    lo = min(math.ceil(p.days * p.new_release_from), p.days - 1)
    release_day[new] = rng.integers(lo, p.days, int(new.sum()))
    weight[new] *= p.new_release_boost
    duration_ms = np.clip(rng.lognormal(np.log(210_000), 0.3, n), *DURATION_MS).astype(np.int64)
    return _Catalog(
        artist=artist,
        album=album,
        artist_lo=artist_lo,
        artist_hi=artist_hi,
        theme1=theme1,
        theme2=theme2,
        flow_track=flow_track,
        flow_pos1=flow_pos1,
        flow_pos2=flow_pos2,
        theme_lo=theme_lo,
        theme_hi=theme_hi,
        theme_share=theme_share,
        weight=weight,
        release_day=release_day,
        duration_ms=duration_ms,
    )


class _Drawer:
    """Popularity-weighted draws of a track within a theme (or the whole catalog), vectorised by searchsorted."""

    def __init__(self, cat: _Catalog, rng: np.random.Generator) -> None:
        self.cat, self.rng = cat, rng
        fw = cat.weight[cat.flow_track]
        self.flow_cum = np.cumsum(fw)
        self.before = self.flow_cum[cat.theme_lo] - fw[cat.theme_lo]
        self.total = self.flow_cum[cat.theme_hi - 1] - self.before
        self.cum = np.cumsum(cat.weight)

    def in_theme(self, theme: IntArray) -> IntArray:
        u = self.before[theme] + self.rng.random(theme.size) * self.total[theme]
        i = np.clip(np.searchsorted(self.flow_cum, u, "right"), self.cat.theme_lo[theme], self.cat.theme_hi[theme] - 1)
        return self.cat.flow_track[i]

    def anywhere(self, m: int) -> IntArray:
        i = np.searchsorted(self.cum, self.rng.random(m) * self.cum[-1], "right")
        return np.asarray(np.minimum(i, self.cat.size - 1), dtype=np.int64)


@dataclass
class _Playlists:
    length: IntArray
    modified_at: IntArray  # unix seconds
    num_edits: IntArray
    followers: IntArray
    dominant: IntArray  # the mix's heaviest theme (names the playlist)
    chosen: IntArray  # (playlists, max length) track indices, -1 past the end
    mix: IntArray  # (playlists, 3) the mix's themes as drawn, before any drift
    mix_weight: FloatArray  # (playlists, 3) their weights (0: a slot the mix does not use)
    drift_pos: IntArray  # the position at which the playlist switches to its dominant theme's successor (-1: never)
    successor: IntArray  # per theme, the theme its playlists drift to (-1: none)
    theme_at: IntArray  # (playlists, max length) the current theme after each position, -1 past the end


class _Held(Protocol):
    """The tracks already in each row's playlist, which a track may not join twice."""

    def holds(self, rows: IntArray, tracks: IntArray, step: int) -> BoolArray: ...

    def add(self, rows: IntArray, tracks: IntArray, step: int) -> None: ...

    def taken(self, row: int, step: int) -> IntArray: ...


class _Chosen:
    """Held tracks found by scanning each playlist's tracks so far: the generator's, as it keeps them anyway."""

    def __init__(self, chosen: IntArray) -> None:
        self.chosen = chosen

    def holds(self, rows: IntArray, tracks: IntArray, step: int) -> BoolArray:
        if not step:
            return np.zeros(rows.size, dtype=bool)
        return np.asarray((self.chosen[rows, :step] == tracks[:, None]).any(axis=1))

    def add(self, rows: IntArray, tracks: IntArray, step: int) -> None:
        self.chosen[rows, step] = tracks

    def taken(self, row: int, step: int) -> IntArray:
        return self.chosen[row, :step]


class _Marks:
    """Held tracks as a rows x tracks bitmap: the oracle's, whose many rollouts of a few playlists would scan long
    prefixes at every step."""

    def __init__(self, marks: BoolArray) -> None:
        self.marks = marks

    def holds(self, rows: IntArray, tracks: IntArray, step: int) -> BoolArray:
        return self.marks[rows, tracks]

    def add(self, rows: IntArray, tracks: IntArray, step: int) -> None:
        self.marks[rows, tracks] = True

    def taken(self, row: int, step: int) -> IntArray:
        return np.flatnonzero(self.marks[row])


@dataclass
class _Walk:
    """Playlists being drawn track by track, one per row (in the generator a playlist, in the oracle one rollout
    of one): the state ``_step`` reads and advances."""

    mix: IntArray  # (rows, 3) themes; after a drift, the successor three times
    mix_cum: FloatArray  # (rows, 3) cumulative weights of the mix
    current: IntArray  # the theme whose flow the next track may follow
    prev: IntArray  # the last track added (-1: none yet)
    dominant: IntArray
    drift_pos: IntArray
    length: IntArray
    modified_at: IntArray
    num_edits: IntArray
    held: _Held


def _out_by(walk: _Walk, rows: IntArray, step: int, start_s: int) -> IntArray:
    """The last day a track must have been out by to be added at position ``step``: the day before its edit ends
    (an edit lasts under a day, so every play of the edit comes after the release)."""
    n = walk.num_edits[rows]
    edit = step * n // walk.length[rows]
    edit_end = walk.modified_at[rows] - (n - 1 - edit) * SECONDS_PER_DAY
    return np.asarray((edit_end - start_s) // SECONDS_PER_DAY - 1)


def _step(
    p: PlaylistParams,
    cat: _Catalog,
    successor: IntArray,
    draw: _Drawer,
    walk: _Walk,
    rows: IntArray,
    step: int,
    start_s: int,
) -> None:
    """Add the track at position ``step`` to each playlist of ``rows`` (all longer than ``step``): an album run,
    a step along the current theme's flow, or a popular track of a theme drawn from the mix; redrawn while it is
    already there or not yet out. The generator and the oracle's rollouts both advance by this."""
    rng, mix, current = draw.rng, walk.mix, walk.current
    switch = rows[walk.drift_pos[rows] == step]
    mix[switch] = successor[walk.dominant[switch]][:, None]
    current[switch] = mix[switch, 0]
    prev = walk.prev[rows]
    cand = np.full(rows.size, -1, dtype=np.int64)
    r = rng.random(rows.size)

    run = np.flatnonzero((prev >= 0) & (r < p.p_album_run))
    if run.size:
        t = prev[run]
        nxt = np.minimum(t + 1, cat.size - 1)
        lo, hi = cat.artist_lo[cat.artist[t]], cat.artist_hi[cat.artist[t]]
        other = lo + (rng.random(run.size) * (hi - lo)).astype(np.int64)
        cand[run] = np.where((nxt != t) & (cat.album[nxt] == cat.album[t]), nxt, other)

    flow = np.flatnonzero((prev >= 0) & (r >= p.p_album_run) & (r < p.p_album_run + p.p_flow))
    if flow.size:
        t, th = prev[flow], current[rows[flow]]
        fp = np.where(cat.theme1[t] == th, cat.flow_pos1[t], np.where(cat.theme2[t] == th, cat.flow_pos2[t], -1))
        lo, size = cat.theme_lo[th], cat.theme_hi[th] - cat.theme_lo[th]
        moved = lo + (fp - lo + rng.geometric(1.0 / p.flow_step_mean, flow.size)) % size
        cand[flow] = np.where(fp >= 0, cat.flow_track[moved], -1)

    out_by = _out_by(walk, rows, step, start_s)
    for attempt in range(_RETRIES + 1):
        todo = np.flatnonzero(cand < 0)
        if todo.size:
            # A popular track of a theme drawn from the mix; later attempts also from the whole catalog.
            pr = rows[todo]
            slot = (rng.random(todo.size)[:, None] > walk.mix_cum[pr]).sum(axis=1)
            theme = mix[pr, np.minimum(slot, 2)]
            cand[todo] = draw.anywhere(todo.size) if attempt > _RETRIES // 2 else draw.in_theme(theme)
            if attempt == 0:
                current[pr] = theme
        # A candidate that passed stays fit within the step: after the first attempt only the redrawn are checked.
        check = np.arange(rows.size) if attempt == 0 else todo
        bad = check[_unfit(walk.held, rows[check], step, cand[check], cat.release_day, out_by[check])]
        if not bad.size:
            break
        cand[bad] = -1
    else:
        for i in np.flatnonzero(cand < 0).tolist():
            fit = cat.release_day <= out_by[i]
            fit[walk.held.taken(int(rows[i]), step)] = False
            cand[i] = rng.choice(np.flatnonzero(fit))
    walk.held.add(rows, cand, step)
    walk.prev[rows] = cand


def _unfit(
    held: _Held, rows: IntArray, step: int, cand: IntArray, release_day: IntArray, out_by: IntArray
) -> BoolArray:
    """Candidates missing, already in their playlist or not yet released at their position (``out_by``, per row)."""
    missing = cand < 0
    safe = np.where(missing, 0, cand)
    return np.asarray(missing | held.holds(rows, safe, step) | (release_day[safe] > out_by))


def _playlists(p: PlaylistParams, cat: _Catalog, rng: np.random.Generator, start_s: int) -> _Playlists:
    n_pl, k = p.playlists, p.themes
    counts = np.asarray(p.theme_counts, dtype=np.float64)
    n_mix = rng.choice(3, n_pl, p=counts / counts.sum()) + 1
    mix = rng.choice(k, (n_pl, 3), p=cat.theme_share)
    w = rng.dirichlet(np.full(3, p.mix_concentration), n_pl) * (np.arange(3) < n_mix[:, None])
    w = np.maximum(w, 1e-12 * (np.arange(3) == 0))  # a mix always has its first theme
    mix_weight = w / w.sum(axis=1, keepdims=True)
    dominant = mix[np.arange(n_pl), np.argmax(w, axis=1)]

    length = np.clip(np.rint(rng.lognormal(np.log(p.length_median), p.length_sigma, n_pl)), p.length_min, p.length_max)
    length = length.astype(np.int64)
    modified_at = start_s + rng.integers(0, p.days * SECONDS_PER_DAY, n_pl)
    edits = np.clip(np.rint(rng.lognormal(np.log(p.edits_median), p.edits_sigma, n_pl)), 1, min(p.days, 30))
    num_edits = np.minimum(np.maximum(edits.astype(np.int64), -(-length // EDIT_MAX_TRACKS)), length)
    followers = 1 + np.floor(rng.lognormal(-1.0, 1.5, n_pl)).astype(np.int64)

    successor = np.full(k, -1, dtype=np.int64)
    if k > 1:
        drifts = rng.random(k) < p.drifting_themes
        successor[drifts] = (np.flatnonzero(drifts) + 1 + rng.integers(0, k - 1, int(drifts.sum()))) % k
    drift_pos = np.where(
        (successor[dominant] >= 0) & (rng.random(n_pl) < p.p_drift),
        np.ceil(p.drift_at * length).astype(np.int64),
        -1,
    )

    lmax = int(length.max())
    chosen = np.full((n_pl, lmax), -1, dtype=np.int64)
    theme_at = np.full((n_pl, lmax), -1, dtype=np.int64)
    walk = _Walk(
        mix=mix.copy(),
        mix_cum=np.cumsum(mix_weight, axis=1),
        current=mix[:, 0].copy(),
        prev=np.full(n_pl, -1, dtype=np.int64),
        dominant=dominant,
        drift_pos=drift_pos,
        length=length,
        modified_at=modified_at,
        num_edits=num_edits,
        held=_Chosen(chosen),
    )
    draw = _Drawer(cat, rng)
    for step in range(lmax):
        rows = np.flatnonzero(length > step)
        _step(p, cat, successor, draw, walk, rows, step, start_s)
        theme_at[rows, step] = walk.current[rows]
    return _Playlists(
        length, modified_at, num_edits, followers, dominant, chosen, mix, mix_weight, drift_pos, successor, theme_at
    )


def _words(rng: np.random.Generator, vocab: tuple[str, ...], n: int, most: int) -> list[str]:
    counts = rng.integers(1, most + 1, n).tolist()
    picks = rng.integers(0, len(vocab), int(sum(counts))).tolist()
    out, i = [], 0
    for c in counts:
        out.append(" ".join(vocab[j] for j in picks[i : i + c]))
        i += c
    return out


def _names(p: PlaylistParams, cat: _Catalog, rng: np.random.Generator) -> dict[str, list[str]]:
    n_artists, n_albums = int(cat.artist_hi.size), int(cat.album[-1]) + 1
    return {
        "track": [s.title() for s in _words(rng, NAME_WORDS + COMMON_WORDS, cat.size, 3)],
        "album": [s.title() for s in _words(rng, NAME_WORDS + COMMON_WORDS, n_albums, 3)],
        "artist": ["".join(s.split()).title() for s in _words(rng, SYLLABLES, n_artists, 4)],
        "theme": _words(rng, _THEME_WORDS, p.themes, 2),
        "track_id": random_ids(rng, cat.size),
        "artist_id": random_ids(rng, n_artists),
        "album_id": random_ids(rng, n_albums),
    }


def generate_mpd(params: PlaylistParams, out_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Write ``mpd.slice.*.json`` (1,000 playlists each), ``catalog_extra.json`` and the latent state
    (``ground_truth.npz``) under ``out_dir``; return counts (playlists, tracks, plays, new releases, ...)."""
    rng = np.random.default_rng(params.seed)
    start_s = int(datetime(params.start.year, params.start.month, params.start.day, tzinfo=UTC).timestamp())
    cat = _catalog(params, np.random.default_rng(rng.integers(2**63)))
    names = _names(params, cat, np.random.default_rng(rng.integers(2**63)))
    pls = _playlists(params, cat, np.random.default_rng(rng.integers(2**63)), start_s)
    suffix_rng = np.random.default_rng(rng.integers(2**63))

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("mpd.slice.*.json"):
        stale.unlink()
    # Each track's JSON after its position, made once: a playlist entry is '{"pos": i, ' + this.
    track_json = [
        json.dumps(
            {
                "artist_name": names["artist"][a],
                "track_uri": f"spotify:track:{names['track_id'][t]}",
                "artist_uri": f"spotify:artist:{names['artist_id'][a]}",
                "track_name": names["track"][t],
                "album_uri": f"spotify:album:{names['album_id'][al]}",
                "duration_ms": d,
                "album_name": names["album"][al],
            }
        )[1:]
        for t, (a, al, d) in enumerate(
            zip(cat.artist.tolist(), cat.album.tolist(), cat.duration_ms.tolist(), strict=True)
        )
    ]
    suffixes = ("", "", "", " mix", " vibes", " 2", " playlist", "!!")
    suffix = suffix_rng.integers(0, len(suffixes), params.playlists).tolist()
    generated_on = f"{params.start + timedelta(days=params.days)} 00:00:00"
    files = []
    for lo in tqdm(range(0, params.playlists, SLICE_SIZE), desc="writing slices", disable=not progress, leave=False):
        hi = min(lo + SLICE_SIZE, params.playlists)
        parts = []
        for pid in range(lo, hi):
            tracks = pls.chosen[pid, : pls.length[pid]]
            head = {
                "name": names["theme"][int(pls.dominant[pid])] + suffixes[suffix[pid]],
                "collaborative": "false",
                "pid": pid,
                "modified_at": int(pls.modified_at[pid]),
                "num_tracks": int(tracks.size),
                "num_albums": int(np.unique(cat.album[tracks]).size),
                "num_followers": int(pls.followers[pid]),
                "num_edits": int(pls.num_edits[pid]),
                "duration_ms": int(cat.duration_ms[tracks].sum()),
                "num_artists": int(np.unique(cat.artist[tracks]).size),
            }
            entries = ", ".join(f'{{"pos": {i}, {track_json[t]}' for i, t in enumerate(tracks.tolist()))
            parts.append(f'{json.dumps(head)[:-1]}, "tracks": [{entries}]}}')
        name = f"mpd.slice.{lo}-{lo + SLICE_SIZE - 1}.json"
        info = json.dumps({"generated_on": generated_on, "slice": f"{lo}-{lo + SLICE_SIZE - 1}", "version": "v1"})
        (out_dir / name).write_text(f'{{"info": {info}, "playlists": [{", ".join(parts)}]}}', encoding="utf-8")
        files.append(name)

    released = [(params.start + timedelta(days=d)).isoformat() for d in cat.release_day.tolist()]
    extra = {f"spotify:track:{tid}": day for tid, day in zip(names["track_id"], released, strict=True)}
    (out_dir / CATALOG_EXTRA).write_text(json.dumps(extra), encoding="utf-8")
    _save_ground_truth(out_dir / GROUND_TRUTH, params, start_s, cat, pls, names["track_id"])

    used = np.concatenate([pls.chosen[i, : pls.length[i]] for i in range(params.playlists)])
    new = cat.release_day >= 0
    return {
        "out_dir": str(out_dir),
        "playlists": params.playlists,
        "tracks": cat.size,
        "tracks_used": int(np.unique(used).size),
        "artists": int(cat.artist_hi.size),
        "albums": int(cat.album[-1]) + 1,
        "themes": params.themes,
        "plays": int(used.size),
        "new_releases": int(new.sum()),
        "new_release_plays": int(new[used].sum()),
        "files": files,
    }


def _save_ground_truth(
    path: Path, params: PlaylistParams, start_s: int, cat: _Catalog, pls: _Playlists, track_ids: list[str]
) -> None:
    """The latent state, arrays only (no pickle): the catalog's fields under their own names, per track in the
    generator's order with its id (``track_ids``, the part after ``spotify:track:``); per theme ``successor``;
    per playlist (row = pid) its mix, length, drift, edits, tracks (``chosen``) and current theme (``theme_at``)."""
    np.savez_compressed(
        path,
        params=np.array(json.dumps(params.to_json())),
        start_s=np.array(start_s),
        track_ids=np.array(track_ids),
        **{f.name: getattr(cat, f.name) for f in dataclasses.fields(_Catalog)},
        successor=pls.successor,
        pid=np.arange(params.playlists),
        mix=pls.mix,
        mix_weight=pls.mix_weight,
        dominant=pls.dominant,
        length=pls.length,
        drift_pos=pls.drift_pos,
        num_edits=pls.num_edits,
        modified_at=pls.modified_at,
        chosen=pls.chosen,
        theme_at=pls.theme_at,
    )


def continuation_scores(
    truth_path: Path, pids: npt.ArrayLike, prefix_lengths: npt.ArrayLike, rollouts: int = 200, seed: int = 0
) -> FloatArray:
    """The generator's continuation oracle: for playlist ``pids[i]`` in the state the generator was in after its
    first ``prefix_lengths[i]`` tracks (those tracks, the current theme, the mix, the drift to come, the release
    days against each later position), the share of ``rollouts`` runs of the same process (``_step``) to the
    playlist's true length in which each track is added. Rows follow ``pids``, columns the ground truth's
    ``track_ids``; a row sums to the tracks left. Ranking by it is the Bayes-optimal order for "which tracks
    come next", up to Monte Carlo noise. ``truth_path``: ``ground_truth.npz`` or the directory holding it."""
    path = truth_path / GROUND_TRUTH if truth_path.is_dir() else truth_path
    with np.load(path) as z:
        p = PlaylistParams.from_json(json.loads(str(z["params"])))
        start_s = int(z["start_s"])
        cat = _Catalog(**{f.name: z[f.name] for f in dataclasses.fields(_Catalog)})
        pl = {key: z[key] for key in ("successor", "mix", "mix_weight", "dominant", "length", "drift_pos",
                                      "num_edits", "modified_at", "chosen", "theme_at")}  # fmt: skip
    pid, prefix = np.asarray(pids, dtype=np.int64), np.asarray(prefix_lengths, dtype=np.int64)
    if pid.shape != prefix.shape or pid.ndim != 1:
        raise ValueError("pids and prefix_lengths must be 1-D and of one length")
    if ((pid < 0) | (pid >= p.playlists)).any() or rollouts < 1:
        raise ValueError(f"pids must be in [0, {p.playlists}) and rollouts at least 1")
    if ((prefix < 0) | (prefix > pl["length"][pid])).any():
        raise ValueError("a prefix length must be in [0, the playlist's length]")

    draw = _Drawer(cat, np.random.default_rng(seed))
    scores = np.zeros((pid.size, cat.size))
    # Playlists with similar spans [prefix, length) share a chunk, so fewer steps run with few rows.
    order = np.lexsort((pl["length"][pid], prefix))
    per_chunk = max(1, _ROLLOUT_CELLS // (rollouts * cat.size))
    for lo in range(0, order.size, per_chunk):
        sel = order[lo : lo + per_chunk]
        g, k0 = np.repeat(pid[sel], rollouts), np.repeat(prefix[sel], rollouts)
        lmax = pl["chosen"].shape[1]
        before = pl["chosen"][pid[sel]]
        in_prefix = np.zeros((sel.size, cat.size), dtype=bool)
        rows, cols = np.nonzero((np.arange(lmax) < prefix[sel, None]) & (before >= 0))
        in_prefix[rows, before[rows, cols]] = True
        last, held = np.maximum(k0 - 1, 0), _Marks(np.repeat(in_prefix, rollouts, axis=0))
        drifted = (pl["drift_pos"][g] >= 0) & (pl["drift_pos"][g] < k0)
        mix = np.where(drifted[:, None], pl["successor"][pl["dominant"][g]][:, None], pl["mix"][g])
        walk = _Walk(
            mix=mix,
            mix_cum=np.cumsum(pl["mix_weight"][g], axis=1),
            current=np.where(k0 > 0, pl["theme_at"][g, last], mix[:, 0]),
            prev=np.where(k0 > 0, pl["chosen"][g, last], -1),
            dominant=pl["dominant"][g],
            drift_pos=pl["drift_pos"][g],
            length=pl["length"][g],
            modified_at=pl["modified_at"][g],
            num_edits=pl["num_edits"][g],
            held=held,
        )
        for step in range(int(k0.min()), int(walk.length.max())):
            active = np.flatnonzero((k0 <= step) & (walk.length > step))
            if active.size:
                _step(p, cat, pl["successor"], draw, walk, active, step, start_s)
        added = held.marks.reshape(sel.size, rollouts, cat.size).sum(axis=1) - rollouts * in_prefix
        scores[sel] = added / rollouts
    return scores
