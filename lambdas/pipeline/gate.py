"""Pipeline step: the promotion gate (logic in encore.promotion)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from encore.config import EncoreConfig
from encore.observability import logger, tracer
from encore.promotion import gate

config = EncoreConfig.from_env()
IMAGE = os.environ["ENCORE_MODEL_IMAGE"]


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    decision = gate(event, config, IMAGE)
    logger.info("promotion decision", extra={k: decision[k] for k in ("promote", "reason", "version")})
    return decision
