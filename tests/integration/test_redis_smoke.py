"""The test Redis is a real redis-server that answers."""

import redis.asyncio as aioredis

from tests.cluster.redis_server import RedisServer


async def test_redis_answers_ping(redis_client: aioredis.Redis) -> None:
    assert await redis_client.ping() is True


async def test_redis_is_a_real_server(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    info = await redis_client.info("server")
    assert info["tcp_port"] == redis_server.port
    assert str(info["redis_version"]).startswith("7.")
