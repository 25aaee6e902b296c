"""``encore demo --data <format>:<path>``: the whole product on data you brought instead of the simulator's.

Starts the twin and deploys the synthesized stack, imports the files (``encore import``'s conversion, landed as
one bulk import arriving the day before the run), runs the nightly state machine at midnight after the last
imported event, and reports what it can without an oracle: the gate's decision, held-out home quality beside the
sources alone and popularity, playlist-continuation quality (R-precision, NDCG@500), next-song quality, the
charts, and a sample of served home pages through the API. The twin's processes' logs go to ``<out>/logs/``, as in
``encore demo``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from encore.config import EncoreConfig
from encore_local.demo.html_report import write_html
from encore_local.demo.live import ApiClient
from encore_local.demo.report import render_closing, render_demo
from encore_local.demo.run import (
    DemoResult,
    fresh_log_dir,
    naming_logs,
    percentiles,
    run_nightly,
    serve_until_interrupted,
    serving,
)
from encore_local.errors import UsageError
from encore_local.importer import FORMATS, convert, import_id, land, render
from encore_local.twin.apigateway import DEFAULT_API_KEY
from encore_local.twin.services import TwinServices

SAMPLE_LISTENERS = 3


def parse_data(text: str) -> tuple[str, list[Path]]:
    """``mpd:/data/mpd`` or ``lastfm:plays.tsv,profile.tsv`` -> the format and its paths."""
    fmt, _, paths = text.partition(":")
    if fmt not in FORMATS or not paths:
        raise UsageError(f"--data: '{text}' is not <format>:<path>[,<path>...] with a format of {', '.join(FORMATS)}")
    return fmt, [Path(p) for p in paths.split(",")]


def run_imported_demo(
    data: str, out_dir: Path, *, progress: bool = True, port: int = 8080, keep_serving: bool = False,
    verbose: bool = False,
) -> DemoResult:  # fmt: skip
    fmt, paths = parse_data(data)
    result = DemoResult(scale=f"imported {fmt}")
    logs = fresh_log_dir(out_dir)
    result.logs = str(logs)
    t0 = time.perf_counter()

    def timed(name: str, started: float) -> None:
        result.timings.append((name, time.perf_counter() - started))

    twin = TwinServices(EncoreConfig.for_stage("local"), progress=progress, warm=True, log_dir=logs, verbose=verbose)
    with naming_logs(logs), twin as endpoints:
        config = twin.config
        timed("start the twin and deploy the synthesized stack", t0)
        print(f"twin: AWS APIs at {endpoints.aws_endpoint}, cache ({endpoints.cache_kind}) at {endpoints.cache_url}")

        t = time.perf_counter()
        converted, report = convert(config, fmt, paths, progress=progress)
        if not report.events:
            raise UsageError(f"nothing to train on: {fmt} {', '.join(map(str, paths))} held no importable plays\n"
                             + render(report))  # fmt: skip
        run_day = datetime.fromtimestamp(report.last_event_ms / 1000, UTC).date() + timedelta(days=1)
        land(config, fmt, converted, report, (run_day - timedelta(days=1)).isoformat(), import_id())
        timed(f"import {fmt} (arriving the day before the run)", t)
        print(render(report))

        print(f"  nightly: Step Functions execution of {config.resources.state_machine} at {run_day} 00:00 UTC ...")
        nightly = run_nightly(config, result, run_day)
        result.volumes = {"format": fmt, "rows": report.rows, "events": report.events,
                          "catalog_tracks": report.catalog_tracks, "rejected": len(report.rejections),
                          "rejected_by_reason": report.rejections.summary()}  # fmt: skip

        with serving(twin, port, result) as api:
            client = ApiClient(api.url, DEFAULT_API_KEY)
            plays = Counter(e["user_id"] for events in converted.events.values() for e in events)
            catalog = converted.catalog
            for user, _ in plays.most_common(SAMPLE_LISTENERS):
                body = client.get("home", f"/v1/users/{user}/recommendations", limit=5)
                items = [{"name": i.get("name"), "artist": i.get("artist_name"), "source": i["source"],
                          "genre": ((catalog.get(i["track_id"]) if catalog else None) or {}).get("track_genre") or "-"}
                         for i in body["items"]]  # fmt: skip
                result.samples.append({"user_id": user, "taste": [], "model_version": body["model_version"],
                                       "fallback": body["fallback"], "items": items})  # fmt: skip
            result.checks = {
                "the nightly run promoted a model trained on the imported data": nightly.promoted,
                "the report shows continuation quality (R-precision, NDCG@500)": bool(result.model.get("continuation")),
                "sample listeners got a personalised home page": all(
                    s["items"] and not s["fallback"] for s in result.samples
                ),
                "no AWS call was refused by IAM": not twin.iam_refusals,
            }
            result.iam_refusals = list(twin.iam_refusals)
            result.latency_ms = {route: percentiles(v) for route, v in sorted(client.latency_ms.items())}
            result.timings.append(("total", time.perf_counter() - t0))
            (out_dir / "report.json").write_text(json.dumps(asdict(result), indent=1, default=str))
            html = write_html(result, out_dir / "report.html")
            print(render_demo(result))
            print(render_closing(result, html, logs, serving=keep_serving), flush=True)
            if keep_serving:
                serve_until_interrupted()
    return result
