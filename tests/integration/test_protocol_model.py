"""Model-based test: random operation sequences against real Redis agree with a simple model.

Every job is in exactly one state at all times (nothing lost, nothing duplicated), claims
respect priorities, stale tokens are refused and the stats add up after every step.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from jobqueue import Claimed, FailOutcome, JobSpec, JobStatus, Priority, Queue

WAITING = {JobStatus.QUEUED, JobStatus.FAILED}
T = TypeVar("T")


@dataclass
class Model:
    status: JobStatus
    priority: Priority
    max_retries: int
    attempts: int = 0
    lease: Claimed | None = None
    old_tokens: tuple[int, ...] = ()


def make_machine(redis_url: str) -> type[RuleBasedStateMachine]:
    class QueueMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.client = aioredis.Redis.from_url(redis_url)
            # a 1 ms backoff ceiling: every retry is due at once, so the model stays exact
            self.q = Queue(
                self.client, f"model/{uuid.uuid4().hex[:10]}", backoff_base=0.001, backoff_cap=0.001
            )
            self.jobs: dict[str, Model] = {}

        def run(self, coro: Coroutine[Any, Any, T]) -> T:
            return self.loop.run_until_complete(coro)

        def teardown(self) -> None:
            self.run(self.q.purge())
            self.run(self.client.aclose())
            self.loop.close()

        def held(self) -> list[Model]:
            return [m for m in self.jobs.values() if m.status is JobStatus.PROCESSING]

        @rule(
            prios=st.lists(st.sampled_from(list(Priority)), min_size=1, max_size=5),
            max_retries=st.integers(0, 2),
        )
        def enqueue(self, prios: list[Priority], max_retries: int) -> None:
            specs = [JobSpec("t", priority=p, max_retries=max_retries) for p in prios]
            for spec, res in zip(specs, self.run(self.q.enqueue_many(specs)), strict=True):
                assert res.created
                self.jobs[res.job_id] = Model(JobStatus.QUEUED, spec.priority, max_retries)

        @rule(count=st.integers(1, 6))
        def claim(self, count: int) -> None:
            waiting = [m for m in self.jobs.values() if m.status in WAITING]
            got = self.run(self.q.claim("w", count))
            assert len(got) == min(count, len(waiting))
            order = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}
            ranks = [order[c.priority] for c in got]
            assert ranks == sorted(ranks)  # higher priorities first
            # Nothing better was left behind in the ready lists. A retry that fell due joins
            # them at the next maintenance (MAINTENANCE_INTERVAL_MS), or at once when the
            # lists cannot fill the claim, so it may wait behind lower priorities until then.
            left = [
                order[m.priority]
                for jid, m in self.jobs.items()
                if m.status is JobStatus.QUEUED and jid not in {c.id for c in got}
            ]
            if got and left:
                assert min(left) >= ranks[-1]
            for c in got:
                m = self.jobs[c.id]
                assert m.status in WAITING
                assert c.attempt == m.attempts + 1
                assert all(c.token > t for t in m.old_tokens)
                if m.lease is not None:
                    m.old_tokens += (m.lease.token,)
                m.status, m.attempts, m.lease = JobStatus.PROCESSING, c.attempt, c

        @rule(data=st.data())
        def complete(self, data: st.DataObject) -> None:
            held = self.held()
            if not held:
                return
            chosen = data.draw(st.lists(st.sampled_from(held), min_size=1, unique_by=id))
            leases = [m.lease for m in chosen if m.lease is not None]
            acks = self.run(self.q.complete([(c.id, c.token, c.attempt) for c in leases]))
            assert acks == [True] * len(leases)
            for m in chosen:
                m.status = JobStatus.COMPLETED

        @rule(data=st.data(), retry=st.booleans())
        def fail(self, data: st.DataObject, retry: bool) -> None:
            held = self.held()
            if not held:
                return
            m = data.draw(st.sampled_from(held))
            assert m.lease is not None
            outcome = self.run(self.q.fail(m.lease.id, m.lease.token, "boom", retry=retry))
            if retry and m.attempts < m.max_retries + 1:
                assert outcome is FailOutcome.RETRYING
                m.status = JobStatus.FAILED
            else:
                assert outcome is FailOutcome.DEAD
                m.status = JobStatus.DEAD

        @rule(data=st.data())
        def release(self, data: st.DataObject) -> None:
            held = self.held()
            if not held:
                return
            chosen = data.draw(st.lists(st.sampled_from(held), min_size=1, unique_by=id))
            leases = [m.lease for m in chosen if m.lease is not None]
            assert self.run(self.q.release([(c.id, c.token) for c in leases])) == [True] * len(
                leases
            )
            for m in chosen:
                m.status, m.attempts = JobStatus.QUEUED, m.attempts - 1

        @rule(data=st.data())
        def stale_calls_change_nothing(self, data: st.DataObject) -> None:
            stale = [(jid, m) for jid, m in self.jobs.items() if m.old_tokens or m.lease]
            if not stale:
                return
            jid, m = data.draw(st.sampled_from(stale))
            live = m.lease.token if m.status is JobStatus.PROCESSING and m.lease else None
            token = data.draw(
                st.sampled_from([*m.old_tokens, (m.lease.token if m.lease else 0) + 1])
            )
            if token == live:
                return
            assert self.run(self.q.complete([(jid, token, None)])) == [False]
            assert self.run(self.q.release([(jid, token)])) == [False]
            assert self.run(self.q.renew([(jid, token)])) == [False]
            assert self.run(self.q.fail(jid, token, "late")) is FailOutcome.STALE

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            if not self.jobs:
                return
            jid = data.draw(st.sampled_from(list(self.jobs)))  # insertion order: reproducible
            m = self.jobs[jid]
            ok = self.run(self.q.cancel(jid))
            assert ok == (m.status in WAITING)
            if ok:
                m.status = JobStatus.CANCELLED

        @rule(data=st.data())
        def retry_dead(self, data: st.DataObject) -> None:
            dead = [jid for jid, m in self.jobs.items() if m.status is JobStatus.DEAD]
            if not dead:
                return
            jid = data.draw(st.sampled_from(dead))
            assert self.run(self.q.retry_dead(jid)) == 1
            self.jobs[jid].status, self.jobs[jid].attempts = JobStatus.QUEUED, 0

        @invariant()
        def every_job_is_in_exactly_one_place(self) -> None:
            stats = self.run(self.q.stats())
            count = {s: 0 for s in JobStatus}
            for m in self.jobs.values():
                count[m.status] += 1
            assert stats.ready == count[JobStatus.QUEUED] + count[JobStatus.FAILED]
            assert stats.delayed == 0
            assert stats.in_flight == count[JobStatus.PROCESSING]
            assert stats.dead == count[JobStatus.DEAD]
            assert stats.completed_total == count[JobStatus.COMPLETED]
            assert stats.enqueued_total == len(self.jobs)

        @invariant()
        def records_match_the_model(self) -> None:
            ids = list(self.jobs)
            for jid, job in zip(ids, self.run(self.q.get_many(ids)), strict=True):
                m = self.jobs[jid]
                assert job is not None and job.id == jid
                expected = m.status
                if m.status is JobStatus.FAILED:  # due at once: failed, or queued once promoted
                    assert job.status in WAITING
                else:
                    assert job.status is expected
                assert job.attempts == m.attempts

    return QueueMachine


def test_random_operation_sequences_match_the_model(redis_url: str) -> None:
    machine = make_machine(redis_url)
    machine.TestCase.settings = settings(
        max_examples=60,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    machine.TestCase().runTest()
