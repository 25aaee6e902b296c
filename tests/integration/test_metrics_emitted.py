"""The functions' own metrics, as they print them (CloudWatch embedded metric format): every metric in Encore's
namespace has a name and exactly the dimensions `encore.observability.EMITTED` gives it, which is what the
dashboard and the alarms are checked against (cdk_app/deploy_rules.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from encore import observability as obs
from encore.config import EncoreConfig
from encore_local.apigw import LambdaContext, load_handler, rest_event
from encore_local.twin.services import TwinEndpoints

pytestmark = pytest.mark.integration


def _emitted(out: str) -> list[tuple[str, str, frozenset[str]]]:
    found = []
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob: dict[str, Any] = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for dims in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    found.append((directive["Namespace"], metric["Name"], frozenset(dims)))
    return found


def test_every_metric_the_functions_emit_is_declared_with_its_dimensions(
    twin: TwinEndpoints, config: EncoreConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    api, events = load_handler("api", config), load_handler("events", config)
    capsys.readouterr()
    user = f"metrics-{uuid.uuid4().hex[:8]}"  # unknown: the answer falls back to trending
    home = rest_event("GET", f"/v1/users/{user}/recommendations", resource="/v1/users/{user_id}/recommendations",
                      path_parameters={"user_id": user}, api_key="twin-key")  # fmt: skip
    assert api.lambda_handler(home, LambdaContext("api"))["statusCode"] == 200
    event = {"event_id": str(uuid.uuid4()), "user_id": user, "track_id": "t1", "action": "listen",
             "timestamp": 1_764_000_000_000, "played_ms": 1000, "track_duration_ms": 200_000, "region": "US",
             "source": "app", "context": "home"}  # fmt: skip
    post = rest_event("POST", "/v1/events", body=json.dumps({"events": [event]}), api_key="twin-key",
                      headers=[("Content-Type", "application/json")])  # fmt: skip
    assert events.lambda_handler(post, LambdaContext("events"))["statusCode"] == 202
    emitted = [m for m in _emitted(capsys.readouterr().out) if m[0] == obs.NAMESPACE]
    names = {name for _, name, _ in emitted}
    assert {obs.CACHE_HIT, obs.FALLBACK, obs.DEGRADED, obs.LATENCY, obs.EVENTS_ACCEPTED} <= names
    for _, name, dims in emitted:
        assert name in obs.EMITTED, name
        assert dims == frozenset(obs.EMITTED[name]), (name, sorted(dims))
