"""What the operator itself asks of a queue's Redis: is it readable, purge on delete, and the
one way its short-lived clients (check, purge, schedules) are opened.

All go through the ``jobqueue`` protocol library (the key layout and URL schemes live there).
Errors come back as messages with every secret value masked: they end up in status and Events.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass

import jobqueue
from jobqueue import AnyRedis, Queue
from jobqueue_operator import constants as c

_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords (``scheme://user:pw@``) and each of ``secrets`` masked (of a
    URL among them: the URL and its secret parts)."""
    out = _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)
    given = list(secrets)
    given += [x for s in given if "://" in s for x in jobqueue.url_secrets(s)]
    secrets = given
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        out = out.replace(secret, "***")
        if "@" in secret or "://" in secret:
            out = out.replace(jobqueue.redact_url(secret), "***")
    return out


def describe(error: BaseException, secrets: Iterable[str] = ()) -> str:
    """``Type: message`` of an exception, secrets masked."""
    text = str(error) or repr(error)
    return redact(f"{type(error).__name__}: {text}", secrets)


@dataclass(frozen=True, slots=True)
class QueueCounts:
    ready: int
    in_flight: int
    delayed: int
    dead: int

    def status(self) -> dict[str, int]:
        return {
            "ready": self.ready,
            "inFlight": self.in_flight,
            "delayed": self.delayed,
            "dead": self.dead,
        }


@dataclass(frozen=True, slots=True)
class RedisCheck:
    """The outcome of reading a queue: ``ok`` None means it was not checked."""

    ok: bool | None
    message: str
    counts: QueueCounts | None = None


NOT_CHECKED = RedisCheck(None, "the Redis URL is not known")


def client(url: str) -> AnyRedis:
    """A client for ``url`` (redis://, rediss://, unix://, redis+cluster://, rediss+cluster://)
    whose every connect and read gives up after ``REDIS_CHECK_TIMEOUT``: the operator's calls
    are short, and a Redis that hangs must not hold a handler. Opens nothing yet; a malformed
    URL raises ``jobqueue.ConfigError`` (password-free message)."""
    return jobqueue.connect_any(
        url,
        socket_connect_timeout=c.REDIS_CHECK_TIMEOUT,
        socket_timeout=c.REDIS_CHECK_TIMEOUT,
    )


async def check(url: str, queue_name: str) -> RedisCheck:
    """Read the queue's depth once (one round trip); never raises."""
    redis: AnyRedis | None = None
    try:
        redis = client(url)
        async with asyncio.timeout(c.REDIS_CHECK_TIMEOUT * 2):
            stats = await Queue(redis, queue_name).stats()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return RedisCheck(False, describe(exc, (url,)))
    finally:
        if redis is not None:
            await redis.aclose()
    counts = QueueCounts(stats.ready, stats.in_flight, stats.delayed, stats.dead)
    return RedisCheck(True, c.MESSAGE_REDIS_OK, counts)


async def purge(url: str, queue_name: str) -> int:
    """Delete every key of the queue; returns how many. Raises on failure."""
    redis = client(url)
    try:
        async with asyncio.timeout(c.REDIS_CHECK_TIMEOUT * 10):
            return await Queue(redis, queue_name).purge()
    finally:
        await redis.aclose()
