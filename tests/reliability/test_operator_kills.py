"""The operator SIGKILLed at random points while JobQueues are created, changed and deleted:
after every restart it converges, with no orphaned, duplicated or half-updated children.

Each round applies one or two random changes (create, multi-field patch, delete), waits a
random 0-1.2 s (so the kill lands in the middle of a reconcile more often than not), kills
the operator with SIGKILL, sometimes changes more while it is down, starts it again, and
then waits until the cluster matches the model of what was asked for: exactly the expected
children per JobQueue, each controlled by the current JobQueue (uid), with every field of the
last change applied, status.observedGeneration current, and deleted JobQueues gone with
their children.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.cluster.controlplane import Kube
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
SECTION = "Faults: the operator killed (SIGKILL) mid-reconcile"


@pytest.mark.parametrize("kills", sizes(3, 20))
def test_the_operator_converges_after_every_sigkill(
    kills: int, kube: Kube, redis_server: RedisServer, tmp_path: Path, figures: Figures
) -> None:
    rng = random.Random()
    api = KubeHttp(kube)
    install_jobqueue_crd(kube)
    op = OperatorProc(kube, tmp_path, watch="jqkill-*").start()
    ns = api.namespace("jqkill-")
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    model: dict[str, Want] = {}
    counter = 0
    actions: dict[str, int] = {"create": 0, "change": 0, "delete": 0, "while_down": 0}
    converge_s: list[float] = []

    def act() -> None:
        nonlocal counter
        choices = ["create"] * (len(model) < 4) + ["change"] * bool(model) * 2
        choices += ["delete"] * (len(model) >= 2)
        what = rng.choice(choices)
        actions[what] += 1
        if what == "create":
            counter += 1
            name = f"q{counter}"
            model[name] = random_change(rng, Want())
            status, body = api.create_jq(ns, name, model[name].spec(url))
            assert status == 201, body
        elif what == "change":
            name = rng.choice(sorted(model))
            model[name] = random_change(rng, model[name])
            api.patch_jq(ns, name, {"spec": model[name].spec(url)})
        else:
            name = rng.choice(sorted(model))
            del model[name]
            assert api.delete(api.jq_path(ns, name)) in (200, 202)

    try:
        act()
        for _ in range(kills):
            for _ in range(rng.randint(1, 2)):
                act()
            time.sleep(rng.uniform(0, 1.2))
            op.kill()
            if rng.random() < 0.4:
                act()
                actions["while_down"] += 1
            op.start()
            t0 = time.monotonic()
            wait_settled(
                "convergence after a SIGKILL",
                lambda: not problems(api, ns, model, url),
                timeout=120,
                on_fail=lambda: f"{problems(api, ns, model, url)}\n{op.tail()}",
            )
            converge_s.append(time.monotonic() - t0)
    finally:
        for name in list(model):
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
        sigkills=kills,
        operator_starts=op.starts,
        creates=actions["create"],
        changes=actions["change"],
        deletes=actions["delete"],
        changes_while_down=actions["while_down"],
        converged=len(converge_s),
        max_seconds_to_converge=round(max(converge_s), 1),
    )
    assert len(converge_s) == kills
