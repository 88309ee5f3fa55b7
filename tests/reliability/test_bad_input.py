"""Bad input at a real API process: each refused with a 4xx (never a 5xx, never a hang), and
the queue it fronts is left exactly as it was.

The queue is seeded first (queued jobs of every priority, delayed jobs, dead jobs). The table
of hand-made requests (oversized, malformed, deeply nested, not UTF-8, wrong content type,
missing or wrong token, huge batches, bad fields, bad paths, broken HTTP) is checked against a
full snapshot of every Redis key of the queue, before and after each request. Then
schemathesis, from the API's own OpenAPI document, with the checks of
tests/integration/test_api_schema.py (tests/support/openapi.py) and a larger budget (15 cases
per operation in `make test`, 300 in `make chaos`); after every case the seeded jobs must be
unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings
from schemathesis import Case

from jobqueue import JobSpec, Priority, Queue
from tests.cluster.redis_server import RedisServer
from tests.reliability.support import Api, Figures, snapshot_keys, start_api
from tests.support.openapi import CHECKS, api_schema, openapi_document

SECTION = "Bad input: the HTTP API"
TOKEN = "bad-input-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
MIB = 1024 * 1024
FAST_EXAMPLES, FULL_EXAMPLES = 15, 300


@dataclass
class Seeded:
    api: Api
    redis_url: str
    queue_name: str
    queued: list[str] = field(default_factory=list)  # ready or delayed, never touched by tests
    dead: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def seeded(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    name = f"chaos-input/{uuid.uuid4().hex[:8]}"

    async def seed() -> tuple[list[str], list[str]]:
        client = aioredis.Redis.from_url(redis_server.url)
        q = Queue(client, name)
        doomed = [
            JobSpec("doomed", {"n": i}, priority=Priority.HIGH, max_retries=0) for i in range(5)
        ]
        await q.enqueue_many(doomed)
        for job in await q.claim("seeder", 5):
            await q.fail(job.id, job.token, "seeded dead job", retry=False)
        specs = [JobSpec("email", {"to": f"u{i}@example.com", "i": i}) for i in range(20)]
        specs += [JobSpec("report", [1, 2.5, None, "x"], priority=Priority.HIGH) for _ in range(5)]
        specs += [JobSpec("cleanup", "low", priority=Priority.LOW) for _ in range(5)]
        specs += [JobSpec("later", {"d": True}, delay=3600) for _ in range(5)]
        specs += [JobSpec("keyed", None, idempotency_key=f"k{i}") for i in range(3)]
        queued = [r.job_id for r in await q.enqueue_many(specs)]
        dead = [j.id for j in await q.dead_jobs(0, 10)]
        await q.aclose()
        await client.aclose()
        return queued, dead

    queued, dead = asyncio.run(seed())
    api = start_api(redis_server.url, name, tmp_path_factory.mktemp("bad-input"), API_TOKEN=TOKEN)
    try:
        yield Seeded(api, redis_server.url, name, queued, dead)
        assert "Traceback" not in api.logs(), api.tail()
    finally:
        api.kill()
        r = redis.Redis.from_url(redis_server.url)
        for key in Queue(r, name).keys.all_keys:  # type: ignore[arg-type]
            r.delete(key)
        r.close()


# ---------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Bad:
    id: str
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: {**AUTH, **JSON})
    expect: frozenset[int] = frozenset()  # empty: any 4xx
    chunked: bool = False


def job(**fields: Any) -> bytes:
    return json.dumps({"type": "email", **fields}).encode()


def nested(depth: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return b'{"type":"a","payload":' + open_ * depth + close * depth + b"}"


def no_auth(**extra: str) -> dict[str, str]:
    return {**JSON, **extra}


S413 = frozenset({413})
S422 = frozenset({422})
S401 = frozenset({401})
S415 = frozenset({415})
S400_422 = frozenset({400, 422})
S404_422 = frozenset({404, 422})

BIG_STRING = b"x" * (2 * MIB)
# fmt: off
TABLE: tuple[Bad, ...] = (
    # -- size
    Bad("jobs-2MiB", "POST", "/jobs", job(payload=BIG_STRING.decode()), expect=S413),
    Bad(
        "jobs-2MiB-chunked",
        "POST",
        "/jobs",
        job(payload=BIG_STRING.decode()),
        expect=S413,
        chunked=True,
    ),
    Bad(
        "enqueue-2MiB",
        "POST",
        "/enqueue",
        json.dumps({"payload": "x" * 2 * MIB}).encode(),
        expect=S413,
    ),
    Bad(
        "tasks-2MiB",
        "POST",
        "/tasks?task_type=email",
        json.dumps("y" * 2 * MIB).encode(),
        expect=S413,
    ),
    Bad(
        "batch-17MiB",
        "POST",
        "/jobs:batch",
        json.dumps({"jobs": [{"type": "a", "payload": "z" * MIB} for _ in range(17)]}).encode(),
        expect=S413,
    ),
    Bad(
        "batch-one-payload-over-1MiB",
        "POST",
        "/jobs:batch",
        json.dumps({"jobs": [{"type": "a"}, {"type": "a", "payload": "p" * (MIB + 10)}]}).encode(),
        expect=S413,
    ),
    Bad(
        "batch-1001-jobs",
        "POST",
        "/jobs:batch",
        json.dumps({"jobs": [{"type": "a"}] * 1001}).encode(),
        expect=S422,
    ),
    Bad(
        "batch-100k-jobs",
        "POST",
        "/jobs:batch",
        json.dumps({"jobs": [{"type": "a"}] * 100_000}).encode(),
        expect=S422,
    ),
    Bad("batch-empty", "POST", "/jobs:batch", b'{"jobs":[]}', expect=S422),
    Bad("batch-not-a-list", "POST", "/jobs:batch", b'{"jobs":{"type":"a"}}', expect=S422),
    Bad(
        "batch-one-bad-job",
        "POST",
        "/jobs:batch",
        json.dumps({"jobs": [{"type": "a"}] * 10 + [{"type": ""}]}).encode(),
        expect=S422,
    ),
    # -- malformed JSON
    Bad("truncated", "POST", "/jobs", b'{"type": "email"', expect=S400_422),
    Bad("trailing-garbage", "POST", "/jobs", b'{"type":"email"} trailing', expect=S400_422),
    Bad("single-quotes", "POST", "/jobs", b"{'type': 'email'}", expect=S400_422),
    Bad("nan-payload", "POST", "/jobs", b'{"type":"email","payload":NaN}', expect=S422),
    Bad(
        "infinity-payload", "POST", "/jobs", b'{"type":"email","payload":[Infinity]}', expect=S422
    ),
    Bad(
        "1e400-payload", "POST", "/jobs", b'{"type":"email","payload":{"x":1e400}}', expect=S422
    ),
    Bad("1e400-delay", "POST", "/jobs", b'{"type":"email","delay_seconds":1e400}', expect=S422),
    Bad(
        "nan-in-batch", "POST", "/jobs:batch", b'{"jobs":[{"type":"a","payload":NaN}]}', expect=S422
    ),
    Bad("nan-task-body", "POST", "/tasks?task_type=a", b"NaN", expect=S422),
    Bad("empty-body-jobs", "POST", "/jobs", b"", expect=S400_422),
    Bad("null-body", "POST", "/jobs", b"null", expect=S422),
    Bad("array-body", "POST", "/jobs", b'[{"type":"email"}]', expect=S422),
    Bad("number-body", "POST", "/jobs", b"42", expect=S422),
    Bad("utf8-bom", "POST", "/jobs", b'\xef\xbb\xbf{"type":"email"}', expect=S400_422),
    Bad("comment", "POST", "/jobs", b'{"type":"email" /* hi */}', expect=S400_422),
    # -- nesting
    Bad("nested-65", "POST", "/jobs", nested(65), expect=S422),
    Bad("nested-10k", "POST", "/jobs", nested(10_000), expect=S400_422),
    Bad("nested-500k", "POST", "/jobs", nested(500_000), expect=S400_422),
    Bad(
        "nested-objects-50k",
        "POST",
        "/jobs",
        nested(50_000, b'{"a":', b"}").replace(b'{"a":}', b'{"a":1}'),
        expect=S400_422,
    ),
    Bad(
        "nested-batch",
        "POST",
        "/jobs:batch",
        b'{"jobs":[{"type":"a","payload":' + b"[" * 100 + b"]" * 100 + b"}]}",
        expect=S422,
    ),
    # -- encoding
    Bad(
        "latin-1",
        "POST",
        "/jobs",
        '{"type":"email","payload":"café"}'.encode("latin-1"),
        expect=S400_422,
    ),
    Bad(
        "invalid-utf8",
        "POST",
        "/jobs",
        b'{"type":"email","payload":"\xff\xfe\xfd"}',
        expect=S400_422,
    ),
    Bad("utf-16", "POST", "/jobs", '{"type":"email"}'.encode("utf-16"), expect=S400_422),
    Bad(
        "lone-surrogate", "POST", "/jobs", b'{"type":"email","payload":"\\ud800"}', expect=S400_422
    ),
    Bad("nul-in-type", "POST", "/jobs", b'{"type":"em\\u0000ail"}', expect=S422),
    Bad("newline-in-type", "POST", "/jobs", b'{"type":"em\\nail"}', expect=S422),
    # -- content type
    Bad(
        "text-plain", "POST", "/jobs", job(), {**AUTH, "Content-Type": "text/plain"}, expect=S415
    ),
    Bad(
        "form",
        "POST",
        "/jobs",
        b"type=email",
        {**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        expect=S415,
    ),
    Bad(
        "multipart",
        "POST",
        "/jobs",
        b"--b\r\n\r\nx\r\n--b--",
        {**AUTH, "Content-Type": "multipart/form-data; boundary=b"},
        expect=S415,
    ),
    Bad(
        "xml",
        "POST",
        "/jobs",
        b"<job><type>email</type></job>",
        {**AUTH, "Content-Type": "application/xml"},
        expect=S415,
    ),
    Bad(
        "octet-stream-batch",
        "POST",
        "/jobs:batch",
        b'{"jobs":[{"type":"a"}]}',
        {**AUTH, "Content-Type": "application/octet-stream"},
        expect=S415,
    ),
    Bad(
        "text-task",
        "POST",
        "/tasks?task_type=a",
        b"hello",
        {**AUTH, "Content-Type": "text/plain"},
        expect=S415,
    ),
    # -- auth
    Bad("no-token-jobs", "POST", "/jobs", job(), no_auth(), expect=S401),
    Bad(
        "no-token-batch", "POST", "/jobs:batch", b'{"jobs":[{"type":"a"}]}', no_auth(), expect=S401
    ),
    Bad("no-token-enqueue", "POST", "/enqueue", None, no_auth(), expect=S401),
    Bad("no-token-tasks", "POST", "/tasks?task_type=a", b"1", no_auth(), expect=S401),
    Bad("no-token-dlq-purge", "DELETE", "/dlq", None, no_auth(), expect=S401),
    Bad("no-token-dlq-retry-all", "POST", "/dlq:retry-all", None, no_auth(), expect=S401),
    Bad("no-token-stats", "GET", "/stats", None, no_auth(), expect=S401),
    Bad(
        "wrong-token", "POST", "/jobs", job(), no_auth(Authorization="Bearer nope"), expect=S401
    ),
    Bad(
        "token-prefix",
        "POST",
        "/jobs",
        job(),
        no_auth(Authorization=f"Bearer {TOKEN[:-1]}"),
        expect=S401,
    ),
    Bad(
        "token-plus-one",
        "POST",
        "/jobs",
        job(),
        no_auth(Authorization=f"Bearer {TOKEN}x"),
        expect=S401,
    ),
    Bad(
        "basic-scheme", "DELETE", "/dlq", None, no_auth(Authorization=f"Basic {TOKEN}"), expect=S401
    ),
    Bad(
        "empty-bearer",
        "POST",
        "/dlq:retry-all",
        None,
        no_auth(Authorization="Bearer"),
        expect=S401,
    ),
    Bad("token-in-query", "DELETE", f"/dlq?token={TOKEN}", None, no_auth(), expect=S401),
    Bad(
        "huge-token", "POST", "/jobs", job(), no_auth(Authorization="Bearer " + "t" * 60_000)
    ),
    # -- fields
    Bad("unknown-field", "POST", "/jobs", job(color="red"), expect=S422),
    Bad("missing-type", "POST", "/jobs", b'{"payload":1}', expect=S422),
    Bad("empty-type", "POST", "/jobs", b'{"type":""}', expect=S422),
    Bad("long-type", "POST", "/jobs", json.dumps({"type": "t" * 201}).encode(), expect=S422),
    Bad("int-type", "POST", "/jobs", b'{"type":5}', expect=S422),
    Bad("priority", "POST", "/jobs", job(priority="urgent"), expect=S422),
    Bad("negative-delay", "POST", "/jobs", job(delay_seconds=-1), expect=S422),
    Bad("delay-over-a-year", "POST", "/jobs", job(delay_seconds=10**9), expect=S422),
    Bad("retries-101", "POST", "/jobs", job(max_retries=101), expect=S422),
    Bad("retries-negative", "POST", "/jobs", job(max_retries=-1), expect=S422),
    Bad("retries-bool", "POST", "/jobs", job(max_retries=True), expect=S422),
    Bad("retries-float", "POST", "/jobs", job(max_retries=2.5), expect=S422),
    Bad("long-idempotency-key", "POST", "/jobs", job(idempotency_key="k" * 201), expect=S422),
    Bad("empty-idempotency-key", "POST", "/jobs", job(idempotency_key=""), expect=S422),
    Bad("int-over-64-bits", "POST", "/jobs", job(payload=2**64), expect=S422),
    Bad("int-under-64-bits", "POST", "/jobs", job(payload=-(2**63) - 1), expect=S422),
    Bad("enqueue-unknown-field", "POST", "/enqueue", b'{"tipe":"a"}', expect=S422),
    # -- paths and queries
    Bad("job-id-10k", "GET", "/jobs/" + "a" * 10_000, None, AUTH, expect=S404_422),
    Bad(
        "job-id-traversal", "GET", "/jobs/..%2F..%2Fetc%2Fpasswd", None, AUTH, expect=S404_422
    ),
    Bad("job-id-braces", "GET", "/jobs/%7Bx%7D", None, AUTH, expect=S404_422),
    Bad("cancel-unknown", "DELETE", f"/jobs/{uuid.uuid4().hex}", None, AUTH, expect=S404_422),
    Bad("cancel-bad-id", "DELETE", "/jobs/%20", None, AUTH, expect=S404_422),
    Bad(
        "retry-unknown-dead", "POST", f"/dlq/{uuid.uuid4().hex}/retry", None, AUTH, expect=S404_422
    ),
    Bad("tasks-no-type", "POST", "/tasks", b"1", expect=S422),
    Bad("tasks-empty-type", "POST", "/tasks?task_type=", b"1", expect=S422),
    Bad("tasks-control-char-type", "POST", "/tasks?task_type=%01x", b"1", expect=S422),
    Bad("dlq-limit-huge", "GET", "/dlq?limit=100000", None, AUTH, expect=S422),
    Bad("dlq-offset-negative", "GET", "/dlq?offset=-1", None, AUTH, expect=S422),
    Bad("dlq-limit-text", "GET", "/dlq?limit=ten", None, AUTH, expect=S422),
    Bad("put-jobs", "PUT", "/jobs", job(), expect=frozenset({405})),
    Bad("patch-job", "PATCH", f"/jobs/{uuid.uuid4().hex}", job(), expect=frozenset({405})),
)

# fmt: on

# Broken HTTP, sent on a raw socket: a 4xx or a closed connection, never a 5xx or a hang.
# fmt: off
RAW: tuple[tuple[str, bytes], ...] = (
    ("content-length-not-a-number",
     b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}"),
    ("content-length-negative",
     b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}"),
    ("content-length-huge",
     b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{}"),
    ("two-content-lengths",
     b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}"),
    ("bad-chunk-size",
     b"POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
    ("garbage-request-line", b"\x00\x01\x02 GARBAGE\r\n\r\n"),
    ("no-http-version", b"GET /stats\r\n\r\n"),
    ("http-version-9.9", b"GET /stats HTTP/9.9\r\nHost: x\r\n\r\n"),
    ("lf-only-line-ends", b"POST /jobs HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}"),
    ("obsolete-header-folding", b"GET /stats HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"),
    ("header-without-colon", b"GET /stats HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n"),
    ("huge-header", b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * 200_000 + b"\r\n\r\n"),
)
# fmt: on


def send(api: Api, bad: Bad) -> int:
    content: Any = bad.body
    if bad.chunked and bad.body is not None:
        data = bad.body
        content = (data[i : i + 65536] for i in range(0, len(data), 65536))
    r = httpx.request(
        bad.method, api.url + bad.path, content=content, headers=bad.headers, timeout=30
    )
    return r.status_code


def send_raw(api: Api, data: bytes) -> int:
    """The status of the answer, 0 when the server closed the connection without one."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=15) as s:
        with contextlib.suppress(OSError):  # the server may close before reading it all
            s.sendall(data)
        s.settimeout(15)
        try:
            head = s.recv(64)
        except ConnectionResetError:
            return 0
    if not head:
        return 0
    return int(head.split(b" ", 2)[1])


def test_every_bad_request_is_refused_with_a_4xx_and_changes_nothing(
    seeded: Seeded, figures: Figures
) -> None:
    loop = asyncio.new_event_loop()
    client = aioredis.Redis.from_url(seeded.redis_url)
    queue = Queue(client, seeded.queue_name)
    outcomes: dict[str, int] = {}
    changed: list[str] = []
    try:
        before = loop.run_until_complete(snapshot_keys(client, queue))
        assert before, "the seed wrote nothing"
        requests = [(b.id, lambda b=b: send(seeded.api, b)) for b in TABLE]
        requests += [(f"raw:{n}", lambda d=d: send_raw(seeded.api, d)) for n, d in RAW]
        for name, request in requests:
            outcomes[name] = request()
            after = loop.run_until_complete(snapshot_keys(client, queue))
            if after != before:
                changed.append(name)
                before = after
        # a client that never finishes its request holds only its own connection
        with socket.create_connection(("127.0.0.1", seeded.api.port), timeout=15) as slow:
            slow.sendall(b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            served = httpx.get(seeded.api.url + "/healthz", timeout=5).status_code
        healthy = httpx.get(seeded.api.url + "/readyz", timeout=5).status_code
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
    wrong = {
        b.id: outcomes[b.id]
        for b in TABLE
        if not (400 <= outcomes[b.id] < 500) or (b.expect and outcomes[b.id] not in b.expect)
    }
    raw_wrong = {k: v for k, v in outcomes.items() if k.startswith("raw:") and v >= 500}
    figures.set(
        inputs_tried=len(outcomes),
        rejected_4xx=sum(1 for v in outcomes.values() if 400 <= v < 500),
        closed_without_answer=sum(1 for v in outcomes.values() if v == 0),
        server_errors=sum(1 for v in outcomes.values() if v >= 500),
        accepted=sum(1 for v in outcomes.values() if 200 <= v < 300),
        queue_changed_by=len(changed),
        statuses=dict(sorted(_histogram(outcomes).items())),
    )
    assert not wrong, wrong
    assert not raw_wrong, raw_wrong
    assert not changed, f"these requests changed the queue: {changed}"
    assert served == healthy == 200
    assert "Traceback" not in seeded.api.logs(), seeded.api.tail()


def _histogram(outcomes: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in outcomes.values():
        out[str(v)] = out.get(str(v), 0) + 1
    return out


# ---------------------------------------------------------------------------------------------
# schemathesis, a larger budget than tests/integration/test_api_schema.py

OPENAPI = openapi_document(TOKEN)
schema = api_schema(OPENAPI)

SCHEMATHESIS_CASES: dict[str, int] = {}


def seeded_state(seeded: Seeded) -> Any:
    """The seeded queued jobs as Redis holds them: every column, places in line, due times."""
    r = redis.Redis.from_url(seeded.redis_url)
    try:
        k = Queue(r, seeded.queue_name).keys  # type: ignore[arg-type]  # keys only
        ids = seeded.queued
        columns = [r.hmget(col, ids) for col in k.columns]
        ours = {i.encode() for i in ids}
        order = [[i for i in r.lrange(key, 0, -1) if i in ours] for key in k.ready]
        delayed = [r.zscore(k.delayed, i) for i in ids]
        return columns, order, delayed
    finally:
        r.close()


def _run_case(case: Case[Any], seeded: Seeded, before: Any) -> None:
    SCHEMATHESIS_CASES[case.operation.label] = SCHEMATHESIS_CASES.get(case.operation.label, 0) + 1
    case.call_and_validate(base_url=seeded.api.url, headers=AUTH, checks=CHECKS)
    assert seeded_state(seeded) == before, "a generated request changed a queued job"


@pytest.fixture(scope="module")
def before(seeded: Seeded) -> Any:
    return seeded_state(seeded)


@pytest.mark.chaos_fast
@schema.parametrize()
@settings(max_examples=FAST_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_small_budget(case: Case[Any], seeded: Seeded, before: Any) -> None:
    _run_case(case, seeded, before)


@pytest.mark.chaos_full
@schema.parametrize()
@settings(max_examples=FULL_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_large_budget(case: Case[Any], seeded: Seeded, before: Any) -> None:
    _run_case(case, seeded, before)


def test_schemathesis_totals(seeded: Seeded, before: Any, figures: Figures) -> None:
    """Runs after the schemathesis tests of this module: records how many cases ran."""
    figures.set(
        operations=len(SCHEMATHESIS_CASES),
        generated_cases=sum(SCHEMATHESIS_CASES.values()),
        seeded_jobs_unchanged=seeded_state(seeded) == before,
    )
    assert SCHEMATHESIS_CASES, "no schemathesis case ran"
    assert seeded_state(seeded) == before
