"""Where the upstream binaries live (built once by build.sh, cached by version), how to get them."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
VERSIONS_FILE = HERE / "versions.env"

#: build.sh component -> the binaries it produces.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "k8s": (
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "kubectl",
    ),
    "etcd": ("etcd",),
    "helm": ("helm",),
    "kubeconform": ("kubeconform",),
    "coredns": ("coredns",),
    "kube-router": ("kube-router",),
    "promtool": ("promtool",),
    "local-path-provisioner": ("local-path-provisioner",),
}
#: What the control plane needs (the rest is built by `make binaries` for other helpers).
CONTROL_PLANE_COMPONENTS = ("k8s", "etcd")


class MissingBinaryError(RuntimeError):
    """A binary the caller needs is not built; the message says how to build it."""


def _read_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for raw in VERSIONS_FILE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key.strip()] = os.environ.get(key.strip(), value.strip())
    return versions


VERSIONS = _read_versions()


def cache_dir() -> Path:
    """The cache root shared with build.sh ($JQ_CACHE, default ~/.cache/jobqueue-operator)."""
    return Path(os.environ.get("JQ_CACHE", Path.home() / ".cache" / "jobqueue-operator"))


def version_of(component: str) -> str:
    """versions.env's pin of a build.sh component (`kube-router` -> KUBE_ROUTER_VERSION)."""
    return VERSIONS[f"{component.upper().replace('-', '_')}_VERSION"]


def coredns_plugins() -> tuple[str, ...]:
    """The CoreDNS plugins build.sh compiles in (COREDNS_PLUGINS, in plugin.cfg order)."""
    return tuple(VERSIONS["COREDNS_PLUGINS"].split(","))


def _label(component: str) -> str:
    """The cache label: the version, and for CoreDNS a hash of its plugin list (as build.sh)."""
    if component == "coredns":
        key = hashlib.sha256(VERSIONS["COREDNS_PLUGINS"].encode()).hexdigest()[:8]
        return f"{version_of(component)}-{key}"
    return version_of(component)


def prometheus_operator_crds() -> list[Path]:
    """prometheus-operator's CRDs that build.sh's promtool component keeps beside promtool
    (ServiceMonitor, PodMonitor, PrometheusRule), for kubeconform; missing is an error."""
    where = component_dir("promtool") / f"crds-{VERSIONS['PROMETHEUS_OPERATOR_VERSION']}"
    files = sorted(where.glob("*.yaml"))
    if not files:
        raise MissingBinaryError(f"not fetched: {where}. Run `bash {BUILD_SCRIPT} promtool`.")
    return files


def component_dir(component: str) -> Path:
    """`<cache>/bin/<component>-<label>/`, exactly as build.sh lays it out."""
    return cache_dir() / "bin" / f"{component}-{_label(component)}"


def _component_of(binary: str) -> str:
    for component, names in COMPONENTS.items():
        if binary in names:
            return component
    raise KeyError(f"unknown binary {binary!r}")


def path(binary: str) -> Path:
    """The cached path of one binary (it may not exist yet: see require / ensure)."""
    return component_dir(_component_of(binary)) / binary


def missing(components: tuple[str, ...]) -> list[Path]:
    return [
        component_dir(c) / b
        for c in components
        for b in COMPONENTS[c]
        if not os.access(component_dir(c) / b, os.X_OK)
    ]


def require(components: tuple[str, ...] = CONTROL_PLANE_COMPONENTS) -> None:
    """Fail (never skip) when a binary is not built; used where a build cannot run (pytest)."""
    absent = missing(components)
    if absent:
        names = ", ".join(str(p) for p in absent)
        raise MissingBinaryError(
            f"not built: {names}. Run `make binaries` "
            f"(or `bash {BUILD_SCRIPT} {' '.join(components)}`); a cold build takes minutes."
        )


def ensure(components: tuple[str, ...] = CONTROL_PLANE_COMPONENTS) -> None:
    """Build whatever is missing with build.sh; its progress goes straight to our stderr."""
    for component in components:
        if missing((component,)):
            subprocess.run(["bash", str(BUILD_SCRIPT), component], check=True)
    require(components)
