"""The session cache against the servers it meets: a one-node redis **cluster** (ElastiCache Serverless always runs
in cluster mode; the twin runs redis-server so), a single plain redis-server node, and fakeredis (the twin's
fallback). Each server starts on a free loopback port in a scratch directory and stops after."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ClusterCrossSlotError
from redis.retry import Retry

from encore.cache import (
    GENERATION_TTL_S,
    CacheUnavailable,
    SessionCache,
    _client,
    generation_key,
    session_key,
    track_metadata_key,
)
from encore_local.loopback import LOOPBACK, free_port
from encore_local.twin.elasticache import FakeRedisServer, RedisServerProcess, wait_for_redis

pytestmark = pytest.mark.integration

REDIS_SERVER = shutil.which("redis-server")
NO_REDIS_SERVER = "redis-server is not installed (apt-get install redis-server; CI installs it in .ci/run)"
TTL_S = 60
KINDS = ["cluster", "plain", "fakeredis"]


class Node(Protocol):
    port: int

    def start(self, port: int | None = None) -> str: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


def _new_node(kind: str) -> Node:
    if kind == "fakeredis":
        return FakeRedisServer()
    if REDIS_SERVER is None:
        pytest.skip(NO_REDIS_SERVER)
    return RedisServerProcess(REDIS_SERVER, cluster=kind == "cluster")


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``(kind, url)`` of a server shared by the module's tests (each test uses listeners and tracks of its own)."""
    node = _new_node(request.param)
    try:
        yield request.param, node.start()
    finally:
        node.close()


@pytest.fixture
def cache(server: tuple[str, str]) -> SessionCache:
    return SessionCache(server[1], TTL_S)


@pytest.fixture
def raw(server: tuple[str, str]) -> Iterator[redis.Redis]:
    """A plain client for single-key checks (each key's slot is served by the one node)."""
    client = redis.Redis.from_url(server[1])
    yield client
    client.close()


@pytest.fixture
def node_factory() -> Iterator[Callable[[str], Node]]:
    started: list[Node] = []

    def make(kind: str) -> Node:
        node = _new_node(kind)
        started.append(node)
        return node

    yield make
    for node in started:
        node.close()


def ids(prefix: str, n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"{prefix}-{run}-{i}" for i in range(n)]


def test_the_client_follows_the_server(server: tuple[str, str]) -> None:
    kind, url = server
    client = _client(url)
    assert isinstance(client, RedisCluster) if kind == "cluster" else type(client) is redis.Redis


def test_short_vector_round_trip_with_ttl(cache: SessionCache, raw: redis.Redis) -> None:
    (user,) = ids("u", 1)
    assert cache.short_vector(user) is None
    cache.set_short_vector(user, np.array([0.25, -1.0, 3.0], dtype=np.float32))
    assert np.allclose(cache.short_vector(user), [0.25, -1.0, 3.0])  # type: ignore[arg-type]
    assert 0 < raw.ttl(session_key(user)) <= TTL_S


def test_a_listeners_keys_share_a_slot() -> None:
    for user in ["u1", "listener:42", "A.b-c_d", "x" * 128]:
        slot = key_slot(user.encode())
        assert key_slot(generation_key(user).encode()) == key_slot(session_key(user).encode()) == slot


def test_session_state_is_one_mget(cache: SessionCache, server: tuple[str, str], monkeypatch: Any) -> None:
    (user,) = ids("u", 1)
    assert cache.session_state(user) == (0, None)
    cache.set_short_vector(user, np.array([1.0, 2.0], dtype=np.float32))
    cache.bump_generations([user])
    client = _client(server[1])
    calls: list[tuple[Any, ...]] = []
    real = client.execute_command

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(client, "execute_command", spy)
    generation, vector = cache.session_state(user)
    assert generation == 1 and np.allclose(vector, [1.0, 2.0])  # type: ignore[arg-type]
    assert calls == [("MGET", generation_key(user), session_key(user))]


def test_bump_generations_of_listeners_in_many_slots(cache: SessionCache, raw: redis.Redis) -> None:
    users = ids("u", 40)
    assert len({key_slot(generation_key(u).encode()) for u in users}) > 30
    cache.bump_generations(users)
    cache.bump_generations(users[:10])
    cache.bump_generations([])
    assert [cache.session_state(u)[0] for u in users] == [2] * 10 + [1] * 30
    assert GENERATION_TTL_S - 60 < raw.ttl(generation_key(users[-1])) <= GENERATION_TTL_S


def test_get_many_and_set_many_across_slots(cache: SessionCache, raw: redis.Redis) -> None:
    tracks = ids("t", 120)
    keys = [track_metadata_key(t) for t in tracks]
    assert len({key_slot(k.encode()) for k in keys}) > 100
    cache.set_many({k: k.encode() for k in keys[::2]}, 30)
    assert cache.get_many(keys) == [k.encode() if i % 2 == 0 else None for i, k in enumerate(keys)]
    assert cache.get_many([]) == []
    assert 0 < raw.ttl(keys[0]) <= 30
    cache.set(keys[1], b"one", 30)
    assert cache.get(keys[1]) == b"one"


@pytest.mark.parametrize("server", ["cluster"], indirect=True)
def test_the_defect_old_key_names_are_refused_by_the_cluster(server: tuple[str, str], cache: SessionCache) -> None:
    """The old code sent ``MGET gen:<user> sess:<user>`` on a plain client: a cluster refuses it (CROSSSLOT), so
    every request degraded and sessions were written but never read. The hash-tagged names make it one slot."""
    url = server[1]
    plain = redis.Redis.from_url(url)
    try:
        with pytest.raises(ClusterCrossSlotError):  # the server's CROSSSLOT answer
            plain.mget(["gen:u1", "sess:u1"])
        with pytest.raises(ClusterCrossSlotError):  # the server's CROSSSLOT answer
            plain.mget([track_metadata_key("t1"), track_metadata_key("t2")])  # as track_metadata's read was
        assert plain.mget([generation_key("u1"), session_key("u1")]) == [None, None]
    finally:
        plain.close()
    (user,) = ids("u", 1)
    cache.set_short_vector(user, np.array([0.5], dtype=np.float32))
    cache.bump_generations([user])
    generation, vector = cache.session_state(user)
    assert generation == 1 and np.allclose(vector, [0.5])  # type: ignore[arg-type]


@pytest.mark.parametrize("server", ["cluster"], indirect=True)
def test_the_twins_cluster_node_serves_all_slots(server: tuple[str, str]) -> None:
    plain = redis.Redis.from_url(server[1])
    try:
        info = plain.execute_command("CLUSTER INFO")
        assert info["cluster_state"] == "ok" and info["cluster_slots_assigned"] == "16384"
    finally:
        plain.close()


def _all_fail_fast(cache: SessionCache) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: cache.session_state("u1"),
        lambda: cache.short_vector("u1"),
        lambda: cache.set_short_vector("u1", np.zeros(2, dtype=np.float32)),
        lambda: cache.bump_generations(["u1", "u2"]),
        lambda: cache.get("k"),
        lambda: cache.set("k", b"v", 5),
        lambda: cache.get_many([track_metadata_key("t1"), track_metadata_key("t2")]),
        lambda: cache.set_many({track_metadata_key("t1"): b"v"}, 5),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(CacheUnavailable):
            call()
        assert time.monotonic() - started < 1.0, "a dead cache must cost milliseconds"


def test_nothing_listening_is_cache_unavailable() -> None:
    _all_fail_fast(SessionCache(f"redis://{LOOPBACK}:{free_port()}/0", TTL_S))
    _all_fail_fast(SessionCache(None, TTL_S))


def test_a_server_that_never_answers_costs_one_short_timeout() -> None:
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(16)  # connections are accepted by the kernel and never answered
        _all_fail_fast(SessionCache(f"redis://{LOOPBACK}:{listener.getsockname()[1]}/0", TTL_S))


@pytest.mark.parametrize("kind", KINDS)
def test_a_node_that_goes_away_and_comes_back(kind: str, node_factory: Callable[[str], Node]) -> None:
    """As the twin's ``outage("cache")`` does: stop the node, then start a new one on the same port (a cluster
    node is given its slots again); the cached client degrades meanwhile and then serves again."""
    node = node_factory(kind)
    cache = SessionCache(node.start(), TTL_S)
    (user,) = ids("u", 1)
    cache.bump_generations([user])
    assert cache.session_state(user) == (1, None)
    port = node.port
    node.stop()
    _all_fail_fast(cache)
    node.start(port=port)
    assert cache.session_state(user) == (0, None)  # a new node: contents lost
    cache.bump_generations([user])
    cache.set_many({track_metadata_key(t): b"m" for t in ids("t", 20)}, 30)
    assert cache.session_state(user) == (1, None)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.skipif(REDIS_SERVER is None, reason=NO_REDIS_SERVER)
def test_cluster_over_tls(tmp_path: Path) -> None:
    """ElastiCache Serverless requires TLS: a ``rediss://`` URL gets a cluster client whose connections are TLS."""
    assert REDIS_SERVER is not None
    cert, key = _self_signed(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [
            REDIS_SERVER,
            *f"--port 0 --tls-port {port} --bind {LOOPBACK} --cluster-enabled yes --cluster-port "
            f"{free_port()} --cluster-config-file {tmp_path / 'nodes.conf'} --tls-cluster yes --tls-cert-file {cert} "
            f"--tls-key-file {key} --tls-ca-cert-file {cert} --tls-auth-clients no --appendonly no "
            f"--dir {tmp_path}".split(),
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"rediss://{LOOPBACK}:{port}/0?ssl_ca_certs={cert}"
    try:
        if not wait_for_redis(url, proc):
            pytest.skip("this redis-server was built without TLS")
        admin = redis.Redis.from_url(url)
        admin.execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while admin.execute_command("CLUSTER INFO")["cluster_state"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.05)
        admin.close()
        cache = SessionCache(url, TTL_S)
        (user,) = ids("u", 1)
        cache.set_short_vector(user, np.array([1.0], dtype=np.float32))
        cache.bump_generations([user, *ids("u", 10)])
        generation, vector = cache.session_state(user)
        assert generation == 1 and np.allclose(vector, [1.0])  # type: ignore[arg-type]
        client = _client(url)
        assert isinstance(client, RedisCluster)
        node = client.get_default_node()
        assert node.redis_connection is not None
        assert node.redis_connection.connection_pool.connection_kwargs.get("ssl_ca_certs") == str(cert)
        assert "SSL" in node.redis_connection.connection_pool.connection_class.__name__
        # a plaintext client is not answered: the cache's connections really are TLS
        with pytest.raises(redis.RedisError):
            redis.Redis(host=LOOPBACK, port=port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)).ping()
    finally:
        proc.terminate()
        proc.wait(timeout=5)
