"""The Helm chart rendered by the real helm: lint --strict, kubeconform strict against schemas made
from the real API server's OpenAPI, a server-side dry run, bad values refused, and the RBAC /
Deployment checked against what the operator's code and image actually need.

Installing it and running the operator on its RBAC is test_chart_install.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster import binaries, kubeschemas
from tests.cluster.controlplane import Kube

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "jobqueue-operator"
CRD_FILE = REPO / "crds" / "jobqueue.io_jobqueues.yaml"
DOCKERFILE = REPO / "operator" / "Dockerfile"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
KUBE_VERSION = binaries.version_of("k8s").removeprefix("v")
RELEASE, NAMESPACE = "jq", "jq-system"
FULLNAME = f"{RELEASE}-jobqueue-operator"

#: Value sets every render test runs with (written to a values file, as a user would).
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "minimal": {
        "crds": {"install": False},
        "rbac": {"create": False},
        "serviceAccount": {"create": False, "name": "existing"},
        "metrics": {"enabled": False},
    },
    "monitoring": {
        "metrics": {"serviceMonitor": {"enabled": True}},
        "monitoring": {
            "podMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "grafanaDashboard": {"enabled": True},
        },
    },
}

#: What the operator may do in a namespace it serves: (group, resource) -> verbs. Derived from
#: operator/jobqueue_operator/{kube,reconcile,scaler,handlers}.py and kopf; see rbac.yaml.
NAMESPACED_GRANTS: dict[tuple[str, str], set[str]] = {
    ("jobqueue.io", "jobqueues"): {"get", "list", "watch", "patch"},
    ("jobqueue.io", "jobqueues/status"): {"get", "patch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "statefulsets"): {"list", "watch", "create", "patch", "delete"},
    ("", "services"): {"list", "watch", "create", "patch", "delete"},
    ("networking.k8s.io", "ingresses"): {"list", "watch", "create", "patch", "delete"},
    ("gateway.networking.k8s.io", "httproutes"): {"list", "create", "patch", "delete"},
    ("networking.k8s.io", "networkpolicies"): {"list", "watch", "create", "patch", "delete"},
    ("", "secrets"): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "deployments/scale"): {"get", "patch"},
    ("", "pods"): {"list", "patch"},
    ("", "persistentvolumeclaims"): {"list", "create", "patch", "delete"},
    ("", "events"): {"create"},
}
CRD_GRANTS: dict[tuple[str, str], set[str]] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
}
NAMESPACE_GRANTS: dict[tuple[str, str], set[str]] = {("", "namespaces"): {"list", "watch"}}


# -- helpers -----------------------------------------------------------------------------------


def run(*cmd: str | Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], input=input, capture_output=True, text=True, timeout=120
    )


def helm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run(binaries.path("helm"), *args)


def values_file(tmp_path: Path, values: Mapping[str, Any], name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict(values)))
    return path


def render(
    tmp_path: Path, values: Mapping[str, Any], namespace: str = NAMESPACE, release: str = RELEASE
) -> str:
    proc = helm(
        "template", release, CHART, "--namespace", namespace,
        "--kube-version", KUBE_VERSION, "--values", values_file(tmp_path, values),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def documents(rendered: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in the rendered chart"
    return found[0]


def grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """RBAC rules as (group, resource) -> verbs; a pair listed twice is a chart bug."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule  # no resourceNames etc.
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in out, f"{group}/{resource} granted twice"
                out[(group, resource)] = set(rule["verbs"])
    return out


def kubeconform(schema_dir: Path, manifests: str) -> dict[str, Any]:
    proc = run(
        binaries.path("kubeconform"), "-strict", "-summary", "-output", "json",
        "-schema-location", kubeschemas.location(schema_dir), "-",
        input=manifests,
    )  # fmt: skip
    assert proc.stderr == "", proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    result["returncode"] = proc.returncode
    return result


def env_of(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    binaries.require(("helm", "kubeconform"))


@pytest.fixture(scope="module")
def schema_dir(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubeconform schemas of this cluster's kinds (its /openapi/v2), of the JobQueue CRD and of
    prometheus-operator's CRDs (the chart's ServiceMonitor, PodMonitor and PrometheusRule)."""
    crds = [CRD_FILE, *binaries.prometheus_operator_crds()]
    out = kubeschemas.from_cluster(kube, tmp_path_factory.mktemp("schemas"), crds)
    for name in (
        "deployment-apps-v1.json",
        "clusterrole-rbac-v1.json",
        "service-v1.json",
        "servicemonitor-monitoring-v1.json",
        "podmonitor-monitoring-v1.json",
        "prometheusrule-monitoring-v1.json",
    ):
        assert (out / name).is_file(), f"{name} not generated"
    return out


@pytest.fixture(params=sorted(VALUE_SETS))
def value_set(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- lint and schema validation ----------------------------------------------------------------


def test_helm_lint_strict_passes(tmp_path: Path, value_set: str) -> None:
    proc = helm(
        "lint", "--strict", "--kube-version", KUBE_VERSION, CHART,
        "--values", values_file(tmp_path, VALUE_SETS[value_set]),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_rendered_chart_passes_kubeconform_strict(
    tmp_path: Path, schema_dir: Path, value_set: str
) -> None:
    rendered = render(tmp_path, VALUE_SETS[value_set])
    result = kubeconform(schema_dir, rendered)
    assert result["resources"] == [], json.dumps(result["resources"], indent=2)
    assert result["summary"] == {
        "valid": len(documents(rendered)),
        "invalid": 0,
        "errors": 0,
        "skipped": 0,
    }
    assert result["returncode"] == 0


def test_kubeconform_schemas_reject_a_misspelt_or_mistyped_field(
    tmp_path: Path, schema_dir: Path
) -> None:
    """The generated schemas are strict: the check above can fail."""
    docs = documents(render(tmp_path, {}))
    deployment = one(docs, "Deployment")
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["ports"][0]["containerPort"] = "http"
    role = one(docs, "ClusterRole")
    role["rules"][0]["verb"] = role["rules"][0].pop("verbs")
    result = kubeconform(schema_dir, yaml.safe_dump_all([deployment, role]))
    assert result["summary"]["invalid"] == 2
    messages = {(e["path"], e["msg"]) for r in result["resources"] for e in r["validationErrors"]}
    assert ("/spec", "additional properties 'replica' not allowed") in messages
    port = "/spec/template/spec/containers/0/ports/0/containerPort"
    assert (port, "got string, want integer") in messages
    assert ("/rules/0", "missing property 'verbs'") in messages
    assert ("/rules/0", "additional properties 'verb' not allowed") in messages


def test_examples_pass_kubeconform_strict_against_the_crd(schema_dir: Path) -> None:
    """`helm install` then `kubectl apply -f examples/` must just work: the examples match."""
    assert EXAMPLES, "no examples/*.yaml"
    text = "\n---\n".join(p.read_text() for p in EXAMPLES)
    result = kubeconform(schema_dir, text)
    assert result["resources"] == [], json.dumps(result["resources"], indent=2)
    kinds = [d["kind"] for d in documents(text)]
    assert "JobQueue" in kinds
    assert result["summary"]["valid"] == len(kinds)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCont": 1}, "additional properties 'replicaCont' not allowed"),
        ({"metrics": {"prot": 9090}}, "at '/metrics': additional properties 'prot' not allowed"),
        ({"replicaCount": "one"}, "at '/replicaCount': got string, want integer"),
        ({"replicaCount": 6}, "at '/replicaCount': maximum: got 6, want 5"),
        ({"crds": {"keep": "yes"}}, "at '/crds/keep': got string, want boolean"),
        ({"watchNamespaces": ["Team_A"]}, "at '/watchNamespaces/0': 'Team_A' does not match"),
        ({"logLevel": "TRACE"}, "at '/logLevel': value must be one of"),
        ({"resources": {"limit": {"cpu": 1}}}, "additional properties 'limit' not allowed"),
    ],
    ids=["typo", "nested-typo", "wrong-type", "six-replicas", "bool", "namespace", "enum", "res"],
)
def test_bad_values_are_refused_with_the_schemas_message(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    bad = values_file(tmp_path, values, "bad.yaml")
    for command in ("template", "lint"):
        args = ("template", RELEASE) if command == "template" else ("lint", "--strict")
        proc = helm(*args, CHART, "--kube-version", KUBE_VERSION, "--values", bad)
        assert proc.returncode != 0, f"helm {command} accepted {values}"
        assert message in proc.stdout + proc.stderr, proc.stdout + proc.stderr


# -- a server-side dry run on the real API server ----------------------------------------------


@pytest.fixture
def namespaces(kube: Kube) -> Iterator[list[str]]:
    names = [f"chart-dry-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for name in names:
        kube.kubectl("create", "namespace", name)
    yield names
    for name in names:
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize("mode", ["defaults", "namespaced"])
def test_server_side_dry_run_accepts_the_rendered_chart(
    kube: Kube, tmp_path: Path, namespaces: list[str], mode: str
) -> None:
    release_ns, *watched = namespaces
    values = {"watchNamespaces": watched} if mode == "namespaced" else {}
    rendered = render(tmp_path, values, namespace=release_ns)
    proc = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)
    applied = proc.stdout.splitlines()
    docs = documents(rendered)
    assert len(applied) == len(docs), proc.stdout
    assert all(line.endswith("(server dry run)") for line in applied), proc.stdout
    for doc in docs:
        assert any(doc["metadata"]["name"] in line for line in applied), doc["metadata"]


MONITORING_KINDS = ("ConfigMap", "PodMonitor", "PrometheusRule", "ServiceMonitor")


def test_server_side_dry_run_accepts_the_monitoring_objects(
    kube: Kube, tmp_path: Path, namespaces: list[str]
) -> None:
    """With prometheus-operator's CRDs installed, the API server (their schemas and their CEL
    rules, which kubeconform does not run) accepts the chart's monitoring objects."""
    crds = binaries.prometheus_operator_crds()
    for crd in crds:
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    names = [f"crd/{yaml.safe_load(crd.read_text())['metadata']['name']}" for crd in crds]
    kube.wait_established(*names)
    rendered = render(tmp_path, VALUE_SETS["monitoring"], namespace=namespaces[0])
    docs = [d for d in documents(rendered) if d["kind"] in MONITORING_KINDS]
    assert sorted(d["kind"] for d in docs) == list(MONITORING_KINDS)
    proc = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs))
    applied = proc.stdout.splitlines()
    assert len(applied) == len(docs), proc.stdout
    assert all(line.endswith("(server dry run)") for line in applied), proc.stdout


# -- RBAC: exactly what the operator uses -------------------------------------------------------


def test_cluster_wide_rbac_is_one_clusterrole_with_exactly_the_verbs_used(tmp_path: Path) -> None:
    docs = documents(render(tmp_path, {}))
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    role = one(docs, "ClusterRole", FULLNAME)
    assert grants(role["rules"]) == {**CRD_GRANTS, **NAMESPACED_GRANTS}
    binding = one(docs, "ClusterRoleBinding", FULLNAME)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": FULLNAME,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]


def test_two_replicas_elect_a_leader_with_kopf_peering(tmp_path: Path) -> None:
    docs = documents(render(tmp_path, {"replicaCount": 2}))
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["PEERING"] == "true" and env["PEERING_NAME"] == FULLNAME
    crd = one(docs, "CustomResourceDefinition", "clusterkopfpeerings.kopf.dev")
    source = yaml.safe_load((REPO / "crds" / "kopf.dev_clusterkopfpeerings.yaml").read_text())
    assert crd["spec"] == source["spec"]
    role = one(docs, "ClusterRole", FULLNAME)
    assert grants(role["rules"]) == {
        **CRD_GRANTS,
        **NAMESPACED_GRANTS,
        ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "create", "patch"},
    }
    single = documents(render(tmp_path, {}))  # one replica: none of it
    assert one(single, "Deployment")["spec"]["strategy"]["type"] == "Recreate"
    assert not [d for d in single if d["metadata"]["name"] == "clusterkopfpeerings.kopf.dev"]
    assert "PEERING" not in env_of(
        one(single, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    )


def test_watch_namespaces_gives_one_role_per_namespace_and_no_cluster_wide_writes(
    tmp_path: Path,
) -> None:
    watched = VALUE_SETS["namespaced"]["watchNamespaces"]
    docs = documents(render(tmp_path, VALUE_SETS["namespaced"]))
    assert grants(one(docs, "ClusterRole")["rules"]) == {**CRD_GRANTS, **NAMESPACE_GRANTS}
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(watched)
    for role in roles:
        assert grants(role["rules"]) == NAMESPACED_GRANTS
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(watched)
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == NAMESPACE


def test_no_wildcards_and_no_update_anywhere(tmp_path: Path) -> None:
    for values in VALUE_SETS.values():
        for doc in documents(render(tmp_path, values)):
            for rule in doc.get("rules") or []:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field], (doc["kind"], rule)
                assert "update" not in rule["verbs"], "the operator never PUTs"


def test_rbac_covers_every_resource_the_operator_touches() -> None:
    """Cross-check against the operator's code: a new watch or child kind needs a new rule."""
    import kopf
    from jobqueue_operator import handlers, kube  # noqa: F401 - registers the handlers

    granted = {**CRD_GRANTS, **NAMESPACED_GRANTS}
    registry = kopf.get_default_registry()
    watched: set[tuple[str, str]] = set()
    for sub in (registry._indexing, registry._watching, registry._spawning, registry._changing):
        for handler in sub.get_all_handlers():
            selector = handler.selector
            assert selector is not None
            plural = selector.plural or selector.any_name
            assert isinstance(plural, str), selector
            watched.add((selector.group or "", plural))
    assert ("", "secrets") in watched and ("jobqueue.io", "jobqueues") in watched
    for resource in watched:
        assert {"list", "watch"} <= granted.get(resource, set()), f"kopf watches {resource}"
    for kind in kube.CHILD_KINDS:
        where = kube.KINDS[kind]
        group = where.api_version.rpartition("/")[0]
        verbs = granted.get((group, where.plural), set())
        assert {"list", "create", "patch", "delete"} <= verbs, f"child {kind}: {verbs}"
    for kind, where in kube.KINDS.items():
        assert (where.api_version.rpartition("/")[0], where.plural) in granted, kind


# -- the Deployment against the operator image -------------------------------------------------


def dockerfile() -> dict[str, Any]:
    text = DOCKERFILE.read_text()
    final = text.rsplit("\nFROM ", 1)[1]  # the runtime stage
    env = dict(re.findall(r"([A-Z_]+)=(\S+)", final.split("ENV", 1)[1].split("\nUSER")[0]))
    return {
        "env": env,
        "user": re.findall(r"^USER (\S+)", final, re.M)[-1],
        "expose": re.search(r"^EXPOSE (.+)$", final, re.M).group(1).split(),  # type: ignore[union-attr]
    }


def test_deployment_matches_the_operator_image_and_settings(tmp_path: Path) -> None:
    from jobqueue_operator.settings import OperatorSettings

    image = dockerfile()
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    deployment = one(documents(render(tmp_path, {})), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)

    # Every variable the chart sets is one the operator reads (no dead settings).
    fields = {name.upper() for name in OperatorSettings.model_fields}
    assert set(env) <= fields, set(env) - fields
    # Ports: the image's defaults, exposed, named, and the probes use them.
    assert env["HEALTH_PORT"] == image["env"]["HEALTH_PORT"] == str(defaults["healthPort"])
    assert env["METRICS_PORT"] == image["env"]["METRICS_PORT"] == str(defaults["metrics"]["port"])
    assert sorted(image["expose"]) == sorted([env["HEALTH_PORT"], env["METRICS_PORT"]])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": int(env["HEALTH_PORT"]), "metrics": int(env["METRICS_PORT"])}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # The image's entrypoint runs (no command override); tag defaults to appVersion.
    assert "command" not in container and "args" not in container
    assert container["image"].endswith(f":{chart['appVersion']}")
    assert env["DEFAULT_WORKER_IMAGE"].endswith(f":{chart['appVersion']}")
    # Restricted: non-root as the image's user, read-only root fs with /tmp an emptyDir.
    uid = int(image["user"].split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["name"] == "tmp" and "emptyDir" in pod["volumes"][0]
    # One active replica, never two overlapping.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["serviceAccountName"] == FULLNAME
    # Who the operator is, for a managed Redis' NetworkPolicy: its namespace from the downward
    # API, and labels that select its own pods.
    fields_of = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert fields_of["OPERATOR_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    peer = OperatorSettings(
        operator_namespace="jq-system", operator_pod_labels=env["OPERATOR_POD_LABELS"]
    ).operator_peer()
    assert peer is not None and peer.labels
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert dict(peer.labels) == {k: pod_labels[k] for k in peer.labels}


def test_metrics_off_removes_the_service_and_the_port(tmp_path: Path) -> None:
    docs = documents(render(tmp_path, VALUE_SETS["minimal"]))
    assert [d["kind"] for d in docs] == ["Deployment"]
    (container,) = docs[0]["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["METRICS_PORT"] == "0"
    assert [p["name"] for p in container["ports"]] == ["health"]
    assert docs[0]["spec"]["template"]["spec"]["serviceAccountName"] == "existing"


def test_service_monitor_scrapes_the_metrics_service_port(tmp_path: Path) -> None:
    docs = documents(render(tmp_path, {"metrics": {"serviceMonitor": {"enabled": True}}}))
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()


# -- the CRD template --------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [True, False])
def test_crd_template_renders_the_source_crd(tmp_path: Path, keep: bool) -> None:
    crd = one(documents(render(tmp_path, {"crds": {"keep": keep}})), "CustomResourceDefinition")
    source = yaml.safe_load(CRD_FILE.read_text())
    meta, source_meta = crd.pop("metadata"), source.pop("metadata")
    # Same types too (json.dumps tells 10 from 10.0): fromYaml/toYaml changed nothing.
    assert json.dumps(crd, sort_keys=True) == json.dumps(source, sort_keys=True)
    assert meta["name"] == source_meta["name"]
    assert source_meta.get("labels", {}).items() <= meta["labels"].items()
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    policy = (meta.get("annotations") or {}).get("helm.sh/resource-policy")
    assert policy == ("keep" if keep else None)
