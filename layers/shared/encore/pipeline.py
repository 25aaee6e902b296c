"""The retraining pipeline's steps, in order, from which the CDK app builds the Step Functions definitions (the
twin runs those definitions as synthesized) and names the Glue jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

StepKind = Literal["glue", "training", "lambda"]


@dataclass(frozen=True)
class PipelineStep:
    name: str
    kind: StepKind
    description: str


LOAD_CATALOG = PipelineStep("load_catalog", "glue", "tracks CSV -> Parquet catalog and the tracks table")
CURATE_EVENTS = PipelineStep("curate_events", "glue", "raw events -> deduplicated Parquet by date; rejects quarantined")
PURGE_LISTENERS = PipelineStep(
    "purge_listeners", "glue", "deleted listeners' events out of the curated zone, before the features are built"
)
BUILD_FEATURES = PipelineStep("build_features", "glue", "90 days of events -> interactions, track and user stats")
BUILD_CHARTS = PipelineStep("build_charts", "glue", "top tracks per region per hour and day, 7-day trending")
TRAIN = PipelineStep("train", "training", "ALS + content encoder + cold-start regression; evaluation report")
GATE = PipelineStep("gate", "lambda", "promote only if NDCG@10 beats the serving model and popularity; register")
DEPLOY = PipelineStep(
    "deploy", "lambda", "put the promoted model on the endpoint: challenger beside the champion, or champion"
)
LOAD_VECTORS = PipelineStep(
    "load_vectors", "glue", "the champion's user and track vectors into the users and tracks tables, if not there yet"
)
JUDGE_TEST = PipelineStep(
    "judge_test", "lambda", "decide the online test on play-through: promote the challenger, keep the champion, or wait"
)
BATCH_RECOMMEND = PipelineStep(
    "batch_recommend",
    "glue",
    "each active listener's top N from the champion, as Parquet under batch/ for e-mail and push",
)
ATTRIBUTE_PLAYS = PipelineStep(
    "attribute_plays", "glue", "plays joined to the recommendation answers they came from; daily table and metrics"
)

NIGHTLY: tuple[PipelineStep, ...] = (
    LOAD_CATALOG,
    CURATE_EVENTS,
    PURGE_LISTENERS,
    BUILD_FEATURES,
    BUILD_CHARTS,
    ATTRIBUTE_PLAYS,
    JUDGE_TEST,
    TRAIN,
    GATE,
    DEPLOY,
    LOAD_VECTORS,
    BATCH_RECOMMEND,
)
CHARTS_REFRESH: tuple[PipelineStep, ...] = (CURATE_EVENTS, BUILD_CHARTS)


def nightly(batch_enabled: bool) -> tuple[PipelineStep, ...]:
    """The nightly steps of a stage (without ``batch_recommend`` where ``batch.enabled`` is off)."""
    return NIGHTLY if batch_enabled else tuple(s for s in NIGHTLY if s is not BATCH_RECOMMEND)


# Run when asked (``encore job run``, StartJobRun), not on a schedule.
IMPORT_PLAYLISTS = PipelineStep(
    "import_playlists", "glue", "MPD slices under imports/mpd/ -> raw events and catalog rows; rejects quarantined"
)
ON_DEMAND: tuple[PipelineStep, ...] = (IMPORT_PLAYLISTS,)
GLUE_JOBS: tuple[PipelineStep, ...] = (*(s for s in NIGHTLY if s.kind == "glue"), *ON_DEMAND)


def job_name(prefix: str, step: PipelineStep) -> str:
    return f"{prefix}-{step.name.replace('_', '-')}"
