"""One simulated day of listening: sessions, the track chosen at each step, and what the listener did with it.

All sessions of a day advance together, one step at a time, as arrays: at each step every live session
proposes ``candidates`` tracks from one source (the current track's sub-style or artist, the listener's own
recent plays, or a genre drawn from their taste: mostly the genre the session started in, since a session keeps
a mood), weighted by popularity, and the listener picks the one they
like best (true affinity plus Gumbel noise). Affinity then decides skip / listen / complete and time played.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from encore_local.simulator.catalog import Catalog
from encore_local.simulator.listeners import Listeners, true_affinity
from encore_local.simulator.params import SimulationParams
from encore_local.simulator.world import DIURNAL, REGIONS

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

ACTIONS = ("listen", "skip", "complete")
LISTEN, SKIP, COMPLETE = 0, 1, 2
CONTEXTS = ("home", "next", "similar", "chart", "search", "other")
# Where a play proposed from the listener's taste came from (the app surface they were on).
_ENTRY_CONTEXTS = np.array([0, 4, 3, 5])  # home, search, chart, other
_ENTRY_SHARES = np.array([0.40, 0.30, 0.15, 0.15])
TASTE, STYLE, ARTIST, REPLAY = 0, 1, 2, 3
_SOURCE_CONTEXT = {STYLE: 1, ARTIST: 2, REPLAY: 5}  # next, similar, other
MS_PER_DAY = 86_400_000
EARLY_SKIP_MS = 30_000
ORACLE_CELLS = 1 << 22  # the oracle scores listeners x tracks in blocks of about this many


@dataclass
class DayEvents:
    """A day's events as aligned columns, ordered by timestamp."""

    user: IntArray
    track: IntArray
    action: IntArray
    timestamp: IntArray
    played_ms: IntArray
    session: IntArray  # index into ``session_ids``
    context: IntArray
    session_ids: list[str]

    @property
    def size(self) -> int:
        return int(self.user.size)


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


class ListeningModel:
    def __init__(self, params: SimulationParams, catalog: Catalog, listeners: Listeners, rng: np.random.Generator):
        self.p, self.cat, self.lis, self.rng = params, catalog, listeners, rng
        self.history = np.full((listeners.size, params.history_size), -1, dtype=np.int64)
        self.history_pos = np.zeros(listeners.size, dtype=np.int64)
        self.utc_offset_ms = (np.array([r.utc_offset_hours for r in REGIONS]) * 3_600_000).astype(np.int64)
        diurnal = np.array(DIURNAL)
        self.diurnal = diurnal / diurnal.sum()
        self.start_ms = int(
            (np.datetime64(params.start.isoformat(), "ms") - np.datetime64("1970-01-01", "ms")).astype(np.int64)
        )

    # -- drawing tracks ---------------------------------------------------------------------------------------

    def _draw_in_blocks(
        self, cum: FloatArray, avail: npt.NDArray[np.bool_], block: tuple[IntArray, IntArray], keys: IntArray
    ) -> IntArray:
        """A popularity-weighted track inside block ``keys`` (any shape); -1 where the block has none released."""
        lo, hi = block[0][keys], block[1][keys]
        before = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
        total = np.where(hi > lo, cum[np.maximum(hi - 1, 0)] - before, 0.0)
        u = self.rng.random(keys.shape)
        idx = np.clip(np.searchsorted(cum, before + u * total, side="right"), lo, np.maximum(hi - 1, lo))
        idx = np.minimum(idx, cum.size - 1)
        drawn: IntArray = np.where((total > 0) & avail[idx], idx, -1)
        return drawn

    def _draw_global(self, cum: FloatArray, shape: tuple[int, ...]) -> IntArray:
        drawn: IntArray = np.minimum(np.searchsorted(cum, self.rng.random(shape) * cum[-1], side="right"), cum.size - 1)
        return drawn

    def _genres(self, users: IntArray, shape: tuple[int, ...]) -> IntArray:
        """Genres drawn from each listener's taste (``shape`` starts with ``users.size``)."""
        u = self.rng.random(shape)
        cdf = self.lis.genre_cdf[users].reshape((users.size,) + (1,) * (len(shape) - 1) + (-1,))
        drawn: IntArray = np.minimum((cdf < u[..., None]).sum(axis=-1), cdf.shape[-1] - 1)
        return drawn

    def _taste_candidates(
        self, users: IntArray, focus: IntArray, cum: FloatArray, avail: npt.NDArray[np.bool_]
    ) -> IntArray:
        c = self.p.candidates
        genres = self._genres(users, (users.size, c))
        # A session keeps a mood: this share of its taste proposals come from the genre it started in.
        focused = self.rng.random((users.size, c)) < self.p.session_focus
        genres = np.where(focused, focus[:, None], genres)
        cand = self._draw_in_blocks(cum, avail, self.cat.genre_block, genres)
        missing = cand < 0
        if missing.any():
            cand[missing] = self._draw_global(cum, (int(missing.sum()),))
        return cand

    # -- a day ------------------------------------------------------------------------------------------------

    def day(self, day: int) -> DayEvents:
        p, cat, lis, rng = self.p, self.cat, self.lis, self.rng
        weights = cat.weights_on(day, p)
        avail = weights > 0
        cum = np.cumsum(weights)

        joined = lis.signup_day <= day
        active = np.flatnonzero(joined & (rng.random(lis.size) < lis.activity))
        n_sessions = 1 + rng.poisson(p.extra_sessions_mean, active.size)
        sess_user = np.repeat(active, n_sessions)
        n = sess_user.size
        local_hour_ms = (rng.choice(24, n, p=self.diurnal) + rng.random(n)) * 3_600_000
        utc_ms = (local_hour_ms - self.utc_offset_ms[lis.region[sess_user]]) % MS_PER_DAY
        clock = (self.start_ms + day * MS_PER_DAY + utc_ms).astype(np.int64)
        length = np.minimum(rng.geometric(1.0 / p.session_length_mean, n), p.session_length_max)
        session_ids = [f"{x:016x}" for x in rng.integers(0, 2**62, n).tolist()]
        focus = self._genres(sess_user, (n,))

        prev = np.full(n, -1, dtype=np.int64)
        cols: dict[str, list[IntArray]] = {k: [] for k in ("user", "track", "action", "ts", "played", "sess", "ctx")}
        for step in range(int(length.max(initial=0))):
            sess = np.flatnonzero(length > step)
            users = sess_user[sess]
            track, source = self._choose(users, focus[sess], prev[sess], cum, avail)
            action, played = self._act(users, track)
            ts = clock[sess] + played
            clock[sess] = ts + (rng.random(sess.size) * p.gap_max_s * 1000).astype(np.int64)
            prev[sess] = track
            self._remember(users, track)
            ctx = _ENTRY_CONTEXTS[rng.choice(4, sess.size, p=_ENTRY_SHARES)]
            for src, c in _SOURCE_CONTEXT.items():
                ctx[source == src] = c
            for key, value in (("user", users), ("track", track), ("action", action), ("ts", ts),
                               ("played", played), ("sess", sess), ("ctx", ctx)):  # fmt: skip
                cols[key].append(value)

        if not cols["user"]:
            empty = np.empty(0, dtype=np.int64)
            return DayEvents(empty, empty, empty, empty, empty, empty, empty, [])
        merged = {k: np.concatenate(v) for k, v in cols.items()}
        order = np.argsort(merged["ts"], kind="stable")
        return DayEvents(
            user=merged["user"][order],
            track=merged["track"][order],
            action=merged["action"][order],
            timestamp=merged["ts"][order],
            played_ms=merged["played"][order],
            session=merged["sess"][order],
            context=merged["ctx"][order],
            session_ids=session_ids,
        )

    def _choose(
        self, users: IntArray, focus: IntArray, prev: IntArray, cum: FloatArray, avail: npt.NDArray[np.bool_]
    ) -> tuple[IntArray, IntArray]:
        p, cat, rng = self.p, self.cat, self.rng
        n, c = users.size, p.candidates
        r = rng.random(n)
        first = prev < 0
        source = np.full(n, TASTE)
        source[~first & (r < p.p_same_style)] = STYLE
        source[~first & (r >= p.p_same_style) & (r < p.p_same_style + p.p_same_artist)] = ARTIST
        lo_replay = np.where(first, 0.0, p.p_same_style + p.p_same_artist)
        source[(r >= lo_replay) & (r < lo_replay + p.p_replay)] = REPLAY

        cand = self._taste_candidates(users, focus, cum, avail)
        taste = cand.copy()
        prev_safe = np.maximum(prev, 0)
        for src, keys, block in (
            (STYLE, cat.track_style[prev_safe], cat.style_block),
            (ARTIST, cat.track_artist[prev_safe], cat.artist_block),
        ):
            rows = np.flatnonzero(source == src)
            if rows.size:
                drawn = self._draw_in_blocks(cum, avail, block, np.repeat(keys[rows, None], c, axis=1))
                cand[rows] = np.where(drawn >= 0, drawn, cand[rows])
        rows = np.flatnonzero(source == REPLAY)
        if rows.size:
            slots = rng.integers(0, p.history_size, (rows.size, c))
            past = self.history[users[rows, None], slots]
            cand[rows] = np.where(past >= 0, past, cand[rows])
        # Never the track that just played.
        cand = np.where(cand == prev[:, None], taste, cand)

        appeal = self.appeal(users[:, None], cand)
        gumbel = -np.log(-np.log(rng.random(appeal.shape) + 1e-12) + 1e-12)
        pick = np.argmax(appeal + gumbel, axis=1)
        return cand[np.arange(n), pick], source

    def appeal(self, users: IntArray, tracks: IntArray) -> FloatArray:
        """What a listener picks among the tracks offered by (with Gumbel noise): true affinity / temperature."""
        cat = self.cat
        z = true_affinity(self.lis, cat.track_genre, cat.track_style, cat.track_mood, cat.quality, self.p.affinity,
                          users, tracks)  # fmt: skip
        return z / self.p.choice_temperature

    def oracle(self, day: int, depth: int) -> tuple[IntArray, FloatArray]:
        """Each listener's ``depth`` likeliest plays on ``day`` by this choice model, best first, and their scores:
        tracks are offered in proportion to their popularity weight and picked by ``appeal`` plus Gumbel noise,
        so a track's log-odds are ``log(weight) + appeal`` (unreleased tracks: -inf). The best ranking any
        recommender could give; evaluation reports models as a fraction of it."""
        cat = self.cat
        with np.errstate(divide="ignore"):
            log_weight = np.log(cat.weights_on(day, self.p))
        depth = min(depth, cat.size)
        tracks = np.arange(cat.size)
        top = np.empty((self.lis.size, depth), dtype=np.int64)
        top_scores = np.empty((self.lis.size, depth))
        block = max(1, ORACLE_CELLS // cat.size)
        for start in range(0, self.lis.size, block):
            users = np.arange(start, min(start + block, self.lis.size))
            scores = self.appeal(users[:, None], tracks) + log_weight
            best = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
            ranked = np.take_along_axis(best, np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1), axis=1)
            top[users], top_scores[users] = ranked, np.take_along_axis(scores, ranked, axis=1)
        return top, top_scores

    def _act(self, users: IntArray, track: IntArray) -> tuple[IntArray, IntArray]:
        p, cat, rng = self.p, self.cat, self.rng
        z = true_affinity(
            self.lis, cat.track_genre, cat.track_style, cat.track_mood, cat.quality, p.affinity, users, track
        )
        n = users.size
        duration = cat.duration_ms[track]
        skip = rng.random(n) < _sigmoid(p.skip_slope * (p.skip_midpoint - z))
        complete = ~skip & (rng.random(n) < _sigmoid(p.complete_slope * (z - p.complete_midpoint)))
        action = np.where(skip, SKIP, np.where(complete, COMPLETE, LISTEN))
        skip_ms = 1000 + rng.random(n) * (np.minimum(EARLY_SKIP_MS, duration) - 1001)
        listen_ms = np.maximum(duration * (0.2 + 0.75 * rng.random(n)), EARLY_SKIP_MS + 1)
        played = np.where(skip, skip_ms, np.where(complete, duration, np.minimum(listen_ms, duration - 1)))
        return action.astype(np.int64), played.astype(np.int64)

    def _remember(self, users: IntArray, track: IntArray) -> None:
        slot = self.history_pos[users] % self.p.history_size
        self.history[users, slot] = track
        np.add.at(self.history_pos, users, 1)
