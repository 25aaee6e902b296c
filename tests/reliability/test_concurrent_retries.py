"""A retried batch is applied once, even when the copies arrive at the same moment: several identical batches
sent at once through the twin's HTTP API, to as many events-function instances (processes), over several rounds.

Exactly one copy is applied (its events in the raw zone once, the listener's cached answers invalidated once,
the session vector moved once); every other copy is answered ``409`` with ``Retry-After`` (the first is still
in flight) or ``202`` with the first copy's answer marked ``replayed``. The twin's server threads are switched
every few microseconds meanwhile, so a conditional write that was not atomic would show as two applications.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
import requests
from support import KEY, RETRY_ROUNDS, history, new_events, raw_event_ids

from encore.cache import generation_key, session_key
from encore.vectors import decode

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
COPIES = 4


@pytest.fixture(scope="module")
def api(http_api: dict[str, Any]) -> Iterator[str]:
    """The API with as many warm events-function instances as copies sent, so they really run at once."""
    server = http_api["services"].api(http_api["config"], rate=100_000, burst=100_000, workers=COPIES)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def preemptive() -> Iterator[None]:
    """Thread switches every 10 µs in this process (the twin's AWS server runs here), to widen any race."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _batch(user: str, tracks: list[str]) -> list[dict[str, Any]]:
    """One complete play of each track, in order (``new_events`` with one listener)."""
    return new_events([user], tracks, len(tracks))


def _at_once(url: str, body: dict[str, Any], copies: int) -> list[requests.Response]:
    start = threading.Barrier(copies)
    answers: list[requests.Response] = []

    def send() -> None:
        session = requests.Session()
        start.wait()
        answers.append(session.post(f"{url}/v1/events", json=body, headers=KEY, timeout=60))

    threads = [threading.Thread(target=send) for _ in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_identical_batches_sent_at_once_are_applied_exactly_once(
    api: str, http_api: dict[str, Any], preemptive: None
) -> None:
    cache = redis.Redis.from_url(http_api["twin"].cache_url)
    tracks = history(http_api["sim"])["track_id"].value_counts().index[:3].tolist()  # tracks the model knows
    outcomes: Counter[str] = Counter()
    sent: list[str] = []
    for round_ in range(RETRY_ROUNDS):
        user, control = f"retry-{uuid.uuid4().hex[:8]}", f"control-{uuid.uuid4().hex[:8]}"
        events = _batch(user, tracks)
        sent += [e["event_id"] for e in events]
        answers = _at_once(api, {"events": events}, COPIES)

        applied = [a for a in answers if a.status_code == 202 and not a.json()["replayed"]]
        assert len(applied) == 1, f"round {round_}: {[(a.status_code, a.text[:200]) for a in answers]}"
        for a in answers:
            if a.status_code == 409:
                assert a.headers["Retry-After"] and a.json()["error"] == "conflict"
                outcomes["409 in flight"] += 1
            else:
                assert a.status_code == 202 and a.json() == {**applied[0].json(), "replayed": a.json()["replayed"]}
                outcomes["202 replayed" if a.json()["replayed"] else "202 applied"] += 1
        late = requests.post(f"{api}/v1/events", json={"events": events}, headers=KEY, timeout=60)
        assert late.status_code == 202 and late.json()["replayed"] is True
        outcomes["202 replayed (after)"] += 1

        assert int(cache.get(generation_key(user)) or 0) == 1  # cached answers invalidated once
        # The same plays applied once, to a listener of their own: the session vector must be the same.
        twin = [{**e, "event_id": str(uuid.uuid4()), "user_id": control} for e in events]
        assert requests.post(f"{api}/v1/events", json={"events": twin}, headers=KEY, timeout=60).status_code == 202
        mine, once = decode(cache.get(session_key(user))), decode(cache.get(session_key(control)))  # type: ignore[arg-type]
        assert mine is not None and once is not None and np.allclose(mine, once)

    delivered = raw_event_ids(http_api["config"])
    assert {e: delivered[e] for e in sent} == dict.fromkeys(sent, 1)  # each event in the raw zone exactly once
    print(f"{RETRY_ROUNDS} rounds of {COPIES} identical batches at once: {dict(outcomes)}")


def test_the_same_event_ids_with_other_content_are_refused_and_nothing_is_applied_again(
    api: str, http_api: dict[str, Any]
) -> None:
    cache = redis.Redis.from_url(http_api["twin"].cache_url)
    tracks = history(http_api["sim"])["track_id"].value_counts().index[:2].tolist()
    user = f"retry-{uuid.uuid4().hex[:8]}"
    events = _batch(user, tracks)
    assert requests.post(f"{api}/v1/events", json={"events": events}, headers=KEY, timeout=60).status_code == 202
    session = cache.get(session_key(user))
    changed = [{**events[0], "played_ms": 1000}, *events[1:]]
    resp = requests.post(f"{api}/v1/events", json={"events": changed}, headers=KEY, timeout=60)
    assert resp.status_code == 409 and "other content" in resp.json()["reason"]
    reordered = list(reversed(events))  # the same events in another order are the same batch
    again = requests.post(f"{api}/v1/events", json={"events": reordered}, headers=KEY, timeout=60)
    assert again.status_code == 202 and again.json()["replayed"] is True
    assert int(cache.get(generation_key(user)) or 0) == 1 and cache.get(session_key(user)) == session
    delivered = raw_event_ids(http_api["config"])
    assert all(delivered[e["event_id"]] == 1 for e in events)
