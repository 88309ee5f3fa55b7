"""Job routing to worker pools: JOB_ROUTES sends each listed job type to its pool's queue."""

from __future__ import annotations

import pydantic
import pytest

import jobqueue
from jobqueue import Queue
from tests.support.api import make_settings, serve


async def test_routed_types_land_in_their_pool_queue_and_are_found_by_id(
    redis_url: str, queue_name: str
) -> None:
    pool_queue = f"{queue_name}/email"
    settings = make_settings(redis_url, queue_name, job_routes={"email": pool_queue})
    client = jobqueue.connect(redis_url)
    default, pool = Queue(client, queue_name), Queue(client, pool_queue)
    try:
        async with serve(settings) as (api, _):
            routed = await api.post("/jobs", json={"type": "email", "payload": {"to": "a@b.c"}})
            other = await api.post("/jobs", json={"type": "resize"})
            batch = await api.post(
                "/jobs:batch", json={"jobs": [{"type": "email"}, {"type": "resize"}]}
            )
            assert (routed.status_code, other.status_code, batch.status_code) == (202, 202, 202)

            routed_id, other_id = routed.json()["job_id"], other.json()["job_id"]
            assert await pool.get(routed_id) is not None
            assert await default.get(routed_id) is None
            assert await default.get(other_id) is not None
            assert await pool.get(other_id) is None
            email_id, resize_id = batch.json()["job_ids"]
            assert await pool.get(email_id) is not None
            assert await default.get(resize_id) is not None

            # Reads by id look in every queue, so a routed job is found through the API.
            found = await api.get(f"/jobs/{routed_id}")
            assert found.status_code == 200 and found.json()["type"] == "email"
            task = await api.get(f"/tasks/{routed_id}")
            assert task.status_code == 200
            cancelled = await api.delete(f"/jobs/{routed_id}")
            assert cancelled.status_code in (200, 204)
            assert (await pool.stats()).ready == 1  # the batch's email job is left
    finally:
        await pool.purge()
        await default.purge()
        await client.aclose()


async def test_a_bad_route_table_is_refused_at_start(redis_url: str, queue_name: str) -> None:
    """JOB_ROUTES must map job types to valid queue names; anything else is a config error."""
    for routes in ({"email": ""}, {"email": "a{b}"}, {"": "q"}):
        with pytest.raises(pydantic.ValidationError, match="job_routes"):
            make_settings(redis_url, queue_name, job_routes=routes)
