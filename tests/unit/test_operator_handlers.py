"""The kopf handlers' own small logic: the Deployment index feeding the autoscalers' replica
cache, and the one Redis client factory the handlers and redisops share."""

from __future__ import annotations

from typing import Any

import pytest
from jobqueue_operator import constants as c
from jobqueue_operator import handlers, redisops
from jobqueue_operator.adapters import ReplicaCache
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from jobqueue import ConfigError


def indexed(replicas: Any) -> Any:
    spec = {} if replicas is None else {"replicas": replicas}
    return handlers.replicas(namespace="ns", name="q-worker", spec=spec)


def test_the_replicas_index_keeps_the_count() -> None:
    cache = ReplicaCache(index={})
    assert cache.get("ns", "q-worker") is None  # not indexed: the scaler asks the API
    cache.index = {k: [v] for k, v in indexed(2).items()}
    assert cache.get("ns", "q-worker") == 2
    assert cache.get("other", "q-worker") is None
    cache.index = {k: [v] for k, v in indexed(0).items()}
    assert cache.get("ns", "q-worker") == 0  # zero is a count, not a miss
    cache.index = {k: [v] for k, v in indexed(None).items()}
    assert cache.get("ns", "q-worker") is None  # no count: unknown rather than a guess


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
