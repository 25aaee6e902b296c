"""The twin runs what `cdk synth` produced, so the deploy issue's defects fail here, each with a message naming it:
a Glue job without its library, a function without its layer, a training task without ``.sync``, a VPC function
without network-interface rights, a publisher to the encrypted topic without the key."""

from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from encore.config import EncoreConfig
from encore_local.errors import UsageError
from encore_local.jobs import JobFailed, run_job
from encore_local.pipeline import run_state_machine
from encore_local.twin.assembly import ACCOUNT, TwinStack
from encore_local.twin.iam import client_for
from encore_local.twin.lambda_ import FunctionError, refused_at_creation
from encore_local.twin.services import TwinServices

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _stack(twin_services: TwinServices) -> TwinStack:
    return next(s for s in twin_services.deployment.stacks if s.stack_name == "Encore-local")


def _take_away(stack: TwinStack, role_id: str, actions: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The role's statements without those naming ``actions`` (a prefix), as if the template had left them out."""
    original = stack.assembly.statements_of

    def without(role: str) -> list[dict[str, Any]]:
        kept = [s for s in original(role) if actions not in json.dumps(s.get("Action", ""))]
        return kept if role == role_id else original(role)

    monkeypatch.setattr(stack.assembly, "statements_of", without)
    monkeypatch.setattr(stack, "_read", {})  # the policies the twin had resolved and cached


def _function_role(stack: TwinStack, logical_id: str) -> str:
    return next(f.role for f in stack.functions().values() if f.logical_id.startswith(logical_id))


def test_every_call_of_a_role_is_authorized_against_its_policies(twin_services: TwinServices) -> None:
    """A call the role's policies do not allow is refused as IAM refuses it, naming principal, action, resource."""
    stack = _stack(twin_services)
    serving = _function_role(stack, "ApiServingFunction")  # reads; only the events function writes to Firehose
    firehose = client_for("firehose", twin_services.environment_of(serving))
    with pytest.raises(ClientError) as refused:
        firehose.put_record(DeliveryStreamName="encore-local-events", Record={"Data": b"{}"})
    error = refused.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "firehose:PutRecord" in error["Message"] and serving in error["Message"]
    assert f"arn:aws:firehose:{stack.region}:{ACCOUNT}:deliverystream/encore-local-events" in error["Message"]
    recorded = twin_services.iam_refusals[-1]  # kept for the demo's check and its report
    assert recorded["principal"] == serving and recorded["action"] == "firehose:PutRecord"
    s3 = client_for("s3", twin_services.environment_of(serving))
    with pytest.raises(ClientError) as unknown:  # a call the twin cannot classify is refused, not waved through
        s3.get_bucket_policy(Bucket=stack.output("LakeBucket"))
    assert "cannot tell which IAM permissions" in unknown.value.response["Error"]["Message"]


def test_handing_a_role_to_sagemaker_needs_pass_role(
    twin_services: TwinServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _stack(twin_services)
    nightly = next(m for m in stack.state_machines().values() if m.name.endswith("-pipeline"))
    _take_away(stack, nightly.role.split(".", 1)[1], "iam:PassRole", monkeypatch)
    sagemaker = client_for("sagemaker", twin_services.environment_of(nightly.role))
    training_role = next(stack.arn(lid) for lid in stack.of_type("AWS::IAM::Role") if lid.startswith("ModelTraining"))
    with pytest.raises(ClientError) as refused:
        sagemaker.create_training_job(
            TrainingJobName="pass-role-check",
            RoleArn=training_role,
            AlgorithmSpecification={"TrainingImage": "image", "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": f"s3://{stack.output('LakeBucket')}/models/"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            StoppingCondition={"MaxRuntimeInSeconds": 60},
        )
    assert "iam:PassRole" in refused.value.response["Error"]["Message"]
    assert training_role in refused.value.response["Error"]["Message"]


def test_the_twin_deployed_the_synthesized_stack(twin_services: TwinServices, config: EncoreConfig) -> None:
    stack = _stack(twin_services)
    assert config.resources.lake_bucket == stack.output("LakeBucket")  # the name the twin gave the stack's bucket
    sfn = twin_services.client("stepfunctions")
    for machine in stack.state_machines().values():  # the definitions as synthesized, intrinsics resolved
        described = sfn.describe_state_machine(stateMachineArn=machine.arn)
        assert json.loads(described["definition"]) == json.loads(machine.definition)
        assert "Fn::" not in described["definition"] and described["roleArn"] == machine.role_arn
    for fn in stack.functions().values():  # functions run from their staged code assets
        assert fn.code.is_dir() and fn.code.parent == stack.assembly.out_dir


def test_a_glue_job_without_its_library_fails_naming_the_missing_module(
    twin_services: TwinServices, config: EncoreConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = twin_services.deployment.glue_jobs()
    job = next(j for j in jobs.values() if j.name.endswith("build-charts") and j.name.startswith(config.name_prefix))
    shipped = job.extra_py_files[0]
    partial = tmp_path / "library-without-encore_spark.zip"
    with zipfile.ZipFile(shipped) as full, zipfile.ZipFile(partial, "w") as out:
        for name in full.namelist():
            if not name.startswith("encore_spark/"):
                out.writestr(name, full.read(name))
    broken = dataclasses.replace(job, extra_py_files=[partial])
    monkeypatch.setattr(twin_services.deployment, "glue_jobs", lambda: {**jobs, job.name: broken})
    with pytest.raises(JobFailed) as failed:
        run_job("build_charts", config, run_time="2026-09-11T06:00:00Z")
    assert "No module named 'encore_spark'" in str(failed.value)
    assert "the Glue job does not ship it" in str(failed.value)


def test_a_function_without_the_shared_layer_fails_to_import_its_handler(
    twin_services: TwinServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    functions = twin_services.deployment.functions()
    gate = next(fn for fn in functions.values() if "ModelGate" in fn.logical_id and fn.name.startswith("Encore-local"))
    dependencies_only = [p for p in gate.layers if (p / "python" / "pydantic").exists()]
    assert dependencies_only and len(dependencies_only) < len(gate.layers)
    broken = dataclasses.replace(gate, name=f"{gate.name}-without-shared-layer", layers=dependencies_only)
    monkeypatch.setattr(twin_services.deployment, "function", lambda name: broken)
    with pytest.raises(FunctionError) as failed:
        twin_services.lambda_.invoke(broken.name, {})
    assert failed.value.payload["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'encore'" in failed.value.payload["errorMessage"]


def _train_only(twin_services: TwinServices, resource: str, name: str) -> str:
    """A state machine holding just the nightly definition's training state, with ``resource``."""
    stack = _stack(twin_services)
    nightly = next(m for m in stack.state_machines().values() if m.name.endswith("-pipeline"))
    train = json.loads(nightly.definition)["States"]["train"]
    train = {k: v for k, v in train.items() if k not in ("Next", "Catch")} | {"Resource": resource, "End": True}
    train["Parameters"] = dict(train["Parameters"], **{"TrainingJobName.$": "$$.Execution.Name"})
    sfn = twin_services.client("stepfunctions")
    definition = json.dumps({"StartAt": "train", "States": {"train": train}})
    return str(sfn.create_state_machine(name=name, definition=definition, roleArn=nightly.role_arn)["stateMachineArn"])


def test_a_training_task_without_sync_fails_where_its_artifact_is_read(
    twin_services: TwinServices, config: EncoreConfig
) -> None:
    _train_only(twin_services, "arn:aws:states:::sagemaker:createTrainingJob", "defect-train-without-sync")
    run = run_state_machine(config, "defect-train-without-sync", name="defect-no-sync")
    assert run.status == "FAILED"
    train = next(s for s in run.states if s["state"] == "train")
    assert train["error"] == "States.Runtime"
    assert "ModelArtifacts.S3ModelArtifacts" in train["cause"]


def test_with_sync_the_task_waits_for_the_job_and_reports_how_it_ended(
    twin_services: TwinServices, config: EncoreConfig
) -> None:
    _train_only(twin_services, "arn:aws:states:::sagemaker:createTrainingJob.sync", "train-with-sync")
    run = run_state_machine(config, "train-with-sync", name="with-sync")
    train = next(s for s in run.states if s["state"] == "train")
    job = twin_services.training.jobs["with-sync"]
    assert job.status in ("Completed", "Failed")  # it waited for the job to end either way
    if job.status == "Failed":
        assert train["error"] == "SageMaker.TrainingJobFailed" and train["cause"] == job.failure
    else:
        assert run.status == "SUCCEEDED"


def test_waiting_on_a_training_job_needs_the_managed_rule(
    twin_services: TwinServices, config: EncoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``.sync`` waits through EventBridge: Step Functions sets up its managed rule as the execution's role."""
    stack = _stack(twin_services)
    nightly = next(m for m in stack.state_machines().values() if m.name.endswith("-pipeline"))
    _take_away(stack, nightly.role.split(".", 1)[1], "events:", monkeypatch)
    _train_only(twin_services, "arn:aws:states:::sagemaker:createTrainingJob.sync", "train-without-rule")
    run = run_state_machine(config, "train-without-rule", name="without-rule")
    train = next(s for s in run.states if s["state"] == "train")
    assert run.status == "FAILED" and "events:PutRule" in train["cause"]
    assert "rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule" in train["cause"]


def test_a_vpc_function_whose_role_cannot_manage_network_interfaces_is_refused(
    twin_services: TwinServices, tmp_path: Path
) -> None:
    stack = _stack(twin_services)
    out = tmp_path / "cdk.out"
    out.mkdir()
    for name in ("manifest.json", *(p.name for p in stack.assembly.out_dir.glob("*.json"))):
        shutil.copy(stack.assembly.out_dir / name, out / name)
    template_file = next(out.glob("*.template.json"))
    template: dict[str, Any] = json.loads(template_file.read_text())
    for res in template["Resources"].values():
        if res["Type"] == "AWS::IAM::Policy":
            statements = res["Properties"]["PolicyDocument"]["Statement"]
            statements[:] = [s for s in statements if s.get("Sid") != "NetworkInterfacesInTheVpc"]
    template_file.write_text(json.dumps(template))
    problems = refused_at_creation(TwinStack.load(out))
    assert problems and all("does not have permissions to manage network interfaces on EC2" in p for p in problems)
    assert any("ec2:CreateNetworkInterface" in p for p in problems)
    assert refused_at_creation(stack) == []


def test_publishing_to_the_encrypted_topic_needs_the_key(
    twin_services: TwinServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _stack(twin_services)
    nightly = next(m for m in stack.state_machines().values() if m.name.endswith("-pipeline"))
    topic = next(stack.arn(lid) for lid in stack.of_type("AWS::SNS::Topic"))
    sns = client_for("sns", twin_services.environment_of(nightly.role))
    sns.publish(TopicArn=topic, Message="the role that publishes failures may")
    role_id = nightly.role.split(".", 1)[1]
    _take_away(stack, role_id, "kms:", monkeypatch)
    with pytest.raises(ClientError) as refused:
        sns.publish(TopicArn=topic, Message="without the key it may not")
    assert refused.value.response["Error"]["Code"] == "KMSAccessDenied"
    assert "kms:GenerateDataKey" in refused.value.response["Error"]["Message"]
    assert role_id in refused.value.response["Error"]["Message"]


def test_a_stack_that_would_not_deploy_is_not_deployed(twin_services: TwinServices, monkeypatch: Any) -> None:
    monkeypatch.setattr("encore_local.twin.services.refused_at_creation", lambda stack: ["CreateFunction X: refused"])
    with pytest.raises(UsageError, match="would not deploy: CreateFunction X"):
        twin_services.deploy("local")


def test_the_pipelines_failure_notice_reaches_the_encrypted_topic(
    twin_services: TwinServices, config: EncoreConfig
) -> None:
    """The nightly definition's own "notify failure" state, run as the nightly's role: SNS must accept it."""
    stack = _stack(twin_services)
    nightly = next(m for m in stack.state_machines().values() if m.name.endswith("-pipeline"))
    notify = json.loads(nightly.definition)["States"]["notify failure"]
    notify = {k: v for k, v in notify.items() if k != "Next"} | {"End": True}
    definition = json.dumps({"StartAt": "notify failure", "States": {"notify failure": notify}})
    twin_services.client("stepfunctions").create_state_machine(
        name="notify-only", definition=definition, roleArn=nightly.role_arn
    )
    failure = {"error": {"Error": "States.TaskFailed", "Cause": "a step failed"}}
    run = run_state_machine(config, "notify-only", name="a-failure-to-report", execution_input=failure)
    assert run.status == "SUCCEEDED", run.failure()
