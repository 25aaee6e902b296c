"""The twin's Step Functions: the synthesized state machine definitions, executed by moto's Amazon States Language
interpreter, their tasks calling the twin's services as the state machine's role.

moto's interpreter is switched on for the twin's moto (``execute_state_machine``), and four things are the
twin's own:

- **Task credentials and endpoint**: the interpreter's AWS clients reach the twin's moto with the credentials of
  the execution's role (moto's use fixed ones on port 5000), so the twin's services see the calls as that role's.
- **``glue:startJobRun.sync``**: moto's fails on a missing callback endpoint; the twin's polls ``GetJobRun`` until
  the run ends (Glue's terminal states: SUCCEEDED, or FAILED/TIMEOUT/ERROR/STOPPED as ``States.TaskFailed``).
- **``sagemaker:createTrainingJob(.sync)``**: moto has none; the request-response form answers with
  ``CreateTrainingJob``'s output only (``TrainingJobArn``), the ``.sync`` form polls ``DescribeTrainingJob`` until
  Completed (Failed or Stopped: ``SageMaker.TrainingJobFailed`` with the job's ``FailureReason``), as AWS does.
- **The clock**: ``Wait`` states last ``wait_scale`` of their time, and the twin's clock (``CLOCK``, set through
  ``POST /_encore/clock``; executions' start and stop dates read it) can run at a notional time, so that a
  simulated history is as recent to the executions
  and to Firehose's arrival prefixes as a real one would be; both are the twin's, stated in docs/twin.md.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core.config import default_user_config
from moto.stepfunctions.parser import models as parser_models
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_factory as service_factory,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue import (
    StateTaskServiceGlue,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.backend import execution as parser_execution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from encore_local.twin.clock import CLOCK

POLL_S = 0.05  # how often a .sync task asks whether its work has ended
CLOCK_PATH = "/_encore/clock"  # the twin's control: POST {"now": ISO time or null}


_credentials_for_role: Callable[[str], tuple[str, str]] = lambda role_arn: ("testing", "testing")  # noqa: E731
_endpoint = ""


class _SyncPolling:
    """``.sync`` as AWS runs it: start, then poll the service until the work ends (moto's callback loop dereferences
    an endpoint that only ``.waitForTaskToken`` tasks have)."""

    def _eval_integration_pattern(self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any],
                                  state_credentials: Any) -> None:  # fmt: skip
        task_output = env.stack.pop()
        self.timeout.eval(env=env)  # type: ignore[attr-defined]
        timeout_seconds = env.stack.pop()
        deadline = time.monotonic() + (timeout_seconds or 99_999_999)
        env.stack.append(task_output)
        resolver = self._build_sync_resolver(env, resource_runtime_part, normalised_parameters, state_credentials)  # type: ignore[attr-defined]
        while env.is_running():
            result = resolver()
            if result is not None:
                env.stack.append(result)
                return
            if time.monotonic() > deadline:  # the task's TimeoutSeconds: States.Timeout
                raise FailureEventException(self._get_timed_out_failure_event(env))  # type: ignore[attr-defined]
            time.sleep(POLL_S)


class _TwinGlue(_SyncPolling, StateTaskServiceGlue):
    pass


SAGEMAKER_SYNC_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"


class _TwinSageMaker(_SyncPolling, StateTaskServiceCallback):
    def __init__(self) -> None:
        super().__init__(supported_integration_patterns={ResourceCondition.Sync})  # type: ignore[arg-type]

    def _get_supported_parameters(self) -> set[str] | None:
        """The request's members, for the one SageMaker integration the twin runs (others fail at creation)."""
        if self.resource.api_action.lower() != "createtrainingjob":
            return None
        model = botocore.session.get_session().get_service_model("sagemaker")
        return set(model.operation_model("CreateTrainingJob").input_shape.members)

    def _client(self, resource_runtime_part: Any, state_credentials: Any) -> Any:
        return _boto_client(resource_runtime_part.region, "sagemaker", state_credentials)

    def _eval_service_task(self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any],
                           state_credentials: Any) -> None:  # fmt: skip
        client = self._client(resource_runtime_part, state_credentials)
        response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        if self.resource.api_action.lower() == "createtrainingjob":
            response["__name"] = normalised_parameters.get("TrainingJobName")
        env.stack.append(response)

    def _after_eval_execution(self, env: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(env.stack[-1], dict):
            env.stack[-1].pop("__name", None)
        super()._after_eval_execution(env, *args, **kwargs)

    def _build_sync_resolver(self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any],
                             state_credentials: Any) -> Callable[[], Any]:  # fmt: skip
        started = env.stack.pop()
        name = started.get("__name") or normalised_parameters["TrainingJobName"]
        client = self._client(resource_runtime_part, state_credentials)
        # Step Functions learns of the job's end through a managed EventBridge rule, which it sets up as the
        # execution's role: without events:PutRule/PutTargets/DescribeRule on it, the task cannot wait.
        events = _boto_client(resource_runtime_part.region, "events", state_credentials)
        pattern = {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Training Job State Change"]}
        events.put_rule(Name=SAGEMAKER_SYNC_RULE, EventPattern=json.dumps(pattern), State="ENABLED")
        # The rule targets Step Functions itself; nothing in the twin delivers to it (the task polls instead).
        target = f"arn:aws:states:{resource_runtime_part.region}:{resource_runtime_part.account}:managed-rule"
        events.put_targets(Rule=SAGEMAKER_SYNC_RULE, Targets=[{"Id": "StepFunctions", "Arn": target}])
        events.describe_rule(Name=SAGEMAKER_SYNC_RULE)

        def resolve() -> Any:
            job = client.describe_training_job(TrainingJobName=name)
            job.pop("ResponseMetadata", None)
            status = job["TrainingJobStatus"]
            if status in {"InProgress", "Stopping"}:
                return None
            if status == "Completed":
                return json.loads(to_json_str(job))
            raise FailureEventException(
                self._failed(env, "SageMaker.TrainingJobFailed", job.get("FailureReason", status))
            )

        return resolve

    def _failed(self, env: Any, error: str, cause: str) -> FailureEvent:
        details = TaskFailedEventDetails(
            error=error, cause=cause, resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type()
        )
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(error),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(taskFailedEventDetails=details),  # type: ignore[typeddict-item]
        )

    def _from_error(self, env: Any, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError):  # the request was refused: SageMaker.<error code>, as AWS names it
            return self._failed(
                env, f"SageMaker.{ex.response['Error']['Code']}", ex.response["Error"].get("Message", "")
            )
        return super()._from_error(env, ex)


_moto_service_for: Callable[[str], Any] = service_factory.state_task_service_for


def _service_for(service_name: str) -> Any:
    if service_name == "glue":
        return _TwinGlue()  # type: ignore[no-untyped-call]
    if service_name == "sagemaker":
        return _TwinSageMaker()
    return _moto_service_for(service_name)


def _boto_client(region: str, service: str, state_credentials: Any = None) -> Any:
    role_arn = getattr(state_credentials, "role_arn", None) or ""
    key, secret = _credentials_for_role(role_arn)
    return boto3.client(
        service_name=service,
        region_name=region,
        endpoint_url=_endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=_TASK_CLIENT_CONFIG,
    )


_TASK_CLIENT_CONFIG = Config(
    parameter_validation=False,
    retries={"max_attempts": 0, "total_max_attempts": 1},
    connect_timeout=600,
    read_timeout=600,
)


def _scaled_wait(self: WaitFunction, env: Any, wait_seconds: int) -> None:
    if wait_seconds > 0:
        env.program_state_event.wait(wait_seconds * CLOCK.wait_scale)


class _ClockedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz: _dt.tzinfo | None = None) -> Any:
        return CLOCK.now()


def _with_iso_start_time(build: Callable[..., Any]) -> Callable[..., Any]:
    """``$$.Execution.StartTime`` is an ISO 8601 string in AWS (``2026-09-15T00:00:00.000Z``); moto puts a datetime
    there, which a task's parameters cannot carry to an AWS call."""

    def build_environment(self: ExecutionWorker) -> Any:
        env = build(self)
        execution = env.states.context_object.context_object_data["Execution"]
        start = execution["StartTime"]
        if isinstance(start, _dt.datetime):
            execution["StartTime"] = start.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return env

    setattr(build_environment, "twin", True)  # noqa: B010 - a mark on a function object
    return build_environment


def enable(endpoint: str, credentials_for_role: Callable[[str], tuple[str, str]]) -> tuple[Any, ...]:
    """Switch on the interpreter for this process's moto and put the twin's pieces in (idempotent); tasks call
    ``endpoint``. Returns what ``restore`` needs to give tasks the previous endpoint back (a second twin in one
    process, stopped before the first)."""
    global _endpoint, _credentials_for_role
    previous = (_endpoint, _credentials_for_role)
    _endpoint, _credentials_for_role = endpoint, credentials_for_role
    default_user_config["stepfunctions"]["execute_state_machine"] = True
    # moto's internals, replaced by name (setattr: they are not part of its typed interface).
    setattr(state_task_factory, "state_task_service_for", _service_for)  # noqa: B010
    # The interpreter's modules make their AWS clients with boto_client_for: those imported already get the
    # twin's through their own name for it, those imported later from its module.
    for name, module in [("", boto_client), *sys.modules.items()]:
        ours = name.startswith("moto.stepfunctions.parser") or module is boto_client
        if ours and hasattr(module, "boto_client_for"):
            setattr(module, "boto_client_for", _boto_client)  # noqa: B010
    setattr(WaitFunction, "_wait_interval", _scaled_wait)  # noqa: B010
    build = ExecutionWorker._get_evaluation_environment
    if not getattr(build, "twin", False):
        setattr(ExecutionWorker, "_get_evaluation_environment", _with_iso_start_time(build))  # noqa: B010
    clocked = type("datetime", (), {"datetime": _ClockedDatetime, "timezone": _dt.timezone})
    setattr(parser_models, "datetime", clocked)  # noqa: B010
    setattr(parser_execution, "datetime", clocked)  # noqa: B010  # the stop date, on the same clock as the start
    return previous


def restore(previous: tuple[Any, ...]) -> None:
    global _endpoint, _credentials_for_role
    _endpoint, _credentials_for_role = previous


def history(client: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution, oldest first."""
    events: list[dict[str, Any]] = []
    for page in client.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def state_times(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each state the execution entered, in order, with when it started, how long it took and how it ended."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            details = event["stateEnteredEventDetails"]
            current = {"state": details["name"], "type": kind.removesuffix("StateEntered"),
                       "entered": event["timestamp"], "status": "running"}  # fmt: skip
            out.append(current)
        elif kind.endswith("StateExited") and current is not None:
            current["seconds"] = (event["timestamp"] - current["entered"]).total_seconds()
            current["status"] = current.get("status_override", "succeeded")
            current.pop("status_override", None)
        elif kind in ("TaskFailed", "ExecutionFailed") and current is not None:
            details = event.get("taskFailedEventDetails") or event.get("executionFailedEventDetails") or {}
            current["status_override"] = "failed"
            current["error"] = details.get("error")
            current["cause"] = details.get("cause")
            if kind == "ExecutionFailed":
                current["status"] = "failed"
    for state in out:
        state.pop("status_override", None)
        state["entered"] = state["entered"].isoformat()
    return out
