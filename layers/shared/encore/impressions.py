"""Impressions: each recommendation answer, kept so that the plays it led to can be attributed to it.

An impression is one JSON line on the serving function's standard output. Lambda ships a function's output to
CloudWatch Logs on its own, after the fact; a subscription filter on the function's log group (``FILTER_PATTERN``)
sends these lines to the impressions delivery stream, which writes them to the lake under ``raw/impressions/``.
So recording an impression makes no AWS call on the request path: its cost is serializing one line.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field

from encore.models import RecommendationResponse

KIND: Literal["impression"] = "impression"
# What the attribute_plays job publishes each day (namespace Encore, by surface) for the answers of a closed day.
SURFACE_DIMENSION = "Surface"
IMPRESSIONS, ATTRIBUTED_PLAYS = "Impressions", "AttributedPlays"
PLAY_THROUGH_RATE, EARLY_SKIP_RATE = "PlayThroughRate", "EarlySkipRate"
ATTRIBUTION_METRICS = (IMPRESSIONS, ATTRIBUTED_PLAYS, PLAY_THROUGH_RATE, EARLY_SKIP_RATE)
FILTER_PATTERN = f'{{ $.kind = "{KIND}" }}'  # CloudWatch Logs' JSON filter syntax: only these lines


class Impression(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["impression"] = KIND
    recommendation_id: str
    surface: str
    user_id: str | None
    seed_track_id: str | None
    model_version: str | None
    variant: str | None = None
    track_ids: list[str] = Field(description="the answer's tracks, in the order shown")
    fallback: bool
    fallback_reason: str | None
    cache_hit: bool
    at_ms: int


def impression_of(
    response: RecommendationResponse, user_id: str | None, seed_track_id: str | None, cache_hit: bool, at_ms: int
) -> Impression:
    return Impression(
        recommendation_id=response.recommendation_id,
        surface=response.surface,
        user_id=user_id,
        seed_track_id=seed_track_id,
        model_version=response.model_version,
        variant=response.variant,
        track_ids=[item.track_id for item in response.items],
        fallback=response.fallback,
        fallback_reason=response.fallback_reason,
        cache_hit=cache_hit,
        at_ms=at_ms,
    )


def record(impression: Impression, out: TextIO | None = None) -> None:
    """Write the impression as one line (flushed: a line must not wait in a buffer while the environment idles)."""
    stream = out or sys.stdout
    # An output that cannot be written loses the impression, never the answer it describes.
    with contextlib.suppress(OSError, ValueError):
        stream.write(impression.model_dump_json() + "\n")
        stream.flush()
