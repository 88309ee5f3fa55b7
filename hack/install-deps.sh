#!/usr/bin/env bash
# Install the Debian packages the tests, the demo and the images need, if any is missing.
# Non-interactive (CI has no stdin); uses sudo only when not root. Go (>= the GO_MIN_VERSION
# of tests/cluster/versions.env) and Python >= 3.11 are prerequisites, checked, not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(ca-certificates openssl util-linux iproute2 iptables conntrack ipset
      redis-server redis-tools
      containerd runc containernetworking-plugins buildah debootstrap umoci skopeo wrk)
# The venv comes from `python3 -m venv`; Debian's own python3 needs python3-venv for it.
python3 -c 'import ensurepip, venv' 2>/dev/null || PKGS+=(python3-venv)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[deps] installing: ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" </dev/null >/dev/null
fi
# The packaged redis-server service is not used: tests start their own on free ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl stop redis-server || true
fi

# Prerequisites this script does not install: say clearly what is wrong.
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { echo "[deps] Python >= 3.11 is required as python3 (found $(python3 --version 2>&1))" >&2; exit 1; }
PATH="$PATH:/usr/local/go/bin"
go_min="$(sed -n 's/^GO_MIN_VERSION=//p' tests/cluster/versions.env)"
if ! command -v go >/dev/null; then
  echo "[deps] Go >= $go_min is required to build the cluster binaries once (https://go.dev/dl/)" >&2
  # Not fatal: a machine whose ~/.cache/jobqueue-operator already holds them needs no Go.
fi
