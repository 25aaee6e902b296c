"""WSGI middleware in front of moto: the AWS calls the twin's own services answer, as AWS answers them.

- Glue ``StartJobRun`` / ``GetJobRun`` / ``GetJobRuns`` -> ``encore_local.twin.glue`` (runs the job's script);
- SageMaker ``CreateTrainingJob`` / ``DescribeTrainingJob`` -> ``encore_local.twin.sagemaker`` (runs training);
- Lambda ``Invoke`` -> ``encore_local.twin.lambda_`` (runs the function's code asset).

Everything else goes to moto. Errors are in each service's own wire format (JSON ``__type`` for Glue and
SageMaker, ``x-amzn-ErrorType`` and ``X-Amz-Function-Error`` for Lambda), so boto3 raises what it raises in AWS.
"""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from encore_local.twin import stepfunctions
from encore_local.twin.assembly import Deployment
from encore_local.twin.clock import CLOCK
from encore_local.twin.glue import GlueError, GlueService
from encore_local.twin.iam import Needed, UnknownRequest, denied, needed, principal_of
from encore_local.twin.lambda_ import FunctionError, LambdaService
from encore_local.twin.sagemaker import SageMakerError, TrainingService

TRAINING_CHANNELS_PATH = "/_encore/training-channels"  # POST {"truth": "/a/folder"}: added to every training job
CLOCK_PATH = stepfunctions.CLOCK_PATH
_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


def _answer(start_response: Any, status: str, body: bytes, headers: list[tuple[str, str]]) -> list[bytes]:
    start_response(status, [("Content-Length", str(len(body))), *headers])
    return [body]


def _json_error(start_response: Any, code: str, message: str, content_type: str) -> list[bytes]:
    body = json.dumps({"__type": code, "message": message, "Message": message}).encode()
    return _answer(
        start_response, "400 Bad Request", body, [("Content-Type", content_type), ("x-amzn-ErrorType", code)]
    )


def _refusal(start_response: Any, environ: dict[str, Any], code: str, message: str) -> list[bytes]:
    """An authorization refusal as the called service words it: S3's and the query services' XML, the JSON
    services' ``__type`` (``AccessDeniedException``), SNS's ``AuthorizationError``."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target or environ.get("PATH_INFO", "").startswith("/2015-03-31/functions/"):
        json_code = "AccessDeniedException" if code == "AccessDenied" else code
        body = json.dumps({"__type": json_code, "message": message, "Message": message}).encode()
        headers = [("Content-Type", environ.get("CONTENT_TYPE") or "application/json"), ("x-amzn-ErrorType", json_code)]
        return _answer(start_response, "400 Bad Request" if target else "403 Forbidden", body, headers)
    if code == "AccessDenied" and "/sns/" in environ.get("HTTP_AUTHORIZATION", ""):
        code = "AuthorizationError"
    text = f"<Code>{code}</Code><Message>{escape(message)}</Message>"
    if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):  # SNS, STS, CloudWatch: the query protocol
        xml = f"<ErrorResponse><Error><Type>Sender</Type>{text}</Error><RequestId>twin</RequestId></ErrorResponse>"
    else:  # S3
        xml = f"<Error>{text}<RequestId>twin</RequestId></Error>"
    status = "400 Bad Request" if code == "KMSAccessDenied" else "403 Forbidden"
    return _answer(start_response, status, xml.encode(), [("Content-Type", "text/xml")])


_DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


class TwinRouter:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.glue: GlueService | None = None
        self.training: TrainingService | None = None
        self.lambda_: LambdaService | None = None
        self.deployment: Deployment | None = None
        self.iam_refusals: list[dict[str, str]] = []  # every call refused, for the demo's check and the tests
        self._lock = threading.Lock()
        self._dynamodb_writes = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path in (CLOCK_PATH, TRAINING_CHANNELS_PATH) and environ.get("REQUEST_METHOD") == "POST":
            return self._control(environ, start_response, path)
        refused = self._unauthorized(environ)
        if refused is not None:
            return refused(start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service, _, operation = target.partition(".")
        if service == "AWSGlue" and self.glue is not None:
            return self._json_service(environ, start_response, operation, self.glue.handle, GlueError)
        if service == "SageMaker" and self.training is not None:
            return self._json_service(environ, start_response, operation, self.training.handle, SageMakerError)
        invoke = _INVOKE.match(path)
        if invoke and self.lambda_ is not None and environ.get("REQUEST_METHOD") == "POST":
            return self._invoke(environ, start_response, invoke.group(1))
        return self._moto(environ, start_response, service, operation)

    def _moto(self, environ: dict[str, Any], start_response: Any, service: str, operation: str) -> Any:
        if service == "DynamoDB_20120810" and operation in _DYNAMODB_WRITES:
            # DynamoDB applies a conditional write atomically; moto checks the condition and then writes, and
            # two threads of this server can interleave there (two idempotency records both "created").
            with self._dynamodb_writes:
                return self.app(environ, start_response)
        return self.app(environ, start_response)

    def _unauthorized(self, environ: dict[str, Any]) -> Any:
        """A call by one of the template's roles that its policies do not allow: IAM's refusal, in the service's
        wire format (None: allowed, or the operator's own call). A publish to a KMS-encrypted topic needs the key
        as well (SNS asks KMS for a data key as the publisher), else SNS answers ``KMSAccessDenied``."""
        principal = principal_of(environ.get("HTTP_AUTHORIZATION", ""))
        if principal is None or self.deployment is None:
            return None
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(raw)  # the service reads it next
        try:
            wanted = needed(environ, raw)
        except UnknownRequest as exc:
            message = f"the twin cannot tell which IAM permissions this call needs, so it refuses it: {exc}"
            return self._refuse(environ, "AccessDenied", {"principal": principal, "action": "", "resource": "",
                                                          "message": message})  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None  # malformed: the service answers with its own validation error
        refusal = denied(self.deployment, principal, wanted)
        if refusal is not None:
            return self._refuse(environ, "AccessDenied", refusal)
        topics = [w.resource for w in wanted if w.action == "sns:Publish"]
        key = next((k for stack in self.deployment.stacks if topics and (k := stack.topic_key(topics[0]))), None)
        if key:
            kms = [Needed(action, key) for action in ("kms:GenerateDataKey", "kms:Decrypt")]
            refusal = denied(self.deployment, principal, kms)
            if refusal is not None:
                return self._refuse(environ, "KMSAccessDenied", refusal)
        return None

    def _refuse(self, environ: dict[str, Any], code: str, refusal: dict[str, str]) -> Any:
        with self._lock:
            self.iam_refusals.append(refusal)
        return lambda start_response: _refusal(start_response, environ, code, refusal["message"])

    def _control(self, environ: dict[str, Any], start_response: Any, path: str) -> Any:
        """The twin's own controls (not AWS APIs): the executions' clock, the channels added to training jobs."""
        try:
            wanted = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}")
            if path == CLOCK_PATH:
                CLOCK.set(wanted.get("now"))
            elif self.training is not None:
                self.training.extra_channels = {str(k): Path(v) for k, v in wanted.items()}
        except (ValueError, TypeError, AttributeError) as exc:
            body = json.dumps({"error": f"bad control request: {exc}"}).encode()
            return _answer(start_response, "400 Bad Request", body, [("Content-Type", "application/json")])
        return _answer(start_response, "200 OK", b"{}", [("Content-Type", "application/json")])

    def _json_service(self, environ: dict[str, Any], start_response: Any, operation: str, handle: Any,
                      error: type[GlueError] | type[SageMakerError]) -> Any:  # fmt: skip
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        content_type = environ.get("CONTENT_TYPE") or "application/x-amz-json-1.1"
        try:
            out = handle(operation, json.loads(raw or b"{}"))
        except error as exc:
            return _json_error(start_response, exc.code, exc.message, content_type)
        except (KeyError, TypeError, ValueError) as exc:
            return _json_error(start_response, "InvalidInputException", f"malformed request: {exc}", content_type)
        if out is None:  # not one of ours: moto answers, with the body it would have read
            environ["wsgi.input"] = io.BytesIO(raw)
            return self.app(environ, start_response)
        body = json.dumps(out, default=str).encode()
        return _answer(start_response, "200 OK", body, [("Content-Type", content_type)])

    def _invoke(self, environ: dict[str, Any], start_response: Any, function: str) -> Any:
        assert self.lambda_ is not None
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        payload = json.loads(raw) if raw.strip() else {}
        asynchronous = environ.get("HTTP_X_AMZ_INVOCATION_TYPE") == "Event"
        headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
        service = self.lambda_
        if asynchronous:
            threading.Thread(target=self._invoke_quietly, args=(service, function, payload), daemon=True).start()
            return _answer(start_response, "202 Accepted", b"", headers)
        try:
            result, _ = service.invoke(function, payload)
        except LookupError as exc:
            body = json.dumps({"Type": "User", "message": str(exc)}).encode()
            not_found = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "ResourceNotFoundException")]
            return _answer(start_response, "404 Not Found", body, not_found)
        except FunctionError as exc:
            body = json.dumps(exc.payload).encode()
            return _answer(start_response, "200 OK", body, [*headers, ("X-Amz-Function-Error", "Unhandled")])
        return _answer(start_response, "200 OK", json.dumps(result, default=str).encode(), headers)

    @staticmethod
    def _invoke_quietly(service: LambdaService, function: str, payload: Any) -> None:
        try:
            service.invoke(function, payload)
        except (LookupError, FunctionError):
            return  # an asynchronous invocation's failure goes to the function's log, as Lambda's does
