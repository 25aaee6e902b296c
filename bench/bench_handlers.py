"""The serving function's own CPU per request: the API handler, as it ships, run in this process on API Gateway
events, with in-memory stores, cache and endpoint (``encore_local.memory_stores``), so that nothing is measured but
Encore's code: Powertools' routing and validation, the options, pydantic, JSON, the session math, the artist cap,
the metadata, the impression line and the metrics (their EMF lines go to a null sink, written all the same).

The endpoint runs the real model here, as its container would: the request serialized as ``ModelClient`` sends it,
``sagemaker/inference.py``'s ``input_fn``, ``predict_fn`` and ``output_fn`` on it, the answer parsed as
``ModelClient`` parses it. The model is ``bench_model``'s latency model (ALS, item-item, sequence and transition
rows, three rankers; built in a child process and loaded with ``model_fn``, as SageMaker loads an artifact).
Listeners have a long-term vector, a history of ``--history`` liked tracks, ``--recent`` recent plays, and half of
them a session going on. "Uncached" is as in ``bench_api.py``: not in the result cache, every track's metadata in
the shared cache, the instance warm on listeners left out of the measurement.

The figure is the main thread's CPU time (``time.thread_time_ns``) for one invocation of ``lambda_handler`` less
that of the model call inside it. Each uncached case runs three times from the same state (results forgotten, the
instance's metadata cache put back): with the model in this process, its answers recorded; then "replayed", each
request answered with the model's recorded answer, as on Lambda, where the model runs on another machine and
neither pollutes the handler's CPU caches nor triggers its garbage collections (the targets are judged on this
run); then replayed again with a timer around each stage (mean microseconds, each stage less the stages inside it).
The model call alone is measured on the same requests, called directly. No AWS call and no redis connection can
happen: both are refused and counted. Garbage collection runs as in the function; ``--gc-freeze`` calls
``gc.freeze()`` after the warm-up, to show what freezing at the end of the handler's initialisation would save.

    python bench/bench_handlers.py [--tracks 100000] [--listeners 400] [--keep DIR] [--gc-freeze]

``--keep DIR`` keeps the model artifact there and reuses it on the next run (building it takes a minute).

Targets: uncached home and next p99 < 3 ms of handler CPU beside the model call; cached home p99 < 1 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from _common import run_child, save

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sagemaker"))

import inference  # noqa: E402
from hybrid import HybridModel  # noqa: E402

from encore import clients, impressions, observability  # noqa: E402
from encore.catalog import Catalog  # noqa: E402
from encore.charts import GLOBAL, TRENDING_WINDOW  # noqa: E402
from encore.config import EncoreConfig  # noqa: E402
from encore.models import ChartRow, InferenceRequest, InferenceResponse, StoredProfile, TrackInfo  # noqa: E402
from encore.routes import ROUTES  # noqa: E402
from encore_local.apigw import LambdaContext, load_handler, match_route, rest_event  # noqa: E402
from encore_local.memory_stores import Cache, Charts, Endpoint, OnlineTests, Profiles, Tracks  # noqa: E402

JSON = "application/json"
VERSION = "encore-bench"
REGION = "US"
API_KEY = "bench-key"
WARM_UP_LISTENERS = 50
TARGETS_MS = {"home uncached": 3.0, "next uncached": 3.0, "home cached": 1.0}
# What API Gateway's REST proxy passes on from a client's GET (a regional endpoint): the handler parses them all.
HEADERS = (
    ("Accept", JSON),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Host", "abcdef1234.execute-api.us-east-1.amazonaws.com"),
    ("User-Agent", "EncoreApp/1.4 (iPhone; iOS 17.5)"),
    ("X-Amzn-Trace-Id", "Root=1-67891233-abcdef012345678912345678"),
    ("X-Forwarded-For", "198.51.100.7"),
    ("X-Forwarded-Port", "443"),
    ("X-Forwarded-Proto", "https"),
    ("x-api-key", API_KEY),
)

BUILD_MODEL = """
import dataclasses, sys
sys.path[:0] = [{bench!r}, {sagemaker!r}]
import numpy as np
import bench_model
from encore_local.simulator.catalog import random_ids
rng = np.random.default_rng(0)
size = {size}
_, full = bench_model._latency_model(size, rng)
# the simulator's Spotify-like ids (22 characters): the requests and answers carry ids of a real length
artists = np.array(random_ids(rng, size // 8 + 1))[np.arange(size) // 8]
model = dataclasses.replace(full, version={version!r}, track_ids=np.array(random_ids(rng, size)), artist_ids=artists,
                            facts=bench_model._latency_facts(size, artists, rng))
model.save(__import__("pathlib").Path({out!r}))
"""


def build_model(size: int, directory: Path) -> HybridModel:
    """``bench_model``'s latency model of ``size`` tracks, built in a child process (that module imports the twin,
    which this process must not hold: its objects would slow every garbage collection measured here), saved as an
    artifact and loaded with ``model_fn``; an artifact of that size already in ``directory`` is loaded as it is."""
    meta = directory / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get("tracks") == size:
        return inference.model_fn(str(directory))  # type: ignore[no-any-return]
    code = BUILD_MODEL.format(bench=str(Path(__file__).parent), sagemaker=str(ROOT / "sagemaker"), size=size,
                              version=VERSION, out=str(directory))  # fmt: skip
    seconds, _, out = run_child(code)
    print(f"model of {size:,} tracks built in {seconds:.0f} s ({out.strip()})", file=sys.stderr)
    return inference.model_fn(str(directory))  # type: ignore[no-any-return]


class Patches:
    """Attributes replaced for a while, put back in reverse order."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []

    def set(self, owner: Any, name: str, value: Any) -> None:
        """``owner.name = value``; put back as it was (an attribute ``owner`` only inherited is deleted again)."""
        own = name in getattr(owner, "__dict__", {})
        self._undo.append((owner, name, inspect.getattr_static(owner, name) if own else None))
        setattr(owner, name, value)

    def restore(self) -> None:
        while self._undo:
            owner, name, value = self._undo.pop()
            if value is None:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


@contextlib.contextmanager
def no_aws(attempts: list[str]) -> Iterator[None]:
    """Every way out of the process refuses, and is noted in ``attempts``: ``encore.clients``' factories (and the
    names other modules imported them under), botocore's API call, redis's connection."""
    import botocore.client  # noqa: PLC0415 (the handler loaded them already; named here only to be refused)
    import redis.connection  # noqa: PLC0415

    def refuse(what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise RuntimeError(f"{what} called: the handlers' benchmark makes no AWS or redis call")

        return refused

    patches = Patches()
    originals = {clients.get_client: "get_client", clients.get_resource: "get_resource"}
    for module in [m for n, m in sys.modules.items() if n.startswith(("encore", "encore_lambda_")) and m]:
        for value, name in originals.items():
            if getattr(module, name, None) is value:
                patches.set(module, name, refuse(f"encore.clients.{name}"))
    patches.set(botocore.client.BaseClient, "_make_api_call", refuse("botocore API call"))
    connection = getattr(redis.connection, "AbstractConnection", redis.connection.Connection)
    patches.set(connection, "connect", refuse("redis connection"))
    try:
        yield
    finally:
        patches.restore()


class InProcessModel:
    """The endpoint: the request as ``ModelClient`` sends it, the container's handlers on it, the answer read back
    as ``ModelClient`` reads it. Each answer is recorded by its request; ``replaying`` answers a request asked before
    with its recorded answer instead of running the model again. ``calls`` counts the model's answers and
    ``model_ns`` is the main thread's CPU in the model, since ``reset``."""

    def __init__(self, model: HybridModel) -> None:
        self.model = model
        self.recorded: dict[bytes, bytes] = {}
        self.replaying = False
        self.last: InferenceResponse | None = None
        self.calls = 0
        self.model_ns = 0

    def reset(self) -> None:
        self.calls = self.model_ns = 0

    def answer(self, request: InferenceRequest) -> InferenceResponse:
        self.last = self.parse(self.predict(self.serialize(request)))
        return self.last

    def serialize(self, request: InferenceRequest) -> bytes:
        return request.model_dump_json(exclude_none=True).encode()

    def predict(self, body: bytes) -> bytes:
        self.calls += 1
        if self.replaying:
            return self.recorded[body]
        started = time.thread_time_ns()
        out = inference.output_fn(inference.predict_fn(inference.input_fn(body, JSON), self.model), JSON).encode()
        self.model_ns += time.thread_time_ns() - started
        self.recorded[body] = out
        return out

    def parse(self, out: bytes) -> InferenceResponse:
        return InferenceResponse.model_validate(json.loads(out))


class LazyCatalog(Mapping[str, TrackInfo]):
    """The tracks table's entries, each made when read: a hundred thousand pydantic models held in this process
    would be walked by every garbage collection measured, and the table is DynamoDB's, not the function's."""

    def __init__(self, track_ids: list[str], artists: list[str]) -> None:
        self._index = {t: i for i, t in enumerate(track_ids)}
        self._artists = artists

    def __getitem__(self, track_id: str) -> TrackInfo:
        i = self._index[track_id]
        return catalog_entry(i, track_id, self._artists[i])

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


@dataclass
class Served:
    """The API handler with in-memory dependencies, and the listeners they know."""

    handler: ModuleType
    endpoint: InProcessModel
    cache: Cache
    listeners: list[str]
    track_ids: list[str]
    rng: np.random.Generator
    aws_attempts: list[str] = field(default_factory=list)
    _seeds: Iterator[str] = field(init=False)

    def __post_init__(self) -> None:
        self._seeds = iter([self.track_ids[i] for i in self.rng.permutation(len(self.track_ids))])

    def event(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        found = match_route([r.path for r in ROUTES], path)
        assert found is not None, path
        resource, params = found
        return rest_event("GET", path, resource=resource, path_parameters=params, query=list((query or {}).items()),
                          headers=HEADERS, api_key=API_KEY, source_ip="198.51.100.7")  # fmt: skip

    def home(self, user: str) -> dict[str, Any]:
        return self.event(f"/v1/users/{user}/recommendations")

    def next(self, user: str) -> dict[str, Any]:
        return self.event(f"/v1/users/{user}/next", {"track_id": self.seed()})

    def similar(self, _: str) -> dict[str, Any]:
        return self.event(f"/v1/tracks/{self.seed()}/similar")

    def seed(self) -> str:
        """A track no request named before (similar tracks are cached by seed alone: a seed asked twice is a hit)."""
        try:
            return next(self._seeds)
        except StopIteration:
            raise SystemExit("every track has been a seed: ask fewer requests or use more tracks") from None

    def invoke(self, event: dict[str, Any]) -> tuple[dict[str, Any], int, int, int]:
        """One invocation: the answer, the main thread's CPU in the handler less the model, the model's, and the
        wall time of the whole (nanoseconds)."""
        context = LambdaContext("api")
        self.endpoint.reset()
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        answer = self.handler.lambda_handler(event, context)
        cpu, wall = time.thread_time_ns() - cpu, time.perf_counter_ns() - wall
        return answer, cpu - self.endpoint.model_ns, self.endpoint.model_ns, wall

    def forget_results(self, local_metadata: list[tuple[str, TrackInfo]]) -> None:
        """The result cache emptied and the instance's own metadata cache as it was (``local_metadata``): the same
        requests are uncached again, in the same state."""
        for key in [k for k in self.cache.values if k.startswith("rec:")]:
            del self.cache.values[key]
        local = self.handler.deps.catalog._local
        local.clear()
        local.update(local_metadata)
        self.handler.deps.model.requests.clear()


def catalog_entry(i: int, track_id: str, artist_id: str) -> TrackInfo:
    return TrackInfo(track_id=track_id, name=f"Song number {i}", artist_id=artist_id,
                     artist_name=f"Artist {artist_id[:6]}", album=f"Album {i // 10}", genres=[f"g{i % 12}"],
                     duration_ms=180_000 + i % 90_000, image_url=f"https://i.scdn.co/image/ab67616d0000b273{track_id}",
                     explicit=i % 10 == 0, release_date=f"{2015 + i % 10}-0{1 + i % 9}-1{i % 10}")  # fmt: skip


def serve_in_memory(model: HybridModel, listeners: int, history: int, recent: int, seed: int = 1) -> Served:
    """The API handler loaded as a cold start loads it, its dependencies swapped for in-memory ones: the catalog
    (every track's metadata in the shared cache too, as in steady state), ``listeners`` listeners plus the
    warm-up's, each with a long-term vector, ``history`` liked tracks and ``recent`` recent plays, half of them in
    a session; the endpoint running ``model`` in this process."""
    rng = np.random.default_rng(seed)
    config = EncoreConfig.for_stage("local")
    handler = load_handler("api", config)
    track_ids, artists = model.track_ids.tolist(), model.artist_ids.tolist()
    catalog = LazyCatalog(track_ids, artists)
    cache = Cache()
    cache.values.update({f"tmeta:{t}": m.model_dump_json(exclude_defaults=True).encode() for t, m in catalog.items()})
    users = [f"listener-{i:06d}" for i in range(listeners + WARM_UP_LISTENERS)]
    profiles = Profiles()
    for i, user in enumerate(users):
        plays = [track_ids[j] for j in rng.choice(len(track_ids), history + recent, replace=False)]
        profiles.items[user] = StoredProfile(
            user, region=REGION, recently_played=tuple(plays[:recent]), updated_at=1_790_000_000_000,
            long_term_vector=rng.normal(size=model.factors), history=tuple(plays[recent:]), model_version=VERSION,
        )  # fmt: skip
        cache.generations[user] = 1 + i % 5
        if i % 2:
            cache.sessions[user] = rng.normal(size=model.factors)
    trending = [ChartRow(r + 1, track_ids[r], 10_000 - r, "latest") for r in range(min(500, len(track_ids)))]
    endpoint = InProcessModel(model)
    deps = handler.deps
    deps.profiles = profiles
    deps.catalog = Catalog(Tracks(catalog), cache)  # type: ignore[arg-type]
    deps.charts = Charts({("trending", where, TRENDING_WINDOW, "latest"): trending for where in (REGION, GLOBAL)})
    deps.cache = cache
    deps.model = Endpoint(endpoint.answer)
    deps.tests = OnlineTests()
    return Served(handler, endpoint, cache, users[WARM_UP_LISTENERS:], track_ids, rng)


def checked(answer: dict[str, Any], model_ids: set[str]) -> str | None:
    """What is wrong with an answer that should be a model's page (``None``: nothing)."""
    if answer["statusCode"] != 200:
        return f"status {answer['statusCode']}: {answer['body'][:300]}"
    body = json.loads(answer["body"])
    if body["fallback"] or body["model_version"] != VERSION:
        return f"a fallback ({body['fallback_reason']}), model {body['model_version']}"
    if not body["items"] or any(i["source"] != "model" or i["track_id"] not in model_ids for i in body["items"]):
        return f"not the model's tracks: {body['items'][:3]}"
    if not all(i["name"] for i in body["items"]):
        return f"tracks without their metadata: {body['items'][:3]}"
    return None


class Stages:
    """Mean time per request of each stage, exclusive: a call of a timed function is charged to its stage, less the
    timed calls inside it, which are charged to theirs."""

    OUTSIDE = "(outside)"

    def __init__(self) -> None:
        self.totals: dict[str, int] = defaultdict(int)
        self._stack = [self.OUTSIDE]
        self._mark = 0
        self._patches = Patches()

    def timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter_ns

        def run(*args: Any, **kwargs: Any) -> Any:
            now = clock()
            self.totals[self._stack[-1]] += now - self._mark
            self._stack.append(stage)
            self._mark = now
            try:
                return fn(*args, **kwargs)
            finally:
                now = clock()
                self.totals[self._stack.pop()] += now - self._mark
                self._mark = now

        return run

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        found = inspect.getattr_static(owner, name)
        if isinstance(found, classmethod):
            self._patches.set(owner, name, classmethod(self.timed(stage, found.__func__)))
        else:
            self._patches.set(owner, name, self.timed(stage, getattr(owner, name)))

    def install(self, points: list[tuple[str, Any, str]]) -> None:
        for stage, owner, name in points:
            self.wrap(owner, name, stage)

    def per_request(self, points: list[tuple[str, Any, str]], requests: int) -> dict[str, float]:
        """Mean microseconds per request of each stage, in the order of ``points``."""
        return {stage: self.totals.get(stage, 0) / requests / 1e3 for stage in dict.fromkeys(s for s, _, _ in points)}

    def restore(self) -> None:
        self._patches.restore()


# (stage, where it is timed), outermost first; each row of the breakdown is a stage less the stages inside it.
def stage_points(served: Served) -> list[tuple[str, Any, str]]:
    from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (  # noqa: PLC0415
        OpenAPIRequestValidationMiddleware,
        OpenAPIResponseValidationMiddleware,
    )

    handler, endpoint = served.handler, served.endpoint
    recommend = sys.modules[handler.serve.__module__]  # the handler's own (``encore.recommend``)
    return [
        ("Lambda decorators: Logger, Tracer, Metrics", handler, "lambda_handler"),
        ("metrics flush: the EMF line to stdout", handler.metrics.provider, "flush_metrics"),
        ("Powertools: event, routing, response building", handler.app, "resolve"),
        ("Powertools: parameter validation", OpenAPIRequestValidationMiddleware, "handler"),
        ("Powertools: route call, tracer subsegment", OpenAPIResponseValidationMiddleware, "handler"),
        ("answer: response model validated and dumped", OpenAPIResponseValidationMiddleware, "_handle_response"),
        ("answer: JSON text", handler.app, "_serializer"),
        ("options and controls", recommend.Options, "of"),
        ("serve: the rest (impression and metrics aside)", handler, "serve"),
        ("recommend: the rest (keys, played set, ids, response)", recommend, "recommend"),
        ("session, profile reads (fakes)", recommend, "_session"),
        ("session, profile reads (fakes)", recommend, "_profile"),
        ("result cache: read, JSON parse", recommend, "_cache_get"),
        ("result cache: dump, JSON, write", recommend, "_cache_set"),
        ("model request: InferenceRequest, JSON", recommend, "_request"),
        ("model request: InferenceRequest, JSON", endpoint, "serialize"),
        ("model call (bare): input_fn, predict_fn, output_fn", endpoint, "predict"),
        ("model answer: JSON parse, InferenceResponse", endpoint, "parse"),
        ("artist cap: compose_page", recommend, "compose_page"),
        ("metadata: Catalog (local, shared cache)", type(handler.deps.catalog), "metadata"),
        ("page items: RecommendationItem", recommend, "_item"),
        ("impression line", impressions, "impression_of"),
        ("impression line", impressions, "record"),
        ("metrics: CacheHit, Fallback, the Latency EMF line", observability, "report_answer"),
    ]


CASES: dict[str, str] = {"home uncached": "home", "home cached": "home", "next uncached": "next",
                         "similar uncached": "similar"}  # fmt: skip


def run_events(served: Served, events: list[dict[str, Any]], stages: Stages | None = None) -> dict[str, Any]:
    """Each event once, in order: the handler's CPU less the model's, the model's, the wall time of the whole, the
    model calls, and what is wrong with any answer that is not a model page."""
    model_ids = set(served.track_ids)
    handler_ns, model_ns, wall_ns, wrong = [], [], [], []
    calls = 0
    for event in events:
        answer, cpu, model, wall = served.invoke(event)
        handler_ns.append(cpu)
        model_ns.append(model)
        wall_ns.append(wall)
        calls += served.endpoint.calls
        problem = checked(answer, model_ids)
        if problem:
            wrong.append(problem)
    return {"requests": len(events), "handler_ms": ms(handler_ns), "model_ms": ms(model_ns) if any(model_ns) else {},
            "wall_ms": ms(wall_ns), "model_calls": calls, "wrong": wrong}  # fmt: skip


def ms(values: list[int]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64) / 1e6
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def bare_model(served: Served, bodies: dict[str, list[bytes]]) -> dict[str, dict[str, Any]]:
    """The model call alone on the bodies the handler sent: ``input_fn``, ``predict_fn``, ``output_fn``."""
    model = served.endpoint.model
    out = {}
    for case, sent in bodies.items():
        cpu_ns, wall_ns = [], []
        for body in sent:
            wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
            inference.output_fn(inference.predict_fn(inference.input_fn(body, JSON), model), JSON)
            cpu_ns.append(time.thread_time_ns() - cpu)
            wall_ns.append(time.perf_counter_ns() - wall)
        out[case] = {"requests": len(sent), "cpu_ms": ms(cpu_ns), "wall_ms": ms(wall_ns),
                     "body_bytes": int(np.mean([len(b) for b in sent]))}  # fmt: skip
    return out


def timed_stages(served: Served, events: list[dict[str, Any]],
                 points: list[tuple[str, Any, str]]) -> tuple[Stages, dict[str, Any]]:  # fmt: skip
    """The events again with the stage timers installed (and removed after)."""
    stages = Stages()
    stages.install(points)
    try:
        return stages, run_events(served, events)
    finally:
        stages.restore()


def uncached(served: Served, events: list[dict[str, Any]], points: list[tuple[str, Any, str]]) -> dict[str, Any]:
    """The events three times from the same state (results forgotten, the instance's metadata cache put back):
    with the model in this process, its answers recorded; with them replayed; replayed, with the stage timers."""
    endpoint, local = served.endpoint, list(served.handler.deps.catalog._local.items())
    endpoint.recorded.clear()
    endpoint.replaying = False
    in_process = run_events(served, events)
    bodies = list(endpoint.recorded)
    endpoint.replaying = True
    try:
        served.forget_results(local)
        replayed = run_events(served, events)
        served.forget_results(local)
        stages, staged = timed_stages(served, events, points)
    finally:
        endpoint.replaying = False
    wrong = in_process["wrong"] + replayed["wrong"] + staged["wrong"]
    if in_process["model_calls"] != len(events) or replayed["model_calls"] != len(events):
        wrong.append("an uncached answer did not ask the model once")
    return {"in_process": in_process, "replayed": replayed, "stages": stages.per_request(points, len(events)),
            "stages_measured_ms": staged["handler_ms"]["mean"], "bodies": bodies, "wrong": wrong}  # fmt: skip


def cached(served: Served, events: list[dict[str, Any]], points: list[tuple[str, Any, str]]) -> dict[str, Any]:
    """The events (answered from the result cache), then again with the stage timers."""
    got = run_events(served, events)
    stages, staged = timed_stages(served, events, points)
    wrong = got["wrong"] + staged["wrong"]
    if got["model_calls"] or staged["model_calls"]:
        wrong.append("a cached answer asked the model")
    return {"in_process": got, "replayed": got, "stages": stages.per_request(points, len(events)),
            "stages_measured_ms": staged["handler_ms"]["mean"], "bodies": [], "wrong": wrong}  # fmt: skip


def measure(served: Served, cached_repeats: int, gc_freeze: bool = False) -> dict[str, Any]:
    """Warm-up on listeners left out, then each case on the measured ones, then the model alone on the requests the
    handler sent. ``gc_freeze``: ``gc.freeze()`` after the warm-up (what it would save at the end of the handler's
    initialisation)."""
    warm = [f"listener-{i:06d}" for i in range(WARM_UP_LISTENERS)]
    for route in dict.fromkeys(CASES.values()):
        run_events(served, [getattr(served, route)(u) for u in warm] * 2)
    served.endpoint.recorded.clear()
    served.handler.deps.model.requests.clear()
    gc.collect()
    if gc_freeze:
        gc.freeze()
    points = stage_points(served)
    cases: dict[str, Any] = {}
    for case, route in CASES.items():
        print(f"  {case} ...", file=sys.stderr, flush=True)
        make = getattr(served, route)
        if case.endswith(" cached"):  # the results of the case before it
            cases[case] = cached(served, [make(u) for _ in range(cached_repeats) for u in served.listeners], points)
        else:
            cases[case] = uncached(served, [make(u) for u in served.listeners], points)
        if cases[case]["wrong"]:
            raise SystemExit(f"{case}: {len(cases[case]['wrong'])} answers are not model pages; the first: "
                             f"{cases[case]['wrong'][0]}")  # fmt: skip
    if gc_freeze:
        gc.unfreeze()
    print("  the model call alone ...", file=sys.stderr, flush=True)
    bare = bare_model(served, {c: got.pop("bodies") for c, got in cases.items() if got["bodies"]})
    for got in cases.values():
        got.pop("bodies", None)
    return {"gc_freeze": gc_freeze, "cases": cases, "bare_model": bare}


@contextlib.contextmanager
def quietly(served: Served) -> Iterator[None]:
    """No way out to AWS or redis, and standard output (the impression and EMF lines) written to a null sink, one
    write per line as to Lambda's log pipe."""
    with open(os.devnull, "w", buffering=1) as sink, no_aws(served.aws_attempts), contextlib.redirect_stdout(sink):
        yield


def run(model: HybridModel, listeners: int, history: int, recent: int, cached_repeats: int,
        gc_freeze: bool = False) -> dict[str, Any]:  # fmt: skip
    """The whole benchmark on ``model``; its figures (``cases``, ``bare_model``, ``aws_attempts``)."""
    served = serve_in_memory(model, listeners, history, recent)
    with quietly(served):
        figures = measure(served, cached_repeats, gc_freeze)
    return {"tracks": int(model.track_ids.size), "listeners": listeners, "history": history, "recent": recent,
            **figures, "aws_attempts": served.aws_attempts}  # fmt: skip


def report(figures: dict[str, Any]) -> dict[str, bool]:
    cases, bare = figures["cases"], figures["bare_model"]
    freeze = ", gc.freeze() after the warm-up" if figures["gc_freeze"] else ""
    print(f"\nthe API handler's own CPU per request, in this process ({figures['tracks']:,} tracks; listeners with "
          f"{figures['history']} liked tracks and {figures['recent']} recent plays{freeze}; milliseconds)")  # fmt: skip
    print(f"  {'':17} {'':8} {'model answers replayed':>22}   {'the model in this process':^42}")
    print(f"  {'case':17} {'requests':>8} {'handler p50':>11} {'p99':>9}   {'handler p50':>11} {'p99':>6} "
          f"{'model p50':>10} {'p99':>6}   {'bare model p50':>14} {'p99':>6}   {'target p99':>10}")  # fmt: skip
    for case, got in cases.items():
        r, i, m = got["replayed"]["handler_ms"], got["in_process"]["handler_ms"], got["in_process"]["model_ms"]
        b = bare.get(case, {}).get("cpu_ms")
        target = f"< {TARGETS_MS[case]:.0f}" if case in TARGETS_MS else "-"
        in_process = f"{i['p50']:11.2f} {i['p99']:6.2f} {m['p50']:10.2f} {m['p99']:6.2f}" if m else f"{'-':>35}"
        bare_cols = f"{b['p50']:14.2f} {b['p99']:6.2f}" if b else f"{'-':>14} {'-':>6}"
        print(f"  {case:17} {got['replayed']['requests']:8d} {r['p50']:11.2f} {r['p99']:9.2f}   {in_process}   "
              f"{bare_cols}   {target:>10}")  # fmt: skip
    shown = [c for c in cases if c != "similar uncached"]
    print("\n  where the time goes (answers replayed; mean microseconds per request, each stage less the stages "
          "inside it):")  # fmt: skip
    print(f"  {'stage':56} " + " ".join(f"{c:>14}" for c in shown))
    for stage in cases[shown[0]]["stages"]:
        print(f"  {stage:56} " + " ".join(f"{cases[c]['stages'][stage]:14.1f}" for c in shown))
    print(f"  {'all stages, timed':56} " + " ".join(f"{sum(cases[c]['stages'].values()):14.1f}" for c in shown))
    print(f"  {'the same requests without timers (mean)':56} "
          + " ".join(f"{cases[c]['replayed']['handler_ms']['mean'] * 1e3:14.1f}" for c in shown))  # fmt: skip
    checks = {
        f"{case}: handler CPU p99 < {limit:.0f} ms beside the model call "
        f"({cases[case]['replayed']['handler_ms']['p99']:.2f} ms; "
        f"{cases[case]['in_process']['handler_ms']['p99']:.2f} ms with the model in this process)":
            cases[case]["replayed"]["handler_ms"]["p99"] < limit
        for case, limit in TARGETS_MS.items()
    }  # fmt: skip
    checks["every answer a model page (200, the model's tracks, no fallback)"] = all(
        not c["wrong"] for c in cases.values()
    )
    checks["no AWS or redis call"] = not figures["aws_attempts"]
    for name, ok in checks.items():
        print(f"  [{'met' if ok else 'NOT met'}] {name}")
    return checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--listeners", type=int, default=400, help="measured listeners per case (default: %(default)s)")
    ap.add_argument("--history", type=int, default=200, help="liked tracks per listener (default: %(default)s)")
    ap.add_argument("--recent", type=int, default=50, help="recent plays per listener (default: %(default)s)")
    ap.add_argument("--cached-repeats", type=int, default=3, help="cached asks per listener (default: %(default)s)")
    ap.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after the warm-up, as a handler could")
    ap.add_argument("--keep", type=Path, help="keep the model artifact here and reuse it on the next run")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="encore-bench-handlers-") as tmp:
        model = build_model(a.tracks, a.keep or Path(tmp))
    figures = run(model, a.listeners, a.history, a.recent, a.cached_repeats, a.gc_freeze)
    checks = report(figures)
    name = "handlers_gc_freeze" if a.gc_freeze else "handlers"
    print(f"  figures written to {save(name, {**figures, 'checks': checks})}")


if __name__ == "__main__":
    main()
