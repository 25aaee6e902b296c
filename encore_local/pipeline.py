"""The retraining pipeline on the twin: the same ordered steps as the Step Functions definition
(``encore.pipeline.NIGHTLY``), each run by the twin's stand-in for its AWS service."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encore.config import EncoreConfig
from encore.pipeline import NIGHTLY, PipelineStep
from encore.promotion import deploy, gate
from encore_local.jobs import run_job
from encore_local.sagemaker_twin import run_training

TWIN_IMAGE = "encore-twin/hybrid:local"  # the twin's endpoint serves the artifact's own code, whatever image
TWIN_ROLE = "arn:aws:iam::123456789012:role/encore-twin-model"


@dataclass
class PipelineRun:
    steps: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return bool(self.state.get("gate", {}).get("promote"))


def run_pipeline(
    config: EncoreConfig,
    *,
    run_time: str,
    job_name: str | None = None,
    lookback_days: int = 2,
    truth: Path | None = None,
    on_step: Callable[[PipelineStep], None] | None = None,
    steps: Sequence[PipelineStep] = NIGHTLY,
) -> PipelineRun:
    """Run the steps (the nightly ones by default; ``CHARTS_REFRESH`` for the charts) in order; a gate that keeps
    the serving model ends the run like the state machine."""
    run = PipelineRun()
    name = job_name or time.strftime("encore-%Y%m%d-%H%M%S")
    features = config.lake.features
    for step in steps:
        if on_step:
            on_step(step)
        started = time.perf_counter()
        if step.kind == "glue":
            extra = None
            if step.name == "load_vectors":
                extra = {"model_data": run.state["gate"]["model_data"], "model_version": run.state["gate"]["version"]}
            lookback = lookback_days if step.name == "curate_events" else None
            result: dict[str, Any] = run_job(step.name, config, run_time=run_time, lookback_days=lookback,
                                             extra=extra).result  # fmt: skip
        elif step.kind == "training":
            channels = {t: f"{features}{t}/" for t in ("interactions", "tracks", "transitions")}
            trained = run_training(config, name, channels, extra_channels={"truth": truth} if truth else None)
            result = run.state["train"] = {"model_data": trained.model_data, "training_job": name}
        elif step.name == "gate":
            result = run.state["gate"] = gate(run.state["train"], config, TWIN_IMAGE)
        else:
            result = run.state["deploy"] = deploy(run.state["gate"], config, config.deploy.endpoint, TWIN_ROLE)
        run.steps.append((step.name, time.perf_counter() - started, result))
        if step.name == "gate" and not run.promoted:
            break
    return run
