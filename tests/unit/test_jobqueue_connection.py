"""connect(): URL parsing and settings errors, no password in any message (no I/O)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection

from jobqueue import ConfigError, QueueError, connect, connect_cluster, is_cluster_url, redact_url

SECRET = "s3cr3t-pw"


def _kwargs(client: Redis) -> dict[str, object]:
    return dict(client.connection_pool.connection_kwargs)


def test_plain_url_with_user_password_and_db() -> None:
    client = connect(f"redis://app:{SECRET}@cache.example:6380/4")
    kw = _kwargs(client)
    assert (kw["host"], kw["port"], kw["db"]) == ("cache.example", 6380, 4)
    assert (kw["username"], kw["password"]) == ("app", SECRET)
    assert client.connection_pool.connection_class is not SSLConnection


def test_rediss_uses_tls_with_options_from_query_and_kwargs() -> None:
    client = connect(
        "rediss://cache.example:6380/0?ssl_cert_reqs=required", ssl_ca_certs="/etc/ca.pem"
    )
    assert client.connection_pool.connection_class is SSLConnection
    kw = _kwargs(client)
    assert kw["ssl_ca_certs"] == "/etc/ca.pem"
    assert kw["ssl_cert_reqs"] == "required"


def test_unix_socket_url() -> None:
    client = connect("unix:///run/redis.sock?db=2")
    assert client.connection_pool.connection_class is UnixDomainSocketConnection


def test_kwargs_override_defaults() -> None:
    kw = _kwargs(connect("redis://h:6379", socket_connect_timeout=1.5))
    assert kw["socket_connect_timeout"] == 1.5


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("http://h:6379", "scheme must be one of"),
        (f"redis://u:{SECRET}@:6379/0", "no host"),
        (f"redis://u:{SECRET}@h:notaport/0", "invalid Redis URL"),
        (f"redis://u:{SECRET}@h:99999/0", "(?i)port out of range"),
        (f"redis://u:{SECRET}@h:6379/zero", "database number"),
        (f"redis://u:{SECRET}@h:6379/?db=x", "db must be a number"),
        (f"redis+cluster://u:{SECRET}@h:6379", "connect_cluster"),
    ],
)
def test_bad_urls_raise_config_error_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        connect(url)
    assert SECRET not in str(info.value)
    assert isinstance(info.value, QueueError)


def test_unknown_option_is_a_config_error_now_not_at_first_use() -> None:
    with pytest.raises(ConfigError, match="invalid Redis settings") as info:
        connect(f"redis://u:{SECRET}@h:6379/0?no_such_option=1")
    assert SECRET not in str(info.value)


def test_redact_url_hides_passwords() -> None:
    assert redact_url(f"redis://app:{SECRET}@h:6379/0") == "redis://app:***@h:6379/0"
    assert redact_url(f"redis://:{SECRET}@h") == "redis://:***@h"
    assert redact_url(f"redis://{SECRET}@h") == "redis://***@h"
    assert SECRET not in redact_url(f"redis://h?password={SECRET}")
    assert redact_url("redis://h:6379") == "redis://h:6379"


def test_cluster_urls() -> None:
    assert is_cluster_url("redis+cluster://h:7000")
    assert not is_cluster_url("redis://h:7000")
    with pytest.raises(ConfigError):
        connect_cluster("http://h:7000")
