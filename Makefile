# jobqueue-operator: one entry point for set-up, tests, the demo and benchmarks.
# Every target installs what it needs (apt packages, the venv, Go builds cached
# under ~/.cache/jobqueue-operator), so a fresh machine needs nothing by hand.

SHELL := /bin/bash
PY ?= .venv/bin/python
VENV_STAMP := .venv/.installed
PYTEST := $(PY) -m pytest
NODE ?= 1

.PHONY: help setup deps binaries lint unit integration e2e test cluster-up cluster-down demo \
        bench bench-quick chaos images kind-demo clean chart-sync chart-test

help:
	@echo "make demo    - local cluster + Redis + operator + a JobQueue processing jobs, autoscaling"
	@echo "make test    - lint + unit + integration tests (builds the local control plane once)"
	@echo "make cluster-up / cluster-down - the local cluster by hand (.cluster/kubeconfig)"
	@echo "make setup   - apt packages (deps), the venv, the cached Go builds (binaries)"
	@echo "make bench-quick / bench       - benchmarks, results in bench/RESULTS.md"

deps:
	@bash hack/install-deps.sh

$(VENV_STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	@.venv/bin/pip install -q --upgrade pip
	@.venv/bin/pip install -q -e '.[dev]'
	@touch $@

setup: deps $(VENV_STAMP) binaries

# Cached under ~/.cache/jobqueue-operator/bin/<name>-<version>: a warm run only checks files.
binaries:
	@bash tests/cluster/build.sh all coredns kube-router

lint: $(VENV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m mypy --strict tests/cluster tests/conftest.py demo
	@for f in tests/cluster/build.sh hack/*.sh .ci/run; do bash -n "$$f" || exit 1; done

unit: $(VENV_STAMP)
	$(PYTEST) tests/unit -q

integration: setup
	$(PYTEST) tests/integration -q

test: setup lint
	$(PYTEST) tests -q

# Only the node tests (tests/e2e, also part of `make test`): a real one-node cluster running
# the images, which are rebuilt only when their inputs changed.
e2e: setup
	$(PYTEST) tests/e2e -q

# The three images. With docker on PATH (or IMAGE_BUILDER=docker): `docker build` of the
# Dockerfiles (context = repo root) as localhost/jobqueue-<x>:$(TAG), what `make kind-demo`
# loads. Without: built without a registry (debootstrap base + buildah), cached by input hash.
TAG ?= dev
IMAGE_BUILDER ?= $(if $(shell command -v docker 2>/dev/null),docker,local)
images:
ifeq ($(IMAGE_BUILDER),docker)
	for x in api worker operator; do \
	  d=$$x-image; [ $$x = operator ] && d=operator; \
	  docker build -f $$d/Dockerfile -t localhost/jobqueue-$$x:$(TAG) . || exit 1; \
	done
else
	$(MAKE) $(VENV_STAMP)
	$(PY) -m tests.cluster.images build
endif

# NODE=1 (default): also the real node (containerd, kubelet, kube-proxy, CoreDNS) + images.
cluster-up: setup
	$(PY) -m tests.cluster up $(if $(filter 1,$(NODE)),--node)

# Stops every process recorded under .cluster/run (a no-op when nothing runs).
cluster-down:
	@if [ -x $(PY) ]; then $(PY) -m tests.cluster down; fi

# The README's first command: cluster + node + images + operator (Helm) + two JobQueues, a burst
# of jobs shown live, a summary, then teardown. KEEP=1 leaves it all up (make cluster-down);
# BURST=<n> changes the number of jobs (default 1000). Code: demo/ (python -m demo --help).
KEEP ?= 0
BURST ?=
demo: setup
	$(PY) -m demo $(if $(filter-out 0,$(KEEP)),--keep) $(if $(BURST),--burst $(BURST))

# For machines with Docker: a kind cluster, the images loaded into it, the chart installed,
# then the same demo attached to it (hack/kind-demo.sh; KEEP=1 keeps the kind cluster).
kind-demo: $(VENV_STAMP)
	$(MAKE) images IMAGE_BUILDER=docker TAG=$(TAG)
	TAG=$(TAG) KEEP=$(KEEP) BURST=$(BURST) PY=$(PY) bash hack/kind-demo.sh

# The reliability suite at full size (100k jobs under kill -9, Redis and apiserver restarts,
# 20 operator SIGKILLs, bad input, security); writes tests/RELIABILITY.md. `make test` runs
# its fast subset (chaos_full tests are deselected unless JQ_CHAOS=full).
chaos: setup
	$(PY) -m tests.reliability

bench-quick: setup
	$(PY) -m bench --quick

bench: setup
	$(PY) -m bench

clean: cluster-down
	rm -rf .cluster .mypy_cache .ruff_cache .pytest_cache

# The chart ships a byte-identical copy of crds/ (tests/unit/test_chart_crd_sync.py checks it).
chart-sync:
	cp crds/*.yaml charts/jobqueue-operator/files/

# helm lint, kubeconform (schemas from the cluster's OpenAPI), install + the RBAC lifecycle.
chart-test: setup
	$(PYTEST) tests/unit/test_chart*.py tests/integration/test_chart*.py -q
