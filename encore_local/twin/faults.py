"""The twin's injected faults: answers AWS gives when a service is past its capacity, from inside the twin."""

from __future__ import annotations

import io
import json
import random
import threading
from typing import Any

import requests

FAULTS_PATH = "/_encore/faults"


class FaultInjector:
    """WSGI middleware in front of moto: answers as AWS does when a service is past its capacity.

    ``POST /_encore/faults`` sets the shares (``{}`` clears them):

    - ``{"DynamoDB": 0.5}`` answers half the calls whose ``X-Amz-Target`` starts with ``DynamoDB`` with
      ``ProvisionedThroughputExceededException``;
    - ``{"Firehose": 0.3}`` fails 30% of the records of each ``PutRecordBatch`` with ``ServiceUnavailableException``
      in their ``RequestResponses`` entry (``FailedPutCount`` says how many); the others are delivered.

    Other services are refused: their errors have other shapes. The clients see the very answers AWS sends, so
    their retries, backoff and the application's fallbacks run as they would. Faults live in the twin's
    process, so they reach every process using it (the API's workers, Spark's).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.shares: dict[str, float] = {}
        self.injected: dict[str, int] = {}
        self._random = random.Random(7)
        self._lock = threading.Lock()

    def _hit(self, service: str) -> bool:
        share = self.shares.get(service, 0.0)
        if share <= 0:
            return False
        with self._lock:
            hit = self._random.random() < share
            if hit:
                self.injected[service] = self.injected.get(service, 0) + 1
        return hit

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == FAULTS_PATH:
            return self._control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB") and self._hit("DynamoDB"):
            body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{THROTTLED}",
                               "message": "The level of configured provisioned throughput for the table was "
                                          "exceeded (injected by the twin)"}).encode()  # fmt: skip
            return _answer(start_response, "400 Bad Request", body, "application/x-amz-json-1.0",
                           [("x-amzn-ErrorType", THROTTLED)])  # fmt: skip
        if target == "Firehose_20150804.PutRecordBatch" and self.shares.get("Firehose"):
            return self._partial_batch(environ, start_response)
        return self.app(environ, start_response)

    def _partial_batch(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Deliver the records that were not picked to fail, then answer for all of them in their order."""
        request = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        records = request.get("Records", [])
        failing = [self._hit("Firehose") for _ in records]
        delivered: list[dict[str, Any]] = []
        kept = [r for r, fail in zip(records, failing, strict=True) if not fail]
        if kept:
            body = json.dumps({**request, "Records": kept}).encode()
            inner = dict(environ, CONTENT_LENGTH=str(len(body)))
            inner["wsgi.input"] = io.BytesIO(body)
            status: list[str] = []
            answer = b"".join(self.app(inner, lambda s, h, *_: status.append(s)))
            if not status or not status[0].startswith("200"):  # moto refused the call itself: pass that on
                return _answer(start_response, status[0] if status else "500 Internal Server Error", answer,
                               "application/x-amz-json-1.1")  # fmt: skip
            delivered = json.loads(answer)["RequestResponses"]
        it = iter(delivered)
        responses = [
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down (injected by the twin)"}
            if fail
            else next(it)
            for fail in failing
        ]
        answered = json.dumps({"FailedPutCount": sum(failing), "Encrypted": False, "RequestResponses": responses})
        return _answer(start_response, "200 OK", answered.encode(), "application/x-amz-json-1.1")

    def _control(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            wanted = json.loads(environ["wsgi.input"].read(length) or b"{}")
            unknown = set(wanted) - set(INJECTABLE)
            if unknown:
                body = json.dumps({"error": f"cannot inject faults into {sorted(unknown)}; only {INJECTABLE}"})
                return _answer(start_response, "400 Bad Request", body.encode(), "application/json")
            self.shares = {str(k): float(v) for k, v in wanted.items()}
        body = json.dumps({"shares": self.shares, "injected": self.injected})
        return _answer(start_response, "200 OK", body.encode(), "application/json")


def _answer(start_response: Any, status: str, body: bytes, content_type: str,
            headers: list[tuple[str, str]] | None = None) -> list[bytes]:  # fmt: skip
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


THROTTLED = "ProvisionedThroughputExceededException"
INJECTABLE = ("DynamoDB", "Firehose")


def set_faults(aws_endpoint: str, shares: dict[str, float]) -> dict[str, Any]:
    """Set the twin's injected faults (``{}`` clears them); returns what was injected so far."""
    resp = requests.post(aws_endpoint + FAULTS_PATH, json=shares, timeout=10)
    resp.raise_for_status()
    return resp.json()  # type: ignore[no-any-return]
