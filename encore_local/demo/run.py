"""``encore demo``: Encore end to end on one machine, with a report at the end.

Starts the twin and deploys the synthesized stack into it, generates a simulated music service (N days of
history and one live day), imports the history into the lake (one bulk import, arriving the day before the live
day), runs the nightly state machine as a Step Functions execution of its synthesized definition (its curate job
takes the whole import), serves the API over HTTP, replays the live day's busiest hour through
``POST /v1/events`` while sample listeners ask for recommendations, runs the charts state machine, and checks
what came back. Then it writes the report (terminal, ``report.html``, ``report.json``), with every state of both
executions and its time, and keeps the API up until Ctrl-C.

The terminal shows the steps, the progress bars, the checks and the addresses to open; what the twin's processes
write (Spark's log, the functions' log lines and EMF metrics, training's output) goes to ``<out>/logs/``, and with
``verbose`` to the terminal as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from encore.config import EncoreConfig
from encore.promotion import read_report
from encore_local.demo.html_report import write_html
from encore_local.demo.live import (
    MS_PER_HOUR,
    ApiClient,
    LiveDay,
    attribution_table,
    curated_counts,
    expected_chart,
    genre_burst,
    held_out,
    listeners_choose,
    replay_hour,
    served_charts,
)
from encore_local.demo.report import render_closing, render_demo
from encore_local.errors import UsageError
from encore_local.jobs import run_job
from encore_local.lake import import_simulation
from encore_local.online_test import DEPLOY, JUDGE, derived_challenger, invoke
from encore_local.pipeline import Execution, run_state_machine, set_clock
from encore_local.simulator import SimulationParams, simulate
from encore_local.simulator.listeners import GroundTruth, load_ground_truth
from encore_local.simulator.run import EVENTS_DIR
from encore_local.simulator.summary import render_summary
from encore_local.simulator.world import GENRES
from encore_local.twin.apigateway import DEFAULT_API_KEY, TwinApi
from encore_local.twin.clock import CLOCK
from encore_local.twin.router import TRAINING_CHANNELS_PATH
from encore_local.twin.services import TwinServices

SAMPLE_LISTENERS = 3
TEST_LISTENERS = 80  # choosing listeners during the online test (the local stage splits them half and half)
HELD_OUT_LISTENERS = 200
CHART_REGIONS = 6  # the live hour's busiest regions, and GLOBAL, are checked
CHART_LIMIT = 20


@dataclass
class DemoResult:
    scale: str
    timings: list[tuple[str, float]] = field(default_factory=list)
    volumes: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    live: dict[str, Any] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    iam_refusals: list[dict[str, str]] = field(default_factory=list)  # calls a role's policies did not allow
    api_url: str = ""
    site_url: str = ""  # the web app, with /v1 forwarded to the API (the twin's CloudFront)
    logs: str = ""  # the folder of the twin's processes' logs


def _taste(truth: GroundTruth, user_id: str) -> list[tuple[str, float]]:
    row = truth.genre_norm[int(np.flatnonzero(truth.user_ids == user_id)[0])]
    return [(GENRES[g].name, round(float(row[g]), 2)) for g in np.argsort(-row)[:3]]


def _samples(client: ApiClient, day: LiveDay, truth: GroundTruth, users: list[str]) -> list[dict[str, Any]]:
    genre = dict(zip(day.tracks["track_id"], day.tracks["track_genre"], strict=True))
    out = []
    for user in users:
        body = client.get("home", f"/v1/users/{user}/recommendations", limit=5)
        items = [{"name": i.get("name"), "artist": i.get("artist_name"), "genre": genre.get(i["track_id"], "?"),
                  "source": i["source"]} for i in body["items"]]  # fmt: skip
        out.append({"user_id": user, "taste": _taste(truth, user), "model_version": body["model_version"],
                    "fallback": body["fallback"], "items": items})  # fmt: skip
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"requests": len(values), "p50": float(p50), "p95": float(p95), "p99": float(p99)}


@contextlib.contextmanager
def serving(twin: TwinServices, port: int, result: DemoResult) -> Iterator[TwinApi]:
    """The API over HTTP (on ``port``, else any free one) and the web app beside it, their addresses in
    ``result``, both stopped on the way out."""
    try:
        api = twin.api(port=port, workers=2, prestart=1)
    except OSError:  # the port is taken: any free one will do
        print(f"port {port} is in use; the API takes a free port instead")
        api = twin.api(port=0, workers=2, prestart=1)
    result.api_url = api.start()
    site = twin.site(api)
    result.site_url = site.start()
    try:
        yield api
    finally:
        site.stop()
        api.stop()


def serve_until_interrupted() -> None:
    """Serve until Ctrl-C, the way a person ends the demo (not an error: the demo exits as its checks say)."""
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping the twin ...", flush=True)


def fresh_log_dir(out_dir: Path) -> Path:
    """``<out>/logs/``, emptied of an earlier run's logs (the twin's processes append to theirs)."""
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*.log"):
        old.unlink()
    return logs


@contextlib.contextmanager
def naming_logs(logs: Path) -> Iterator[None]:
    """A step that fails says where the twin's processes' logs are (the one line the terminal then shows)."""
    try:
        yield
    except UsageError as exc:
        raise UsageError(f"{exc} (the twin's logs: {logs}/)") from exc


def run_demo(
    params: SimulationParams, out_dir: Path, *, scale: str = "custom", progress: bool = True, port: int = 8080,
    keep_serving: bool = False, verbose: bool = False,
) -> DemoResult:  # fmt: skip
    result = DemoResult(scale=scale)
    sim_dir = out_dir / "sim"
    logs = fresh_log_dir(out_dir)
    result.logs = str(logs)
    t0 = time.perf_counter()

    def timed(name: str, started: float) -> None:
        result.timings.append((name, time.perf_counter() - started))

    def say(text: str) -> None:
        if progress:
            print(text, flush=True)

    twin = TwinServices(EncoreConfig.for_stage("local"), progress=progress, warm=True, log_dir=logs, verbose=verbose)
    with naming_logs(logs), twin as endpoints:
        config = twin.config  # the stage as deployed: the names the stack gave its resources
        timed("start the twin and deploy the synthesized stack", t0)
        print(f"twin: AWS APIs at {endpoints.aws_endpoint}, cache ({endpoints.cache_kind}) at {endpoints.cache_url}")

        t = time.perf_counter()
        live_params = dataclasses.replace(params, days=params.days + 1)  # the day after the history is "live"
        summary = simulate(live_params, sim_dir, progress=progress)
        timed("simulate the music service", t)

        # The history arrives in one import the day before the live day, so the nightly run's curate job (which
        # reads the raw days that arrived in its last two) takes all of it.
        live_day = params.start + timedelta(days=params.days)
        t = time.perf_counter()
        imported = import_simulation(config, sim_dir, days=params.days, progress=progress,
                                     arrived=f"{live_day - timedelta(days=1)}")  # fmt: skip
        timed("import catalog and history into the lake (arriving the day before the live day)", t)

        # The twin adds the simulator's ground truth to the training job (its report then scores the model
        # against the listeners' true tastes); the state machine's own request is unchanged.
        requests.post(endpoints.aws_endpoint + TRAINING_CHANNELS_PATH,
                      json={"truth": str(sim_dir / "ground_truth.npz")}, timeout=10).raise_for_status()  # fmt: skip
        say(f"  nightly: Step Functions execution of {config.resources.state_machine} ...")
        nightly = run_nightly(config, result, live_day)
        say(f"  gate: {'promoted' if nightly.promoted else 'not promoted'}: {result.model['reason']}")
        if not nightly.promoted:  # the live part asks the model's answers
            raise UsageError(f"the nightly run promoted no model ({result.model['reason']}), and the live hour "
                             "needs one: run with more listeners and days (--scale small has enough)")  # fmt: skip

        t = time.perf_counter()
        with serving(twin, port, result) as api:
            timed("serve the API over HTTP (up to 2 instances of each function)", t)
            _live(config, api.url, endpoints.aws_endpoint, sim_dir, params, result, say)
            result.iam_refusals = list(twin.iam_refusals)
            result.checks["no AWS call was refused by IAM"] = not result.iam_refusals
            print()
            print(render_summary(summary))
            result.volumes = {
                "catalog_tracks": summary.tracks, "listeners": summary.listeners, "history_days": params.days,
                "history_events": imported.events, "raw_objects": imported.event_objects,
                "raw_mb_gzip": round(imported.bytes / 1e6, 2), "events_per_day": _events_per_day(sim_dir),
            }  # fmt: skip
            result.timings.append(("total", time.perf_counter() - t0))
            (out_dir / "report.json").write_text(json.dumps(asdict(result), indent=1, default=str))
            html = write_html(result, out_dir / "report.html")
            print(render_demo(result))
            print(render_closing(result, html, logs, serving=keep_serving), flush=True)
            if keep_serving:
                serve_until_interrupted()
    return result


def run_nightly(config: EncoreConfig, result: DemoResult, day: date) -> Execution:
    """The nightly state machine at midnight (UTC) starting ``day``, recorded in ``result``: its states, the gate's
    decision, and the promoted model's report (every section the demos show)."""
    nightly = run_state_machine(config, config.resources.state_machine, name=f"demo-nightly-{day:%Y%m%d}",
                                at=datetime(day.year, day.month, day.day, tzinfo=UTC))  # fmt: skip
    _record(result, "nightly", nightly)
    gate = nightly.gate
    result.model = {"version": gate.get("version"), "promoted": nightly.promoted, "reason": gate.get("reason")}
    if gate.get("model_data"):
        evaluation = read_report(gate["model_data"], config.region)["report"]
        result.model |= {key: evaluation.get(key, {}) for key in ("home", "continuation", "next", "session", "oracle")}
    return nightly


def _record(result: DemoResult, label: str, execution: Execution) -> None:
    """An execution's states into the report (and its task states into the step timings)."""
    result.executions[label] = asdict(execution) | {"output": {}}
    for state in execution.states:
        if state["type"] == "Task":
            result.timings.append((f"{label}: {state['state']}", float(state.get("seconds", 0.0))))
    if execution.status != "SUCCEEDED":
        raise UsageError(f"the {label} execution {execution.status}: {execution.failure()}")


def _credited(table: pd.DataFrame) -> int:
    """Plays whose answer the attribution table knows, credited or not (the demo sends no stray ids)."""
    if table.empty:
        return 0
    return int(table[["plays", "outside_window", "off_list"]].to_numpy().sum())


def _events_per_day(sim_dir: Path) -> list[tuple[str, int]]:
    """Events in each simulated day's file (the last one is the live day)."""
    files = sorted((sim_dir / EVENTS_DIR).glob("*.jsonl"))
    return [(p.name.split(".")[0], p.read_bytes().count(b"\n")) for p in files]


def _live(
    config: EncoreConfig, url: str, url_aws: str, sim_dir: Path, params: SimulationParams, result: DemoResult, say: Any
) -> None:
    """The live part: held-out check, replay with reads, genre burst, charts refresh, and the checks."""
    client = ApiClient(url, DEFAULT_API_KEY)
    day = LiveDay.load(sim_dir, params.days)
    hour_start, hour_events = day.busiest_hour()
    truth = load_ground_truth(sim_dir / "ground_truth.npz")
    in_hour = hour_events["user_id"].value_counts()
    history_counts = day.history["user_id"].value_counts()
    users = [u for u in history_counts.index if u in in_hour.index][:SAMPLE_LISTENERS]

    t = time.perf_counter()
    result.samples = _samples(client, day, truth, users)
    held = held_out(client, day, config, HELD_OUT_LISTENERS)
    result.timings.append(("ask home pages of warm listeners (held-out check)", time.perf_counter() - t))

    hour = datetime.fromtimestamp(hour_start / 1000, UTC)
    say(f"live hour {hour:%Y-%m-%d %H:00} UTC: {len(hour_events):,} events through POST /v1/events ...")
    # The live hour arrives when it happened, as far as the twin's Firehose and Step Functions can tell.
    set_clock(url_aws, datetime.fromtimestamp(hour_start / 1000, UTC))
    t = time.perf_counter()
    replay = replay_hour(client, hour_start, hour_events, users)
    result.timings.append(("replay the live hour through the API", time.perf_counter() - t))

    t = time.perf_counter()
    region = str(hour_events.loc[hour_events["user_id"] == users[0], "region"].iloc[0])
    burst = genre_burst(client, day, users[0], region, at_ms=hour_start + MS_PER_HOUR // 2)
    result.timings.append(("genre burst and next song", time.perf_counter() - t))

    t = time.perf_counter()
    now_ms = lambda: int(CLOCK.now().timestamp() * 1000)  # noqa: E731
    chose = listeners_choose(client, day, truth, users, now_ms)
    result.timings.append(("listeners choose among what they are shown", time.perf_counter() - t))

    t = time.perf_counter()
    say("  online test: a copy of the champion with its track ids shuffled, beside it; listeners choose ...")
    challenger = derived_challenger(config, "shuffled", f"shuffled-{hour:%Y%m%d}")
    invoke(config, DEPLOY, challenger)
    testers = [u for u in history_counts.index if u not in users][:TEST_LISTENERS]
    tested = listeners_choose(client, day, truth, testers, now_ms)
    result.timings.append(("online test: challenger deployed, listeners choose", time.perf_counter() - t))

    charts = f"{config.resources.state_machine}-charts"
    say(f"  charts refresh: Step Functions execution of {charts} ...")
    hour_end = datetime.fromtimestamp((hour_start + MS_PER_HOUR) / 1000, UTC)
    refresh = run_state_machine(config, charts, name=f"demo-charts-{hour_end:%Y%m%dT%H%M}", at=hour_end)
    set_clock(url_aws, None)
    _record(result, "charts", refresh)
    # Two days on, the live day's attribution window has closed: its plays are all in, and the test is judged.
    closed = (hour_end + timedelta(days=2)).replace(hour=0, minute=30)
    say("  attribute_plays: the live day's plays credited to the answers they came from, once its window closed ...")
    attributed = run_job("attribute_plays", config, run_time=closed.isoformat())
    result.timings.append(("attribute_plays", attributed.seconds))
    set_clock(url_aws, closed)
    judged = invoke(config, JUDGE, {})
    set_clock(url_aws, None)
    say(f"  judge: {judged['action']}: {judged['reason']}")

    acked = replay.acked + burst.acked + chose.acked + tested.acked
    with tempfile.TemporaryDirectory(prefix="encore-demo-curated-") as scratch:
        counts = curated_counts(config, f"{hour:%Y-%m-%d}", Path(scratch))
        table = attribution_table(config, f"{hour:%Y-%m-%d}", Path(scratch))
    acked_frame = pd.DataFrame(acked)
    regions = ["GLOBAL", *acked_frame["region"].value_counts().index[:CHART_REGIONS]]
    expected = expected_chart(acked_frame, config, CHART_LIMIT)
    served = served_charts(client, regions, hour_start, CHART_LIMIT)

    result.latency_ms = {route: percentiles(v) for route, v in sorted(client.latency_ms.items())}
    result.live = {
        "hour_start_ms": hour_start,
        "hour": f"{hour:%Y-%m-%dT%H}",
        "events_posted": replay.posted + len(burst.played) + chose.posted + tested.posted,
        "events_acked": len(acked),
        "acked": acked,
        "reads": replay.reads,
        "replay_seconds": replay.seconds,
        "statuses": {str(k): v for k, v in sorted(client.statuses.items())},
        "curated_counts": {e["event_id"]: counts.get(e["event_id"], 0) for e in acked},
        "curated_rows_for_day": sum(counts.values()),
        "held_out": asdict(held),
        "burst": asdict(burst),
        "charts": {"served": served, "expected": {r: expected.get(r, []) for r in regions}},
        "choices": {"listeners": chose.listeners + tested.listeners, "answers": chose.answers + tested.answers,
                    "plays": len(chose.acked) + len(tested.acked), "completes": chose.completes + tested.completes},
        "online_test": judged | {"shown": tested.shown},
        "attribution": json.loads(table.to_json(orient="records")),  # NaN as null
    }  # fmt: skip
    challenger_lost = (
        judged["action"] == "keep"
        and judged["challenger"]["rate"] < judged["champion"]["rate"]
        and (judged.get("confidence") or 0) >= 1 - config.online_test.alpha
    )
    result.checks = {
        "every acknowledged event is in the curated table exactly once": bool(acked)
        and all(counts.get(e["event_id"], 0) == 1 for e in acked),
        "warm listeners' home pages beat popularity on their live-day plays": held.model_hits > held.popularity_hits,
        f"next song after a burst of {burst.genre} leans to {burst.genre}": burst.leans(),
        "hour charts per region match the events sent": all(served[r] == expected.get(r, []) for r in regions),
        "no 5xx answer": not any(s >= 500 for s in client.statuses),
        "the attribution table accounts for every play that carried a known recommendation_id": bool(chose.acked)
        and _credited(table) == len(chose.acked) + len(tested.acked),
        "the weaker challenger (shuffled track ids) loses the online test with the confidence stated": challenger_lost,
    }
