"""kube-apiserver stopped and started again under a running operator: the same operator process
(no restart) resumes watching by itself and repairs what changed meanwhile.

The session's control plane is used (`ControlPlane.attach` on the kube fixture's state dir;
`stop_apiserver` / `start_apiserver` keep etcd and the controllers running and bring the API
server back on its port). Right after each restart, before the operator can have re-listed,
the test deletes children, edits a JobQueue, creates and deletes JobQueues; the operator must
bring the cluster back to the model, through watches it re-established on its own.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane, Kube
from tests.cluster.redis_server import RedisServer
from tests.reliability.kube_support import (
    KubeHttp,
    OperatorProc,
    Want,
    problems,
    random_change,
    wait_settled,
)
from tests.reliability.support import Figures, sizes
from tests.support.kube import install_jobqueue_crd

pytestmark = pytest.mark.cluster
SECTION = "Faults: kube-apiserver restarted under the operator"


@pytest.mark.parametrize("size", sizes((1, 4.0), (3, 20.0)))
def test_the_operator_resumes_watching_and_repairs_after_an_apiserver_restart(
    size: tuple[int, float],
    kube: Kube,
    redis_server: RedisServer,
    tmp_path: Path,
    figures: Figures,
) -> None:
    restarts, down_s = size  # how many times, seconds down each time
    plane = ControlPlane.attach(kube.kubeconfig.parent)
    assert plane.server == kube.server, "the kube fixture's control plane cannot be attached"
    plane.procs.die_with_parent = True
    rng = random.Random()
    api = KubeHttp(kube)
    install_jobqueue_crd(kube)
    # resync far away: only re-established watches can bring the repairs
    op = OperatorProc(kube, tmp_path, watch="jqapis-*", resync=600).start()
    pid = op.pid
    ns = api.namespace("jqapis-")
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    model = {"a": Want(), "b": Want(api=False, worker_replicas=2)}
    repaired_s: list[float] = []
    try:
        for name, want in model.items():
            status, body = api.create_jq(ns, name, want.spec(url))
            assert status == 201, body
        wait_settled(
            "the first convergence", lambda: not problems(api, ns, model, url), on_fail=op.tail
        )
        for i in range(restarts):
            plane.stop_apiserver()
            api.close()
            time.sleep(down_s)
            assert op.alive, op.tail()
            plane.start_apiserver()
            # changed "meanwhile": before the operator has re-listed anything
            assert api.delete(f"/apis/apps/v1/namespaces/{ns}/deployments/a-worker") == 200
            assert api.delete(f"/api/v1/namespaces/{ns}/secrets/b-worker") == 200
            model["a"] = random_change(rng, model["a"])
            api.patch_jq(ns, "a", {"spec": model["a"].spec(url)})
            new = f"c{i}"
            model[new] = Want(concurrency=3)
            status, body = api.create_jq(ns, new, model[new].spec(url))
            assert status == 201, body
            if i:
                del model[f"c{i - 1}"]
                assert api.delete(api.jq_path(ns, f"c{i - 1}")) in (200, 202)
            t0 = time.monotonic()
            wait_settled(
                "repairs after the restart",
                lambda: not problems(api, ns, model, url),
                timeout=180,
                on_fail=lambda: f"{problems(api, ns, model, url)}\n{op.tail()}",
            )
            repaired_s.append(time.monotonic() - t0)
        same_process = op.alive and op.pid == pid
    finally:
        for name in model:
            api.delete(api.jq_path(ns, name))
        try:
            wait_settled(
                "every JobQueue deleted", lambda: not api.items(api.jq_path(ns)), on_fail=op.tail
            )
        finally:
            op.stop()
            api.delete(f"/api/v1/namespaces/{ns}")
            api.close()
    figures.set(
        apiserver_restarts=restarts,
        seconds_down_each=down_s,
        operator_restarts=op.starts - 1,
        repaired=len(repaired_s),
        max_seconds_to_repair=round(max(repaired_s), 1),
    )
    assert same_process, "the operator process was replaced"
    assert op.starts == 1
