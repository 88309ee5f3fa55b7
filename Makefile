# jobqueue-operator: one entry point for set-up, tests, the demo and benchmarks.
# Every target installs what it needs (apt packages, the venv, Go builds cached
# under ~/.cache/jobqueue-operator), so a fresh machine needs nothing by hand.

SHELL := /bin/bash
PY ?= .venv/bin/python
VENV_STAMP := .venv/.installed
PYTEST := $(PY) -m pytest
NODE ?= 1

.PHONY: help setup deps binaries lint unit integration e2e test cluster-up cluster-down demo \
        bench bench-quick chaos images kind-demo clean

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
	@bash tests/cluster/build.sh all

lint: $(VENV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m mypy --strict tests/cluster tests/conftest.py
	@for f in tests/cluster/build.sh hack/*.sh .ci/run; do bash -n "$$f" || exit 1; done

unit: $(VENV_STAMP)
	$(PYTEST) tests/unit -q

integration: setup
	$(PYTEST) tests/integration -q

test: setup lint
	$(PYTEST) tests -q

cluster-up: setup
	$(PY) -m tests.cluster up

# Stops every process recorded under .cluster/run (a no-op when nothing runs).
cluster-down:
	@if [ -x $(PY) ]; then $(PY) -m tests.cluster down; fi

demo: setup
	$(PY) -m tests.cluster demo

bench-quick: setup
	$(PY) -m bench --quick

bench: setup
	$(PY) -m bench

clean: cluster-down
	rm -rf .cluster .mypy_cache .ruff_cache .pytest_cache
