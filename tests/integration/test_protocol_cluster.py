"""The protocol on a real 3-node Redis Cluster: two queues in different slots on different nodes."""

from __future__ import annotations

import asyncio

import redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from jobqueue import FailOutcome, JobSpec, JobStatus, Priority, Queue
from jobqueue.browse import ListState
from tests.cluster.redis_server import RedisServer


def _names_on_two_nodes(client: RedisCluster) -> tuple[str, str]:
    """Two queue names whose hash tags map to slots owned by different nodes."""
    first = "shop/emails"
    owner = client.get_node_from_key(f"jq:{{{first}}}:events").name
    for i in range(1000):
        name = f"shop/other-{i}"
        if client.get_node_from_key(f"jq:{{{name}}}:events").name != owner:
            return first, name
    raise AssertionError("no second name on another node")


async def _full_life_cycle(q: Queue) -> None:
    results = await q.enqueue_many(
        [
            JobSpec("t", "low", priority=Priority.LOW),
            JobSpec("t", "normal", idempotency_key="k1"),
            JobSpec("t", "high", priority=Priority.HIGH),
            JobSpec("t", "dup", idempotency_key="k1"),
            JobSpec("t", "later", delay=60),
            JobSpec("t", "poison", max_retries=0, priority=Priority.LOW),
        ]
    )
    assert [r.created for r in results] == [True, True, True, False, True, True]
    stats = await q.stats()
    assert (stats.ready, stats.delayed, stats.enqueued_total) == (4, 1, 5)

    claimed = await q.claim("w1", 3)
    assert [c.payload for c in claimed] == ["high", "normal", "low"]
    high, normal, low = claimed
    assert await q.renew([(c.id, c.token) for c in claimed]) == [True, True, True]
    assert await q.set_progress(high.id, high.token, 50)
    assert await q.complete([(high.id, high.token, {"ok": 1})]) == [True]
    assert await q.complete([(high.id, high.token, None)]) == [False]
    assert await q.fail(normal.id, normal.token, "transient") is FailOutcome.RETRYING
    assert await q.release([(low.id, low.token)]) == [True]
    assert await q.cancel(results[4].job_id)

    # leftovers: "normal" (retry due at once), "low" (released to the front), "poison"
    got = []
    for _ in range(100):
        got += await q.claim("w2", 10)
        if len(got) == 3:
            break
        await asyncio.sleep(0.02)
    assert sorted(c.payload for c in got) == ["low", "normal", "poison"]
    by_payload = {c.payload: c for c in got}
    poison = by_payload.pop("poison")
    assert await q.fail(poison.id, poison.token, "fatal") is FailOutcome.DEAD
    # a lost lease is recovered by the next claim
    await asyncio.sleep(q.lease_seconds + 0.1)
    again = []
    for _ in range(100):
        again += await q.claim("w3", 10)
        if len(again) == 2:
            break
        await asyncio.sleep(0.02)
    assert sorted(c.payload for c in again) == ["low", "normal"]
    assert all(c.attempt == by_payload[c.payload].attempt + 1 for c in again)
    assert await q.complete([(c.id, c.token, c.payload) for c in again]) == [True, True]

    job = await q.get(high.id)
    assert job is not None and (job.status, job.result) == (JobStatus.COMPLETED, {"ok": 1})
    [dead] = await q.dead_jobs()
    assert (dead.id, dead.error) == (poison.id, "fatal")
    assert await q.retry_dead() == 1
    [p] = await q.claim("w4")
    assert await q.fail(p.id, p.token, "fatal again", retry=False) is FailOutcome.DEAD
    assert await q.purge_dead() == 1

    await q.heartbeat("w4", busy=False, in_flight=0, ttl=10)
    assert [w.id for w in await q.workers()] == ["w4"]
    stats = await q.stats()
    assert (stats.ready, stats.in_flight, stats.delayed, stats.dead) == (0, 0, 0, 0)
    assert stats.completed_total == 3

    # listing by state; a running job cancelled, its worker told over the slot owner's pub/sub
    done = await q.list_jobs(ListState.COMPLETED, limit=10)
    assert high.id in [j.id for j in done.jobs] and done.cursor is None
    heard: asyncio.Queue[str] = asyncio.Queue()

    async def listen() -> None:
        async for job_id in q.cancelled_jobs():
            await heard.put(job_id)

    listener = asyncio.create_task(listen())
    try:
        for _ in range(20):  # until the listener's subscription is in place
            await q.enqueue(JobSpec("t", "run"))
            [running] = await q.claim("w5")
            assert [j.id for j in (await q.list_jobs(ListState.RUNNING)).jobs] == [running.id]
            assert await q.cancel(running.id, running=True)
            try:
                assert await asyncio.wait_for(heard.get(), 0.5) == running.id
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("the cancel never reached the listener")
    finally:
        listener.cancel()

    # idle worker wake-up over pub/sub on the node that owns the queue's slot
    waiter = asyncio.create_task(q.wait_for_jobs(30))
    await asyncio.sleep(0.2)
    await q.enqueue(JobSpec("t", "wake"))
    assert await asyncio.wait_for(waiter, 10) is True


async def test_two_queues_on_different_nodes_run_the_full_life_cycle(
    cluster: RedisCluster, cluster_nodes: list[RedisServer]
) -> None:
    name_a, name_b = _names_on_two_nodes(cluster)
    queues = [
        Queue(cluster, name, lease_seconds=0.4, backoff_base=0.001, backoff_cap=0.001)
        for name in (name_a, name_b)
    ]
    try:
        assert key_slot(queues[0].keys.lease.encode()) != key_slot(queues[1].keys.lease.encode())
        await asyncio.gather(*(_full_life_cycle(q) for q in queues))

        # every key of each queue lives on the node that owns its slot, and only there
        for q in queues:
            owner = cluster.get_node_from_key(q.keys.lease)
            for node in cluster_nodes:
                direct = redis.Redis(host=node.bind, port=node.port)
                try:
                    keys = list(direct.scan_iter(match=f"jq:{{{q.name}}}:*", count=1000))
                finally:
                    direct.close()
                if node.port == int(owner.port):
                    assert {k.decode() for k in keys} <= set(q.keys.all_keys)
                    assert keys
                else:
                    assert keys == []
    finally:
        for q in queues:
            await q.purge()
            await q.aclose()
