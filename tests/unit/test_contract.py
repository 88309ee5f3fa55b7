"""The env contract between the operator and the images (jobqueue.contract): the Deployments the
builders make set exactly the variables the images' settings read, in a form they parse; the
shared defaults, limits and URL schemes agree on both sides; every image logs one line format."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from jobqueue_api import logs as api_logs
from jobqueue_api.settings import Settings
from jobqueue_operator import constants as c
from jobqueue_operator import spec as operator_spec
from jobqueue_operator.builders import Images, SecretMaterial, desired_children
from jobqueue_operator.kubetypes import JobQueueRef, Manifest
from jobqueue_operator.spec import WorkerSpec, parse_spec
from jobqueue_worker import logs as worker_logs
from jobqueue_worker.settings import WorkerSettings
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from jobqueue import contract

REF = JobQueueRef(namespace="shop", name="emails", uid="uid-1", generation=1)
IMAGES = Images(api="img/api:1", worker="img/worker:1", redis="img/redis:7")
URL = "redis://:pw@redis.shop.svc:6379/0"
TOKEN = "tkn-123"
# Every variable the operator can set: a token, a routed pool, non-default worker knobs.
SPEC = {
    "redis": {"urlFrom": {"secretKeyRef": {"name": "creds", "key": "url"}}},
    "api": {"authTokenSecretRef": {"name": "tok", "key": "t"}},
    "queueName": "mail",
    "worker": {"concurrency": 3, "jobTimeoutSeconds": 60, "drainTimeoutSeconds": 20},
    "workers": [{"name": "img", "jobTypes": ["resize"], "concurrency": 5}],
}


def children() -> dict[str, Manifest]:
    built = desired_children(
        REF, parse_spec(SPEC), SecretMaterial(redis_url=URL, api_token=TOKEN), IMAGES
    )
    return {f"{m['kind']}/{m['metadata']['name']}": m for m in built}


def env_list(deployment: Manifest) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["containers"][0]["env"])


def names_read(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (case-insensitive: in capitals)."""
    out: set[str] = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            out |= {str(choice).upper() for choice in alias.choices}
        elif isinstance(alias, str):
            out.add(alias.upper())
        else:
            out.add(name.upper())
    return out


def resolved(deployment: Manifest, all_children: dict[str, Manifest]) -> dict[str, str]:
    """The pod's environment as the kubelet would give it: Secret keys decoded from the
    Secrets the builders made, the downward API's pod name."""
    out = {}
    for item in env_list(deployment):
        if "value" in item:
            out[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            data = all_children[f"Secret/{ref['name']}"]["data"]
            out[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
        else:
            assert item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            out[item["name"]] = "emails-worker-abc12"
    return out


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in names_read(Settings) | names_read(WorkerSettings):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    yield monkeypatch


def test_the_api_pods_get_exactly_the_contract_variables_and_the_api_reads_each() -> None:
    got = {item["name"] for item in env_list(children()["Deployment/emails-api"])}
    assert got == contract.API_ENV
    assert names_read(Settings) >= contract.API_ENV
    # and nothing the API reads under a reserved name is left unset by the operator
    assert names_read(Settings) & set(contract.RESERVED_ENV) == contract.API_ENV


def test_the_worker_pods_get_exactly_the_contract_variables_and_the_worker_reads_each() -> None:
    built = children()
    for name in ("Deployment/emails-worker", "Deployment/emails-worker-img"):
        got = {item["name"] for item in env_list(built[name])}
        assert got == contract.WORKER_ENV, name
    assert names_read(WorkerSettings) >= contract.WORKER_ENV
    assert names_read(WorkerSettings) & set(contract.RESERVED_ENV) == contract.WORKER_ENV


def test_the_reserved_names_are_those_the_operator_sets() -> None:
    assert set(contract.RESERVED_ENV) == contract.API_ENV | contract.WORKER_ENV
    assert len(contract.RESERVED_ENV) == len(set(contract.RESERVED_ENV))
    assert c.RESERVED_ENV is contract.RESERVED_ENV


def test_the_api_parses_what_the_operator_gives_it(clean_env: pytest.MonkeyPatch) -> None:
    built = children()
    for name, value in resolved(built["Deployment/emails-api"], built).items():
        clean_env.setenv(name, value)
    settings = Settings()  # type: ignore[call-arg]  # from the environment
    assert settings.redis_url.get_secret_value() == URL
    assert settings.queue_name == "shop/mail"
    assert settings.port == contract.HTTP_PORT
    assert settings.api_token is not None and settings.api_token.get_secret_value() == TOKEN
    assert settings.job_routes == {"resize": "shop/mail/img"}


def test_each_worker_parses_what_the_operator_gives_it(clean_env: pytest.MonkeyPatch) -> None:
    built = children()
    expected = {
        "Deployment/emails-worker": ("shop/mail", 3, 60, 20),
        "Deployment/emails-worker-img": ("shop/mail/img", 5, 300, 25),
    }
    for name, (queue, concurrency, job_timeout, drain_timeout) in expected.items():
        env = resolved(built[name], built)
        for key, value in env.items():
            clean_env.setenv(key, value)
        settings = WorkerSettings()
        assert settings.redis_url.get_secret_value() == URL
        assert settings.queue_name == queue
        assert settings.worker_concurrency == concurrency
        assert settings.job_timeout_seconds == job_timeout
        assert settings.drain_timeout_seconds == drain_timeout
        assert settings.health_port == contract.HTTP_PORT
        assert settings.worker_id == "emails-worker-abc12"


def test_both_sides_share_the_defaults_and_limits() -> None:
    worker = WorkerSpec()
    assert worker.concurrency == WorkerSettings.model_fields["worker_concurrency"].default
    assert worker.concurrency == contract.DEFAULT_WORKER_CONCURRENCY
    assert worker.job_timeout_seconds == contract.DEFAULT_JOB_TIMEOUT_SECONDS
    assert worker.job_timeout_seconds == WorkerSettings.model_fields["job_timeout_seconds"].default
    assert worker.drain_timeout_seconds == contract.DEFAULT_DRAIN_TIMEOUT_SECONDS
    drain_default = WorkerSettings.model_fields["drain_timeout_seconds"].default
    assert worker.drain_timeout_seconds == drain_default
    spec_max = _upper_bound(WorkerSpec, "concurrency")
    assert spec_max == _upper_bound(WorkerSettings, "worker_concurrency")
    assert spec_max == contract.MAX_WORKER_CONCURRENCY
    assert _upper_bound(WorkerSpec, "job_timeout_seconds") == contract.MAX_JOB_TIMEOUT_SECONDS
    for settings in (Settings, WorkerSettings):
        assert settings.model_fields["queue_name"].default == contract.DEFAULT_QUEUE_NAME
    assert Settings.model_fields["port"].default == c.HTTP_PORT == contract.HTTP_PORT
    assert WorkerSettings.model_fields["health_port"].default == contract.HTTP_PORT


def _upper_bound(model: type[Any], field: str) -> object:
    bounds = [m.le for m in model.model_fields[field].metadata if hasattr(m, "le")]
    assert len(bounds) == 1, bounds
    return bounds[0]


def test_a_jobqueue_takes_every_image_scheme_but_unix() -> None:
    assert tuple(f"{s}://" for s in contract.POD_REDIS_URL_SCHEMES) == operator_spec.REDIS_SCHEMES
    assert set(contract.REDIS_URL_SCHEMES) - set(contract.POD_REDIS_URL_SCHEMES) == {"unix"}
    assert set(contract.POD_REDIS_URL_SCHEMES) <= set(contract.REDIS_URL_SCHEMES)


def test_both_images_log_with_the_one_formatter() -> None:
    assert api_logs.JsonFormatter is worker_logs.JsonFormatter is contract.JsonFormatter
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        for configure in (api_logs.configure_logging, worker_logs.configure_logging):
            configure("INFO")
            assert [type(h.formatter) for h in root.handlers] == [contract.JsonFormatter]
    finally:
        root.handlers[:], root.level = saved[0], saved[1]


def test_the_worker_fast_job_lines_are_the_formatter_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logger = logging.getLogger("jobqueue_worker.contract_test")
    try:
        worker_logs.configure_logging("INFO")
        batch = worker_logs.JobLines(logger, logging.INFO).batch()
        batch.add("j-1", "résumé", 2, 0.0015, "completed")
        batch.flush()
        fast = capsys.readouterr().err.strip()
        extra = {"job_id": "j-1", "type": "résumé", "attempt": 2, "duration_ms": 1.5}
        logger.info("job finished", extra={**extra, "outcome": "completed"})
        slow = capsys.readouterr().err.strip()
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    assert fast.count("\n") == 0 and slow.count("\n") == 0
    ts_fast, ts_slow = json.loads(fast)[contract.LOG_TS], json.loads(slow)[contract.LOG_TS]
    assert fast.replace(ts_fast, "T") == slow.replace(ts_slow, "T")
