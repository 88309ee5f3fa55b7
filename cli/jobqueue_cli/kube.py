"""`--kube`: reach a JobQueue's API by name through the Kubernetes API (kubectl port-forward).

The JobQueue is read first (it must exist; its `spec.api.port` is the Service port), then
`kubectl port-forward svc/<name>-api :<port>` opens a local port on 127.0.0.1 for the life
of the command. When no token is given and the JobQueue names one
(`spec.api.authTokenSecretRef`), the token is read from that Secret, so a user with access to
the namespace needs nothing else. kubectl does the authentication (kubeconfig, exec plugins,
contexts), which is why it is used rather than a second client library.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

API_SUFFIX = "-api"  # the operator names the API Service <jobqueue>-api
DEFAULT_API_PORT = 80
FORWARD_TIMEOUT = 30.0  # seconds for kubectl to report its local port
KUBECTL_TIMEOUT = 30.0
FORWARDING_LINE = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")


class KubeError(Exception):
    """The JobQueue cannot be reached through Kubernetes; the message says why."""


@dataclass(frozen=True)
class KubeTarget:
    """Which JobQueue, and how kubectl reaches its cluster."""

    name: str
    namespace: str | None = None
    context: str | None = None
    kubeconfig: str | None = None

    def kubectl(self, *args: str) -> list[str]:
        """A kubectl command line for this target's cluster and namespace."""
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise KubeError("--kube needs kubectl on PATH")
        argv = [kubectl]
        if self.kubeconfig:
            argv += ["--kubeconfig", self.kubeconfig]
        if self.context:
            argv += ["--context", self.context]
        if self.namespace:
            argv += ["--namespace", self.namespace]
        return [*argv, *args]

    def _json(self, *args: str) -> Any:
        try:
            done = subprocess.run(
                self.kubectl(*args, "-o", "json"),
                capture_output=True,
                text=True,
                timeout=KUBECTL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            why = f"kubectl {' '.join(args)}: no answer in {KUBECTL_TIMEOUT:g} s"
            raise KubeError(why) from exc
        if done.returncode != 0:
            raise KubeError(done.stderr.strip() or f"kubectl {' '.join(args)} failed")
        return json.loads(done.stdout)

    def jobqueue(self) -> dict[str, Any]:
        """The JobQueue object (KubeError naming it when it does not exist)."""
        body: dict[str, Any] = self._json("get", "jobqueues.jobqueue.io", self.name)
        return body

    def token(self, jobqueue: dict[str, Any]) -> str | None:
        """The API token the JobQueue's `spec.api.authTokenSecretRef` names, if any."""
        ref = (jobqueue.get("spec", {}).get("api") or {}).get("authTokenSecretRef")
        if not ref:
            return None
        secret = self._json("get", "secret", ref["name"])
        value = (secret.get("data") or {}).get(ref["key"])
        if value is None:
            raise KubeError(f"Secret {ref['name']} has no key {ref['key']} (the API token)")
        return base64.b64decode(value).decode()


def api_port(jobqueue: dict[str, Any]) -> int:
    """The API Service's port: `spec.api.port`, 80 by default."""
    return int((jobqueue.get("spec", {}).get("api") or {}).get("port", DEFAULT_API_PORT))


@contextmanager
def port_forward(target: KubeTarget, port: int) -> Iterator[str]:
    """`http://127.0.0.1:<local>` forwarded to the JobQueue's API Service until the block ends."""
    argv = target.kubectl(
        "port-forward", "--address", "127.0.0.1", f"svc/{target.name}{API_SUFFIX}", f":{port}"
    )
    # stderr to a file, not a pipe: a long `stats --watch` never blocks kubectl on it.
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        try:
            local = _local_port(proc)
            if local is None:
                proc.kill()
                proc.wait()
                errors.seek(0)
                why = errors.read().strip() or f"no local port within {FORWARD_TIMEOUT:g} s"
                raise KubeError(f"kubectl port-forward to svc/{target.name}{API_SUFFIX}: {why}")
            yield f"http://127.0.0.1:{local}"
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _local_port(proc: subprocess.Popen[str]) -> int | None:
    """The local port kubectl reports, or None when it exits or times out first.

    A thread reads stdout to its end (so kubectl never blocks on a full pipe)."""
    found: list[int] = []
    ready = threading.Event()

    def read_stdout() -> None:
        for line in proc.stdout or ():
            if not found and (m := FORWARDING_LINE.search(line)):
                found.append(int(m.group(1)))
                ready.set()
        ready.set()  # EOF: kubectl exited

    threading.Thread(target=read_stdout, daemon=True).start()
    ready.wait(FORWARD_TIMEOUT)
    return found[0] if found else None
