"""What the demo shows: the live dashboard, the plain status line (--no-live) and the summary.

Pure functions from the History (and the plan) to rich renderables or strings; printing is the
caller's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from demo import constants as c
from demo.burst import BurstPlan, Outcome, SentBurst, Target
from demo.monitor import History, QueueHistory, ScaleEvent, WorkerChange

SPARKS = "▁▂▃▄▅▆▇█"
SCALING_REASONS = frozenset({"ScaledUp", "ScaledDown", "AtMax"})


def sparkline(values: Sequence[int], top: int | None = None) -> str:
    """One block character per value, scaled to `top` (default the largest value)."""
    if not values:
        return ""
    high = max(top or 0, *values)
    if high <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, v * (len(SPARKS) - 1) // high)] for v in values)


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def fmt_t(seconds: float) -> str:
    return f"{seconds:5.1f} s"


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything one refresh of the view needs besides the History."""

    title: str
    mode_note: str
    phase: str
    plan: BurstPlan
    sent: SentBurst
    targets: Sequence[Target]
    api_errors: dict[str, str]
    kube_error: str | None


def _queue_row(q: QueueHistory, expected: int, target: Target) -> list[RenderableType]:
    stats = q.stats
    last = q.last
    workers = last.workers if last is not None else None
    desired_series = q.series(lambda s: s.workers.desired, c.SPARK_POINTS // 2)
    top = max(target.max_workers, 1)
    done = q.done()
    return [
        Text(q.queue, style="bold"),
        _num(stats.ready if stats else None),
        _num(stats.in_flight if stats else None),
        _num(stats.delayed if stats else None),
        _num(stats.dead if stats else None),
        Text.assemble(
            (f"{_num(workers.desired if workers else None):>2}", "bold cyan"),
            " / ",
            (f"{_num(workers.ready if workers else None):<2}", "bold green"),
            " ",
            (sparkline(desired_series, top), "cyan"),
        ),
        f"{q.rate():6.1f}",
        f"{done}/{expected}",
    ]


def dashboard(history: History, frame: Frame) -> RenderableType:
    """The live view: queue table, burst progress, depth sparkline, the operator's Events."""
    table = Table(expand=True, box=None, header_style="bold", pad_edge=False)
    for name, justify in (
        ("queue", "left"),
        ("ready", "right"),
        ("in flight", "right"),
        ("delayed", "right"),
        ("dead", "right"),
        ("workers desired / ready", "left"),
        ("done/s", "right"),
        ("done", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for target in frame.targets:
        q = history.per_queue[target.queue]
        expected = sum(frame.plan.expected(target.queue).values())
        table.add_row(*_queue_row(q, expected, target))

    total = len(frame.plan.jobs)
    done = history.done()
    progress = Table.grid(expand=True, padding=(0, 1))
    progress.add_column(width=8)
    progress.add_column(ratio=1)
    progress.add_column(justify="right", width=34)
    sent_note = (
        f"sent {frame.sent.accepted} in {frame.sent.finished - frame.sent.started:.1f} s"
        if frame.sent.finished
        else f"sending... {frame.sent.accepted}"
    )
    progress.add_row(
        Text("burst", style="bold"),
        ProgressBar(total=total, completed=min(done, total)),
        f"{done}/{total} {100 * done // max(total, 1):3d}%  {sent_note}",
    )
    depth = [
        sum(v)
        for v in zip(
            *(
                history.per_queue[t.queue].series(
                    lambda s: (s.stats.ready + s.stats.in_flight) if s.stats else 0,
                    c.SPARK_POINTS,
                )
                for t in frame.targets
            ),
            strict=False,
        )
    ]
    progress.add_row(
        Text("depth", style="bold"),
        Text(sparkline(depth), style="yellow"),
        f"ready + in flight, last {len(depth) // c.REFRESH_PER_SECOND} s",
    )

    events: list[RenderableType] = []
    for e in history.events[-c.EVENTS_SHOWN :]:
        style = "green" if e.reason in SCALING_REASONS else "dim"
        if e.type == "Warning":
            style = "red"
        line = Text.assemble(
            (e.clock, "dim"),
            " ",
            (f"{e.queue:<8}", "bold"),
            " ",
            (f"{e.reason:<11}", style),
            " ",
            e.message,
        )
        line.no_wrap, line.overflow = True, "ellipsis"
        events.append(line)
    if not events:
        events.append(Text("(no Events yet)", style="dim"))

    notes: list[RenderableType] = []
    for queue, err in sorted(frame.api_errors.items()):
        notes.append(Text(f"API of {queue} not answering: {err}", style="red"))
    if frame.kube_error:
        notes.append(Text(f"Kubernetes: {frame.kube_error}", style="red"))
    header = Text.assemble(
        (frame.title, "bold"),
        "  ",
        (frame.phase, "bold yellow"),
        "  ",
        (f"t = {history.now():.1f} s", "dim"),
    )
    return Panel(
        Group(
            header,
            Text(frame.mode_note, style="dim"),
            table,
            Text(""),
            progress,
            Text(""),
            Text("operator Events on the JobQueues", style="bold underline"),
            *events,
            *notes,
        ),
        border_style="blue",
    )


SHORT_PHASES = {
    "sending the burst": "sending",
    "draining the backlog": "draining",
    "scaling back to the minimum": "scaling down",
}


def status_line(history: History, frame: Frame) -> str:
    """--no-live: one line per PLAIN_LINE_INTERVAL with the same numbers.

    q: ready (waiting), run: in flight, w: workers desired/ready.
    """
    phase = SHORT_PHASES.get(frame.phase, frame.phase)
    parts = [f"[{history.now():5.1f} s] {phase:<12}"]
    for target in frame.targets:
        q = history.per_queue[target.queue]
        s = q.stats
        w = q.last.workers if q.last else None
        parts.append(
            f"{target.queue} q={_num(s.ready if s else None)} "
            f"run={_num(s.in_flight if s else None)} "
            f"dead={_num(s.dead if s else None)} "
            f"w={_num(w.desired if w else None)}/{_num(w.ready if w else None)}"
        )
    parts.append(f"done {history.done()}/{len(frame.plan.jobs)} {history.rate():.0f}/s")
    return " | ".join(parts)


def event_line(e: ScaleEvent) -> str:
    return f"  {e.clock} (t={e.t:5.1f} s) {e.queue:<8} {e.reason:<11} {e.message}"


# ---------------------------------------------------------------------------------------------
# Summary


@dataclass(frozen=True, slots=True)
class Timings:
    setup: float  # cluster + images + operator + JobQueues ready
    sent: float  # the burst posted (seconds after the History started)
    drained: float | None  # every job done
    settled: float | None  # every queue's workers back at the minimum


def scale_timeline(events: Sequence[ScaleEvent], changes: Sequence[WorkerChange]) -> list[str]:
    """The operator's scaling Events, else (no Events) the desired-count changes it made."""
    scaling = [e for e in events if e.reason in SCALING_REASONS]
    if scaling:
        return [event_line(e) for e in scaling]
    return [
        f"  t={ch.t:5.1f} s  {ch.queue:<8} desired workers -> {_num(ch.desired)}" for ch in changes
    ]


def summary(
    history: History,
    plan: BurstPlan,
    sent: SentBurst,
    outcome: Outcome,
    timings: Timings,
    targets: Sequence[Target],
) -> RenderableType:
    """The end-of-run report: counts, times, peaks and the scale timeline."""
    ok = outcome.ok and not sent.errors
    expected = plan.expected()
    lines = Table.grid(padding=(0, 2))
    lines.add_column(style="bold")
    lines.add_column()
    routes = ", ".join(f"{n} x {r}" for r, n in sorted(plan.routes().items()))
    lines.add_row("jobs sent", f"{sent.accepted} of {len(plan.jobs)} ({routes})")
    lines.add_row(
        "completed",
        f"{outcome.status.get('completed', 0)} (expected {expected.get('completed', 0)})",
    )
    lines.add_row(
        "retried",
        f"{outcome.retried} jobs needed more than one attempt; "
        f"{sum(h.failed_attempts() for h in history.per_queue.values())} attempts failed",
    )
    lines.add_row(
        "dead (DLQ)", f"{outcome.status.get('dead', 0)} (expected {expected.get('dead', 0)})"
    )
    others = {k: v for k, v in outcome.status.items() if k not in ("completed", "dead")}
    if others:
        lines.add_row("other", ", ".join(f"{v} {k}" for k, v in sorted(others.items())))
    if outcome.slow_progress:
        lines.add_row("slow jobs", f"progress {sorted(set(outcome.slow_progress))} (%)")
    lines.add_row("set-up", f"{timings.setup:.1f} s (cluster, images, operator, JobQueues)")
    lines.add_row("burst sent", f"in {timings.sent:.1f} s")
    lines.add_row(
        "all jobs done",
        "not within the time limit"
        if timings.drained is None
        else f"at t = {timings.drained:.1f} s",
    )
    lines.add_row(
        "workers at minimum",
        "not within the time limit"
        if timings.settled is None
        else f"at t = {timings.settled:.1f} s",
    )
    for target in targets:
        q = history.per_queue[target.queue]
        lines.add_row(
            f"{target.queue}",
            f"peak {q.peak_desired} workers desired ({q.peak_ready_workers} ready), "
            f"min {target.min_workers} / max {target.max_workers}; peak {q.peak_rate:.0f} jobs/s; "
            f"peak queue depth {q.peak_ready}",
        )
    timeline = scale_timeline(history.events, history.desired_timeline())
    problems = [*sent.errors[:5], *outcome.wrong[:10]]
    title = Text("PASSED" if ok else "FAILED", style="bold green" if ok else "bold red")
    parts: list[RenderableType] = [
        lines,
        Text(""),
        Text("scale timeline (the operator's Events)", style="bold underline"),
        Text("\n".join(timeline) if timeline else "  (none)"),
    ]
    if problems:
        parts += [Text(""), Text("problems", style="bold red"), Text("\n".join(problems))]
    return Panel(Group(*parts), title=Text.assemble("demo summary: ", title), border_style="blue")
