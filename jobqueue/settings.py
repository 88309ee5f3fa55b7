"""Settings pieces shared by the API and worker images: the Redis URL field, validators, errors."""

# Needs pydantic only (a dependency of the base package), not pydantic-settings (the images'
# extras): the BaseSettings classes live in the images. Not imported by jobqueue/__init__.

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, AliasChoices, BeforeValidator, SecretStr, ValidationError

from jobqueue.connection import is_sentinel_url, parse_sentinel_url
from jobqueue.contract import ENV_REDIS_URL, ENV_TASK_QUEUE_URL, REDIS_URL_SCHEMES

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
REDIS_SCHEMES = REDIS_URL_SCHEMES
REDIS_URL_ALIASES = AliasChoices(ENV_REDIS_URL, ENV_TASK_QUEUE_URL, "redis_url")
REDIS_URL_HELP = (
    f"Redis URL ({', '.join(f'{s}://' for s in REDIS_SCHEMES)}); {ENV_TASK_QUEUE_URL} is an alias."
)

# How an error names a variable that has an alias.
_ENV_NAMES = {
    ENV_REDIS_URL: f"{ENV_REDIS_URL} (or {ENV_TASK_QUEUE_URL})",
    ENV_TASK_QUEUE_URL: f"{ENV_REDIS_URL} (or {ENV_TASK_QUEUE_URL})",
}


class SettingsError(Exception):
    """The environment does not describe a runnable program; the message names the variable."""


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _empty_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def check_redis_url(value: SecretStr) -> SecretStr:
    """The URL stripped, or ValueError saying what is wrong with it (never echoing it)."""
    raw = value.get_secret_value().strip()
    if is_sentinel_url(raw):
        parse_sentinel_url(raw)  # ValueError says what is wrong, without the URL
        return SecretStr(raw)
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


RedisUrl = Annotated[SecretStr, AfterValidator(check_redis_url)]
"""A Redis URL kept secret (its password), checked for scheme, host and port."""
UpperLogLevel = Annotated[LogLevel, BeforeValidator(_upper)]
"""A log level, any case in the environment (``debug`` reads as ``DEBUG``)."""
BlankIsNone = BeforeValidator(_empty_is_none)
"""For an optional field: an empty or blank value means unset (``Annotated[T | None, ...]``)."""


def format_settings_error(exc: ValidationError) -> str:
    """A one-line-per-variable message that never echoes a value (it could be a secret)."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        field = str(err["loc"][0]).upper() if err["loc"] else "?"
        env = _ENV_NAMES.get(field, field)
        msg = "is required" if err["type"] == "missing" else err["msg"]
        lines.append(f"{env}: {msg.removeprefix('Value error, ')}")
    return "invalid configuration: " + "; ".join(lines)
