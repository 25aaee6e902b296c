"""Offline evaluation: ranking metrics on a time-based holdout, next-track metrics, the report and its plots.

Used by training (the report inside every artifact), by the promotion gate (which reads that report) and by
the benchmarks. Python 3.9-compatible, like everything under sagemaker/.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable

import numpy as np

KS = (5, 10, 20, 50)


def ranking_metrics(
    recs: Mapping[str, Sequence[int]],
    truth: Mapping[str, set[int]],
    n_items: int,
    popularity: np.ndarray,
    ks: Sequence[int] = KS,
) -> dict[str, float]:
    """Precision, recall, MAP, NDCG at each K, MRR, catalog coverage and novelty, averaged over users.

    ``recs[user]`` are item indices best first; ``truth[user]`` the held-out items. Novelty is the mean
    self-information ``-log2 p(item)`` of the top-10, with p the item's share of training interactions.
    """
    users = [u for u in truth if truth[u] and u in recs]
    out: dict[str, float] = {"users": float(len(users))}
    if not users:
        return out
    share = (popularity + 1.0) / (popularity.sum() + popularity.size)
    info = -np.log2(share)
    discounts = 1.0 / np.log2(np.arange(2, max(ks) + 2))
    for k in ks:
        p = r = ap = ndcg = 0.0
        for u in users:
            rel = np.array([1.0 if i in truth[u] else 0.0 for i in list(recs[u])[:k]])
            hits = rel.sum()
            p += hits / k
            r += hits / len(truth[u])
            if hits:
                precision_at = np.cumsum(rel) / np.arange(1, rel.size + 1)
                ap += float((precision_at * rel).sum() / min(len(truth[u]), k))
            ideal = discounts[: min(len(truth[u]), k)].sum()
            ndcg += float((rel * discounts[: rel.size]).sum() / ideal)
        n = len(users)
        out.update({f"precision@{k}": p / n, f"recall@{k}": r / n, f"map@{k}": ap / n, f"ndcg@{k}": ndcg / n})
    mrr = 0.0
    seen: set[int] = set()
    novelty = 0.0
    for u in users:
        top = list(recs[u])[: max(ks)]
        rank = next((i for i, item in enumerate(top) if item in truth[u]), None)
        mrr += 0.0 if rank is None else 1.0 / (rank + 1)
        seen.update(top[:10])
        novelty += float(info[top[:10]].mean()) if top else 0.0
    out["mrr"] = mrr / len(users)
    out["coverage@10"] = len(seen) / n_items
    out["novelty@10"] = novelty / len(users)
    return out


CONTINUATION_DEPTH = 500
CONTINUATION_MODELS = ("hybrid", "als", "popularity")  # the served ranking, CF only, popularity


def continuation_metrics(
    recs: Mapping[str, Sequence[int]], truth: Mapping[str, set[int]], depth: int = CONTINUATION_DEPTH
) -> dict[str, float]:
    """R-precision and NDCG of ``depth`` recommendations as the RecSys Challenge 2018 defined them for playlist
    continuation, averaged over listeners (for a playlist: its held-out last tracks are ``truth``).

    R-precision is the share of the held-out tracks G found among the first |G| recommended. NDCG is the
    challenge's: DCG = rel_1 + sum_{i>=2} rel_i / log2(i) over the ``depth`` recommended, divided by the ideal
    DCG of as many relevant tracks as were found, IDCG = 1 + sum_{i=2}^{|G ∩ R|} 1 / log2(i) (0 when none).
    """
    users = [u for u in truth if truth[u] and u in recs]
    if not users:
        return {"users": 0.0}
    discount = np.ones(depth)
    discount[1:] = 1.0 / np.log2(np.arange(2, depth + 1))
    ideal = np.cumsum(discount)
    r_precision = ndcg = 0.0
    for u in users:
        top, held = list(recs[u])[:depth], truth[u]
        r_precision += len(held.intersection(top[: len(held)])) / len(held)
        rel = np.array([item in held for item in top], dtype=float)
        found = int(rel.sum())
        ndcg += float((rel * discount[: rel.size]).sum() / ideal[found - 1]) if found else 0.0
    return {"users": float(len(users)), "r_precision": r_precision / len(users),
            f"ndcg@{depth}": ndcg / len(users)}  # fmt: skip


def next_track_metrics(
    pairs: Sequence[tuple], recommend: Callable[[tuple], Sequence[int]], k: int = 10
) -> dict[str, float]:
    """Hit rate@k and MRR@k of predicting the next track of held-out transitions ``(previous, next, ...)``;
    ``recommend`` gets the whole tuple (what else it holds is the caller's: the listener, the session)."""
    if not pairs:
        return {"pairs": 0.0}
    hits = mrr = 0.0
    for case in pairs:
        nxt = case[1]
        top = list(recommend(case))[:k]
        if nxt in top:
            hits += 1
            mrr += 1.0 / (top.index(nxt) + 1)
    return {"pairs": float(len(pairs)), f"hit_rate@{k}": hits / len(pairs), f"mrr@{k}": mrr / len(pairs)}


def recall_on(recs: Mapping[str, Sequence[int]], truth: Mapping[str, set[int]], items: set[int], k: int) -> float:
    """Recall@k restricted to held-out items in ``items`` (e.g. cold-start tracks)."""
    found = total = 0
    for u, held in truth.items():
        targets = held & items
        if not targets or u not in recs:
            continue
        total += len(targets)
        found += len(targets & set(list(recs[u])[:k]))
    return found / total if total else float("nan")


def write_report(report: dict, out_dir: Path, recommended_popularity: dict[str, list[float]] | None = None) -> None:
    """``evaluation.json``, ``evaluation.md`` and PNG plots (metric by K; popularity of what is recommended)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2, default=float))
    (out_dir / "evaluation.md").write_text(markdown(report))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are a convenience; the numbers are in the JSON
        return
    home = report.get("home", {})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, metrics in home.items():
        for ax, metric in zip(axes, ("ndcg", "recall")):
            ys = [metrics.get(f"{metric}@{k}", np.nan) for k in KS]
            ax.plot(KS, ys, marker="o", label=name)
            ax.set_title(f"home {metric.upper()}@K")
            ax.set_xlabel("K")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out_dir / "metric_by_k.png", dpi=110)
    plt.close(fig)
    if recommended_popularity:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, values in recommended_popularity.items():
            ax.hist(np.log10(np.asarray(values) + 1), bins=30, histtype="step", label=name)
        ax.set_xlabel("log10(1 + training interactions of a recommended track)")
        ax.set_ylabel("recommendations in the top 10")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "recommended_popularity.png", dpi=110)
        plt.close(fig)


def markdown(report: dict) -> str:
    lines = [f"# Evaluation of model {report.get('version', '?')}", ""]
    home = report.get("home", {})
    if home:
        cols = ["precision@10", "recall@10", "map@10", "ndcg@10", "mrr", "coverage@10", "novelty@10"]
        lines += [
            "## Home (time-based holdout)",
            "",
            "| model | " + " | ".join(cols) + " |",
            "| --- |" + " --- |" * len(cols),
        ]
        for name, m in home.items():
            lines.append(f"| {name} | " + " | ".join(f"{m.get(c, float('nan')):.4f}" for c in cols) + " |")
    nxt = report.get("next", {})
    if nxt:
        lines += [
            "",
            "## Next track (held-out transitions)",
            "",
            "| model | hit_rate@10 | mrr@10 |",
            "| --- | --- | --- |",
        ]
        for name, m in nxt.items():
            lines.append(f"| {name} | {m.get('hit_rate@10', float('nan')):.4f} | {m.get('mrr@10', float('nan')):.4f} |")
    continuation = report.get("continuation", {})
    if continuation:
        depth = f"ndcg@{CONTINUATION_DEPTH}"
        lines += [
            "",
            f"## Continuation ({CONTINUATION_DEPTH} recommendations, RecSys Challenge 2018 metrics)",
            "",
            f"| model | r_precision | {depth} |",
            "| --- | --- | --- |",
        ]
        for name, m in continuation.items():
            lines.append(f"| {name} | {m.get('r_precision', float('nan')):.4f} | {m.get(depth, float('nan')):.4f} |")
    cold = report.get("cold_start", {})
    if cold:
        lines += ["", "## Cold start", ""] + [f"- {k}: {v:.4f}" for k, v in cold.items()]
    fresh = report.get("freshness", {})
    if fresh:
        lines += ["", f"## Freshness ({fresh['listeners']} listeners; serving gives new releases "
                      f"{fresh['served_share']:.0%} of the places from the 20th)", "",
                  "| share | NDCG@10 | recall@50 | recall@50 of new tracks | new releases in the top 50 |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        lines += [f"| {share} | {m['ndcg@10']:.4f} | {m['recall@50']:.4f} | {m['recall@50_cold']:.4f} | "
                  f"{m['fresh_places_of_50']:.1f} |" for share, m in fresh["by_share"].items()]  # fmt: skip
    oracle = report.get("oracle", {})
    if oracle:
        lines += ["", "## Against the oracle (simulator ground truth)", ""] + [
            f"- {k}: {v:.4f}" for k, v in oracle.items()
        ]
    return "\n".join(lines) + "\n"
