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

help: ## this list: every target, one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## Debian packages of every host program (hack/host-tools.txt, the one list)
	@bash hack/install-deps.sh

$(VENV_STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	@.venv/bin/pip install -q --upgrade pip
	@.venv/bin/pip install -q -e '.[dev]'
	@touch $@

# The venv (mostly downloads) and the Go builds run side by side after the Debian packages.
setup: deps ## deps, the venv and the cached Go builds: everything a fresh machine lacks
	@$(MAKE) --no-print-directory -j2 $(VENV_STAMP) binaries

# Cached under ~/.cache/jobqueue-operator/bin/<name>-<version>: a warm run only checks files.
binaries: ## Kubernetes, etcd, helm, kubeconform, CoreDNS, kube-router, local-path-provisioner, promtool from the Go module proxy (cached)
	@bash tests/cluster/build.sh all coredns kube-router local-path-provisioner promtool

lint: $(VENV_STAMP) ## ruff, ruff format, mypy, the import layers (import-linter), bash -n
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m mypy --strict tests/cluster tests/conftest.py demo
	.venv/bin/lint-imports
	@for f in tests/cluster/build.sh hack/*.sh .ci/run; do bash -n "$$f" || exit 1; done

unit: $(VENV_STAMP) ## unit tests only (no cluster, no Redis)
	$(PYTEST) tests/unit -q

integration: setup ## integration tests (real Redis, real kube-apiserver)
	$(PYTEST) tests/integration -q

test: setup lint ## the README's test command: setup, lint, every test (unit, integration, e2e on a real node)
	$(PYTEST) tests -q

# Only the node tests (tests/e2e, also part of `make test`): a real one-node cluster running
# the images, which are rebuilt only when their inputs changed.
e2e: setup ## only the real-node tests
	$(PYTEST) tests/e2e -q

# The three images. With docker on PATH (or IMAGE_BUILDER=docker): `docker build` of the
# Dockerfiles (context = repo root) as localhost/jobqueue-<x>:$(TAG), what `make kind-demo`
# loads. Without: built without a registry (debootstrap base + buildah), cached by input hash.
TAG ?= dev
IMAGE_BUILDER ?= $(if $(shell command -v docker 2>/dev/null),docker,local)
images: ## the API, worker and operator images (docker, or buildah without a registry)
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
cluster-up: setup ## the local cluster by hand (.cluster/kubeconfig); NODE=0 without the node
	$(PY) -m tests.cluster up $(if $(filter 1,$(NODE)),--node)

# Stops every process recorded under .cluster/run (a no-op when nothing runs).
cluster-down: ## stop everything cluster-up or the demo started
	@if [ -x $(PY) ]; then $(PY) -m tests.cluster down; fi

# The README's first command: cluster + node + images + operator (Helm) + two JobQueues, a burst
# of jobs shown live, a summary, then teardown. KEEP=1 leaves it all up (make cluster-down);
# BURST=<n> changes the number of jobs (default 1000). Code: demo/ (python -m demo --help).
KEEP ?= 0
BURST ?=
demo: setup ## the README's first command: the whole system live, a summary, teardown (KEEP=1, BURST=n)
	$(PY) -m demo $(if $(filter-out 0,$(KEEP)),--keep) $(if $(BURST),--burst $(BURST))

# For machines with Docker: a kind cluster, the images loaded into it, the chart installed,
# then the same demo attached to it (hack/kind-demo.sh; KEEP=1 keeps the kind cluster).
kind-demo: $(VENV_STAMP) ## the same demo on a kind cluster (needs docker, kind, kubectl, helm)
	$(MAKE) images IMAGE_BUILDER=docker TAG=$(TAG)
	TAG=$(TAG) KEEP=$(KEEP) BURST=$(BURST) PY=$(PY) bash hack/kind-demo.sh

# The reliability suite at full size (100k jobs under kill -9, Redis and apiserver restarts,
# 20 operator SIGKILLs, bad input, security); writes tests/RELIABILITY.md. `make test` runs
# its fast subset (chaos_full tests are deselected unless JQ_CHAOS=full).
chaos: setup ## the reliability suite at full size; writes tests/RELIABILITY.md
	$(PY) -m tests.reliability

bench-quick: setup ## benchmarks, short windows
	$(PY) -m bench --quick

bench: setup ## benchmarks in full; writes bench/RESULTS.md
	$(PY) -m bench

clean: cluster-down ## cluster-down, then remove .cluster and the tool caches
	rm -rf .cluster .mypy_cache .ruff_cache .pytest_cache

# The chart ships a byte-identical copy of crds/ (tests/unit/test_chart_crd_sync.py checks it).
chart-sync: ## copy crds/ into the chart
	cp crds/*.yaml charts/jobqueue-operator/files/

# helm lint, kubeconform (schemas from the cluster's OpenAPI), install + the RBAC lifecycle.
chart-test: setup ## helm lint, kubeconform, install and the RBAC lifecycle
	$(PYTEST) tests/unit/test_chart*.py tests/integration/test_chart*.py -q
