"""One typed configuration for every runtime: the CDK app, the Lambda handlers, the jobs and the offline twin.

Values come from (lowest to highest precedence) the defaults below, a stage's overrides (``cdk.json`` context
in the CDK app), and ``ENCORE_*`` environment variables (``ENCORE_WEIGHTS__CF=0.5``) at a Lambda entry point.
Logic receives the parsed values as arguments and never reads ``os.environ`` itself.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from encore.models import CatalogFilter, Promotion

Stage = Literal["dev", "prod", "local"]
NAME = re.compile(r"[a-z0-9_-]{1,64}")  # a named filter or promotion
_WEIGHT_TOLERANCE = 1e-9


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResourceNames(_Frozen):
    """Physical names shared by the stack and the twin, so both address the same things."""

    lake_bucket: str
    users_table: str
    tracks_table: str
    charts_table: str
    idempotency_table: str
    delivery_stream: str
    impressions_stream: str
    glue_database: str
    endpoint_name: str
    model_package_group: str
    state_machine: str
    # named, not left to CloudFormation: an operator invokes them by hand to start or judge an online test
    deploy_function: str
    judge_function: str

    @classmethod
    def for_prefix(cls, prefix: str) -> ResourceNames:
        return cls(
            lake_bucket=f"{prefix}-lake",
            users_table=f"{prefix}-users",
            tracks_table=f"{prefix}-tracks",
            charts_table=f"{prefix}-charts",
            idempotency_table=f"{prefix}-idempotency",
            delivery_stream=f"{prefix}-events",
            impressions_stream=f"{prefix}-impressions",
            glue_database=prefix.replace("-", "_"),
            endpoint_name=f"{prefix}-hybrid",
            model_package_group=f"{prefix}-hybrid",
            state_machine=f"{prefix}-pipeline",
            deploy_function=f"{prefix}-deploy-model",
            judge_function=f"{prefix}-judge-test",
        )


class LakePrefixes(_Frozen):
    """Key prefixes inside the lake bucket (the architecture's S3 layout)."""

    raw_events: str = "raw/events/"
    raw_impressions: str = "raw/impressions/"  # every recommendation answer (encore.impressions)
    raw_errors: str = "raw/errors/"
    curated_events: str = "curated/events/"
    features: str = "features/"
    quarantine: str = "quarantine/"
    models: str = "models/"
    catalog: str = "catalog/"
    imports: str = "imports/"  # files to convert in AWS (the import_playlists job reads imports/mpd/)
    deletions: str = "deletions/"  # one request per deleted listener (encore.deletion), honoured by the purge
    batch: str = "batch/"  # recommendations computed ahead (batch_recommend), by dt=<date>

    def deletion(self, user_id: str) -> str:
        """The key of a listener's deletion request."""
        return f"{self.deletions}{user_id}.json"


class RecommendationWeights(_Frozen):
    """Blend weights of the serving formulas; each pair must sum to 1."""

    long_term: float = Field(0.7, ge=0, le=1, description="v_session = long_term * v_long + short_term * v_short")
    short_term: float = Field(0.3, ge=0, le=1)
    ema_keep: float = Field(0.5, ge=0, le=1, description="v_short = ema_keep * v_short + (1 - ema_keep) * v_track")
    cf: float = Field(0.6, ge=0, le=1, description="next song: cf * norm(cf score) + content * norm(content score)")
    content: float = Field(0.4, ge=0, le=1)

    @model_validator(mode="after")
    def _pairs_sum_to_one(self) -> Self:
        for a, b in (("long_term", "short_term"), ("cf", "content")):
            total = getattr(self, a) + getattr(self, b)
            if not math.isclose(total, 1.0, abs_tol=_WEIGHT_TOLERANCE):
                raise ValueError(f"{a} + {b} must sum to 1 (got {total:g})")
        return self

    def as_training_argument(self) -> str:
        """``cf=0.6,content=0.4,...``: how ``train.py --weights`` takes them (the training job's hyperparameter),
        so the model is evaluated and its rankers trained with the blend it will serve."""
        return ",".join(f"{name}={value!r}" for name, value in self.model_dump().items())


class RatingWeights(_Frozen):
    """Implicit rating of a (user, track) from its events, summed with exponential recency decay."""

    complete: float = Field(1.0, description="added for each complete play")
    early_skip: float = Field(1.0, ge=0, description="subtracted for each skip before early_skip_ms")
    early_skip_ms: int = Field(30_000, gt=0)
    listened_log: float = Field(0.5, ge=0, description="times log(1 + seconds listened)")
    half_life_days: float = Field(30.0, gt=0)
    window_days: int = Field(90, gt=0, description="events older than this are ignored")


class SessionSettings(_Frozen):
    ttl_seconds: int = Field(1800, gt=0, description="the short-term vector expires after this long idle")
    qualifying_play_ms: int = Field(30_000, ge=0, description="a play longer than this (or complete) updates it")
    recently_played_max: int = Field(50, gt=0, description="bound of the recently-played list on the profile")


class AttributionSettings(_Frozen):
    """How plays are credited to the recommendation answers they came from (``attribute_plays``)."""

    window_hours: int = Field(24, gt=0, le=24 * 7, description="a play counts for its answer within this long")
    days: int = Field(3, gt=0, le=30, description="days of answers recomputed each run (late plays still arrive)")


class OnlineTestSettings(_Frozen):
    """Champion/challenger tests on the endpoint (``encore.experiment``): a promoted model serves a share of the
    listeners beside the champion until their play-through rates tell which is better."""

    challenger_share: float = Field(
        0.1, ge=0, lt=1, description="traffic a promoted model gets beside the champion; 0: it replaces the champion"
    )
    min_days: int = Field(3, ge=1, le=60, description="closed days of answers before the first decision")
    max_days: int = Field(14, ge=1, le=90, description="with no significant difference by then, the champion stays")
    min_plays: int = Field(500, ge=1, description="attributed plays each variant needs before the test is judged")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="two-sided significance level of the two-proportion test")

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.max_days < self.min_days:
            raise ValueError(f"max_days ({self.max_days}) must be at least min_days ({self.min_days})")
        return self


class ServingSettings(_Frozen):
    default_limit: int = Field(20, ge=1, le=100)
    max_per_artist: int = Field(3, ge=1)
    vector_dims: int = Field(64, gt=0)
    endpoint_timeout_ms: int = Field(800, gt=0)
    chart_size: int = Field(100, gt=0)
    cors_origins: tuple[str, ...] = Field(
        ("*",), description="browser origins allowed to call the API (preflights and every answer carry them)"
    )
    write_auth: Literal["none", "cognito"] = Field(
        "none", description="who may call the listener routes (events, profiles): 'cognito' requires a user-pool JWT"
    )
    # Named controls an app refers to by name (``?filter=clean``, ``?promotion=summer``), so a change of policy is
    # a configuration change, not an app release.
    filters: dict[str, CatalogFilter] = Field(
        default_factory=lambda: {
            "clean": CatalogFilter(explicit=False),
            "new_releases": CatalogFilter(released_within_days=30),
        }
    )
    promotions: dict[str, Promotion] = Field(default_factory=dict)
    fresh_share: float = Field(
        0.1, ge=0, le=0.5, description="home: the share of places for new releases without plays yet (from the 20th)"
    )

    @field_validator("filters", "promotions")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in value if not NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"names must be 1-64 of a-z, 0-9, '_' and '-': {', '.join(bad)}")
        return value


class BatchSettings(_Frozen):
    """Recommendations computed ahead for e-mail and push (the nightly ``batch_recommend`` step)."""

    enabled: bool = Field(True, description="run batch_recommend at the end of each nightly run")
    size: int = Field(20, ge=1, le=100, description="tracks per listener")
    active_days: int = Field(30, ge=1, le=90, description="a listener with a play in this many days is active")
    filter: str | None = Field(None, description="a named filter (serving.filters) the lists hold to")


class EndpointSettings(_Frozen):
    """How the SageMaker endpoint is hosted: serverless by default, instances with autoscaling as the option."""

    kind: Literal["serverless", "instance"] = "serverless"
    serverless_memory_mb: int = Field(3072, ge=1024, le=6144)
    serverless_max_concurrency: int = Field(20, ge=1, le=200)
    instance_type: str = "ml.c6i.large"
    instance_min: int = Field(1, ge=1)
    instance_max: int = Field(4, ge=1)
    invocations_per_instance: int = Field(600, gt=0, description="autoscaling target, invocations per minute")
    training_instance_type: str = "ml.m5.2xlarge"
    framework_version: str = Field("1.2-1", description="SageMaker scikit-learn container version")


class ScheduleSettings(_Frozen):
    nightly_cron: str = Field("cron(0 3 * * ? *)", description="EventBridge Scheduler expression, UTC")
    charts_rate: str = Field("rate(15 minutes)")
    enabled: bool = True


class AlarmSettings(_Frozen):
    api_5xx_rate: float = Field(0.01, gt=0, description="share of API requests answered 5XX over 5 minutes")
    api_p99_latency_ms: int = Field(1000, gt=0)
    function_errors: int = Field(5, gt=0, description="errors per function in 5 minutes")
    firehose_freshness_s: int = Field(900, gt=0, description="age of the oldest record not yet in S3")
    model_latency_p99_ms: int = Field(300, gt=0)
    endpoint_5xx: int = Field(5, gt=0, description="endpoint 5XX errors in 5 minutes")
    fallback_rate: float = Field(0.05, gt=0, le=1, description="share of recommendation answers that fell back")
    cache_hit_ratio: float = Field(0.01, ge=0, le=1, description="alarm when the result cache's hit ratio falls below")
    play_through_std_devs: float = Field(
        2.0, gt=0, description="home's daily play-through rate alarms below its anomaly band this many deviations wide"
    )
    email: str | None = Field(None, description="subscribe this address to the alarm topic")


# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


class DeploySettings(_Frozen):
    """Sizes, retention and limits of the deployed stack (read by the CDK app only)."""

    log_retention_days: int = Field(30, gt=0, description=f"one of {LOG_RETENTION_DAYS}")
    raw_retention_days: int = Field(400, gt=0, description="raw events are deleted after this many days")
    quarantine_retention_days: int = Field(90, gt=0)
    lambda_memory_mb: int = Field(1024, ge=128, le=10240)
    lambda_timeout_s: int = Field(10, gt=0, le=29)
    api_rate_limit: int = Field(200, gt=0, description="usage plan: steady requests per second per key")
    api_burst_limit: int = Field(400, gt=0)
    api_quota_per_day: int = Field(5_000_000, gt=0)
    cognito_threat_protection: bool = Field(
        False,
        description="Cognito's threat protection for the listeners' user pool (the Plus plan, priced per monthly "
        "active user); only with serving.write_auth 'cognito'",
    )
    glue_workers: int = Field(2, ge=2)
    glue_worker_type: str = "G.1X"
    firehose_buffer_seconds: int = Field(300, ge=0, le=900)
    firehose_buffer_mb: int = Field(64, ge=1, le=128)
    retain_data: bool = Field(True, description="keep buckets and tables when the stack is deleted")
    endpoint: EndpointSettings = EndpointSettings()
    schedules: ScheduleSettings = ScheduleSettings()
    alarms: AlarmSettings = AlarmSettings()

    @field_validator("log_retention_days")
    @classmethod
    def _known_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs keeps logs for one of {LOG_RETENTION_DAYS} days, not {value}")
        return value


class EncoreConfig(BaseSettings):
    """The whole configuration. Build it with :meth:`for_stage`, or :meth:`from_env` at a Lambda entry point."""

    model_config = SettingsConfigDict(env_prefix="ENCORE_", env_nested_delimiter="__", frozen=True, extra="forbid")

    stage: Stage = "dev"
    project: str = "encore"
    region: str = "us-east-1"
    resources: ResourceNames
    cache_url: str | None = Field(None, description="redis:// or rediss:// URL of the session and result cache")
    lake: LakePrefixes = LakePrefixes()
    weights: RecommendationWeights = RecommendationWeights()
    rating: RatingWeights = RatingWeights()
    session: SessionSettings = SessionSettings()
    attribution: AttributionSettings = AttributionSettings()
    online_test: OnlineTestSettings = OnlineTestSettings()
    serving: ServingSettings = ServingSettings()
    batch: BatchSettings = BatchSettings()
    deploy: DeploySettings = DeploySettings()

    @model_validator(mode="after")
    def _batch_filter_is_named(self) -> Self:
        if self.batch.filter is not None and self.batch.filter not in self.serving.filters:
            known = ", ".join(sorted(self.serving.filters)) or "none"
            raise ValueError(f"batch.filter '{self.batch.filter}' is not a named filter (serving.filters: {known})")
        return self

    @property
    def name_prefix(self) -> str:
        return f"{self.project}-{self.stage}"

    @classmethod
    def for_stage(cls, stage: Stage = "dev", overrides: dict[str, Any] | None = None) -> EncoreConfig:
        """Defaults for ``stage`` with ``overrides`` (nested dicts, as in ``cdk.json`` context) applied on top."""
        values: dict[str, Any] = {"stage": stage, **(overrides or {})}
        project = values.get("project", "encore")
        names = ResourceNames.for_prefix(f"{project}-{stage}").model_dump()
        names.update(values.get("resources") or {})
        values["resources"] = names
        return cls.model_validate(values)

    @classmethod
    def from_env(cls) -> EncoreConfig:
        """Parse ``ENCORE_*`` variables (resource names are required there: the stack sets them)."""
        return cls()  # pydantic-settings fills the fields from the environment


def runtime_values(config: EncoreConfig, resources: dict[str, str] | None = None) -> dict[str, Any]:
    """The configuration the runtimes read (the deploy settings are the CDK app's alone), with resource names
    known only at deploy time (``resources``: the CDK app passes the bucket's token) put in."""
    values = config.model_dump(mode="json", exclude={"deploy", "cache_url"})
    values["resources"] |= resources or {}
    return values


def runtime_environment(config: EncoreConfig, resources: dict[str, str] | None = None) -> dict[str, str]:
    """The ``ENCORE_*`` variables a function needs for ``EncoreConfig.from_env`` (deploy settings excluded).

    ``resources`` overrides names known only at deploy time (the CDK app passes the bucket's token).
    """
    env = {
        f"ENCORE_{key.upper()}": value if isinstance(value, str) else json.dumps(value)
        for key, value in runtime_values(config, resources).items()
    }
    if config.cache_url:
        env["ENCORE_CACHE_URL"] = config.cache_url
    return env
