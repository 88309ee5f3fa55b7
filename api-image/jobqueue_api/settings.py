"""The API's configuration: one pydantic-settings object read from the environment, once."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobqueue import contract
from jobqueue import settings as shared
from jobqueue.connection import redact_url
from jobqueue.keys import validate_queue_name
from jobqueue_api import constants as c


class SettingsError(shared.SettingsError):
    """The environment does not describe a runnable API; the message names the variable at fault."""


class Settings(BaseSettings):
    """Every knob of the API; env names in capitals (REDIS_URL, QUEUE_NAME, PORT, ...): those
    the operator sets are named by jobqueue.contract (the fields' validation_alias)."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, populate_by_name=True
    )

    redis_url: shared.RedisUrl = Field(
        validation_alias=shared.REDIS_URL_ALIASES, description=shared.REDIS_URL_HELP
    )
    queue_name: str = Field(
        default=contract.DEFAULT_QUEUE_NAME,
        min_length=1,
        max_length=contract.QUEUE_NAME_MAX_LENGTH,
        validation_alias=contract.ENV_QUEUE_NAME,
    )
    host: str = c.DEFAULT_HOST
    port: int = Field(
        default=contract.HTTP_PORT, ge=1, le=65535, validation_alias=contract.ENV_PORT
    )
    max_payload_bytes: int = Field(default=c.DEFAULT_MAX_PAYLOAD_BYTES, ge=1)
    max_batch_bytes: int = Field(default=c.DEFAULT_MAX_BATCH_BYTES, ge=1)
    max_batch: int = Field(default=c.DEFAULT_MAX_BATCH, ge=1, le=100_000)
    max_queue_depth: int = Field(
        default=0, ge=0, description="Backpressure on ready jobs; 0 = off."
    )
    api_token: Annotated[SecretStr | None, shared.BlankIsNone] = Field(
        default=None, validation_alias=contract.ENV_API_TOKEN
    )
    log_level: shared.UpperLogLevel = "INFO"
    access_log: bool = False
    coalesce_enqueues: bool = True
    redis_connect_timeout: float = Field(default=c.DEFAULT_REDIS_CONNECT_TIMEOUT, gt=0)
    redis_socket_timeout: float = Field(default=c.DEFAULT_REDIS_SOCKET_TIMEOUT, gt=0)
    redis_max_connections: int = Field(default=c.DEFAULT_REDIS_MAX_CONNECTIONS, ge=1)
    job_routes: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=contract.ENV_JOB_ROUTES,
        description="JSON {job type: queue name} of the worker pools (set by the operator); "
        "other types go to QUEUE_NAME.",
    )

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


def load_settings() -> Settings:
    """Read the settings from the environment or raise SettingsError with a clear message."""
    try:
        return Settings()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as exc:
        raise SettingsError(shared.format_settings_error(exc)) from None
