"""Security: no secret value anywhere it could be read, restricted pods, TLS to Redis.

* A full lifecycle with known secret values (the Redis password, a rotated wrong password, the
  API token, an extra secret value): the operator (at DEBUG), the API and a worker (run
  locally with exactly the environment the operator gives their pods: literal values plus the
  keys of the child Secrets), Redis outages, failing and dead jobs, scaling, rotation,
  deletion. Then every log line, every Event, every status seen, every job record and error,
  every metric of the three programs is searched for each value, raw and base64-encoded.
* Every pod the operator's workloads create (API, worker, managed Redis) is admitted in a
  namespace enforcing Pod Security `restricted`, non-root, with a read-only root filesystem.
* `rediss://` with a self-signed CA, end to end: the CA as a file path or inline in the URL
  (so it travels in the Redis URL Secret), a wrong CA and plaintext refused; and through the
  operator, from a Secret, to the child Secrets, to an API and worker that complete a job.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobqueue import JobStatus, Queue, connect
from tests.cluster.controlplane import Kube
from tests.cluster.redis_server import RedisServer
from tests.reliability.kube_support import (
    RESTRICTED,
    KubeHttp,
    OperatorProc,
    condition,
    labelled_children,
    wait_settled,
)
from tests.reliability.support import (
    Figures,
    Service,
    TlsRedis,
    http_get_text,
    make_pki,
    start_api,
    start_worker,
    stop_all,
    wait_until,
)
from tests.support.kube import install_jobqueue_crd

SECTION = "Security"


def pod_env(api: KubeHttp, ns: str, deployment: str, pod_name: str) -> dict[str, str]:
    """The environment the kubelet would give a pod of ``deployment`` (env + envFrom)."""
    dep = api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{deployment}")
    assert dep is not None, deployment
    container = dep["spec"]["template"]["spec"]["containers"][0]
    secrets: dict[str, dict[str, str]] = {}

    def secret(name: str) -> dict[str, str]:
        if name not in secrets:
            obj = api.get(f"/api/v1/namespaces/{ns}/secrets/{name}") or {}
            secrets[name] = {
                k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()
            }
        return secrets[name]

    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            env.update(secret(source["secretRef"]["name"]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret(ref["name"])[ref["key"]]
        elif "fieldRef" in item.get("valueFrom", {}):
            env[item["name"]] = pod_name
    return env


def forms(value: str) -> list[str]:
    """The ways a value may show: raw, and base64 (a Secret's data) on its own."""
    return [value, base64.b64encode(value.encode()).decode()]


def found_in(texts: dict[str, str], needles: dict[str, str]) -> dict[str, list[str]]:
    hits: dict[str, list[str]] = {}
    for label, value in needles.items():
        for form in forms(value):
            for where, text in texts.items():
                if form in text:
                    hits.setdefault(label, []).append(where)
    return hits


def crd(kube: Kube) -> None:
    install_jobqueue_crd(kube)


@pytest.mark.cluster
def test_no_secret_value_in_any_log_event_status_error_or_metric(
    kube: Kube, tmp_path: Path, figures: Figures
) -> None:
    password = f"pw-{uuid.uuid4().hex[:12]}"
    wrong = f"wrongpw-{uuid.uuid4().hex[:12]}"
    token = f"tok-{uuid.uuid4().hex[:12]}"
    extra = f"extra-{uuid.uuid4().hex[:12]}"
    redis = RedisServer(password=password).start()
    url = f"redis://:{password}@127.0.0.1:{redis.port}/0"
    needles = {
        "redis password": password,
        "wrong password": wrong,
        "api token": token,
        "extra secret": extra,
        "redis url": url,
    }
    api = KubeHttp(kube)
    crd(kube)
    op = OperatorProc(kube, tmp_path / "op", watch="jqsec-*", log_level="DEBUG")
    (tmp_path / "op").mkdir()
    op.start()
    ns = api.namespace("jqsec-", RESTRICTED)
    statuses: list[Any] = []
    texts: dict[str, str] = {}
    services: list[Service] = []
    jobs: list[Any] = []
    try:
        api.secret(ns, "creds", {"url": url})
        api.secret(ns, "tok", {"token": token})
        api.secret(ns, "extra", {"EXTRA_SECRET": extra})
        spec = {
            "redis": {"urlFrom": {"secretKeyRef": {"name": "creds", "key": "url"}}},
            "api": {
                "authTokenSecretRef": {"name": "tok", "key": "token"},
                "secretRefs": [{"name": "extra"}],
            },
            "worker": {
                "secretRefs": [{"name": "extra"}],
                "env": [
                    {
                        "name": "ALSO_SECRET",
                        "valueFrom": {"secretKeyRef": {"name": "extra", "key": "EXTRA_SECRET"}},
                    }
                ],
            },
            "autoscaling": {
                "minReplicas": 0,
                "maxReplicas": 3,
                "pollIntervalSeconds": 1,
                "targetJobsPerWorker": 5,
                "cooldownSeconds": 0,
                "scaleDownStabilizationSeconds": 0,
            },
        }
        status, body = api.create_jq(ns, "shop", spec)
        assert status == 201, body
        jq_path = api.jq_path(ns, "shop")

        def reachable(want: str) -> Any:
            jq = api.get(jq_path)
            statuses.append((jq or {}).get("status"))
            cond = condition(jq, "RedisReachable")
            return jq if cond and cond["status"] == want else None

        wait_settled("RedisReachable=True", lambda: reachable("True"), on_fail=op.tail)
        api_env = pod_env(api, ns, "shop-api", "shop-api-0")
        worker_env = pod_env(api, ns, "shop-worker", "shop-worker-0")
        assert api_env["API_TOKEN"] == token and worker_env["ALSO_SECRET"] == extra
        local_api = start_api(
            api_env["REDIS_URL"],
            api_env["QUEUE_NAME"],
            tmp_path,
            **{k: v for k, v in api_env.items() if k not in ("PORT", "HOST")},
            LOG_LEVEL="DEBUG",
            ACCESS_LOG="true",
        )
        worker = start_worker(
            worker_env["REDIS_URL"],
            worker_env["QUEUE_NAME"],
            tmp_path,
            name="shop-worker-0",
            LOG_LEVEL="DEBUG",
            LEASE_SECONDS=2,
            **{
                k: v
                for k, v in worker_env.items()
                if k not in ("HEALTH_PORT", "POD_NAME", "TASKS_MODULE")
            },
        )
        services += [local_api, worker]
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=local_api.url, timeout=10) as http:
            ids = []
            for kind, n, retries in (("track", 20, 3), ("boom", 3, 1), ("nobody", 2, 0)):
                for _ in range(n):
                    r = http.post(
                        "/jobs", json={"type": kind, "max_retries": retries}, headers=auth
                    )
                    assert r.status_code == 202, r.text
                    ids.append(r.json()["job_id"])
            assert http.post("/jobs", json={"type": "x"}).status_code == 401
            assert (
                http.post(
                    "/jobs", json={"type": "x"}, headers={"Authorization": "Bearer nope"}
                ).status_code
                == 401
            )
            wait_until(
                "the jobs settled",
                lambda: all(
                    http.get(f"/jobs/{i}", headers=auth).json()["status"] in ("completed", "dead")
                    for i in ids
                ),
                timeout=90,
            )
            for i in ids:
                jobs.append(http.get(f"/jobs/{i}", headers=auth).json())
            jobs.append(http.get("/dlq", headers=auth).json())
            jobs.append(http.get("/stats", headers=auth).json())
            # Redis goes away: the API, the worker and the operator all see errors
            redis.kill()
            assert http.post("/jobs", json={"type": "track"}, headers=auth).status_code == 503
            wait_settled("RedisReachable=False", lambda: reachable("False"), on_fail=op.tail)
            time.sleep(2)
            redis.start()
            wait_settled("RedisReachable=True again", lambda: reachable("True"), on_fail=op.tail)
            # a wrong password in the source Secret: authentication errors everywhere it is read
            api.secret(ns, "creds", {"url": f"redis://:{wrong}@127.0.0.1:{redis.port}/0"})
            wait_settled("RedisReachable=False (auth)", lambda: reachable("False"), on_fail=op.tail)
            wait_settled(
                "the rotated copies",
                lambda: wrong in pod_env(api, ns, "shop-worker", "w")["REDIS_URL"],
                on_fail=op.tail,
            )
            # the API and a worker started with the rotated (wrong) copy: auth errors logged
            bad_api = start_api(
                pod_env(api, ns, "shop-api", "a")["REDIS_URL"],
                api_env["QUEUE_NAME"],
                tmp_path / "bad",
                API_TOKEN=token,
                LOG_LEVEL="DEBUG",
            )
            bad_worker = start_worker(
                pod_env(api, ns, "shop-worker", "w")["REDIS_URL"],
                worker_env["QUEUE_NAME"],
                tmp_path / "bad",
                LOG_LEVEL="DEBUG",
            )
            services += [bad_api, bad_worker]
            with httpx.Client(base_url=bad_api.url, timeout=10) as bad:
                assert bad.get("/readyz").status_code == 503
                assert bad.post("/jobs", json={"type": "x"}, headers=auth).status_code == 503
            wait_until("the worker's auth errors", lambda: "claim failed" in bad_worker.logs())
            api.secret(ns, "creds", {"url": url})
            wait_settled("RedisReachable=True (fixed)", lambda: reachable("True"), on_fail=op.tail)
            texts["api /metrics"] = http.get("/metrics").text
        texts["worker /metrics"] = http_get_text(
            f"http://127.0.0.1:{worker.env['HEALTH_PORT']}/metrics"
        )
        texts["operator /metrics"] = op.metrics()
        api.patch_jq(ns, "shop", {"spec": {"worker": {"concurrency": 3}}})
        statuses.append(api.get(jq_path))
        texts["events (before delete)"] = json.dumps(api.events(ns))
        assert api.delete(jq_path) == 200
        wait_settled("the JobQueue gone", lambda: api.get(jq_path) is None, on_fail=op.tail)
        texts["events"] = json.dumps(api.events(ns))
        texts["events (cluster)"] = json.dumps(api.events())
        # the Redis outage and the bad password were ridden out, not restarted through
        survived = op.alive and op.starts == 1
    finally:
        stop_all(services)
        op.stop()
        api.delete(f"/api/v1/namespaces/{ns}")
        api.close()
        redis.cleanup()
    texts["operator log"] = op.logs()
    texts["api log"] = local_api.logs()
    texts["worker log"] = worker.logs()
    texts["api log (wrong password)"] = bad_api.logs()
    texts["worker log (wrong password)"] = bad_worker.logs()
    texts["statuses"] = json.dumps(statuses)
    texts["job records"] = json.dumps(jobs)
    hits = found_in(texts, needles)
    figures.set(
        secret_values=len(needles),
        log_lines=sum(t.count("\n") for k, t in texts.items() if " log" in k),
        events=len(json.loads(texts["events (cluster)"])),
        statuses_checked=len(statuses),
        jobs_checked=len(jobs),
        places_with_a_secret=sum(len(v) for v in hits.values()),
    )
    assert not hits, f"secret values found: {hits}"
    assert survived, "the operator process did not survive the Redis outage"
    # the lifecycle did exercise the error paths it claims to
    assert "redis unavailable" in texts["api log"]
    assert "claim failed" in texts["worker log"] or "waiting for jobs failed" in texts["worker log"]
    assert any(j.get("status") == JobStatus.DEAD.value for j in jobs if isinstance(j, dict))


@pytest.mark.cluster
def test_every_pod_the_operator_creates_is_admitted_under_restricted(
    kube: Kube, redis_server: RedisServer, tmp_path: Path, figures: Figures
) -> None:
    api = KubeHttp(kube)
    crd(kube)
    op = OperatorProc(kube, tmp_path, watch="jqpss-*").start()
    ns = api.namespace("jqpss-", RESTRICTED)
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    specs = {
        "external": {
            "redis": {"url": url},
            "api": {"replicas": 2},
            "worker": {
                "replicas": 2,
                "volumes": [{"name": "scratch", "mountPath": "/scratch", "emptyDir": {}}],
            },
            "autoscaling": {"enabled": False},
        },
        "managed": {"redis": {"managed": {}}, "autoscaling": {"enabled": False}},
    }
    try:
        for name, spec in specs.items():
            status, body = api.create_jq(ns, name, spec)
            assert status == 201, body
        workloads = {
            "external-api": 2,
            "external-worker": 2,
            "managed-api": 1,
            "managed-worker": 1,
            "managed-redis": 1,
        }

        def pods() -> list[dict[str, Any]] | None:
            items = api.items(f"/api/v1/namespaces/{ns}/pods")
            counts: dict[str, int] = {}
            for pod in items:
                owner = pod["metadata"]["generateName"].rstrip("-")
                base = next((w for w in workloads if owner.startswith(w)), None)
                if base:
                    counts[base] = counts.get(base, 0) + 1
            return items if counts == workloads else None

        items = wait_settled(
            "every workload's pods admitted",
            pods,
            timeout=120,
            on_fail=lambda: json.dumps([e.get("message") for e in api.events(ns)])[-3000:],
        )
        refused = [e for e in api.events(ns) if e.get("reason") == "FailedCreate"]
        children = labelled_children(api, ns)
    finally:
        for name in specs:
            api.delete(api.jq_path(ns, name))
        wait_settled("JobQueues gone", lambda: not api.items(api.jq_path(ns)), on_fail=op.tail)
        op.stop()
        api.delete(f"/api/v1/namespaces/{ns}")
        api.close()
    bad: list[str] = []
    for pod in items:
        name = pod["metadata"]["name"]
        pod_sc = pod["spec"].get("securityContext") or {}
        for ctr in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", []):
            sc = ctr.get("securityContext") or {}
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                bad.append(f"{name}/{ctr['name']}: runAsNonRoot not set")
            if sc.get("readOnlyRootFilesystem") is not True:
                bad.append(f"{name}/{ctr['name']}: root filesystem writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                bad.append(f"{name}/{ctr['name']}: privilege escalation allowed")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                bad.append(f"{name}/{ctr['name']}: capabilities not dropped")
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            if uid == 0:
                bad.append(f"{name}/{ctr['name']}: runs as uid 0")
    figures.set(
        pods_admitted=len(items),
        workloads=5,
        refused_by_pod_security=len(refused),
        security_context_problems=len(bad),
        child_objects=len(children),
    )
    assert not refused, [e["message"] for e in refused]
    assert not bad, bad


# ---------------------------------------------------------------------------------------------
# TLS


async def _complete_one(queue_url: str, queue_name: str, api_url: str, token: str | None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        r = await http.post("/jobs", json={"type": "track"}, headers=headers)
        assert r.status_code == 202, r.text
        job_id = str(r.json()["job_id"])
    client = connect(queue_url)
    queue = Queue(client, queue_name)
    try:
        for _ in range(300):
            job = await queue.get(job_id)
            if job is not None and job.status is JobStatus.COMPLETED:
                return job_id
            await asyncio.sleep(0.1)
        raise AssertionError(f"job {job_id} did not complete over TLS")
    finally:
        await queue.aclose()
        await client.aclose()


def test_rediss_end_to_end_with_a_self_signed_ca(tmp_path: Path, figures: Figures) -> None:
    pki = make_pki(tmp_path / "pki")
    other = make_pki(tmp_path / "other", "impostor")
    server = TlsRedis(pki=pki, password=f"tls-{uuid.uuid4().hex[:8]}").start()
    services: list[Service] = []
    completed = 0
    try:
        for inline in (False, True):
            url = server.tls_url(ca_in_url=inline)
            name = f"chaos-tls/{uuid.uuid4().hex[:6]}"
            api = start_api(url, name, tmp_path / f"api-{inline}")
            worker = start_worker(url, name, tmp_path / f"w-{inline}")
            services += [api, worker]
            asyncio.run(_complete_one(url, name, api.url, None))
            completed += 1
        # a CA that did not sign the server's certificate, and plaintext: refused, not degraded
        wrong = start_api(server.tls_url(ca=other.ca), "chaos-tls/wrong", tmp_path / "wrong")
        plain = start_api(
            f"redis://:{server.password}@127.0.0.1:{server.port}/0",
            "chaos-tls/plain",
            tmp_path / "plain",
        )
        services += [wrong, plain]
        refused = []
        for svc in (wrong, plain):
            with httpx.Client(base_url=svc.url, timeout=15) as http:
                refused.append(
                    (
                        http.get("/readyz").status_code,
                        http.post("/jobs", json={"type": "track"}).status_code,
                    )
                )
    finally:
        stop_all(services)
        server.cleanup()
    logs = "".join(s.logs() for s in services)
    figures.set(
        tls_round_trips=completed, ca_forms=["file path", "inline PEM in the URL"], refused=refused
    )
    assert completed == 2
    assert refused == [(503, 503), (503, 503)], refused
    assert server.password and server.password not in logs
    assert "CERTIFICATE_VERIFY_FAILED" in wrong.logs()


@pytest.mark.cluster
def test_rediss_url_and_its_ca_from_a_secret_through_the_operator(
    kube: Kube, tmp_path: Path, figures: Figures
) -> None:
    pki = make_pki(tmp_path / "pki")
    server = TlsRedis(pki=pki, password=f"tls-{uuid.uuid4().hex[:8]}").start()
    url = server.tls_url(ca_in_url=True)  # the CA travels inside the Secret's URL
    api = KubeHttp(kube)
    crd(kube)
    op = OperatorProc(kube, tmp_path, watch="jqtls-*").start()
    ns = api.namespace("jqtls-", RESTRICTED)
    services: list[Service] = []
    try:
        api.secret(ns, "creds", {"url": url})
        status, body = api.create_jq(
            ns,
            "q",
            {
                "redis": {"urlFrom": {"secretKeyRef": {"name": "creds", "key": "url"}}},
                "autoscaling": {"minReplicas": 0, "maxReplicas": 2, "pollIntervalSeconds": 1},
            },
        )
        assert status == 201, body
        cond = wait_settled(
            "RedisReachable=True over TLS",
            lambda: (
                (x := condition(api.get(api.jq_path(ns, "q")), "RedisReachable"))
                and x["status"] == "True"
                and x
            ),
            on_fail=op.tail,
        )
        api_env = pod_env(api, ns, "q-api", "q-api-0")
        worker_env = pod_env(api, ns, "q-worker", "q-worker-0")
        assert api_env["REDIS_URL"] == worker_env["REDIS_URL"] == url
        local_api = start_api(url, api_env["QUEUE_NAME"], tmp_path / "api")
        worker = start_worker(url, worker_env["QUEUE_NAME"], tmp_path / "worker")
        services += [local_api, worker]
        job = asyncio.run(_complete_one(url, api_env["QUEUE_NAME"], local_api.url, None))
    finally:
        stop_all(services)
        api.delete(api.jq_path(ns, "q"))
        wait_settled("JobQueue gone", lambda: not api.items(api.jq_path(ns)), on_fail=op.tail)
        op.stop()
        api.delete(f"/api/v1/namespaces/{ns}")
        api.close()
        server.cleanup()
    figures.set(operator_redis_reachable_over_tls=cond["status"], job_completed=bool(job))
    assert server.password not in op.logs()
