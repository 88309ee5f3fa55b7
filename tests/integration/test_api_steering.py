"""Seeing and steering every job of every queue (the default one and each pool) through the API.

The real app on a real redis-server, with JOB_ROUTES sending type `email` to a pool's queue:
a routed job is listed, counted, cancelled, dead-lettered and retried through the same routes
as a default-queue job; backpressure counts the queue a job goes to; bad input is a 4xx with
the reason and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import jobqueue
from jobqueue import FailOutcome, JobSpec, Queue
from tests.integration.worker_support import WorkerProcess, eventually
from tests.support.api import make_settings, serve
from tests.support.services import ApiProcess


class Pools:
    """The API (routing `email` to the pool) and both queues as workers see them."""

    def __init__(self, api: httpx.AsyncClient, default: Queue, pool: Queue) -> None:
        self.api, self.default, self.pool = api, default, pool

    async def enqueue(self, job_type: str, **fields: Any) -> str:
        r = await self.api.post("/jobs", json={"type": job_type, **fields})
        assert r.status_code == 202, r.text
        job_id: str = r.json()["job_id"]
        return job_id

    async def listed(self, state: str, **params: Any) -> list[dict[str, Any]]:
        r = await self.api.get("/jobs", params={"state": state, **params})
        assert r.status_code == 200, r.text
        jobs: list[dict[str, Any]] = r.json()["jobs"]
        return jobs


@pytest.fixture
async def pools(redis_url: str, queue_name: str) -> AsyncIterator[Pools]:
    pool_name = f"{queue_name}/mail"
    routes = {"email": pool_name, "until_cancelled": pool_name, "track": pool_name}
    settings = make_settings(redis_url, queue_name, job_routes=routes)
    client = jobqueue.connect(redis_url)
    default, pool = Queue(client, queue_name), Queue(client, pool_name)
    try:
        async with serve(settings) as (api, _):
            yield Pools(api, default, pool)
    finally:
        await pool.purge()
        await default.purge()
        await client.aclose()


async def test_jobs_of_every_queue_are_listed_by_state(pools: Pools) -> None:
    mail = await pools.enqueue("email")
    other = await pools.enqueue("resize")
    later = await pools.enqueue("email", delay_seconds=600)
    listed = await pools.listed("queued")
    assert [(j["id"], j["queue"]) for j in listed] == [
        (other, pools.default.name),
        (mail, pools.pool.name),
    ]
    # by pool name or by queue name, and by type
    assert [j["id"] for j in await pools.listed("queued", queue="mail")] == [mail]
    assert [j["id"] for j in await pools.listed("queued", queue=pools.pool.name)] == [mail]
    assert [j["id"] for j in await pools.listed("queued", type="resize")] == [other]
    assert [j["id"] for j in await pools.listed("delayed")] == [later]
    [claimed] = await pools.pool.claim("w")
    assert [j["id"] for j in await pools.listed("running")] == [mail]
    assert await pools.pool.complete([(claimed.id, claimed.token, {"sent": True})]) == [True]
    [done] = await pools.listed("completed")
    assert (done["id"], done["result"], done["status"]) == (mail, {"sent": True}, "completed")
    got = (await pools.api.get(f"/jobs/{mail}")).json()
    assert got["queue"] == pools.pool.name


async def test_pages_follow_the_cursor_across_queues(pools: Pools) -> None:
    ids = [await pools.enqueue("resize") for _ in range(3)]
    ids += [await pools.enqueue("email") for _ in range(4)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"state": "queued", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await pools.api.get("/jobs", params=params)).json()
        seen += [j["id"] for j in body["jobs"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids and pages in (4, 5)


async def test_bad_listing_input_is_4xx_with_the_reason(pools: Pools) -> None:
    api = pools.api
    r = await api.get("/jobs", params={"state": "sleeping"})
    assert r.status_code == 422 and "queued" in r.text  # the allowed values are named
    r = await api.get("/jobs", params={"type": " leading space"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "type"]
    r = await api.get("/jobs", params={"queue": "nope"})
    assert r.status_code == 404 and "no queue 'nope'" in r.json()["detail"]
    for cursor in ("%%%", "bm90IGpzb24", "e30"):
        r = await api.get("/jobs", params={"cursor": cursor})
        assert r.status_code == 400 and "cursor" in r.json()["detail"], cursor
    await pools.enqueue("email")
    await pools.enqueue("email")
    page = (await api.get("/jobs", params={"state": "queued", "limit": 1})).json()
    r = await api.get("/jobs", params={"state": "dead", "cursor": page["next_cursor"]})
    assert r.status_code == 400 and "queued listing, not dead" in r.json()["detail"]
    r = await api.get("/jobs", params={"limit": 0})
    assert r.status_code == 422


async def test_queues_and_stats_count_every_pool(pools: Pools) -> None:
    await pools.enqueue("email", priority="high")
    await pools.enqueue("email", priority="low")
    await pools.enqueue("resize")
    await pools.enqueue("email", delay_seconds=600)
    body = (await pools.api.get("/queues")).json()
    default, pool = body["queues"]
    assert (default["name"], default["pool"]) == (pools.default.name, None)
    assert (pool["name"], pool["pool"]) == (pools.pool.name, "mail")
    assert default["ready"] == {"high": 0, "normal": 1, "low": 0}
    assert pool["ready"] == {"high": 1, "normal": 0, "low": 1}
    assert (pool["delayed"], pool["in_flight"], pool["dead"]) == (1, 0, 0)
    assert set(pool["rates"]) == {
        "enqueued_per_s",
        "completed_per_s",
        "failed_per_s",
        "window_seconds",
    }
    stats = (await pools.api.get("/stats")).json()
    assert (stats["ready"], stats["delayed"], stats["enqueued_total"]) == (3, 1, 4)
    assert [q["queue"] for q in stats["queues"]] == [pools.default.name, pools.pool.name]
    assert [q["ready"] for q in stats["queues"]] == [1, 2]


async def test_rates_are_measured_from_counter_samples(pools: Pools) -> None:
    first = (await pools.api.get("/queues")).json()["queues"][1]["rates"]
    assert first["window_seconds"] == 0.0
    await pools.api.post("/jobs:batch", json={"jobs": [{"type": "email"}] * 20})
    await asyncio.sleep(1.1)
    rates = (await pools.api.get("/queues")).json()["queues"][1]["rates"]
    assert rates["window_seconds"] >= 1.0
    assert rates["enqueued_per_s"] == pytest.approx(20 / rates["window_seconds"])
    assert rates["completed_per_s"] == 0.0


async def test_workers_of_every_pool_are_listed(pools: Pools) -> None:
    await pools.default.heartbeat("w-default", busy=False, in_flight=0, ttl=30)
    await pools.pool.heartbeat("w-mail", busy=True, in_flight=3, ttl=30)
    workers = (await pools.api.get("/workers")).json()["workers"]
    assert [(w["id"], w["pool"], w["busy"], w["in_flight"]) for w in workers] == [
        ("w-default", None, False, 0),
        ("w-mail", "mail", True, 3),
    ]
    assert workers[1]["queue"] == pools.pool.name and workers[1]["last_seen"]


async def test_a_pool_job_is_cancelled_dead_lettered_retried_and_deleted(pools: Pools) -> None:
    api = pools.api
    queued = await pools.enqueue("email")
    r = await api.post(f"/jobs/{queued}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert [j["id"] for j in await pools.listed("cancelled")] == [queued]
    r = await api.post(f"/jobs/{queued}/cancel")
    assert r.status_code == 409 and "cancelled" in r.json()["detail"]
    assert (await api.post("/jobs/no-such-job/cancel")).status_code == 404

    running = await pools.enqueue("email")
    [claimed] = await pools.pool.claim("w")
    assert (await api.delete(f"/jobs/{running}")).status_code == 409  # DELETE: waiting only
    r = await api.post(f"/jobs/{running}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert await pools.pool.complete([(claimed.id, claimed.token, None)]) == [False]

    dead = await pools.enqueue("email", max_retries=0)
    [c] = await pools.pool.claim("w")
    assert await pools.pool.fail(c.id, c.token, "smtp down") is FailOutcome.DEAD
    page = (await api.get("/dlq")).json()
    assert page["total"] == 1 and page["jobs"][0]["id"] == dead
    assert page["jobs"][0]["queue"] == pools.pool.name
    [listed] = await pools.listed("dead")
    assert (listed["id"], listed["error"]) == (dead, "smtp down")
    r = await api.post(f"/jobs/{dead}/cancel")
    assert r.status_code == 409 and "dead" in r.json()["detail"]
    assert (await api.post(f"/dlq/{dead}/retry")).json() == {"retried": 1}
    assert [j["id"] for j in await pools.listed("queued", queue="mail")] == [dead]
    assert (await api.post(f"/dlq/{dead}/retry")).status_code == 404  # not dead any more
    assert (await api.delete(f"/dlq/{dead}")).status_code == 404  # nothing changed
    assert (await api.get(f"/jobs/{dead}")).json()["status"] == "queued"

    [c] = await pools.pool.claim("w")
    assert await pools.pool.fail(c.id, c.token, "again", retry=False) is FailOutcome.DEAD
    r = await api.delete(f"/dlq/{dead}")
    assert r.status_code == 200 and r.json() == {"deleted": dead}
    assert (await api.get(f"/jobs/{dead}")).status_code == 404
    assert (await api.get("/dlq")).json()["total"] == 0


async def test_dlq_retry_all_and_purge_cover_every_queue(pools: Pools) -> None:
    for job_type in ("email", "resize", "email"):
        await pools.enqueue(job_type, max_retries=0)
    for q in (pools.default, pools.pool):
        for c in await q.claim("w", 5):
            assert await q.fail(c.id, c.token, "x") is FailOutcome.DEAD
    page = (await pools.api.get("/dlq", params={"offset": 1, "limit": 5})).json()
    assert page["total"] == 3 and [j["queue"] for j in page["jobs"]] == [pools.pool.name] * 2
    only_pool = (await pools.api.get("/dlq", params={"queue": "mail"})).json()
    assert only_pool["total"] == 2
    assert (await pools.api.post("/dlq:retry-all", params={"queue": "mail"})).json() == {
        "retried": 2
    }
    assert (await pools.api.post("/dlq:retry-all")).json() == {"retried": 1}
    for q in (pools.default, pools.pool):
        for c in await q.claim("w", 5):
            assert await q.fail(c.id, c.token, "x") is FailOutcome.DEAD
    assert (await pools.api.delete("/dlq")).json() == {"purged": 3}
    assert (await pools.api.delete("/dlq", params={"queue": "nope"})).status_code == 404


async def test_backpressure_counts_the_queue_a_job_goes_to(redis_url: str, queue_name: str) -> None:
    pool_name = f"{queue_name}/mail"
    settings = make_settings(
        redis_url, queue_name, job_routes={"email": pool_name}, max_queue_depth=2
    )
    client = jobqueue.connect(redis_url)
    default, pool = Queue(client, queue_name), Queue(client, pool_name)
    try:
        async with serve(settings) as (api, _):
            for _ in range(2):
                assert (await api.post("/jobs", json={"type": "email"})).status_code == 202
            r = await api.post("/jobs", json={"type": "email"})
            assert r.status_code == 503 and "Retry-After" in r.headers
            assert "backpressure" in r.json()["detail"]
            r = await api.post(
                "/jobs:batch", json={"jobs": [{"type": "resize"}, {"type": "email"}]}
            )
            assert r.status_code == 503  # refused whole: nothing enqueued
            assert (await default.stats()).ready == 0 and (await pool.stats()).ready == 2
            # the default queue has room
            assert (await api.post("/jobs", json={"type": "resize"})).status_code == 202
    finally:
        await pool.purge()
        await default.purge()
        await client.aclose()


async def test_cancel_a_running_job_on_a_real_worker(
    pools: Pools, redis_url: str, tmp_path: Path
) -> None:
    """The worker process hears the cancel at once: its async task is cancelled with
    `ctx.cancelled` true, the lease is gone, it reports nothing, and takes the next job."""
    worker = WorkerProcess.start(redis_url, pools.pool.name, tmp_path, worker_concurrency=1)
    try:
        await worker.wait_healthy()
        marker = tmp_path / "cancelled.txt"
        job_id = await pools.enqueue("until_cancelled", payload={"marker": str(marker)})

        async def running() -> bool:
            return [j["id"] for j in await pools.listed("running", queue="mail")] == [job_id]

        await eventually(running, timeout=10)
        r = await pools.api.post(f"/jobs/{job_id}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"

        async def marked() -> bool:
            return marker.exists()

        await eventually(marked, timeout=5)
        assert marker.read_text() == "cancelled=True"
        assert (await pools.pool.stats()).in_flight == 0
        # the slot is free again: the next job runs on the same one-slot worker
        follow = await pools.api.post("/jobs", json={"type": "track", "payload": {"seconds": 0}})
        assert follow.status_code == 202
        follow_id = follow.json()["job_id"]

        async def completed() -> bool:
            got = (await pools.api.get(f"/jobs/{follow_id}")).json()
            return bool(got["status"] == "completed")

        await eventually(completed, timeout=10)
        job = (await pools.api.get(f"/jobs/{job_id}")).json()
        assert job["status"] == "cancelled"  # nothing the worker did afterwards changed it
        metrics = (await worker.get("/metrics")).text
        assert 'outcome="cancelled",type="until_cancelled"' in metrics or (
            'type="until_cancelled",outcome="cancelled"' in metrics
        )
    finally:
        await worker.stop()


async def _next_event(lines: AsyncIterator[str]) -> tuple[str, dict[str, Any]]:
    """The next `event:` + `data:` frame of an SSE stream (comments skipped)."""
    name = ""
    async for line in lines:
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: ") and name:
            return name, json.loads(line[len("data: ") :])
    raise AssertionError("the event stream ended")


async def test_events_stream_state_changes_of_every_queue(redis_url: str, queue_name: str) -> None:
    """A real API process: one /events stream carries the changes of the default queue and
    of the pool, each naming its queue; the token guards it."""
    pool_name = f"{queue_name}/mail"
    env = {
        "REDIS_URL": redis_url,
        "QUEUE_NAME": queue_name,
        "JOB_ROUTES": json.dumps({"email": pool_name}),
        "API_TOKEN": "events-token",
    }
    api = ApiProcess(env).start()
    client = jobqueue.connect(redis_url)
    default, pool = Queue(client, queue_name), Queue(client, pool_name)
    auth = {"Authorization": "Bearer events-token"}
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            assert (await http.get("/events")).status_code == 401
            async with http.stream("GET", "/events", headers=auth) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                lines = stream.aiter_lines()

                async def first_event() -> tuple[str, dict[str, Any]]:
                    # the hub subscribes in the background: enqueue until it hears one
                    while True:
                        await default.enqueue(JobSpec("resize"))
                        try:
                            return await asyncio.wait_for(_next_event(lines), 0.5)
                        except TimeoutError:
                            continue

                name, data = await asyncio.wait_for(first_event(), 10)
                assert (name, data["queue"], data["n"]) == ("enqueued", queue_name, 1)

                await pool.enqueue(JobSpec("email", max_retries=0))
                assert await _next_event(lines) == (
                    "enqueued",
                    {"event": "enqueued", "n": 1, "queue": pool_name},
                )
                [c] = await pool.claim("w")
                assert await pool.fail(c.id, c.token, "smtp down") is FailOutcome.DEAD
                name, data = await _next_event(lines)
                assert (name, data["id"], data["queue"]) == ("dead", c.id, pool_name)
                assert (await http.delete(f"/dlq/{c.id}", headers=auth)).status_code == 200
                assert await _next_event(lines) == (
                    "deleted",
                    {"event": "deleted", "id": c.id, "queue": pool_name},
                )
                # a second client shares the process's one subscription
                async with http.stream("GET", "/events", headers=auth) as other:
                    more = other.aiter_lines()
                    assert (await more.__anext__()).startswith("retry:")
                    await pool.enqueue(JobSpec("email"))
                    assert (await _next_event(more))[0] == "enqueued"
                    assert (await _next_event(lines))[0] == "enqueued"
                    numsub = await client.pubsub_numsub(default.keys.events, pool.keys.events)
                    assert [n for _, n in numsub] == [1, 1]
                    # SIGTERM ends the open streams at once: they do not hold the drain
                    started = time.monotonic()
                    assert api.stop(timeout=15) == 0, api.logs()
                    assert time.monotonic() - started < 5, api.logs()
    finally:
        await pool.purge()
        await default.purge()
        await client.aclose()
        api.cleanup()


async def test_queue_gauges_are_exported_once_per_queue_not_per_replica(
    redis_url: str, queue_name: str
) -> None:
    """Two API replicas of one JobQueue: the one holding the exporter lease exports a depth
    series per queue (the pool's too); the other exports none until the lease is free."""
    pool_name = f"{queue_name}/mail"
    settings = make_settings(redis_url, queue_name, job_routes={"email": pool_name})
    client = jobqueue.connect(redis_url)
    default, pool = Queue(client, queue_name), Queue(client, pool_name)
    try:
        async with serve(settings) as (first, _), serve(settings) as (second, _):
            await first.post("/jobs", json={"type": "email"})
            one = (await first.get("/metrics")).text
            other = (await second.get("/metrics")).text
            assert f'jobqueue_api_queue_depth{{queue="{pool_name}",state="ready"}} 1.0' in one
            assert f'jobqueue_api_queue_depth{{queue="{queue_name}",state="ready"}} 0.0' in one
            assert "jobqueue_api_queue_exporter 1.0" in one
            assert "jobqueue_api_queue_depth{" not in other
            assert "jobqueue_api_queue_exporter 0.0" in other
            assert "jobqueue_api_redis_up 1.0" in other  # per-process metrics stay
            # the holder renews its lease on each scrape; once it lapses the other takes over
            assert "jobqueue_api_queue_exporter 1.0" in (await first.get("/metrics")).text
            await client.delete(default.keys.exporter)  # as if the lease had run out
            taken = (await second.get("/metrics")).text
            assert "jobqueue_api_queue_exporter 1.0" in taken
            assert "jobqueue_api_queue_depth{" not in (await first.get("/metrics")).text
    finally:
        await pool.purge()
        await default.purge()
        await client.aclose()


async def test_docs_are_served_with_their_own_assets(pools: Pools) -> None:
    """/docs loads nothing from the internet: every script, style and icon it names is
    served by the API (Swagger UI 5, which renders the OpenAPI 3.1 document FastAPI writes)."""
    page = await pools.api.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert urls and not [u for u in urls if "://" in u or u.startswith("//")], urls
    for url in urls:
        r = await pools.api.get(url)
        assert r.status_code == 200, url
    bundle = await pools.api.get("/docs-assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert "SwaggerUIBundle" in bundle.text
    assert (await pools.api.get("/openapi.json")).json()["openapi"].startswith("3.1")
    assert (await pools.api.get("/redoc")).status_code == 404  # it would need a CDN


async def test_finished_jobs_of_every_queue_are_merged_newest_first(pools: Pools) -> None:
    """Without queue=, completed (and dead, cancelled) jobs of the default queue and the pool
    come back in one newest-first order, page after page."""
    finished: list[str] = []
    for i in range(7):
        job_type = "email" if i % 3 else "resize"
        job_id = await pools.enqueue(job_type)
        q = pools.pool if job_type == "email" else pools.default
        [c] = await q.claim("w")
        assert await q.complete([(c.id, c.token, i)]) == [True]
        finished.append(job_id)
        await asyncio.sleep(0.003)  # distinct finish times (ms)
    newest_first = finished[::-1]
    for limit in (1, 2, 3, 50):
        seen: list[str] = []
        params: dict[str, Any] = {"state": "completed", "limit": limit}
        for _ in range(20):
            body = (await pools.api.get("/jobs", params=params)).json()
            seen += [j["id"] for j in body["jobs"]]
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        assert seen == newest_first, limit
    # a merged cursor is refused for one queue's listing, and the other way round
    merged = (await pools.api.get("/jobs", params={"state": "completed", "limit": 1})).json()
    r = await pools.api.get(
        "/jobs",
        params={"state": "completed", "queue": "mail", "cursor": merged["next_cursor"]},
    )
    assert r.status_code == 400 and "other queues" in r.json()["detail"]
    one = (
        await pools.api.get("/jobs", params={"state": "completed", "queue": "mail", "limit": 1})
    ).json()
    r = await pools.api.get("/jobs", params={"state": "completed", "cursor": one["next_cursor"]})
    assert r.status_code == 400 and "other queues" in r.json()["detail"]
