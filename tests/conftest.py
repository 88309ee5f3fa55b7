"""Shared pytest fixtures: a real control plane and redis-server per session, a queue per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.cluster import binaries
from tests.cluster.controlplane import ControlPlane, Kube
from tests.cluster.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def queue_name() -> str:
    """A queue identity no other test uses, so tests share one server without interfering."""
    return f"test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A real Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager).

    Started fresh for the session in a temp dir and stopped at the end, or, when env
    JQ_KUBECONFIG names the admin kubeconfig of a running cluster (`make cluster-up` then
    `eval "$(python -m tests.cluster env)"`), that cluster is used and left running.
    Fails (never skips) if a binary is not built: run `make binaries`.

    Yields a `tests.cluster.controlplane.Kube` (a stable interface):
      .kubeconfig: Path   admin kubeconfig (O=system:masters), certificates embedded
      .server: str        https://127.0.0.1:<port>
      .bin_dir: Path      kubectl, kube-apiserver, kubelet, ... of the pinned release
      .kubectl(*args, input=None, check=True, timeout=120) -> CompletedProcess[str]
                          raises KubectlError (stderr in its message) when check fails
      .kubectl_json(*args) -> parsed `kubectl ... -o json`
      .env() -> os.environ + KUBECONFIG + bin_dir first on PATH, for subprocesses
    Tests share it: create what you need in your own namespace.
    """
    binaries.require()
    reuse = os.environ.get("JQ_KUBECONFIG")
    if reuse:
        kube = Kube.from_kubeconfig(Path(reuse))
        kube.kubectl("get", "--raw", "/readyz")
        yield kube
        return
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"), die_with_parent=True)
    try:
        yield plane.start()
    finally:
        plane.stop()
