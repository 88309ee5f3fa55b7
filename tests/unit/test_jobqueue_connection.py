"""connect*(): URL parsing and settings errors, no password in any message (no I/O)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelConnectionPool, SentinelManagedSSLConnection

from jobqueue import (
    ConfigError,
    QueueError,
    connect,
    connect_any,
    connect_cluster,
    connect_sentinel,
    is_cluster_url,
    is_sentinel_url,
    redact_url,
    url_secrets,
)
from jobqueue.connection import parse_sentinel_url
from jobqueue.settings import check_redis_url

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
        (f"redis+sentinel://u:{SECRET}@h:26379/m", "connect_sentinel"),
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


def test_sentinel_url_names_the_sentinels_the_service_and_the_primarys_auth() -> None:
    target = parse_sentinel_url(
        f"redis+sentinel://app:{SECRET}@s1:26380,s2,[fd00::1]:5000/mymaster/3"
        "?sentinel_password=sp&socket_timeout=2"
    )
    assert target.sentinels == (("s1", 26380), ("s2", 26379), ("fd00::1", 5000))
    assert target.service == "mymaster"
    assert target.primary == {"username": "app", "password": SECRET, "db": 3,
                              "socket_timeout": 2.0}  # fmt: skip
    # the Sentinels get their own password (not the primary's) and the socket options
    assert target.sentinel == {"password": "sp", "socket_timeout": 2.0}


def test_rediss_sentinel_url_is_tls_to_the_sentinels_and_the_primary() -> None:
    target = parse_sentinel_url("rediss+sentinel://s1/m?ssl_ca_certs=/ca.pem")
    assert target.primary["ssl"] is True and target.sentinel["ssl"] is True
    assert target.primary["ssl_ca_certs"] == target.sentinel["ssl_ca_certs"] == "/ca.pem"
    client = connect_sentinel("rediss+sentinel://s1/m?ssl_ca_certs=/ca.pem")
    assert client.connection_pool.connection_class is SentinelManagedSSLConnection


def test_connect_any_takes_a_sentinel_url_to_a_sentinel_managed_pool() -> None:
    assert is_sentinel_url("redis+sentinel://s1/m") and is_sentinel_url("rediss+sentinel://s/m")
    assert not is_sentinel_url("redis://s1/0") and not is_cluster_url("redis+sentinel://s/m")
    client = connect_any(f"redis+sentinel://:{SECRET}@s1,s2/mymaster/1", socket_timeout=1.0)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
    kw = pool.connection_kwargs
    assert (kw["password"], kw["db"], kw["socket_timeout"]) == (SECRET, 1, 1.0)
    assert kw["health_check_interval"] == 30  # the defaults of every client
    sentinels = pool.sentinel_manager.sentinels
    ports = [s.connection_pool.connection_kwargs["port"] for s in sentinels]
    assert ports == [26379, 26379]
    assert all(s.connection_pool.connection_kwargs.get("password") is None for s in sentinels)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"redis+sentinel://:{SECRET}@s1:99999/m", "bad Sentinel address 's1:99999'"),
        (f"redis+sentinel://:{SECRET}@s1,/m", "bad Sentinel address ''"),
        (f"redis+sentinel://:{SECRET}@s1", "no service name"),
        (f"redis+sentinel://:{SECRET}@s1/m/x", "must be a number"),
        (f"redis+sentinel://:{SECRET}@s1/m?socket_timeout=soon", "socket_timeout"),
        (f"redis+sentinel://:{SECRET}@s1/m?no_such_option=1", "invalid Redis settings"),
    ],
)
def test_bad_sentinel_urls_are_config_errors_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        connect_sentinel(url)
    assert SECRET not in str(info.value)


def test_a_sentinel_url_setting_is_checked_without_echoing_it() -> None:
    ok = f"redis+sentinel://:{SECRET}@s1,s2/mymaster/0"
    assert check_redis_url(SecretStr(ok)).get_secret_value() == ok
    with pytest.raises(ValueError, match="no service name") as info:
        check_redis_url(SecretStr(f"redis+sentinel://:{SECRET}@s1,s2"))
    assert SECRET not in str(info.value)


def test_redact_url_hides_the_sentinel_password_too() -> None:
    url = f"redis+sentinel://app:{SECRET}@s1,s2/m?sentinel_password={SECRET}"
    assert redact_url(url) == "redis+sentinel://app:***@s1,s2/m?sentinel_password=***"


def test_url_secrets_are_the_password_and_query_passwords_raw_and_decoded() -> None:
    assert url_secrets("redis://app:p%40ss@h:6379/0") == ("p%40ss", "p@ss")
    assert url_secrets(f"redis://{SECRET}@h") == (SECRET,)  # the password-only form
    assert url_secrets(f"redis+sentinel://s1,s2/m?sentinel_password={SECRET}") == (SECRET,)
    assert url_secrets("redis://app@h:6379/0?db=1") == ("app",)
    assert url_secrets("redis://h:6379") == ()
