"""One typed configuration for every runtime: the CDK app, the Lambda handlers, the jobs and the offline twin.

Values come from (lowest to highest precedence) the defaults below, a stage's overrides (``cdk.json`` context
in the CDK app), and ``ENCORE_*`` environment variables (``ENCORE_WEIGHTS__CF=0.5``) at a Lambda entry point.
Logic receives the parsed values as arguments and never reads ``os.environ`` itself.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Stage = Literal["dev", "prod", "local"]
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
    glue_database: str
    endpoint_name: str
    model_package_group: str
    state_machine: str

    @classmethod
    def for_prefix(cls, prefix: str) -> ResourceNames:
        return cls(
            lake_bucket=f"{prefix}-lake",
            users_table=f"{prefix}-users",
            tracks_table=f"{prefix}-tracks",
            charts_table=f"{prefix}-charts",
            idempotency_table=f"{prefix}-idempotency",
            delivery_stream=f"{prefix}-events",
            glue_database=prefix.replace("-", "_"),
            endpoint_name=f"{prefix}-hybrid",
            model_package_group=f"{prefix}-hybrid",
            state_machine=f"{prefix}-pipeline",
        )


class LakePrefixes(_Frozen):
    """Key prefixes inside the lake bucket (the architecture's S3 layout)."""

    raw_events: str = "raw/events/"
    raw_errors: str = "raw/errors/"
    curated_events: str = "curated/events/"
    features: str = "features/"
    quarantine: str = "quarantine/"
    models: str = "models/"
    catalog: str = "catalog/"


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


class ServingSettings(_Frozen):
    default_limit: int = Field(20, ge=1, le=100)
    max_per_artist: int = Field(3, ge=1)
    vector_dims: int = Field(64, gt=0)
    endpoint_timeout_ms: int = Field(800, gt=0)
    chart_size: int = Field(100, gt=0)


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
    serving: ServingSettings = ServingSettings()

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
