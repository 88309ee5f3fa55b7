"""`python -m jobqueue_api` as a real process: env, exit codes, logs, Redis outages, raw HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.cluster.redis_server import RedisServer
from tests.support.services import ApiProcess


@pytest.fixture
def password_redis() -> Iterator[RedisServer]:
    server = RedisServer(password="pw-must-not-leak-7Q").start()
    yield server
    server.cleanup()


def run_to_exit(env: dict[str, str], timeout: float = 30.0) -> tuple[int, str]:
    api = ApiProcess(env)
    try:
        proc = api.spawn()
        proc.wait(timeout=timeout)
        return proc.returncode, api.logs()
    finally:
        api.cleanup()


def test_serves_with_the_alias_url_and_logs_json_without_secrets(
    password_redis: RedisServer, queue_name: str
) -> None:
    api = ApiProcess(
        {
            "TASK_QUEUE_URL": password_redis.url,
            "QUEUE_NAME": queue_name,
            "API_TOKEN": "token-must-not-leak-3Z",
            "ACCESS_LOG": "true",
        }
    ).start()
    try:
        auth = {"Authorization": "Bearer token-must-not-leak-3Z"}
        r = httpx.post(f"{api.url}/jobs", json={"type": "email"}, headers=auth)
        assert r.status_code == 202
        job = httpx.get(f"{api.url}/jobs/{r.json()['job_id']}", headers=auth).json()
        assert job["status"] == "queued"
        assert httpx.get(f"{api.url}/readyz").status_code == 200
        assert httpx.post(f"{api.url}/enqueue").status_code == 401
        assert "server" not in r.headers
        assert api.stop() == 0  # SIGTERM: graceful, exit 0
        records = api.log_records()  # every line is a JSON object
        text = api.logs()
    finally:
        api.cleanup()
    starting = next(rec for rec in records if rec["msg"] == "api starting")
    assert starting["redis_url"] == f"redis://:***@127.0.0.1:{password_redis.port}/0"
    assert starting["queue"] == queue_name and starting["auth"] is True
    assert any("POST /jobs" in rec["msg"] for rec in records)  # the access log, when asked
    assert "pw-must-not-leak-7Q" not in text and "token-must-not-leak-3Z" not in text


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "REDIS_URL (or TASK_QUEUE_URL): is required"),
        (
            {"REDIS_URL": "http://u:pw-must-not-leak@h:1"},
            "REDIS_URL (or TASK_QUEUE_URL): must start",
        ),
        ({"REDIS_URL": "redis://:pw-must-not-leak@h", "PORT": "eighty"}, "PORT: "),
        ({"REDIS_URL": "redis://:pw-must-not-leak@h/0?bogus=1"}, "unexpected keyword argument"),
        (
            {"REDIS_URL": "redis://:pw-must-not-leak@h", "MAX_PAYLOAD_BYTES": "-5"},
            "MAX_PAYLOAD_BYTES",
        ),
    ],
)
def test_bad_config_exits_2_with_a_clear_message(env: dict[str, str], expected: str) -> None:
    # PORT is forced by ApiProcess; an explicit bad PORT in env overrides it.
    code, logs = run_to_exit(env)
    assert code == 2, logs
    [record] = [orjson.loads(line) for line in logs.splitlines()]
    assert record["level"] == "critical" and expected in record["msg"]
    assert "pw-must-not-leak" not in logs


def test_a_port_in_use_is_a_startup_failure(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, logs = run_to_exit({"REDIS_URL": redis_url, "PORT": str(port)})
    assert code != 0, logs


def test_starts_without_redis_then_serves_when_it_comes_and_503_when_it_goes(
    queue_name: str,
) -> None:
    server = RedisServer()  # not started yet
    api = ApiProcess({"REDIS_URL": server.url, "QUEUE_NAME": queue_name}).start()
    try:
        r = httpx.post(f"{api.url}/enqueue")
        assert r.status_code == 503 and r.headers["retry-after"]
        assert httpx.get(f"{api.url}/readyz").status_code == 503
        assert httpx.get(f"{api.url}/healthz").status_code == 200

        server.start()
        assert httpx.get(f"{api.url}/readyz").status_code == 200
        assert httpx.post(f"{api.url}/enqueue").status_code == 202

        server.stop()
        for method, path in (("POST", "/enqueue"), ("GET", "/stats"), ("GET", "/jobs/x")):
            r = httpx.request(method, f"{api.url}{path}")
            assert r.status_code == 503, (path, r.text)
            assert r.headers["retry-after"] == "2"
        health = httpx.get(f"{api.url}/health")
        assert health.status_code == 503 and health.headers["retry-after"]
        assert httpx.get(f"{api.url}/metrics").status_code == 200

        server.start()
        assert httpx.post(f"{api.url}/enqueue").status_code == 202
        assert api.stop() == 0
        assert "Traceback" not in api.logs()
    finally:
        api.cleanup()
        server.cleanup()


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks) and b"}" in data:
                break
        return b"".join(chunks)


def test_size_limits_hold_over_real_http(redis_url: str, queue_name: str) -> None:
    api = ApiProcess(
        {"REDIS_URL": redis_url, "QUEUE_NAME": queue_name, "MAX_PAYLOAD_BYTES": "1000"}
    ).start()
    try:
        # An announced oversize body is refused before it is sent.
        head = (
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000\r\n\r\n"
        )
        assert _raw_http(api.port, head).startswith(b"HTTP/1.1 413")
        # A chunked body (no length at all) is counted as it arrives.
        body = b'{"type":"t","payload":"' + b"x" * 3000 + b'"}'
        chunked = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 500]), body[i : i + 500])
            for i in range(0, len(body), 500)
        )
        request = (
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
        )
        assert _raw_http(api.port, request).startswith(b"HTTP/1.1 413")
        # A small chunked body is fine.
        small = b'{"type":"t"}'
        ok = (
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(small), small)
        )
        assert _raw_http(api.port, ok).startswith(b"HTTP/1.1 202")
        stats = httpx.get(f"{api.url}/stats").json()
        assert stats["enqueued_total"] == 1
    finally:
        api.cleanup()
