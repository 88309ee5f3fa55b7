"""The API's configuration: one pydantic-settings object read from the environment, once."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobqueue.connection import URL_SCHEMES, redact_url
from jobqueue.keys import validate_queue_name
from jobqueue_api import constants as c

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
REDIS_SCHEMES = URL_SCHEMES


class SettingsError(Exception):
    """The environment does not describe a runnable API; the message names the variable at fault."""


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _empty_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


class Settings(BaseSettings):
    """Every knob of the API; env names in capitals (REDIS_URL, QUEUE_NAME, PORT, ...)."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, populate_by_name=True
    )

    redis_url: SecretStr = Field(
        validation_alias=AliasChoices("REDIS_URL", "TASK_QUEUE_URL", "redis_url"),
        description="Redis URL (redis://, rediss:// or unix://); TASK_QUEUE_URL is an alias.",
    )
    queue_name: str = Field(default=c.DEFAULT_QUEUE_NAME, min_length=1, max_length=200)
    host: str = c.DEFAULT_HOST
    port: int = Field(default=c.DEFAULT_PORT, ge=1, le=65535)
    max_payload_bytes: int = Field(default=c.DEFAULT_MAX_PAYLOAD_BYTES, ge=1)
    max_batch_bytes: int = Field(default=c.DEFAULT_MAX_BATCH_BYTES, ge=1)
    max_batch: int = Field(default=c.DEFAULT_MAX_BATCH, ge=1, le=100_000)
    max_queue_depth: int = Field(
        default=0, ge=0, description="Backpressure on ready jobs; 0 = off."
    )
    api_token: Annotated[SecretStr | None, BeforeValidator(_empty_is_none)] = None
    log_level: Annotated[LogLevel, BeforeValidator(_upper)] = "INFO"
    access_log: bool = False
    coalesce_enqueues: bool = True
    redis_connect_timeout: float = Field(default=c.DEFAULT_REDIS_CONNECT_TIMEOUT, gt=0)
    redis_socket_timeout: float = Field(default=c.DEFAULT_REDIS_SOCKET_TIMEOUT, gt=0)
    redis_max_connections: int = Field(default=c.DEFAULT_REDIS_MAX_CONNECTIONS, ge=1)
    job_routes: dict[str, str] = Field(
        default_factory=dict,
        description="JOB_ROUTES: JSON {job type: queue name} of the worker pools (set by the "
        "operator); other types go to QUEUE_NAME.",
    )

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value().strip()
        try:
            parts = urlsplit(raw)
            _ = parts.port  # raises ValueError on a non-numeric port
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if parts.scheme not in REDIS_SCHEMES:
            schemes = ", ".join(f"{s}://" for s in REDIS_SCHEMES)
            raise ValueError(f"must start with one of {schemes}")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("has no host")
        return SecretStr(raw)

    @field_validator("job_routes")
    @classmethod
    def _check_job_routes(cls, value: dict[str, str]) -> dict[str, str]:
        for job_type, queue in value.items():
            if not job_type:
                raise ValueError("has an empty job type")
            try:
                validate_queue_name(queue)
            except ValueError as exc:
                raise ValueError(f"routes job type {job_type!r} to a bad queue: {exc}") from None
        return value

    @property
    def redacted_redis_url(self) -> str:
        return redact_url(self.redis_url.get_secret_value())

    def max_body_bytes(self, path: str) -> int:
        """The request-body limit of a path: the batch route has its own, larger one."""
        return self.max_batch_bytes if path == c.BATCH_PATH else self.max_payload_bytes


_ENV_NAMES = {
    "REDIS_URL": "REDIS_URL (or TASK_QUEUE_URL)",
    "TASK_QUEUE_URL": "REDIS_URL (or TASK_QUEUE_URL)",
}


def format_settings_error(exc: ValidationError) -> str:
    """A one-line-per-variable message that never echoes a value (it could be a secret)."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        field = str(err["loc"][0]).upper() if err["loc"] else "?"
        env = _ENV_NAMES.get(field, field)
        msg = "is required" if err["type"] == "missing" else err["msg"]
        msg = msg.removeprefix("Value error, ")
        lines.append(f"{env}: {msg}")
    return "invalid configuration: " + "; ".join(lines)


def load_settings() -> Settings:
    """Read the settings from the environment or raise SettingsError with a clear message."""
    try:
        return Settings()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as exc:
        raise SettingsError(format_settings_error(exc)) from None
