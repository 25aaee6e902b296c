"""CloudFormation custom resource: on stack deletion, delete what the pipeline created (logic in encore.teardown)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from encore.config import EncoreConfig
from encore.observability import logger
from encore.teardown import answer_cloudformation, tear_down

config = EncoreConfig.from_env()
DELETE_PACKAGES = os.environ["ENCORE_TEARDOWN_DELETE_PACKAGES"] == "true"


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    status, reason = "SUCCESS", "nothing to do before the stack exists"
    if event["RequestType"] == "Delete":
        try:
            deleted = tear_down(config, DELETE_PACKAGES)
            reason = f"deleted {len(deleted)}: " + ", ".join(deleted) if deleted else "nothing to delete"
            logger.info("torn down", extra={"deleted": deleted})
        except Exception as exc:  # every failure must still answer CloudFormation
            logger.exception("teardown failed")
            status, reason = "FAILED", f"{type(exc).__name__}: {exc}"
    answer_cloudformation(event, status, reason, context.log_stream_name)
