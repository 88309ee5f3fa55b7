"""The API far over capacity: 503 + Retry-After (backpressure), no hang, no accepted job lost.

Capacity here is what the deployment can absorb for good: the rate its workers drain jobs
(measured first, with one deliberately slow worker). `wrk` (C, closed loop, hundreds of
connections) then offers at least ten times that to an API with MAX_QUEUE_DEPTH set. Its Lua
script records every status, whether each 503 carries Retry-After, and the id of every 202;
afterwards every accepted id must exist and complete. The API's own enqueue capacity (a
second API process on a scratch queue, no limit) is measured and reported alongside.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from jobqueue import JobSpec, Queue
from tests.cluster.redis_server import RedisServer
from tests.reliability.support import (
    Figures,
    await_until,
    count_status,
    forget_queue,
    sizes,
    start_api,
    start_worker,
    stop_all,
)

SECTION = "Load: the API over capacity (backpressure)"
MAX_QUEUE_DEPTH = 300
JOB_MS = 20
BODY = json.dumps({"type": "track", "payload": {"ms": JOB_MS}, "max_retries": 10})

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[BODY]]
wrk.headers["Content-Type"] = "application/json"
local threads = {}
local counter = 1
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  n202, n503, n503_bare, nother = 0, 0, 0, 0
  out = io.open(args[1] .. "/ids-" .. id .. ".txt", "w")
  out:setvbuf("line")
end
function response(status, headers, body)
  if status == 202 then
    n202 = n202 + 1
    out:write(body, "\\n")
  elseif status == 503 then
    n503 = n503 + 1
    if headers["retry-after"] == nil and headers["Retry-After"] == nil then
      n503_bare = n503_bare + 1
    end
  else
    nother = nother + 1
  end
end
function done(summary, latency, requests)
  local t = {n202 = 0, n503 = 0, n503_bare = 0, nother = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT {\\"requests\\": %d, \\"duration_us\\": %d, \\"n202\\": %d, \\"n503\\": %d, " ..
    "\\"n503_without_retry_after\\": %d, \\"other_status\\": %d, \\"connect_errors\\": %d, " ..
    "\\"read_errors\\": %d, \\"write_errors\\": %d, \\"timeouts\\": %d, " ..
    "\\"latency_max_us\\": %d, \\"latency_p99_us\\": %d}\\n",
    summary.requests, summary.duration, t.n202, t.n503, t.n503_bare, t.nother, e.connect,
    e.read, e.write, e.timeout, latency.max, latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Size:
    seconds: int
    connections: int


FAST = Size(seconds=4, connections=200)
FULL = Size(seconds=30, connections=400)


def run_wrk(url: str, outdir: Path, seconds: int, connections: int) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    assert wrk, "wrk is not installed: run `make deps`"
    outdir.mkdir(parents=True, exist_ok=True)
    script = outdir / "post.lua"
    script.write_text(WRK_SCRIPT.replace("[[BODY]]", f"[[{BODY}]]"))
    argv = [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    proc = subprocess.run(
        [*argv, "-s", str(script), url, "--", str(outdir)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    found = re.search(r"^RESULT (\{.*\})$", proc.stdout, re.M)
    assert found, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(found.group(1))
    ids: list[str] = []
    for part in outdir.glob("ids-*.txt"):
        ids += [json.loads(line)["job_id"] for line in part.read_text().splitlines() if line]
    result["ids"] = ids
    return result


async def drain_rate(queue: Queue, jobs: int) -> float:
    """Jobs per second the running workers complete (enqueue ``jobs``, time until done)."""
    base = (await queue.stats()).completed_total
    ids = [uuid.uuid4().hex for _ in range(jobs)]
    t0 = time.monotonic()
    await queue.enqueue_many([JobSpec("track", {"ms": JOB_MS}, job_id=i) for i in ids])

    async def done() -> bool:
        return (await queue.stats()).completed_total - base >= jobs

    await await_until("the calibration jobs", done, timeout=120, interval=0.05)
    return jobs / (time.monotonic() - t0)


@pytest.mark.parametrize("size", sizes(FAST, FULL))
async def test_ten_times_capacity_gets_503_retry_after_and_loses_no_accepted_job(
    size: Size, redis_server: RedisServer, workdir: Path, figures: Figures
) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)
    queue = Queue(redis, f"chaos-load/{uuid.uuid4().hex[:8]}")
    scratch = Queue(redis, f"chaos-load-scratch/{uuid.uuid4().hex[:8]}")
    services = []
    try:
        # the API's own enqueue rate, no limit, scratch queue, no worker
        free_api = start_api(redis_server.url, scratch.name, workdir / "free")
        services.append(free_api)
        free = await asyncio.to_thread(run_wrk, f"{free_api.url}/jobs", workdir / "wrk-free", 3, 16)
        api_capacity = free["n202"] / (free["duration_us"] / 1e6)
        free_api.stop()

        api = start_api(redis_server.url, queue.name, workdir, MAX_QUEUE_DEPTH=MAX_QUEUE_DEPTH)
        slow = start_worker(redis_server.url, queue.name, workdir, WORKER_CONCURRENCY=2)
        services += [api, slow]
        capacity = await drain_rate(queue, 60)
        result = await asyncio.to_thread(
            run_wrk, f"{api.url}/jobs", workdir / "wrk", size.seconds, size.connections
        )
        offered = result["requests"] / (result["duration_us"] / 1e6)
        async with httpx.AsyncClient(timeout=5) as http:
            alive = (await http.get(f"{api.url}/healthz")).status_code
        accepted: list[str] = result.pop("ids")
        existing = await count_status(queue, accepted)
        # then drain with fast workers: every accepted job must complete
        services += [
            start_worker(redis_server.url, queue.name, workdir, WORKER_CONCURRENCY=100)
            for _ in range(2)
        ]

        async def drained() -> dict[str, int] | None:
            counts = await count_status(queue, accepted)
            return counts if counts.get("completed", 0) == len(accepted) else None

        final = await await_until("every accepted job completed", drained, timeout=300)
    finally:
        stop_all(services)
    figures.set(
        api_enqueue_capacity_per_s=round(api_capacity),
        drain_capacity_per_s=round(capacity, 1),
        offered_per_s=round(offered),
        offered_over_capacity=round(offered / capacity, 1),
        connections=size.connections,
        seconds=size.seconds,
        max_queue_depth=MAX_QUEUE_DEPTH,
        **result,
        accepted_ids=len(accepted),
        lost=len(accepted) - final.get("completed", 0),
    )
    try:
        assert offered >= 10 * capacity, (offered, capacity)
        assert result["n503"] > 0, "no backpressure under ten times capacity"
        assert result["n503_without_retry_after"] == 0
        assert result["other_status"] == 0
        assert result["timeouts"] == 0, "requests hung"
        assert result["connect_errors"] == result["read_errors"] == result["write_errors"] == 0
        assert alive == 200
        assert len(accepted) == result["n202"] == len(set(accepted))
        assert "missing" not in existing, existing
        assert final == {"completed": len(accepted)}
    finally:
        await forget_queue(redis, queue)
        await forget_queue(redis, scratch)
        await queue.aclose()
        await redis.aclose()
