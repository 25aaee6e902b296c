"""The twin's services: resources from the shared configuration, Firehose into the raw prefix, the cache."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.resources import table_specs
from encore_local.lake import import_simulation
from encore_local.simulator import SimulationSummary
from encore_local.twin.assembly import ACCOUNT, Deployment, Function
from encore_local.twin.glue_worker import S3Mirror
from encore_local.twin.lambda_ import FunctionError, IntegrationTimeout, LambdaService
from encore_local.twin.provision import provision
from encore_local.twin.services import TwinEndpoints, TwinServices

pytestmark = pytest.mark.integration


def test_resources_exist(twin: TwinEndpoints, config: EncoreConfig) -> None:
    ddb = get_client("dynamodb")
    assert set(ddb.list_tables()["TableNames"]) >= {s.name for s in table_specs(config).values()}
    ttl = ddb.describe_time_to_live(TableName=config.resources.idempotency_table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expiration"
    assert get_client("s3").head_bucket(Bucket=config.resources.lake_bucket)
    assert get_client("glue").get_database(Name=config.resources.glue_database)["Database"]["Name"]


def test_provision_is_idempotent(twin_services: TwinServices) -> None:
    stack = twin_services.deployment.stacks[0]
    assert provision(stack, twin_services.client) == provision(stack, twin_services.client)


def test_firehose_delivers_into_the_raw_prefix(twin: TwinEndpoints, config: EncoreConfig) -> None:
    record = {"event_id": "x", "user_id": "u1"}
    firehose = get_client("firehose")
    resp = firehose.put_record_batch(
        DeliveryStreamName=config.resources.delivery_stream,
        Records=[{"Data": (json.dumps(record) + "\n").encode()}],
    )
    assert resp["FailedPutCount"] == 0
    s3 = get_client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=config.resources.lake_bucket, Prefix="raw/events/")["Contents"]]
    bodies = [s3.get_object(Bucket=config.resources.lake_bucket, Key=k)["Body"].read() for k in keys]
    texts = [gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b for b in bodies]
    assert any(b'"user_id": "u1"' in t for t in texts)


def test_cache_answers(twin: TwinEndpoints) -> None:
    client = redis.Redis.from_url(twin.cache_url)
    client.set("encore:test", "1", ex=5)
    assert client.get("encore:test") == b"1"
    assert client.ttl("encore:test") > 0


def test_fakeredis_fallback_and_two_twins_do_not_collide(twin: TwinEndpoints) -> None:
    other = TwinServices(EncoreConfig.for_stage("dev"), cache="fakeredis", export_env=False)
    with other as endpoints:
        assert endpoints.cache_kind == "fakeredis"
        assert endpoints.aws_endpoint != twin.aws_endpoint
        assert endpoints.cache_url != twin.cache_url
        assert redis.Redis.from_url(endpoints.cache_url).ping()


def test_import_puts_history_in_firehose_layout(
    twin: TwinEndpoints, config: EncoreConfig, small_sim: tuple[Path, SimulationSummary]
) -> None:
    result = import_simulation(config, small_sim[0], progress=False)
    assert result.events == small_sim[1].events
    assert result.event_objects == small_sim[1].days
    s3 = get_client("s3")
    key = "raw/events/2026/09/01/00/encore-import-2026-09-01.gz"
    body = gzip.decompress(s3.get_object(Bucket=config.resources.lake_bucket, Key=key)["Body"].read())
    assert body.count(b"\n") == len((small_sim[0] / "events/2026-09-01.jsonl").read_bytes().splitlines())
    assert s3.head_object(Bucket=config.resources.lake_bucket, Key="catalog/tracks.csv")


def test_twin_up_env_down_through_the_cli(tmp_path: Path) -> None:
    encore = [sys.executable, "-m", "encore_local.cli", "twin"]
    state = ["--state-dir", str(tmp_path)]
    up = subprocess.run([*encore, "up", *state], capture_output=True, text=True, timeout=90, check=False)
    try:
        assert up.returncode == 0, up.stderr
        assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in up.stdout
        again = subprocess.run([*encore, "up", *state], capture_output=True, text=True, timeout=60, check=False)
        assert again.returncode == 2
        assert "already running" in again.stderr
        env = subprocess.run([*encore, "env", *state], capture_output=True, text=True, timeout=30, check=True).stdout
        endpoint = next(line.split("=", 1)[1] for line in env.splitlines() if "AWS_ENDPOINT_URL=" in line)
        probe = (
            f"import boto3; print(sorted(boto3.client('dynamodb', endpoint_url='{endpoint}', region_name='us-east-1',"
            " aws_access_key_id='t', aws_secret_access_key='t').list_tables()['TableNames']))"
        )
        tables = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True)
        assert "encore-local-users" in tables.stdout
    finally:
        down = subprocess.run([*encore, "down", *state], capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    assert not (tmp_path / "twin.json").exists()


def test_a_function_past_its_timeout_is_stopped_as_lambda_stops_it(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "slow.py").write_text(
        "import time\n\ndef handler(event, context):\n    time.sleep(event['s'])\n    return 'done'\n"
    )
    fn = Function(logical_id="Slow", name="slow", arn=f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:slow",
                  handler="slow.handler", code=code, layers=[], environment={}, role="Test.SlowRole",
                  timeout_s=1, memory_mb=128)  # fmt: skip
    service = LambdaService(Deployment("us-east-1"), lambda fn: {}, tmp_path / "logs")
    try:
        assert service.invoke_function(fn, {"s": 0})[0] == "done"
        with pytest.raises(FunctionError) as timed_out:
            service.invoke_function(fn, {"s": 30})
        assert timed_out.value.payload == {"errorType": "Sandbox.Timedout",
                                           "errorMessage": "Task timed out after 1.00 seconds"}  # fmt: skip
        assert service.invoke_function(fn, {"s": 0})[0] == "done"  # a new execution environment
        with pytest.raises(IntegrationTimeout):  # a caller that stops waiting first (API Gateway at 29 s)
            service.invoke_function(fn, {"s": 30}, deadline_s=0.2)
    finally:
        service.close()


class _CountingS3:
    """The twin's S3 client, counting the objects it fetches."""

    def __init__(self, s3: Any) -> None:
        self.s3, self.fetched = s3, 0

    def get_object(self, **kwargs: Any) -> Any:
        self.fetched += 1
        return self.s3.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)


def test_the_glue_mirror_fetches_only_what_it_has_not_seen(twin: TwinEndpoints, tmp_path: Path) -> None:
    s3 = _CountingS3(get_client("s3"))
    bucket = "mirror-test"
    s3.create_bucket(Bucket=bucket)
    for name in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=f"curated/{name}.parquet", Body=name.encode())
    mirror = S3Mirror(tmp_path / "mirror")
    mirror.pull(s3, bucket, "curated/")
    assert s3.fetched == 3 and (tmp_path / "mirror" / bucket / "curated" / "b.parquet").read_bytes() == b"b"
    mirror.pull(s3, bucket, "curated/")
    assert s3.fetched == 3  # nothing changed: nothing fetched
    s3.put_object(Bucket=bucket, Key="curated/b.parquet", Body=b"b2")
    s3.delete_object(Bucket=bucket, Key="curated/c.parquet")
    mirror.pull(s3, bucket, "curated/")
    assert s3.fetched == 4 and (tmp_path / "mirror" / bucket / "curated" / "b.parquet").read_bytes() == b"b2"
    assert not (tmp_path / "mirror" / bucket / "curated" / "c.parquet").exists()  # gone from S3, gone here
    (tmp_path / "mirror" / bucket / "curated" / "a.parquet").unlink()  # a job rewrote the prefix
    (tmp_path / "mirror" / bucket / "curated" / "d.parquet").write_bytes(b"d")
    mirror.push(s3, bucket, "curated/")
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="curated/")["Contents"]}
    assert listed == {"curated/b.parquet", "curated/d.parquet"}
    mirror.pull(s3, bucket, "curated/")
    assert s3.fetched == 4  # what it uploaded itself it does not fetch back


def test_a_prefix_emptied_in_s3_leaves_no_folder_in_the_glue_mirror(twin: TwinEndpoints, tmp_path: Path) -> None:
    """S3 has no empty folders: a table whose objects were all deleted must not be left as a folder (with Spark's
    checksum files) that Spark would try to read as a table."""
    s3 = get_client("s3")
    bucket = "mirror-prune-test"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="curated/dt=2026-09-01/part-0.parquet", Body=b"x")
    s3.put_object(Bucket=bucket, Key="curated/keep.parquet", Body=b"k")
    mirror = S3Mirror(tmp_path / "mirror")
    mirror.pull(s3, bucket, "curated/")
    partition = tmp_path / "mirror" / bucket / "curated" / "dt=2026-09-01"
    (partition / ".part-0.parquet.crc").write_bytes(b"crc")  # as Spark leaves beside what it wrote
    s3.delete_object(Bucket=bucket, Key="curated/dt=2026-09-01/part-0.parquet")
    mirror.pull(s3, bucket, "curated/")
    assert not partition.exists() and (tmp_path / "mirror" / bucket / "curated" / "keep.parquet").exists()


def test_twins_one_after_another_in_a_process_do_not_share_an_account(tmp_path: Path) -> None:
    """moto's backends outlive its server: the last twin of a process to stop leaves the next one an empty
    account (the model benchmark builds each data source's features in a twin of its own). In a child process,
    since this one's session twin is running."""
    script = tmp_path / "twins.py"
    script.write_text(
        "from encore.clients import get_client\n"
        "from encore.config import EncoreConfig\n"
        "from encore_local.twin.services import TwinServices\n"
        "with TwinServices(EncoreConfig.for_stage('local'), cache='fakeredis'):\n"
        "    get_client('s3').create_bucket(Bucket='left-behind')\n"
        "with TwinServices(EncoreConfig.for_stage('local'), cache='fakeredis'):\n"
        "    names = [b['Name'] for b in get_client('s3').list_buckets()['Buckets']]\n"
        "    print('left-behind' in names)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # not the session twin's endpoint
    out = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=300,
                         env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
