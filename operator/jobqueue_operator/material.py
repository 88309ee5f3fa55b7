"""The secret material of a JobQueue's children: the values its Secrets hold (the Redis URL
from ``redis.urlFrom``, the API token, the keys of every ``secretRefs``), gathered through one
reader of Secrets (the reconcile's watch cache), and the Redis URL each JobQueue resolved to,
published for its autoscaler. Values never reach a message: a Problem names the Secret and key.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jobqueue_operator import builders
from jobqueue_operator import constants as c
from jobqueue_operator.builders import SecretMaterial
from jobqueue_operator.kubetypes import JSON, JobQueueRef
from jobqueue_operator.spec import JobQueueSpec, SecretKeySelector, SecretRef
from jobqueue_operator.status import Problem

Key = tuple[str, str]
SecretReader = Callable[[str, str], Awaitable[JSON | None]]  # (namespace, name) -> Secret


def decode_exact(raw: object) -> str | None:
    """A Secret value as text, byte for byte (no stripping); None if not UTF-8 base64."""
    try:
        return base64.b64decode(str(raw), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def decode(secret: Mapping[str, Any], key: str) -> str | None:
    """A Secret value as text, stripped; None if absent or not UTF-8 base64."""
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        return None


async def source(
    read: SecretReader, ref: JobQueueRef, selector: SecretKeySelector, what: str
) -> str | Problem:
    """The value a selector names, or the Problem of its absence."""
    secret = await read(ref.namespace, selector.name)
    where = f"Secret {ref.namespace}/{selector.name}"
    if secret is None:
        return Problem(c.REASON_SOURCE_MISSING, f"{where} ({what}) not found")
    value = decode(secret, selector.key)
    if not value:
        return Problem(
            c.REASON_SOURCE_MISSING, f"{where} ({what}) has no non-empty key {selector.key!r}"
        )
    return value


async def gather(
    read: SecretReader, ref: JobQueueRef, spec: JobQueueSpec, live: Mapping[tuple[str, str], JSON]
) -> SecretMaterial | Problem:
    """The secret values the children need, gathered from Secrets (or generated once)."""
    redis = spec.redis
    password: str | None = None
    if redis.managed is not None:
        existing = live.get(("Secret", builders.child_name(ref.name, c.COMPONENT_REDIS)))
        password = decode(existing, c.SECRET_KEY_REDIS_PASSWORD) if existing is not None else None
        password = password or secrets.token_urlsafe(24)
        url = builders.managed_redis_url(ref, password)
    elif redis.url_from is not None:
        found = await source(
            read, ref, redis.url_from.secret_key_ref, "spec.redis.urlFrom.secretKeyRef"
        )
        if isinstance(found, Problem):
            return found
        url = found
    else:
        assert redis.url is not None
        url = redis.url
    token: str | None = None
    if spec.api.enabled and spec.api.auth_token_secret_ref is not None:
        found = await source(
            read, ref, spec.api.auth_token_secret_ref, "spec.api.authTokenSecretRef"
        )
        if isinstance(found, Problem):
            return found
        token = found
    extra: dict[str, dict[str, str]] = {}
    wanted: list[tuple[str, str, tuple[SecretRef, ...]]] = []
    if spec.api.enabled and spec.api.secret_refs:
        wanted.append((c.COMPONENT_API, "spec.api", tuple(spec.api.secret_refs)))
    if spec.worker.secret_refs:
        wanted.append((c.COMPONENT_WORKER, "spec.worker", tuple(spec.worker.secret_refs)))
    for pool in spec.workers:
        if pool.secret_refs:
            where = f"spec.workers[{pool.name}]"
            wanted.append((builders.pool_component(pool.name), where, tuple(pool.secret_refs)))
    for component, where, refs in wanted:
        copied = await copy_keys(read, ref, refs, where)
        if isinstance(copied, Problem):
            return copied
        extra[component] = copied
    return SecretMaterial(redis_url=url, api_token=token, redis_password=password, extra=extra)


async def copy_keys(
    read: SecretReader, ref: JobQueueRef, refs: tuple[SecretRef, ...], where: str
) -> dict[str, str] | Problem:
    """The keys of a service's ``secretRefs`` (later refs win on a shared key). Names of
    the operator's own variables are never copied; values are never put in a message."""
    out: dict[str, str] = {}
    for secret_ref in refs:
        secret = await read(ref.namespace, secret_ref.name)
        name = f"Secret {ref.namespace}/{secret_ref.name} ({where}.secretRefs)"
        if secret is None:
            return Problem(c.REASON_SOURCE_MISSING, f"{name} not found")
        data = secret.get("data") or {}
        keys = list(secret_ref.keys) or sorted(k for k in data if k not in c.RESERVED_ENV)
        for key in keys:
            if key not in data:
                return Problem(c.REASON_SOURCE_MISSING, f"{name} has no key {key!r}")
            value = decode_exact(data[key])
            if value is None:
                return Problem(c.REASON_SOURCE_MISSING, f"{name}: key {key!r} is not UTF-8")
            out[key] = value
    return out


class RedisUrls:
    """The Redis URL each JobQueue resolved to, for the autoscaler daemon.

    The reconcile publishes; a daemon waits for the first value and restarts its loop when the
    value changes (a rotated source Secret). Only fingerprints are compared.
    """

    def __init__(self) -> None:
        self._urls: dict[Key, str] = {}
        self._changed: dict[Key, asyncio.Event] = {}

    def publish(self, key: Key, url: str) -> None:
        if self._urls.get(key) != url:
            self._urls[key] = url
            self._event(key).set()

    def get(self, key: Key) -> str | None:
        return self._urls.get(key)

    def forget(self, key: Key) -> None:
        self._urls.pop(key, None)
        event = self._changed.pop(key, None)
        if event is not None:
            event.set()

    def _event(self, key: Key) -> asyncio.Event:
        return self._changed.setdefault(key, asyncio.Event())

    async def wait_change(self, key: Key, seen: str | None) -> None:
        """Return once the URL of ``key`` differs from ``seen`` (or the key is forgotten)."""
        while True:
            event = self._event(key)
            if self._urls.get(key) != seen:
                return
            event.clear()
            await event.wait()
