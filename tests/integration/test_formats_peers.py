"""Each foreign queue format against the real library: jobs enqueued with the library's own
producer, the adapter's depth equal to what the library itself reports; then the library's real
worker claims some (slow tasks) and the adapter's in-flight equals the library's own count.

Every library runs in its own environment from ``tests.cluster.peers`` (PyPI venvs; BullMQ from
npm, run with node), through the small helpers in ``formats_peers/``. A missing library, node or
npm fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from jobqueue_operator.foreign import ForeignMetricsSource
from jobqueue_operator.formats import Format, FormatSpec
from jobqueue_operator.ports import QueueSnapshot

from tests.cluster import peers

HELPERS = Path(__file__).resolve().parent / "formats_peers"
SLOTS = 2  # jobs the workers of each test run at once


class Peer:
    """One library's helper commands and worker processes for one test queue."""

    def __init__(self, url: str, queue: str, program: list[str], env: dict[str, str]) -> None:
        self.queue = queue
        self.started_key = f"{queue}:started"
        self.program = program
        self.env = {
            **os.environ,
            **env,
            "PEER_REDIS_URL": url,
            "PEER_QUEUE": queue,
            "PEER_STARTED": self.started_key,
            "PYTHONPATH": str(HELPERS),
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [*self.program, *args], cwd=HELPERS, env=self.env, capture_output=True, timeout=120
        )
        if done.returncode != 0:
            raise AssertionError(f"{self.program} {args} failed: {done.stderr.decode()[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
        return result

    def start(self, *command: str) -> None:
        self.procs.append(
            subprocess.Popen(
                list(command),
                cwd=HELPERS,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: the workers' children die too
            )
        )

    def stop(self) -> None:
        """SIGKILL the workers and every process they started (RQ's work horses leave the
        worker's process group, so the whole tree is collected first)."""
        for p in self.procs:
            for pid in [*descendants(p.pid), p.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            p.wait(timeout=10)


def descendants(root: int) -> list[int]:
    """Every living process below ``root`` (from /proc: each process's parent)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


@pytest.fixture
def made() -> Iterator[list[Peer]]:
    peers_: list[Peer] = []
    yield peers_
    for p in peers_:
        p.stop()


@pytest.fixture
async def sources() -> AsyncIterator[list[ForeignMetricsSource]]:
    out: list[ForeignMetricsSource] = []
    yield out
    for s in out:
        await s.close()


def python_peer(name: str, url: str, made: list[Peer]) -> tuple[Peer, Path]:
    python = peers.ensure(name)
    queue = f"fmt-{name}-{uuid.uuid4().hex[:8]}"
    if name == "arq":
        queue = f"arq:queue:{queue}"
    peer = Peer(url, queue, [str(python), str(HELPERS / f"{name}_peer.py")], {})
    made.append(peer)
    return peer, python.parent


async def started(client: aioredis.Redis, peer: Peer, n: int, timeout: float = 60.0) -> None:
    """Wait until ``n`` tasks have started in the peer's real workers."""
    deadline = time.monotonic() + timeout
    while int(await client.get(peer.started_key) or 0) < n:
        for p in peer.procs:
            if p.poll() is not None:
                raise AssertionError(f"a {peer.program[-1]} worker exited with {p.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{n} tasks did not start in {timeout} s")
        await asyncio.sleep(0.05)


async def eventually(
    read: Callable[[], Any], check: Callable[[Any], bool], timeout: float = 15.0
) -> Any:
    """Re-read until ``check`` holds (a worker's prefetch settles); return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if check(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


def numbers(s: QueueSnapshot) -> tuple[int, int, int]:
    return (s.ready, s.in_flight, s.delayed)


async def test_rq(
    redis_url: str,
    redis_client: aioredis.Redis,
    made: list[Peer],
    sources: list[ForeignMetricsSource],
) -> None:
    peer, bindir = python_peer("rq", redis_url, made)
    source = ForeignMetricsSource(redis_url, FormatSpec(Format.RQ, names=(peer.queue,)))
    sources.append(source)
    lib = peer.run("produce", "6", "2", "1")
    # RQ's scheduled registry holds the due job too: the adapter counts it as ready
    assert (lib["ready"], lib["in_flight"], lib["delayed"]) == (6, 0, 3)
    assert numbers(await source.snapshot()) == (7, 0, 2)
    # no scheduler runs in this test: take the due job out again
    await redis_client.zremrangebyscore(f"rq:scheduled:{peer.queue}", "-inf", time.time())

    for _ in range(SLOTS):  # an RQ worker runs one job at a time (in a forked work horse)
        peer.start(str(bindir / "rq"), "worker", "--url", redis_url, peer.queue)
    await started(redis_client, peer, SLOTS)
    lib = peer.run("report")
    snap = await source.snapshot()
    assert (lib["ready"], lib["in_flight"], lib["delayed"]) == (4, SLOTS, 2)
    assert numbers(snap) == (lib["ready"], lib["in_flight"], lib["delayed"])


async def test_celery(
    redis_url: str,
    redis_client: aioredis.Redis,
    made: list[Peer],
    sources: list[ForeignMetricsSource],
) -> None:
    peer, bindir = python_peer("celery", redis_url, made)
    source = ForeignMetricsSource(redis_url, FormatSpec(Format.CELERY, names=(peer.queue,)))
    sources.append(source)
    lib = peer.run("produce", "5", "2")  # 2 with priority 6: on kombu's priority list
    assert lib["ready"] == 7
    assert await redis_client.llen(f"{peer.queue}\x06\x166") == 2
    assert numbers(await source.snapshot()) == (7, 0, 0)

    peer.start(
        *(str(bindir / "celery"), "-A", "celery_peer", "worker", "-Q", peer.queue),
        *("-c", str(SLOTS), "-l", "warning", "-n", f"{peer.queue}@%h"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    )
    await started(redis_client, peer, SLOTS)
    lib = peer.run("report-workers")
    assert (lib["active"], lib["reserved"]) == (SLOTS, 0)  # acks_late, prefetch multiplier 1
    snap = await source.snapshot()
    assert numbers(snap) == (lib["ready"], lib["active"] + lib["reserved"], 0) == (5, SLOTS, 0)


async def test_celery_counts_only_its_own_queues_unacked_messages(
    redis_url: str,
    redis_client: aioredis.Redis,
    made: list[Peer],
    sources: list[ForeignMetricsSource],
) -> None:
    """The unacked hash is shared by every queue of the Redis: another queue's claimed
    messages are not this queue's in-flight."""
    busy, bindir = python_peer("celery", redis_url, made)
    idle, _ = python_peer("celery", redis_url, made)
    busy.run("produce", "3", "0")
    idle.run("produce", "1", "0")
    busy.start(
        *(str(bindir / "celery"), "-A", "celery_peer", "worker", "-Q", busy.queue),
        *("-c", str(SLOTS), "-l", "warning", "-n", f"{busy.queue}@%h"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    )
    await started(redis_client, busy, SLOTS)
    source = ForeignMetricsSource(redis_url, FormatSpec(Format.CELERY, names=(idle.queue,)))
    sources.append(source)
    assert numbers(await source.snapshot()) == (1, 0, 0)
    both = ForeignMetricsSource(
        redis_url, FormatSpec(Format.CELERY, names=(idle.queue, busy.queue))
    )
    sources.append(both)
    assert numbers(await both.snapshot()) == (2, SLOTS, 0)


async def test_dramatiq(
    redis_url: str,
    redis_client: aioredis.Redis,
    made: list[Peer],
    sources: list[ForeignMetricsSource],
) -> None:
    peer, bindir = python_peer("dramatiq", redis_url, made)
    source = ForeignMetricsSource(redis_url, FormatSpec(Format.DRAMATIQ, names=(peer.queue,)))
    sources.append(source)
    lib = peer.run("produce", "6", "2")
    assert lib["qsize"] == 8
    assert numbers(await source.snapshot()) == (6, 0, 2)

    peer.start(
        str(bindir / "dramatiq"), "dramatiq_peer", "--processes", "1", "--threads", str(SLOTS)
    )
    await started(redis_client, peer, SLOTS)

    async def both() -> tuple[QueueSnapshot, int]:
        return await source.snapshot(), peer.run("report")["qsize"]

    # The broker's qsize counts the queue's and the delay queue's messages, waiting or
    # fetched into a worker's ack set (prefetched or running): ready + in flight + delayed.
    snap, qsize = await eventually(
        both, lambda v: v[0].ready + v[0].in_flight + v[0].delayed == v[1]
    )
    assert snap.ready + snap.in_flight + snap.delayed == qsize == 8
    assert snap.delayed == 2
    assert SLOTS <= snap.in_flight <= 6  # running + prefetched (dramatiq prefetches 2x threads)
    assert snap.ready == await redis_client.llen(f"dramatiq:{peer.queue}")


async def test_arq(
    redis_url: str,
    redis_client: aioredis.Redis,
    made: list[Peer],
    sources: list[ForeignMetricsSource],
) -> None:
    peer, bindir = python_peer("arq", redis_url, made)
    source = ForeignMetricsSource(redis_url, FormatSpec(Format.ARQ, names=(peer.queue,)))
    sources.append(source)
    lib = peer.run("produce", "6", "2")
    assert (lib["queued_jobs"], lib.get("queued"), lib.get("deferred")) == (8, 6, 2)
    assert numbers(await source.snapshot()) == (6, 0, 2)

    peer.start(str(bindir / "arq"), "arq_peer.WorkerSettings")  # max_jobs = 2
    await started(redis_client, peer, SLOTS)
    lib = peer.run("report")
    snap = await source.snapshot()
    assert (lib["queued"], lib["in_progress"], lib["deferred"]) == (4, SLOTS, 2)
    assert numbers(snap) == (lib["queued"], lib["in_progress"], lib["deferred"])


async def test_bullmq(
    redis_url: str,
    redis_client: aioredis.Redis,
    made: list[Peer],
    sources: list[ForeignMetricsSource],
) -> None:
    modules = peers.ensure_bullmq() / "node_modules"
    queue = f"fmt-bullmq-{uuid.uuid4().hex[:8]}"
    peer = Peer(
        redis_url, queue, ["node", str(HELPERS / "bullmq_peer.js")], {"NODE_PATH": str(modules)}
    )
    made.append(peer)
    source = ForeignMetricsSource(redis_url, FormatSpec(Format.BULLMQ, names=(queue,)))
    sources.append(source)
    lib = peer.run("produce", "5", "2", "2", "1")
    # BullMQ reports the due job as delayed until a worker promotes it; the adapter as ready
    assert (lib["wait"], lib["prioritized"], lib["delayed"], lib["active"]) == (5, 2, 3, 0)
    assert numbers(await source.snapshot()) == (8, 0, 2)

    peer.start("node", str(HELPERS / "bullmq_peer.js"), "worker", str(SLOTS))
    await started(redis_client, peer, SLOTS)
    lib = peer.run("report")
    snap = await source.snapshot()
    assert lib["active"] == SLOTS
    # the worker promoted the due job (and took the prioritized ones first)
    ready = lib["wait"] + lib["paused"] + lib["prioritized"]
    assert numbers(snap) == (ready, lib["active"], lib["delayed"]) == (6, SLOTS, 2)
