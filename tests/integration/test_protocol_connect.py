"""connect() against real servers: password, database, TLS (rediss://), unreachable Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.exceptions

from jobqueue import JobSpec, Queue, connect
from tests.cluster.redis_server import RedisServer, free_port

PASSWORD = "pw-for-tests-only"


@pytest.fixture(scope="module")
def password_server() -> Iterator[RedisServer]:
    server = RedisServer(password=PASSWORD).start()
    yield server
    server.cleanup()


async def _round_trip(q: Queue) -> None:
    await q.enqueue(JobSpec("t", {"x": 1}))
    [c] = await q.claim("w")
    assert c.payload == {"x": 1}
    assert await q.complete([(c.id, c.token, None)]) == [True]
    await q.purge()


async def test_password_and_database_from_the_url(
    password_server: RedisServer, queue_name: str
) -> None:
    client = connect(f"redis://default:{PASSWORD}@127.0.0.1:{password_server.port}/3")
    try:
        q = Queue(client, queue_name)
        await q.enqueue(JobSpec("t"))
        assert (await client.client_info())["db"] == 3
        other_db = connect(f"redis://:{PASSWORD}@127.0.0.1:{password_server.port}/0")
        try:
            assert await other_db.exists(q.keys.ready_normal) == 0
            assert await client.exists(q.keys.ready_normal) == 1
        finally:
            await other_db.aclose()
        await q.purge()
        await _round_trip(q)
    finally:
        await client.aclose()


async def test_wrong_password_is_an_authentication_error(password_server: RedisServer) -> None:
    client = connect(f"redis://default:wrong-{PASSWORD}@127.0.0.1:{password_server.port}/0")
    try:
        with pytest.raises(redis.exceptions.AuthenticationError) as info:
            await client.ping()
        assert PASSWORD not in str(info.value)
    finally:
        await client.aclose()


async def test_unreachable_redis_surfaces_as_connection_error(queue_name: str) -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        q = Queue(client, queue_name)
        with pytest.raises(redis.exceptions.ConnectionError):
            await q.enqueue(JobSpec("t"))
        with pytest.raises(redis.exceptions.ConnectionError):
            await q.stats()
    finally:
        await client.aclose()


async def test_tls_with_a_trusted_ca(
    tls_server: tuple[RedisServer, int, Path], queue_name: str
) -> None:
    _server, tls_port, d = tls_server
    client = connect(
        f"rediss://127.0.0.1:{tls_port}/0?ssl_cert_reqs=required", ssl_ca_certs=str(d / "ca.crt")
    )
    try:
        await _round_trip(Queue(client, queue_name))
    finally:
        await client.aclose()


async def test_tls_with_an_untrusted_certificate_is_refused(
    tls_server: tuple[RedisServer, int, Path], queue_name: str
) -> None:
    _server, tls_port, d = tls_server
    client = connect(
        f"rediss://127.0.0.1:{tls_port}/0",
        ssl_cert_reqs="required",
        ssl_ca_certs=str(d / "other-ca.crt"),
    )
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await Queue(client, queue_name).stats()
    finally:
        await client.aclose()


async def test_plain_client_on_the_tls_port_fails(
    tls_server: tuple[RedisServer, int, Path],
) -> None:
    _server, tls_port, _d = tls_server
    client = connect(f"redis://127.0.0.1:{tls_port}/0", socket_timeout=2)
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
    finally:
        await client.aclose()
