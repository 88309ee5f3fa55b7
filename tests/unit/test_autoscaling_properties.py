"""Property tests (hypothesis) of the autoscaling policy's invariants, one step and over time."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from jobqueue_operator.autoscaling import (
    COST_IDLE,
    AutoscalingSpec,
    Reason,
    Recommendation,
    ScalingInputs,
    decide,
    desired_replicas,
    last_active,
    pod_deletion_costs,
    remember,
)

HOLDS = {Reason.PAUSED, Reason.REDIS_UNREACHABLE}
NOW = 100_000.0


@st.composite
def specs(draw: st.DrawFn) -> AutoscalingSpec:
    lo = draw(st.integers(0, 5))
    hi = draw(st.integers(max(1, lo), 20))
    return AutoscalingSpec(
        min_replicas=lo,
        max_replicas=hi,
        target_jobs_per_worker=draw(st.none() | st.integers(1, 20)),
        activation_jobs=draw(st.integers(1, 10)),
        scale_down_stabilization_seconds=draw(st.integers(0, 300)),
        cooldown_seconds=draw(st.integers(0, 600)),
        paused=draw(st.booleans()),
    )


@st.composite
def inputs(
    draw: st.DrawFn, *, paused: bool | None = None, redis_ok: bool | None = None
) -> ScalingInputs:
    spec = draw(specs())
    if paused is not None:
        spec = spec.model_copy(update={"paused": paused})
    window = spec.scale_down_stabilization_seconds
    history = draw(
        st.lists(
            st.builds(
                Recommendation,
                at=st.floats(NOW - 2 * window - 10, NOW),
                replicas=st.integers(spec.min_replicas, spec.max_replicas),
            ),
            max_size=6,
        )
    )
    return ScalingInputs(
        ready=draw(st.integers(0, 500)),
        in_flight=draw(st.integers(0, 200)),
        busy_workers=draw(st.integers(0, 30)),
        current_replicas=draw(st.integers(0, 30)),
        spec=spec,
        target_per_worker=spec.target_per_worker(draw(st.integers(1, 16))),
        recommendations=tuple(sorted(history, key=lambda r: r.at)),
        last_active_at=draw(st.floats(NOW - 1000, NOW)),
        now=NOW,
        redis_ok=draw(st.booleans()) if redis_ok is None else redis_ok,
        redis_error="Connection refused",
    )


@given(inputs())
def test_within_min_and_max_except_holds(i: ScalingInputs) -> None:
    d = decide(i)
    if d.reason in HOLDS:
        assert d.replicas == i.current_replicas
        return
    assert d.replicas >= i.spec.min_replicas
    if d.replicas > i.spec.max_replicas:
        # Only workers that exist and are busy may keep the count above a lowered max.
        assert d.replicas <= i.current_replicas
        assert d.replicas == min(i.busy_workers, i.current_replicas)


@given(inputs())
def test_never_below_busy_workers(i: ScalingInputs) -> None:
    assert decide(i).replicas >= min(i.busy_workers, i.current_replicas)


@given(inputs(paused=False, redis_ok=True))
def test_scale_up_is_one_step_to_the_desired_count(i: ScalingInputs) -> None:
    d = decide(i)
    raw = desired_replicas(i.ready, i.in_flight, i.target_per_worker)
    want = max(i.spec.min_replicas, min(i.spec.max_replicas, raw))
    if d.replicas > i.current_replicas:
        assert d.replicas == want
        assert d.reason is Reason.SCALED_UP
    below_activation = (
        i.current_replicas == 0
        and i.spec.min_replicas == 0
        and i.ready + i.in_flight < i.spec.activation_jobs
    )
    if want > i.current_replicas and not below_activation:
        assert d.replicas == want


@given(inputs(paused=False, redis_ok=True))
def test_never_scales_down_below_a_recommendation_in_the_window(i: ScalingInputs) -> None:
    d = decide(i)
    if d.replicas < i.current_replicas:
        window = i.spec.scale_down_stabilization_seconds
        recent = [r.replicas for r in i.recommendations if i.now - r.at < window]
        assert d.replicas >= min(max(recent, default=0), i.spec.max_replicas)


@given(inputs(paused=False, redis_ok=True))
def test_zero_only_after_the_cooldown(i: ScalingInputs) -> None:
    d = decide(i)
    if d.replicas == 0 and i.current_replicas > 0:
        assert i.ready + i.in_flight == 0
        assert i.now - i.last_active_at >= i.spec.cooldown_seconds


@given(inputs(redis_ok=False))
def test_holds_when_redis_is_unreachable(i: ScalingInputs) -> None:
    d = decide(i)
    assert d.replicas == i.current_replicas
    assert d.reason in HOLDS
    assert d.recommendation is None


@given(inputs(paused=True))
def test_holds_when_paused(i: ScalingInputs) -> None:
    d = decide(i)
    assert (d.replicas, d.reason) == (i.current_replicas, Reason.PAUSED)


@given(inputs(paused=False, redis_ok=True))
def test_activation_threshold_keeps_zero(i: ScalingInputs) -> None:
    d = decide(i)
    if i.current_replicas == 0 and i.spec.min_replicas == 0:
        woke = d.replicas > 0
        assert woke == (i.ready + i.in_flight >= i.spec.activation_jobs)


# ---------------------------------------------------------------------------------------------
# Over time: the loop's memory (remember / last_active) fed through many steps


@dataclass(frozen=True)
class Step:
    dt: float
    ready: int
    in_flight: int
    busy: int


steps = st.lists(
    st.builds(
        Step,
        dt=st.floats(0.05, 90),
        ready=st.integers(0, 60) | st.just(0),
        in_flight=st.integers(0, 20) | st.just(0),
        busy=st.integers(0, 6),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200)
@given(specs(), steps, st.integers(0, 10))
def test_timeline_invariants(spec: AutoscalingSpec, timeline: list[Step], start: int) -> None:
    spec = spec.model_copy(update={"paused": False})
    now = 0.0
    current = start
    history: tuple[Recommendation, ...] = ()
    active_at = now  # the loop starts its cooldown clock at its own start
    recs: list[tuple[float, int]] = []
    for step in timeline:
        now += step.dt
        active_at = last_active(active_at, step.ready, step.in_flight, now)
        d = decide(
            ScalingInputs(
                ready=step.ready,
                in_flight=step.in_flight,
                busy_workers=step.busy,
                current_replicas=current,
                spec=spec,
                target_per_worker=4,
                recommendations=history,
                last_active_at=active_at,
                now=now,
            )
        )
        assert d.recommendation is not None
        recs.append((now, d.recommendation))
        if d.replicas < current:
            window = spec.scale_down_stabilization_seconds
            assert all(d.replicas >= r for t, r in recs if now - t < window)
            assert d.replicas >= min(step.busy, current)
        if d.replicas == 0 and current > 0:
            assert step.ready + step.in_flight == 0
            assert now - active_at >= spec.cooldown_seconds
        history = remember(history, d, now, spec.scale_down_stabilization_seconds)
        current = d.replicas


# ---------------------------------------------------------------------------------------------
# Deletion costs


@dataclass(frozen=True)
class W:
    id: str
    busy: bool
    in_flight: int


@given(
    st.lists(st.text("abcdef0123456789", min_size=5, max_size=5), unique=True, max_size=12),
    st.data(),
)
def test_busy_pods_always_cost_more_than_idle_pods(
    suffixes: list[str], data: st.DataObject
) -> None:
    pods = [f"q-worker-5d8c-{s}" for s in suffixes]
    workers = [
        W(pod, busy=in_flight > 0, in_flight=in_flight)
        for pod in pods
        if data.draw(st.booleans())
        for in_flight in [data.draw(st.integers(0, 8))]
    ]
    costs = pod_deletion_costs(pods, workers)
    assert set(costs) == set(pods)
    busy = {w.id for w in workers if w.in_flight > 0}
    idle = {w.id for w in workers if w.in_flight == 0}
    for b in busy:
        assert all(costs[b] > costs[other] for other in pods if other not in busy)
    for i in idle:
        assert costs[i] == COST_IDLE
