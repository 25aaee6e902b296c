"""The twin's ElastiCache Serverless: a real ``redis-server`` in cluster mode (as ElastiCache Serverless always
runs), or fakeredis's TCP server as a stated fallback where redis-server is not installed."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from typing import cast

import redis
from fakeredis import TcpFakeServer

from encore_local.errors import UsageError
from encore_local.loopback import LOOPBACK, ClosesConnections, free_port


class RedisServerProcess:
    """A real ``redis-server`` with no persistence, in a scratch directory, as a one-node cluster: ElastiCache
    Serverless always runs in cluster mode, so the twin's cache refuses a multi-key command whose keys are in
    different slots (``CROSSSLOT``) as AWS does. Every start is a new node (its cluster configuration file is
    removed first) that is given all 16384 slots; it serves once ``CLUSTER INFO`` says ``cluster_state:ok``
    (redis-server holds a new master in ``fail`` for its first 2 s, which ``launch`` then ``ready`` lets the
    caller spend on other work). ``cluster=False`` gives a plain single node (a self-hosted redis), for tests."""

    def __init__(self, binary: str, cluster: bool = True) -> None:
        self.binary = binary
        self.cluster = cluster
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._dir = tempfile.TemporaryDirectory(prefix="encore-redis-")

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self, attempts: int = 5, port: int | None = None) -> str:
        """Start on ``port`` (a restart after an outage) or on a free one, and wait until it serves."""
        self.launch(attempts, port)
        return self.ready()

    def launch(self, attempts: int = 5, port: int | None = None) -> None:
        """Start the node and give it every slot; ``ready`` waits until the cluster serves them."""
        nodes_conf = os.path.join(self._dir.name, "nodes.conf")
        for _ in range(attempts):
            self.port = port or free_port()
            with contextlib.suppress(FileNotFoundError):
                os.remove(nodes_conf)  # a new node: its slots are assigned below, as to a replaced node
            # The cluster bus is on port + 10000 unless told: past 65535 for half the ephemeral ports.
            cluster = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                nodes_conf,
                "--cluster-port",
                str(free_port()),
            ]
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    LOOPBACK,
                    *(cluster if self.cluster else []),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    self._dir.name,
                    "--protected-mode",
                    "yes",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if wait_for_redis(self.url, self.proc):
                if self.cluster:
                    _assign_all_slots(self.url)
                return
            self.stop()
        raise UsageError(f"{self.binary} did not start on a loopback port after {attempts} attempts")

    def ready(self, timeout: float = 10.0) -> str:
        if self.cluster and not _wait_for_cluster(self.url, timeout):
            raise UsageError(f"the twin's redis cluster node at {self.url} did not reach cluster_state:ok")
        return self.url

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()


def _assign_all_slots(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=5)
    try:
        client.cluster("ADDSLOTSRANGE", 0, 16383)
    finally:
        client.close()


def _wait_for_cluster(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if cast(dict[str, str], client.cluster("INFO")).get("cluster_state") == "ok":
                    return True
            time.sleep(0.05)
        return False
    finally:
        client.close()


class FakeRedisServer:
    """fakeredis's TCP server (speaks RESP) in a thread: the stand-in when redis-server is not installed. It is a
    single node, not a cluster (fakeredis has no cluster commands): the cache's client sees that and talks to it
    with a plain client, so ``CROSSSLOT`` mistakes do not show with this fallback."""

    def __init__(self) -> None:
        class Server(ClosesConnections, TcpFakeServer):
            pass

        self._server_class = Server
        self.server = Server((LOOPBACK, 0), server_type="redis")
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="fakeredis", daemon=True)

    def start(self, port: int | None = None) -> str:
        self.launch(port)
        return self.ready()

    def launch(self, port: int | None = None) -> None:
        if port is not None:  # a restart after an outage: a new, empty server on the same port
            self.server = self._server_class((LOOPBACK, port), server_type="redis")
            self.thread = threading.Thread(target=self.server.serve_forever, name="fakeredis", daemon=True)
        self.thread.start()

    def ready(self) -> str:
        url = f"redis://{LOOPBACK}:{self.server.server_address[1]}/0"
        if not wait_for_redis(url, None):
            raise UsageError("fakeredis's TCP server did not answer")
        return url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()

    def close(self) -> None:
        self.stop()


def wait_for_redis(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return False
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    return True
            time.sleep(0.05)
        return False
    finally:
        client.close()
