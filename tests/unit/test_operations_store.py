"""``encore.operations.OperationsStore`` on moto: an empty lake, decisions newest first, a failed execution with
its error and cause."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from encore.clients import reset_clients
from encore.errors import NotFound
from encore.operations import OperationsStore

pytestmark = pytest.mark.unit
REGION = "us-east-1"
PASS = json.dumps({"StartAt": "done", "States": {"done": {"Type": "Pass", "End": True}}})
FAIL = json.dumps({"StartAt": "boom", "States": {"boom": {"Type": "Fail", "Error": "Boom", "Cause": "it broke"}}})


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # moto's ASL interpreter
        reset_clients()
        s3, sfn = boto3.client("s3", region_name=REGION), boto3.client("stepfunctions", region_name=REGION)
        s3.create_bucket(Bucket="lake")
        role = "arn:aws:iam::123456789012:role/sfn"
        machines = {
            name: sfn.create_state_machine(name=f"encore-{name}", definition=body, roleArn=role)["stateMachineArn"]
            for name, body in (("nightly", PASS), ("charts", FAIL))
        }
        store = OperationsStore("lake", "models/", machines, REGION)
        yield {"s3": s3, "sfn": sfn, "machines": machines, "store": store}
    reset_clients()


def decide(s3: Any, version: str, promote: bool, serving: str | None, ndcg: float) -> None:
    record = {
        "decision": {"promote": promote, "reason": f"{version} decided", "serving_version": serving},
        "candidate": {"home": {"hybrid": {"ndcg@10": ndcg}, "popularity": {"ndcg@10": 0.1}},
                      "next": {"hybrid": {"hit_rate@10": 0.3}}},
        "serving": {"version": serving, "metrics": {"ndcg@10": 0.2}} if serving else None,
        "decided_at": int(time.time()),
    }  # fmt: skip
    s3.put_object(Bucket="lake", Key=f"models/decisions/{version}.json", Body=json.dumps(record))


def test_an_empty_lake_has_no_serving_model_and_no_decisions(aws: dict[str, Any]) -> None:
    view = aws["store"].models(30)
    assert view.serving is None and view.decisions == [] and view.total == 0
    with pytest.raises(NotFound, match="v1"):
        aws["store"].decision("v1")


def test_decisions_newest_first_and_a_detail_with_the_serving_models_report(aws: dict[str, Any]) -> None:
    s3 = aws["s3"]
    decide(s3, "v1", True, None, 0.2)
    time.sleep(1.1)  # S3's LastModified has a one-second resolution
    decide(s3, "v2", False, "v1", 0.15)
    s3.put_object(Bucket="lake", Key="models/serving.json",
                  Body=json.dumps({"version": "v1", "metrics": {"ndcg@10": 0.2}, "promoted_at": 1}))  # fmt: skip
    view = aws["store"].models(1)
    assert [d.version for d in view.decisions] == ["v2"] and view.total == 2
    assert view.serving is not None and view.serving.version == "v1"
    assert view.decisions[0].home_ndcg == {"hybrid": 0.15, "popularity": 0.1}
    assert view.decisions[0].next_hit_rate == {"hybrid": 0.3}
    detail = aws["store"].decision("v2")
    assert detail.serving is not None and detail.serving.version == "v1"
    assert detail.serving.report is not None and detail.serving.report["home"]["hybrid"]["ndcg@10"] == 0.2


def test_a_failed_execution_carries_its_error_and_cause(aws: dict[str, Any]) -> None:
    sfn, machines = aws["sfn"], aws["machines"]
    started = [sfn.start_execution(stateMachineArn=machines[name], name=name)["executionArn"]
               for name in ("nightly", "charts")]  # fmt: skip
    deadline = time.monotonic() + 30
    while any(sfn.describe_execution(executionArn=a)["status"] == "RUNNING" for a in started):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    runs = {e.name: e for e in aws["store"].executions(10).executions}
    assert runs["charts"].status == "FAILED" and runs["charts"].pipeline == "charts"
    assert runs["charts"].error == "Boom" and runs["charts"].cause == "it broke"
    assert runs["nightly"].status == "SUCCEEDED" and runs["nightly"].error is None


def test_a_running_test_and_the_online_judgment_are_shown(aws: dict[str, Any]) -> None:
    s3 = aws["s3"]
    test = {"challenger": {"version": "v2", "model_data": "s3://lake/v2"}, "share": 0.1, "started_at": 1_700_000_000}
    serving = {"version": "v1", "model_data": "s3://lake/v1", "metrics": {"ndcg@10": 0.3}, "test": test}
    s3.put_object(Bucket="lake", Key="models/serving.json", Body=json.dumps(serving))
    decide(s3, "v2", True, "v1", 0.32)
    record = json.loads(s3.get_object(Bucket="lake", Key="models/decisions/v2.json")["Body"].read())
    judged = {"action": "keep", "reason": "the champion is better", "confidence": 0.999, "days": 4,
              "champion": {"rate": 0.7}, "challenger": {"rate": 0.4}}  # fmt: skip
    record["online"] = [{**judged, "action": "extend"}, judged]
    s3.put_object(Bucket="lake", Key="models/decisions/v2.json", Body=json.dumps(record))
    view = aws["store"].models(30)
    assert view.serving is not None and view.serving.test is not None
    assert (view.serving.test.challenger, view.serving.test.share) == ("v2", 0.1)
    online = view.decisions[0].online
    assert online is not None and (online.action, online.challenger_rate, online.days) == ("keep", 0.4, 4)
