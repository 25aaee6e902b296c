"""Every knob of the listening simulator, with its default and what it means (mirrored in docs/simulator.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from encore_local.errors import UsageError


@dataclass(frozen=True)
class AffinityWeights:
    """A listener's true affinity for a track: a weighted sum of four parts, each in [0, 1]."""

    genre: float = 0.45  # the listener's taste for the track's genre, relative to their favourite genre
    style: float = 0.15  # their preference among the genre's sub-styles
    mood: float = 0.20  # their taste for the track's mood (valence x energy quadrant)
    quality: float = 0.20  # the track's own appeal, which also drives its popularity


@dataclass(frozen=True)
class SimulationParams:
    # Scale
    users: int = 3000
    tracks: int = 6000
    days: int = 30
    seed: int = 7
    start: date = date(2026, 9, 1)

    # Catalog
    tracks_per_artist: float = 8.0  # mean; artists' output is log-normal, so a few are prolific
    artist_popularity_alpha: float = 1.1  # Pareto tail of artist popularity (smaller = more concentrated)
    track_popularity_sigma: float = 1.0  # log-normal spread of track popularity within an artist
    feature_noise: float = 0.12  # s.d. of audio features around their sub-style's mean
    new_release_share: float = 0.04  # tracks released during the simulated period (cold-start tracks)
    new_release_hype: float = 3.0  # extra popularity of a new release on its release day ...
    new_release_hype_days: float = 7.0  # ... decaying with this time constant
    instrumental_threshold: float = 0.7  # tracks more instrumental than this have no lyrics

    # Listeners
    initial_user_share: float = 0.8  # listeners already signed up on day 0; the rest join uniformly later
    daily_activity_median: float = 0.25  # median chance that a listener listens on a given day ...
    daily_activity_sigma: float = 0.9  # ... log-normal across listeners (power users and occasional ones)
    extra_sessions_mean: float = 0.5  # sessions per active day = 1 + Poisson(this)
    taste_concentration: float = 0.5  # Dirichlet concentration of genre taste (small = few favourite genres)
    style_concentration: float = 0.7  # Dirichlet concentration of sub-style preference within a genre
    mood_concentration: float = 1.0  # Dirichlet concentration of mood taste
    affinity: AffinityWeights = field(default_factory=AffinityWeights)

    # Sessions
    session_length_mean: float = 10.0  # tracks per session, geometric
    session_length_max: int = 60
    session_focus: float = 0.6  # share of a session's taste proposals drawn from the one genre it started in
    candidates: int = 5  # a listener picks the best-liked of this many proposed tracks ...
    choice_temperature: float = 0.15  # ... with Gumbel noise of this scale (larger = more random picks)
    p_same_style: float = 0.35  # the next proposal comes from the current track's sub-style
    p_same_artist: float = 0.10  # ... from the current track's artist
    p_replay: float = 0.12  # ... from the listener's own recent plays
    history_size: int = 30  # recent plays remembered per listener for replays
    popularity_exponent: float = 1.0  # proposals are drawn with probability popularity ** this

    # Actions (z is the true affinity)
    skip_midpoint: float = 0.60  # P(skip) = sigmoid(slope * (midpoint - z))
    skip_slope: float = 10.0
    complete_midpoint: float = 0.68  # among non-skips, P(complete) = sigmoid(slope * (z - midpoint))
    complete_slope: float = 8.0
    gap_max_s: float = 4.0  # idle seconds between tracks, uniform

    def __post_init__(self) -> None:
        checks = [
            (self.users >= 1, "--users must be at least 1"),
            (self.tracks >= 100, "--tracks must be at least 100 (every genre needs artists)"),
            (1 <= self.days <= 3650, "--days must be between 1 and 3650"),
            (self.seed >= 0, "--seed must be 0 or more"),
            (0 <= self.new_release_share < 1, "new_release_share must be in [0, 1)"),
            (0 <= self.session_focus <= 1, "session_focus must be in [0, 1]"),
            (0 < self.initial_user_share <= 1, "initial_user_share must be in (0, 1]"),
            (self.p_same_style + self.p_same_artist + self.p_replay <= 1, "proposal shares must sum to at most 1"),
            (self.candidates >= 1, "candidates must be at least 1"),
            (self.session_length_mean >= 1, "session_length_mean must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["start"] = self.start.isoformat()
        return out


SCALES: dict[str, dict[str, int]] = {
    "small": {"users": 400, "tracks": 1500, "days": 21},
    "default": {"users": 3000, "tracks": 6000, "days": 30},
    "large": {"users": 20000, "tracks": 40000, "days": 30},
}
