"""Cloud assemblies synthesized once per session, as `cdk synth` writes them: dev and prod, in two regions
(neither the configuration's default), each with cdk-nag (an unacknowledged finding fails synthesis)."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from cdk_nag import AwsSolutionsChecks

from cdk_app.deploy_rules import Assembly
from cdk_app.settings import CDK_JSON
from cdk_app.stack import EncoreStack
from encore.config import EncoreConfig, Stage

ACCOUNT = "123456789012"
TARGETS: tuple[tuple[Stage, str], ...] = (("dev", "eu-west-1"), ("prod", "ap-southeast-2"))


def synthesize(stage: Stage, region: str, out_dir: Path) -> tuple[EncoreStack, Path]:
    stages = json.loads(CDK_JSON.read_text())["context"]["stages"]
    app = cdk.App(outdir=str(out_dir))
    stack = EncoreStack(
        app,
        f"Encore-{stage}",
        config=EncoreConfig.for_stage(stage, stages[stage]),
        env=cdk.Environment(account=ACCOUNT, region=region),
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks())
    app.synth()
    return stack, out_dir


@pytest.fixture(scope="session")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[EncoreStack, Path]]:
    """``{"dev": (stack, cloud assembly folder), "prod": ...}``."""
    return {stage: synthesize(stage, region, tmp_path_factory.mktemp(f"cdk.out-{stage}")) for stage, region in TARGETS}


@pytest.fixture(scope="session")
def assemblies(stacks: dict[str, tuple[EncoreStack, Path]]) -> dict[str, Assembly]:
    """``{"dev": ..., "prod": ...}``: what the synthesis wrote, as the deploy rules read it."""
    return {stage: Assembly.load(out_dir) for stage, (_, out_dir) in stacks.items()}
