"""Redis clients from a URL, with clear, password-free errors for bad settings."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from redis.asyncio import Redis, SSLConnection
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel

from jobqueue.errors import ConfigError

# A client the protocol runs on: one server (or Sentinel-managed primary) or a Cluster.
AnyRedis = Redis | RedisCluster

_SCHEMES = ("redis", "rediss", "unix")
_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_SENTINEL_SCHEMES = {"redis+sentinel": "redis", "rediss+sentinel": "rediss"}
# Every URL scheme connect_any takes: programs validate their REDIS_URL setting against it.
URL_SCHEMES: tuple[str, ...] = (*_SCHEMES, *_CLUSTER_SCHEMES, *_SENTINEL_SCHEMES)
SENTINEL_PORT = 26379
# Query options of a Sentinel URL for the Sentinels themselves (the rest go to the primary).
_SENTINEL_AUTH = ("sentinel_username", "sentinel_password")

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


def url_secrets(url: str) -> tuple[str, ...]:
    """The secret values in a Redis URL: its password (as written and decoded) and every
    ``*password*`` query value (``sentinel_password``...), to mask in messages."""
    if not isinstance(url, str):
        return ()
    found: list[str] = []
    m = _USERINFO_RE.match(url)
    if m is not None:
        user, colon, password = m["userinfo"].partition(":")
        found.append(password if colon else user)  # redis://password@host: password only
    query = url.partition("?")[2]
    found += [v for k, v in parse_qsl(query, keep_blank_values=True) if "password" in k.lower()]
    return tuple(dict.fromkeys(s for v in found for s in (v, unquote(v)) if s))


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


@contextlib.contextmanager
def _refused_settings(url: str) -> Iterator[None]:
    """redis-py's TypeError / ValueError for bad options as a password-free ConfigError."""
    try:
        yield
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"invalid Redis settings for {redact_url(url)}: {_scrub(str(exc), url)}"
        ) from None


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
    if is_sentinel_url(url):
        raise ConfigError(f"{redact_url(url)} names Sentinels: use jobqueue.connect_sentinel()")
    _check_url(url, _SCHEMES)
    tcp = {} if url.startswith("unix:") else _TCP_DEFAULTS
    options = {**_DEFAULTS, **tcp, **kwargs}
    with _refused_settings(url):
        client: Redis = Redis.from_url(url, **options)
        # Build (not connect) one connection so unknown options fail now, not on first use.
        client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
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
    with _refused_settings(url):
        return RedisCluster.from_url(url, **options)


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """A parsed ``redis+sentinel://`` URL: where the Sentinels are and what to ask them for."""

    sentinels: tuple[tuple[str, int], ...]
    service: str  # the primary's name in the Sentinels' configuration (`sentinel monitor`)
    primary: dict[str, Any]  # connection options of the primary (auth, db, TLS, timeouts)
    sentinel: dict[str, Any]  # connection options of the Sentinels (their own auth, TLS)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Parse ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``
    (``rediss+sentinel://`` for TLS to the Sentinels and the primary).

    The user and password are the primary's; ``?sentinel_password=`` (and
    ``sentinel_username``) authenticate to the Sentinels. Other query options (``ssl_*``,
    ``socket_timeout``, ...) are redis-py's URL options. Raises ValueError naming the problem;
    the message never holds the URL or its password.
    """
    scheme, sep, rest = url.partition("://") if isinstance(url, str) else ("", "", "")
    if not sep or scheme not in _SENTINEL_SCHEMES:
        raise ValueError("not a redis+sentinel:// or rediss+sentinel:// URL")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    userinfo, at, hosts = netloc.rpartition("@")
    sentinels = []
    for host in hosts.split(","):
        try:
            parts = urlsplit(f"//{host}")
            port = parts.port or SENTINEL_PORT
        except ValueError:
            raise ValueError(f"bad Sentinel address {host!r}") from None
        if not parts.hostname or not 0 < port < 65536:
            raise ValueError(f"bad Sentinel address {host!r}")
        sentinels.append((parts.hostname, port))
    service, _, db = unquote(path).strip("/").partition("/")
    if not service:
        raise ValueError("no service name: the path is /<service>[/<db>]")
    if db and not db.isdigit():
        raise ValueError("the database after the service name must be a number")
    options = parse_qsl(query, keep_blank_values=True)
    own = {k: v for k, v in options if k in _SENTINEL_AUTH}
    rest_query = urlencode([(k, v) for k, v in options if k not in _SENTINEL_AUTH])
    base = _SENTINEL_SCHEMES[scheme]
    # redis-py parses the primary's options from an equivalent one-host URL.
    try:
        primary: dict[str, Any] = dict(
            parse_url(f"{base}://{userinfo}{at}sentinel/{db or 0}?{rest_query}")
        )
    except ValueError as exc:
        raise ValueError(_scrub(str(exc), url)) from None
    primary.pop("host", None)
    primary.pop("port", None)
    tls = primary.pop("connection_class", None) is SSLConnection
    sentinel: dict[str, Any] = {
        k: v for k, v in primary.items() if k.startswith(("socket_", "ssl_"))
    }
    if tls:
        primary["ssl"] = sentinel["ssl"] = True
    sentinel.update({k.removeprefix("sentinel_"): v for k, v in own.items()})
    return SentinelTarget(tuple(sentinels), service, primary, sentinel)


def connect_sentinel(url: str, **kwargs: Any) -> Redis:
    """A ``redis.asyncio.Redis`` on the primary that the Sentinels of ``url`` name (see
    ``parse_sentinel_url``). It asks them again after a failover, so a client outlives one;
    kwargs (timeouts, ``connection_pool_class``, ...) go to the primary's pool."""
    try:
        target = parse_sentinel_url(url)
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {redact_url(url)}: {exc}") from None
    socket_options = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        target.sentinels,
        sentinel_kwargs={**_TCP_DEFAULTS, **socket_options, **target.sentinel},
    )
    options = {**_DEFAULTS, **_TCP_DEFAULTS, **target.primary, **kwargs}
    with _refused_settings(url):
        client: Redis = sentinels.master_for(target.service, **options)
        client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
    return client


def connect_any(url: str, **kwargs: Any) -> AnyRedis:
    """``connect_cluster`` for a ``redis+cluster://`` URL, ``connect_sentinel`` for a
    ``redis+sentinel://`` one (either with ``rediss+`` for TLS), else ``connect``: the one
    entry point for programs whose URL may name any of them."""
    if is_cluster_url(url):
        return connect_cluster(url, **kwargs)
    if is_sentinel_url(url):
        return connect_sentinel(url, **kwargs)
    return connect(url, **kwargs)


def is_cluster_url(url: str) -> bool:
    """True for ``redis+cluster://`` / ``rediss+cluster://`` URLs (use connect_cluster)."""
    return isinstance(url, str) and url.split("://", 1)[0] in _CLUSTER_SCHEMES


def is_sentinel_url(url: str) -> bool:
    """True for ``redis+sentinel://`` / ``rediss+sentinel://`` URLs (use connect_sentinel)."""
    return isinstance(url, str) and url.split("://", 1)[0] in _SENTINEL_SCHEMES
