"""Redis topologies for the integration tests, as pytest fixtures (tests/integration/conftest.py
registers them): a real 3-node Redis Cluster (`cluster_nodes`, and a `cluster` client on it) and
a redis-server with a TLS port signed by a throwaway CA (`tls_server`). No tests here."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from jobqueue import connect_cluster
from tests.cluster.redis_server import RedisServer, free_port

CLUSTER_ARGS = (
    "--cluster-enabled", "yes",
    "--cluster-config-file", "nodes.conf",
    "--cluster-node-timeout", "5000",
)  # fmt: skip


def _low_free_port() -> int:
    """A free port <= 55535 (redis-server refuses higher ones in cluster mode)."""
    for _ in range(200):
        port = free_port()
        if port <= 55535:
            return port
    raise RuntimeError("no free port below 55536")


def _cluster_node() -> RedisServer:
    bus = free_port()  # explicit cluster bus port instead of port + 10000
    return RedisServer(
        port=_low_free_port(), extra_args=(*CLUSTER_ARGS, "--cluster-port", str(bus))
    )


def _wait_cluster_ok(nodes: list[RedisServer], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(nodes)
    while pending:
        node = pending[0]
        client = redis.Redis(host=node.bind, port=node.port)
        try:
            info: dict[str, Any] = client.cluster("info")  # type: ignore[assignment]
        finally:
            client.close()
        if info.get("cluster_state") == "ok" and int(info.get("cluster_slots_ok", 0)) == 16384:
            pending.pop(0)
        elif time.monotonic() > deadline:
            raise RuntimeError(f"cluster not ok after {timeout} s: {info}")
        else:
            time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster_nodes() -> Iterator[list[RedisServer]]:
    cli = shutil.which("redis-cli")
    assert cli is not None, "redis-cli is not installed: run `make deps`"
    nodes = [_cluster_node() for _ in range(3)]
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            [cli, "--cluster", "create", *(f"{n.bind}:{n.port}" for n in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        _wait_cluster_ok(nodes)
        yield nodes
    finally:
        for node in nodes:
            node.cleanup()


@pytest.fixture
async def cluster(cluster_nodes: list[RedisServer]) -> AsyncIterator[RedisCluster]:
    node = cluster_nodes[0]
    client = connect_cluster(f"redis+cluster://{node.bind}:{node.port}")
    await client.initialize()
    yield client
    await client.aclose()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, int, Path]]:
    """A redis-server with a TLS port, its certificate signed by a throwaway CA."""
    d = tmp_path_factory.mktemp("tls")
    days = ("-days", "1")
    ca = ("req", "-x509", "-newkey", "rsa:2048", "-nodes", *days)
    _openssl(*ca, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=jobqueue-ca", cwd=d)
    _openssl(*ca, "-keyout", "o.key", "-out", "other-ca.crt", "-subj", "/CN=unrelated", cwd=d)
    csr = ("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr")
    _openssl(*csr, "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    sign = ("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", *days)
    _openssl(*sign, "-CAcreateserial", "-out", "server.crt", "-extfile", "ext.cnf", cwd=d)
    tls_port = free_port()
    tls_args = {
        "--tls-port": str(tls_port),
        "--tls-cert-file": str(d / "server.crt"),
        "--tls-key-file": str(d / "server.key"),
        "--tls-ca-cert-file": str(d / "ca.crt"),
        "--tls-auth-clients": "no",
    }
    server = RedisServer(extra_args=tuple(x for kv in tls_args.items() for x in kv)).start()
    yield server, tls_port, d
    server.cleanup()
