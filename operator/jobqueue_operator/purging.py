"""What deleting a JobQueue with ``deletionPolicy: Purge`` does to its data: the keys of its
queues in Redis (or a managed Redis's volume claims), tried again a few times before giving
up with a message that says so."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from jobqueue_operator import builders, material, redisops
from jobqueue_operator import constants as c
from jobqueue_operator.kube import Kube
from jobqueue_operator.kubetypes import JSON, JobQueueRef
from jobqueue_operator.spec import JobQueueSpec
from jobqueue_operator.status import Problem

log = logging.getLogger(__name__)

Purger = Callable[[str, str], Awaitable[int]]  # (Redis URL, queue) -> keys deleted


class RetryLater(Exception):
    """The clean-up cannot finish now; the handler turns this into a kopf retry."""

    def __init__(self, message: str, delay: float = c.RETRY_DELAY) -> None:
        super().__init__(message)
        self.delay = delay


async def purge_queues(
    kube: Kube,
    purge: Purger,
    read: material.SecretReader,
    ref: JobQueueRef,
    spec: JobQueueSpec,
    live: Mapping[tuple[str, str], JSON],
    retry: int,
) -> str:
    """Delete the Redis keys of a JobQueue's queues (deletionPolicy: Purge): the managed
    Redis's volume claims, or the keys of every queue in the jobqueue format; raises RetryLater
    while attempts remain. Says what was done."""
    queues = spec.jobqueue_queues(ref.namespace, ref.name)
    any_foreign = spec.queue.foreign or any(p.queue.foreign for p in spec.workers)
    foreign = (
        "; the keys of the queues in other formats are kept (they are your library's)"
        if any_foreign
        else ""
    )
    if spec.redis.managed is not None:
        # The data is the volume: delete the claims (the StatefulSet's retention policy
        # does too; this covers a controller that lags or a policy changed later).
        selector = builders.label_selector(builders.selector_labels(ref.name, c.COMPONENT_REDIS))
        claims = await kube.list("PersistentVolumeClaim", ref.namespace, selector)
        for claim in claims:
            await kube.delete("PersistentVolumeClaim", ref.namespace, claim["metadata"]["name"])
        return f"managed Redis volume deleted ({len(claims)} claims)"
    url: str | Problem | None = None
    if spec.redis.url is not None:
        url = spec.redis.url
    elif spec.redis.url_from is not None:
        url = await material.source(read, ref, spec.redis.url_from.secret_key_ref, "urlFrom")
    if not isinstance(url, str):  # fall back on the workers' copy
        copy = live.get(("Secret", builders.child_name(ref.name, c.COMPONENT_WORKER)))
        url = material.decode(copy, c.SECRET_KEY_REDIS_URL) if copy is not None else None
    error = "no Redis URL (the source Secret and the copies are gone)"
    named = ", ".join(queues) or "none in the jobqueue format"
    if url is not None:
        try:
            count = sum([await purge(url, queue) for queue in queues])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = redisops.describe(exc, (url,))
        else:
            return f"purged {count} Redis keys of queues {named}{foreign}"
    if retry + 1 < c.PURGE_ATTEMPTS:
        raise RetryLater(f"could not purge queues {named}: {error}")
    message = f"gave up purging queues {named} after {retry + 1} attempts: {error}"
    log.warning("%s: %s", ref, message)
    return "Redis keys NOT purged: " + message
