#!/usr/bin/env bash
# `make kind-demo`: the demo on a kind cluster, for a laptop with Docker (make demo needs none).
# Needs docker, kind, kubectl and helm on PATH, and the images from `make images` (the Makefile
# target builds them first). KEEP=1 keeps the kind cluster; BURST=<n> jobs (default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${KIND_CLUSTER:-jobqueue-demo}
TAG=${TAG:-dev}
PY=${PY:-.venv/bin/python}
KEEP=${KEEP:-0}

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-demo: $tool is not on PATH" >&2; exit 1; }
done

kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
KUBECONFIG=$(mktemp)
export KUBECONFIG
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"

cleanup() {
  if [[ "$KEEP" == 0 ]]; then
    kind delete cluster --name "$CLUSTER"
  else
    echo "kind cluster $CLUSTER kept: kind get kubeconfig --name $CLUSTER; kind delete cluster --name $CLUSTER"
  fi
  rm -f "$KUBECONFIG"
}
trap cleanup EXIT

for x in api worker operator; do
  kind load docker-image "localhost/jobqueue-$x:$TAG" --name "$CLUSTER"
done

# The images are in the node already (kind load), so never pull them; managed Redis uses the
# chart's default redisImage, pulled from Docker Hub by the kind node.
helm upgrade --install jobqueue-operator charts/jobqueue-operator \
  --namespace jobqueue-system --create-namespace \
  --set image.repository=localhost/jobqueue-operator --set-string image.tag="$TAG" \
  --set image.pullPolicy=Never \
  --set apiImage.repository=localhost/jobqueue-api --set-string apiImage.tag="$TAG" \
  --set workerImage.repository=localhost/jobqueue-worker --set-string workerImage.tag="$TAG" \
  --wait --timeout 300s

args=(attach --kubeconfig "$KUBECONFIG")
[[ -n "${BURST:-}" ]] && args+=(--burst "$BURST")
[[ "$KEEP" != 0 ]] && args+=(--keep)
"$PY" -m demo "${args[@]}"
