"""The stage's configuration for the CDK app: ``cdk.json`` context through the shared configuration model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from constructs import Node

from encore.config import EncoreConfig, Stage

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def config_from_context(node: Node) -> EncoreConfig:
    """``-c stage=prod`` picks ``context.stages.prod`` from cdk.json as overrides of that stage's defaults.

    ``python app.py`` without the CDK CLI gets no context, so cdk.json is read directly then.
    """
    file_context: dict[str, Any] = json.loads(CDK_JSON.read_text()).get("context", {})
    stage = cast(Stage, node.try_get_context("stage") or file_context.get("stage", "dev"))
    stages: dict[str, Any] = node.try_get_context("stages") or file_context.get("stages", {})
    if stage not in stages:
        raise ValueError(f"unknown stage '{stage}': cdk.json context 'stages' has {sorted(stages)}")
    return EncoreConfig.for_stage(stage, stages[stage] or {})
