"""An impression is one JSON line the subscription filter's pattern matches; an output that fails loses it
quietly, never the answer."""

from __future__ import annotations

import io
import json

import pytest

from encore.impressions import FILTER_PATTERN, impression_of, record
from encore.models import RecommendationResponse
from encore_local.twin.logs import matcher

pytestmark = pytest.mark.unit
ANSWER = RecommendationResponse(
    recommendation_id="r-1", surface="next", model_version=None, fallback=True, fallback_reason="endpoint_timeout",
    items=[{"track_id": t, "score": 1.0, "source": "trending"} for t in ("b", "a")],
)  # fmt: skip


def test_one_line_the_filter_matches() -> None:
    out = io.StringIO()
    record(impression_of(ANSWER, "u-1", "seed", cache_hit=False, at_ms=5), out)
    (line,) = out.getvalue().splitlines()
    assert matcher(FILTER_PATTERN)(line)
    assert json.loads(line) == {
        "kind": "impression", "recommendation_id": "r-1", "surface": "next", "user_id": "u-1", "seed_track_id": "seed",
        "model_version": None, "variant": None, "track_ids": ["b", "a"], "fallback": True,
        "fallback_reason": "endpoint_timeout", "cache_hit": False, "at_ms": 5,
    }  # fmt: skip


def test_an_output_that_fails_loses_the_impression_not_the_request() -> None:
    closed = io.StringIO()
    closed.close()
    record(impression_of(ANSWER, None, "seed", cache_hit=True, at_ms=5), closed)  # no exception
