"""The demo's report as one self-contained HTML page: plots (PNG, inlined) where a reader would rather look,
tables where they would rather read. Opens offline: no scripts, no external assets."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a server or in CI
import matplotlib.pyplot as plt

MODELS = ("hybrid", "cf_only", "content_only", "popularity")
STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#1d2330;padding:0 1em}
h1{margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #dde;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0} td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left}
.ok{color:#17803d;font-weight:600} .failed{color:#b3261e;font-weight:600} .muted{color:#667}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em} img{max-width:100%}
.card{border:1px solid #e3e6ee;border-radius:8px;padding:.6em 1em}
"""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _timings_plot(timings: list[tuple[str, float]]) -> str:
    steps = [(n, s) for n, s in timings if n != "total"]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(steps) + 1))
    ax.barh([n for n, _ in steps][::-1], [s for _, s in steps][::-1], color="#4c72b0")
    ax.set_xlabel("seconds")
    ax.set_title("Where the demo's time went")
    return _png(fig)


def _volume_plot(per_day: list[tuple[str, int]]) -> str:
    fig, ax = plt.subplots(figsize=(10, 2.8))
    colors = ["#8aa0c8"] * (len(per_day) - 1) + ["#dd8452"]
    ax.bar([d[5:] for d, _ in per_day], [n for _, n in per_day], color=colors)
    ax.set_ylabel("events")
    ax.set_title("Events per simulated day (history in blue; the live day in orange)")
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    return _png(fig)


def _model_plot(home: dict[str, Any]) -> str:
    names = [m for m in MODELS if m in home]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for ax, metric in zip(axes, ("ndcg@10", "recall@10"), strict=True):
        values = [home[m].get(metric, 0.0) for m in names]
        ax.bar(names, values, color=["#55a868" if m == "hybrid" else "#aab" for m in names])
        ax.set_title(f"{metric} on held-out plays (the last days of history)")
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    return _png(fig)


def _held_out_plot(held: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(["Encore home page", "popularity"], [held["model_hits"], held["popularity_hits"]], color=["#55a868", "#aab"])
    ax.set_title(f"Hits on the live day's plays ({held['listeners']} warm listeners, 20 each)", fontsize=9)
    return _png(fig)


def _test_plot(test: dict[str, Any]) -> str:
    """Each arm's play-through rate with its 95% interval (normal approximation)."""
    arms = [test["champion"], test["challenger"]]
    rates = [a["rate"] for a in arms]
    errors = [1.96 * (a["rate"] * (1 - a["rate"]) / a["plays"]) ** 0.5 if a["plays"] else 0.0 for a in arms]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(["champion", "challenger"], rates, yerr=errors, capsize=6, color=["#55a868", "#c44e52"])
    for i, a in enumerate(arms):
        ax.text(i, 0, f"{a['completes']}/{a['plays']}", ha="center", va="bottom", fontsize=8, color="white")
    ax.set_ylabel("play-through rate")
    said = f"p = {test['p_value']:.2g}" if test.get("p_value") is not None else "too few plays to test"
    ax.set_title(f"Online test: {test['action']} ({said}); 95% intervals", fontsize=9)
    return _png(fig)


def _latency_plot(latency: dict[str, dict[str, float]]) -> str:
    routes = list(latency)
    fig, ax = plt.subplots(figsize=(10, 3))
    width = 0.27
    for j, (p, color) in enumerate((("p50", "#4c72b0"), ("p95", "#dd8452"), ("p99", "#c44e52"))):
        ax.bar([i + (j - 1) * width for i in range(len(routes))], [latency[r][p] for r in routes], width,
               label=p, color=color)  # fmt: skip
    ax.set_xticks(range(len(routes)), routes)
    ax.set_ylabel("ms")
    ax.set_title("API latency seen by the demo's clients (loopback, during the live hour)")
    ax.legend()
    return _png(fig)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _listeners_section(live: dict[str, Any]) -> list[str]:
    """What the choosing listeners did with the answers (the attribution table), and the online test."""
    parts = ["<h3>What listeners did with the recommendations</h3>"]
    rows = [[r["surface"], r["model_version"] or "fallback", r["variant"] or "-", r["impressions"], r["plays"],
             r["completes"], "-" if r["play_through_rate"] is None else f"{r['play_through_rate']:.0%}",
             r["outside_window"] + r["off_list"] + r["unknown"]] for r in live.get("attribution", [])]  # fmt: skip
    parts.append(_table(["surface", "model", "variant", "answers", "plays", "to the end", "play-through",
                         "not credited"], rows))  # fmt: skip
    test = live.get("online_test") or {}
    if test.get("champion"):
        parts.append("<div class='grid'><div>" + _test_plot(test) + "</div><div class='card'>")
        parts.append(f"<b>Online test</b>: {html.escape(test['champion']['version'])} (champion) against "
                     f"{html.escape(test['challenger']['version'])} (challenger), {test['days']} closed day. "
                     f"<b>{html.escape(test['action'])}</b>: {html.escape(test['reason'])}.</div></div>")  # fmt: skip
    return parts


def write_html(result: Any, path: Path) -> Path:
    live, model = result.live, result.model
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Encore demo report</title><style>{STYLE}"
        "</style></head><body>",
        "<h1>Encore demo report</h1>",
        f"<p class='muted'>scale {html.escape(result.scale)}; API at {html.escape(result.api_url)}/v1</p>",
    ]
    parts.append("<h2>Checks</h2><ul>")
    for name, ok in result.checks.items():
        parts.append(f"<li><span class='{'ok' if ok else 'failed'}'>{'ok' if ok else 'FAILED'}</span> "
                     f"{html.escape(name)}</li>")  # fmt: skip
    parts.append("</ul>")
    if result.iam_refusals:
        parts.append(_table(["refused: principal", "action", "resource"],
                            [[r["principal"], r["action"], r["resource"]] for r in result.iam_refusals]))  # fmt: skip
    parts += ["<h2>Pipeline and steps</h2>", _timings_plot(result.timings)]
    parts.append(_table(["step", "seconds"], [[n, f"{s:.1f}"] for n, s in result.timings]))
    for label, execution in result.executions.items():
        parts.append(f"<h3>Step Functions execution ({html.escape(label)}): {html.escape(execution['status'])}</h3>")
        rows = [
            [st["state"], st["type"], st["entered"], f"{st['seconds']:.1f}" if "seconds" in st else "-",
             st["status"] + (f": {st.get('error')}" if st.get("error") else "")]
            for st in execution["states"]
        ]  # fmt: skip
        parts.append(_table(["state", "type", "entered", "seconds", "status"], rows))
    if result.volumes:
        v = result.volumes
        parts += ["<h2>Data volumes</h2>", _volume_plot(v["events_per_day"]) if "events_per_day" in v else ""]
        parts.append(_table(["what", "how many"], [[k.replace("_", " "), f"{val:,}" if isinstance(val, int) else val]
                                                  for k, val in v.items() if k != "events_per_day"]))  # fmt: skip
    parts.append(
        f"<h2>Model {html.escape(str(model.get('version')))}</h2><p>{html.escape(str(model.get('reason')))}</p>"
    )
    if model.get("home"):
        parts.append(_model_plot(model["home"]))
    parts.append("<h2>Sample home pages</h2>")
    if any(s["taste"] for s in result.samples):  # simulated listeners
        parts.append("<p class='muted'>Each listener's true taste comes from the simulator; judge the "
                     "recommendations against it.</p>")  # fmt: skip
    parts.append("<div class='grid'>")
    for s in result.samples:
        taste = ", ".join(f"{g} {w:.2f}" for g, w in s["taste"])
        rows = [[i["name"], i["artist"], i["genre"], i["source"]] for i in s["items"]]
        table = _table(["track", "artist", "genre", "source"], rows)
        said = f" <span class='muted'>taste: {html.escape(taste)}</span>" if taste else ""
        parts.append(f"<div class='card'><b>{html.escape(s['user_id'])}</b>{said}{table}</div>")
    parts.append("</div>")
    if live:
        held, burst = live["held_out"], live["burst"]
        parts.append(f"<h2>The live hour ({html.escape(live['hour'])}:00 UTC)</h2>")
        parts.append(f"<p>{live['events_acked']:,} of {live['events_posted']:,} events acknowledged with 202; "
                     f"{live['reads']:,} reads alongside in {live['replay_seconds']:.1f} s; answers by status "
                     f"{html.escape(str(live['statuses']))}.</p>")  # fmt: skip
        parts.append("<div class='grid'><div>" + _held_out_plot(held) + "</div><div class='card'>")
        parts.append(f"<b>Genre burst</b>: {html.escape(burst['user_id'])} played {len(burst['played'])} "
                     f"{html.escape(burst['genre'])} tracks. Next song's {html.escape(burst['genre'])} share: "
                     f"{burst['next_share_before']:.0%} before, <b>{burst['next_share_after']:.0%}</b> after "
                     f"(their home page before: {burst['home_share_before']:.0%}; the genre's share of all plays: "
                     f"{burst['base_share']:.0%}).</div></div>")  # fmt: skip
        served, expected = live["charts"]["served"], live["charts"]["expected"]
        rows = [[r, len(served[r]), "yes" if served[r] == expected.get(r) else "NO",
                 ", ".join(f"{t} ({n})" for t, n in served[r][:3])] for r in served]  # fmt: skip
        parts.append("<h3>Hour charts against the events sent</h3>")
        parts.append(_table(["region", "entries", "match", "top 3 (plays)"], rows))
        parts += _listeners_section(live)
    if result.latency_ms:
        parts += ["<h2>API latency</h2>", _latency_plot(result.latency_ms)]
        parts.append(_table(["route", "requests", "p50 ms", "p95 ms", "p99 ms"],
                            [[r, p["requests"], f"{p['p50']:.1f}", f"{p['p95']:.1f}", f"{p['p99']:.1f}"]
                             for r, p in result.latency_ms.items()]))  # fmt: skip
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
    return path
