"""The synthesized template: least privilege, encryption, tracing, alarms, pipeline order, API keys.

The dev assembly of the session (tests/infra/conftest.py: synthesized with cdk-nag, which fails synthesis on
any unacknowledged finding) is what every test reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from cdk_app.deploy_rules import Assembly
from cdk_app.functions import RETENTION_NAMES
from cdk_app.nag import STAR_RESOURCE_ACTIONS
from cdk_app.settings import CDK_JSON
from encore.config import LOG_RETENTION_DAYS, EncoreConfig
from encore.pipeline import CHARTS_REFRESH, GLUE_JOBS, NIGHTLY

pytestmark = pytest.mark.infra


@pytest.fixture(scope="session")
def config() -> EncoreConfig:  # the dev stage, exactly as cdk.json defines it
    stages = json.loads(CDK_JSON.read_text())["context"]["stages"]
    return EncoreConfig.for_stage("dev", stages["dev"])


@pytest.fixture(scope="session")
def template(assemblies: dict[str, Assembly]) -> Template:
    return Template.from_json(assemblies["dev"].template)


@pytest.fixture(scope="session")
def resources(template: Template) -> dict[str, Any]:
    return template.to_json()["Resources"]  # type: ignore[no-any-return]


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def _statements(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for lid, res in resources.items():
        if res["Type"] == "AWS::IAM::Policy":
            docs = [res["Properties"]["PolicyDocument"]]
        elif res["Type"] == "AWS::IAM::Role":
            docs = [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
        else:
            continue
        for doc in docs:
            for st in doc["Statement"]:
                yield lid, st


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def test_no_statement_allows_every_action(resources: dict[str, Any]) -> None:
    for lid, st in _statements(resources):
        for action in _list(st.get("Action", [])):
            assert action != "*" and not str(action).endswith(":*"), (lid, action)


def test_star_resources_only_where_the_api_requires_them(resources: dict[str, Any]) -> None:
    seen = set()
    for lid, st in _statements(resources):
        if "*" in _list(st.get("Resource", [])):
            for action in _list(st["Action"]):
                assert action in STAR_RESOURCE_ACTIONS, f"{lid}: {action} on '*' has no documented reason"
                seen.add(action)
    assert "xray:PutTraceSegments" in seen  # tracing is on, and its '*' is among the documented ones


def test_buckets_block_public_access_and_enforce_tls(template: Template, resources: dict[str, Any]) -> None:
    buckets = _of_type(resources, "AWS::S3::Bucket")
    assert len(buckets) == 3  # the lake, its access logs, the web app's files
    for bucket in buckets.values():
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    policies = _of_type(resources, "AWS::S3::BucketPolicy")
    assert len(policies) == 3
    for policy in policies.values():
        denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_the_web_app_is_a_private_bucket_read_by_its_distribution_only(resources: dict[str, Any]) -> None:
    (distribution_id, distribution) = next(iter(_of_type(resources, "AWS::CloudFront::Distribution").items()))
    config = distribution["Properties"]["DistributionConfig"]
    (site_id,) = [lid for lid in _of_type(resources, "AWS::S3::Bucket") if lid.startswith("SiteFiles")]
    (policy,) = [p for p in _of_type(resources, "AWS::S3::BucketPolicy").values()
                 if p["Properties"]["Bucket"] == {"Ref": site_id}]  # fmt: skip
    allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    reads = [s for s in allows if s["Principal"] == {"Service": "cloudfront.amazonaws.com"}]
    assert len(reads) == 1 and reads[0]["Action"] == "s3:GetObject"
    assert distribution_id in json.dumps(reads[0]["Condition"])  # origin access control: this distribution only
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    (api,) = config["CacheBehaviors"]
    assert api["PathPattern"] == "/v1/*" and api["ViewerProtocolPolicy"] == "https-only"
    assert api["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CachingDisabled
    origin = next(o for o in config["Origins"] if o["Id"] == api["TargetOriginId"])
    (header,) = origin["OriginCustomHeaders"]
    (secret_id,) = _of_type(resources, "AWS::SecretsManager::Secret")
    reference = {"Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": secret_id}, ":SecretString:::}}"]]}
    assert header == {"HeaderName": "x-api-key", "HeaderValue": reference}  # the key is not in the template
    site_key = next(k for k in _of_type(resources, "AWS::ApiGateway::ApiKey").values() if "Value" in k["Properties"])
    assert site_key["Properties"]["Value"] == reference


def test_impression_lines_of_the_serving_log_reach_their_stream_taken_apart(resources: dict[str, Any]) -> None:
    (sub,) = _of_type(resources, "AWS::Logs::SubscriptionFilter").values()
    props = sub["Properties"]
    serving = next(f for lid, f in _encore_functions(resources).items() if lid.startswith("ApiServing"))
    assert props["LogGroupName"] == serving["Properties"]["LoggingConfig"]["LogGroup"]
    assert props["FilterPattern"] == '{ $.kind = "impression" }'
    stream = resources[props["DestinationArn"]["Fn::GetAtt"][0]]["Properties"]
    destination = stream["ExtendedS3DestinationConfiguration"]
    assert stream["DeliveryStreamName"] == "encore-dev-impressions"
    assert destination["Prefix"].startswith("raw/impressions/")
    processors = [p["Type"] for p in destination["ProcessingConfiguration"]["Processors"]]
    assert processors == ["Decompression", "CloudWatchLogProcessing", "AppendDelimiterToRecord"]
    role = {"Ref": props["RoleArn"]["Fn::GetAtt"][0]}
    policies = [
        p["Properties"] for p in _of_type(resources, "AWS::IAM::Policy").values() if role in p["Properties"]["Roles"]
    ]
    allowed = {"Action": ["firehose:PutRecord", "firehose:PutRecordBatch"], "Effect": "Allow",
               "Resource": props["DestinationArn"]}  # fmt: skip
    assert [st for p in policies for st in p["PolicyDocument"]["Statement"]] == [allowed]  # that, and nothing else


def test_a_drop_in_homes_play_through_rate_alarms(resources: dict[str, Any]) -> None:
    (topic_id,) = _of_type(resources, "AWS::SNS::Topic")
    (alarm,) = [a["Properties"] for a in _of_type(resources, "AWS::CloudWatch::Alarm").values()
                if "ThresholdMetricId" in a["Properties"]]  # fmt: skip
    assert alarm["ComparisonOperator"] == "LessThanLowerThreshold" and alarm["AlarmActions"] == [{"Ref": topic_id}]
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    band = queries[alarm["ThresholdMetricId"]]["Expression"]
    assert band.startswith("ANOMALY_DETECTION_BAND(")
    (metric,) = [q["MetricStat"] for q in queries.values() if "MetricStat" in q]
    assert metric["Metric"] == {"Namespace": "Encore", "MetricName": "PlayThroughRate",
                                "Dimensions": [{"Name": "Surface", "Value": "home"}]}  # fmt: skip
    assert metric["Period"] == 86400
    job_role = [st for lid, st in _statements(resources) if lid.startswith("FeaturesJobRole")]
    metrics = next(st for st in job_role if st["Action"] == "cloudwatch:PutMetricData")
    assert "Encore" in metrics["Condition"]["StringLike"]["cloudwatch:namespace"]  # attribute_plays publishes


def test_everything_that_stores_data_is_encrypted(resources: dict[str, Any]) -> None:
    lake = next(
        b
        for lid, b in _of_type(resources, "AWS::S3::Bucket").items()
        if lid.startswith("DataLake") and "AccessLogs" not in lid
    )
    rule = lake["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    tables = _of_type(resources, "AWS::DynamoDB::GlobalTable")
    assert len(tables) == 4
    for table in tables.values():
        assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True
        assert table["Properties"]["SSESpecification"]["SSEType"] == "KMS"
        assert table["Properties"]["Replicas"][0]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
    streams = _of_type(resources, "AWS::KinesisFirehose::DeliveryStream").values()
    assert sorted(s["Properties"]["DeliveryStreamName"] for s in streams) == [
        "encore-dev-events",
        "encore-dev-impressions",
    ]
    for stream in streams:
        assert stream["Properties"]["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] == "CUSTOMER_MANAGED_CMK"
        assert stream["Properties"]["ExtendedS3DestinationConfiguration"]["CompressionFormat"] == "GZIP"
    (cache,) = _of_type(resources, "AWS::ElastiCache::ServerlessCache").values()
    assert cache["Properties"]["KmsKeyId"] and cache["Properties"]["Engine"] == "valkey"
    (topic,) = _of_type(resources, "AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"]
    (key,) = _of_type(resources, "AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True


def _encore_functions(resources: dict[str, Any]) -> dict[str, Any]:
    """Encore's own functions: those with the shared library layer (not CDK's providers: the buckets' auto-delete,
    the web app's publisher)."""
    return {
        k: v
        for k, v in _of_type(resources, "AWS::Lambda::Function").items()
        if any(str(layer.get("Ref", "")).startswith("SharedLibrary") for layer in v["Properties"].get("Layers", []))
    }


def test_every_function_has_its_own_role_tracing_and_log_retention(resources: dict[str, Any]) -> None:
    functions = _encore_functions(resources)
    assert len(functions) >= 5
    layers = _of_type(resources, "AWS::Lambda::LayerVersion")
    dependencies = next(k for k in layers if k.startswith("Dependencies"))
    shared = next(k for k in layers if k.startswith("SharedLibrary"))
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]
    assert len(set(roles)) == len(roles)
    for fn in functions.values():
        props = fn["Properties"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Runtime"].startswith("python3.1")
        group = resources[props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert group["Properties"]["RetentionInDays"] > 0
        assert {layer["Ref"] for layer in props["Layers"]} == {dependencies, shared}  # no file in both: any order


def test_each_alarm_exists_and_notifies_the_topic(resources: dict[str, Any]) -> None:
    (topic_id,) = _of_type(resources, "AWS::SNS::Topic")
    alarms = _of_type(resources, "AWS::CloudWatch::Alarm")
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    names = json.dumps(alarms)
    for metric in ("5XXError", "Latency", "Errors", "Throttles", "DeliveryToS3.DataFreshness", "DeliveryToS3.Success",
                   "glue.driver.aggregate.numFailedTasks", "ExecutionsFailed", "ExecutionsTimedOut",
                   "Invocation5XXErrors", "ModelLatency"):  # fmt: skip
        assert metric in names, metric
    functions = len(_encore_functions(resources)) - 1  # the teardown runs once, at stack deletion
    errors = [a for a in alarms.values() if a["Properties"].get("MetricName") == "Errors"]
    assert len(errors) == functions
    dashboards = _of_type(resources, "AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 1


def _definition(machine: dict[str, Any]) -> dict[str, Any]:
    body = machine["Properties"]["DefinitionString"]
    if isinstance(body, dict):
        parts = body["Fn::Join"][1]
        body = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return json.loads(body)  # type: ignore[no-any-return]


def _task_order(definition: dict[str, Any]) -> list[str]:
    states, order, name = definition["States"], [], definition["StartAt"]
    while name:
        state = states[name]
        if state["Type"] == "Task" and not name.startswith(("describe", "notify")):
            order.append(name)
        # at a Choice, follow the branch that continues the pipeline (promote, endpoint in service)
        name = state["Choices"][0]["Next"] if state["Type"] == "Choice" else state.get("Next")
    return order


def test_state_machines_run_the_pipeline_steps_in_order(resources: dict[str, Any]) -> None:
    machines = {
        m["Properties"]["StateMachineName"]: m for m in _of_type(resources, "AWS::StepFunctions::StateMachine").values()
    }
    nightly = next(v for k, v in machines.items() if k.endswith("-pipeline"))
    charts = next(v for k, v in machines.items() if k.endswith("-pipeline-charts"))
    assert _task_order(_definition(nightly)) == [s.name for s in NIGHTLY]
    assert _task_order(_definition(charts)) == [s.name for s in CHARTS_REFRESH]
    schedules = _of_type(resources, "AWS::Scheduler::Schedule")
    assert len(schedules) == 2


def test_every_method_but_health_and_the_docs_requires_an_api_key(resources: dict[str, Any]) -> None:
    methods = _of_type(resources, "AWS::ApiGateway::Method")
    paths = {lid: res for lid, res in resources.items() if res["Type"] == "AWS::ApiGateway::Resource"}
    keyless = []
    for method in methods.values():
        props = method["Properties"]
        if props["HttpMethod"] == "OPTIONS":
            continue
        if not props.get("ApiKeyRequired"):
            keyless.append(paths[props["ResourceId"]["Ref"]]["Properties"]["PathPart"])
    assert sorted(keyless) == ["docs", "health", "openapi.json"]  # a person opens the docs without a key
    assert len(methods) > 10
    plans = {
        p["Properties"]["UsagePlanName"]: p["Properties"]
        for p in _of_type(resources, "AWS::ApiGateway::UsagePlan").values()
    }
    assert sorted(plans) == ["encore-dev-default", "encore-dev-site"]
    assert plans["encore-dev-default"]["Throttle"]["RateLimit"] > 0
    assert plans["encore-dev-default"]["Quota"]["Period"] == "DAY"
    # every browser of the web app shares the site's key: a wider throttle, no daily quota
    assert plans["encore-dev-site"]["Throttle"]["RateLimit"] > plans["encore-dev-default"]["Throttle"]["RateLimit"]
    assert "Quota" not in plans["encore-dev-site"]


def test_api_stage_logs_and_traces(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {"TracingEnabled": True, "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()})},
    )


def test_glue_jobs_are_glue_5_with_the_shared_library(resources: dict[str, Any]) -> None:
    jobs = _of_type(resources, "AWS::Glue::Job")
    assert len(jobs) == len(GLUE_JOBS) == len([s for s in NIGHTLY if s.kind == "glue"]) + 1  # and import_playlists
    for job in jobs.values():
        props = job["Properties"]
        assert props["GlueVersion"].startswith("5.")
        assert "--extra-py-files" in props["DefaultArguments"]
        assert props["SecurityConfiguration"]


def test_stage_configuration_reaches_the_template(config: EncoreConfig, resources: dict[str, Any]) -> None:
    groups = _of_type(resources, "AWS::Logs::LogGroup")
    assert {g["Properties"].get("RetentionInDays") for g in groups.values()} == {config.deploy.log_retention_days}
    names = {t["Properties"]["TableName"] for t in _of_type(resources, "AWS::DynamoDB::GlobalTable").values()}
    assert config.resources.users_table in names


def test_every_retention_the_configuration_admits_has_a_cdk_value() -> None:
    assert set(RETENTION_NAMES) == set(LOG_RETENTION_DAYS)


def test_cdk_json_names_every_stage() -> None:
    stages = json.loads(Path(CDK_JSON).read_text())["context"]["stages"]
    for stage, overrides in stages.items():
        EncoreConfig.for_stage(stage, overrides)  # each validates against the shared model
