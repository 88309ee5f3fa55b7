"""One way to run the operator for a test: ``python -m jobqueue_operator`` against a control
plane, watching the given namespaces, its log in a file, stopped (and its log shown) at the end."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.cluster.controlplane import Kube
from tests.support.kube import install_jobqueue_crd
from tests.support.services import spawn_module, stop_process

log = logging.getLogger(__name__)


@contextlib.contextmanager
def running_operator(
    kube: Kube, namespaces: str, logfile: Path, env: Mapping[str, str] | None = None
) -> Iterator[Path]:
    """The CRD installed and the operator running until the block ends; yields its log file.

    ``namespaces``: WATCH_NAMESPACES (comma-separated globs). ``env``: more settings (INFO logs,
    a 30 s resync and no health or metrics port unless given)."""
    install_jobqueue_crd(kube)
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
    settings.pop("KUBERNETES_SERVICE_HOST", None)  # never the in-cluster config
    proc = spawn_module("jobqueue_operator", settings, logfile)
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            pytest.fail(f"the operator exited: {logfile.read_text()[-4000:]}")
        yield logfile
    finally:
        if stop_process(proc, 20) not in (0, -15):
            log.warning("operator log tail:\n%s", logfile.read_text()[-4000:])
