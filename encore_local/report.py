"""Plain-text reports for the terminal: the simulation summary and the demo's closing report."""

from __future__ import annotations

from typing import Any

from encore_local.simulator import SimulationSummary


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


def _model_lines(model: dict[str, Any]) -> list[str]:
    lines = [f"Model {model.get('version')}: {model.get('reason')}"]
    home = model.get("home", {})
    for name in ("hybrid", "cf_only", "content_only", "popularity"):
        if name in home:
            m = home[name]
            lines.append(f"  {name:<11} NDCG@10 {m.get('ndcg@10', 0):.4f}  recall@10 {m.get('recall@10', 0):.4f}")
    return lines


def render_demo(result: Any) -> str:
    """The demo's closing report: model, samples, the live hour, its checks, API latency and step timings."""
    live = result.live
    lines = [""]
    lines += _model_lines(result.model)
    lines.append("Sample home pages (a listener's true taste from the simulator, then what Encore recommends):")
    for s in result.samples:
        taste = ", ".join(f"{g} {w:.2f}" for g, w in s["taste"])
        lines.append(f"  {s['user_id']} (taste: {taste}), model {s['model_version']}:")
        lines += [f"    {i['name']} - {i['artist']} [{i['genre']}]" for i in s["items"]]
    if live:
        held, burst = live["held_out"], live["burst"]
        lines += [
            f"Live hour {live['hour']}:00 UTC: {live['events_acked']:,} of {live['events_posted']:,} events "
            f"acknowledged (202), {live['reads']:,} reads alongside, in {live['replay_seconds']:.1f} s; "
            f"answers by status {live['statuses']}",
            f"  held out: {held['listeners']} warm listeners' home pages (asked before the live day) hit "
            f"{held['model_hits']} of the tracks they then played; popularity hits {held['popularity_hits']} "
            f"(precision@20 {held['model_precision']:.4f} vs {held['popularity_precision']:.4f})",
            f"  burst: {burst['user_id']} played {len(burst['played'])} {burst['genre']} tracks; next song's "
            f"{burst['genre']} share went {burst['next_share_before']:.0%} -> {burst['next_share_after']:.0%} "
            f"(home page before: {burst['home_share_before']:.0%}; share of all plays: {burst['base_share']:.0%})",
            f"  curated: {live['curated_rows_for_day']:,} rows for the live day",
        ]
    lines.append("Checks:")
    lines += [f"  [{'ok' if ok else 'FAILED'}] {name}" for name, ok in result.checks.items()]
    lines.append("API latency seen by the demo's clients (ms):")
    for route, p in result.latency_ms.items():
        lines.append(
            f"  {route:<16} {p['requests']:>5} requests  p50 {p['p50']:6.1f}  p95 {p['p95']:6.1f}  p99 {p['p99']:6.1f}"
        )
    for label, execution in result.executions.items():
        lines.append(f"Step Functions execution ({label}) {execution['arn'].rsplit(':', 1)[-1]}: {execution['status']}")
        lines += [f"  {_state_line(state)}" for state in execution["states"]]
    lines.append("Steps:")
    lines += [f"  {seconds:7.1f} s  {name}" for name, seconds in result.timings]
    return "\n".join(lines)


def _state_line(state: dict[str, Any]) -> str:
    seconds = f"{state['seconds']:7.1f} s" if "seconds" in state else "        -"
    failed = f"  {state.get('error')}: {state.get('cause')}" if state.get("status") == "failed" else ""
    return f"{seconds}  {state['type']:<7} {state['state']}{failed}"
