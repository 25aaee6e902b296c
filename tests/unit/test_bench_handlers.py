"""bench/bench_handlers.py at a tiny size: it runs, makes no AWS call, and what it times are the model's pages
through the real API handler (not fallbacks, not errors)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from encore import clients

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_handlers as bench

pytestmark = pytest.mark.unit
TRACKS = 400


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Given: a small model artifact (ALS and content, no ranker), loaded as the endpoint loads it."""
    rng = np.random.default_rng(3)
    ids = np.array([f"trk{i:05d}" for i in range(TRACKS)])
    artists = np.array([f"art{i // 4:04d}" for i in range(TRACKS)])
    cf = rng.normal(size=(TRACKS, 16)).astype(np.float32)
    content = np.eye(TRACKS, 16, dtype=np.float32)
    built = bench.HybridModel(bench.VERSION, ids, artists, cf, content, rng.random(TRACKS), np.ones(TRACKS, bool))
    directory = tmp_path_factory.mktemp("model")
    built.save(directory)
    return bench.inference.model_fn(str(directory))


def test_the_benchmark_runs_and_every_timed_answer_is_a_model_page(model: Any) -> None:
    figures = bench.run(model, listeners=4, history=30, recent=10, cached_repeats=2)
    cases = figures["cases"]
    assert list(cases) == ["home uncached", "home cached", "next uncached", "similar uncached"]
    assert all(c["wrong"] == [] for c in cases.values())
    assert cases["home cached"]["replayed"]["requests"] == 8 and cases["home uncached"]["replayed"]["requests"] == 4
    uncached = [c for c in cases if c.endswith("uncached")]
    # the uncached answers asked the model once each (in this process, then replayed), the cached ones never
    assert all(cases[c][run]["model_calls"] == 4 for c in uncached for run in ("in_process", "replayed"))
    assert all(cases[c]["in_process"]["model_ms"]["p50"] > 0 for c in uncached)
    assert cases["home cached"]["in_process"]["model_calls"] == 0
    assert set(figures["bare_model"]) == set(uncached)
    assert figures["aws_attempts"] == []
    stages = cases["home uncached"]["stages"]
    assert stages["model answer: JSON parse, InferenceResponse"] > 0 and stages["artist cap: compose_page"] > 0
    assert cases["home cached"]["stages"]["result cache: read, JSON parse"] > 0
    checks = bench.report(figures)
    assert checks["every answer a model page (200, the model's tracks, no fallback)"]
    assert checks["no AWS or redis call"]


def test_home_is_the_models_ranking_capped_and_a_repeat_comes_from_the_result_cache(model: Any) -> None:
    served = bench.serve_in_memory(model, listeners=2, history=30, recent=10)
    user = served.listeners[0]
    played = set(served.handler.deps.profiles.items[user].recently_played)
    with bench.quietly(served):
        answer, handler_ns, model_ns, _ = served.invoke(served.home(user))
        asked = served.endpoint.last
        again, _, model_again_ns, _ = served.invoke(served.home(user))
    assert answer["statusCode"] == 200 and handler_ns > 0 and model_ns > 0
    body = json.loads(answer["body"])
    assert body["fallback"] is False and body["model_version"] == bench.VERSION and len(body["items"]) == 20
    assert asked is not None
    ranked = [i.track_id for i in asked.items]
    ids = [i["track_id"] for i in body["items"]]
    assert set(ids) <= set(ranked) and not played & set(ids)
    assert [t for t in ranked if t in set(ids)] == ids  # the model's order
    artists = Counter(i.artist_id for i in asked.items if i.track_id in set(ids))
    assert max(artists.values()) <= served.handler.config.serving.max_per_artist
    assert all(i["source"] == "model" and i["name"] for i in body["items"])  # metadata from the catalog
    assert model_again_ns == 0 and [i["track_id"] for i in json.loads(again["body"])["items"]] == ids
    assert served.aws_attempts == []


def test_a_call_out_to_aws_is_refused_and_counted_then_allowed_again(model: Any) -> None:
    served = bench.serve_in_memory(model, listeners=1, history=10, recent=5)
    original = clients.get_client
    with bench.quietly(served), pytest.raises(RuntimeError, match="no AWS or redis call"):
        clients.get_client("dynamodb", "us-east-1")
    assert served.aws_attempts == ["encore.clients.get_client"]
    assert clients.get_client is original
