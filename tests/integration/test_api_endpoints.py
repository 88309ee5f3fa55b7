"""Every endpoint and every error of the job API: the real app against a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from jobqueue_api import constants as c

import jobqueue
from jobqueue import FailOutcome, JobStatus, Queue
from tests.cluster.redis_server import RedisServer
from tests.support.api import make_settings, serve

TOKEN = "t0ken-for-tests"


@pytest.fixture
async def api(redis_url: str, queue_name: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(make_settings(redis_url, queue_name)) as (client, _):
        yield client


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> AsyncIterator[Queue]:
    """The same queue as a worker sees it, to move jobs through their states."""
    client = jobqueue.connect(redis_url)
    yield Queue(client, queue_name)
    await client.aclose()


async def enqueued_total(queue: Queue) -> int:
    return (await queue.stats()).enqueued_total


# ---- seed 000: POST /enqueue ---------------------------------------------------------------


async def test_enqueue_without_a_body_answers_202_with_a_job_id(
    api: httpx.AsyncClient, queue: Queue
) -> None:
    r = await api.post("/enqueue")
    assert r.status_code == 202
    assert set(r.json()) == {"job_id"}
    job = await queue.get(r.json()["job_id"])
    assert job is not None
    assert (job.type, job.payload, job.status) == (c.DEFAULT_JOB_TYPE, None, JobStatus.QUEUED)


async def test_enqueue_accepts_an_optional_type_and_payload(
    api: httpx.AsyncClient, queue: Queue
) -> None:
    r = await api.post("/enqueue", json={"type": "email", "payload": {"to": "a@b.c"}})
    assert r.status_code == 202
    job = await queue.get(r.json()["job_id"])
    assert job is not None and (job.type, job.payload) == ("email", {"to": "a@b.c"})


async def test_enqueue_with_an_unknown_field_is_422_naming_it(
    api: httpx.AsyncClient, queue: Queue
) -> None:
    r = await api.post("/enqueue", json={"typ": "email"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "typ"]
    assert await enqueued_total(queue) == 0


# ---- seed 001: /tasks ----------------------------------------------------------------------


async def test_tasks_round_trip_in_the_seed_shape(api: httpx.AsyncClient, queue: Queue) -> None:
    payload = {"to": "alice@example.com", "subject": "Hello"}
    r = await api.post("/tasks", params={"task_type": "email"}, json=payload)
    assert r.status_code == 200
    task = r.json()
    assert set(task) == {"id", "type", "payload", "status"}
    assert (task["type"], task["payload"], task["status"]) == ("email", payload, "queued")

    got = await api.get(f"/tasks/{task['id']}")
    assert got.status_code == 200 and got.json() == task

    claimed = await queue.claim("w1")
    assert [j.id for j in claimed] == [task["id"]]
    assert (await api.get(f"/tasks/{task['id']}")).json()["status"] == "processing"


async def test_a_task_without_a_body_has_a_null_payload(api: httpx.AsyncClient) -> None:
    r = await api.post("/tasks?task_type=report")
    assert r.status_code == 200 and r.json()["payload"] is None


async def test_a_task_needs_a_task_type(api: httpx.AsyncClient, queue: Queue) -> None:
    r = await api.post("/tasks", json={"a": 1})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "task_type"]
    assert await enqueued_total(queue) == 0


async def test_an_unknown_task_is_404(api: httpx.AsyncClient) -> None:
    r = await api.get("/tasks/abc123")
    assert r.status_code == 404 and "abc123" in r.json()["detail"]


# ---- POST /jobs and GET /jobs/{id} -----------------------------------------------------------


async def test_a_typed_job_is_accepted_and_readable(api: httpx.AsyncClient) -> None:
    body = {
        "type": "resize",
        "payload": {"file": "a.png", "sizes": [64, 128]},
        "priority": "high",
        "delay_seconds": 60,
        "max_retries": 5,
    }
    r = await api.post("/jobs", json=body)
    assert r.status_code == 202
    accepted = r.json()
    assert accepted["created"] is True
    assert r.headers["location"] == f"/jobs/{accepted['job_id']}"

    job = (await api.get(r.headers["location"])).json()
    assert job["id"] == accepted["job_id"]
    assert (job["type"], job["payload"], job["priority"]) == ("resize", body["payload"], "high")
    assert (job["status"], job["attempts"], job["max_retries"]) == ("queued", 0, 5)
    assert (job["progress"], job["result"], job["error"]) == (0, None, None)
    assert job["created_at"] is not None and job["started_at"] is None
    assert job["run_at"] is not None and job["run_at"] > job["created_at"]


async def test_the_same_idempotency_key_gives_the_same_job(
    api: httpx.AsyncClient, queue: Queue
) -> None:
    body = {"type": "charge", "payload": {"order": 7}, "idempotency_key": "order-7"}
    first = (await api.post("/jobs", json=body)).json()
    second = (await api.post("/jobs", json=body)).json()
    assert second == {"job_id": first["job_id"], "created": False}
    assert await enqueued_total(queue) == 1
    metrics = (await api.get("/metrics")).text
    assert "jobqueue_api_jobs_enqueued_total 1.0" in metrics


async def test_a_job_shows_progress_result_and_attempts(
    api: httpx.AsyncClient, queue: Queue
) -> None:
    job_id = (await api.post("/jobs", json={"type": "t"})).json()["job_id"]
    [claimed] = await queue.claim("w1")
    assert await queue.set_progress(job_id, claimed.token, 40)
    running = (await api.get(f"/jobs/{job_id}")).json()
    assert (running["status"], running["progress"], running["attempts"]) == ("processing", 40, 1)
    assert running["started_at"] is not None

    assert await queue.complete([(job_id, claimed.token, {"rows": 3})]) == [True]
    done = (await api.get(f"/jobs/{job_id}")).json()
    assert (done["status"], done["progress"], done["result"]) == ("completed", 100, {"rows": 3})
    assert done["finished_at"] is not None


async def test_an_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    r = await api.get("/jobs/0123456789abcdef")
    assert r.status_code == 404
    assert r.json() == {"detail": "job 0123456789abcdef not found"}


async def test_a_malformed_job_id_is_422(api: httpx.AsyncClient) -> None:
    r = await api.get("/jobs/bad%20id")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "job_id"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "type"]),
        ({"type": ""}, ["body", "type"]),
        ({"type": "t", "priority": "urgent"}, ["body", "priority"]),
        ({"type": "t", "delay_seconds": -1}, ["body", "delay_seconds"]),
        ({"type": "t", "max_retries": 1000}, ["body", "max_retries"]),
        ({"type": "t", "idempotency_key": ""}, ["body", "idempotency_key"]),
        ({"type": "t", "payload": {"n": 2**70}}, ["body", "payload"]),
        ({"type": "t", "extra": 1}, ["body", "extra"]),
        ([1, 2], ["body"]),
    ],
)
async def test_schema_errors_are_422_with_the_field_and_change_nothing(
    api: httpx.AsyncClient, queue: Queue, body: Any, loc: list[str]
) -> None:
    r = await api.post("/jobs", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == loc
    assert await enqueued_total(queue) == 0


def _deep(depth: int) -> bytes:
    return b'{"type":"t","payload":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b'{"type": "t",', {"content-type": "application/json"}, 422),  # malformed JSON
        (b'{"type": "\xff\xfe"}', {"content-type": "application/json"}, 422),  # not UTF-8
        (_deep(100), {"content-type": "application/json"}, 422),  # deeper than allowed
        (_deep(100_000), {"content-type": "application/json"}, 422),  # deeper than the parser
        (b"type=t", {"content-type": "application/x-www-form-urlencoded"}, 415),
        (b'{"type": "t"}', {"content-type": "text/plain"}, 415),
    ],
)
async def test_client_mistakes_are_4xx_never_500(
    api: httpx.AsyncClient,
    queue: Queue,
    content: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    for path in ("/jobs", "/enqueue", "/tasks?task_type=t", "/jobs:batch"):
        r = await api.post(path, content=content, headers=headers)
        assert r.status_code == status, (path, r.text)
        assert "detail" in r.json()
    assert await enqueued_total(queue) == 0


async def test_a_body_without_content_type_is_read_as_json(api: httpx.AsyncClient) -> None:
    r = await api.post("/jobs", content=b'{"type": "t"}')
    assert r.status_code == 202


async def test_a_body_over_the_limit_is_413_and_enqueues_nothing(
    redis_url: str, queue_name: str, queue: Queue
) -> None:
    settings = make_settings(redis_url, queue_name, max_payload_bytes=1000)
    async with serve(settings) as (client, _):
        big = {"type": "t", "payload": "x" * 1000}
        for path in ("/jobs", "/enqueue", "/tasks?task_type=t"):
            r = await client.post(path, json=big)
            assert r.status_code == 413, path
            assert r.json() == {"detail": "request body is larger than 1000 bytes"}
        small = await client.post("/jobs", json={"type": "t", "payload": "x" * 900})
        assert small.status_code == 202
    assert await enqueued_total(queue) == 1


# ---- POST /jobs:batch ----------------------------------------------------------------------


async def test_a_batch_is_enqueued_in_order(api: httpx.AsyncClient, queue: Queue) -> None:
    jobs = [{"type": "t", "payload": i} for i in range(250)]
    jobs[3]["priority"] = "low"
    r = await api.post("/jobs:batch", json={"jobs": jobs})
    assert r.status_code == 202
    body = r.json()
    assert len(body["job_ids"]) == 250 and len(set(body["job_ids"])) == 250
    assert body["created"] == [True] * 250
    for i in (0, 3, 249):
        job = await queue.get(body["job_ids"][i])
        assert job is not None and job.payload == i
    assert (await queue.get(body["job_ids"][3])).priority.value == "low"  # type: ignore[union-attr]
    assert await enqueued_total(queue) == 250


async def test_a_batch_with_one_bad_job_is_refused_whole(
    api: httpx.AsyncClient, queue: Queue
) -> None:
    r = await api.post(
        "/jobs:batch", json={"jobs": [{"type": "a"}, {"type": "b", "max_retries": -1}]}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "jobs", 1, "max_retries"]
    assert await enqueued_total(queue) == 0


async def test_batch_size_is_bounded(redis_url: str, queue_name: str, queue: Queue) -> None:
    async with serve(make_settings(redis_url, queue_name, max_batch=10)) as (client, _):
        r = await client.post("/jobs:batch", json={"jobs": [{"type": "t"}] * 11})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "jobs"]
        assert "at most 10" in r.json()["detail"][0]["msg"]
        empty = await client.post("/jobs:batch", json={"jobs": []})
        assert empty.status_code == 422
        ok = await client.post("/jobs:batch", json={"jobs": [{"type": "t"}] * 10})
        assert ok.status_code == 202
    assert await enqueued_total(queue) == 10


async def test_each_batched_payload_obeys_the_single_job_limit(
    redis_url: str, queue_name: str, queue: Queue
) -> None:
    settings = make_settings(redis_url, queue_name, max_payload_bytes=1000, max_batch_bytes=50_000)
    async with serve(settings) as (client, _):
        jobs = [{"type": "t", "payload": "x" * 500} for _ in range(20)]
        assert (await client.post("/jobs:batch", json={"jobs": jobs})).status_code == 202
        jobs[7]["payload"] = "x" * 1200
        r = await client.post("/jobs:batch", json={"jobs": jobs})
        assert r.status_code == 413 and "jobs[7].payload" in r.json()["detail"]
        huge = [{"type": "t", "payload": "x" * 900} for _ in range(60)]
        assert (await client.post("/jobs:batch", json={"jobs": huge})).status_code == 413
    assert await enqueued_total(queue) == 20


# ---- DELETE /jobs/{id} -----------------------------------------------------------------------


async def test_cancel_a_queued_job_then_it_is_not_cancellable(
    api: httpx.AsyncClient, queue: Queue
) -> None:
    job_id = (await api.post("/jobs", json={"type": "t", "delay_seconds": 30})).json()["job_id"]
    r = await api.delete(f"/jobs/{job_id}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    again = await api.delete(f"/jobs/{job_id}")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
    assert await queue.claim("w1") == []


async def test_a_running_job_cannot_be_cancelled(api: httpx.AsyncClient, queue: Queue) -> None:
    job_id = (await api.post("/jobs", json={"type": "t"})).json()["job_id"]
    await queue.claim("w1")
    r = await api.delete(f"/jobs/{job_id}")
    assert r.status_code == 409 and "processing" in r.json()["detail"]


async def test_cancelling_an_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.delete("/jobs/nope")).status_code == 404


# ---- dead-letter queue and stats -------------------------------------------------------------


async def _kill(api: httpx.AsyncClient, queue: Queue, n: int) -> list[str]:
    """Enqueue n jobs without retries and fail each once: they land in the DLQ."""
    ids = await api.post("/jobs:batch", json={"jobs": [{"type": "t", "max_retries": 0}] * n})
    job_ids: list[str] = ids.json()["job_ids"]
    for claimed in await queue.claim("w1", count=n):
        assert await queue.fail(claimed.id, claimed.token, "boom") == FailOutcome.DEAD
    return job_ids


async def test_the_dlq_lists_retries_and_purges(api: httpx.AsyncClient, queue: Queue) -> None:
    job_ids = await _kill(api, queue, 5)
    page = (await api.get("/dlq", params={"limit": 2})).json()
    assert (page["total"], page["offset"], page["limit"]) == (5, 0, 2)
    assert len(page["jobs"]) == 2
    assert page["jobs"][0]["status"] == "dead" and page["jobs"][0]["error"] == "boom"
    rest = (await api.get("/dlq", params={"offset": 2})).json()
    # Deaths in the same millisecond have no defined order: compare the pages as a partition.
    listed = [j["id"] for j in page["jobs"] + rest["jobs"]]
    assert sorted(listed) == sorted(job_ids)

    r = await api.post(f"/dlq/{job_ids[0]}/retry")
    assert r.status_code == 200 and r.json() == {"retried": 1}
    assert (await api.get(f"/jobs/{job_ids[0]}")).json()["status"] == "queued"
    assert (await api.post(f"/dlq/{job_ids[0]}/retry")).status_code == 404

    assert (await api.post("/dlq:retry-all")).json() == {"retried": 4}
    stats = (await api.get("/stats")).json()
    assert stats["dead"] == 0 and stats["ready"] == 5

    await queue.purge()
    job_ids = await _kill(api, queue, 3)
    r = await api.delete("/dlq")
    assert r.status_code == 200 and r.json() == {"purged": 3}
    assert (await api.get("/dlq")).json() == {"jobs": [], "offset": 0, "limit": 100, "total": 0}
    assert (await api.get(f"/jobs/{job_ids[0]}")).status_code == 404


async def test_retry_all_counts_what_it_requeued(api: httpx.AsyncClient, queue: Queue) -> None:
    await _kill(api, queue, 4)
    r = await api.post("/dlq:retry-all")
    assert r.status_code == 200 and r.json() == {"retried": 4}
    assert (await api.post("/dlq:retry-all")).json() == {"retried": 0}


async def test_dlq_paging_is_validated(api: httpx.AsyncClient) -> None:
    assert (await api.get("/dlq", params={"limit": 0})).status_code == 422
    assert (await api.get("/dlq", params={"limit": c.DLQ_MAX_LIMIT + 1})).status_code == 422
    assert (await api.get("/dlq", params={"offset": -1})).status_code == 422


async def test_stats_report_depth_by_state(
    api: httpx.AsyncClient, queue: Queue, queue_name: str
) -> None:
    await api.post("/jobs:batch", json={"jobs": [{"type": "t"}] * 3})
    await api.post("/jobs", json={"type": "t", "delay_seconds": 600})
    await queue.claim("w1")
    stats = (await api.get("/stats")).json()
    assert stats["queue"] == queue_name
    assert (stats["ready"], stats["in_flight"], stats["delayed"], stats["dead"]) == (2, 1, 1, 0)
    assert stats["enqueued_total"] == 4
    assert stats["oldest_ready_age_seconds"] >= 0


# ---- health, metrics, OpenAPI ----------------------------------------------------------------


async def test_health_endpoints(api: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/health"):
        r = await api.get(path)
        assert r.status_code == 200 and r.json() == {"status": "ok"}, path


async def test_metrics_expose_enqueues_depth_and_latency_by_route(
    api: httpx.AsyncClient, queue_name: str
) -> None:
    await api.post("/jobs:batch", json={"jobs": [{"type": "t"}] * 3})
    job_id = (await api.post("/enqueue")).json()["job_id"]
    await api.get(f"/jobs/{job_id}")
    r = await api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "jobqueue_api_jobs_enqueued_total 4.0" in text
    assert f'jobqueue_api_queue_depth{{queue="{queue_name}",state="ready"}} 4.0' in text
    assert "jobqueue_api_queue_exporter 1.0" in text
    assert "jobqueue_api_redis_up 1.0" in text
    labels = 'method="GET",route="/jobs/{job_id}",status="200"'
    assert f"jobqueue_api_request_duration_seconds_count{{{labels}}} 1.0" in text
    assert job_id not in text  # templates, not raw paths


async def test_openapi_and_docs_are_served(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/enqueue",
        "/tasks",
        "/tasks/{task_id}",
        "/jobs",
        "/jobs:batch",
        "/jobs/{job_id}",
        "/dlq",
        "/dlq/{job_id}/retry",
        "/dlq:retry-all",
        "/stats",
        "/healthz",
        "/readyz",
        "/health",
        "/metrics",
    ):
        assert path in paths, path
    assert set(paths["/jobs"]["post"]["responses"]) >= {"202", "413", "415", "422", "503"}
    body = paths["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobCreate"}
    schemas = spec["components"]["schemas"]
    assert {"JobCreate", "JobBatchCreate", "EnqueueRequest", "Priority"} <= set(schemas)
    assert schemas["JobCreate"]["required"] == ["type"]
    assert "409" in paths["/jobs/{job_id}"]["delete"]["responses"]
    assert (await api.get("/docs")).status_code == 200


# ---- auth ----------------------------------------------------------------------------------


async def test_a_token_guards_job_endpoints_but_not_probes(
    redis_url: str, queue_name: str, queue: Queue
) -> None:
    async with serve(make_settings(redis_url, queue_name, api_token=TOKEN)) as (client, _):
        good = {"Authorization": f"Bearer {TOKEN}"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            for method, path in (
                ("POST", "/jobs"),
                ("POST", "/enqueue"),
                ("GET", "/jobs/x"),
                ("GET", "/dlq"),
                ("GET", "/stats"),
                ("DELETE", "/dlq"),
            ):
                r = await client.request(method, path, json={"type": "t"}, headers=headers)
                assert r.status_code == 401, (method, path, headers)
                assert r.headers["www-authenticate"] == "Bearer"
        assert (await client.post("/jobs", json={"type": "t"}, headers=good)).status_code == 202
        assert (await client.get("/stats", headers=good)).status_code == 200
        for path in ("/healthz", "/readyz", "/health", "/metrics", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        spec = (await client.get("/openapi.json")).json()
        assert "401" in spec["paths"]["/jobs"]["post"]["responses"]
        assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert await enqueued_total(queue) == 1


# ---- capacity: backpressure and Redis down ---------------------------------------------------


async def test_backpressure_answers_503_with_retry_after(
    redis_url: str, queue_name: str, queue: Queue
) -> None:
    async with serve(make_settings(redis_url, queue_name, max_queue_depth=3)) as (client, _):
        for _ in range(3):
            assert (await client.post("/enqueue")).status_code == 202
        for path, body in (("/jobs", {"type": "t"}), ("/jobs:batch", {"jobs": [{"type": "t"}]})):
            r = await client.post(path, json=body)
            assert r.status_code == 503, path
            assert r.headers["retry-after"] == c.RETRY_AFTER_BACKPRESSURE
            assert "backpressure" in r.json()["detail"]
        await queue.claim("w1")  # one ready job fewer: room again
        assert (await client.post("/enqueue")).status_code == 202
        metrics = (await client.get("/metrics")).text
        assert 'jobqueue_api_rejected_requests_total{reason="backpressure"} 2.0' in metrics
    assert await enqueued_total(queue) == 4


async def test_redis_down_is_503_with_retry_after_never_500(queue_name: str) -> None:
    server = RedisServer().start()
    try:
        async with serve(make_settings(server.url, queue_name)) as (client, _):
            assert (await client.post("/enqueue")).status_code == 202
            server.stop()
            for method, path, body in (
                ("POST", "/enqueue", None),
                ("POST", "/jobs", {"type": "t"}),
                ("POST", "/jobs:batch", {"jobs": [{"type": "t"}]}),
                ("POST", "/tasks?task_type=t", {}),
                ("GET", "/jobs/abc", None),
                ("GET", "/tasks/abc", None),
                ("DELETE", "/jobs/abc", None),
                ("GET", "/dlq", None),
                ("POST", "/dlq/abc/retry", None),
                ("POST", "/dlq:retry-all", None),
                ("DELETE", "/dlq", None),
                ("GET", "/stats", None),
            ):
                r = await client.request(method, path, json=body)
                assert r.status_code == 503, (method, path, r.text)
                assert r.headers["retry-after"] == c.RETRY_AFTER_REDIS_DOWN
            for path in ("/readyz", "/health"):
                r = await client.get(path)
                assert r.status_code == 503 and r.json() == {"status": "unavailable"}
            assert (await client.get("/healthz")).status_code == 200
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200 and "jobqueue_api_redis_up 0.0" in metrics.text

            server.start()
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.post("/enqueue")).status_code == 202
    finally:
        server.cleanup()


# ---- coalescing ------------------------------------------------------------------------------


async def test_concurrent_single_enqueues_are_coalesced_and_all_land(
    redis_url: str, queue_name: str, queue: Queue
) -> None:
    async with serve(make_settings(redis_url, queue_name)) as (client, app):
        replies = await asyncio.gather(
            *(client.post("/jobs", json={"type": "t", "payload": i}) for i in range(300))
        )
        round_trips = app.state.enqueuer.round_trips
    ids = [r.json()["job_id"] for r in replies]
    assert all(r.status_code == 202 for r in replies) and len(set(ids)) == 300
    assert round_trips < 300
    assert await enqueued_total(queue) == 300
    payloads = {i: (await queue.get(job_id)).payload for i, job_id in enumerate(ids)}  # type: ignore[union-attr]
    assert payloads == {i: i for i in range(300)}


async def test_coalescing_can_be_turned_off(
    redis_url: str, queue_name: str, redis_client: aioredis.Redis
) -> None:
    settings = make_settings(redis_url, queue_name, coalesce_enqueues=False)
    async with serve(settings) as (client, app):
        await asyncio.gather(*(client.post("/enqueue") for _ in range(20)))
        assert app.state.enqueuer.round_trips == 20


async def test_odd_but_valid_json_round_trips(api: httpx.AsyncClient) -> None:
    payload = {
        "unicode": "żółć ☃ \U0001f600",
        "num": -(2**63),
        "big": 2**64 - 1,
        "f": 1e308,
        "n": None,
    }
    job_id = (await api.post("/jobs", json={"type": "t", "payload": payload})).json()["job_id"]
    assert (await api.get(f"/jobs/{job_id}")).json()["payload"] == payload
    raw = orjson.dumps({"type": "t", "payload": [[[[["deep"]]]]]})
    assert (await api.post("/jobs", content=raw)).status_code == 202
