"""One way to run the operator for a test: ``python -m jobqueue_operator`` against a control
plane, its output in a file, stopped at the end; `OperatorProcess` for a test that needs the
process itself (its health and metrics ports, a SIGKILL), `running_operator` for a block."""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.cluster.controlplane import Kube
from tests.support.kube import install_jobqueue_crd
from tests.support.services import spawn_module, stop_process, wait_healthy

log = logging.getLogger(__name__)

STOP_TIMEOUT = 30.0  # SIGTERM, then SIGKILL after this many seconds
HEALTH_TIMEOUT = 60.0


def operator_env(
    kube: Kube, namespaces: str, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The operator's environment: the control plane's kubeconfig, WATCH_NAMESPACES (comma-
    separated globs), INFO logs, a 30 s resync and no health or metrics port unless ``env``
    says otherwise; never the in-cluster config."""
    settings = {
        **kube.env(),
        "WATCH_NAMESPACES": namespaces,
        "HEALTH_PORT": "0",
        "METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
        "RESYNC_INTERVAL_SECONDS": "30",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    settings.pop("KUBERNETES_SERVICE_HOST", None)
    return settings


class OperatorProcess:
    """``python -m jobqueue_operator`` with exactly ``env`` (see `operator_env`), its stdout and
    stderr appended to ``log``."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.env = dict(env)
        self.log = log
        self.health_port = int(self.env.get("HEALTH_PORT", "0"))
        self.metrics_port = int(self.env.get("METRICS_PORT", "0"))
        self.proc: subprocess.Popen[bytes] = spawn_module("jobqueue_operator", self.env, log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, chars: int = 6000) -> str:
        return self.text()[-chars:]

    def healthy(self) -> bool:
        """/healthz answers 200 (False while it does not); fails the test if the process ended."""
        if self.proc.poll() is not None:
            pytest.fail(f"the operator exited with {self.proc.returncode}:\n{self.tail()}")
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT) -> OperatorProcess:
        """Until /healthz answers (with a health port), else a short look that it still runs."""
        if self.health_port:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            failure = wait_healthy(self.proc, url, timeout, probe_timeout=2.0)
        else:
            time.sleep(0.5)
            failure = (
                f"exited with {self.proc.returncode}" if self.proc.poll() is not None else None
            )
        if failure is not None:
            pytest.fail(f"the operator {failure}:\n{self.tail()}")
        return self

    def reconciles(self, trigger: str) -> float:
        """jobqueue_operator_reconciles_total{trigger=...,result="ok"} from /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        pattern = rf'jobqueue_operator_reconciles_total\{{result="ok",trigger="{trigger}"\}} (\S+)'
        found = re.search(pattern, text)
        return float(found.group(1)) if found else 0.0

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would end it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait (SIGKILL after ``timeout``); the exit code."""
        code = stop_process(self.proc, timeout)
        assert code is not None
        return code


def start_operator(
    kube: Kube, namespaces: str, logfile: Path, env: Mapping[str, str] | None = None
) -> OperatorProcess:
    """The CRD installed and the operator started and healthy (see `operator_env`)."""
    install_jobqueue_crd(kube)
    return OperatorProcess(operator_env(kube, namespaces, env), logfile).wait_healthy()


@contextlib.contextmanager
def running_operator(
    kube: Kube, namespaces: str, logfile: Path, env: Mapping[str, str] | None = None
) -> Iterator[Path]:
    """The CRD installed and the operator running until the block ends; yields its log file
    (its tail is logged when it did not stop cleanly)."""
    operator = start_operator(kube, namespaces, logfile, env)
    try:
        yield logfile
    finally:
        if operator.stop(20) not in (0, -15):
            log.warning("operator log tail:\n%s", operator.tail(4000))
