"""The queue formats' key layouts, counting rules and notification settings (pure, no Redis)."""

from __future__ import annotations

import pytest
from jobqueue_operator.formats import (
    ARRIVAL_EVENTS,
    Format,
    FormatSpec,
    QueueFormatError,
    Size,
    celery_unacked,
    check_type,
    event_classes,
    notifications_cover,
    plan,
    tally,
    wake_keys,
    with_notifications,
)

NOW = 1_700_000_000.25  # seconds; the plans split due/future sorted sets at this time
NOW_S = "1700000000"
NOW_MS = "1700000000250"


def rows(spec: FormatSpec) -> list[tuple[str, str, str, str]]:
    return [(s.key, s.bucket, s.low, s.high) for s in plan(spec, NOW).sizes]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            FormatSpec(Format.LIST, ("jobs",), ("jobs:processing",)),
            [("jobs", "ready", "-inf", "+inf"), ("jobs:processing", "in_flight", "-inf", "+inf")],
        ),
        (
            FormatSpec(
                Format.KEYS, ("jobs:pending:high", "jobs:pending:low"), ("jobs:processing",)
            ),
            [
                ("jobs:pending:high", "ready", "-inf", "+inf"),
                ("jobs:pending:low", "ready", "-inf", "+inf"),
                ("jobs:processing", "in_flight", "-inf", "+inf"),
            ],
        ),
        (
            FormatSpec(Format.CELERY, ("celery",)),
            [
                ("celery", "ready", "-inf", "+inf"),
                ("celery\x06\x163", "ready", "-inf", "+inf"),
                ("celery\x06\x166", "ready", "-inf", "+inf"),
                ("celery\x06\x169", "ready", "-inf", "+inf"),
            ],
        ),
        (
            FormatSpec(Format.RQ, ("default",)),
            [
                ("rq:queue:default", "ready", "-inf", "+inf"),
                ("rq:scheduled:default", "ready", "-inf", NOW_S),
                ("rq:scheduled:default", "delayed", f"({NOW_S}", "+inf"),
                ("rq:wip:default", "in_flight", NOW_S, "+inf"),
                ("rq:failed:default", "dead", NOW_S, "+inf"),
            ],
        ),
        (
            FormatSpec(Format.DRAMATIQ, ("default",)),
            [
                ("dramatiq:default", "ready", "-inf", "+inf"),
                ("dramatiq:default.DQ", "delayed", "-inf", "+inf"),
                ("dramatiq:default.XQ", "dead", "-inf", "+inf"),
            ],
        ),
        (
            FormatSpec(Format.ARQ, ("arq:queue",)),
            [
                ("arq:queue", "ready", "-inf", NOW_MS),
                ("arq:queue", "delayed", f"({NOW_MS}", "+inf"),
            ],
        ),
        (
            FormatSpec(Format.BULLMQ, ("mail",), prefix="{bull}"),
            [
                ("{bull}:mail:wait", "ready", "-inf", "+inf"),
                ("{bull}:mail:paused", "ready", "-inf", "+inf"),
                ("{bull}:mail:prioritized", "ready", "-inf", "+inf"),
                ("{bull}:mail:delayed", "ready", "-inf", f"({(int(NOW_MS) + 1) * 0x1000}"),
                ("{bull}:mail:delayed", "delayed", str((int(NOW_MS) + 1) * 0x1000), "+inf"),
                ("{bull}:mail:active", "in_flight", "-inf", "+inf"),
                ("{bull}:mail:failed", "dead", "-inf", "+inf"),
            ],
        ),
    ],
    ids=lambda v: v.format.value if isinstance(v, FormatSpec) else "",
)
def test_each_format_reads_its_librarys_keys(
    spec: FormatSpec, expected: list[tuple[str, str, str, str]]
) -> None:
    assert rows(spec) == expected


def test_the_scans_name_the_librarys_shared_keys() -> None:
    celery = plan(FormatSpec(Format.CELERY, ("a", "b"), prefix="p:"), NOW)
    assert celery.unacked is not None
    assert (celery.unacked.key, celery.unacked.binding_prefix) == ("p:unacked", "p:_kombu.binding.")
    assert celery.unacked.queues == ("a", "b")
    arq = plan(FormatSpec(Format.ARQ, ("q1", "q2")), NOW)
    assert [(s.key, s.high, s.marker_prefix) for s in arq.in_progress] == [
        ("q1", NOW_MS, "arq:in-progress:"),
        ("q2", NOW_MS, "arq:in-progress:"),
    ]
    dramatiq = plan(FormatSpec(Format.DRAMATIQ, ("default", "mail")), NOW)
    assert dramatiq.worker_sets is not None
    assert dramatiq.worker_sets.registry == "dramatiq:__heartbeats__"
    assert dramatiq.worker_sets.prefix == "dramatiq:__acks__."
    assert dramatiq.worker_sets.suffixes == (
        (".default", "in_flight"),
        (".default.DQ", "delayed"),
        (".mail", "in_flight"),
        (".mail.DQ", "delayed"),
    )
    assert plan(FormatSpec(Format.LIST, ("jobs",)), NOW).unacked is None


@pytest.mark.parametrize(
    ("spec", "keys"),
    [
        (FormatSpec(Format.LIST, ("jobs", "tasks")), ["jobs", "tasks"]),
        (FormatSpec(Format.KEYS, ("a",), ("b",)), ["a"]),
        (
            FormatSpec(Format.CELERY, ("c",)),
            ["c", "c\x06\x163", "c\x06\x166", "c\x06\x169"],
        ),
        (FormatSpec(Format.RQ, ("default",)), ["rq:queue:default"]),
        (FormatSpec(Format.DRAMATIQ, ("default",)), ["dramatiq:default"]),
        (FormatSpec(Format.ARQ, ("arq:queue",)), ["arq:queue"]),
        (FormatSpec(Format.BULLMQ, ("m",)), ["bull:m:wait", "bull:m:paused", "bull:m:prioritized"]),
    ],
    ids=lambda v: v.format.value if isinstance(v, FormatSpec) else "",
)
def test_wake_keys_are_where_work_arrives(spec: FormatSpec, keys: list[str]) -> None:
    assert [k.key for k in wake_keys(spec)] == keys


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": Format.LIST, "names": ()}, "needs at least one queue name"),
        ({"format": Format.KEYS, "names": ("",)}, "must not be empty"),
        ({"format": Format.CELERY, "names": ("c",), "in_flight_names": ("x",)}, "list and keys"),
    ],
)
def test_a_bad_spec_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FormatSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fmt", "types", "found", "message"),
    [
        (Format.LIST, ("list",), "hash", "jobs is a hash, format list reads lists there"),
        (Format.ARQ, ("zset",), "list", "jobs is a list, format arq reads zsets there"),
        (Format.CELERY, ("hash",), "string", "jobs is a string, format celery reads hashes"),
        (
            Format.KEYS,
            ("list", "zset", "set", "hash", "stream"),
            "string",
            "reads hashes, lists, sets, streams or zsets there",
        ),
    ],
)
def test_a_key_of_another_type_is_a_format_error(
    fmt: Format, types: tuple[str, ...], found: str, message: str
) -> None:
    size = Size("jobs", "ready", frozenset(types))  # type: ignore[arg-type]
    with pytest.raises(QueueFormatError, match=message):
        check_type(fmt, size, found)


@pytest.mark.parametrize("found", ["none", "list"])
def test_a_missing_key_or_the_right_type_is_fine(found: str) -> None:
    check_type(Format.LIST, Size("jobs", "ready", frozenset(("list",))), found)


def test_tally_adds_each_bucket_and_checks_every_type() -> None:
    p = plan(FormatSpec(Format.BULLMQ, ("m",)), NOW)
    answers = [
        ("list", 5),
        ("none", 0),
        ("zset", 2),
        ("zset", 1),
        ("zset", 3),
        ("list", 4),
        ("zset", 7),
    ]
    counts = tally(p, answers)
    assert (counts.ready, counts.in_flight, counts.delayed, counts.dead) == (8, 4, 3, 7)
    with pytest.raises(QueueFormatError, match="bull:m:active is a zset"):
        tally(p, [*answers[:5], ("zset", 4), answers[6]])


def test_tally_arq_running_jobs_stay_in_the_queue_so_they_leave_ready() -> None:
    p = plan(FormatSpec(Format.ARQ, ("arq:queue",)), NOW)
    counts = tally(p, [("zset", 10), ("zset", 3)], in_progress=4)
    assert (counts.ready, counts.in_flight, counts.delayed) == (6, 4, 3)


def test_tally_dramatiq_ack_sets_split_into_in_flight_and_delayed() -> None:
    p = plan(FormatSpec(Format.DRAMATIQ, ("default",)), NOW)
    counts = tally(p, [("list", 6), ("list", 1), ("zset", 2)], worker_sets=[4, 1])
    assert (counts.ready, counts.in_flight, counts.delayed, counts.dead) == (6, 4, 2, 2)


SEP = "\x06\x16"


@pytest.mark.parametrize(
    ("routes", "bindings", "expected"),
    [
        ({("celery", "celery"): 3}, {"celery": [f"celery{SEP}{SEP}celery"]}, 3),  # direct
        ({("", "celery"): 2}, {}, 2),  # the anonymous exchange: routing key = queue
        ({("", "other"): 2}, {}, 0),
        ({("celery", "celery"): 3}, {"celery": [f"celery{SEP}{SEP}other"]}, 0),  # bound elsewhere
        ({("ex", "key"): 1}, {"ex": [f"other{SEP}{SEP}celery"]}, 0),  # another routing key
        ({("fan", "x"): 4}, {"fan": [f"{SEP}{SEP}celery"]}, 4),  # fanout-style empty key
        (
            {("celery", "celery"): 1, ("mail", "mail"): 5},
            {"celery": [f"celery{SEP}{SEP}celery"]},
            1,
        ),
    ],
)
def test_celery_unacked_messages_are_attributed_like_kombus_restore(
    routes: dict[tuple[str, str], int], bindings: dict[str, list[str]], expected: int
) -> None:
    assert celery_unacked(["celery"], routes, bindings, scanned=10, total=10) == expected


def test_celery_unacked_past_the_scan_bound_is_extrapolated() -> None:
    routes = {("", "celery"): 30, ("", "other"): 70}
    assert celery_unacked(["celery"], routes, {}, scanned=100, total=1000) == 300


@pytest.mark.parametrize(
    ("config", "needed", "covered"),
    [
        ("", "Kgl", False),
        ("Kl", "Kgl", True),  # g is optional
        ("El", "Kgl", False),  # keyevent channels only: we listen on keyspace channels
        ("KA", "Kglz", True),  # A = all classes
        ("AK", "Kgh", True),
        ("Kz", "Kglz", False),
        ("Klzsht", "Kglhstz", True),
    ],
)
def test_notifications_cover(config: str, needed: str, covered: bool) -> None:
    assert notifications_cover(config, needed) is covered


@pytest.mark.parametrize(
    ("config", "needed", "result"),
    [
        ("", "Kgl", "Kgl"),
        ("Ex", "Kgz", "ExKgz"),  # what was enabled stays
        ("KA", "Kgl", "KA"),
        ("Kl", "Kglz", "Klgz"),
    ],
)
def test_with_notifications_adds_only_what_is_missing(
    config: str, needed: str, result: str
) -> None:
    assert with_notifications(config, needed) == result


def test_event_classes_per_type() -> None:
    assert event_classes(["list"]) == "Kgl"
    assert event_classes(["zset", "hash", "list"]) == "Kghlz"
    assert event_classes(["list", "zset", "set", "hash", "stream"]) == "Kghlstz"


@pytest.mark.parametrize("event", ["lpush", "rpush", "zadd", "hset", "sadd", "xadd", "rename_to"])
def test_arrivals_wake(event: str) -> None:
    assert event in ARRIVAL_EVENTS


@pytest.mark.parametrize(
    "event", ["lpop", "rpop", "lrem", "zrem", "hdel", "del", "expired", "ltrim"]
)
def test_removals_do_not_wake(event: str) -> None:
    assert event not in ARRIVAL_EVENTS
