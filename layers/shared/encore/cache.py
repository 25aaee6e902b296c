"""The session and result cache (ElastiCache; redis in the twin): short-term vectors, generations, results.

Keys:
- ``sess:<user>``   the short-term vector (float32 bytes), expiring ``session.ttl_seconds`` after the last play
- ``gen:<user>``    the listener's generation, bumped by every accepted batch; result keys include it, so a new
                    event makes every cached recommendation of that listener unreachable at once
- ``rec:<...>``     cached responses (set by the serving path)
- ``tvec:<model>:<track>``  track CF vectors read through from DynamoDB

Every method raises ``CacheUnavailable`` when the cache cannot be reached; callers degrade (skip the cache).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import redis

from encore.vectors import FloatArray, decode, encode


class CacheUnavailable(Exception):
    pass


@functools.cache
def _client(url: str) -> redis.Redis:
    # Short timeouts: a sick cache must cost a request milliseconds, not seconds.
    return redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.2, health_check_interval=30)


class SessionCache:
    def __init__(self, url: str | None, ttl_seconds: int) -> None:
        self.url = url
        self.ttl = ttl_seconds

    def _redis(self) -> redis.Redis:
        if not self.url:
            raise CacheUnavailable("no cache configured")
        return _client(self.url)

    def _call(self, fn: Callable[[redis.Redis], Any]) -> Any:
        try:
            return fn(self._redis())
        except (redis.RedisError, OSError) as exc:
            raise CacheUnavailable(str(exc)) from exc

    def short_vector(self, user_id: str) -> FloatArray | None:
        return decode(self._call(lambda r: r.get(f"sess:{user_id}")))

    def set_short_vector(self, user_id: str, vector: FloatArray) -> None:
        self._call(lambda r: r.set(f"sess:{user_id}", encode(vector), ex=self.ttl))

    def session_state(self, user_id: str) -> tuple[int, FloatArray | None]:
        """The generation and the short-term vector together (one MGET)."""
        generation, vector = self._call(lambda r: r.mget([f"gen:{user_id}", f"sess:{user_id}"]))
        return int(generation or 0), decode(vector)

    def bump_generations(self, user_ids: Sequence[str]) -> None:
        def bump(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            for user in user_ids:
                pipe.incr(f"gen:{user}")
                pipe.expire(f"gen:{user}", 7 * 86_400)
            pipe.execute()

        self._call(bump)

    def get(self, key: str) -> bytes | None:
        value = self._call(lambda r: r.get(key))
        return bytes(value) if value is not None else None

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        self._call(lambda r: r.set(key, value, ex=ttl_seconds))

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return list(self._call(lambda r: r.mget(list(keys))))

    def set_many(self, values: dict[str, bytes], ttl_seconds: int) -> None:
        def put(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            for key, value in values.items():
                pipe.set(key, value, ex=ttl_seconds)
            pipe.execute()

        if values:
            self._call(put)
