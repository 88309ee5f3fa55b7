"""The environment every peer module reads: Redis URL, counter key, queue name."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
COUNTER = os.environ.get("BENCH_COUNTER", "bench:done")
QUEUE = os.environ.get("BENCH_QUEUE", "bench")


def payload(size: int) -> str:
    """`size` characters that do not compress (RQ compresses job data; a run of "x" would
    measure its zlib, not its Redis work), the same text for every system."""
    import random

    return random.Random(size).randbytes((size + 1) // 2).hex()[:size]


def produce_main(enqueue_n: Callable[[int, str], None]) -> None:
    """CLI: `produce N [PAYLOAD_BYTES]`; times enqueue_n(N, payload) and prints JSON: its
    seconds and the producer's CPU seconds (user + sys of this process) over them."""
    if len(sys.argv) < 3 or sys.argv[1] != "produce":
        raise SystemExit(f"usage: {sys.argv[0]} produce N [PAYLOAD_BYTES]")
    n = int(sys.argv[2])
    body = payload(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    t0, c0 = time.perf_counter(), time.process_time()
    enqueue_n(n, body)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    sys.stdout.write(json.dumps({"jobs": n, "seconds": seconds, "cpu_seconds": cpu}) + "\n")
