"""The shared configuration: stage defaults, overrides, environment parsing and weight checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from encore.config import EncoreConfig, RecommendationWeights
from encore.resources import table_specs

pytestmark = pytest.mark.unit


def test_stage_names_every_resource() -> None:
    cfg = EncoreConfig.for_stage("prod")
    assert cfg.resources.users_table == "encore-prod-users"
    assert cfg.resources.glue_database == "encore_prod"
    assert cfg.weights.long_term == 0.7
    assert cfg.weights.cf == 0.6
    assert cfg.session.ttl_seconds == 1800
    assert cfg.rating.window_days == 90


def test_overrides_apply_on_top_of_the_stage() -> None:
    cfg = EncoreConfig.for_stage(
        "dev", {"resources": {"users_table": "custom-users"}, "weights": {"cf": 0.5, "content": 0.5}}
    )
    assert cfg.resources.users_table == "custom-users"
    assert cfg.resources.tracks_table == "encore-dev-tracks"
    assert cfg.weights.cf == 0.5


@pytest.mark.parametrize(
    "weights", [{"long_term": 0.8, "short_term": 0.3}, {"cf": 0.6, "content": 0.5}, {"cf": 1.2, "content": -0.2}]
)
def test_weights_that_do_not_sum_to_one_are_refused(weights: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        RecommendationWeights(**weights)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        EncoreConfig.for_stage("dev", {"wieghts": {}})


def test_environment_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    base = EncoreConfig.for_stage("dev").resources.model_dump()
    for key, value in base.items():
        monkeypatch.setenv(f"ENCORE_RESOURCES__{key.upper()}", value)
    monkeypatch.setenv("ENCORE_STAGE", "prod")
    monkeypatch.setenv("ENCORE_WEIGHTS__CF", "0.7")
    monkeypatch.setenv("ENCORE_WEIGHTS__CONTENT", "0.3")
    monkeypatch.setenv("ENCORE_CACHE_URL", "rediss://cache:6379/0")
    cfg = EncoreConfig.from_env()
    assert cfg.stage == "prod"
    assert cfg.weights.cf == 0.7
    assert cfg.cache_url == "rediss://cache:6379/0"
    assert cfg.resources.users_table == "encore-dev-users"


def test_table_specs_give_create_table_arguments() -> None:
    specs = table_specs(EncoreConfig.for_stage("dev"))
    charts = specs["charts"].create_table_kwargs()
    assert charts["KeySchema"] == [
        {"AttributeName": "chart_key", "KeyType": "HASH"},
        {"AttributeName": "rank", "KeyType": "RANGE"},
    ]
    assert {"AttributeName": "rank", "AttributeType": "N"} in charts["AttributeDefinitions"]  # type: ignore[operator]
    assert specs["idempotency"].ttl_attribute == "expiration"
