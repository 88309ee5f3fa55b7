"""Every constant of the benchmark suite in one place: sizes, peers, pins and targets."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from tests.cluster import peers

BENCH_DIR: Final = Path(__file__).resolve().parent
REPO_DIR: Final = BENCH_DIR.parent
WORK_DIR: Final = BENCH_DIR / ".work"  # scratch files of a run, git-ignored
RESULTS_JSON: Final = BENCH_DIR / "results.json"
RESULTS_MD: Final = BENCH_DIR / "RESULTS.md"

# Which benchmarks exist, in the order a full run takes them.
ALL_BENCHMARKS: Final = ("worker", "enqueue", "payload", "growth", "operator", "autoscale")

# Worker throughput.
WORKER_TIMEOUT_S: Final = 600.0  # a run that has not drained by then is reported as a failure
WORKER_REPEATS_FULL: Final = 3  # full runs report the median of this many runs per config
WORKER_REPEATS_QUICK: Final = 3  # interleaved rounds: every configuration once per round
WORKER_WINDOW_QUICK_S: Final = 5.0  # the measured window of every worker configuration
WORKER_WINDOW_FULL_S: Final = 10.0
WORKER_WARMUP_S: Final = 0.5  # from the first completion to the window's start
# "Best setting" per system: the concurrency that served it best on this machine kind.
OURS_BEST_CONCURRENCY: Final = 256
DRAMATIQ_BEST_THREADS: Final = 32
CELERY_BEST_PREFETCH: Final = 8  # acks_late with a larger prefetch window
ARQ_BEST_MAX_JOBS: Final = 1000
COUNTER_KEY: Final = "bench:done"  # every peer's task INCRs this one key

# Enqueue.
WRK_DURATION_QUICK_S: Final = 10
WRK_DURATION_FULL_S: Final = 30
WRK_THREADS: Final = 1
WRK_CONNECTIONS: Final = 64
BATCH_SIZE: Final = 100
# Producers: every system's producer runs PRODUCER_REPEATS times, interleaved, each with
# enough jobs for about PRODUCER_WINDOW_S seconds at the rate it is expected to reach.
PRODUCER_REPEATS: Final = 3
PRODUCER_WINDOW_S: Final = 5.0
PRODUCER_EXPECTED_JOBS_S: Final[dict[str, float]] = {
    "jobqueue": 10_000,
    "jobqueue_batch": 150_000,
    "rq": 3_000,
    "celery": 3_000,
    "arq": 3_000,
    "dramatiq": 7_000,
}

# Redis ceiling (redis-benchmark).
CEILING_CLIENTS: Final = 50
CEILING_REQUESTS_QUICK: Final = 200_000
CEILING_REQUESTS_FULL: Final = 1_000_000

# Payload sizes, every system (GROWTH_PAYLOAD_SIZES): jobs per run, interleaved rounds.
PAYLOAD_JOBS_QUICK: Final = 400
PAYLOAD_JOBS_FULL: Final = 2_000
PAYLOAD_ROUNDS: Final = 3

# Growth.
GROWTH_PAYLOAD_SIZES: Final = (100, 10_000, 100_000)
GROWTH_BACKLOG_QUICK: Final = 100_000
GROWTH_BACKLOG_FULL: Final = 1_000_000
GROWTH_PROCESSES: Final = (1, 2, 4)
GROWTH_JOBS_QUICK: Final = 50_000
GROWTH_JOBS_FULL: Final = 200_000

# Operator scale.
OPERATOR_QUEUES_QUICK: Final = 100
OPERATOR_QUEUES_FULL: Final = 1_000
OPERATOR_READY_TIMEOUT_S: Final = 600.0
OPERATOR_IDLE_WINDOW_QUICK_S: Final = 60.0
OPERATOR_IDLE_WINDOW_FULL_S: Final = 660.0  # two resync passes (300 s each) and a margin
OPERATOR_RESTART_WINDOW_S: Final = 120.0  # after a SIGKILL: the new operator's requests
AUDIT_CATCH_UP_S: Final = 60.0  # longest wait for the batched audit log to catch up

# Autoscale.
AUTOSCALE_TRIALS_QUICK: Final = 3  # the median of at least 3
AUTOSCALE_TRIALS_FULL: Final = 5
AUTOSCALE_BACKLOG: Final = 99
AUTOSCALE_TARGET_PER_WORKER: Final = 5
AUTOSCALE_MAX_REPLICAS: Final = 20
AUTOSCALE_COOLDOWN_S: Final = 30  # the same cooldown for ours and KEDA's cooldownPeriod
KEDA_POLLING_INTERVAL_S: Final = 30  # KEDA's default; the tuned run uses 1

# Peer environments: one venv each so no peer bumps another's dependencies. The pins live in
# tests/cluster/peers.py, shared with the queue-format tests (venvs in ~/.cache/jobqueue-operator).
PEER_REQUIREMENTS: Final = peers.PEER_REQUIREMENTS
PEER_DIST: Final = peers.PEER_DIST

# Targets (checked in RESULTS.md): issue 12, and issue 20 for the worker and the producer,
# judged at the defaults a user gets (ratios per worker process, same run).
TARGET_WORKER_JOBS_S: Final = 25_000  # no-op, one process, at defaults
TARGET_WORKER_BEST_JOBS_S: Final = 100_000  # no-op, one process, at the best settings
TARGET_RATIO_PEER_DEFAULTS: Final = 5.0  # ours INCR at defaults / best peer at its defaults
TARGET_RATIO_PEER_BEST: Final = 3.0  # ours INCR at defaults / best peer at its best
TARGET_PRODUCER_RATIO_DRAMATIQ: Final = 2.0  # Queue.enqueue / Dramatiq send, one call per job
TARGET_API_SINGLE_RPS: Final = 5_000
TARGET_PAYLOAD_REDIS_CPU_RATIO: Final = 2.0  # ours / best peer, Redis CPU per 100 KB job
TARGET_API_BATCH_JOBS_S: Final = 50_000
TARGET_SCALE_0_1_S: Final = 0.3  # event-driven: our protocol, or keyspace notifications
TARGET_SCALE_0_1_POLLED_S: Final = 1.5  # a foreign format polled every 1 s
TARGET_SCALE_1_20_S: Final = 2.0
TARGET_OPERATOR_READY_S: Final = 30.0  # 1,000 JobQueues at the defaults (issue 21)
TARGET_OPERATOR_RSS_MIB: Final = 200.0  # at 1,000 JobQueues (issue 21)
TARGET_OPERATOR_READY_5000_S: Final = 150.0  # 5,000 JobQueues at the defaults (issue 21)
TARGET_OPERATOR_RSS_5000_MIB: Final = 600.0  # at 5,000 JobQueues (issue 21)
TARGET_NODE_FIRST_JOB_S: Final = 3.0  # real node: idle queue -> first job on a new pod
