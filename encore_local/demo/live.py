"""The demo's live hour: the simulator's next day, replayed through the twin's HTTP API, and the checks that
judge what came back.

The simulated history covers days 1..N and trains the model; day N+1 is "live". Its busiest hour is posted to
``POST /v1/events`` in the small batches an app sends, while sample listeners ask for home, next song, similar
tracks and charts. Every check here reads only what the API answered and what the lake holds afterwards.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from encore.config import EncoreConfig
from encore.scoring import is_qualifying_play
from encore_local.lake import read_table
from encore_local.simulator.run import CATALOG_CSV, EVENTS_DIR

MS_PER_HOUR = 3_600_000
EVENTS_PER_POST = 10  # a listener's app flushes its own queue every few tracks
POST_ATTEMPTS = 4  # a 503 (the stream would not take the batch) is retried whole, as the API asks
HOME_LIMIT = 20
BURST_PLAYS = 8
CHOOSING_PLAYS = 5  # plays per choosing listener: one from home, then from each next-song answer
HOME_GLANCE = 3  # the home tracks a listener looks at before choosing (what one screen shows)
LIKED_PERCENTILE = 90  # a track is played to the end when liked more than this share of the catalog


class ApiClient:
    """HTTP calls to the twin's API with the key, one keep-alive session per thread, latencies kept per route."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url.rstrip("/"), key
        self.latency_ms: dict[str, list[float]] = {}
        self.statuses: Counter[int] = Counter()
        self._local = threading.local()
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers["x-api-key"] = self.key
        return self._local.session  # type: ignore[no-any-return]

    def call(self, route: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        started = time.perf_counter()
        resp = self._session().request(method, self.url + path, timeout=30, **kwargs)
        elapsed = (time.perf_counter() - started) * 1000
        with self._lock:
            self.latency_ms.setdefault(route, []).append(elapsed)
            self.statuses[resp.status_code] += 1
        return resp.status_code, resp.json() if resp.content else None

    def get(self, route: str, path: str, **params: Any) -> Any:
        status, body = self.call(route, "GET", path, params=params or None)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body}")
        return body


@dataclass
class LiveDay:
    """The simulated day after the history: its events, the catalog, and what the history says."""

    events: pd.DataFrame  # the day's events, in time order
    history: pd.DataFrame  # user_id, track_id, action, played_ms of days 1..N
    tracks: pd.DataFrame  # track_id, track_genre, duration_ms

    @classmethod
    def load(cls, sim_dir: Path, history_days: int) -> LiveDay:
        files = sorted((sim_dir / EVENTS_DIR).glob("*.jsonl*"))
        read = [pd.read_json(p, lines=True, convert_dates=False, dtype={"timestamp": "int64"}) for p in files]
        tracks = pd.read_csv(sim_dir / CATALOG_CSV, usecols=["track_id", "track_genre", "duration_ms"])
        history = pd.concat(read[:history_days], ignore_index=True)[["user_id", "track_id", "action", "played_ms"]]
        live = read[history_days].sort_values("timestamp", kind="stable").reset_index(drop=True)
        return cls(live, history, tracks)

    def busiest_hour(self) -> tuple[int, pd.DataFrame]:
        """The start of the day's busiest UTC hour (epoch ms) and its events."""
        hours = self.events["timestamp"] // MS_PER_HOUR
        busiest = int(hours.value_counts().idxmax())
        return busiest * MS_PER_HOUR, self.events[hours == busiest].reset_index(drop=True)


def qualifying(events: pd.DataFrame, config: EncoreConfig) -> pd.DataFrame:
    mask = [
        is_qualifying_play(a, int(p), config.session)
        for a, p in zip(events["action"], events["played_ms"], strict=True)
    ]
    return events[np.asarray(mask, dtype=bool)]


def _records(events: pd.DataFrame) -> list[dict[str, Any]]:
    """Events as the contract has them: optional fields the simulator left empty are left out."""
    out: list[dict[str, Any]] = []
    for row in events.to_dict("records"):
        kept = {str(k): v for k, v in row.items() if not pd.isna(v)}
        out.append({k: int(v) if isinstance(v, np.integer) else v for k, v in kept.items()})
    return out


def post_events(client: ApiClient, events: list[dict[str, Any]]) -> bool:
    """POST one batch; True once it is acknowledged with 202 (a 503 is retried with backoff, as clients should)."""
    for attempt in range(POST_ATTEMPTS):
        status, _ = client.call("POST /v1/events", "POST", "/v1/events", json={"events": events})
        if status == 202:
            return True
        if status != 503:
            raise RuntimeError(f"POST /v1/events answered {status}")
        time.sleep(0.2 * 2**attempt)
    return False


@dataclass
class Replay:
    hour_start_ms: int
    posted: int = 0
    acked: list[dict[str, Any]] = field(default_factory=list)
    shown: dict[str, list[list[str]]] = field(default_factory=dict)  # each listener's answers, in the order shown
    reads: int = 0
    seconds: float = 0.0


def replay_hour(
    client: ApiClient, hour_start_ms: int, events: pd.DataFrame, listeners: list[str], *, min_read_rounds: int = 20
) -> Replay:
    """Post the hour's events, each listener's in batches as their app would send them, in time order, from two
    senders while each sample listener's reader asks for home,
    next song, similar tracks and charts, until the senders are done and each reader did ``min_read_rounds``."""
    records = _records(events)
    by_user: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_user.setdefault(record["user_id"], []).append(record)
    batches = [mine[i : i + EVENTS_PER_POST] for mine in by_user.values() for i in range(0, len(mine), EVENTS_PER_POST)]
    batches.sort(key=lambda batch: batch[-1]["timestamp"])  # sent when the app flushes: after its last event
    result = Replay(hour_start_ms, posted=len(records))
    cursor = iter(range(len(batches)))
    lock = threading.Lock()
    senders_done = threading.Event()
    started = time.perf_counter()

    def sender() -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            if post_events(client, batches[i]):
                with lock:
                    result.acked.extend(batches[i])

    def reader(user: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        rounds = 0
        mine = by_user.get(user) or records  # the tracks this listener plays in the hour
        region = mine[0]["region"]
        while not senders_done.is_set() or rounds < min_read_rounds:
            track = mine[int(rng.integers(len(mine)))]["track_id"]
            client.get("home", f"/v1/users/{user}/recommendations", limit=10)
            client.get("next song", f"/v1/users/{user}/next", track_id=track, limit=10)
            client.get("similar", f"/v1/tracks/{track}/similar", limit=10)
            client.get("charts", f"/v1/charts/{region}", window="hour")
            rounds += 1
            with lock:
                result.reads += 4

    senders = [threading.Thread(target=sender, name=f"sender-{i}") for i in range(2)]
    readers = [threading.Thread(target=reader, args=(u, i), name=f"reader-{u}") for i, u in enumerate(listeners)]
    for t in senders + readers:
        t.start()
    for t in senders:
        t.join()
    senders_done.set()
    for t in readers:
        t.join()
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class HeldOut:
    """Warm listeners' home pages (asked before the live day was sent) against popularity, scored on the tracks
    each listener then played on the live day."""

    listeners: int
    model_hits: int
    popularity_hits: int
    model_precision: float
    popularity_precision: float
    model_hit_rate: float
    popularity_hit_rate: float
    fallbacks: int
    details: list[dict[str, Any]]  # per listener: what was recommended, the baseline, what they then played


def held_out(client: ApiClient, day: LiveDay, config: EncoreConfig, max_listeners: int, seed: int = 3) -> HeldOut:
    played = qualifying(day.events, config).groupby("user_id")["track_id"].agg(set)
    # Home recommends only what the listener has not played: both sides are judged on the new tracks of the day.
    before = day.history.groupby("user_id")["track_id"].agg(set)
    known = set(day.history["user_id"])
    warm = sorted(u for u in played.index if u in known)
    warm = [warm[i] for i in np.random.default_rng(seed).permutation(len(warm))[:max_listeners]]
    popular = qualifying(day.history, config)["track_id"].value_counts()
    popular_ids = popular.index[: HOME_LIMIT + 200].tolist()
    hits = {"model": [], "popularity": []}  # type: dict[str, list[int]]
    fallbacks = 0
    details = []
    for user in warm:
        exclude = set(client.get("profile", f"/v1/users/{user}").get("recently_played", [])) | before[user]
        body = client.get("home", f"/v1/users/{user}/recommendations", limit=HOME_LIMIT)
        fallbacks += bool(body["fallback"])
        model = [i["track_id"] for i in body["items"]]
        baseline = [t for t in popular_ids if t not in exclude][:HOME_LIMIT]
        new = played[user] - before[user]
        hits["model"].append(len(set(model) & new))
        hits["popularity"].append(len(set(baseline) & new))
        details.append({"user_id": user, "model": model, "popularity": baseline, "played": sorted(new)})
    n = max(len(warm), 1)
    m, p = np.asarray(hits["model"]), np.asarray(hits["popularity"])
    return HeldOut(
        listeners=len(warm),
        model_hits=int(m.sum()),
        popularity_hits=int(p.sum()),
        model_precision=float(m.sum() / (n * HOME_LIMIT)),
        popularity_precision=float(p.sum() / (n * HOME_LIMIT)),
        model_hit_rate=float((m > 0).mean()) if len(m) else 0.0,
        popularity_hit_rate=float((p > 0).mean()) if len(p) else 0.0,
        fallbacks=fallbacks,
        details=details,
    )


@dataclass
class Burst:
    """A listener plays several tracks of one genre that is not among their favourites; next song follows."""

    user_id: str
    genre: str
    played: list[str]
    base_share: float  # the genre's share of all plays in the history (what any list would hold by chance)
    home_share_before: float  # the genre's share of the listener's home page before the burst
    next_share_before: float  # ... of next song after the same track, before the burst
    next_share_after: float
    next_after: list[dict[str, Any]]
    acked: list[dict[str, Any]]

    def leans(self) -> bool:
        """Next song holds more of the genre than the listener's own home page did and than the genre's share of
        all plays. (Serving keeps 0.7 of the long-term taste, so a burst against it tilts next song toward the
        genre rather than making it mostly that genre.)"""
        return self.next_share_after > max(self.home_share_before, self.base_share)


def genre_burst(client: ApiClient, day: LiveDay, user: str, region: str, at_ms: int) -> Burst:
    genre_of = dict(zip(day.tracks["track_id"], day.tracks["track_genre"], strict=True))
    mine = day.history[day.history["user_id"] == user]["track_id"].map(genre_of).value_counts()
    plays_by_genre = day.history["track_id"].map(genre_of).value_counts()
    # the least-played genre of this listener among the catalog's bigger genres (enough tracks to follow)
    candidates = [g for g in plays_by_genre.index[:8] if g not in mine.index[:3]]
    genre = min(candidates, key=lambda g: (mine.get(g, 0), g))
    heard = set(day.history.loc[day.history["user_id"] == user, "track_id"])
    popular = day.history["track_id"].value_counts().index
    picks = [t for t in popular if genre_of.get(t) == genre and t not in heard][:BURST_PLAYS]
    durations = dict(zip(day.tracks["track_id"], day.tracks["duration_ms"], strict=True))

    def share(items: list[dict[str, Any]]) -> float:
        return float(sum(genre_of.get(i["track_id"]) == genre for i in items) / max(len(items), 1))

    home = client.get("home", f"/v1/users/{user}/recommendations", limit=HOME_LIMIT)["items"]
    seed = picks[-1]
    before = client.get("next song", f"/v1/users/{user}/next", track_id=seed, limit=HOME_LIMIT)["items"]
    events = [
        {
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"encore-demo/burst/{user}/{t}")),
            "user_id": user,
            "track_id": t,
            "action": "complete",
            "timestamp": at_ms + i * 200_000,
            "played_ms": int(durations[t]),
            "track_duration_ms": int(durations[t]),
            "session_id": f"demo-burst-{user}",
            "region": region,
            "source": "app",
        }
        for i, t in enumerate(picks)
    ]
    acked = events if post_events(client, events) else []
    after = client.get("next song", f"/v1/users/{user}/next", track_id=seed, limit=HOME_LIMIT)["items"]
    base = float(plays_by_genre.get(genre, 0) / max(int(plays_by_genre.sum()), 1))
    return Burst(user, genre, picks, base, share(home), share(before), share(after), after, acked)


def curated_counts(config: EncoreConfig, day: str, scratch: Path) -> Counter[str]:
    """How many times each event id is in the curated table's partition ``dt=day`` (read from the lake)."""
    table = read_table(config, f"{config.lake.curated_events}dt={day}/", scratch, columns=["event_id"])
    return Counter(table["event_id"].tolist() if len(table) else [])


def expected_chart(events: pd.DataFrame, config: EncoreConfig, limit: int) -> dict[str, list[tuple[str, int]]]:
    """Each region's (and GLOBAL's) hour chart as the events define it: qualifying plays, most first, ties by id."""
    plays = qualifying(events, config)
    out: dict[str, list[tuple[str, int]]] = {}
    groups: Iterator[tuple[str, pd.DataFrame]] = iter([("GLOBAL", plays), *plays.groupby("region")])
    for region, rows in groups:
        counts = rows["track_id"].value_counts()
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        out[str(region)] = [(str(t), int(c)) for t, c in ranked]
    return out


def served_charts(
    client: ApiClient, regions: list[str], hour_start_ms: int, limit: int
) -> dict[str, list[tuple[str, int]]]:
    at = pd.Timestamp(hour_start_ms, unit="ms", tz="UTC").isoformat()
    out = {}
    for region in regions:
        body = client.get("charts", f"/v1/charts/{region}", window="hour", at=at, limit=limit)
        out[region] = [(i["track_id"], int(i["plays"])) for i in body["items"]]
    return out


@dataclass
class Choices:
    """Sample listeners who chose among what they were shown: their plays, each with its answer's id."""

    listeners: int = 0
    answers: int = 0
    posted: int = 0
    acked: list[dict[str, Any]] = field(default_factory=list)
    shown: dict[str, list[list[str]]] = field(default_factory=dict)  # each listener's answers, in the order shown

    @property
    def completes(self) -> int:
        return sum(e["action"] == "complete" for e in self.acked)


def listeners_choose(client: ApiClient, day: LiveDay, truth: Any, users: list[str], now_ms: Any) -> Choices:
    """Each sample listener uses the app as a person would, with the position bias people have: they open their
    home page and play the one of its first ``HOME_GLANCE`` tracks their true taste (the simulator's ground truth)
    likes best; then the player goes on to the first track of each next-song answer, ``CHOOSING_PLAYS`` plays in
    all. A track is played to the end when the listener likes it more than ``LIKED_PERCENTILE`` % of the catalog,
    else skipped after a few seconds. Every play carries the ``recommendation_id`` and context of the answer it
    came from, so a model that puts what they like first earns more complete plays. (Picking the best of all ten
    shown, a list of popular tracks almost always holds one to like: that measures the list's best track, not the
    list.) ``now_ms()``: the twin's clock."""
    user_index = {str(u): i for i, u in enumerate(truth.user_ids)}
    track_index = {str(t): i for i, t in enumerate(truth.track_ids)}
    durations = dict(zip(day.tracks["track_id"], day.tracks["duration_ms"], strict=True))
    region_of = dict(zip(day.events["user_id"], day.events["region"], strict=False))
    out = Choices()
    for user in users:
        if user not in user_index:
            continue
        affinity = truth.affinity(user_index[user])
        bar = float(np.percentile(affinity, LIKED_PERCENTILE))
        out.listeners += 1
        answer, context, at = client.get("home", f"/v1/users/{user}/recommendations", limit=10), "home", now_ms()
        for step in range(CHOOSING_PLAYS):
            out.answers += 1
            shown = [i["track_id"] for i in answer["items"] if i["track_id"] in track_index]
            out.shown.setdefault(user, []).append(shown)
            if not shown:
                break
            glance = shown[:HOME_GLANCE] if context == "home" else shown[:1]  # next song: the player goes on
            pick = max(glance, key=lambda t: affinity[track_index[t]])
            liked = affinity[track_index[pick]] > bar
            duration = int(durations.get(pick, 180_000))
            played = duration if liked else 5_000
            event = {
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"encore-demo/choose/{user}/{step}")),
                "user_id": user, "track_id": pick, "action": "complete" if liked else "skip", "timestamp": at,
                "played_ms": played, "track_duration_ms": duration, "session_id": f"demo-choose-{user}",
                "region": region_of.get(user, "US"), "source": "app", "context": context,
                "recommendation_id": answer["recommendation_id"],
            }  # fmt: skip
            out.posted += 1
            if post_events(client, [event]):
                out.acked.append(event)
            at = max(at + played, now_ms())
            answer, context = client.get("next song", f"/v1/users/{user}/next", track_id=pick, limit=10), "next"
    return out


def attribution_table(config: EncoreConfig, day: str, scratch: Path) -> pd.DataFrame:
    """The ``attribute_plays`` job's rows for one day of answers (read from the lake)."""
    return read_table(config, f"{config.lake.features}attribution/day={day}/", scratch)
