"""The SageMaker endpoint behind one small interface: ``invoke(InferenceRequest) -> InferenceResponse``."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from encore.clients import get_client
from encore.models import InferenceRequest, InferenceResponse


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

    def invoke(self, request: InferenceRequest) -> InferenceResponse:
        client = get_client("sagemaker-runtime", self.region, read_timeout=self.timeout_s)
        try:
            resp = client.invoke_endpoint(
                EndpointName=self.endpoint,
                ContentType="application/json",
                Accept="application/json",
                Body=request.model_dump_json(exclude_none=True),
            )
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ModelError":
                raise ModelRejected(exc.response["Error"].get("Message", "")) from exc
            raise ModelUnavailable("endpoint_error", f"{code}: {exc}") from exc
        except BotoCoreError as exc:  # read timeout, connection refused
            cause = "endpoint_timeout" if "timeout" in type(exc).__name__.lower() else "endpoint_error"
            raise ModelUnavailable(cause, str(exc)) from exc
        return InferenceResponse.model_validate(json.loads(resp["Body"].read()))
