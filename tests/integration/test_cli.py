"""The `jobqueue` CLI against a real API process, worker and redis-server: every command, its
output, its errors (exit 1 with the API's reason, exit 2 on bad usage), the token from env.

One API process (with a token) serves the module; each test starts from an empty queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner, Result
from jobqueue_cli import cli

from jobqueue import Queue
from tests.cluster.redis_server import RedisServer
from tests.integration.worker_support import WorkerProcess, start_worker
from tests.support.services import ApiProcess
from tests.support.waiting import wait_for

TOKEN = "cli-test-token"


@pytest.fixture(scope="module")
def queue_name() -> str:
    return f"test/cli-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, queue_name: str) -> Iterator[ApiProcess]:
    env = {"REDIS_URL": redis_server.url, "QUEUE_NAME": queue_name, "API_TOKEN": TOKEN}
    proc = ApiProcess(env).start()
    yield proc
    proc.cleanup()


@pytest.fixture(autouse=True)
async def empty_queue(redis_url: str, queue_name: str) -> AsyncIterator[None]:
    queue = Queue(aioredis.Redis.from_url(redis_url), queue_name)
    await queue.purge()
    yield
    await queue.aclose()


def run(
    api: ApiProcess | str,
    *args: str,
    env: dict[str, str | None] | None = None,
    input: str | None = None,
) -> Result:
    """`jobqueue <args>` in-process, against `api` with the module's token (from env)."""
    url = api if isinstance(api, str) else api.url
    base: dict[str, str | None] = {"JOBQUEUE_URL": url, "JOBQUEUE_TOKEN": TOKEN}
    return CliRunner().invoke(cli, args, env={**base, **(env or {})}, input=input)


def ok(api: ApiProcess, *args: str) -> str:
    result = run(api, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def status_of(api: ApiProcess, job_id: str) -> str:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    job: dict[str, str] = httpx.get(f"{api.url}/jobs/{job_id}", headers=auth).json()
    return job["status"]


async def test_enqueue_get_ls_stats_and_cancel(api: ApiProcess, queue_name: str) -> None:
    job_id = ok(api, "enqueue", "email", '{"to": "a@example.com"}', "--priority", "high").strip()
    low = ok(api, "enqueue", "email", "--priority", "low", "--max-retries", "0").strip()

    shown = ok(api, "get", job_id)
    assert f"id:          {job_id}" in shown
    assert "status:      queued" in shown
    assert '"to": "a@example.com"' in shown
    as_json = json.loads(ok(api, "--json", "get", low))
    assert (as_json["priority"], as_json["max_retries"]) == ("low", 0)

    listed = ok(api, "ls", "--state", "queued")
    assert listed.splitlines()[0].split()[:4] == ["ID", "TYPE", "QUEUE", "STATUS"]
    assert [line.split()[0] for line in listed.splitlines()[1:]] == [job_id, low]  # claim order
    first = ok(api, "ls", "--limit", "1").splitlines()
    assert first[1].split()[0] == job_id
    assert first[-1].startswith("more: --cursor ")
    rest = ok(api, "ls", "--limit", "1", "--cursor", first[-1].split()[-1]).splitlines()
    assert [line.split()[0] for line in rest[1:] if not line.startswith("more:")] == [low]
    assert ok(api, "ls", "--type", "resize").splitlines()[1:] == []  # the header only

    stats = ok(api, "stats").splitlines()
    row = next(line.split() for line in stats if line.startswith(queue_name))
    header = stats[0].split()
    assert dict(zip(header, row, strict=False))["HIGH"] == "1"
    assert dict(zip(header, row, strict=False))["LOW"] == "1"

    assert ok(api, "cancel", low).strip() == f"{low} cancelled"
    assert status_of(api, low) == "cancelled"
    again = run(api, "cancel", low)
    assert again.exit_code == 1
    assert "409" in again.stderr and "cancelled" in again.stderr


async def test_idempotency_key_and_payload_from_a_file(api: ApiProcess, tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"n": 1}')
    first = ok(api, "enqueue", "email", f"@{payload}", "--idempotency-key", "k1").strip()
    second = ok(api, "enqueue", "email", '{"n": 2}', "--idempotency-key", "k1")
    assert second.split()[0] == first
    assert "existing job" in second
    assert json.loads(ok(api, "--json", "get", first))["payload"] == {"n": 1}


async def test_dead_letters_workers_and_a_running_job_cancelled(
    api: ApiProcess,
    redis_url: str,
    queue_name: str,
    tmp_path: Path,
    workers: list[WorkerProcess],
) -> None:
    """One worker for both (a worker start is the slow part): the DLQ commands, then
    `workers`, `ls --state running` and the cancel of a running job."""
    worker = await start_worker(workers, redis_url, queue_name, tmp_path)
    slow = ok(api, "enqueue", "slow", '{"seconds": 60, "steps": 60}').strip()
    ids = [ok(api, "enqueue", "fail", "--max-retries", "0").strip() for _ in range(3)]
    wait_for("3 dead jobs", lambda: all(status_of(api, i) == "dead" for i in ids), 20)

    listed = ok(api, "dlq", "ls")
    assert {line.split()[0] for line in listed.splitlines()[1:-1]} == set(ids)
    assert listed.splitlines()[-1] == "3 dead"
    assert "this task always fails" in listed

    assert ok(api, "dlq", "retry", ids[0]).strip() == "retried 1"
    wait_for("the retried job dead again", lambda: status_of(api, ids[0]) == "dead", 20)

    assert ok(api, "dlq", "rm", ids[1]).strip() == f"deleted {ids[1]}"
    assert "404" in run(api, "get", ids[1]).stderr
    missing = run(api, "dlq", "rm", ids[1])
    assert missing.exit_code == 1 and "404" in missing.stderr

    refused = run(api, "dlq", "purge", input="n\n")
    assert refused.exit_code == 1  # aborted: nothing deleted
    assert "Aborted" in refused.output
    assert json.loads(ok(api, "--json", "dlq", "ls"))["total"] == 2
    assert ok(api, "dlq", "purge", "--yes").strip() == "purged 2"
    assert json.loads(ok(api, "--json", "dlq", "ls"))["total"] == 0

    both = run(api, "dlq", "retry")
    assert both.exit_code == 2 and "JOB_ID or --all" in both.output
    assert ok(api, "dlq", "retry", "--all").strip() == "retried 0"

    wait_for("the slow job running", lambda: status_of(api, slow) == "processing", 20)
    rows = ok(api, "workers").splitlines()
    assert rows[0].split() == ["ID", "QUEUE", "POOL", "BUSY", "IN-FLIGHT", "LAST-SEEN"]
    assert any(line.startswith(worker.name) for line in rows[1:]), rows
    assert slow in ok(api, "ls", "--state", "running")
    assert ok(api, "cancel", slow).strip() == f"{slow} cancelled"
    assert status_of(api, slow) == "cancelled"


async def test_stats_watch_refreshes_count_times(api: ApiProcess, queue_name: str) -> None:
    result = run(api, "stats", "--watch", "--interval", "0.1", "--count", "3")
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()].count("QUEUE") == 3
    assert result.stdout.count(queue_name) == 3
    watched = run(api, "--json", "stats", "--watch", "--interval", "0.1", "--count", "2")
    documents = watched.stdout.replace("}\n{", "}\x00{").split("\x00")
    assert [json.loads(d)["queues"][0]["name"] for d in documents] == [queue_name] * 2


async def test_the_token_from_the_option_or_the_environment(api: ApiProcess) -> None:
    refused = run(api, "stats", env={"JOBQUEUE_TOKEN": None})
    assert refused.exit_code == 1
    assert "401" in refused.stderr and "--token" in refused.stderr
    wrong = run(api, "--token", "nope", "stats")
    assert wrong.exit_code == 1 and "401" in wrong.stderr
    assert (
        run(api, "--token", TOKEN, "enqueue", "email", env={"JOBQUEUE_TOKEN": None}).exit_code == 0
    )
    assert run(api, "stats").exit_code == 0  # JOBQUEUE_TOKEN


async def test_bad_input_is_refused_with_its_reason(api: ApiProcess) -> None:
    not_json = run(api, "enqueue", "email", "{not json")
    assert not_json.exit_code == 2 and "not JSON" in not_json.output
    unknown = run(api, "get", "no-such-job")
    assert unknown.exit_code == 1 and "404" in unknown.stderr and "not found" in unknown.stderr
    bad_state = run(api, "ls", "--state", "sleeping")
    assert bad_state.exit_code == 2
    bad_cursor = run(api, "ls", "--state", "dead", "--cursor", "not-a-cursor")
    assert bad_cursor.exit_code == 1
    assert "400" in bad_cursor.stderr or "422" in bad_cursor.stderr
    nobody = run("http://127.0.0.1:9", "stats")
    assert nobody.exit_code == 1 and "cannot reach the API" in nobody.stderr


def test_kube_needs_the_jobqueue_name_after_the_command() -> None:
    result = CliRunner().invoke(cli, ["--kube", "-n", "shop", "stats"])
    assert result.exit_code == 2
    assert "jobqueue --kube -n shop stats emails" in result.output
    nested = CliRunner().invoke(cli, ["--kube", "dlq", "ls"])
    assert nested.exit_code == 2
    assert "dlq ls emails" in nested.output
    helped = CliRunner().invoke(cli, ["--kube", "stats", "--help"])
    assert helped.exit_code == 0 and "--watch" in helped.output
