"""The SageMaker endpoint behind one small interface: ``invoke(InferenceRequest, variant) -> Answer``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from encore.clients import get_client
from encore.models import InferenceRequest, InferenceResponse


@dataclass(frozen=True)
class Answer:
    response: InferenceResponse
    variant: str | None  # the production variant that answered (SageMaker's InvokedProductionVariant)


class ModelUnavailable(Exception):
    """The endpoint did not answer in time, or failed: the caller falls back."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause


class ModelRejected(Exception):
    """The model refused the request (e.g. a track it does not know): not a fault of the endpoint."""


class ModelClient:
    def __init__(self, endpoint: str, timeout_ms: int, region: str | None = None) -> None:
        self.endpoint, self.timeout_s, self.region = endpoint, timeout_ms / 1000, region

    def invoke(self, request: InferenceRequest, variant: str | None = None) -> Answer:
        """``variant``: the production variant to ask (a listener in an online test stays with one model);
        ``None`` lets SageMaker choose by the variants' weights."""
        client = get_client("sagemaker-runtime", self.region, read_timeout=self.timeout_s)
        body = request.model_dump_json(exclude_none=True)
        try:
            try:
                resp = self._call(client, body, variant)
            except ClientError as exc:
                # No such variant: a test has just ended (or its endpoint update is still under way) while this
                # instance's view of it is up to a minute old. SageMaker routes the request instead.
                if not variant or exc.response["Error"]["Code"] != "ValidationError":
                    raise
                resp = self._call(client, body, None)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ModelError":
                raise ModelRejected(exc.response["Error"].get("Message", "")) from exc
            raise ModelUnavailable("endpoint_error", f"{code}: {exc}") from exc
        except BotoCoreError as exc:  # read timeout, connection refused
            cause = "endpoint_timeout" if "timeout" in type(exc).__name__.lower() else "endpoint_error"
            raise ModelUnavailable(cause, str(exc)) from exc
        answer = InferenceResponse.model_validate_json(resp["Body"].read())  # a third of json.loads + validate
        return Answer(answer, resp.get("InvokedProductionVariant"))

    def _call(self, client: Any, body: str, variant: str | None) -> dict[str, Any]:
        target = {"TargetVariant": variant} if variant else {}
        return client.invoke_endpoint(  # type: ignore[no-any-return]
            EndpointName=self.endpoint, ContentType="application/json", Accept="application/json", Body=body, **target
        )
