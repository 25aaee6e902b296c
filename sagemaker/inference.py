"""SageMaker inference handlers for the hybrid model: ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``.

Request (JSON): ``{surface: home|next|similar|rank, user_vector?, short_vector?, vectors_of?, seed_track_id?,
candidates?, exclude?, history?, recent?, k, weights?, filter?, promotion?, fresh_share?}``.
- ``weights`` are the serving Lambda's ``config.weights``: the model blends the long- and short-term vectors
  (``long_term/short_term``; a short-term vector means a session is going on) and next song's and similar's
  sources (``cf/content``) by them; a weight the request leaves out is taken from ``hybrid.DEFAULT_WEIGHTS``.
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
the permission, and says exactly what is wrong (tests/unit/test_inference_contract.py holds the two to the same
answers). Python 3.9-compatible (the scikit-learn container).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import filters
from hybrid import DEFAULT_WEIGHTS, FRESH_SHARE, HybridModel, session_blend

SURFACES = ("home", "next", "similar", "rank")
MAX_K = 500
MAX_CANDIDATES = 500
MAX_FRESH_SHARE = 0.5
MAX_EXCLUDE = 5000
MAX_HISTORY = 1000
MAX_RECENT = 100
TRACK_IDS = re.compile(f"(?:{filters.ID}\n)*")  # ids each followed by a newline (``_are_track_ids``)
FIELDS = {"surface", "user_vector", "short_vector", "vectors_of", "seed_track_id", "candidates", "exclude", "history",
          "recent", "k", "weights", "filter", "promotion", "fresh_share"}  # fmt: skip
JSON = "application/json"
EMPTY = np.empty(0, dtype=np.int64)


class RequestError(ValueError):
    """A malformed request; the message says what to change."""


def model_fn(model_dir: str) -> HybridModel:
    return HybridModel.load(Path(model_dir))


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _vector(value: Any, name: str) -> np.ndarray | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(map(_is_number, value)):
        raise RequestError(f"{name} must be a non-empty list of numbers")
    v = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise RequestError(f"{name} must hold finite numbers")
    return v


def _are_track_ids(values: list[Any]) -> bool:
    """Whether every value is a track id, matched at once over them joined by newlines (one match each costs
    milliseconds at the 5,000 an exclude list may hold); the count catches an id that holds a newline itself."""
    if not all(isinstance(t, str) for t in values):
        return False
    text = "\n".join([*values, ""])
    return text.count("\n") == len(values) and TRACK_IDS.fullmatch(text) is not None


def _track_ids(value: Any, name: str, most: int, least: int = 0) -> list[str]:
    if not isinstance(value, list) or not least <= len(value) <= most or not _are_track_ids(value):
        span = f"at least {least} and at most {most}" if least else f"at most {most}"
        raise RequestError(f"{name} must be a list of {span} track ids")
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
    if not _is_whole(k) or not 1 <= k <= MAX_K:
        raise RequestError(f"k must be a whole number from 1 to {MAX_K}")
    bounds = {"exclude": MAX_EXCLUDE, "history": MAX_HISTORY, "recent": MAX_RECENT}
    lists = {name: _track_ids(data.get(name, []), name, bound) for name, bound in bounds.items()}
    candidates = data.get("candidates")
    if candidates is not None:
        candidates = _track_ids(candidates, "candidates", MAX_CANDIDATES, least=1)
    seed = data.get("seed_track_id")
    if seed is not None and not _are_track_ids([seed]):
        raise RequestError("seed_track_id must be a track id")
    weights = data.get("weights")
    weights = {} if weights is None else weights
    if (not isinstance(weights, dict) or (weights and set(weights) != set(DEFAULT_WEIGHTS))
            or not all(_is_number(v) and 0 <= v <= 1 for v in weights.values())):  # fmt: skip
        raise RequestError(f"weights must be all of {{{', '.join(DEFAULT_WEIGHTS)}}}, each between 0 and 1")
    vectors_of = data.get("vectors_of")
    if vectors_of is not None and not isinstance(vectors_of, str):
        raise RequestError("vectors_of must be a model version (a string)")
    try:
        catalog_filter = filters.check(data["filter"]) if data.get("filter") is not None else {}
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    fresh_share = data.get("fresh_share", FRESH_SHARE)
    if not _is_number(fresh_share) or not 0 <= fresh_share <= MAX_FRESH_SHARE:
        raise RequestError(f"fresh_share must be a number from 0 to {MAX_FRESH_SHARE}")
    request = {
        "surface": surface,
        "k": k,
        "filter": catalog_filter,
        "promotion": _promotion(data.get("promotion")),
        "fresh_share": float(fresh_share),
        **lists,
        "candidates": candidates,
        "user_vector": _vector(data.get("user_vector"), "user_vector"),
        "short_vector": _vector(data.get("short_vector"), "short_vector"),
        "vectors_of": vectors_of,
        "seed_track_id": seed,
        "weights": {name: float(weights.get(name, default)) for name, default in DEFAULT_WEIGHTS.items()},
    }
    if surface in ("next", "similar") and seed is None:
        raise RequestError(f"surface {surface!r} needs seed_track_id")
    if surface == "home" and request["user_vector"] is None and request["short_vector"] is None:
        raise RequestError("surface 'home' needs user_vector or short_vector")
    if surface == "rank" and candidates is None:
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
    if not _is_whole(k) or not 1 <= k <= MAX_K:
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
