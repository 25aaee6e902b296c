"""Pipeline step: decide the online test running on the endpoint, if any (logic in encore.promotion)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from encore.config import EncoreConfig, EndpointSettings
from encore.observability import logger, tracer
from encore.promotion import judge

config = EncoreConfig.from_env()
SETTINGS = EndpointSettings.model_validate_json(os.environ["ENCORE_ENDPOINT_SETTINGS"])


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    judgment = judge(config, SETTINGS)
    logger.info("online test", extra={k: judgment.get(k) for k in ("action", "reason", "confidence")})
    return judgment
