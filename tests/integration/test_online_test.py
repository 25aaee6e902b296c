"""Champion/challenger on the twin, through the deployed pipeline functions and the served API: the deploy step
puts the popularity baseline beside the champion, each listener gets one variant (the one the sticky hash
says), and the judge, on the days' attribution rows, keeps the champion when the challenger loses and promotes
the challenger when it wins, leaving the winner alone on the endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import requests

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.endpoint import point_endpoint
from encore.experiment import CHALLENGER, CHAMPION, LiveTest
from encore.promotion import SERVING_KEY, ModelRegistry, attribution_totals_key
from encore_local.errors import UsageError
from encore_local.online_test import DEPLOY, JUDGE, derived_challenger, describe, invoke, recorded_challenger
from encore_local.pipeline import set_clock
from encore_local.twin.apigateway import DEFAULT_API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEY = {"x-api-key": DEFAULT_API_KEY}


@pytest.fixture
def champion_restored(served_lake: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The served champion before the test, put back afterwards (other modules serve it)."""
    config, url_aws = served_lake["config"], served_lake["twin"].aws_endpoint
    registry = ModelRegistry(config)
    before = registry.serving()
    assert before is not None and not before.get("test")
    yield before
    set_clock(url_aws, None)
    point_endpoint(config, config.deploy.endpoint, before["model_name"], [(CHAMPION, before["model_name"], 1.0)])
    get_client("s3").put_object(
        Bucket=config.resources.lake_bucket, Key=config.lake.models + SERVING_KEY, Body=json.dumps(before).encode()
    )


def _variants(config: EncoreConfig) -> dict[str, str]:
    sm = get_client("sagemaker")
    name = sm.describe_endpoint(EndpointName=config.resources.endpoint_name)["EndpointConfigName"]
    variants = sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]
    return {v["VariantName"]: v["ModelName"] for v in variants}


def _days_of(config: EncoreConfig, test: LiveTest, champion: tuple[int, int], challenger: tuple[int, int]) -> datetime:
    """Four closed days of attribution rows from the test's start (plays, completes per day and variant); returns
    a time at which they are closed."""
    start = datetime.fromtimestamp(test.started_at, UTC)
    for n in range(4):
        day = (start + timedelta(days=n)).date()
        rows = [
            {"day": day.isoformat(), "surface": "home", "model_version": test.champion, "variant": CHAMPION,
             "impressions": 400, "plays": champion[0], "completes": champion[1]},
            {"day": day.isoformat(), "surface": "home", "model_version": test.challenger, "variant": CHALLENGER,
             "impressions": 400, "plays": challenger[0], "completes": challenger[1]},
        ]  # fmt: skip
        get_client("s3").put_object(
            Bucket=config.resources.lake_bucket, Key=attribution_totals_key(config, day), Body=json.dumps(rows)
        )
    return start + timedelta(days=6)


def test_a_weaker_challenger_gets_its_listeners_and_loses(
    served_api: str, served_lake: dict[str, Any], champion_restored: dict[str, Any]
) -> None:
    config, url_aws = served_lake["config"], served_lake["twin"].aws_endpoint
    registry = ModelRegistry(config)
    deployed = invoke(config, DEPLOY, derived_challenger(config, "popularity", "popularity-keep"))
    assert deployed["role"] == CHALLENGER
    test = LiveTest.of(registry.serving())
    assert test is not None and test.share == config.online_test.challenger_share
    assert _variants(config) == {CHAMPION: champion_restored["model_name"], CHALLENGER: deployed["model"]}

    events = pd.read_json(served_lake["sim"] / "events/2026-09-05.jsonl", lines=True, convert_dates=False)
    listeners = [str(u) for u in events["user_id"].value_counts().index[:300]]
    chosen = [u for u in listeners if test.variant_of(u) == CHAMPION][:2]
    chosen += [u for u in listeners if test.variant_of(u) == CHALLENGER][:2]
    for user in chosen:
        for _ in range(2):  # the second answer comes from the result cache: the same variant
            answer = requests.get(f"{served_api}/v1/users/{user}/recommendations", headers=KEY, timeout=60).json()
            assert answer["variant"] == test.variant_of(user), answer
            assert answer["model_version"] == test.version_of(answer["variant"])

    assert invoke(config, JUDGE, {})["action"] == "running"  # no closed day yet
    shown = describe(registry.serving(), registry)
    assert f"champion: {test.champion}" in shown and "online test: popularity-keep serves 10% of listeners" in shown
    later = _days_of(config, test, champion=(150, 105), challenger=(150, 60))  # 70% against 40%
    set_clock(url_aws, later)
    judged = invoke(config, JUDGE, {})
    assert judged["action"] == "keep" and judged["confidence"] > 0.999, judged
    assert judged["champion"]["plays"] == 600 and judged["challenger"]["completes"] == 240
    serving = registry.serving()
    assert serving is not None and "test" not in serving and serving["version"] == test.champion
    assert _variants(config) == {CHAMPION: champion_restored["model_name"]}
    online = registry.decision("popularity-keep")["online"]
    assert [j["action"] for j in online] == ["keep"] and online[0]["days"] >= 3


def test_a_better_challenger_is_promoted_and_serves_alone(
    served_lake: dict[str, Any], champion_restored: dict[str, Any]
) -> None:
    config, url_aws = served_lake["config"], served_lake["twin"].aws_endpoint
    registry = ModelRegistry(config)
    deployed = invoke(config, DEPLOY, derived_challenger(config, "shuffled", "shuffled-promote"))
    test = LiveTest.of(registry.serving())
    assert test is not None
    set_clock(url_aws, _days_of(config, test, champion=(150, 60), challenger=(150, 105)))
    judged = invoke(config, JUDGE, {})
    assert judged["action"] == "promote", judged
    serving = registry.serving()
    assert serving is not None and serving["version"] == "shuffled-promote" and "test" not in serving
    assert _variants(config) == {CHAMPION: deployed["model"]}
    # a new candidate may be tested again: the gate holds none back
    assert invoke(config, JUDGE, {})["action"] == "none"
    assert "no online test is running" in describe(registry.serving(), registry)


def test_a_recorded_candidate_can_be_put_on_test_by_version(served_lake: dict[str, Any]) -> None:
    config = served_lake["config"]
    gate = served_lake["run"].gate
    decision = recorded_challenger(config, gate["version"])
    assert decision["model_data"] == gate["model_data"] and decision["image"] == gate["image"]
    assert decision["metrics"]["ndcg@10"] == gate["candidate_ndcg"]
    with pytest.raises(UsageError, match="no decision recorded for model nope"):
        recorded_challenger(config, "nope")
