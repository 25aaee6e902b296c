"""The twin's API Gateway over real HTTP: API keys, the usage plan's throttle, routing, and every response
checked against the OpenAPI document the API itself serves (the contract test)."""

from __future__ import annotations

import gzip
import json
import socket
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from jsonschema import Draft202012Validator

from encore_local.twin.apigateway import DEFAULT_API_KEY
from encore_local.twin.lambda_ import Instance

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def get(url: str, path: str, key: str | None = DEFAULT_API_KEY, **params: str) -> requests.Response:
    headers = {"x-api-key": key} if key else {}
    return requests.get(url + path, params=params, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def spec(served_api: str) -> dict[str, Any]:
    resp = get(served_api, "/v1/openapi.json")
    assert resp.status_code == 200
    return resp.json()  # type: ignore[no-any-return]


def check_contract(spec: dict[str, Any], template: str, method: str, resp: requests.Response) -> None:
    operation = spec["paths"][template][method.lower()]
    responses = operation["responses"]
    declared = responses.get(str(resp.status_code)) or responses.get("default")
    assert declared is not None, f"{method} {template} answered {resp.status_code}, which the document does not declare"
    schema = declared.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return
    # "#/components/..." references resolve against the schema's root, so the components ride along.
    validator = Draft202012Validator({**schema, "components": spec.get("components", {})})
    errors = sorted(validator.iter_errors(resp.json()), key=lambda e: list(e.path))
    assert not errors, f"{method} {template}: {errors[0].message} at {list(errors[0].path)}"


def test_health_needs_no_key_and_everything_else_does(served_api: str) -> None:
    assert get(served_api, "/v1/health", key=None).status_code == 200
    resp = get(served_api, "/v1/trending", key=None)
    assert resp.status_code == 403 and resp.json() == {"message": "Forbidden"}
    assert get(served_api, "/v1/trending", key="wrong").status_code == 403
    assert get(served_api, "/v1/trending").status_code == 200
    assert get(served_api, "/v1/nowhere").json() == {"message": "Missing Authentication Token"}


def test_the_usage_plan_throttles(served_lake: dict[str, Any]) -> None:
    server = served_lake["services"].api(served_lake["config"], rate=0.5, burst=2)
    url = server.start()
    try:
        codes = [get(url, "/v1/trending").status_code for _ in range(4)]
    finally:
        server.stop()
    assert codes[:2] == [200, 200] and 429 in codes[2:]


def test_events_post_over_http(served_api: str) -> None:
    event = {"event_id": str(uuid.uuid4()), "user_id": "http-user", "track_id": "t1", "action": "complete",
             "timestamp": int(time.time() * 1000), "played_ms": 1000, "track_duration_ms": 1000,
             "region": "US"}  # fmt: skip
    resp = requests.post(f"{served_api}/v1/events", json={"events": [event]}, headers={"x-api-key": DEFAULT_API_KEY},
                         timeout=30)  # fmt: skip
    assert resp.status_code == 202 and resp.json()["accepted"] == 1


def test_every_response_matches_the_openapi_document(
    served_api: str, spec: dict[str, Any], served_lake: dict[str, Any]
) -> None:
    rows = (served_lake["sim"] / "catalog/tracks.csv").read_text().splitlines()[1:3]
    tracks = [row.split(",")[0] for row in rows]
    user = "u000001"
    calls = [
        ("/v1/users/{user_id}/recommendations", f"/v1/users/{user}/recommendations", {"limit": "5"}),
        ("/v1/users/{user_id}/recommendations", "/v1/users/brand-new/recommendations", {}),
        ("/v1/users/{user_id}/next", f"/v1/users/{user}/next", {"track_id": tracks[0]}),
        ("/v1/tracks/{track_id}/similar", f"/v1/tracks/{tracks[1]}/similar", {}),
        ("/v1/tracks/{track_id}", f"/v1/tracks/{tracks[0]}", {}),
        ("/v1/tracks/{track_id}", "/v1/tracks/unknown", {}),
        ("/v1/charts/{region}", "/v1/charts/US", {"window": "hour"}),
        ("/v1/charts/{region}", "/v1/charts/US", {"window": "year"}),
        ("/v1/trending", "/v1/trending", {"region": "GLOBAL"}),
        ("/v1/users/{user_id}/recommendations", f"/v1/users/{user}/recommendations", {"limit": "500"}),
        ("/v1/health", "/v1/health", {}),
    ]
    for template, path, params in calls:
        resp = get(served_api, path, **params)
        assert resp.status_code < 500, (path, resp.text)
        check_contract(spec, template, "GET", resp)


def test_instances_in_processes_answer_concurrently_and_dead_ones_are_replaced(
    served_lake: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to two instances of each function, each in a process of its own: concurrent requests all come back, timed
    inside. An instance that dies while idle is replaced before it is used; one that dies mid-invocation gives API
    Gateway's 502 for that request only, and another instance serves the next."""
    server = served_lake["services"].api(served_lake["config"], workers=2, prestart=1)
    url = server.start()
    try:
        first = [i.proc for i in server.instances]  # type: ignore[union-attr]
        assert len(first) == 3 and all(p.poll() is None for p in first)  # serving, events, ops: one each to start
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: get(url, "/v1/trending"), range(12)))
        assert all(r.status_code == 200 and float(r.headers["x-twin-handler-ms"]) > 0 for r in answers)
        assert len(server.instances) == 4  # the serving function scaled to two under concurrent requests, no more

        for proc in first:
            proc.kill()
            proc.wait()
        assert [get(url, "/v1/trending").status_code for _ in range(3)] == [200, 200, 200]
        second = [i.proc for i in server.instances]  # type: ignore[union-attr]
        assert any(p not in first for p in second)  # started in place of a dead one, when it was needed

        monkeypatch.setattr(Instance, "alive", lambda self: True)  # it dies after being picked
        serving = server.integrations[("GET", "/v1/trending")].name
        picked_next = server.lambdas._idle[serving][-1]  # the warmest idle instance is taken first
        picked_next.proc.kill()
        picked_next.proc.wait()
        died = get(url, "/v1/trending")
        assert died.status_code == 502 and died.json() == {"message": "Internal server error"}
        assert get(url, "/v1/trending").status_code == 200
    finally:
        server.stop()
    assert not server.instances


def _raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are and read the answer to the end (the server closes after a framing error)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


def _length(data: bytes) -> int:
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    return next((int(line.split(":")[1]) for line in head.split("\r\n") if line.startswith("content-length:")), 0)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /v1/health HTTP/9.9\r\n\r\n", 505),
        (b"POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
        (b"POST /v1/events HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST /v1/events HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"GET /v1/health HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Length: 10485761\r\n\r\n", 413),
    ],
    ids=[
        "request-line",
        "version",
        "length-not-a-number",
        "two-lengths",
        "chunk-size",
        "encoding",
        "header-size",
        "payload-limit",
    ],
)
def test_malformed_framing_gets_a_json_answer_not_a_dropped_connection(
    served_api: str, request_bytes: bytes, status: int
) -> None:
    code, headers, body = _raw(served_api, request_bytes)
    assert code == status
    assert headers["Content-Type"] == "application/json" and json.loads(body)["message"]
    assert "Server" not in headers  # no server banner


def test_a_chunked_body_is_read_as_the_events_it_carries(served_api: str) -> None:
    event = {"event_id": str(uuid.uuid4()), "user_id": "chunked-user", "track_id": "t1", "action": "complete",
             "timestamp": int(time.time() * 1000), "played_ms": 1000, "track_duration_ms": 1000,
             "region": "US"}  # fmt: skip
    payload = json.dumps({"events": [event]}).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(payload[i : i + 50]), payload[i : i + 50]) for i in range(0, len(payload), 50)
    )
    head = (f"POST /v1/events HTTP/1.1\r\nHost: t\r\nx-api-key: {DEFAULT_API_KEY}\r\nContent-Type: application/json"
            "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")  # fmt: skip
    request = head.encode() + chunks + b"0\r\n\r\n"
    code, _, body = _raw(served_api, request)
    assert code == 202 and json.loads(body)["accepted"] == 1


@pytest.mark.parametrize(
    ("coding", "compress", "status"),
    [
        ("gzip", gzip.compress, 202),
        ("deflate", zlib.compress, 202),
        ("GZIP", gzip.compress, 202),
        ("br", gzip.compress, 415),  # a coding API Gateway does not decompress
        ("gzip", lambda data: data, 415),  # says gzip, is not
        ("gzip", lambda data: gzip.compress(data)[:-8], 415),  # cut short
    ],
)
def test_a_body_is_decompressed_as_its_content_encoding_says_or_refused_as_api_gateway_does(
    served_api: str, coding: str, compress: Any, status: int
) -> None:
    event = {"event_id": str(uuid.uuid4()), "user_id": "gzip-user", "track_id": "t1", "action": "complete",
             "timestamp": int(time.time() * 1000), "played_ms": 1000, "track_duration_ms": 1000,
             "region": "US"}  # fmt: skip
    headers = {"x-api-key": DEFAULT_API_KEY, "Content-Type": "application/json", "Content-Encoding": coding}
    resp = requests.post(f"{served_api}/v1/events", data=compress(json.dumps({"events": [event]}).encode()),
                         headers=headers, timeout=30)  # fmt: skip
    assert resp.status_code == status, resp.text
    expected = {"accepted": 1} if status == 202 else {"message": "Unsupported Media Type"}
    assert expected.items() <= resp.json().items()


def test_methods_the_api_lacks_are_api_gateways_403_and_head_has_no_body(served_api: str) -> None:
    head = requests.head(f"{served_api}/v1/health", timeout=30)
    assert head.status_code == 403 and head.content == b"" and int(head.headers["Content-Length"]) > 0
    code, _, body = _raw(served_api, b"BREW /v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert code == 403 and json.loads(body) == {"message": "Missing Authentication Token"}
    preflight = requests.options(f"{served_api}/v1/trending", headers={"Origin": "https://example.com",
                                 "Access-Control-Request-Method": "GET"}, timeout=30)  # fmt: skip
    assert preflight.status_code == 204 and "GET" in preflight.headers["Access-Control-Allow-Methods"]


def test_path_parameters_arrive_percent_decoded(served_api: str, served_lake: dict[str, Any]) -> None:
    track = (served_lake["sim"] / "catalog/tracks.csv").read_text().splitlines()[1].split(",")[0]
    plain = get(served_api, f"/v1/tracks/{track}")
    encoded = get(served_api, "/v1/tracks/" + "".join(f"%{b:02X}" for b in track.encode()))
    assert plain.status_code == encoded.status_code == 200 and encoded.json() == plain.json()


def test_an_answer_later_than_the_integration_timeout_is_api_gateways_504(served_lake: dict[str, Any]) -> None:
    server = served_lake["services"].api(served_lake["config"], prestart=1)
    server.integration_timeout_s = 0.0001  # no handler answers within 0.1 ms; API Gateway's own is 29 s
    url = server.start()
    try:
        late = get(url, "/v1/trending")
    finally:
        server.stop()
    assert late.status_code == 504 and late.json() == {"message": "Endpoint request timed out"}
