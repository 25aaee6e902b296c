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
    lock = threading.Lock()
    deadline = time.monotonic() + LOAD_SECONDS

    def client(seed: int) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        session.headers.update(KEY)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            if rng.random() < POST_SHARE:
                batch = new_events(users, tracks, rng.randint(1, 10), seed=seed * 100_000 + n)
                path = "/v1/events"
                resp = session.post(url + path, json={"events": batch}, timeout=30)
                if resp.status_code == 202:
                    with lock:
                        acked.extend(e["event_id"] for e in batch)
            else:
                user, track = rng.choice(users), rng.choice(tracks)
                path = rng.choice([f"/v1/users/{user}/recommendations", f"/v1/users/{user}/next?track_id={track}",
                                   f"/v1/tracks/{track}/similar", f"/v1/tracks/{track}",
                                   f"/v1/charts/{rng.choice(regions)}?window=day", "/v1/trending"])  # fmt: skip
                resp = session.get(url + path, timeout=30)
            with lock:
                statuses[resp.status_code] += 1
                if resp.status_code >= 300:
                    refused.append(f"{path}: {resp.status_code} {resp.text[:300]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(statuses.values())
    print(f"{total} requests in {LOAD_SECONDS:.0f} s by {CLIENTS} clients: {dict(statuses)}; {len(acked)} events acked")
    assert total > CLIENTS * 5 and set(statuses) <= {200, 202}, refused[:5]
    assert len(acked) > 100

    now = datetime.now(UTC)
    run_job("curate_events", config, run_time=f"{now:%Y-%m-%dT%H:%M:%SZ}", lookback_days=1)
    curated = curated_counts(config, f"{now:%Y-%m-%d}", tmp_path)
    assert all(curated[e] == 1 for e in acked), [e for e in acked if curated[e] != 1][:5]
