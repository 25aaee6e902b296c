"""The session and result cache (ElastiCache; redis in the twin): short-term vectors, generations, results.

Keys (built only by the functions below):
- ``sess:{<user>}``  the short-term vector (float32 bytes), expiring ``session.ttl_seconds`` after the last play
- ``gen:{<user>}``   the listener's generation, bumped by every accepted batch; result keys include it, so a new
                     event makes every cached recommendation of that listener unreachable at once
- ``rec:<...>``      cached responses (set by the serving path)
- ``tmeta:<track>``  track metadata read through from DynamoDB

ElastiCache Serverless always runs in cluster mode, where a multi-key command is refused (``CROSSSLOT``) unless
its keys hash to one slot. The braces in the listener's keys are a hash tag: only ``<user>`` is hashed, so
``gen:{u}`` and ``sess:{u}`` share a slot and ``session_state`` stays one MGET. Listener ids are validated to
``^[A-Za-z0-9][A-Za-z0-9_.:\\-]{0,127}$`` before they get here (no braces; even if one slipped through, both keys
would carry the same tag). Keys that need not travel together (``tmeta:``, many listeners' generations) are spread
by the cluster client, which splits ``get_many`` and pipelines by slot.

Every method raises ``CacheUnavailable`` when the cache cannot be reached; callers degrade (skip the cache).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from encore.errors import StoreUnavailable
from encore.vectors import FloatArray, decode, encode

GENERATION_TTL_S = 7 * 86_400
# Short timeouts: a sick cache must cost a request milliseconds, not seconds.
_TIMEOUTS: dict[str, Any] = {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}

Client = redis.Redis | RedisCluster


class CacheUnavailable(StoreUnavailable):
    def __init__(self, detail: str) -> None:
        super().__init__("cache", detail)


def session_key(user_id: str) -> str:
    """The listener's short-term vector; hash-tagged with the listener, like ``generation_key``."""
    return f"sess:{{{user_id}}}"


def generation_key(user_id: str) -> str:
    """The listener's generation; in the same cluster slot as ``session_key(user_id)``."""
    return f"gen:{{{user_id}}}"


def track_metadata_key(track_id: str) -> str:
    return f"tmeta:{track_id}"


def result_key(*parts: object) -> str:
    """A cached response, named by the parts that decide it (read and written with single-key commands)."""
    return "rec:" + ":".join(str(p) for p in parts)


_ERRORS = (redis.RedisError, RedisClusterException, OSError)


@functools.cache
def _client(url: str) -> Client:
    """One client per URL and process: a cluster client when the server is a cluster node (ElastiCache Serverless,
    the twin's redis-server), else a plain one (a single node such as the twin's fakeredis fallback).

    The mode is learned once, from the server: ``RedisCluster`` asks the node for ``CLUSTER SLOTS`` first thing,
    and a node without cluster support refuses that with an error answer. A node that did not answer at all teaches
    nothing: the error propagates (the caller degrades) and the next call tries again. No configuration can then
    disagree with the server it names.
    """
    try:
        # One retry, with no pause, and only after the client re-read the cluster's slots successfully (a node
        # replaced under an idle connection); an unreachable node fails at once (RedisClusterException).
        return RedisCluster.from_url(url, retry=Retry(NoBackoff(), 1), **_TIMEOUTS)
    except RedisClusterException as exc:
        if isinstance(exc.__cause__, (redis.ConnectionError, redis.TimeoutError)):
            raise  # not reached: no mode to learn
    plain = redis.Redis.from_url(url, health_check_interval=30, **_TIMEOUTS)
    try:
        plain.cluster("INFO")
    except redis.ResponseError:  # "cluster support disabled" (redis-server), "unknown command" (fakeredis)
        plain.connection_pool.disconnect()  # fakeredis's TCP server may hang up after an error answer
        return plain
    plain.close()
    # A cluster node that RedisCluster would not take (slots not all assigned yet): not cached, tried again.
    raise CacheUnavailable(f"the cluster at {url} does not serve all slots yet")


class SessionCache:
    def __init__(self, url: str | None, ttl_seconds: int) -> None:
        self.url = url
        self.ttl = ttl_seconds

    def _redis(self) -> Client:
        if not self.url:
            raise CacheUnavailable("no cache configured")
        return _client(self.url)

    def _call(self, fn: Callable[[Client], Any]) -> Any:
        try:
            return fn(self._redis())
        except _ERRORS as exc:
            raise CacheUnavailable(str(exc)) from exc

    def short_vector(self, user_id: str) -> FloatArray | None:
        return decode(self._call(lambda r: r.get(session_key(user_id))))

    def set_short_vector(self, user_id: str, vector: FloatArray) -> None:
        self._call(lambda r: r.set(session_key(user_id), encode(vector), ex=self.ttl))

    def session_state(self, user_id: str) -> tuple[int, FloatArray | None]:
        """The generation and the short-term vector together: one MGET of two keys in one slot."""
        generation, vector = self._call(lambda r: r.mget([generation_key(user_id), session_key(user_id)]))
        return int(generation or 0), decode(vector)

    def bump_generations(self, user_ids: Sequence[str]) -> None:
        def bump(r: Client) -> None:
            pipe = r.pipeline(transaction=False)  # on a cluster, split by node: one round trip per node
            for user in user_ids:
                pipe.incr(generation_key(user))
                pipe.expire(generation_key(user), GENERATION_TTL_S)
            pipe.execute()

        if user_ids:
            self._call(bump)

    def forget(self, user_id: str, result_ttl_s: int) -> None:
        """A deleted listener: the short-term vector goes, and the generation moves on, so no cached result keyed
        by an earlier one is read again; it then expires with the last of them (both keys share a slot)."""

        def drop(r: Client) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.delete(session_key(user_id))
            pipe.incr(generation_key(user_id))
            pipe.expire(generation_key(user_id), result_ttl_s)
            pipe.execute()

        self._call(drop)

    def get(self, key: str) -> bytes | None:
        value = self._call(lambda r: r.get(key))
        return bytes(value) if value is not None else None

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        self._call(lambda r: r.set(key, value, ex=ttl_seconds))

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values of keys in any slots, in their order (on a cluster: one MGET per slot, pipelined per node)."""

        def read(r: Client) -> list[bytes | None]:
            if isinstance(r, RedisCluster):
                return r.mget_nonatomic(list(keys))
            return cast(list[bytes | None], r.mget(list(keys)))

        if not keys:
            return []
        return list(self._call(read))

    def set_many(self, values: dict[str, bytes], ttl_seconds: int) -> None:
        def put(r: Client) -> None:
            pipe = r.pipeline(transaction=False)
            for key, value in values.items():
                pipe.set(key, value, ex=ttl_seconds)
            pipe.execute()

        if values:
            self._call(put)
