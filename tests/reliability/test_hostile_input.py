"""Hostile requests written from the API's contracts, not from its OpenAPI document: each one is wrong in at
least one way a careless or hostile client can be wrong (a pathological body, a field of the wrong type or past
its range, a date-time at the edge of the calendar, a media type or encoding the API does not take, a method the
API lacks), over every route and method, through the twin's HTTP API.

Every one must be refused with a 4xx whose JSON body gives a reason (the handlers' ``reason``, API Gateway's own
``message``), and nothing of a refused write may be anywhere afterwards: not in the raw zone, the users table,
the idempotency table or the cache. ``HOSTILE_PER_CLASS`` requests of each class on each route (``make
reliability``: 120).
"""

from __future__ import annotations

import gzip
import json
import re
import time
import uuid
from collections import Counter
from datetime import date
from typing import Any

import pytest
import redis
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support import HOSTILE_PER_CLASS, KEY, history, new_events, raw_event_ids

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.models import MAX_TRACK_DURATION_MS, MIN_TIMESTAMP_MS
from encore.regions import ISO_3166_ALPHA2
from encore.routes import ROUTES, ROUTES_BY_PATH
from encore_local.apigw import match_route

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
JSON = "application/json"
WRITER = "hostile-"  # every listener a hostile write names starts so: what the state checks look for
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
BOOLS = {"0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes"}  # what a bool parameter reads

# --- values of the wrong kind, each one certain to break the contract of the field it replaces ---------------------
not_a_string = st.integers() | st.floats() | st.booleans() | st.lists(st.integers(), max_size=3) | st.none()
not_an_int = (
    st.floats()
    | st.booleans()
    | st.text(max_size=12)
    | st.lists(st.integers(), max_size=2)
    | st.integers(min_value=10**19, max_value=10**39).map(str)
    | st.none()
)
not_an_id = (
    st.text(max_size=140).filter(lambda s: not ID.fullmatch(s))
    | st.text(alphabet="ab", min_size=129, max_size=300)
    | not_a_string
)
not_a_region = st.text(max_size=4).filter(lambda s: s not in ISO_3166_ALPHA2) | not_a_string
now_ms = int(time.time() * 1000)
BAD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.text(max_size=40).filter(lambda s: not UUID.fullmatch(s)) | not_a_string,
    "user_id": not_an_id,
    "track_id": not_an_id,
    "action": st.text(max_size=10).filter(lambda s: s not in ("listen", "skip", "complete")) | not_a_string,
    # before 2000 (seconds, year 1 as negative ms), far in the future (year 9999, past int64), or not an int
    "timestamp": st.integers(max_value=MIN_TIMESTAMP_MS - 1)
    | st.integers(min_value=now_ms + 7_200_000)
    | st.sampled_from([-62_135_596_800_000, 253_402_300_799_999, 2**63, -(2**63) - 1])
    | not_an_int,
    "played_ms": st.integers(max_value=-1) | st.integers(min_value=MAX_TRACK_DURATION_MS + 1) | not_an_int,
    "track_duration_ms": st.integers(max_value=0) | st.integers(min_value=MAX_TRACK_DURATION_MS + 1) | not_an_int,
    "region": not_a_region,
    "session_id": not_an_id.filter(lambda v: v is not None),
    "source": st.text(max_size=10).filter(lambda s: s not in ("app", "simulation", "import")) | not_a_string,
    "context": st.text(max_size=10).filter(lambda s: s not in ("home", "next", "similar", "chart", "search", "other"))
    | not_a_string,
}
BAD_PROFILE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "region": not_a_region,
    "display_name": st.text(min_size=201, max_size=400) | not_a_string.filter(lambda v: v is not None),
    "signup_date": st.sampled_from(
        [
            "0001-01-01",
            "9999-12-31",
            "1999-12-31",
            "2020-02-30",
            "2020-13-01",
            "today",
            "2020-01-01T25:00:00",
            "",
            "10000-01-01",
        ]
    )
    | st.dates(min_value=date(2100, 1, 1)).map(str)
    | st.text(max_size=12).filter(lambda s: not re.fullmatch(r"\d{4}-\d\d-\d\d", s))
    | st.booleans()
    | st.lists(st.integers()),
}

# --- bodies that are wrong before any field is read ---------------------------------------------------------------
pathological_text = st.one_of(
    st.integers(min_value=21, max_value=60_000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=21, max_value=5_000).map(lambda n: '{"events": ' + '{"a": ' * n + "1" + "}" * (n + 1)),
    st.just("["),
    st.just("{"),
    st.just(""),
    st.integers(min_value=41, max_value=6_000).map(lambda n: '{"events": [{"timestamp": ' + "9" * n + "}]}"),
    st.sampled_from(["NaN", "Infinity", "-Infinity"]).map(lambda c: '{"events": [{"played_ms": ' + c + "}]}"),
    st.just('{"events": [{"user_id": "\\ud83d"}]}'),
    st.sampled_from(["[]", "[{}]", '"events"', "42", "null", "true"]),
)


def valid_event(user: str, track: str) -> dict[str, Any]:
    return {**new_events([user], [track], 1)[0], "source": "app", "context": "home"}


@st.composite
def hostile_batches(draw: Any, tracks: list[str], kind: str) -> tuple[list[tuple[str, str]], bytes]:
    """A POST /v1/events that breaks the contract in one way of ``kind``: the headers and body to send."""
    events = [
        valid_event(WRITER + uuid.uuid4().hex[:8], draw(st.sampled_from(tracks)))
        for _ in range(draw(st.integers(1, 4)))
    ]
    headers = [("Content-Type", "application/json")]
    if kind == "field":
        field = draw(st.sampled_from(sorted(BAD_FIELDS)))
        events[draw(st.integers(0, len(events) - 1))][field] = draw(BAD_FIELDS[field])
        body: Any = {"events": events}
    elif kind == "missing":
        field = draw(
            st.sampled_from(
                ["event_id", "user_id", "track_id", "action", "timestamp", "played_ms", "track_duration_ms", "region"]
            )
        )
        del events[0][field]
        body = {"events": events}
    elif kind == "extra":
        events[0][draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in events[0]))] = draw(st.integers())
        body = {"events": events}
    elif kind == "batch":
        body = draw(
            st.sampled_from(
                [
                    {},
                    {"events": []},
                    {"events": {}},
                    {"events": None},
                    {"events": events, "more": 1},
                    {"events": [*events, dict(events[0])]},  # one event id twice
                    {"events": [events[0]] * 2 + events[1:]},
                    {"events": [valid_event(WRITER + "many", tracks[0]) for _ in range(501)]},
                ]
            )
        )
    elif kind == "text":
        return headers, draw(pathological_text).encode("utf-8", "surrogatepass")
    elif kind == "bytes":
        valid = json.dumps({"events": events}).encode()
        at = draw(st.integers(0, len(valid) - 1))
        broken = draw(
            st.sampled_from([valid[:at] + b"\xff" + valid[at:], gzip.compress(valid), valid.decode().encode("utf-16")])
        )
        return headers, broken
    elif kind == "media":
        media = draw(
            st.sampled_from(
                [
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "application/xml",
                    "",
                    "application/json; charset=latin-1",
                    "multipart/form-data; boundary=x",
                ]
            )
        )
        return ([("Content-Type", media)] if media else []), json.dumps({"events": events}).encode()
    else:  # cut short anywhere
        valid = json.dumps({"events": events}).encode()
        return headers, valid[: draw(st.integers(0, len(valid) - 2))]
    return headers, json.dumps(body).encode()


@st.composite
def hostile_profiles(draw: Any, kind: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """A PUT /v1/users/{id} that breaks the contract in one way of ``kind``: the path, headers and body."""
    user = WRITER + uuid.uuid4().hex[:8]
    profile: dict[str, Any] = {"region": "GB", "display_name": "Ana", "signup_date": "2024-05-01"}
    headers = [("Content-Type", "application/json")]
    if kind == "field":
        field = draw(st.sampled_from(sorted(BAD_PROFILE_FIELDS)))
        profile[field] = draw(BAD_PROFILE_FIELDS[field])
    elif kind == "extra":
        profile[draw(st.sampled_from(["user_id", "recently_played", "long_term_vector", "updated_at", "x"]))] = ["t1"]
    elif kind == "missing":
        del profile["region"]
    elif kind == "shape":
        return f"/v1/users/{user}", headers, json.dumps(draw(st.sampled_from([[profile], [], "GB", 1, None]))).encode()
    elif kind == "text":
        return f"/v1/users/{user}", headers, draw(pathological_text).encode("utf-8", "surrogatepass")
    elif kind == "media":
        return f"/v1/users/{user}", [("Content-Type", "text/plain")], json.dumps(profile).encode()
    else:
        bad = draw(not_an_id.filter(lambda v: isinstance(v, str) and v != "" and "/" not in v))
        return "/v1/users/" + requests.utils.quote(bad, safe=""), headers, json.dumps(profile).encode()
    return f"/v1/users/{user}", headers, json.dumps(profile).encode()


def _bad_query(draw: Any, name: str) -> str:
    # An empty value is as good as none (the default applies), as in an HTML form: never one of these.
    values = {
        "limit": st.integers(max_value=0)
        | st.integers(min_value=101)
        | st.text(min_size=1, max_size=8).filter(lambda s: not s.strip().lstrip("+-").isdigit())
        | st.integers(min_value=41, max_value=5000).map(lambda n: "9" * n),
        "max_per_artist": st.integers(max_value=0) | st.integers(min_value=101),
        "exclude_played": st.text(min_size=1, max_size=6).filter(lambda s: s.strip().lower() not in BOOLS),
        "window": st.text(min_size=1, max_size=6).filter(lambda s: s not in ("hour", "day")),
        # the calendar's edges with offsets that push them past year 1 or 9999, and text that is no date-time
        "at": st.sampled_from(
            [
                "0001-01-01T00:00:00+14:00",
                "0001-01-01T00:30:00+01:00",
                "9999-12-31T23:59:59-14:00",
                "9999-12-31T23:00:00-01:00",
                "2026-02-30T00:00:00Z",
                "2026-01-01T24:00:00Z",
                "10000-01-01T00:00:00Z",
                "2026-01-01T00:00:00+25:00",
            ]
        )
        | st.text(min_size=1, max_size=12).filter(lambda s: not re.match(r"\d{4}-\d\d-\d\d", s.strip())),
    }
    return f"{name}={requests.utils.quote(str(draw(values[name])), safe='')}"


@st.composite
def hostile_reads(draw: Any, user: str, track: str, kind: str) -> str:
    """A GET of a read route with one bad ``kind`` of parameter (path or query): its path and query."""
    routes = {
        f"/v1/users/{user}/recommendations": ["limit", "exclude_played", "max_per_artist"],
        f"/v1/users/{user}/next?track_id={track}": ["limit", "exclude_played", "max_per_artist"],
        f"/v1/tracks/{track}/similar": ["limit", "max_per_artist"],
        "/v1/charts/US": ["window", "at", "limit"],
        "/v1/trending": ["limit"],
    }
    if kind == "path":  # a path parameter that is no id (or no region)
        bad = draw(not_an_id.filter(lambda v: isinstance(v, str) and v not in ("", ".", "..") and "/" not in v))
        bad = requests.utils.quote(bad, safe="")
        return draw(
            st.sampled_from(
                [
                    f"/v1/users/{bad}/recommendations",
                    f"/v1/tracks/{bad}",
                    f"/v1/users/{bad}",
                    f"/v1/tracks/{bad}/similar",
                    f"/v1/users/{user}/next?track_id={bad}",
                    f"/v1/charts/{bad}?window=day",
                    f"/v1/trending?region={bad}",
                ]
            )
        )
    path = draw(st.sampled_from(sorted(routes)))
    name = draw(st.sampled_from(routes[path]))
    return path + ("&" if "?" in path else "?") + _bad_query(draw, name)


def _refused_with_a_reason(resp: requests.Response, what: str, seen: Counter[str]) -> None:
    seen[f"{resp.status_code}"] += 1
    assert 400 <= resp.status_code < 500, f"{what}: {resp.status_code} {resp.text[:300]}"
    assert resp.headers.get("Content-Type", "").startswith("application/json"), what
    body = resp.json()
    reason = body.get("reason") or body.get("message")
    assert isinstance(reason, str) and reason.strip(), f"{what}: {body}"
    assert len(resp.content) < 4096, f"{what}: an error body of {len(resp.content)} bytes"


def _state(config: EncoreConfig, cache_url: str) -> dict[str, Any]:
    """What a hostile write could have left: listeners it named, anywhere; the idempotency records' count."""
    ddb = get_client("dynamodb", config.region)
    users = ddb.get_paginator("scan").paginate(
        TableName=config.resources.users_table,
        FilterExpression="begins_with(user_id, :w) OR begins_with(user_id, :v)",
        ExpressionAttributeValues={":w": {"S": WRITER}, ":v": {"S": "vec#" + WRITER}},
    )
    records = ddb.get_paginator("scan").paginate(TableName=config.resources.idempotency_table, Select="COUNT")
    cache = redis.Redis.from_url(cache_url)
    return {
        "profiles": sorted(i["user_id"]["S"] for page in users for i in page["Items"]),
        "idempotency_records": sum(page["Count"] for page in records),
        "cache_keys": sorted(k.decode() for k in cache.scan_iter(match=f"*{WRITER}*", count=1000)),
    }


POST_KINDS = ("field", "missing", "extra", "batch", "text", "bytes", "media", "truncated")
PUT_KINDS = ("field", "extra", "missing", "shape", "text", "media", "path")
GET_KINDS = ("path", "query")
METHODS = ("DELETE", "PATCH", "TRACE", "PROPFIND", "POST", "PUT", "GET")
PATHS = ("/v1/events", "/v1/users/u1", "/v1/users/u1/next", "/v1/tracks/t1", "/v1/charts/US", "/v1/trending",
         "/v1/health", "/v1/docs", "/v1/openapi.json", "/v1/nothing", "/", "/v1")  # fmt: skip


def _each(strategy: st.SearchStrategy[Any], send: Any) -> None:
    """``HOSTILE_PER_CLASS`` requests drawn from ``strategy``, each sent and its answer checked."""

    @settings(max_examples=HOSTILE_PER_CLASS, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(request=strategy)
    def run(request: Any) -> None:
        send(request)

    run()


def test_hostile_requests_on_every_route_are_refused_with_a_reason_and_leave_nothing(
    http_api: dict[str, Any],
) -> None:
    url, config = http_api["url"], http_api["config"]
    cache_url = http_api["twin"].cache_url
    events = history(http_api["sim"])
    user, tracks = str(events["user_id"].iloc[0]), events["track_id"].value_counts().index[:20].tolist()
    session = requests.Session()
    seen: Counter[str] = Counter()
    raw_before = set(raw_event_ids(config))
    before = _state(config, cache_url)

    def post(request: tuple[list[tuple[str, str]], bytes]) -> None:
        headers, body = request
        resp = session.post(f"{url}/v1/events", data=body, headers={**KEY, **dict(headers)}, timeout=60)
        _refused_with_a_reason(resp, f"POST /v1/events {body[:200]!r}", seen)

    def put(request: tuple[str, list[tuple[str, str]], bytes]) -> None:
        path, headers, body = request
        resp = session.put(url + path, data=body, headers={**KEY, **dict(headers)}, timeout=60)
        _refused_with_a_reason(resp, f"PUT {path} {body[:200]!r}", seen)

    def get(path: str) -> None:
        _refused_with_a_reason(session.get(url + path, headers=KEY, timeout=60), f"GET {path}", seen)

    for kind in POST_KINDS:
        _each(hostile_batches(tracks, kind), post)
    for kind in PUT_KINDS:
        _each(hostile_profiles(kind), put)
    for kind in GET_KINDS:
        _each(hostile_reads(user, tracks[0], kind), get)
    for method in METHODS:  # every method on paths the API has (where it lacks the method) and paths it lacks
        for path in PATHS:
            found = match_route([r.path for r in ROUTES], path)
            if found is not None and method in ROUTES_BY_PATH[found[0]].methods:
                continue  # a method the route has: covered above
            resp = session.request(method, url + path, data=b"{}", headers={**KEY, "Content-Type": JSON})
            _refused_with_a_reason(resp, f"{method} {path}", seen)
    not_gzip = session.post(f"{url}/v1/events", data=b"not gzip", timeout=60,
                            headers={**KEY, "Content-Type": JSON, "Content-Encoding": "gzip"})  # fmt: skip
    _refused_with_a_reason(not_gzip, "a body that is not what its Content-Encoding says", seen)
    print(f"{sum(seen.values())} hostile requests, answered {dict(seen)}")
    assert sum(seen.values()) >= len(POST_KINDS + PUT_KINDS + GET_KINDS) * HOSTILE_PER_CLASS // 2

    assert _state(config, cache_url) == before
    assert set(raw_event_ids(config)) == raw_before, "a refused batch reached the raw zone"
