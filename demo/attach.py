"""`python -m demo attach`: the same run on a cluster someone else set up (kind, `make kind-demo`).

Expects the operator installed (the Helm chart). Applies the two examples in the demo
namespace: the managed-Redis one first; the Secret example's "external" Redis URL then points
at database 1 of that managed Redis (a kind cluster has no other Redis), read from the
operator's generated Secret. Reaches each API through `kubectl port-forward`.
"""

from __future__ import annotations

import base64
import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from demo import constants as c
from demo import manifests as m
from demo.burst import Target
from demo.local import DemoError, http_ok, step, wait_for
from demo.monitor import Kube
from demo.run import DemoEnv
from tests.cluster.redis_server import free_port


@dataclass
class Attached:
    kubeconfig: Path
    console: Console
    forwards: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kube: Kube | None = None

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args[:3])}: {proc.stderr.strip()[-2000:]}")
        return proc.stdout

    def apply(self, docs: list[dict[str, Any]]) -> None:
        self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            f"--field-manager={c.FIELD_MANAGER}",
            "-f",
            "-",
            input=m.dump(docs),
        )

    def _secret_value(self, name: str, key: str) -> str | None:
        out = self.kubectl(
            "get", "secret", name, "-n", c.NAMESPACE, "-o", f"jsonpath={{.data.{key}}}", check=False
        )
        return base64.b64decode(out).decode() if out.strip() else None

    def setup(self) -> DemoEnv:
        t0 = time.monotonic()
        with step(self.console, "the operator is installed (CRD + Deployment available)"):
            self.kubectl("get", "crd", c.CRD_NAME)
            self.kubectl(
                "wait",
                "--for=condition=Available",
                "deployment",
                "-l",
                f"app.kubernetes.io/instance={c.RELEASE}",
                "-A",
                "--timeout=180s",
            )
        examples = [*m.load(c.EXAMPLE_MANAGED), *m.load(c.EXAMPLE_SECRET)]
        with step(self.console, f"JobQueue {c.MANAGED_QUEUE} (managed Redis) applied"):
            self.apply([m.namespace_manifest()])
            self.apply(m.demo_manifests(examples, external_redis_url=None))
        with step(self.console, f"JobQueue {c.SECRET_QUEUE} (Redis URL from a Secret) applied"):
            password = wait_for(
                f"Secret {c.MANAGED_QUEUE}-redis (the managed Redis' password)",
                lambda: self._secret_value(f"{c.MANAGED_QUEUE}-redis", "password"),
            )
            docs = m.demo_manifests(examples, external_redis_url=m.managed_redis_url(password))
            self.apply(docs)
        targets = []
        token = m.api_token(docs)
        for name in (c.MANAGED_QUEUE, c.SECRET_QUEUE):
            with step(self.console, f"{name}: API pods Available, port-forwarded"):
                wait_for(
                    f"deployment {name}-api",
                    partial(
                        self.kubectl,
                        "get",
                        "deployment",
                        f"{name}-api",
                        "-n",
                        c.NAMESPACE,
                        check=False,
                    ),
                )
                self.kubectl(
                    "wait",
                    "--for=condition=Available",
                    f"deployment/{name}-api",
                    "-n",
                    c.NAMESPACE,
                    "--timeout=300s",
                )
                port = free_port()
                self.forwards.append(
                    subprocess.Popen(
                        [
                            "kubectl",
                            "--kubeconfig",
                            str(self.kubeconfig),
                            "port-forward",
                            "-n",
                            c.NAMESPACE,
                            f"svc/{name}-api",
                            f"{port}:80",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                base = f"http://127.0.0.1:{port}"
                wait_for(f"{base}/readyz", partial(http_ok, f"{base}/readyz"), 120)
            low, high = c.WORKER_BOUNDS[name]
            targets.append(
                Target(
                    name, c.NAMESPACE, base, token if name == c.SECRET_QUEUE else None, low, high
                )
            )
        self.kube = Kube(self.kubeconfig)
        return DemoEnv(
            title="jobqueue-operator demo (attached)",
            mode_note=f"attached to the cluster of {self.kubeconfig}; the APIs via port-forward",
            targets=targets,
            kube=self.kube,
            setup_seconds=time.monotonic() - t0,
            poke=[
                f"export KUBECONFIG={self.kubeconfig}",
                f"kubectl get jq -n {c.NAMESPACE} -o wide",
                f"kubectl get pods -n {c.NAMESPACE}",
                f"kubectl port-forward -n {c.NAMESPACE} svc/{c.MANAGED_QUEUE}-api 8080:80 &",
                "curl -s localhost:8080/stats",
            ],
        )

    def teardown(self, *, keep: bool) -> None:
        for proc in self.forwards:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self.kube is not None:
            self.kube.close()
        if not keep:
            with step(self.console, f"teardown: namespace {c.NAMESPACE} deleted"):
                self.kubectl("delete", "namespace", c.NAMESPACE, "--wait=true", check=False)
