#!/usr/bin/env python3
"""The CDK app: `cdk synth -c stage=dev|prod` (stage settings in cdk.json), checked by cdk-nag's AwsSolutions."""

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from cdk_app.settings import config_from_context
from cdk_app.stack import EncoreStack

app = cdk.App()
config = config_from_context(app.node)
EncoreStack(
    app,
    f"Encore-{config.stage}",
    config=config,
    env=cdk.Environment(
        account=os.getenv("CDK_DEFAULT_ACCOUNT"), region=os.getenv("CDK_DEFAULT_REGION", config.region)
    ),
)
cdk.Tags.of(app).add("project", config.project)
cdk.Tags.of(app).add("stage", config.stage)
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks())
app.synth()
