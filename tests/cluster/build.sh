#!/usr/bin/env bash
# Build the upstream Kubernetes, etcd, helm and kubeconform binaries (and CoreDNS, kube-router,
# local-path-provisioner, KEDA, promtool) from the Go module proxy, once, into a cache keyed by
# version.
# Prints progress.
#
#   tests/cluster/build.sh k8s|etcd|helm|kubeconform|coredns|kube-router|local-path-provisioner|keda|promtool|all ...
#
# Versions are pinned in versions.env (an exported K8S_VERSION etc. overrides).
# Binaries land in $JQ_CACHE/bin/<component>-<version>/ (default
# ~/.cache/jobqueue-operator). Nothing here is downloaded from anywhere but
# the Go module proxy. A cached component costs one file test; concurrent
# builds of one component wait for each other (flock).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
while IFS='=' read -r key value; do
  [[ $key =~ ^[A-Z][A-Z0-9_]*$ ]] || continue
  [[ -n "${!key:-}" ]] || declare "$key=$value"
done < "$HERE/versions.env"
CACHE="${JQ_CACHE:-$HOME/.cache/jobqueue-operator}"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Go is needed only when something is not cached yet.
check_go() {
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    export PATH="/usr/local/go/bin:$PATH"
  fi
  if ! command -v go >/dev/null; then
    log "go not found: install Go >= $GO_MIN_VERSION (https://go.dev/dl/) and put it on PATH"
    exit 1
  fi
  local have
  have="$(go env GOVERSION)"; have="${have#go}"
  if [[ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$have" | sort -V | head -1)" != "$GO_MIN_VERSION" ]]; then
    log "go $have is too old: need >= $GO_MIN_VERSION"
    exit 1
  fi
}

# heartbeat WHAT CMD...: run CMD, logging every 30 s that it still runs (a cold
# kube-apiserver build is silent for minutes); its exit status is CMD's.
heartbeat() {
  local what=$1; shift
  "$@" &
  local pid=$! t0=$SECONDS next=30
  trap 'kill "$pid" 2>/dev/null' EXIT
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS - t0 >= next)); then
      log "$what: still building ($((SECONDS - t0)) s)"
      next=$((next + 30))
    fi
  done
  trap - EXIT
  wait "$pid"
}

# lock NAME: hold an exclusive lock for the rest of this process (fd 9).
lock() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.build-$1.lock"
  if ! flock -n 9; then
    log "$1: another build is running, waiting for it"
    flock 9
  fi
}

build_k8s() {
  local out="$CACHE/bin/k8s-$K8S_VERSION"
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  local missing=0
  for b in "${bins[@]}"; do [[ -x "$out/$b" ]] || missing=1; done
  if [[ $missing == 0 ]]; then log "k8s $K8S_VERSION cached in $out"; return; fi
  check_go
  lock "k8s-$K8S_VERSION"
  local mod="$CACHE/src/k8s-$K8S_VERSION"
  mkdir -p "$mod" "$out"
  cd "$mod"
  if [[ ! -f .prepared ]]; then
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
    touch .prepared
  fi
  local minor_num="${K8S_VERSION#v1.}"; minor_num="${minor_num%%.*}"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor_num -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitTreeState=clean"
  # One go build for every missing binary: shared packages compile once and the links run in
  # parallel; each binary is moved into place only when the whole build succeeded.
  local todo=() pkgs=()
  for b in "${bins[@]}"; do
    [[ -x "$out/$b" ]] || { todo+=("$b"); pkgs+=("k8s.io/kubernetes/cmd/$b"); }
  done
  local tmp="$out/.build.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  log "k8s $K8S_VERSION: go build ${todo[*]} (cold: ~16 min of CPU, ~8 min on 2 idle cores)"
  local t0=$SECONDS
  heartbeat "k8s $K8S_VERSION" \
    go build -trimpath -tags selinux,notest -ldflags "$ld" -o "$tmp/" "${pkgs[@]}"
  for b in "${todo[@]}"; do mv "$tmp/$b" "$out/$b"; done
  rmdir "$tmp"
  log "k8s $K8S_VERSION: ${todo[*]} built in $((SECONDS - t0)) s"
}

# build_simple NAME VERSION MODULE PACKAGE [LDFLAGS] [TAGS]
build_simple() {
  local name=$1 version=$2 module=$3 pkg=$4 ld="${5:-}" tags="${6:-}"
  local out="$CACHE/bin/$name-$version"
  if [[ -x "$out/$name" ]]; then log "$name $version cached in $out"; return; fi
  check_go
  lock "$name-$version"
  if [[ -x "$out/$name" ]]; then log "$name $version built meanwhile in $out"; return; fi
  local mod="$CACHE/src/$name-$version"
  mkdir -p "$mod" "$out"
  cd "$mod"
  if [[ ! -f .prepared ]]; then
    log "$name $version: preparing scratch module"
    printf 'module jobqueue.local/%sbuild\n\ngo 1.24\n\nrequire %s %s\n' "$name" "$module" "$version" > go.mod
    printf '//go:build tools\npackage tools\nimport _ "%s"\n' "$pkg" > tools.go
    go mod tidy >&2
    touch .prepared
  fi
  log "$name $version: go build $pkg"
  local t0=$SECONDS
  heartbeat "$name $version" go build -trimpath -tags "$tags" -ldflags "-s -w $ld" \
    -o "$out/$name.tmp" "$pkg"
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
# The checkers of the chart's monitoring objects (tests/unit/test_chart_monitoring.py):
# promtool, for `promtool check rules` / `test rules` on the PrometheusRule (its module needs
# Go >= 1.25.8; the tag remove_all_sd leaves out the cloud service discoveries, most of its
# build, which the rule commands never use), and beside it prometheus-operator's CRDs of the
# kinds the chart renders (ServiceMonitor, PodMonitor, PrometheusRule), from that module's
# example/ directory, so kubeconform can check them (tests/integration/test_chart_render.py).
build_promtool() {
  build_simple promtool "$PROMTOOL_VERSION" github.com/prometheus/prometheus \
    github.com/prometheus/prometheus/cmd/promtool \
    "-X github.com/prometheus/common/version.Version=$PROMTOOL_VERSION" remove_all_sd
  local out="$CACHE/bin/promtool-$PROMTOOL_VERSION/crds-$PROMETHEUS_OPERATOR_VERSION"
  if [[ -d "$out" ]]; then log "prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs cached in $out"; return; fi
  check_go
  local mod="github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" src
  log "prometheus-operator $PROMETHEUS_OPERATOR_VERSION: fetching its CRDs"
  src="$(cd "$CACHE" && GOFLAGS= go mod download -json "$mod" | awk -F'"' '$2 == "Dir" {print $4}')"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  local kind
  for kind in servicemonitors podmonitors prometheusrules; do
    cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$out.tmp/"
  done
  chmod -R u+w "$out.tmp"
  mv "$out.tmp" "$out"
}
# CoreDNS with only the plugins of COREDNS_PLUGINS, the way its README documents for a build
# from external source: a main that imports those plugins and sets dnsserver.Directives (in
# plugin.cfg order) instead of core/plugin's all-plugins list. Cold: ~1 min instead of ~2.5.
coredns_key() { printf '%s' "$COREDNS_PLUGINS" | sha256sum | cut -c1-8; }
build_coredns() {
  local label="$COREDNS_VERSION-$(coredns_key)"
  local out="$CACHE/bin/coredns-$label"
  if [[ -x "$out/coredns" ]]; then log "coredns $label cached in $out"; return; fi
  check_go
  lock "coredns-$label"
  if [[ -x "$out/coredns" ]]; then log "coredns $label built meanwhile in $out"; return; fi
  local mod="$CACHE/src/coredns-$label"
  mkdir -p "$mod" "$out"
  cd "$mod"
  if [[ ! -f .prepared ]]; then
    log "coredns $label: preparing scratch module (plugins: $COREDNS_PLUGINS)"
    printf 'module jobqueue.local/corednsbuild\n\ngo 1.24\n\nrequire github.com/coredns/coredns %s\n' \
      "$COREDNS_VERSION" > go.mod
    local plugins
    IFS=, read -r -a plugins <<< "$COREDNS_PLUGINS"
    {
      echo 'package main'
      echo 'import ('
      echo '  "github.com/coredns/coredns/core/dnsserver"'
      echo '  "github.com/coredns/coredns/coremain"'
      for p in "${plugins[@]}"; do echo "  _ \"github.com/coredns/coredns/plugin/$p\""; done
      echo ')'
      printf 'var directives = []string{'
      for p in "${plugins[@]}"; do printf '"%s", ' "$p"; done
      echo '}'
      echo 'func init() { dnsserver.Directives = directives }'
      echo 'func main() { coremain.Run() }'
    } > main.go
    go mod tidy >&2
    touch .prepared
  fi
  log "coredns $label: go build"
  local t0=$SECONDS
  heartbeat "coredns $label" go build -trimpath -ldflags "-s -w" -o "$out/coredns.tmp" .
  mv "$out/coredns.tmp" "$out/coredns"
  log "coredns $label: built in $((SECONDS - t0)) s"
}
# kube-router, run by the node as its NetworkPolicy controller only (cold: ~2 min on 2 cores).
build_kube_router() {
  build_simple kube-router "$KUBE_ROUTER_VERSION" github.com/cloudnativelabs/kube-router/v2 \
    github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
    "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
}

# Rancher's local-path-provisioner: the node's default StorageClass (dynamic hostPath volumes).
build_local_path() {
  build_simple local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" \
    github.com/rancher/local-path-provisioner github.com/rancher/local-path-provisioner
}

# KEDA (operator + metrics adapter), only for the autoscaling benchmark (bench/).
# Its go.mod asks for a newer Go than the rest and carries replace/exclude lines
# that a requiring module must repeat. Its CRDs are copied beside the binaries.
build_keda() {
  local out="$CACHE/bin/keda-$KEDA_VERSION"
  if [[ -x "$out/keda" && -x "$out/keda-adapter" && -d "$out/crds" ]]; then
    log "keda $KEDA_VERSION cached in $out"; return
  fi
  check_go
  lock "keda-$KEDA_VERSION"
  local mod="$CACHE/src/keda-$KEDA_VERSION"
  mkdir -p "$mod" "$out"
  cd "$mod"
  if [[ ! -f .prepared ]]; then
    log "keda $KEDA_VERSION: preparing scratch module"
    go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" > /dev/null
    local upstream gover
    upstream="$(go env GOMODCACHE)/cache/download/github.com/kedacore/keda/v2/@v/$KEDA_VERSION.mod"
    gover="$(awk '$1 == "go" {print $2; exit}' "$upstream")"
    printf 'module jobqueue.local/kedabuild\n\ngo %s\n\nrequire github.com/kedacore/keda/v2 %s\n' \
      "$gover" "$KEDA_VERSION" > go.mod
    grep -E '^(replace|exclude) [^(]' "$upstream" >> go.mod || true
    printf '//go:build tools\npackage tools\nimport (\n  _ "github.com/kedacore/keda/v2/cmd/operator"\n  _ "github.com/kedacore/keda/v2/cmd/adapter"\n)\n' > tools.go
    go mod tidy >&2
    touch .prepared
  fi
  local src
  src="$(go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2)"
  local pair
  for pair in keda:cmd/operator keda-adapter:cmd/adapter; do
    local name="${pair%%:*}" pkg="github.com/kedacore/keda/v2/${pair#*:}"
    [[ -x "$out/$name" ]] && continue
    log "keda $KEDA_VERSION: go build $pkg (cold: ~7 min on 2 cores)"
    local t0=$SECONDS
    go build -trimpath -ldflags "-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION" \
      -o "$out/$name.tmp" "$pkg"
    mv "$out/$name.tmp" "$out/$name"
    log "keda $KEDA_VERSION: $name built in $((SECONDS - t0)) s"
  done
  rm -rf "$out/crds.tmp"
  cp -r "$src/config/crd/bases" "$out/crds.tmp"
  chmod -R u+w "$out/crds.tmp"
  mv "$out/crds.tmp" "$out/crds"
}

build() {
  # Each build runs in a subshell: its cd and its lock end with it.
  case "$1" in
    k8s) (build_k8s) ;;
    etcd) (build_etcd) ;;
    helm) (build_helm) ;;
    kubeconform) (build_kubeconform) ;;
    coredns) (build_coredns) ;;
    kube-router) (build_kube_router) ;;
    keda) (build_keda) ;;
    promtool) (build_promtool) ;;
    local-path-provisioner) (build_local_path) ;;
    all) build k8s; build etcd; build helm; build kubeconform ;;
    *) echo "usage: $0 k8s|etcd|helm|kubeconform|coredns|kube-router|local-path-provisioner|keda|promtool|all ..." >&2; exit 2 ;;
  esac
}

# Several components build in two lanes at once, Kubernetes (about half of all the work) in one
# and the others one after another in the second: go build leaves a core idle while it downloads
# modules, links (single-threaded) or waits for a package that others import, and the other lane
# fills it (cold `make binaries` on 2 cores: see README). JQ_BUILD_LANES=1 builds one at a time.
lanes() {
  local big=() rest=() c
  for c in "$@"; do
    case "$c" in
      all) big+=(k8s); rest+=(etcd helm kubeconform) ;;
      k8s) big+=(k8s) ;;
      *) rest+=("$c") ;;
    esac
  done
  if [[ ${JQ_BUILD_LANES:-2} == 1 || ${#big[@]} == 0 || ${#rest[@]} == 0 ]]; then
    for c in "${big[@]}" "${rest[@]}"; do build "$c"; done
    return
  fi
  # Both in the background: a subshell run as `(...) || rc=$?` would ignore set -e inside.
  (for c in "${big[@]}"; do build "$c"; done) &
  local one=$!
  (for c in "${rest[@]}"; do build "$c"; done) &
  local two=$! rc=0
  trap 'kill "$one" "$two" 2>/dev/null' EXIT
  wait "$two" || rc=$?
  wait "$one" || rc=$?
  trap - EXIT
  return "$rc"
}

(($#)) || set -- all
for component in "$@"; do
  case "$component" in
    k8s|etcd|helm|kubeconform|coredns|kube-router|local-path-provisioner|keda|promtool|all) ;;
    *) build "$component" ;;  # the usage message
  esac
done
lanes "$@"
