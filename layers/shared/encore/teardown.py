"""What ``cdk destroy`` cannot delete by itself: the pipeline-made endpoint (with its configurations, models and
autoscaling target) and, where the stage does not keep data, the model packages that block deleting their group.

Run by a CloudFormation custom resource on Delete only (Create and Update do nothing); every call answers
CloudFormation, so a stack never waits an hour on a silent handler.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from encore.config import EncoreConfig
from encore.endpoint import delete_endpoint, delete_model_packages


def tear_down(config: EncoreConfig, delete_packages: bool) -> list[str]:
    """Delete the endpoint and what it is made of; the model packages too unless the stage keeps data."""
    deleted = delete_endpoint(config)
    if delete_packages:
        deleted += delete_model_packages(config)
    return deleted


def answer_cloudformation(event: dict[str, Any], status: str, reason: str, log_stream: str) -> None:
    """PUT the custom resource's result to the pre-signed URL CloudFormation gave."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": f"{reason[:900]} (log stream {log_stream})",
            "PhysicalResourceId": event.get("PhysicalResourceId") or f"{event['LogicalResourceId']}-teardown",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    url = event["ResponseURL"]
    if not url.startswith(("https://", "http://127.0.0.1")):  # CloudFormation's pre-signed S3 URL (or a test's)
        raise ValueError(f"not a CloudFormation response URL: {url[:80]}")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - the scheme is checked above
        pass
