"""The demo's pure parts: the burst plan, the manifests it applies, the History's numbers, the
outcome check and the views (rendered to text)."""

from __future__ import annotations

from collections import Counter

import pytest
from rich.console import Console

from demo import constants as c
from demo import manifests as m
from demo.burst import BurstPlan, PlannedJob, Route, SentBurst, Target, judge, plan, split
from demo.monitor import History, Sample, Stats, Workers, event_of
from demo.run import at_minimum
from demo.view import Frame, Timings, dashboard, scale_timeline, sparkline, status_line, summary

QUEUES = [c.MANAGED_QUEUE, c.SECRET_QUEUE]


def _stats(ready: int = 0, in_flight: int = 0, dead: int = 0, completed: int = 0) -> Stats:
    return Stats(ready, in_flight, 0, dead, completed, 0, 0)


# ---- the burst plan -------------------------------------------------------------------------


@pytest.mark.parametrize("total", [1, 2, 3, 50, 200, 1000, 1237])
def test_plan_has_exactly_the_requested_jobs_and_one_dlq_job(total: int) -> None:
    burst = plan(total, QUEUES)
    assert len(burst.jobs) == total
    assert burst.expected()["dead"] == 1
    dead = [j for j in burst.jobs if j.expect == "dead"]
    assert dead[0].type == "fail" and dead[0].queue == QUEUES[0]
    assert dead[0].max_retries == c.DLQ_MAX_RETRIES


def test_plan_uses_every_route_and_the_retrying_and_slow_tasks() -> None:
    burst = plan(200, QUEUES)
    assert set(burst.routes()) == {r.value for r in Route}
    types = Counter(j.type for j in burst.jobs)
    assert types["flaky"] >= 2 and types["slow"] >= 2 and types["fail"] == 1
    assert all(j.expect == "completed" for j in burst.jobs if j.type != "fail")


def test_plan_splits_by_share_and_is_deterministic() -> None:
    burst = plan(1000, QUEUES)
    assert len(burst.for_queue(c.MANAGED_QUEUE)) == 750
    assert len(burst.for_queue(c.SECRET_QUEUE)) == 250
    assert plan(1000, QUEUES) == burst


def test_plan_with_one_queue_puts_everything_there() -> None:
    burst = plan(40, [c.SECRET_QUEUE])
    assert {j.queue for j in burst.jobs} == {c.SECRET_QUEUE}
    assert burst.expected(c.SECRET_QUEUE)["dead"] == 1


def test_plan_refuses_an_empty_burst() -> None:
    with pytest.raises(ValueError):
        plan(0, QUEUES)


def test_split_sums_to_total_and_gives_every_queue_one() -> None:
    assert split(2, {"a": 0.99, "b": 0.01}) == {"a": 1, "b": 1}
    assert sum(split(7, {"a": 0.5, "b": 0.3, "c": 0.2}).values()) == 7


def test_job_body_leaves_defaults_out() -> None:
    job = PlannedJob("q", Route.JOBS, "email", {"to": "x"})
    assert job.job_body() == {"type": "email", "payload": {"to": "x"}}
    urgent = PlannedJob("q", Route.JOBS, "fail", None, priority="high", max_retries=2)
    assert urgent.job_body() == {"type": "fail", "payload": None, "priority": "high",
                                 "max_retries": 2}  # fmt: skip


def test_target_sends_its_token() -> None:
    assert Target("q", "ns", "http://x", "tok").headers() == {"Authorization": "Bearer tok"}
    assert Target("q", "ns", "http://x").headers() == {}


# ---- the outcome ----------------------------------------------------------------------------


def test_judge_counts_statuses_retries_and_names_what_is_wrong() -> None:
    ok = PlannedJob("q", Route.JOBS, "email", None)
    flaky = PlannedJob("q", Route.JOBS, "flaky", None)
    dlq = PlannedJob("q", Route.JOBS, "fail", None, expect="dead")
    slow = PlannedJob("q", Route.TASKS, "slow", None)
    outcome = judge(
        [
            (ok, {"status": "completed", "attempts": 1}, "a"),
            (flaky, {"status": "completed", "attempts": 2}, "b"),
            (dlq, {"status": "dead", "attempts": 3}, "c"),
            (slow, {"status": "completed", "attempts": 1, "progress": 100}, "d"),
        ]
    )
    assert outcome.ok
    assert outcome.status == Counter({"completed": 3, "dead": 1})
    assert outcome.retried == 2
    assert outcome.slow_progress == (100,)
    bad = judge([(ok, None, "x"), (dlq, {"status": "failed", "attempts": 1}, "y")])
    assert not bad.ok
    assert bad.wrong == ("x email: expected completed, is missing",
                         "y fail: expected dead, is failed")  # fmt: skip


# ---- the manifests --------------------------------------------------------------------------


def _examples() -> list[m.Manifest]:
    return [*m.load(c.EXAMPLE_MANAGED), *m.load(c.EXAMPLE_SECRET)]


def test_demo_manifests_keep_the_examples_and_set_demo_timings() -> None:
    docs = m.demo_manifests(_examples(), external_redis_url="redis://:pw@10.200.0.1:1234/0",
                            redis_image="localhost/jobqueue-redis:dev")  # fmt: skip
    assert all(d["metadata"]["namespace"] == c.NAMESPACE for d in docs)
    queues = {d["metadata"]["name"]: d for d in docs if d["kind"] == "JobQueue"}
    assert set(queues) == set(QUEUES)
    for name, jq in queues.items():
        scaling = jq["spec"]["autoscaling"]
        assert (scaling["minReplicas"], scaling["maxReplicas"]) == c.WORKER_BOUNDS[name]
        assert scaling["cooldownSeconds"] == c.COOLDOWN_SECONDS
        assert (
            jq["spec"]["worker"]["drainTimeoutSeconds"]
            < jq["spec"]["worker"]["terminationGracePeriodSeconds"]
        )
    managed = queues[c.MANAGED_QUEUE]["spec"]["redis"]["managed"]
    assert managed["image"] == "localhost/jobqueue-redis:dev"
    assert managed["maxMemory"] == "256mb"  # the example's own settings survive
    secret_q = queues[c.SECRET_QUEUE]["spec"]
    assert "image" not in secret_q["worker"]
    assert secret_q["api"]["authTokenSecretRef"]["name"] == c.API_TOKEN_SECRET
    creds = next(d for d in docs if d["metadata"]["name"] == c.EXTERNAL_REDIS_SECRET)
    assert creds["stringData"] == {"url": "redis://:pw@10.200.0.1:1234/0"}
    assert m.api_token(docs) == "replace-with-a-long-random-token"


def test_demo_manifests_leave_out_what_cannot_run() -> None:
    no_node = m.demo_manifests(_examples(), external_redis_url="redis://x:1/0", managed=False)
    assert [d["metadata"]["name"] for d in no_node if d["kind"] == "JobQueue"] == [c.SECRET_QUEUE]
    managed_only = m.demo_manifests(_examples(), external_redis_url=None)
    assert [(d["kind"], d["metadata"]["name"]) for d in managed_only] == [
        ("JobQueue", c.MANAGED_QUEUE)
    ]


def test_the_examples_are_not_modified() -> None:
    examples = _examples()
    before = m.dump(examples)
    m.demo_manifests(examples, external_redis_url="redis://x:1/0")
    assert m.dump(examples) == before


def test_merge_is_deep_and_replaces_lists() -> None:
    assert m.merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}}) == {
        "a": {"b": 1, "c": [2]},
        "d": 1,
    }


def test_managed_redis_url_escapes_the_password() -> None:
    assert m.managed_redis_url("a/b@c") == (
        f"redis://:a%2Fb%40c@{c.MANAGED_QUEUE}-redis.{c.NAMESPACE}.svc:6379/1"
    )


# ---- the History ----------------------------------------------------------------------------


def test_history_counts_done_from_the_baseline_and_the_rate() -> None:
    h = History(["q"])
    h.add("q", Sample(0.0, _stats(ready=5, completed=100, dead=2), Workers(0, 0)))
    h.add("q", Sample(1.0, _stats(ready=3, completed=110, dead=2), Workers(2, 0)))
    h.add("q", Sample(2.0, _stats(ready=0, completed=120, dead=3), Workers(2, 2)))
    q = h.per_queue["q"]
    assert q.done() == 21 and q.completed() == 20 and q.dead() == 1
    assert q.rate(window=2.0) == pytest.approx(10.5)
    assert (q.peak_desired, q.peak_ready_workers, q.peak_ready) == (2, 2, 5)
    assert [(ch.desired, ch.ready) for ch in h.changes] == [(0, 0), (2, 0), (2, 2)]
    assert [ch.desired for ch in h.desired_timeline()] == [0, 2]


def test_history_ignores_samples_without_stats_for_counts() -> None:
    h = History(["q"])
    h.add("q", Sample(0.0, None, Workers(None, None)))
    assert h.done() == 0 and h.per_queue["q"].rate() == 0.0
    h.add("q", Sample(0.5, _stats(completed=7), Workers(1, 1)))
    assert h.done() == 0  # the first stats are the baseline


def test_events_are_recorded_once_and_timed_from_the_start() -> None:
    h = History(["q"])
    h.started_wall = 1_700_000_000.0
    raw = {"involvedObject": {"name": "q"}, "type": "Normal", "reason": "ScaledUp",
           "message": "0 -> 3", "lastTimestamp": "2023-11-14T22:13:25Z"}  # fmt: skip
    event = event_of(raw, h.started_wall)
    assert event.t == pytest.approx(5.0) and event.reason == "ScaledUp" and event.queue == "q"
    assert h.add_events([("uid1", event)]) == [event]
    assert h.add_events([("uid1", event)]) == []
    assert len(h.events) == 1


def test_an_event_within_the_first_second_is_not_before_the_start() -> None:
    start = 1_700_000_000.5
    raw = {"involvedObject": {"name": "q"}, "lastTimestamp": "2023-11-14T22:13:20Z"}
    assert event_of(raw, start).t == 0.0


def test_at_minimum_needs_desired_and_ready_at_the_minimum() -> None:
    targets = [Target("q", "ns", "http://x", min_workers=1, max_workers=3)]
    h = History(["q"])
    h.add("q", Sample(0.0, _stats(), Workers(1, 2)))
    assert not at_minimum(h, targets)
    h.add("q", Sample(1.0, _stats(), Workers(1, 1)))
    assert at_minimum(h, targets)


# ---- the views ------------------------------------------------------------------------------


def test_sparkline_scales_to_the_top() -> None:
    assert sparkline([0, 4, 8], top=8) == "▁▄█"
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([]) == ""


def _render(renderable: object) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def _run_state() -> tuple[History, BurstPlan, SentBurst, list[Target]]:
    targets = [Target("q", "ns", "http://x", min_workers=0, max_workers=4)]
    burst = plan(10, ["q"])
    sent = SentBurst(started=1.0, finished=1.5)
    for i, job in enumerate(burst.jobs):
        sent.add(f"id{i}", job)
    h = History(["q"])
    h.add("q", Sample(0.0, _stats(), Workers(0, 0)))
    h.add("q", Sample(1.0, _stats(ready=4, in_flight=2, completed=3, dead=1), Workers(4, 3)))
    raw = {"involvedObject": {"name": "q"}, "type": "Normal", "reason": "ScaledUp",
           "message": "scaled up from 0 to 4"}  # fmt: skip
    h.add_events([("u", event_of(raw, h.started_wall))])
    return h, burst, sent, targets


def test_dashboard_and_status_line_show_the_numbers() -> None:
    h, burst, sent, targets = _run_state()
    frame = Frame("title", "a note", "draining the backlog", burst, sent, targets, {}, None)
    text = _render(dashboard(h, frame))
    for expected in ("title", "a note", "draining the backlog", "4 / 3", "4/10", "ScaledUp",
                     "scaled up from 0 to 4", "sent 10 in 0.5 s"):  # fmt: skip
        assert expected in text, expected
    line = status_line(h, frame)
    assert "draining" in line and "q q=4 run=2 dead=1 w=4/3" in line and "done 4/10" in line


def test_summary_says_passed_only_when_every_job_is_as_planned() -> None:
    h, burst, sent, targets = _run_state()
    good = judge([(j, {"status": j.expect, "attempts": 1}, f"id{i}")
                  for i, j in enumerate(burst.jobs)])  # fmt: skip
    timings = Timings(setup=10.0, sent=0.5, drained=5.0, settled=9.0)
    text = _render(summary(h, burst, sent, good, timings, targets))
    assert "PASSED" in text and "completed           9 (expected 9)" in text
    assert "ScaledUp" in text and "at t = 9.0 s" in text
    bad = judge([(j, None, f"id{i}") for i, j in enumerate(burst.jobs)])
    text = _render(summary(h, burst, sent, bad, timings, targets))
    assert "FAILED" in text and "expected completed, is missing" in text


def test_scale_timeline_falls_back_to_the_desired_count_changes() -> None:
    h = History(["q"])
    h.add("q", Sample(0.0, _stats(), Workers(0, 0)))
    h.add("q", Sample(1.0, _stats(), Workers(3, 0)))
    lines = scale_timeline([], h.desired_timeline())
    assert lines[-1].endswith("q        desired workers -> 3")
