"""The simulation summary for the terminal (``encore simulate`` and the demo print it)."""

from __future__ import annotations

from encore_local.simulator.run import SimulationSummary


def _bar(share: float, width: int = 30) -> str:
    return "#" * max(1, round(share * width)) if share > 0 else ""


def render_summary(s: SimulationSummary, seconds: float | None = None) -> str:
    """What the simulator generated: counts, genre mix, popularity concentration, cold start, new listeners."""
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    total = max(s.events, 1)
    lines = [
        f"Simulated {s.days} days{took} -> {s.out_dir}",
        f"  catalog    {s.tracks:>10,} tracks by {s.artists:,} artists; "
        f"{s.cold_start_tracks:,} released during the period ({s.cold_start_track_share:.1%}, cold start)",
        f"  listeners  {s.listeners:>10,} ({s.new_listeners:,} joined during the period, "
        f"{s.new_listeners / max(s.listeners, 1):.1%}); {s.active_listeners:,} listened at least once",
        f"  events     {s.events:>10,} in {s.sessions:,} sessions; "
        + ", ".join(f"{a} {c / total:.1%}" for a, c in s.actions.items()),
        f"  popularity top 1% of tracks get {s.top_1pct_track_share:.1%} of plays, top 10% get "
        f"{s.top_10pct_track_share:.1%} (Gini {s.gini:.2f})",
        f"  cold start new releases get {s.cold_start_play_share:.1%} of plays; "
        f"new listeners make {s.new_listener_event_share:.1%} of events",
        "  genre mix (share of plays)",
    ]
    for genre, share in sorted(s.genre_mix.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {genre:<11} {share:6.1%} {_bar(share)}")
    return "\n".join(lines)
