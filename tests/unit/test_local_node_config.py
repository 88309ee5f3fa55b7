"""The pure parts of the local node and image scripts: configs, parsers, the pause archive."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.cluster import binaries, images, node
from tests.cluster.pki import CertPair

PATHS = node.NodePaths(Path("/x/node"))


def test_dockerfile_sources_lists_copy_and_add_sources_but_not_other_stages() -> None:
    text = """\
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
COPY api-image/requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
COPY --chown=10001:10001 jobqueue/ \\
     api-image/jobqueue_api/ /app/
ADD ["examples/tasks.py", "/app/examples/"]
FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
"""
    assert images.dockerfile_sources(text) == [
        "api-image/requirements.txt",
        "jobqueue/",
        "api-image/jobqueue_api/",
        "examples/tasks.py",
    ]


def test_apt_mirror_is_read_from_deb822_and_one_line_sources() -> None:
    deb822 = """\
Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
"""
    one_line = "deb [arch=amd64] http://other.example/debian bookworm main contrib\n"
    assert images.parse_apt_sources([deb822], "bookworm") == "http://mirror.example/debian"
    assert images.parse_apt_sources([one_line], "bookworm") == "http://other.example/debian"
    assert images.parse_apt_sources(["deb http://x/debian trixie main"], "bookworm") is None


def test_pause_archive_is_deterministic_and_its_digests_match_its_blobs() -> None:
    args = ("localhost/pause:1", {"pause": (b"\x7fELF...", 0o755)}, {"Entrypoint": ["/pause"]})
    first, second = images.oci_archive(*args), images.oci_archive(*args)
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tf:
        names = set(tf.getnames())
        index = json.load(tf.extractfile("index.json"))  # type: ignore[arg-type]
        (entry,) = index["manifests"]
        assert entry["annotations"]["org.opencontainers.image.ref.name"] == "localhost/pause:1"
        for name in names - {"index.json", "oci-layout"}:
            blob = tf.extractfile(name).read()  # type: ignore[union-attr]
            assert name == f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"
        manifest = json.loads(
            tf.extractfile(f"blobs/sha256/{entry['digest'][7:]}").read()  # type: ignore[union-attr]
        )
    assert len(manifest["layers"]) == 1


def test_key_of_changes_with_any_input() -> None:
    base = {"recipe": "1", "packages": ["python3"]}
    assert images.key_of(base) == images.key_of(dict(base))
    assert images.key_of(base) != images.key_of({**base, "packages": ["python3", "x"]})


def test_containerd_config_keeps_everything_under_the_node_dir() -> None:
    text = node.containerd_config(PATHS, "/usr/sbin/runc", "localhost/pause:3.10.1")
    assert "restrict_oom_score_adj = true" in text
    assert "SystemdCgroup = false" in text
    assert 'sandbox_image = "localhost/pause:3.10.1"' in text
    assert "netns_mounts_under_state_dir = true" in text
    for line in text.splitlines():
        if line.strip().startswith(("root =", "state =", "address =", "Root =", "conf_dir =")):
            value = line.split("=", 1)[1].strip().strip('"')
            assert value == "" or value.startswith("/x/node/"), line


def test_cni_conflist_is_bridge_host_local_portmap_without_masquerade() -> None:
    conf = node.cni_conflist("10.244.0.0/24", PATHS.cni_ipam_dir)
    bridge, portmap = conf["plugins"]
    assert (bridge["type"], portmap["type"]) == ("bridge", "portmap")
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}]]
    assert bridge["ipam"]["dataDir"].startswith("/x/node/")


def test_kubelet_config_is_cgroupfs_on_v1_with_webhook_auth_and_cluster_dns() -> None:
    serving = CertPair(Path("/x/node/pki/s.crt"), Path("/x/node/pki/s.key"))
    conf = node.kubelet_config(PATHS, Path("/x/ca.crt"), serving, "10.200.0.1")
    assert conf["cgroupDriver"] == "cgroupfs"
    assert conf["failCgroupV1"] is False
    assert conf["failSwapOn"] is False
    assert conf["clusterDNS"] == ["10.200.0.1"]
    assert conf["authentication"]["anonymous"]["enabled"] is False
    assert conf["authentication"]["webhook"]["enabled"] is True
    assert conf["authorization"]["mode"] == "Webhook"
    assert conf["containerRuntimeEndpoint"] == f"unix://{PATHS.containerd_socket}"


def test_kube_proxy_config_touches_no_conntrack_sysctl() -> None:
    conf = node.kube_proxy_config(Path("/k"), "10.200.0.1", "10.244.0.0/24")
    assert conf["mode"] == "iptables"
    assert conf["conntrack"]["maxPerCore"] == 0
    assert conf["conntrack"]["tcpEstablishedTimeout"] == "0s"
    assert conf["clusterCIDR"] == "10.244.0.0/24"
    assert conf["nodePortAddresses"] == ["10.200.0.1/32"]


def test_corefile_binds_the_node_address_and_has_no_forward_plugin() -> None:
    text = node.corefile("10.200.0.1", Path("/k"))
    assert "bind 10.200.0.1" in text
    assert "kubernetes cluster.local" in text
    assert "forward" not in text


@pytest.mark.parametrize(
    ("wanted", "in_use", "clash"),
    [
        (["10.244.0.0/24"], ["192.0.2.0/24"], False),
        (["10.200.0.0/16"], ["10.200.5.0/24"], True),
        (["10.0.0.0/24"], ["10.255.255.53/32"], False),
        (["10.0.0.0/24"], ["10.0.0.0/8"], True),
    ],
)
def test_overlapping_finds_clashing_ranges(
    wanted: list[str], in_use: list[str], clash: bool
) -> None:
    assert bool(node.overlapping(wanted, in_use)) is clash


def test_resolv_nameservers() -> None:
    text = "# c\nsearch x\nnameserver 10.255.255.53\nnameserver ::1\noptions ndots:1\n"
    assert node.resolv_nameservers(text) == ["10.255.255.53", "::1"]


def test_iptables_dump_normalised_and_owned_chains_found() -> None:
    dump = """\
# Generated by iptables-save
*nat
:PREROUTING ACCEPT [3:180]
:KUBE-SERVICES - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:OTHER - [0:0]
-A PREROUTING -j KUBE-SERVICES
COMMIT
# Completed
"""
    assert node.normalise_iptables(dump) == [
        "*nat",
        ":PREROUTING ACCEPT",
        ":KUBE-SERVICES -",
        ":CNI-HOSTPORT-DNAT -",
        ":OTHER -",
        "-A PREROUTING -j KUBE-SERVICES",
        "COMMIT",
    ]
    assert node.owned_chains(dump) == {"nat": ["KUBE-SERVICES", "CNI-HOSTPORT-DNAT"]}


def test_coredns_is_built_with_exactly_the_plugins_the_corefile_uses() -> None:
    """build.sh compiles in COREDNS_PLUGINS only: a Corefile directive outside it would make
    CoreDNS refuse to start, a plugin never used would only cost build time."""
    text = node.corefile("10.200.0.1", Path("/k"))
    used = set()
    for line in text.splitlines():
        words = line.split()
        # directives are the first word of a line inside the server block (not `}` or sub-keys)
        if words and line.startswith("    ") and not line.startswith("        "):
            used.add(words[0])
    assert used - {"}"} == set(binaries.coredns_plugins())
    assert binaries.component_dir("coredns").name.startswith("coredns-v")


def test_the_default_storage_class_is_local_path_with_helper_pods_on_an_image_of_the_node() -> None:
    docs = node.local_path_manifests(Path("/state/node/local-path"), node.HELPER_IMAGE)
    by_kind = {d["kind"]: d for d in docs}
    sc = by_kind["StorageClass"]
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["provisioner"] == node.LOCAL_PATH_PROVISIONER
    data = by_kind["ConfigMap"]["data"]
    assert json.loads(data["config.json"])["nodePathMap"][0]["paths"] == ["/state/node/local-path"]
    helper = yaml.safe_load(data["helperPod.yaml"])["spec"]["containers"][0]
    # Nothing is pulled: the worker image is on the node; mkdir in a root-owned dir needs root.
    assert helper["image"] == node.HELPER_IMAGE and helper["imagePullPolicy"] == "Never"
    assert helper["securityContext"]["runAsUser"] == 0
    assert "mkdir -m 0777" in data["setup"] and 'rm -rf "$VOL_DIR"' in data["teardown"]
    args = node.local_path_args(Path("/b"), Path("/k"), Path("/c"), Path("/h"), "img")
    assert args[args.index("--provisioner-name") + 1] == node.LOCAL_PATH_PROVISIONER
