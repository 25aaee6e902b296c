"""A bounded load run on loopback: 32 clients for ``ENCORE_LOAD_SECONDS`` (60 in ``make reliability``), mixed
reads and event posts through the twin's HTTP API. Zero errors, and every event acknowledged with 202 is in
the curated table exactly once after the next curation."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from support import KEY, LOAD_SECONDS, history, new_events

from encore_local.demo.live import curated_counts
from encore_local.jobs import run_job

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
CLIENTS = 32
POST_SHARE = 0.2


class _NoAnswer:
    """A request that got no HTTP answer (a timeout, a dropped connection): an error like any other."""

    def __init__(self, exc: Exception, seconds: float) -> None:
        self.status_code, self.text = 0, f"no answer after {seconds:.1f} s: {type(exc).__name__}: {exc}"


def _send(session: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
    started = time.monotonic()
    try:
        return session.request(method, url, timeout=35, **kwargs)  # past API Gateway's 29 s, so a 504 can arrive
    except requests.RequestException as exc:
        return _NoAnswer(exc, time.monotonic() - started)


def test_32_clients_mixed_reads_and_posts_no_errors_every_acked_event_curated_once(
    http_api: dict[str, Any], tmp_path: Any
) -> None:
    url, config = http_api["url"], http_api["config"]
    events = history(http_api["sim"])
    users = events["user_id"].unique().tolist()
    tracks = events["track_id"].unique().tolist()
    regions = events["region"].unique().tolist()
    statuses: Counter[int] = Counter()
    acked: list[str] = []
    refused: list[str] = []
    waited: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + LOAD_SECONDS

    def client(seed: int) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        session.headers.update(KEY)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            sent = time.monotonic()
            if rng.random() < POST_SHARE:
                batch = new_events(users, tracks, rng.randint(1, 10), seed=seed * 100_000 + n)
                path = "/v1/events"
                resp = _send(session, "POST", url + path, json={"events": batch})
                if resp.status_code == 202:
                    with lock:
                        acked.extend(e["event_id"] for e in batch)
            else:
                user, track = rng.choice(users), rng.choice(tracks)
                path = rng.choice([f"/v1/users/{user}/recommendations", f"/v1/users/{user}/next?track_id={track}",
                                   f"/v1/tracks/{track}/similar", f"/v1/tracks/{track}",
                                   f"/v1/charts/{rng.choice(regions)}?window=day", "/v1/trending"])  # fmt: skip
                resp = _send(session, "GET", url + path)
            with lock:
                waited.append(time.monotonic() - sent)
                statuses[resp.status_code] += 1
                if resp.status_code not in (200, 202):
                    refused.append(f"{path}: {resp.status_code} {resp.text[:300]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(statuses.values())
    p50, p99 = (sorted(waited)[int(q * (len(waited) - 1))] for q in (0.5, 0.99))
    print(f"{total} requests in {LOAD_SECONDS:.0f} s by {CLIENTS} clients: {dict(statuses)}; {len(acked)} events "
          f"acked; answered in p50 {p50:.2f} s, p99 {p99:.2f} s, slowest {max(waited):.2f} s")  # fmt: skip
    assert total > CLIENTS * 5 and set(statuses) <= {200, 202}, refused[:5]
    assert len(acked) > 100

    now = datetime.now(UTC)
    run_job("curate_events", config, run_time=f"{now:%Y-%m-%dT%H:%M:%SZ}", lookback_days=1)
    curated = curated_counts(config, f"{now:%Y-%m-%d}", tmp_path)
    assert all(curated[e] == 1 for e in acked), [e for e in acked if curated[e] != 1][:5]
