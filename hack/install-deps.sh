#!/usr/bin/env bash
# Install the Debian packages of every host program the project runs (hack/host-tools.txt, the
# one list), each unless its program is already on PATH. Non-interactive (CI has no stdin);
# uses sudo only when not root. The `prereq` programs of that list (Go >= the GO_MIN_VERSION of
# tests/cluster/versions.env, Python >= 3.11, make, bash) are checked, not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# program -> package, for every `deb` line of the list.
missing=()
while read -r program source package _; do
  [[ $source == deb ]] || continue
  if [[ $program == - ]]; then
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" && continue
  elif [[ $program == /* ]]; then
    [[ -e $program ]] && continue
  else
    command -v "$program" >/dev/null 2>&1 && continue
  fi
  [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
done < <(grep -v '^\s*#' hack/host-tools.txt | grep -v '^\s*$')
# The venv comes from `python3 -m venv`; Debian's own python3 needs python3-venv for it.
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)

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
