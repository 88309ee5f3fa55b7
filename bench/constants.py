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
ALL_BENCHMARKS: Final = ("worker", "enqueue", "growth", "operator", "autoscale")

# Worker throughput.
WORKER_JOBS_QUICK: Final = 20_000
WORKER_JOBS_FULL: Final = 100_000
WORKER_TIMEOUT_S: Final = 600.0  # a run that has not drained by then is reported as a failure
# Ours finishes 20k jobs in well under a second: more jobs keep the 10 ms polling error small.
OURS_JOBS_QUICK: Final = 100_000
OURS_JOBS_FULL: Final = 500_000
# A slow configuration (RQ forking per job, concurrency 1) is stopped after this long and
# measured over the jobs it finished; the row says "capped".
WORKER_CAP_QUICK_S: Final = 30.0
WORKER_REPEATS_FULL: Final = 3  # full runs report the median of this many runs per config
WORKER_CAP_FULL_S: Final = 120.0
# "Best setting" per system: the concurrency that served it best on this machine kind.
OURS_BEST_CONCURRENCY: Final = 256
OURS_INCR_CONCURRENCY: Final = 128  # the INCR task: its own client pool has this many conns
DRAMATIQ_BEST_THREADS: Final = 32
CELERY_BEST_PREFETCH: Final = 8  # acks_late with a larger prefetch window
ARQ_BEST_MAX_JOBS: Final = 1000
COUNTER_KEY: Final = "bench:done"  # every peer's task INCRs this one key

# Enqueue.
ENQUEUE_JOBS_QUICK: Final = 20_000
ENQUEUE_JOBS_FULL: Final = 100_000
WRK_DURATION_QUICK_S: Final = 10
WRK_DURATION_FULL_S: Final = 30
WRK_THREADS: Final = 1
WRK_CONNECTIONS: Final = 64
BATCH_SIZE: Final = 100

# Redis ceiling (redis-benchmark).
CEILING_CLIENTS: Final = 50
CEILING_REQUESTS_QUICK: Final = 200_000
CEILING_REQUESTS_FULL: Final = 1_000_000

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
OPERATOR_IDLE_WINDOW_FULL_S: Final = 120.0
AUDIT_CATCH_UP_S: Final = 60.0  # longest wait for the batched audit log to catch up

# Autoscale.
AUTOSCALE_TRIALS_QUICK: Final = 2
AUTOSCALE_TRIALS_FULL: Final = 5
AUTOSCALE_BACKLOG: Final = 99
AUTOSCALE_TARGET_PER_WORKER: Final = 5
AUTOSCALE_MAX_REPLICAS: Final = 20
AUTOSCALE_COOLDOWN_S: Final = 30  # the same cooldown for ours and KEDA's cooldownPeriod
AUTOSCALE_POLL_S: Final = 0.05  # how often the harness reads spec.replicas
KEDA_POLLING_INTERVAL_S: Final = 30  # KEDA's default; the tuned run uses 1

# Peer environments: one venv each so no peer bumps another's dependencies. The pins live in
# tests/cluster/peers.py, shared with the queue-format tests (venvs in ~/.cache/jobqueue-operator).
PEER_REQUIREMENTS: Final = peers.PEER_REQUIREMENTS
PEER_DIST: Final = peers.PEER_DIST

# Targets of issue 12 (checked in RESULTS.md).
TARGET_WORKER_JOBS_S: Final = 25_000
TARGET_RATIO_DRAMATIQ: Final = 8.0
TARGET_RATIO_OTHERS: Final = 10.0
TARGET_API_SINGLE_RPS: Final = 5_000
TARGET_API_BATCH_JOBS_S: Final = 50_000
TARGET_SCALE_0_1_S: Final = 0.3
TARGET_SCALE_1_20_S: Final = 2.0
TARGET_OPERATOR_READY_S: Final = 60.0
TARGET_OPERATOR_RSS_MIB: Final = 256.0
