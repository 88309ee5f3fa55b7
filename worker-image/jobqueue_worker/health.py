"""The health server on HEALTH_PORT: /healthz (claim loop alive), /readyz (Redis), /metrics.

It runs on the worker's own event loop, on purpose. If a task blocks the loop (a sync call in
an async task), the probe gets no answer and the kubelet counts the timeout as a failure; if
the loop runs but the claim loop is stuck (a claim that never returns), /healthz answers 503
from the heartbeat age. Either way a wedged worker fails liveness and gets restarted, and no
second thread can report "alive" for a loop that is not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from jobqueue_worker import constants as c
from jobqueue_worker.metrics import WorkerMetrics


def liveness(silence: float, threshold: float) -> tuple[bool, str]:
    """Alive while the claim loop went round within `threshold` seconds."""
    if silence <= threshold:
        return True, "ok"
    return False, f"claim loop silent for {silence:.1f} s (limit {threshold:g} s)"


class HealthServer:
    """aiohttp app with the three probe routes; `start()` binds, `stop()` unbinds."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        loop_silence: Callable[[], float],
        liveness_timeout: float,
        draining: Callable[[], bool],
        ping: Callable[[], Awaitable[Any]],
        metrics: WorkerMetrics,
    ) -> None:
        self.host, self.port = host, port
        self._loop_silence = loop_silence
        self._liveness_timeout = liveness_timeout
        self._draining = draining
        self._ping = ping
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        self.app = app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def healthz(self, _: web.Request) -> web.Response:
        alive, reason = liveness(self._loop_silence(), self._liveness_timeout)
        return web.Response(status=200 if alive else 503, text=reason)

    async def readyz(self, _: web.Request) -> web.Response:
        if self._draining():
            return web.Response(status=503, text="draining")
        try:
            await asyncio.wait_for(self._ping(), c.READINESS_TIMEOUT)
        except Exception as exc:  # any failure of the PING means "not ready"
            return web.Response(status=503, text=f"redis unreachable: {type(exc).__name__}")
        return web.Response(text="ok")

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
