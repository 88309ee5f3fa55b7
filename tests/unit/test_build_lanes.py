"""build.sh with several components builds them in two lanes (Kubernetes beside the rest): a
component that fails stops its own lane and fails the whole run, the other lane still finishes,
and a cached component costs a file test in either mode. Real build.sh and real `go` against a
scratch cache: the cached components are executable files where build.sh looks for them, and
the failing one is a version its module path refuses (go fails on the go.mod, offline)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cluster import binaries

CACHED = ("k8s", "etcd", "helm", "kubeconform")


def _cache(tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    for component in CACHED:
        where = cache / "bin" / f"{component}-{binaries.version_of(component)}"
        where.mkdir(parents=True)
        for name in binaries.COMPONENTS[component]:
            (where / name).write_text("#!/bin/sh\n")
            (where / name).chmod(0o755)
    return cache


def _build(tmp_path: Path, *components: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "JQ_CACHE": str(_cache(tmp_path)),
        "GOMODCACHE": str(tmp_path / "gomod"),
        "GOCACHE": str(tmp_path / "gocache"),
        "GOPATH": str(tmp_path / "gopath"),
        **env,
    }
    return subprocess.run(
        ["bash", str(binaries.BUILD_SCRIPT), *components],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("lanes", ["2", "1"])
def test_cached_components_cost_a_file_test(tmp_path: Path, lanes: str) -> None:
    done = _build(tmp_path, "all", JQ_BUILD_LANES=lanes)
    assert done.returncode == 0, done.stderr
    for component in CACHED:
        assert f"{component} {binaries.version_of(component)} cached in" in done.stderr


def test_a_failing_component_fails_the_run_and_stops_its_lane(tmp_path: Path) -> None:
    done = _build(tmp_path, "all", ETCD_VERSION="v9.9.9")
    assert done.returncode != 0
    assert "etcd v9.9.9: preparing scratch module" in done.stderr
    # The other lane (Kubernetes) finished; etcd's lane went no further.
    assert f"k8s {binaries.version_of('k8s')} cached in" in done.stderr
    assert "helm " not in done.stderr and "kubeconform " not in done.stderr


def test_a_failing_kubernetes_build_fails_the_run(tmp_path: Path) -> None:
    done = _build(tmp_path, "all", K8S_VERSION="v9.9.9")
    assert done.returncode != 0
    assert f"kubeconform {binaries.version_of('kubeconform')} cached in" in done.stderr


def test_an_unknown_component_is_refused_before_any_build(tmp_path: Path) -> None:
    done = _build(tmp_path, "all", "bogus")
    assert done.returncode == 2
    assert "usage:" in done.stderr and "cached in" not in done.stderr
