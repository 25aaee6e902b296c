"""The stack as ``cdklocal deploy`` created it in LocalStack (``make test-localstack``; skipped elsewhere): its
outputs, its tables, Firehose into the lake's raw prefix, and its state machines."""

from __future__ import annotations

import gzip
import json
import os
import time
import uuid
from typing import Any

import boto3
import pytest

pytestmark = [
    pytest.mark.localstack,
    pytest.mark.skipif("ENCORE_LOCALSTACK_STAGE" not in os.environ, reason="only under make test-localstack"),
]


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    stack = f"Encore-{os.environ.get('ENCORE_LOCALSTACK_STAGE', 'dev')}"
    described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def test_the_stack_has_its_outputs(outputs: dict[str, str]) -> None:
    assert {"LakeBucket", "PipelineArn", "AlarmTopicArn"} <= set(outputs)


def test_its_tables_exist() -> None:
    stage = os.environ.get("ENCORE_LOCALSTACK_STAGE", "dev")
    tables = set(boto3.client("dynamodb").list_tables()["TableNames"])
    assert {f"encore-{stage}-{t}" for t in ("users", "tracks", "charts", "idempotency")} <= tables


def test_firehose_delivers_into_the_raw_prefix(outputs: dict[str, str]) -> None:
    stage = os.environ.get("ENCORE_LOCALSTACK_STAGE", "dev")
    marker = str(uuid.uuid4())
    boto3.client("firehose").put_record(
        DeliveryStreamName=f"encore-{stage}-events", Record={"Data": (json.dumps({"event_id": marker}) + "\n").encode()}
    )
    s3 = boto3.client("s3")
    deadline = time.monotonic() + 360  # Firehose buffers up to its interval
    while time.monotonic() < deadline:
        listed: list[dict[str, Any]] = s3.list_objects_v2(Bucket=outputs["LakeBucket"], Prefix="raw/events/").get(
            "Contents", []
        )
        for obj in listed:
            body = s3.get_object(Bucket=outputs["LakeBucket"], Key=obj["Key"])["Body"].read()
            if marker.encode() in (gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body):
                return
        time.sleep(5)
    pytest.fail("the record did not reach raw/events/")


def test_the_pipeline_state_machine_is_defined(outputs: dict[str, str]) -> None:
    described = boto3.client("stepfunctions").describe_state_machine(stateMachineArn=outputs["PipelineArn"])
    states = json.loads(described["definition"])["States"]
    assert {"load_catalog", "train", "gate", "deploy", "load_vectors"} <= set(states)
