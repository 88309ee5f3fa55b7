"""Pure units of spec.schedules: fire-time math (catch-up once, window bound, DST), the
idempotency key, the spec's validation and status.schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jobqueue_operator import schedules
from jobqueue_operator.kubetypes import JobQueueRef
from jobqueue_operator.redisops import NOT_CHECKED
from jobqueue_operator.spec import (
    MSG_CRON,
    MSG_SCHEDULE_NAMES_UNIQUE,
    MSG_TIME_ZONE,
    SpecError,
    parse_spec,
)
from jobqueue_operator.status import Fired, desired_status, schedule_status

UTC_ZONE = schedules.zone("UTC")
BERLIN = schedules.zone("Europe/Berlin")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expr: str, tz: Any, start: datetime, count: int) -> list[str]:
    out, t = [], start
    for _ in range(count):
        t = schedules.next_fire(expr, tz, t)
        out.append(schedules.isoformat(t))
    return out


def test_next_fire_is_strictly_after_and_in_utc() -> None:
    assert schedules.next_fire("* * * * *", UTC_ZONE, at("2026-01-01T10:00:00")) == at(
        "2026-01-01T10:01:00"
    )
    assert schedules.next_fire("*/15 * * * *", UTC_ZONE, at("2026-01-01T10:07:30")) == at(
        "2026-01-01T10:15:00"
    )
    assert fires("0 9 * * mon", UTC_ZONE, at("2026-11-24T12:00:00"), 2) == [
        "2026-11-30T09:00:00Z",
        "2026-12-07T09:00:00Z",
    ]


def test_a_fire_time_due_now_is_returned_once() -> None:
    now = at("2026-01-01T10:00:00.400000")
    due = schedules.due_fire("* * * * *", UTC_ZONE, now, window=300, last_fire=None)
    assert due == at("2026-01-01T10:00:00")
    again = schedules.due_fire("* * * * *", UTC_ZONE, now, window=300, last_fire=due)
    assert again is None


def test_missed_fire_times_are_caught_up_once_the_latest_only() -> None:
    # the operator was away from 10:00:30 to 10:04:10: four fire times missed
    last = at("2026-01-01T10:00:00")
    now = at("2026-01-01T10:04:10")
    due = schedules.due_fire("* * * * *", UTC_ZONE, now, window=300, last_fire=last)
    assert due == at("2026-01-01T10:04:00")  # one job, for the latest; 10:01..10:03 dropped
    assert schedules.due_fire("* * * * *", UTC_ZONE, now, window=300, last_fire=due) is None


def test_a_miss_older_than_the_window_is_skipped() -> None:
    # hourly; the 10:00 fire was missed and it is 10:06: older than 300 s, so no catch-up
    last = at("2026-01-01T09:00:00")
    due = schedules.due_fire(
        "0 * * * *", UTC_ZONE, at("2026-01-01T10:06:00"), window=300, last_fire=last
    )
    assert due is None
    # within the window it is caught up
    due = schedules.due_fire(
        "0 * * * *", UTC_ZONE, at("2026-01-01T10:04:59"), window=300, last_fire=last
    )
    assert due == at("2026-01-01T10:00:00")
    # a zero window only ever fires right at the fire time
    assert (
        schedules.due_fire(
            "0 * * * *", UTC_ZONE, at("2026-01-01T10:00:01"), window=0, last_fire=last
        )
        is None
    )


def test_nothing_before_the_schedule_existed() -> None:
    created = at("2026-01-01T10:00:30")
    now = at("2026-01-01T10:00:45")
    kw: dict[str, Any] = {"window": 300, "last_fire": None}
    assert schedules.due_fire("* * * * *", UTC_ZONE, now, earliest=created, **kw) is None
    assert schedules.due_fire(
        "* * * * *", UTC_ZONE, at("2026-01-01T10:01:00"), earliest=created, **kw
    ) == at("2026-01-01T10:01:00")


def test_a_daily_time_follows_the_time_zone_across_dst() -> None:
    # 09:00 in Berlin is 08:00Z in winter (CET) and 07:00Z in summer (CEST)
    assert fires("0 9 * * *", BERLIN, at("2026-03-27T12:00:00"), 3) == [
        "2026-03-28T08:00:00Z",
        "2026-03-29T07:00:00Z",
        "2026-03-30T07:00:00Z",
    ]


def test_a_time_skipped_by_spring_forward_fires_once_at_the_jump() -> None:
    # 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that day
    assert fires("30 2 * * *", BERLIN, at("2026-03-28T12:00:00"), 2) == [
        "2026-03-29T01:00:00Z",  # 03:00 CEST, the jump
        "2026-03-30T00:30:00Z",  # 02:30 CEST
    ]


def test_a_time_repeated_by_fall_back_fires_once() -> None:
    # 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 happens twice, fires once
    assert fires("30 2 * * *", BERLIN, at("2026-10-24T12:00:00"), 2) == [
        "2026-10-25T00:30:00Z",  # 02:30 CEST (the first one)
        "2026-10-26T01:30:00Z",  # next day, 02:30 CET
    ]
    hourly = fires("0 * * * *", BERLIN, at("2026-10-24T22:30:00"), 4)
    assert hourly == sorted(set(hourly))  # strictly increasing, no duplicate instant
    assert hourly == [
        "2026-10-24T23:00:00Z",
        "2026-10-25T00:00:00Z",  # 02:00 CEST
        "2026-10-25T02:00:00Z",  # 03:00 CET (02:00 CET is a repeat of a fired wall time)
        "2026-10-25T03:00:00Z",
    ]
    # and a catch-up across the fall-back hour does not fire the repeated 02:30
    last = at("2026-10-25T00:30:00")
    assert (
        schedules.due_fire(
            "30 2 * * *", BERLIN, at("2026-10-25T01:31:00"), window=300, last_fire=last
        )
        is None
    )


def test_the_idempotency_key_names_the_schedule_and_the_fire_time() -> None:
    fire = datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)
    assert schedules.idempotency_key("nightly", fire) == "schedule:nightly:2026-03-29T01:00:00Z"
    assert schedules.parse_time("2026-03-29T01:00:00Z") == at("2026-03-29T01:00:00")
    assert schedules.parse_time("garbage") is None


@pytest.mark.parametrize(
    "cron", ["* * * *", "* * * * * *", "61 * * * *", "0 24 * * *", "@hourly", "0 0 31 2 *"]
)
def test_a_bad_cron_is_refused_with_a_readable_message(cron: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_spec(
            {
                "redis": {"url": "redis://r:6379"},
                "schedules": [{"name": "a", "cron": cron, "type": "t"}],
            }
        )
    assert MSG_CRON in str(exc.value)
    assert "spec.schedules.0.cron" in str(exc.value)


def test_a_bad_time_zone_and_duplicate_names_are_refused() -> None:
    base = {"name": "a", "cron": "* * * * *", "type": "t"}
    with pytest.raises(SpecError, match="timeZone must be an IANA"):
        parse_spec(
            {"redis": {"url": "redis://r:6379"}, "schedules": [base | {"timeZone": "Mars/Base"}]}
        )
    assert MSG_TIME_ZONE.startswith("timeZone")
    with pytest.raises(SpecError) as exc:
        parse_spec({"redis": {"url": "redis://r:6379"}, "schedules": [base, base]})
    assert MSG_SCHEDULE_NAMES_UNIQUE in str(exc.value)


def test_a_scheduled_type_is_routed_to_its_pool() -> None:
    spec = parse_spec(
        {
            "redis": {"url": "redis://r:6379"},
            "workers": [{"name": "mail", "jobTypes": ["email"]}],
            "schedules": [
                {"name": "digest", "cron": "0 8 * * *", "type": "email", "payload": {"to": "all"}},
                {"name": "cleanup", "cron": "0 3 * * *", "type": "cleanup"},
            ],
        }
    )
    assert spec.schedules[0].time_zone == "UTC"
    assert spec.schedules[0].starting_deadline_seconds == 300
    assert spec.queue_of("shop", "q", "email") == "shop/q/mail"
    assert spec.queue_of("shop", "q", "cleanup") == "shop/q"


def test_status_schedules_reports_last_and_next_fire() -> None:
    spec = parse_spec(
        {
            "redis": {"url": "redis://r:6379"},
            "schedules": [
                {"name": "a", "cron": "*/5 * * * *", "type": "t"},
                {"name": "b", "cron": "0 9 * * *", "type": "t", "timeZone": "Europe/Berlin"},
                {"name": "c", "cron": "0 9 * * *", "type": "t", "suspend": True},
            ],
        }
    )
    now = at("2026-01-01T10:02:00")
    got = schedule_status(spec, {"a": Fired(at("2026-01-01T10:00:00"), "j1")}, now)
    assert got == [
        {
            "name": "a",
            "lastFireTime": "2026-01-01T10:00:00Z",
            "lastJobId": "j1",
            "nextFireTime": "2026-01-01T10:05:00Z",
        },
        {"name": "b", "nextFireTime": "2026-01-02T08:00:00Z"},
        {"name": "c"},
    ]
    assert now - timedelta(minutes=2) == at("2026-01-01T10:00:00")


def test_the_reconcile_clears_status_schedules_only_when_there_are_none() -> None:
    ref = JobQueueRef("shop", "q", "uid-1", 1)
    kw: dict[str, Any] = {"problem": None, "redis": NOT_CHECKED, "api": None, "workers": None}
    none = desired_status(ref, parse_spec({"redis": {"url": "redis://r:6379"}}), **kw)
    assert none.fields["schedules"] is None
    some = parse_spec(
        {
            "redis": {"url": "redis://r:6379"},
            "schedules": [{"name": "a", "cron": "* * * * *", "type": "t"}],
        }
    )
    assert "schedules" not in desired_status(ref, some, **kw).fields  # the daemon's
