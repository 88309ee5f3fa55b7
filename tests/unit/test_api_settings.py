"""The API settings: env names and alias, validation messages that never echo secrets."""

from __future__ import annotations

import pytest
from jobqueue_api import constants as c
from jobqueue_api.settings import Settings, SettingsError, load_settings, redact_url
from pydantic import SecretStr

ENV_NAMES = (
    "REDIS_URL",
    "TASK_QUEUE_URL",
    "QUEUE_NAME",
    "PORT",
    "API_TOKEN",
    "MAX_PAYLOAD_BYTES",
    "MAX_QUEUE_DEPTH",
    "MAX_BATCH",
    "LOG_LEVEL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_when_only_the_redis_url_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://localhost:6379/0")
    s = load_settings()
    assert s.redis_url.get_secret_value() == "redis://localhost:6379/0"
    assert (s.queue_name, s.port, s.max_payload_bytes) == ("default", 8080, 1024 * 1024)
    assert (s.max_queue_depth, s.api_token, s.max_batch, s.log_level) == (0, None, 1000, "INFO")
    assert s.access_log is False


def test_task_queue_url_is_accepted_as_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_QUEUE_URL", "redis://queue:6379/2")
    assert load_settings().redis_url.get_secret_value() == "redis://queue:6379/2"


def test_redis_url_wins_over_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://primary:6379/0")
    monkeypatch.setenv("TASK_QUEUE_URL", "redis://alias:6379/0")
    assert load_settings().redis_url.get_secret_value() == "redis://primary:6379/0"


def test_every_env_name_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "REDIS_URL": "rediss://user:pw@redis.example:6380/1",
        "QUEUE_NAME": "shop/emails",
        "PORT": "9000",
        "API_TOKEN": "s3cret",
        "MAX_PAYLOAD_BYTES": "2048",
        "MAX_QUEUE_DEPTH": "500",
        "MAX_BATCH": "50",
        "LOG_LEVEL": "debug",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    assert s.queue_name == "shop/emails"
    assert s.port == 9000
    assert s.api_token is not None and s.api_token.get_secret_value() == "s3cret"
    assert (s.max_payload_bytes, s.max_queue_depth, s.max_batch) == (2048, 500, 50)
    assert s.log_level == "DEBUG"


def test_a_blank_api_token_means_auth_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://localhost")
    monkeypatch.setenv("API_TOKEN", "  ")
    assert load_settings().api_token is None


def test_missing_redis_url_names_both_variables() -> None:
    with pytest.raises(SettingsError, match=r"REDIS_URL \(or TASK_QUEUE_URL\): is required"):
        load_settings()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"REDIS_URL": "http://user:hunter2@host:1"}, "REDIS_URL (or TASK_QUEUE_URL): must start"),
        ({"REDIS_URL": "redis://user:hunter2@host:port"}, "not a valid URL"),
        ({"REDIS_URL": "redis://:hunter2@/0"}, "has no host"),
        ({"REDIS_URL": "redis://:hunter2@h", "PORT": "70000"}, "PORT: "),
        ({"REDIS_URL": "redis://:hunter2@h", "PORT": "http"}, "PORT: "),
        ({"REDIS_URL": "redis://:hunter2@h", "MAX_QUEUE_DEPTH": "-1"}, "MAX_QUEUE_DEPTH: "),
        ({"REDIS_URL": "redis://:hunter2@h", "MAX_PAYLOAD_BYTES": "0"}, "MAX_PAYLOAD_BYTES: "),
        ({"REDIS_URL": "redis://:hunter2@h", "LOG_LEVEL": "loud"}, "LOG_LEVEL: "),
    ],
)
def test_bad_values_name_the_variable_and_never_the_secret(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert expected in message
    assert "hunter2" not in message


def test_several_errors_are_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "x")
    monkeypatch.setenv("MAX_BATCH", "0")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "REDIS_URL" in message and "PORT" in message and "MAX_BATCH" in message


def test_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@h:6379/0")
    monkeypatch.setenv("API_TOKEN", "tok-123")
    s = load_settings()
    assert "hunter2" not in repr(s) and "tok-123" not in repr(s)
    assert s.redacted_redis_url == "redis://:***@h:6379/0"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:pw@localhost:6379/0", "redis://:***@localhost:6379/0"),
        (
            "rediss://alice:pw@redis.example/3?ssl_cert_reqs=none",
            "rediss://alice:***@redis.example/3?ssl_cert_reqs=none",
        ),
        ("redis://u:p%40ss@[::1]:7000", "redis://u:***@[::1]:7000"),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_the_batch_route_has_its_own_body_limit() -> None:
    s = Settings(redis_url=SecretStr("redis://h"), max_payload_bytes=10, max_batch_bytes=99)
    assert s.max_body_bytes("/jobs") == 10
    assert s.max_body_bytes("/enqueue") == 10
    assert s.max_body_bytes(c.BATCH_PATH) == 99
