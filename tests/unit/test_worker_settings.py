"""Worker settings from the environment: names, aliases, defaults and clear errors."""

from __future__ import annotations

import socket

import pytest
from jobqueue_worker import constants as c
from jobqueue_worker.settings import SettingsError, load_settings, redact_url

ENV = (
    "REDIS_URL", "TASK_QUEUE_URL", "QUEUE_NAME", "WORKER_CONCURRENCY", "TASKS_MODULE",
    "JOB_TIMEOUT_SECONDS", "DRAIN_TIMEOUT_SECONDS", "HEALTH_PORT", "POD_NAME", "LOG_LEVEL",
    "LEASE_SECONDS", "JOB_LOG_LEVEL",
)  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    s = load_settings()
    assert s.redis_url.get_secret_value() == c.DEFAULT_REDIS_URL
    assert s.queue_name == "default"
    assert s.worker_concurrency == c.DEFAULT_CONCURRENCY
    assert s.tasks_modules == ("examples.tasks",)
    assert s.health_port == 8080
    assert s.drain_timeout_seconds == 25.0
    assert s.worker_id == socket.gethostname()


def test_every_documented_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "REDIS_URL": "redis://r:6379/2",
        "QUEUE_NAME": "shop/emails",
        "WORKER_CONCURRENCY": "64",
        "TASKS_MODULE": " a.tasks , b ",
        "JOB_TIMEOUT_SECONDS": "12.5",
        "DRAIN_TIMEOUT_SECONDS": "10",
        "HEALTH_PORT": "9000",
        "POD_NAME": "worker-abc",
        "LOG_LEVEL": "debug",
        "LEASE_SECONDS": "7",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    assert (s.queue_name, s.worker_concurrency, s.tasks_modules) == (
        "shop/emails", 64, ("a.tasks", "b"),
    )  # fmt: skip
    assert (s.job_timeout_seconds, s.drain_timeout_seconds, s.health_port) == (12.5, 10, 9000)
    assert (s.worker_id, s.log_level, s.lease_seconds) == ("worker-abc", "DEBUG", 7)


def test_task_queue_url_is_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_QUEUE_URL", "redis://alias:6379/0")
    assert load_settings().redis_url.get_secret_value() == "redis://alias:6379/0"
    monkeypatch.setenv("REDIS_URL", "redis://primary:6379/0")
    assert load_settings().redis_url.get_secret_value() == "redis://primary:6379/0"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "WORKER_CONCURRENCY",
            "0",
            "WORKER_CONCURRENCY: Input should be greater than or equal to 1",
        ),
        ("WORKER_CONCURRENCY", "many", "WORKER_CONCURRENCY: Input should be a valid integer"),
        ("TASKS_MODULE", "not a module!", "TASKS_MODULE: 'not a module!' is not a dotted"),
        ("TASKS_MODULE", " , ", "TASKS_MODULE: names no module"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL: Input should be"),
        ("HEALTH_PORT", "70000", "HEALTH_PORT: Input should be less than or equal to 65535"),
        ("JOB_TIMEOUT_SECONDS", "-1", "JOB_TIMEOUT_SECONDS: Input should be greater than"),
        ("REDIS_URL", "http://x", "REDIS_URL (or TASK_QUEUE_URL): must start with one of"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="invalid configuration") as info:
        load_settings()
    assert message in str(info.value)


def test_a_bad_redis_url_is_reported_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://user:hunter2@host:notaport/0")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)
    assert "REDIS_URL" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://default:s3cret@h.example:6380", "rediss://default:***@h.example:6380"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://u:p@[::1]:6379", "redis://u:***@[::1]:6379"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_redacted_url_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:topsecret@redis:6379/0")
    s = load_settings()
    assert "topsecret" not in s.redacted_redis_url
    assert "topsecret" not in repr(s)
