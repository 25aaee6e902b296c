"""The demo's closing report for the terminal, and the addresses it ends with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from encore_local.twin.apigateway import DEFAULT_API_KEY
from encore_local.twin.process import GLUE_LOG, LAMBDA_LOG, SAGEMAKER_LOG

LOG_FILES = {
    GLUE_LOG: "Spark and the Glue jobs",
    LAMBDA_LOG: "the functions' log lines and EMF metrics",
    SAGEMAKER_LOG: "training and the model endpoint",
}


def _model_lines(model: dict[str, Any]) -> list[str]:
    lines = [f"Model {model.get('version')}: {model.get('reason')}"]
    home, continuation = model.get("home", {}), model.get("continuation", {})
    for name, m in home.items():
        line = f"  {name:<11} NDCG@10 {m.get('ndcg@10', 0):.4f}  recall@10 {m.get('recall@10', 0):.4f}"
        if name in continuation:
            c = continuation[name]
            line += f"  continuation: R-precision {c.get('r_precision', 0):.4f}  NDCG@500 {c.get('ndcg@500', 0):.4f}"
        lines.append(line)
    return lines


def render_demo(result: Any) -> str:
    """The demo's closing report: model, samples, the live hour, its checks, API latency and step timings."""
    live = result.live
    lines = [""]
    lines += _model_lines(result.model)
    simulated = any(s["taste"] for s in result.samples)
    lines.append("Sample home pages (" + ("a listener's true taste from the simulator, then " if simulated else "")
                 + "what Encore recommends):")  # fmt: skip
    for s in result.samples:
        taste = ", ".join(f"{g} {w:.2f}" for g, w in s["taste"])
        lines.append(f"  {s['user_id']}{f' (taste: {taste})' if taste else ''}, model {s['model_version']}:")
        lines += [f"    {i['name']} - {i['artist']} [{i['genre']}]" for i in s["items"]]
    if live:
        held, burst = live["held_out"], live["burst"]
        lines += [
            f"Live hour {live['hour']}:00 UTC: {live['events_acked']:,} of {live['events_posted']:,} events "
            f"acknowledged (202), {live['reads']:,} reads alongside, in {live['replay_seconds']:.1f} s; "
            f"answers by status {live['statuses']}",
            f"  held out: {held['listeners']} warm listeners' home pages (asked before the live day) hit "
            f"{held['model_hits']} of the new tracks they then played; popularity hits {held['popularity_hits']} "
            f"(precision@20 {held['model_precision']:.4f} vs {held['popularity_precision']:.4f})",
            f"  burst: {burst['user_id']} played {len(burst['played'])} {burst['genre']} tracks; next song's "
            f"{burst['genre']} share went {burst['next_share_before']:.0%} -> {burst['next_share_after']:.0%} "
            f"(home page before: {burst['home_share_before']:.0%}; share of all plays: {burst['base_share']:.0%})",
            f"  curated: {live['curated_rows_for_day']:,} rows for the live day",
        ]
        chose = live.get("choices")
        if chose:
            lines.append(f"  choosing listeners: {chose['listeners']} played {chose['plays']} of the tracks they were "
                         f"shown ({chose['completes']} to the end), each with its answer's id")  # fmt: skip
            lines.append("  attribution (the live day, by surface, model version and variant):")
            for row in live.get("attribution", []):
                rate = "-" if row["play_through_rate"] is None else f"{row['play_through_rate']:.0%}"
                model = f"{row['model_version']} ({row['variant']})" if row["model_version"] else "fallback"
                lines.append(
                    f"    {row['surface']:<8} {model:<40} {row['impressions']:>5} answers  {row['plays']:>3} plays  "
                    f"play-through {rate:>4}  outside window {row['outside_window']}, off list {row['off_list']}, "
                    f"unknown {row['unknown']}"
                )
        test = live.get("online_test")
        if test and test.get("champion"):
            lines.append(f"  online test ({test['days']} closed day): {test['action']}: {test['reason']}")
            for arm in ("champion", "challenger"):
                a = test[arm]
                lines.append(f"    {arm:<10} {a['version']:<28} {a['plays']:>4} plays  {a['completes']:>4} to the end  "
                             f"play-through {a['rate']:.0%}")  # fmt: skip
    lines.append("Checks:")
    lines += [f"  [{'ok' if ok else 'FAILED'}] {name}" for name, ok in result.checks.items()]
    lines += [f"      {refusal['message']}" for refusal in result.iam_refusals]
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


def render_closing(result: Any, report: Path, logs: Path, *, serving: bool) -> str:
    """Where the logs and the report are, and what to open in a browser: the web app, the Swagger UI and the report
    while the demo serves; after ``--exit`` only the report (the servers stopped with the demo)."""
    lines = [f"Logs of the twin's processes in {logs}/ (--verbose shows them here too):"]
    lines += [f"  {name:<15}{what}" for name, what in LOG_FILES.items()]
    url = report.resolve().as_uri()
    if serving:
        lines += [
            "Open in a browser:",
            f"  web app     {result.site_url}/",
            f"  Swagger UI  {result.api_url}/v1/docs",
            f"  report      {url} (report.json beside it)",
            f"The API: {result.api_url}/v1 (header x-api-key: {DEFAULT_API_KEY}). Ctrl-C stops.",
        ]
    else:
        lines += [
            f"Report (open in a browser): {url} (report.json beside it)",
            "The web app and the API stopped with the demo (--exit); without --exit they stay up until Ctrl-C.",
        ]
    return "\n".join(lines)
