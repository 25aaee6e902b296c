"""The operations routes (``GET /v1/ops/...``) through the twin's API Gateway, answered by the ops function as
synthesized (its code asset, layers and role) after the nightly run: the serving model, the gate's decision with
its report, the pipeline's executions, and refusals of bad parameters and unknown versions."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from encore_local.twin.apigateway import DEFAULT_API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEY = {"x-api-key": DEFAULT_API_KEY}


def get(served_api: str, path: str, **params: Any) -> tuple[int, Any]:
    resp = requests.get(served_api + path, params=params, headers=KEY, timeout=60)
    return resp.status_code, resp.json()


def test_the_serving_model_and_the_gates_decision_with_its_metrics(
    served_api: str, served_lake: dict[str, Any]
) -> None:
    refused_before = len(served_lake["services"].iam_refusals)
    status, body = get(served_api, "/v1/ops/models")
    assert status == 200, body
    gate = served_lake["run"].gate
    assert body["serving"]["version"] == gate["version"] == "encore-serving-test"
    decision = next(d for d in body["decisions"] if d["version"] == gate["version"])
    assert decision["promote"] is True and decision["reason"] == gate["reason"]
    assert decision["home_ndcg"]["hybrid"] == pytest.approx(gate["candidate_ndcg"])
    assert decision["home_ndcg"]["popularity"] == pytest.approx(gate["popularity_ndcg"])
    assert decision["next_hit_rate"]  # the report's next-song figures, per model
    assert body["total"] == len(body["decisions"])
    status, detail = get(served_api, f"/v1/ops/models/{gate['version']}")
    assert status == 200
    assert detail["candidate"]["home"]["hybrid"]["ndcg@10"] == pytest.approx(gate["candidate_ndcg"])
    assert detail["serving"] is None  # the first promotion: nothing served before it
    assert len(served_lake["services"].iam_refusals) == refused_before  # the role allows what the function calls


def test_the_pipelines_executions_newest_first(served_api: str) -> None:
    status, body = get(served_api, "/v1/ops/executions", limit=5)
    assert status == 200, body
    runs = body["executions"]
    assert any(e["name"] == "serving-test" and e["pipeline"] == "nightly" and e["status"] == "SUCCEEDED" for e in runs)
    started = [e["started_at"] for e in runs]
    assert started == sorted(started, reverse=True) and len(runs) <= 5
    assert all(e["stopped_at"] is None or e["stopped_at"] >= e["started_at"] for e in runs)  # one clock for both


@pytest.mark.parametrize(
    ("path", "params", "status", "named"),
    [
        ("/v1/ops/models/encore-never-trained", {}, 404, "encore-never-trained"),
        ("/v1/ops/models/bad%20version", {}, 400, "version"),
        ("/v1/ops/models", {"limit": "0"}, 400, "limit"),
        ("/v1/ops/executions", {"limit": "many"}, 400, "limit"),
    ],
)
def test_bad_parameters_and_unknown_versions_are_refused_with_a_reason(
    served_api: str, path: str, params: dict[str, str], status: int, named: str
) -> None:
    code, body = get(served_api, path, **params)
    assert code == status, body
    assert named in str(body)


def test_the_operations_routes_need_the_key(served_api: str) -> None:
    assert requests.get(served_api + "/v1/ops/models", timeout=30).status_code == 403
