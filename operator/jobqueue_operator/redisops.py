"""What the operator itself asks of a queue's Redis: is it readable, purge on delete, and the
one way its short-lived clients (check, purge, schedules) are opened.

All go through the ``jobqueue`` protocol library (the key layout and URL schemes live there).
Errors come back as messages with every secret value masked: they end up in status and Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import jobqueue
from jobqueue import AnyRedis, Queue
from jobqueue_operator import constants as c
from jobqueue_operator.formats import QueueFormatError
from jobqueue_operator.redishub import RedisHub
from jobqueue_operator.sources import open_source
from jobqueue_operator.spec import QueueSpec

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
    format: str = "jobqueue"

    def status(self) -> dict[str, int | str]:
        return {
            "ready": self.ready,
            "inFlight": self.in_flight,
            "delayed": self.delayed,
            "dead": self.dead,
            "format": self.format,
        }


@dataclass(frozen=True, slots=True)
class RedisCheck:
    """The outcome of reading a queue: ``ok`` None means it was not checked. ``format_error``:
    Redis answered, but a key is not what the queue's format reads (e.g. a hash where format
    list reads a list): nothing is counted, and the JobQueue is Degraded until it is fixed."""

    ok: bool | None
    message: str
    counts: QueueCounts | None = None
    format_error: str | None = None


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


async def check(
    url: str, queue: QueueSpec, queue_name: str, *, hub: RedisHub | None = None
) -> RedisCheck:
    """Read the queue's depth once, in its format (``queue_name``: our protocol's queue);
    never raises. ``hub``: on the endpoint's shared client, not a client of its own."""
    source = open_source(url, queue, queue_name, hub=hub)
    try:
        async with asyncio.timeout(c.REDIS_CHECK_TIMEOUT * 2):
            got = await source.snapshot()
    except asyncio.CancelledError:
        raise
    except QueueFormatError as exc:
        return RedisCheck(True, c.MESSAGE_REDIS_OK, format_error=redact(str(exc), (url,)))
    except Exception as exc:
        return RedisCheck(False, describe(exc, (url,)))
    finally:
        with contextlib.suppress(Exception):
            await source.close()
    counts = QueueCounts(got.ready, got.in_flight, got.delayed, got.dead, queue.format)
    return RedisCheck(True, c.MESSAGE_REDIS_OK, counts)


async def purge(url: str, queue_name: str) -> int:
    """Delete every key of the queue; returns how many. Raises on failure."""
    redis = client(url)
    try:
        async with asyncio.timeout(c.REDIS_CHECK_TIMEOUT * 10):
            return await Queue(redis, queue_name).purge()
    finally:
        await redis.aclose()
