"""One demo run against JobQueues that are up: post the burst, watch it drain and the workers
scale up and back down, read every job back, print the summary.

The same code runs on the local cluster (`make demo`) and on any cluster it is attached to
(`make kind-demo`); what differs is handed in as a DemoEnv.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from demo import burst as b
from demo import constants as c
from demo.monitor import History, Kube, Sampler
from demo.view import Frame, Timings, dashboard, event_line, status_line, summary


@dataclass
class DemoEnv:
    """What a run needs from whoever set the system up."""

    title: str
    mode_note: str  # says on screen what runs where (pods on a node, or local processes)
    targets: Sequence[b.Target]
    kube: Kube
    setup_seconds: float
    #: Called every sample (the no-node fallback mirrors the worker Deployment's replica count
    #: to local worker processes here).
    tick: Callable[[History], Awaitable[None]] | None = None
    ready_override: Callable[[b.Target], int | None] | None = None
    poke: list[str] = field(default_factory=list)  # how to look at it by hand
    #: Called at the end of the run, on the run's event loop (stops the fallback's workers).
    close: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    ok: bool
    outcome: b.Outcome
    sent: int
    errors: tuple[str, ...]
    timings: Timings
    peaks: dict[str, int]
    scale_events: int

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sent": self.sent,
            "status": dict(self.outcome.status),
            "retried": self.outcome.retried,
            "wrong": list(self.outcome.wrong),
            "errors": list(self.errors),
            "timings": {
                "setup": self.timings.setup,
                "sent": self.timings.sent,
                "drained": self.timings.drained,
                "settled": self.timings.settled,
            },
            "peak_desired_workers": self.peaks,
            "scale_events": self.scale_events,
        }


def at_minimum(history: History, targets: Sequence[b.Target]) -> bool:
    """Every queue's workers are back at their minimum: desired and ready."""
    for t in targets:
        last = history.per_queue[t.queue].last
        if last is None or last.workers.desired != t.min_workers:
            return False
        if last.workers.ready != t.min_workers:
            return False
    return True


class Phase:
    SENDING = "sending the burst"
    DRAINING = "draining the backlog"
    SETTLING = "scaling back to the minimum"
    DONE = "done"
    TIMED_OUT = "timed out"


async def settle_first(env: DemoEnv, clients: dict[str, Any], console: Console) -> float:
    """Wait until every queue's workers are at their minimum, so the burst starts from there
    (a JobQueue just created starts with one worker). Returns the seconds it took."""
    t0 = time.monotonic()
    history = History([t.queue for t in env.targets])
    sampler = Sampler(history, env.targets, clients, env.kube, ready_override=env.ready_override)
    reached = False
    with console.status("workers settling at their minimum before the burst ..."):
        while not reached and time.monotonic() - t0 < c.SETTLE_TIMEOUT_SECONDS:
            await sampler.sample_once()
            reached = at_minimum(history, env.targets)
            if env.tick is not None:
                await env.tick(history)
            if not reached:
                await asyncio.sleep(c.SAMPLE_INTERVAL)
    where = ", ".join(f"{t.queue} {t.min_workers}" for t in env.targets)
    took = f"[dim]({time.monotonic() - t0:.1f} s)[/]"
    if reached:
        console.print(f"[green]✓[/] workers at their minimum before the burst ({where}) {took}")
    else:
        console.print(
            f"[yellow]![/] workers not at their minimum ({where}): bursting anyway {took}"
        )
    return time.monotonic() - t0


async def run(
    env: DemoEnv, total: int, console: Console, *, live: bool, summary_json: Path | None = None
) -> RunResult:
    targets = env.targets
    plan = b.plan(total, [t.queue for t in targets])
    clients = {t.queue: b.client_for(t) for t in targets}
    try:
        env.setup_seconds += await settle_first(env, clients, console)
        history = History([t.queue for t in targets])
        sampler = Sampler(history, targets, clients, env.kube, ready_override=env.ready_override)
        await sampler.sample_once()  # the baseline: counters before the burst
        stop = asyncio.Event()
        sampling = asyncio.create_task(sampler.run(stop))
        sent = b.SentBurst()
        sending = asyncio.create_task(b.send(plan, clients, sent))
        drained = settled = None
        phase = Phase.SENDING
        deadline = time.monotonic() + c.DRAIN_TIMEOUT_SECONDS

        def frame() -> Frame:
            return Frame(
                env.title,
                env.mode_note,
                phase,
                plan,
                sent,
                targets,
                dict(sampler.api_errors),
                sampler.kube_error,
            )

        live_view = (
            Live(
                dashboard(history, frame()),
                console=console,
                refresh_per_second=c.REFRESH_PER_SECOND,
            )
            if live
            else None
        )
        last_line = 0.0
        printed_events = 0
        if live_view is not None:
            live_view.start()
        else:
            console.print(f"{env.title}: {env.mode_note}", highlight=False)
        try:
            while phase not in (Phase.DONE, Phase.TIMED_OUT):
                await asyncio.sleep(c.SAMPLE_INTERVAL)
                if env.tick is not None:
                    await env.tick(history)
                now = time.monotonic()
                if phase == Phase.SENDING and sending.done():
                    sending.result()
                    phase = Phase.DRAINING
                if phase == Phase.DRAINING and history.done() >= sent.accepted:
                    drained = history.now()
                    phase = Phase.SETTLING
                    deadline = now + c.SETTLE_TIMEOUT_SECONDS
                if phase == Phase.SETTLING and at_minimum(history, targets):
                    settled = history.now()
                    phase = Phase.DONE
                if phase != Phase.DONE and now > deadline:
                    phase = Phase.TIMED_OUT
                if live_view is not None:
                    live_view.update(dashboard(history, frame()))
                else:
                    for e in history.events[printed_events:]:
                        console.print(event_line(e), no_wrap=True, overflow="ellipsis")
                    printed_events = len(history.events)
                    if now - last_line >= c.PLAIN_LINE_INTERVAL or phase in (
                        Phase.DONE,
                        Phase.TIMED_OUT,
                    ):
                        last_line = now
                        console.print(status_line(history, frame()), highlight=False)
        finally:
            stop.set()
            await sampling
            await sampler.events_once()  # the last scale-down's Event
            if live_view is not None:
                live_view.update(dashboard(history, frame()))
                live_view.stop()
            if not sending.done():
                sending.cancel()
            # Collect its outcome (a cancellation on Ctrl+C) before the clients close.
            await asyncio.gather(sending, return_exceptions=True)
        outcome = b.judge(await b.read_back(sent, clients))
        timings = Timings(
            setup=env.setup_seconds,
            sent=sent.finished - sent.started if sent.finished else 0.0,
            drained=drained,
            settled=settled,
        )
        console.print(summary(history, plan, sent, outcome, timings, targets))
        result = RunResult(
            ok=outcome.ok and not sent.errors and drained is not None and settled is not None,
            outcome=outcome,
            sent=sent.accepted,
            errors=tuple(sent.errors),
            timings=timings,
            peaks={q: h.peak_desired for q, h in history.per_queue.items()},
            scale_events=sum(e.reason in ("ScaledUp", "ScaledDown") for e in history.events),
        )
        if summary_json is not None:
            text = json.dumps(result.as_json(), indent=2) + "\n"
            await asyncio.to_thread(summary_json.write_text, text)
        return result
    finally:
        for client in clients.values():
            await client.aclose()
        if env.close is not None:
            await env.close()
