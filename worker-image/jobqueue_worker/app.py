"""Wiring of `python -m jobqueue_worker`: settings, tasks, Redis, health server, signals, exit."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

import jobqueue
from jobqueue import AnyRedis
from jobqueue_worker import constants as c
from jobqueue_worker.health import HealthServer
from jobqueue_worker.logs import configure_logging
from jobqueue_worker.metrics import WorkerMetrics
from jobqueue_worker.registry import TaskModuleError, TaskRegistry, import_task_modules
from jobqueue_worker.runtime import Worker, WorkerConfig
from jobqueue_worker.settings import SettingsError, WorkerSettings, load_settings
from jobqueue_worker.taskredis import task_client

log = logging.getLogger("jobqueue_worker")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobqueue_worker",
        description="Run task functions from TASKS_MODULE against the queue QUEUE_NAME. "
        "Configuration comes from the environment (REDIS_URL, WORKER_CONCURRENCY, ...).",
        epilog=f"exit codes: {c.EXIT_OK} stopped cleanly, {c.EXIT_CONFIG} bad configuration "
        f"or TASKS_MODULE, {c.EXIT_ERROR} crash",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration and import the tasks, then exit (no Redis needed)",
    )
    return parser.parse_args(argv)


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SettingsError("WORKER_EVENT_LOOP=uvloop but uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


async def serve(settings: WorkerSettings, registry: TaskRegistry, redis: AnyRedis) -> Worker:
    """Run one worker until SIGTERM/SIGINT and its drain are over; returns the stopped worker."""
    queue = jobqueue.Queue(redis, settings.queue_name, lease_seconds=settings.lease_seconds)
    metrics = WorkerMetrics()
    worker = Worker(
        queue,
        registry,
        WorkerConfig.from_settings(settings),
        metrics,
        task_redis=task_client(redis),
    )
    health = HealthServer(
        host=settings.health_host,
        port=settings.health_port,
        loop_silence=worker.loop_silence,
        liveness_timeout=settings.liveness_timeout_seconds,
        draining=lambda: worker.stopping,
        ping=redis.ping,
        metrics=metrics,
    )
    await health.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop, signal.Signals(sig).name)
    log.info(
        "worker started",
        extra={
            "worker_id": settings.worker_id,
            "queue": settings.queue_name,
            "redis_url": settings.redacted_redis_url,
            "concurrency": settings.worker_concurrency,
            "prefetch": settings.prefetch,
            "tasks": registry.names(),
            "health_port": settings.health_port,
            "lease_s": settings.lease_seconds,
            "job_timeout_s": settings.job_timeout_seconds,
            "drain_timeout_s": settings.drain_timeout_seconds,
            "event_loop": type(loop).__module__.split(".")[0],
        },
    )
    try:
        await worker.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await health.stop()
        await queue.aclose()
        await redis.aclose()
    return worker


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (see constants.EXIT_*)."""
    args = _parse_args(argv)
    configure_logging(c.DEFAULT_LOG_LEVEL)
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        factory = _loop_factory(settings.worker_event_loop)
    except SettingsError as exc:
        log.error(str(exc))
        return c.EXIT_CONFIG
    try:
        registry = import_task_modules(settings.tasks_modules)
    except TaskModuleError as exc:
        cause = exc.__cause__
        log.error(str(exc), exc_info=(type(cause), cause, cause.__traceback__) if cause else None)
        return c.EXIT_CONFIG
    if args.check:
        log.info("configuration and tasks are valid", extra={"tasks": registry.names()})
        return c.EXIT_OK
    try:
        redis = jobqueue.connect_any(
            settings.redis_url.get_secret_value(),
            socket_connect_timeout=settings.redis_connect_timeout,
            socket_timeout=settings.redis_socket_timeout,
        )
    except jobqueue.ConfigError as exc:
        log.error(f"invalid configuration: REDIS_URL (or TASK_QUEUE_URL): {exc}")
        return c.EXIT_CONFIG
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            worker = runner.run(serve(settings, registry, redis))
    except OSError as exc:  # e.g. the health port is taken
        log.critical(f"worker failed to start: {exc}")
        return c.EXIT_ERROR
    except Exception:
        log.critical("worker crashed", exc_info=True)
        return c.EXIT_ERROR
    if worker.abandoned_threads:
        # Sync tasks past their timeout still run; Python would wait for their threads at exit.
        log.warning("exiting with abandoned task threads", extra={"n": worker.abandoned_threads})
        logging.shutdown()
        sys.stderr.flush()
        os._exit(c.EXIT_OK)
    return c.EXIT_OK
