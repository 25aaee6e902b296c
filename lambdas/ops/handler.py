"""GET /v1/ops/*: the operations view's data (the serving model, the gate's decisions with both reports, the
pipelines' executions). Routes and logic in ``encore.operations``; the serving function's OpenAPI document
describes them."""

from __future__ import annotations

import gc
import json
import os
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from encore.config import EncoreConfig
from encore.http import cors_config, register_error_handlers
from encore.observability import logger, tracer
from encore.operations import PIPELINES_VARIABLE, OperationsStore, declare

config = EncoreConfig.from_env()
store = OperationsStore(
    config.resources.lake_bucket, config.lake.models, json.loads(os.environ[PIPELINES_VARIABLE]), config.region
)
app = APIGatewayRestResolver(enable_validation=True, cors=cors_config(config.serving.cors_origins))
register_error_handlers(app)
declare(app, lambda: store)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# What the cold start built (modules, the app, its routes) lives as long as the instance: out of the garbage
# collector's walks, a full collection takes about a tenth as long (bench/bench_handlers.py).
gc.freeze()
