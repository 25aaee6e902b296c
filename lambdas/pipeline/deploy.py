"""Pipeline step: put the promoted model on the endpoint, as champion or challenger (logic in encore.promotion)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from encore.config import EncoreConfig, EndpointSettings
from encore.observability import logger, tracer
from encore.promotion import deploy

config = EncoreConfig.from_env()
SETTINGS = EndpointSettings.model_validate_json(os.environ["ENCORE_ENDPOINT_SETTINGS"])
ROLE = os.environ["ENCORE_MODEL_EXECUTION_ROLE"]


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = deploy(event, config, SETTINGS, ROLE)
    logger.info("endpoint deployed", extra=result)
    return result
