"""SageMaker inference handlers for the hybrid model: ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``.

Request (JSON): ``{surface: home|next|similar|rank, user_vector?, short_vector?, vectors_of?, seed_track_id?,
candidates?, exclude?, history?, recent?, k, weights?, filter?, promotion?, fresh_share?}``.
- The model blends the long- and short-term vectors (``weights.long_term/short_term``); a short-term vector means
  a session is going on.
- ``vectors_of`` names the model version whose factor space the vectors are in: a model of another version (a
  challenger beside the champion) derives its own from ``history`` and ``recent`` instead.
- ``filter`` (keys: ``filters.KEYS``) leaves the tracks outside it out of every source.
- ``promotion`` (``{filter, k}``): the surface is asked again within the promotion's filter, and its best ``k``
  come back as ``promoted``; the serving Lambda gives them their share of the page.
- ``fresh_share``: the share of home's places for new releases without plays yet (``hybrid.FRESH_SHARE``).
- ``rank`` orders the supplied ``candidates`` (at most 500) for the listener as home ranks; those the model does
  not know come back as ``unknown``, those the filter or ``exclude`` leaves out as ``filtered``.

Response: ``{items: [{track_id, artist_id, score, cf, content, reason}], model_version, promoted?, unknown?,
filtered?}``. The serving Lambda builds requests from
``encore.models.InferenceRequest``; this side checks them again, since an endpoint can be called by anyone holding
the permission, and says exactly what is wrong. Python 3.9-compatible (the scikit-learn container).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import filters
from hybrid import FRESH_SHARE, HybridModel, session_blend

SURFACES = ("home", "next", "similar", "rank")
MAX_K = 500
MAX_CANDIDATES = 500
MAX_FRESH_SHARE = 0.5
MAX_EXCLUDE = 5000
MAX_HISTORY = 1000
MAX_RECENT = 100
WEIGHTS = {"cf": 0.6, "content": 0.4, "long_term": 0.7, "short_term": 0.3, "ema_keep": 0.5}
FIELDS = {"surface", "user_vector", "short_vector", "vectors_of", "seed_track_id", "candidates", "exclude", "history",
          "recent", "k", "weights", "filter", "promotion", "fresh_share"}  # fmt: skip
JSON = "application/json"
EMPTY = np.empty(0, dtype=np.int64)


class RequestError(ValueError):
    """A malformed request; the message says what to change."""


def model_fn(model_dir: str) -> HybridModel:
    return HybridModel.load(Path(model_dir))


def _vector(value: Any, name: str) -> np.ndarray | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                            for x in value):  # fmt: skip
        raise RequestError(f"{name} must be a non-empty list of numbers")
    v = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise RequestError(f"{name} must hold finite numbers")
    return v


def _track_ids(value: Any, name: str, bound: int) -> list[str]:
    value = value or []
    if not isinstance(value, list) or len(value) > bound or not all(isinstance(t, str) for t in value):
        raise RequestError(f"{name} must be a list of at most {bound} track ids")
    return value


def input_fn(body: Any, content_type: str = JSON) -> dict[str, Any]:
    if content_type and not content_type.startswith(JSON):
        raise RequestError(f"content type {content_type!r} is not supported; send {JSON}")
    try:
        data = json.loads(body.decode() if isinstance(body, (bytes, bytearray)) else body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    unknown = set(data) - FIELDS
    if unknown:
        raise RequestError(f"unknown fields: {', '.join(sorted(unknown))}")
    surface = data.get("surface")
    if surface not in SURFACES:
        raise RequestError(f"surface must be one of {', '.join(SURFACES)} (got {surface!r})")
    k = data.get("k", 20)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise RequestError(f"k must be a whole number from 1 to {MAX_K}")
    bounds = {"exclude": MAX_EXCLUDE, "history": MAX_HISTORY, "recent": MAX_RECENT, "candidates": MAX_CANDIDATES}
    lists = {name: _track_ids(data.get(name), name, bound) for name, bound in bounds.items()}
    weights = data.get("weights") or {}
    if (not isinstance(weights, dict) or set(weights) - set(WEIGHTS)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
                       for v in weights.values())):  # fmt: skip
        raise RequestError(f"weights must be {{{', '.join(WEIGHTS)}}}, each between 0 and 1")
    vectors_of = data.get("vectors_of")
    if vectors_of is not None and not isinstance(vectors_of, str):
        raise RequestError("vectors_of must be a model version (a string)")
    try:
        catalog_filter = filters.check(data["filter"]) if data.get("filter") is not None else {}
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    fresh_share = data.get("fresh_share", FRESH_SHARE)
    if (not isinstance(fresh_share, (int, float)) or isinstance(fresh_share, bool)
            or not 0 <= fresh_share <= MAX_FRESH_SHARE):  # fmt: skip
        raise RequestError(f"fresh_share must be a number from 0 to {MAX_FRESH_SHARE}")
    request = {
        "surface": surface,
        "k": k,
        "filter": catalog_filter,
        "promotion": _promotion(data.get("promotion")),
        "fresh_share": float(fresh_share),
        **lists,
        "user_vector": _vector(data.get("user_vector"), "user_vector"),
        "short_vector": _vector(data.get("short_vector"), "short_vector"),
        "vectors_of": vectors_of,
        "seed_track_id": data.get("seed_track_id"),
        "weights": {name: float(weights.get(name, default)) for name, default in WEIGHTS.items()},
    }
    if surface in ("next", "similar") and not isinstance(request["seed_track_id"], str):
        raise RequestError(f"surface {surface!r} needs seed_track_id")
    if surface == "home" and request["user_vector"] is None and request["short_vector"] is None:
        raise RequestError("surface 'home' needs user_vector or short_vector")
    if surface == "rank" and not request["candidates"]:
        raise RequestError("surface 'rank' needs candidates: the track ids to order")
    if surface == "rank" and request["promotion"] is not None:
        raise RequestError("surface 'rank' orders the tracks it is given: it takes no promotion")
    return request


def _promotion(value: Any) -> dict[str, Any] | None:
    """``{filter, k}``: the tracks a promotion selects, and how many of its best to return."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"filter", "k"}:
        raise RequestError("promotion must be {filter, k}")
    k = value["k"]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise RequestError(f"promotion.k must be a whole number from 1 to {MAX_K}")
    try:
        spec = filters.check(value["filter"])
    except ValueError as exc:
        raise RequestError(f"promotion.{exc}") from None
    if not spec:
        raise RequestError("promotion.filter must select tracks: an empty filter promotes the whole catalog")
    return {"filter": spec, "k": k}


def listener_vectors(request: dict[str, Any], model: HybridModel, history: np.ndarray,
                     recent: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:  # fmt: skip
    """The long- and short-term vectors in ``model``'s factor space: the request's, or, when they are another
    model version's (``vectors_of``), the model's own from the listener's plays (another ALS fit's axes mean
    nothing here, even at the same dimension)."""
    user, short = request["user_vector"], request["short_vector"]
    if request.get("vectors_of") in (None, model.version):
        for name, v in (("user_vector", user), ("short_vector", short)):
            if v is not None and v.size != model.factors:
                raise RequestError(f"{name} has {v.size} dimensions; this model ({model.version}) has {model.factors}")
        return user, short
    own_user = model.fold_in(np.concatenate([history, recent]))
    # a short-term vector only while a session goes on, as the Lambda keeps one only then
    own_short = model.session_vector(recent, request["weights"]["ema_keep"]) if short is not None else None
    return own_user, own_short


def _allowed(model: HybridModel, spec: dict[str, Any]) -> np.ndarray | None:
    """The tracks a filter allows (``None``: every track)."""
    if not spec:
        return None
    if model.facts is None:
        raise RequestError(f"model {model.version} was trained without catalog facts: it cannot filter")
    return model.facts.mask(spec, datetime.now(timezone.utc).date())


def _outside(model: HybridModel, spec: dict[str, Any]) -> np.ndarray:
    """The tracks a filter leaves out (banned like played tracks: every source then ranks within it)."""
    allowed = _allowed(model, spec)
    return EMPTY if allowed is None else np.flatnonzero(~allowed)


def _surface(request: dict[str, Any], model: HybridModel, vector: np.ndarray | None, banned: np.ndarray,
             history: np.ndarray, recent: np.ndarray, k: int) -> list[dict]:  # fmt: skip
    w = request["weights"]
    if request["surface"] == "home":
        return model.home(vector, k, banned, history, recent, request["short_vector"] is not None,
                          request["fresh_share"])  # fmt: skip
    seed = model.index.get(request["seed_track_id"])
    if seed is None:
        raise RequestError(f"seed_track_id {request['seed_track_id']!r} is not in model {model.version}'s catalog")
    if request["surface"] == "next":
        return model.next(seed, vector, k, banned, w["cf"], w["content"], history, recent)
    return model.similar(seed, k, banned, w["cf"], w["content"])


def _rank(request: dict[str, Any], model: HybridModel, vector: np.ndarray | None, history: np.ndarray,
          recent: np.ndarray) -> dict[str, Any]:  # fmt: skip
    """The supplied candidates ordered for the listener (the known ones the filter allows)."""
    given = list(dict.fromkeys(request["candidates"]))
    unknown = [t for t in given if t not in model.index]
    cand = model.indices(given)
    allowed = _allowed(model, request["filter"])
    left_out = np.isin(cand, model.indices(request["exclude"]))
    if allowed is not None:
        left_out |= ~allowed[cand]
    items = model.rank(vector, cand[~left_out], history, recent, request["short_vector"] is not None)
    return {"items": items, "unknown": unknown, "filtered": [str(t) for t in model.track_ids[cand[left_out]]]}


def predict_fn(request: dict[str, Any], model: HybridModel) -> dict[str, Any]:
    history, recent = model.indices(request["history"]), model.indices(request["recent"])
    user, short = listener_vectors(request, model, history, recent)
    vector = session_blend(user, short, request["weights"]["long_term"], request["weights"]["short_term"])
    if request["surface"] == "rank":
        answer = _rank(request, model, vector, history, recent)
    else:
        banned = np.concatenate([model.indices(request["exclude"]), _outside(model, request["filter"])])
        answer = {"items": _surface(request, model, vector, banned, history, recent, request["k"])}
        promotion = request["promotion"]
        if promotion is not None:  # the same surface within the promoted tracks
            within = np.concatenate([banned, _outside(model, promotion["filter"])])
            answer["promoted"] = _plain(_surface(request, model, vector, within, history, recent, promotion["k"]))
    answer["items"] = _plain(answer["items"])
    return {**answer, "model_version": model.version}


def _plain(items: list[dict]) -> list[dict]:
    return [{**item, "track_id": str(item["track_id"]), "artist_id": str(item["artist_id"])} for item in items]


def output_fn(prediction: dict[str, Any], accept: str = JSON) -> str:
    if accept and accept not in (JSON, "*/*") and not accept.startswith(JSON):
        raise RequestError(f"accept {accept!r} is not supported; ask for {JSON}")
    return json.dumps(prediction)
