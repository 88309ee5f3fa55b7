"""The chart's monitoring: the Grafana dashboard is valid dashboard JSON, every metric its queries
and the alert rules name is one the API, worker or operator exports, the PrometheusRule passes
promtool (check rules, and test rules: each alert fires when it should and only then), and the
PodMonitor selects exactly the pods the operator builds for the API and workers."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY, Metric

from tests.cluster import binaries

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "jobqueue-operator"
DASHBOARD = CHART / "dashboards" / "jobqueue.json"
KUBE_VERSION = binaries.version_of("k8s").removeprefix("v")
#: Every monitoring object on (one render serves most tests: the machine is small).
ALL_ON: Mapping[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True}},
    "monitoring": {
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {
            "enabled": True,
            "namespace": "grafana",
            "annotations": {"grafana_folder": "JobQueue"},
        },
    },
}
#: Grafana's interval variables, each replaced by a duration before parsing.
GRAFANA_INTERVALS = re.compile(
    r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}"
)
#: Suffixes of the samples of each metric type, as the text exposition format writes them.
SAMPLE_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


# -- helpers -----------------------------------------------------------------------------------


@cache
def _render(values_json: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        values_file = Path(tmp) / "values.yaml"
        values_file.write_text(yaml.safe_dump(json.loads(values_json)))
        proc = subprocess.run(
            [str(binaries.path("helm")), "template", "jq", str(CHART), "--namespace", "jq-system",
             "--kube-version", KUBE_VERSION, "--values", str(values_file)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def helm_template(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chart rendered with ``values`` (each value set once per session)."""
    rendered = _render(json.dumps(values, sort_keys=True))
    return [d for d in yaml.load_all(rendered, Loader=yaml.CSafeLoader) if d]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} in the rendered chart"
    return found[0]


def sample_names(family: Metric) -> set[str]:
    return {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]}


@cache
def exported() -> Mapping[str, frozenset[str]]:
    """Every sample name the three programs export -> its label names, read from their metrics
    modules' registries (the API and the worker make one per instance; the operator uses the
    default one). Label names come from the collectors themselves (``_labelnames``): a labelled
    metric that has no series yet exports no sample to read them from."""
    import jobqueue_operator.metrics  # noqa: F401 - registers the operator's metrics
    from jobqueue_api.metrics import Metrics
    from jobqueue_worker.metrics import WorkerMetrics

    out: dict[str, frozenset[str]] = {}
    for registry in (REGISTRY, Metrics().registry, WorkerMetrics().registry):
        for collector in list(registry._collector_to_names):
            own = getattr(collector, "_labelnames", None)
            for family in collector.collect():
                labels = set(own if own is not None else getattr(family, "_labelnames", ()))
                for name in sample_names(family):
                    out[name] = frozenset(labels | ({"le"} if name.endswith("_bucket") else set()))
    return out


def exported_metrics() -> frozenset[str]:
    return frozenset(exported())


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    ast = promql_parser.parse(GRAFANA_INTERVALS.sub("5m", expr))
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(ast, visit)
    return found


def selected_names(node: promql_parser.VectorSelector, expr: str) -> set[str]:
    """A selector's metric name, or the names of a ``{__name__=~"a|b"}`` alternation."""
    if node.name:
        return {node.name}
    (names,) = [m for m in node.matchers.matchers if m.name == "__name__"]
    alternatives = names.value.split("|")
    assert names.op == promql_parser.MatchOp.Re, expr
    assert all(re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", a) for a in alternatives), expr
    return set(alternatives)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (parsed by promql-parser, not guessed)."""
    return {name for node in selectors(expr) for name in selected_names(node, expr)}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(dash: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dash["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def dashboard_queries(dash: Mapping[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and query variables."""
    exprs = [t["expr"] for p in panels(dash) for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert match, f"variable {var['name']}: {query!r} is not label_values(selector, label)"
            exprs.append(match.group(1))
    return exprs


def rule_groups(values: Mapping[str, Any] = ALL_ON) -> dict[str, Any]:
    """The PrometheusRule's spec: the same shape as a Prometheus rule file."""
    spec: dict[str, Any] = one(helm_template(values), "PrometheusRule")["spec"]
    return spec


def alert_rules(groups: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in groups["groups"] for rule in group["rules"]]


def promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binaries.path("promtool")), *map(str, args)],
        capture_output=True, text=True, timeout=60, cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def helm() -> None:
    binaries.require(("helm",))


@pytest.fixture(scope="module")
def built_promtool() -> None:
    binaries.require(("promtool",))


# -- metric names ------------------------------------------------------------------------------


def test_metric_names_come_from_the_parsed_promql_not_from_labels_or_functions() -> None:
    expr = (
        'sum by (state, le) (rate(a_total{state="x", namespace=~"$namespace"}[$__rate_interval]))'
        " / on (namespace) group_left (pod) max without (instance) (b) or vector(1)"
        " + histogram_quantile(0.9, rate(c_bucket[${__rate_interval}] offset 5m)) > bool 0"
        ' unless {__name__=~"d|e_total", namespace="x"}'
    )
    assert metric_names(expr) == {"a_total", "b", "c_bucket", "d", "e_total"}


def test_exported_metrics_are_sample_names_with_each_types_suffixes() -> None:
    names = exported_metrics()
    # A counter, a histogram (prometheus_client's and the worker's own collector), a gauge.
    assert "jobqueue_api_jobs_enqueued_total" in names
    assert "jobqueue_api_jobs_enqueued" not in names
    assert {
        f"jobqueue_worker_job_duration_seconds{s}" for s in ("_bucket", "_sum", "_count")
    } <= names
    assert "jobqueue_operator_reconcile_seconds_bucket" in names
    assert "jobqueue_api_redis_up" in names


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    used = set().union(*map(metric_names, dashboard_queries(dashboard())))
    assert len(used) >= 15, used  # the extraction found the dashboard's metrics
    assert used - exported_metrics() == set()


def test_every_metric_the_alerts_use_is_exported() -> None:
    rules = alert_rules(rule_groups())
    used = set().union(*(metric_names(r["expr"]) for r in rules))
    assert len(used) >= 4, used
    assert used - exported_metrics() == set()


def test_every_label_a_query_matches_on_is_one_its_metric_has() -> None:
    """A matcher on a label the series lack never matches: the panel or alert stays empty.
    Allowed besides the metric's own labels: those Prometheus adds to every target (as the
    prometheus-operator configures it) and those the chart's PodMonitor adds."""
    relabelled = one(helm_template(ALL_ON), "PodMonitor")["spec"]["podMetricsEndpoints"][0]
    target_labels = {"namespace", "pod", "container", "endpoint", "service", "job", "instance"}
    target_labels |= {r["targetLabel"] for r in relabelled["relabelings"]}
    exprs = dashboard_queries(dashboard()) + [r["expr"] for r in alert_rules(rule_groups())]
    checked = 0
    for expr in exprs:
        for node in selectors(expr):
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    continue
                for name in selected_names(node, expr):
                    assert matcher.name in exported()[name] | target_labels, (name, matcher.name)
                    checked += 1
    assert checked >= 50, checked


# -- the dashboard -----------------------------------------------------------------------------


def test_dashboard_is_valid_grafana_dashboard_json() -> None:
    dash = dashboard()
    assert {"title", "uid", "panels", "templating", "schemaVersion", "time"} <= set(dash)
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dash["uid"])
    assert dash.get("id") is None, "an exported dashboard carries no database id"
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in panels(dash):
        pos = panel["gridPos"]
        assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        cell = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}  # fmt: skip
        assert not cells & cell, f"panel {panel['title']!r} overlaps another"
        cells |= cell
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat", "gauge", "table", "bargauge"}
        assert panel["title"] and panel.get("description"), panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            promql_parser.parse(GRAFANA_INTERVALS.sub("5m", target["expr"]))  # valid PromQL


def test_dashboard_variables_pick_datasource_namespace_and_jobqueue() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "jobqueue"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "jobqueue"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        assert variables[name]["multi"] and variables[name]["includeAll"]


def test_per_jobqueue_panels_follow_the_variables() -> None:
    """A panel on a JobQueue's metrics filters on both variables (the operator's own reconcile
    totals are not per JobQueue)."""
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            expr = target["expr"]
            if metric_names(expr) <= {"jobqueue_operator_reconciles_total",
                                      "jobqueue_operator_reconcile_seconds_bucket"}:  # fmt: skip
                continue
            for name in metric_names(expr):
                selectors = re.findall(rf"{name}\{{([^}}]*)\}}", expr)
                assert selectors, f"{panel['title']}: {name} unfiltered"
                for matchers in selectors:
                    assert 'namespace=~"$namespace"' in matchers, (panel["title"], expr)
                    assert 'jobqueue=~"$jobqueue"' in matchers, (panel["title"], expr)


def test_dashboard_covers_what_issue_22_asks_for() -> None:
    used = set().union(*map(metric_names, dashboard_queries(dashboard())))
    for metric in (
        "jobqueue_api_queue_depth",  # depth by state, DLQ size
        "jobqueue_api_queue_ready_by_priority",
        "jobqueue_api_queue_oldest_ready_age_seconds",
        "jobqueue_worker_jobs_processed_total",  # throughput, failure rate
        "jobqueue_worker_job_duration_seconds_bucket",
        "jobqueue_operator_desired_workers",
        "jobqueue_operator_current_workers",
        "jobqueue_operator_scale_decisions_total",
        "jobqueue_operator_reconcile_errors_total",
        "jobqueue_api_request_duration_seconds_count",  # API rate and errors
        "jobqueue_api_request_duration_seconds_bucket",  # API latency
    ):
        assert metric in used, metric


# -- the chart's objects -----------------------------------------------------------------------


def test_monitoring_is_off_by_default() -> None:
    kinds = {d["kind"] for d in helm_template({})}
    assert not kinds & {"PodMonitor", "PrometheusRule", "ConfigMap"}


def test_dashboard_configmap_holds_the_dashboard_for_grafanas_sidecar() -> None:
    config_map = one(helm_template(ALL_ON), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "grafana"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "JobQueue"}
    assert json.loads(config_map["data"]["jobqueue.json"]) == dashboard()


def test_pod_monitor_selects_the_api_and_worker_pods_the_operator_builds() -> None:
    from jobqueue_operator import builders
    from jobqueue_operator import constants as c

    monitor = one(helm_template(ALL_ON), "PodMonitor")["spec"]
    assert monitor["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["podMetricsEndpoints"]
    assert endpoint["port"] == c.HTTP_PORT_NAME and endpoint["path"] == "/metrics"
    selector = monitor["selector"]

    def selects(pod_labels: Mapping[str, str]) -> bool:
        if not selector["matchLabels"].items() <= pod_labels.items():
            return False
        for expr in selector["matchExpressions"]:
            assert expr["operator"] == "NotIn"
            if pod_labels.get(expr["key"]) in expr["values"]:
                return False
        return True

    for component in ("api", "worker", builders.pool_component("reports")):
        assert selects(builders.labels("emails", component)), component
    assert not selects(builders.labels("emails", c.COMPONENT_REDIS))
    # The labels the dashboard and the alerts select on come from the pod's own labels.
    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert targets == {
        "jobqueue": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
        "component": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
    }
    assert c.LABEL_INSTANCE == "app.kubernetes.io/instance"
    assert c.LABEL_COMPONENT == "app.kubernetes.io/component"


def test_pod_monitor_watches_only_the_watched_namespaces() -> None:
    values = {**ALL_ON, "watchNamespaces": ["team-a", "team-b"]}
    monitor = one(helm_template(values), "PodMonitor")["spec"]
    assert monitor["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def test_operator_service_monitor_keeps_the_metrics_own_namespace_label() -> None:
    """Per-JobQueue operator series carry namespace="<the JobQueue's>": honorLabels keeps it
    instead of renaming it exported_namespace under the operator pod's namespace."""
    monitor = one(helm_template(ALL_ON), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"podMonitor": {"enable": True}}, "additional properties 'enable' not allowed"),
        ({"prometheusRule": {"workersAtMaxFor": "30 minutes"}}, "does not match"),
        ({"prometheusRule": {"deadLetterGrowingFor": "0m"}}, "does not match"),
        ({"prometheusRule": {"oldestJobAgeSeconds": "600"}}, "got string, want integer"),
        ({"grafanaDashboard": {"namespace": "Grafana"}}, "grafanaDashboard/namespace"),
    ],
    ids=["typo", "duration", "zero", "type", "namespace"],
)
def test_bad_monitoring_values_are_refused(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    values_file = tmp_path / "bad.yaml"
    values_file.write_text(yaml.safe_dump({"monitoring": values}))
    proc = subprocess.run(
        [str(binaries.path("helm")), "template", "jq", str(CHART), "--kube-version", KUBE_VERSION,
         "--values", str(values_file)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0, f"helm template accepted {values}"
    assert message in proc.stderr, proc.stderr


# -- the alert rules under promtool ------------------------------------------------------------


@pytest.mark.usefixtures("built_promtool")
def test_prometheus_rule_passes_promtool_check_rules(tmp_path: Path) -> None:
    groups = rule_groups()
    assert {r["alert"] for r in alert_rules(groups)} == {
        "JobQueueDeadLetterGrowing",
        "JobQueueOldestJobTooOld",
        "JobQueueWorkersAtMax",
        "JobQueueRedisUnreachable",
        "JobQueueReconcileErrors",
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    proc = promtool("check", "rules", "--lint=all", "--lint-fatal", "rules.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout, proc.stdout


@pytest.mark.usefixtures("built_promtool")
def test_promtool_check_rules_can_fail(tmp_path: Path) -> None:
    groups = rule_groups()
    groups["groups"][0]["rules"][0]["expr"] = "max by (namespace (jobqueue_api_redis_up)"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    proc = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert proc.returncode != 0 and "parse error" in proc.stdout + proc.stderr


def s(metric: str, values: str, **labels: str) -> dict[str, str]:
    """One promtool input series of a JobQueue in namespace shop (pod labels as scraped)."""
    inner = ", ".join(f'{k}="{v}"' for k, v in {"namespace": "shop", **labels}.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def fires(at: str, alert: str, *labels: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [{"exp_labels": one_alert} for one_alert in labels],
    }


@pytest.mark.usefixtures("built_promtool")
def test_each_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    """promtool test rules on the defaults (for: 15m, 600 s for 5m, 30m, 2m, 10m), with the
    annotations left out (their templates are checked by check rules above)."""
    groups = rule_groups()
    for rule in alert_rules(groups):
        rule.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    dead = "jobqueue_api_queue_depth"
    age = "jobqueue_api_queue_oldest_ready_age_seconds"
    decisions = "jobqueue_operator_scale_decisions_total"
    emails = {"namespace": "shop", "jobqueue": "emails"}
    warning, critical = {"severity": "warning"}, {"severity": "critical"}
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # Two API replicas see the same queue; another queue's DLQ stays put.
                    s(dead, "0+1x60", jobqueue="emails", queue="emails", state="dead", pod="a"),
                    s(dead, "0+1x60", jobqueue="emails", queue="emails", state="dead", pod="b"),
                    s(dead, "5x60", jobqueue="emails", queue="emails:bulk", state="dead", pod="a"),
                    s(dead, "0+9x60", jobqueue="emails", queue="emails", state="ready", pod="a"),
                    # The oldest job ages a minute a minute (over 600 s from minute 11).
                    s(age, "0+60x60", jobqueue="emails", queue="emails", pod="a"),
                    s(age, "30x60", jobqueue="reports", queue="reports", pod="c"),
                    # emails is held at maxReplicas (4 polls a minute); reports is not.
                    s(decisions, "0+4x60", jobqueue="emails", reason="AtMax"),
                    s(decisions, "0+4x60", jobqueue="reports", reason="Holding"),
                    # One of emails' API pods loses Redis at minute 10.
                    s("jobqueue_api_redis_up", "1x60", jobqueue="emails", pod="a"),
                    s("jobqueue_api_redis_up", "1x9 0x50", jobqueue="emails", pod="b"),
                    s("jobqueue_api_redis_up", "1x60", jobqueue="reports", pod="c"),
                    # emails' reconciles keep failing; reports' failed once.
                    s("jobqueue_operator_reconcile_errors_total", "0+1x60", jobqueue="emails"),
                    s("jobqueue_operator_reconcile_errors_total", "0x5 1x55", jobqueue="reports"),
                ],
                "alert_rule_test": [
                    fires("10m", "JobQueueDeadLetterGrowing"),
                    fires("40m", "JobQueueDeadLetterGrowing",
                          {**emails, "queue": "emails", **warning}),
                    fires("14m", "JobQueueOldestJobTooOld"),
                    fires("20m", "JobQueueOldestJobTooOld",
                          {**emails, "queue": "emails", **warning}),
                    fires("20m", "JobQueueWorkersAtMax"),
                    fires("45m", "JobQueueWorkersAtMax", {**emails, **warning}),
                    fires("10m", "JobQueueRedisUnreachable"),
                    fires("15m", "JobQueueRedisUnreachable", {**emails, **critical}),
                    fires("5m", "JobQueueReconcileErrors"),
                    fires("30m", "JobQueueReconcileErrors", {**emails, **warning}),
                ],
            }
        ],
    }  # fmt: skip
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    proc = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
