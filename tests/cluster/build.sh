#!/usr/bin/env bash
# Build the upstream Kubernetes, etcd, helm and kubeconform binaries from the
# Go module proxy, once, into a cache keyed by version. Prints progress.
#
#   tests/cluster/build.sh k8s|etcd|helm|kubeconform|coredns|all
#
# Binaries land in $JQ_CACHE/bin/<component>-<version>/ (default
# ~/.cache/jobqueue-operator). Nothing here is downloaded from anywhere but
# the Go module proxy.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.5}"
HELM_VERSION="${HELM_VERSION:-v3.19.0}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.7.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.13.1}"
CACHE="${JQ_CACHE:-$HOME/.cache/jobqueue-operator}"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

build_k8s() {
  local out="$CACHE/bin/k8s-$K8S_VERSION"
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  local missing=0
  for b in "${bins[@]}"; do [[ -x "$out/$b" ]] || missing=1; done
  if [[ $missing == 0 ]]; then log "k8s $K8S_VERSION cached in $out"; return; fi
  local mod="$CACHE/src/k8s-$K8S_VERSION"
  mkdir -p "$mod" "$out"
  cd "$mod"
  if [[ ! -f go.sum ]]; then
    log "k8s $K8S_VERSION: preparing scratch module"
    local minor="${K8S_VERSION#v1.}"
    cat > go.mod <<GOMOD
module jobqueue.local/k8sbuild

go 1.24

require k8s.io/kubernetes $K8S_VERSION
GOMOD
    go mod download -json "k8s.io/kubernetes@$K8S_VERSION" > /dev/null
    local upstream
    upstream="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
    grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging' "$upstream" | awk '{print $1}' | sort -u |
      while read -r m; do echo "replace $m => $m v0.$minor"; done >> go.mod
    {
      echo '//go:build tools'
      echo 'package tools'
      echo 'import ('
      for b in "${bins[@]}"; do echo "  _ \"k8s.io/kubernetes/cmd/$b\""; done
      echo ')'
    } > tools.go
    go mod tidy >&2
  fi
  local minor_num="${K8S_VERSION#v1.}"; minor_num="${minor_num%%.*}"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor_num -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitTreeState=clean"
  for b in "${bins[@]}"; do
    [[ -x "$out/$b" ]] && continue
    log "k8s $K8S_VERSION: go build $b (cold: minutes)"
    local t0=$SECONDS
    go build -trimpath -tags selinux,notest -ldflags "$ld" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b"
    mv "$out/$b.tmp" "$out/$b"
    log "k8s $K8S_VERSION: $b built in $((SECONDS - t0)) s"
  done
}

# build_simple NAME VERSION MODULE PACKAGE [LDFLAGS]
build_simple() {
  local name=$1 version=$2 module=$3 pkg=$4 ld="${5:-}"
  local out="$CACHE/bin/$name-$version"
  if [[ -x "$out/$name" ]]; then log "$name $version cached in $out"; return; fi
  local mod="$CACHE/src/$name-$version"
  mkdir -p "$mod" "$out"
  cd "$mod"
  if [[ ! -f go.sum ]]; then
    log "$name $version: preparing scratch module"
    printf 'module jobqueue.local/%sbuild\n\ngo 1.24\n\nrequire %s %s\n' "$name" "$module" "$version" > go.mod
    printf '//go:build tools\npackage tools\nimport _ "%s"\n' "$pkg" > tools.go
    go mod tidy >&2
  fi
  log "$name $version: go build $pkg"
  local t0=$SECONDS
  go build -trimpath -ldflags "-s -w $ld" -o "$out/$name.tmp" "$pkg"
  mv "$out/$name.tmp" "$out/$name"
  log "$name $version: built in $((SECONDS - t0)) s"
}

build_etcd() { build_simple etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3; }
build_helm() {
  build_simple helm "$HELM_VERSION" helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
}
build_kubeconform() {
  build_simple kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform \
    github.com/yannh/kubeconform/cmd/kubeconform
}
build_coredns() { build_simple coredns "$COREDNS_VERSION" github.com/coredns/coredns github.com/coredns/coredns; }

case "${1:-all}" in
  k8s) build_k8s ;;
  etcd) build_etcd ;;
  helm) build_helm ;;
  kubeconform) build_kubeconform ;;
  coredns) build_coredns ;;
  all) build_k8s; build_etcd; build_helm; build_kubeconform ;;
  *) echo "usage: $0 k8s|etcd|helm|kubeconform|coredns|all" >&2; exit 2 ;;
esac
