"""`python -m tests.cluster up|down|env|status`: the local cluster by hand, in .cluster/.

  up      build the binaries if needed, start etcd + kube-apiserver + kube-controller-manager,
          write .cluster/kubeconfig and print the `export` lines (reuses a running cluster)
  down    stop every process started under .cluster/ (by pid file); leaves none behind
  env     print `export KUBECONFIG=... PATH=... JQ_KUBECONFIG=...` (eval "$(... env)")
  status  JSON status; exit 0 when the apiserver answers /readyz

Progress and logs go to stderr; only the `export` lines go to stdout. The full demo (operator,
Redis, JobQueues, autoscaling) is `make demo` (python -m demo).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from tests.cluster import binaries, node
from tests.cluster.controlplane import DEFAULT_STATE_DIR, ControlPlane, Kube

log = logging.getLogger("tests.cluster")


def _env_lines(kube: Kube) -> list[str]:
    return [
        f"export KUBECONFIG={kube.kubeconfig}",
        f'export PATH={kube.bin_dir}:"$PATH"',
        "# pytest reuses this cluster instead of starting its own:",
        f"export JQ_KUBECONFIG={kube.kubeconfig}",
    ]


def up(state_dir: Path) -> ControlPlane:
    binaries.ensure()
    cp = ControlPlane.attach(state_dir)
    if cp.running():
        if cp.status()["apiserver_ready"]:
            log.info("already running: %s", cp.server)
            return cp
        log.warning("stale processes %s in %s: stopping them", cp.running(), state_dir)
        cp.stop()
    cp = ControlPlane(state_dir)
    t0 = time.monotonic()
    cp.start()
    log.info("up in %.1f s", time.monotonic() - t0)
    return cp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument(
        "--node",
        action="store_true",
        help="up: also a real node (containerd, kubelet, kube-proxy, CoreDNS) and the images",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[cluster %(asctime)s] %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)  # fmt: skip
    state_dir: Path = args.state_dir.resolve()

    if args.command == "up" and args.node:
        print("\n".join(_env_lines(node.up(state_dir).kube)))
        return 0

    if args.command == "up":
        print("\n".join(_env_lines(up(state_dir).kube)))
        return 0

    if args.command == "down":
        if node.has_node(state_dir):  # pods, kubelet, containerd first; then links, mounts
            node.down(state_dir)
        cp = ControlPlane.attach(state_dir)
        cp.stop()
        left = cp.running()
        if left:
            log.error("still running: %s", left)
            return 1
        log.info("down: no process left from %s", state_dir)
        return 0

    if args.command == "env":
        cp = ControlPlane.attach(state_dir)
        if not cp.kubeconfig.exists():
            log.error("no cluster in %s: run `make cluster-up`", state_dir)
            return 1
        print("\n".join(_env_lines(Kube.from_kubeconfig(cp.kubeconfig))))
        return 0

    # status
    status = ControlPlane.attach(state_dir).status()
    if node.has_node(state_dir):
        status["node"] = node.status(state_dir)
    print(json.dumps(status, indent=2))
    return 0 if status["apiserver_ready"] else 1


if __name__ == "__main__":
    sys.exit(main())
