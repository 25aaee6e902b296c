"""An online test by hand: put a model derived from the champion on the endpoint as the challenger, and ask the
deployed judge for its decision, through the stack's own pipeline functions (as ``aws lambda invoke`` would).

Two derived challengers, both the champion's artifact changed in the artifact's own serving code:
- ``popularity``: answering every surface with the most popular tracks (``HybridModel.as_popularity_baseline``),
  to see with listeners whether the champion earns more complete plays than popularity;
- ``shuffled``: its track ids shuffled among its arrays, as a deploy with a broken id mapping would serve. Its
  report looks as good as the champion's; only listeners can tell. The demo tests it as the weaker challenger.
"""

from __future__ import annotations

import dataclasses
import json
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.promotion import ModelRegistry, s3_url
from encore_local.errors import UsageError
from encore_local.twin.sagemaker import _import_inference

DEPLOY, JUDGE = "deploy", "judge"


def invoke(config: EncoreConfig, step: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Invoke the stage's deploy or judge function and return its answer; a function error is raised."""
    names = {DEPLOY: config.resources.deploy_function, JUDGE: config.resources.judge_function}
    resp = get_client("lambda", config.region).invoke(FunctionName=names[step], Payload=json.dumps(payload).encode())
    body = json.loads(resp["Payload"].read() or b"null")
    if resp.get("FunctionError"):
        raise UsageError(f"the {step} function failed: {body.get('errorType')}: {body.get('errorMessage')}")
    return body  # type: ignore[no-any-return]


KINDS = ("popularity", "shuffled")


def _derive(model: Any, kind: str, version: str) -> Any:
    if kind == "popularity":
        return model.as_popularity_baseline(version)
    order = np.random.default_rng(7).permutation(model.track_ids.size)
    return dataclasses.replace(model, version=version, track_ids=model.track_ids[order],
                               artist_ids=model.artist_ids[order])  # fmt: skip


def recorded_challenger(config: EncoreConfig, version: str) -> dict[str, Any]:
    """The decision the deploy step takes for a model the gate decided on, promoted or not (an operator may test
    online a candidate the offline gate held back)."""
    try:
        record = ModelRegistry(config).decision(version)
    except KeyError as exc:
        raise UsageError(f"{exc.args[0]}: see GET /v1/ops/models for the versions") from None
    decision = record.get("decision", {})
    if not decision.get("model_data") or not decision.get("image"):
        raise UsageError(f"the record of {version} names no model artifact: it was not trained by the pipeline")
    metrics = record.get("candidate", {}).get("home", {}).get("hybrid", {})
    return {**decision, "metrics": metrics}


def describe(serving: dict[str, Any] | None, registry: ModelRegistry) -> str:
    """The champion, the running test and the challenger's judgments, for a terminal."""
    if serving is None:
        return "no model serves yet"
    lines = [f"champion: {serving['version']}"]
    test = serving.get("test")
    if test:
        started = datetime.fromtimestamp(test["started_at"], UTC)
        challenger = test["challenger"]["version"]
        lines.append(
            f"online test: {challenger} serves {test['share']:.0%} of listeners since {started:%Y-%m-%d %H:%M} UTC"
        )
        try:
            judgments = registry.decision(challenger).get("online", [])
        except KeyError:
            judgments = []
        for j in judgments:
            when = datetime.fromtimestamp(j["decided_at"], UTC)
            lines.append(f"  {when:%Y-%m-%d %H:%M} {j['action']}: {j['reason']}")
    else:
        lines.append("no online test is running")
    return "\n".join(lines)


def derived_challenger(config: EncoreConfig, kind: str, version: str) -> dict[str, Any]:
    """Make a challenger of ``kind`` (``KINDS``) from the serving champion under ``version``, upload it beside the
    models, and return the decision the deploy step takes (image as the champion's)."""
    if kind not in KINDS:
        raise UsageError(f"unknown challenger kind {kind!r}: one of {', '.join(KINDS)}")
    registry = ModelRegistry(config)
    serving = registry.serving()
    if serving is None:
        raise UsageError("no model serves yet: run the nightly pipeline first")
    if serving.get("test"):
        raise UsageError(f"an online test of {serving['test']['challenger']['version']} is running already")
    champion = registry.decision(serving["version"])
    s3 = get_client("s3", config.region)
    with tempfile.TemporaryDirectory(prefix="encore-baseline-") as tmp:
        archive, model_dir = Path(tmp) / "champion.tar.gz", Path(tmp) / "model"
        s3.download_file(*s3_url(serving["model_data"]), str(archive))
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(model_dir, filter="data")
        serving_code = _import_inference(model_dir / "code" / "inference.py")  # the code the endpoint runs
        derived = _derive(serving_code.model_fn(str(model_dir)), kind, version)
        meta = json.loads((model_dir / "meta.json").read_text())
        derived.save(model_dir, {k: v for k, v in meta.items() if k not in ("version", "home_source")})
        out = Path(tmp) / "model.tar.gz"
        with tarfile.open(out, "w:gz") as tar:
            for path in sorted(model_dir.iterdir()):
                tar.add(path, arcname=path.name)
        key = f"{config.lake.models}derived/{version}/model.tar.gz"
        s3.upload_file(str(out), config.resources.lake_bucket, key)
    return {
        "version": version,
        "model_data": f"s3://{config.resources.lake_bucket}/{key}",
        "image": champion["decision"]["image"],
        "metrics": {},
        "reason": f"{kind} copy of {serving['version']}, put on test by hand",
    }
