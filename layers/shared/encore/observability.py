"""Logger, Tracer and Metrics, created once; every module imports them from here. The metric names and
dimensions are constants that the handlers emit and the CDK monitoring construct graphs and alarms on."""

import time
from collections.abc import Iterable

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from encore import impressions
from encore.models import RecommendationResponse

SERVICE = "encore"
NAMESPACE = "Encore"

# The functions' metrics below carry the dimension {SERVICE_DIMENSION: SERVICE}; the others add what their name says.
SERVICE_DIMENSION = "service"
CAUSE_DIMENSION = "cause"
ROUTE_DIMENSION = "route"
# Per recommendation answer, 1 or 0: the Average over a period is the result cache's hit ratio.
CACHE_HIT = "CacheHit"
# Per recommendation answer, 1 or 0: the Average is the share of answers that fell back (trending, no model).
FALLBACK = "Fallback"
# Per answer and cause of a degradation (cache_unavailable, model_timeout, ...), with CAUSE_DIMENSION.
DEGRADED = "Degraded"
# Milliseconds per recommendation answer, with ROUTE_DIMENSION.
LATENCY = "Latency"
# Events accepted per POST /v1/events; degradations of the write path count under DEGRADED.
EVENTS_ACCEPTED = "EventsAccepted"
# Powertools' cold-start count (capture_cold_start_metric), with the function's name.
COLD_START = "ColdStart"
FUNCTION_DIMENSION = "function_name"


# Each metric Encore emits in NAMESPACE, with its dimension names: what the dashboard and alarms may show
# (checked on the template by cdk_app/deploy_rules.py, and against the handlers' own output by the serving tests).
EMITTED: dict[str, tuple[str, ...]] = {
    CACHE_HIT: (SERVICE_DIMENSION,),
    FALLBACK: (SERVICE_DIMENSION,),
    DEGRADED: (SERVICE_DIMENSION, CAUSE_DIMENSION),
    LATENCY: (SERVICE_DIMENSION, ROUTE_DIMENSION),
    EVENTS_ACCEPTED: (SERVICE_DIMENSION,),
    COLD_START: (FUNCTION_DIMENSION, SERVICE_DIMENSION),
    # From the attribute_plays job, once a day, by surface only.
    **dict.fromkeys(impressions.ATTRIBUTION_METRICS, (impressions.SURFACE_DIMENSION,)),
}

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def record_degraded(causes: Iterable[str]) -> None:
    """One DEGRADED count per distinct cause (a metric of its own: its dimensions differ from the others')."""
    for cause in dict.fromkeys(causes):
        with single_metric(name=DEGRADED, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as m:
            m.add_dimension(name=SERVICE_DIMENSION, value=SERVICE)
            m.add_dimension(name=CAUSE_DIMENSION, value=cause)


def record_latency(route: str, milliseconds: float) -> None:
    with single_metric(name=LATENCY, unit=MetricUnit.Milliseconds, value=milliseconds, namespace=NAMESPACE) as m:
        m.add_dimension(name=SERVICE_DIMENSION, value=SERVICE)
        m.add_dimension(name=ROUTE_DIMENSION, value=route)


def report_answer(route: str, cache_hit: bool, response: RecommendationResponse, degraded: Iterable[str],
                  started: float) -> None:  # fmt: skip
    """A recommendation answer's metrics (cache hit and fallback, 1 or 0 per answer: their Averages are the hit
    ratio and the fallback rate the alarms watch), its degradations and latency, and one warning log line naming
    the causes when it degraded. ``started``: ``time.perf_counter()`` when the request began."""
    metrics.add_metric(name=CACHE_HIT, unit=MetricUnit.Count, value=int(cache_hit))
    metrics.add_metric(name=FALLBACK, unit=MetricUnit.Count, value=int(response.fallback))
    causes = sorted(set(degraded))
    record_degraded(causes)
    record_latency(route, (time.perf_counter() - started) * 1000)
    metrics.add_metadata(key="model_version", value=response.model_version or "none")
    if causes:
        logger.warning("degraded answer", extra={"route": route, "causes": causes, "fallback": response.fallback})
