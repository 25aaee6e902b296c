"""The promotion gate, the deploy step and the online test's judge: promote a candidate only if it beats the
serving model and popularity on NDCG@10, register it, put it on the endpoint (as the challenger of an online test
beside the champion, or as the champion), and end a test when its play-through rates say which model is better.

State in the lake: ``models/serving.json`` (what the endpoint serves, with its report, and the running test) and
``models/decisions/<version>.json`` (every decision with both reports, and the online test's judgments).
"""

from __future__ import annotations

import json
import tarfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from encore.clients import get_client
from encore.config import EncoreConfig, EndpointSettings
from encore.endpoint import create_model, model_name, point_endpoint
from encore.experiment import CHALLENGER, CHAMPION, LiveTest, closed_day
from encore.experiment import decide as decide_online
from encore.stores import read_json

METRIC = "ndcg@10"
SERVING_KEY = "serving.json"
VECTORS_KEY = "vectors.json"  # which model's vectors the users and tracks tables hold (load_vectors)


def s3_url(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URL: {url}")
    return parsed.netloc, parsed.path.lstrip("/")


def read_report(model_data: str, region: str | None = None) -> dict[str, Any]:
    """``evaluation.json`` and ``meta.json`` from inside model.tar.gz, streamed (the arrays are not kept)."""
    bucket, key = s3_url(model_data)
    body = get_client("s3", region).get_object(Bucket=bucket, Key=key)["Body"]
    found: dict[str, Any] = {}
    with tarfile.open(fileobj=body, mode="r|gz") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in ("evaluation.json", "meta.json"):
                f = tar.extractfile(member)
                if f is not None:
                    found[name] = json.loads(f.read())
            if len(found) == 2:
                break
    if "evaluation.json" not in found:
        raise ValueError(f"{model_data} has no evaluation.json")
    return {"report": found["evaluation.json"], "meta": found.get("meta.json", {})}


@dataclass
class Decision:
    promote: bool
    reason: str
    version: str
    model_data: str
    image: str
    candidate_ndcg: float
    popularity_ndcg: float
    serving_ndcg: float | None
    serving_version: str | None
    model_package_arn: str | None = None


def decide(candidate: dict[str, Any], serving: dict[str, Any] | None, min_gain: float = 0.0) -> tuple[bool, str]:
    """Promote when the candidate's served ranking beats popularity and each of its own sources alone on the same
    holdout (the report's ``single_sources``: a ranking stage that loses to one of its inputs is not worth
    serving), and the serving model's NDCG@10 (times ``1 + min_gain``)."""
    home = candidate["home"]
    cand, pop = home["hybrid"].get(METRIC, 0.0), home["popularity"].get(METRIC, 0.0)
    if cand <= pop:
        return False, f"{METRIC} {cand:.4f} does not beat popularity ({pop:.4f})"
    for source in candidate.get("single_sources", []):
        alone = home.get(source, {}).get(METRIC, 0.0)
        if source != "popularity" and cand <= alone:
            return False, f"{METRIC} {cand:.4f} does not beat its own source {source} alone ({alone:.4f})"
    if serving is None:
        return True, f"{METRIC} {cand:.4f} beats popularity ({pop:.4f}); nothing is serving yet"
    if serving.get("test"):
        challenger = serving["test"]["challenger"]["version"]
        return False, f"an online test of {challenger} is running: no new challenger until it is decided"
    current = serving["metrics"].get(METRIC, 0.0)
    if cand <= current * (1 + min_gain):
        return False, f"{METRIC} {cand:.4f} does not beat the serving model's {current:.4f}"
    return True, f"{METRIC} {cand:.4f} beats popularity ({pop:.4f}) and the serving model ({current:.4f})"


class ModelRegistry:
    """The lake's record of what serves, and SageMaker's model package group."""

    def __init__(self, config: EncoreConfig) -> None:
        self.config = config
        self.bucket = config.resources.lake_bucket
        self.prefix = config.lake.models

    def _get(self, key: str) -> dict[str, Any] | None:
        return read_json(get_client("s3", self.config.region), self.bucket, self.prefix + key)

    def serving(self) -> dict[str, Any] | None:
        return self._get(SERVING_KEY)

    def decision(self, version: str) -> dict[str, Any]:
        found = self._get(f"decisions/{version}.json")
        if found is None:
            raise KeyError(f"no decision recorded for model {version}")
        return found

    def vectors_version(self) -> str | None:
        return (self._get(VECTORS_KEY) or {}).get("version")

    def set_vectors_version(self, version: str) -> None:
        self._put(VECTORS_KEY, {"version": version, "loaded_at": int(time.time())})

    def record(self, decision: Decision, candidate: dict[str, Any], serving: dict[str, Any] | None) -> None:
        body = {
            "decision": asdict(decision),
            "candidate": candidate,
            "serving": serving,
            "decided_at": int(time.time()),
        }
        self._put(f"decisions/{decision.version}.json", body)

    def _put(self, key: str, body: dict[str, Any]) -> None:
        get_client("s3", self.config.region).put_object(
            Bucket=self.bucket, Key=self.prefix + key, Body=json.dumps(body, indent=2)
        )

    def set_serving(self, decision: dict[str, Any], metrics: dict[str, Any]) -> None:
        """The champion, alone: no test runs."""
        record = {
            "version": decision["version"],
            "model_data": decision["model_data"],
            "model_name": decision.get("model_name"),
            "metrics": metrics,
            "promoted_at": int(time.time()),
        }
        self._put(SERVING_KEY, record)

    def start_test(self, serving: dict[str, Any], challenger: dict[str, Any], share: float) -> None:
        entrant = {k: challenger.get(k) for k in ("version", "model_data", "model_name")}
        test = {"challenger": entrant | {"metrics": challenger.get("metrics", {})}, "share": share,
                "started_at": int(time.time())}  # fmt: skip
        self._put(SERVING_KEY, {**serving, "test": test})

    def end_test(self, serving: dict[str, Any]) -> None:
        """The champion stays, alone."""
        self._put(SERVING_KEY, {k: v for k, v in serving.items() if k != "test"})

    def record_online(self, version: str, judgment: dict[str, Any]) -> None:
        """An online test's judgment, added to the model's decision record beside the offline gate's."""
        record = self._get(f"decisions/{version}.json") or {"decision": {"version": version}}
        record.setdefault("online", []).append(judgment)
        self._put(f"decisions/{version}.json", record)

    def register(self, decision: Decision) -> str:
        resp = get_client("sagemaker", self.config.region).create_model_package(
            ModelPackageGroupName=self.config.resources.model_package_group,
            ModelPackageDescription=decision.reason[:1000],
            ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [{"Image": decision.image, "ModelDataUrl": decision.model_data}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={"version": decision.version, METRIC: f"{decision.candidate_ndcg:.6f}"},
        )
        return str(resp["ModelPackageArn"])


def gate(event: dict[str, Any], config: EncoreConfig, image: str, min_gain: float = 0.0) -> dict[str, Any]:
    """The pipeline's gate step: ``event`` is the training step's ``{model_data, training_job}``."""
    found = read_report(event["model_data"], config.region)
    candidate, meta = found["report"], found["meta"]
    registry = ModelRegistry(config)
    serving = registry.serving()
    promote, reason = decide(candidate, serving, min_gain)
    home = candidate["home"]
    decision = Decision(
        promote=promote,
        reason=reason,
        version=str(meta.get("version") or candidate.get("version") or event.get("training_job")),
        model_data=event["model_data"],
        image=image,
        candidate_ndcg=home["hybrid"].get(METRIC, 0.0),
        popularity_ndcg=home["popularity"].get(METRIC, 0.0),
        serving_ndcg=serving["metrics"].get(METRIC) if serving else None,
        serving_version=serving["version"] if serving else None,
    )
    if promote:
        decision.model_package_arn = registry.register(decision)
    registry.record(decision, candidate, serving)
    return {**asdict(decision), "metrics": home["hybrid"]}


def deploy(decision: dict[str, Any], config: EncoreConfig, settings: EndpointSettings, role_arn: str) -> dict[str, Any]:
    """Put a promoted model on the endpoint: beside the champion as the challenger of an online test when the
    stage gives challengers a share of traffic and a champion serves, else as the champion (``role``)."""
    registry = ModelRegistry(config)
    endpoint = config.resources.endpoint_name
    name = model_name(endpoint, decision["version"])
    create_model(config, name, decision["image"], decision["model_data"], role_arn)
    serving, share = registry.serving(), config.online_test.challenger_share
    if serving is not None and share > 0 and serving["version"] != decision["version"]:
        champion = serving.get("model_name") or model_name(endpoint, serving["version"])
        variants = [(CHAMPION, champion, round(1 - share, 6)), (CHALLENGER, name, share)]
        result = point_endpoint(config, settings, f"{name[:58]}-test", variants)
        registry.start_test(serving, decision | {"model_name": name}, share)
        return {**result, "model": name, "role": CHALLENGER}
    result = point_endpoint(config, settings, name, [(CHAMPION, name, 1.0)])
    registry.set_serving(decision | {"model_name": name}, decision.get("metrics", {}))
    return {**result, "model": name, "role": CHAMPION}


def attribution_totals_key(config: EncoreConfig, day: date) -> str:
    """Where ``attribute_plays`` leaves a day's attribution rows as JSON, for the test's judge (no Parquet reader)."""
    return f"{config.lake.features}attribution_totals/day={day.isoformat()}.json"


def _attribution_rows(config: EncoreConfig, first: date, last: date) -> list[dict[str, Any]]:
    s3 = get_client("s3", config.region)
    rows: list[dict[str, Any]] = []
    for n in range((last - first).days + 1):
        key = attribution_totals_key(config, first + timedelta(n))
        rows += read_json(s3, config.resources.lake_bucket, key) or []  # none: a day without answers
    return rows


def judge(config: EncoreConfig, settings: EndpointSettings, now: datetime | None = None) -> dict[str, Any]:
    """The pipeline's judge step: decide a running online test on the closed days since it began (promote the
    challenger, keep the champion, or let it run on), record the judgment beside the gate's decision, and, when
    the test ends, leave the winner alone on the endpoint."""
    now = now or datetime.fromtimestamp(time.time(), UTC)  # time.time: the clock a test (or the twin) can set
    registry = ModelRegistry(config)
    serving = registry.serving()
    test = LiveTest.of(serving)
    if serving is None or test is None:
        return {"action": "none", "reason": "no online test is running"}
    rules = config.online_test
    first = datetime.fromtimestamp(test.started_at, UTC).date()
    last = closed_day(now, config.attribution.window_hours)
    days = max(0, (last - first).days + 1)
    if days < rules.min_days:
        return {"action": "running", "reason": f"{days} closed day(s) of the test; judged after {rules.min_days}",
                "challenger": test.challenger}  # fmt: skip
    champion, challenger = test.arms(_attribution_rows(config, first, last))
    verdict = decide_online(champion, challenger, days_run=days, alpha=rules.alpha, min_plays=rules.min_plays,
                     max_days=rules.max_days)  # fmt: skip
    judgment = {
        "action": verdict.action,
        "reason": verdict.reason,
        "champion": {"version": test.champion, **asdict(champion), "rate": champion.rate},
        "challenger": {"version": test.challenger, **asdict(challenger), "rate": challenger.rate},
        "z": verdict.z,
        "p_value": verdict.p_value,
        "confidence": verdict.confidence,
        "days": days,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "decided_at": int(now.timestamp()),
    }
    registry.record_online(test.challenger, judgment)
    if verdict.action == "extend":
        return judgment
    winner = serving["test"]["challenger"] if verdict.action == "promote" else serving
    name = winner.get("model_name") or model_name(config.resources.endpoint_name, winner["version"])
    endpoint = point_endpoint(config, settings, name, [(CHAMPION, name, 1.0)])
    if verdict.action == "promote":
        registry.set_serving(winner | {"model_name": name}, winner.get("metrics", {}))
    else:
        registry.end_test(serving)
    return judgment | {"endpoint": endpoint}
