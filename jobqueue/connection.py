"""Redis clients from a URL, with clear, password-free errors for bad settings."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from jobqueue.errors import ConfigError

# A client the protocol runs on: one server (or Sentinel-managed primary) or a Cluster.
AnyRedis = Redis | RedisCluster

_SCHEMES = ("redis", "rediss", "unix")
_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# Every URL scheme connect_any takes: programs validate their REDIS_URL setting against it.
URL_SCHEMES: tuple[str, ...] = (*_SCHEMES, *_CLUSTER_SCHEMES)

# Defaults the caller can override through kwargs (TCP ones only for TCP URLs).
_DEFAULTS: dict[str, Any] = {"health_check_interval": 30}
_TCP_DEFAULTS: dict[str, Any] = {"socket_connect_timeout": 5.0, "socket_keepalive": True}


_USERINFO_RE = re.compile(r"^(?P<scheme>[^:/]+://)(?P<userinfo>[^@/]*)@")
_QUERY_PASSWORD_RE = re.compile(r"(?i)([?&][^=&]*password[^=&]*=)[^&]*")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to log or show)."""
    if not isinstance(url, str):
        return "<not a URL>"

    def userinfo(m: re.Match[str]) -> str:
        user, colon, _password = m["userinfo"].partition(":")
        # redis://password@host (no colon) is redis-py's password-only form
        return f"{m['scheme']}{user}:***@" if colon else f"{m['scheme']}***@"

    return _QUERY_PASSWORD_RE.sub(r"\1***", _USERINFO_RE.sub(userinfo, url, count=1))


def _check_url(url: str, schemes: tuple[str, ...]) -> None:
    """Raise ConfigError unless ``url`` is a well-formed Redis URL of one of ``schemes``."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("Redis URL is empty: set REDIS_URL, e.g. redis://host:6379/0")
    safe = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {safe}: {_scrub(str(exc), url)}") from None
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"invalid Redis URL {safe}: scheme must be one of {allowed}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigError(f"invalid Redis URL {safe}: unix:// needs a socket path")
        return
    if not parts.hostname:
        raise ConfigError(f"invalid Redis URL {safe}: no host")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"invalid Redis URL {safe}: port out of range")
    path = unquote(parts.path).strip("/")
    if path and not path.isdigit():
        raise ConfigError(f"invalid Redis URL {safe}: the path must be a database number")
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "db" and not value.isdigit():
            raise ConfigError(f"invalid Redis URL {safe}: db must be a number")


def _scrub(message: str, url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return message.replace(password, "***") if password else message


def connect(url: str, **kwargs: Any) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` (redis://, rediss:// for TLS, unix://).

    User, password and database come from the URL (``redis://user:pw@host:6379/2``); TLS
    options from kwargs or the query string (``?ssl_cert_reqs=required&ssl_ca_certs=...``).
    No connection is opened here: an unreachable server surfaces as
    ``redis.exceptions.ConnectionError`` on first use. A malformed URL or unknown option
    raises ConfigError whose message never contains the password.
    """
    if is_cluster_url(url):
        raise ConfigError(
            f"{redact_url(url)} names a Redis Cluster: use jobqueue.connect_cluster()"
        )
    _check_url(url, _SCHEMES)
    tcp = {} if url.startswith("unix:") else _TCP_DEFAULTS
    options = {**_DEFAULTS, **tcp, **kwargs}
    try:
        client: Redis = Redis.from_url(url, **options)
        # Build (not connect) one connection so unknown options fail now, not on first use.
        client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"invalid Redis settings for {redact_url(url)}: {_scrub(str(exc), url)}"
        ) from None
    return client


def connect_cluster(url: str, **kwargs: Any) -> RedisCluster:
    """A ``redis.asyncio.RedisCluster`` from any node's URL (redis:// or rediss://).

    ``redis+cluster://`` and ``rediss+cluster://`` are accepted as aliases, so one URL
    setting can say "this is a cluster" (see ``is_cluster_url``).
    """
    scheme = url.split("://", 1)[0] if isinstance(url, str) else ""
    if scheme in _CLUSTER_SCHEMES:
        url = _CLUSTER_SCHEMES[scheme] + url[len(scheme) :]
    _check_url(url, ("redis", "rediss"))
    options = {**_TCP_DEFAULTS, **kwargs}
    try:
        return RedisCluster.from_url(url, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"invalid Redis settings for {redact_url(url)}: {_scrub(str(exc), url)}"
        ) from None


def connect_any(url: str, **kwargs: Any) -> AnyRedis:
    """``connect_cluster`` for a ``redis+cluster://`` / ``rediss+cluster://`` URL, else
    ``connect``: the one entry point for programs whose URL may name either."""
    if is_cluster_url(url):
        return connect_cluster(url, **kwargs)
    return connect(url, **kwargs)


def is_cluster_url(url: str) -> bool:
    """True for ``redis+cluster://`` / ``rediss+cluster://`` URLs (use connect_cluster)."""
    return isinstance(url, str) and url.split("://", 1)[0] in _CLUSTER_SCHEMES
