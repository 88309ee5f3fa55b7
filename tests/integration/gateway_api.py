"""The Gateway API CRDs for tests, from the Go module ``sigs.k8s.io/gateway-api`` (module cache).

``go mod download -json`` fetches the module through the Go module proxy into the module cache
(or finds it there) and prints where it is; its ``config/crd/standard/*.yaml`` are the CRDs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cluster.controlplane import Kube

GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"
GATEWAY_API_VERSION = "v1.2.1"
HTTPROUTE_CRD = "httproutes.gateway.networking.k8s.io"


def crd_dir(version: str = GATEWAY_API_VERSION) -> Path:
    """config/crd/standard of the module, downloaded into the Go module cache if needed."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{GATEWAY_API_MODULE}@{version}"],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout
    path = Path(json.loads(out)["Dir"]) / "config" / "crd" / "standard"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no CRDs in {GATEWAY_API_MODULE}@{version}")
    return path


def install(kube: Kube) -> None:
    """Apply the standard-channel CRDs and wait until HTTPRoute is served."""
    for crd in sorted(crd_dir().glob("*.yaml")):
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    kube.wait_established(HTTPROUTE_CRD)


def uninstall(kube: Kube) -> None:
    kube.kubectl("delete", "crd", HTTPROUTE_CRD, "--ignore-not-found", "--wait=true")
