"""The worker's configuration: one pydantic-settings object read from the environment, once."""

from __future__ import annotations

import re
import socket
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobqueue import contract
from jobqueue import settings as shared
from jobqueue.connection import redact_url
from jobqueue_worker import constants as c

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class SettingsError(shared.SettingsError):
    """The environment does not describe a runnable worker; the message names the variable."""


def split_modules(value: str) -> tuple[str, ...]:
    """`"a.tasks, b.tasks"` -> `("a.tasks", "b.tasks")`, empty items dropped."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


class WorkerSettings(BaseSettings):
    """Every knob of the worker; env names in capitals (REDIS_URL, WORKER_CONCURRENCY, ...):
    those the operator sets are named by jobqueue.contract (the fields' validation_alias)."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, populate_by_name=True
    )

    redis_url: shared.RedisUrl = Field(
        default=SecretStr(c.DEFAULT_REDIS_URL),
        validation_alias=shared.REDIS_URL_ALIASES,
        description=shared.REDIS_URL_HELP,
    )
    queue_name: str = Field(
        default=contract.DEFAULT_QUEUE_NAME,
        min_length=1,
        max_length=contract.QUEUE_NAME_MAX_LENGTH,
        validation_alias=contract.ENV_QUEUE_NAME,
    )
    worker_concurrency: int = Field(
        default=c.DEFAULT_CONCURRENCY,
        ge=1,
        le=c.MAX_CONCURRENCY,
        validation_alias=contract.ENV_WORKER_CONCURRENCY,
    )
    worker_prefetch: Annotated[int | None, shared.BlankIsNone] = Field(
        default=None,
        ge=0,
        le=c.MAX_CONCURRENCY * c.DEFAULT_PREFETCH_FACTOR,
        description="Jobs claimed ahead of a free slot; unset: 8 x the concurrency; 0: none.",
    )
    tasks_module: str = Field(
        default=c.DEFAULT_TASKS_MODULE, description="Module(s) to import, comma-separated."
    )
    job_timeout_seconds: float = Field(
        default=c.DEFAULT_JOB_TIMEOUT,
        ge=0,
        validation_alias=contract.ENV_JOB_TIMEOUT,
        description="0 = no limit.",
    )
    drain_timeout_seconds: float = Field(
        default=c.DEFAULT_DRAIN_TIMEOUT,
        ge=0,
        validation_alias=contract.ENV_DRAIN_TIMEOUT,
    )
    health_host: str = c.DEFAULT_HEALTH_HOST
    health_port: int = Field(
        default=contract.HTTP_PORT, ge=1, le=65535, validation_alias=contract.ENV_HEALTH_PORT
    )
    pod_name: Annotated[str | None, shared.BlankIsNone] = Field(
        default=None, validation_alias=contract.ENV_POD_NAME
    )
    log_level: shared.UpperLogLevel = c.DEFAULT_LOG_LEVEL
    job_log_level: shared.UpperLogLevel = c.DEFAULT_JOB_LOG_LEVEL
    lease_seconds: float = Field(default=c.DEFAULT_LEASE_SECONDS, ge=0.5, le=86400)
    liveness_timeout_seconds: float = Field(default=c.DEFAULT_LIVENESS_TIMEOUT, gt=0)
    heartbeat_interval_seconds: float = Field(default=c.DEFAULT_HEARTBEAT_INTERVAL, gt=0)
    poll_interval_seconds: float = Field(default=c.DEFAULT_POLL_INTERVAL, gt=0, le=60)
    worker_event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        default="auto", description="auto: uvloop when installed (it is in the image)."
    )
    redis_connect_timeout: float = Field(default=c.DEFAULT_REDIS_CONNECT_TIMEOUT, gt=0)
    redis_socket_timeout: float = Field(default=c.DEFAULT_REDIS_SOCKET_TIMEOUT, gt=0)

    @field_validator("tasks_module")
    @classmethod
    def _check_tasks_module(cls, value: str) -> str:
        modules = split_modules(value)
        if not modules:
            raise ValueError("names no module (e.g. TASKS_MODULE=myapp.tasks)")
        bad = [m for m in modules if not _MODULE_NAME.match(m)]
        if bad:
            raise ValueError(f"{', '.join(repr(m) for m in bad)} is not a dotted module name")
        return ",".join(modules)

    @property
    def tasks_modules(self) -> tuple[str, ...]:
        return split_modules(self.tasks_module)

    @property
    def redacted_redis_url(self) -> str:
        return redact_url(self.redis_url.get_secret_value())

    @property
    def prefetch(self) -> int:
        """WORKER_PREFETCH, or its default: DEFAULT_PREFETCH_FACTOR x the concurrency."""
        if self.worker_prefetch is not None:
            return self.worker_prefetch
        return self.worker_concurrency * c.DEFAULT_PREFETCH_FACTOR

    @property
    def worker_id(self) -> str:
        """The name this worker heartbeats under: POD_NAME, else the host name."""
        return self.pod_name or socket.gethostname()


def load_settings() -> WorkerSettings:
    """Read the settings from the environment or raise SettingsError with a clear message."""
    try:
        return WorkerSettings()
    except ValidationError as exc:
        raise SettingsError(shared.format_settings_error(exc)) from None
