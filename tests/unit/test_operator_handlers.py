"""The kopf handlers' own small logic: the Deployment watch feeding the autoscalers' replica
cache, and the one Redis client factory the handlers and redisops share."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from jobqueue_operator import constants as c
from jobqueue_operator import handlers, redisops
from jobqueue_operator.scaler import ReplicaCache
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from jobqueue import ConfigError


async def observe(memo: kopf.Memo, type_: str | None, replicas: Any) -> None:
    spec = {} if replicas is None else {"replicas": replicas}
    await handlers.deployment_replicas(
        event={"type": type_, "object": {"spec": spec}},
        namespace="ns",
        name="q-worker",
        spec=spec,
        memo=memo,
    )


async def test_the_deployment_watch_keeps_the_replica_cache() -> None:
    cache = ReplicaCache()
    memo = kopf.Memo(replicas=cache)
    await observe(memo, None, 2)  # the initial listing
    assert cache.get("ns", "q-worker") == 2
    await observe(memo, "MODIFIED", 0)
    assert cache.get("ns", "q-worker") == 0
    await observe(memo, "DELETED", 0)  # gone: the scaler must ask the API (and get a 404)
    assert cache.get("ns", "q-worker") is None
    await observe(memo, "ADDED", 3)
    await observe(memo, "MODIFIED", None)  # no count: unknown rather than a guess
    assert cache.get("ns", "q-worker") is None


async def test_the_deployment_watch_is_harmless_before_startup() -> None:
    await observe(kopf.Memo(), "ADDED", 3)  # no cache in the memo yet: nothing to do, no error


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", Redis),
        ("rediss://:pw@127.0.0.1:6380/0", Redis),
        ("redis+cluster://127.0.0.1:7000", RedisCluster),
        ("rediss+cluster://127.0.0.1:7000", RedisCluster),
    ],
)
async def test_the_shared_client_takes_every_url_scheme_with_short_timeouts(
    url: str, kind: type
) -> None:
    client = redisops.client(url)
    try:
        assert isinstance(client, kind)
        options = (
            client.nodes_manager.connection_kwargs
            if isinstance(client, RedisCluster)
            else client.connection_pool.connection_kwargs
        )
        assert options["socket_timeout"] == c.REDIS_CHECK_TIMEOUT
        assert options["socket_connect_timeout"] == c.REDIS_CHECK_TIMEOUT
    finally:
        await client.aclose()


def test_the_shared_client_refuses_a_bad_url_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        redisops.client("http://user:hunter22@db:6379")
    assert "hunter22" not in str(info.value)
