"""The chart ships a byte-identical copy of the CRD in crds/ (the operator's source of truth)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "crds" / "jobqueue.io_jobqueues.yaml"
CHART_FILES = REPO / "charts" / "jobqueue-operator" / "files"
COPY = CHART_FILES / SOURCE.name


def test_chart_copy_of_the_crd_is_byte_identical_to_crds() -> None:
    assert COPY.read_bytes() == SOURCE.read_bytes(), (
        f"{COPY.relative_to(REPO)} differs from {SOURCE.relative_to(REPO)}: run `make chart-sync`"
    )


def test_chart_files_hold_only_the_crds_in_crds() -> None:
    """Nothing stale left behind in files/ (e.g. a CRD renamed in crds/)."""
    shipped = sorted(p.name for p in CHART_FILES.iterdir())
    sources = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert shipped == sources


def test_crd_copy_is_the_jobqueue_crd() -> None:
    crd = yaml.safe_load(COPY.read_text())
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "jobqueues.jobqueue.io"
