"""The operations view's data: what the endpoint serves, every gate decision with both reports, and the
pipelines' recent executions (``GET /v1/ops/...``).

Read-only, from what the pipeline already keeps: ``models/serving.json`` and ``models/decisions/<version>.json``
in the lake (``encore.promotion`` writes them) and Step Functions' execution history. None of it is about a
listener. The ``ops`` function answers these routes (outside the VPC: the serving function's private subnets
have no way to Step Functions); the serving function's OpenAPI document describes them (:func:`described`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, Field

from encore.clients import get_client
from encore.errors import NotFound
from encore.openapi import answers
from encore.promotion import METRIC, SERVING_KEY
from encore.stores import read_json

PIPELINES_VARIABLE = "PIPELINE_ARNS"  # {"nightly": <state machine ARN>, "charts": <ARN>}, set by the stack
VERSION = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
_READERS = 8  # decision files read at once
NEXT_METRIC = "hit_rate@10"


class RunningTest(BaseModel):
    challenger: str = Field(description="the model version on test beside the serving model")
    share: float = Field(description="the challenger's share of listeners")
    started_at: int = Field(description="epoch seconds")


class ServingModel(BaseModel):
    version: str
    promoted_at: int | None = Field(None, description="epoch seconds")
    metrics: dict[str, float] = Field(default_factory=dict, description="its home metrics when it was promoted")
    test: RunningTest | None = Field(None, description="the online test running on the endpoint, if any")

    @classmethod
    def of(cls, record: dict[str, Any]) -> ServingModel:
        test = record.get("test")
        running = (
            RunningTest(challenger=test["challenger"]["version"], share=test["share"], started_at=test["started_at"])
            if test
            else None
        )
        return cls.model_validate({k: v for k, v in record.items() if k != "test"} | {"test": running}, strict=False)


class OnlineJudgment(BaseModel):
    action: str = Field(description="promote, keep or extend")
    reason: str
    confidence: float | None = Field(None, description="1 - p of the two-proportion test")
    champion_rate: float = Field(description="the champion's play-through rate over the test")
    challenger_rate: float
    days: int = Field(description="closed days counted")


class DecisionSummary(BaseModel):
    version: str
    decided_at: int | None = Field(None, description="epoch seconds")
    promote: bool
    reason: str
    serving_version: str | None = Field(None, description="what served when the gate decided")
    home_ndcg: dict[str, float] = Field(description=f"home {METRIC} of each model in the candidate's report")
    next_hit_rate: dict[str, float] = Field(description=f"next-song {NEXT_METRIC} of each model in that report")
    online: OnlineJudgment | None = Field(None, description="the online test's latest judgment of this model")


class ModelsView(BaseModel):
    serving: ServingModel | None = Field(description="what the endpoint serves; null before the first promotion")
    decisions: list[DecisionSummary] = Field(description="the gate's decisions, newest first")
    total: int = Field(description="decisions kept in the lake (the newest `limit` are listed)")


class ReportOf(BaseModel):
    version: str
    report: dict[str, Any] | None = Field(description="its evaluation report; null when no decision file has it")
    metrics: dict[str, Any] = Field(default_factory=dict)


class DecisionDetail(BaseModel):
    version: str
    decided_at: int | None = None
    decision: dict[str, Any] = Field(description="the gate's decision: promote, reason, the NDCG figures compared")
    candidate: dict[str, Any] = Field(description="the candidate's evaluation report")
    serving: ReportOf | None = Field(description="the model serving at the time, with its own report")


class Execution(BaseModel):
    pipeline: str = Field(description="nightly | charts")
    name: str
    status: str = Field(description="RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED")
    started_at: datetime
    stopped_at: datetime | None = None
    error: str | None = Field(None, description="for an execution that did not succeed: its error")
    cause: str | None = Field(None, description="and its cause, the first 500 characters")


class ExecutionsView(BaseModel):
    executions: list[Execution] = Field(description="newest first, across the pipelines")


def _summary(version: str, record: dict[str, Any]) -> DecisionSummary:
    decision, candidate = record.get("decision", {}), record.get("candidate", {})
    return DecisionSummary(
        version=version,
        decided_at=record.get("decided_at"),
        promote=bool(decision.get("promote")),
        reason=str(decision.get("reason", "")),
        serving_version=decision.get("serving_version"),
        home_ndcg={name: float(m[METRIC]) for name, m in candidate.get("home", {}).items() if METRIC in m},
        next_hit_rate={
            name: float(m[NEXT_METRIC]) for name, m in candidate.get("next", {}).items() if NEXT_METRIC in m
        },
        online=_judgment(record.get("online")),
    )


def _judgment(online: list[dict[str, Any]] | None) -> OnlineJudgment | None:
    if not online:
        return None
    last = online[-1]
    return OnlineJudgment(
        action=last["action"],
        reason=last["reason"],
        confidence=last.get("confidence"),
        champion_rate=last["champion"]["rate"],
        challenger_rate=last["challenger"]["rate"],
        days=last["days"],
    )


class OperationsStore:
    """The lake's model records and the pipelines' executions, read with the ops function's role."""

    def __init__(self, bucket: str, models_prefix: str, pipelines: dict[str, str], region: str | None) -> None:
        self.bucket, self.prefix, self.pipelines, self.region = bucket, models_prefix, pipelines, region

    @property
    def _s3(self) -> Any:
        return get_client("s3", self.region)

    def _read(self, key: str) -> dict[str, Any] | None:
        return read_json(self._s3, self.bucket, key)

    def _decision_keys(self) -> list[str]:
        """Every decision file, newest first (a version is a training job's name: its time is the file's)."""
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._decisions)
        found = [o for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".json")]
        return [o["Key"] for o in sorted(found, key=lambda o: (o["LastModified"], o["Key"]), reverse=True)]

    @property
    def _decisions(self) -> str:
        return f"{self.prefix}decisions/"

    def serving(self) -> ServingModel | None:
        record = self._read(self.prefix + SERVING_KEY)
        return None if record is None else ServingModel.of(record)

    def models(self, limit: int) -> ModelsView:
        keys = self._decision_keys()
        newest = keys[:limit]
        with ThreadPoolExecutor(_READERS) as pool:
            records = list(pool.map(self._read, newest))
        decisions = [
            _summary(key.removeprefix(self._decisions).removesuffix(".json"), record)
            for key, record in zip(newest, records, strict=True)
            if record is not None  # removed between the listing and the read
        ]
        return ModelsView(serving=self.serving(), decisions=decisions, total=len(keys))

    def decision(self, version: str) -> DecisionDetail:
        record = self._read(f"{self._decisions}{version}.json")
        if record is None:
            raise NotFound(f"the gate has no decision on model version '{version}'")
        serving = None
        before = record.get("serving")
        if before:
            earlier = self._read(f"{self._decisions}{before['version']}.json")
            serving = ReportOf(
                version=before["version"],
                report=earlier.get("candidate") if earlier else None,
                metrics=before.get("metrics", {}),
            )
        return DecisionDetail(
            version=version,
            decided_at=record.get("decided_at"),
            decision=record.get("decision", {}),
            candidate=record.get("candidate", {}),
            serving=serving,
        )

    def executions(self, limit: int) -> ExecutionsView:
        sfn = get_client("stepfunctions", self.region)
        found: list[Execution] = []
        for pipeline, arn in self.pipelines.items():
            listed = sfn.list_executions(stateMachineArn=arn, maxResults=limit).get("executions", [])
            for item in listed:
                found.append(
                    Execution(
                        pipeline=pipeline,
                        name=item["name"],
                        status=item["status"],
                        started_at=item["startDate"],
                        stopped_at=item.get("stopDate"),
                    )
                )
        found = sorted(found, key=lambda e: e.started_at, reverse=True)[:limit]
        for execution in found:
            if execution.status not in ("RUNNING", "SUCCEEDED"):
                described = sfn.describe_execution(executionArn=self._execution_arn(execution))
                execution.error = described.get("error")
                execution.cause = (described.get("cause") or "")[:500] or None
        return ExecutionsView(executions=found)

    def _execution_arn(self, execution: Execution) -> str:
        machine = self.pipelines[execution.pipeline]
        return machine.replace(":stateMachine:", ":execution:") + f":{execution.name}"


Limit = Annotated[int, Query(ge=1, le=100, description="items to return")]
Version = Annotated[str, Path(pattern=VERSION, description="a model version (its training job's name)")]


def declare(router: BaseRouter, store: Callable[[], OperationsStore]) -> None:
    """The operations routes on ``router``, answered from ``store()`` (the declaration both functions share)."""

    @router.get(
        "/v1/ops/models",
        summary="The serving model and the gate's decisions",
        description="What the endpoint serves, and the promotion gate's decisions, newest first, with each "
        "candidate's offline metrics (home NDCG@10 and next-song hit rate@10 of every model it was compared with).",
        responses=answers(ModelsView, 400),
    )
    def handle_get_models(limit: Limit = 30) -> ModelsView:
        return store().models(limit)

    @router.get(
        "/v1/ops/models/<version>",
        summary="One gate decision with both reports",
        description="The decision, the candidate's evaluation report and the report of the model serving then.",
        responses=answers(DecisionDetail, 400, 404),
    )
    def handle_get_model(version: Version) -> DecisionDetail:
        return store().decision(version)

    @router.get(
        "/v1/ops/executions",
        summary="The pipelines' recent executions",
        description="The nightly and charts state machines' executions, newest first; a failed one with its error.",
        responses=answers(ExecutionsView, 400),
    )
    def handle_get_executions(limit: Limit = 20) -> ExecutionsView:
        return store().executions(limit)


def described() -> APIGatewayRestResolver:
    """A resolver that only describes the routes, for the serving function's OpenAPI document."""
    resolver = APIGatewayRestResolver(enable_validation=True)

    def nowhere() -> OperationsStore:
        raise NotImplementedError("documentation only: API Gateway sends /v1/ops/* to the ops function")

    declare(resolver, nowhere)
    return resolver
