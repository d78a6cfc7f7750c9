"""Checks of the Helm chart: lint, rendering with several value sets, strict validation against the
Kubernetes schemas, the restricted Pod Security Standard, least-privilege RBAC, the values schema,
and the CRD copy. Needs HELM (path to helm) and kubernetes-validate; scripts/test.sh provides both."""
import filecmp
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "integration-response-operator"
CRD = "integrationresponses.apigatewayv2.aws.operator.rs.yaml"
CRDS = [CRD, "iamroleselectors.apigatewayv2.aws.operator.rs.yaml"]
HELM = os.environ.get("HELM", "helm")

VALUE_SETS = {
    "defaults": [],
    "namespaced": ["--set", "operator.watchNamespaces={team-a,team-b}"],
    "monitoring": ["--set", "metrics.serviceMonitor.enabled=true", "--set", "podDisruptionBudget.enabled=true"],
    "templated-crd": ["--set", "crds.templated=true", "--skip-crds"],
    "ha": ["--set", "replicaCount=2", "--set", "podDisruptionBudget.enabled=true"],
    "cluster-scoped-references": ["--set", "references.crossplane.allowClusterScoped=true",
                                  "--set", "operator.watchNamespaces={team-a}"],
    "irsa": ["--set", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/x",
             "--set", "operator.defaultRegion=eu-west-1", "--set", "operator.awsEndpoint=http://127.0.0.1:5000"],
}


def helm(*args, check=True):
    return subprocess.run([HELM, *args], capture_output=True, text=True, check=check)


def template(extra):
    # As installed: crds/ included unless the value set installs the CRD as a template instead.
    crds = [] if "--skip-crds" in extra else ["--include-crds"]
    return helm("template", "iro", str(CHART), "--namespace", "operators", *crds, *extra).stdout


def render(extra):
    return [d for d in yaml.safe_load_all(template(extra)) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def test_lint_is_clean():
    result = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_manifests_pass_strict_kubernetes_validation(name, tmp_path):
    path = tmp_path / "rendered.yaml"
    path.write_text(template(VALUE_SETS[name]))
    result = subprocess.run(["kubernetes-validate", "--strict", "-k", "1.33.0", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed for resource deployment/" in result.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_pod_meets_the_restricted_pod_security_standard(name):
    [deployment] = by_kind(render(VALUE_SETS[name]), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert all("hostPath" not in v for v in pod.get("volumes", []))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert not sc["capabilities"].get("add")
        assert sc["readOnlyRootFilesystem"] is True
        assert not sc.get("privileged")
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def env_of(docs):
    [deployment] = by_kind(docs, "Deployment")
    return {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_operator_settings_reach_the_environment():
    env = env_of(render(VALUE_SETS["irsa"] + ["--set", "operator.labelSelector=shard=a"]))
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_ENDPOINT_URL_APIGATEWAYV2"] == "http://127.0.0.1:5000"
    assert env["RESYNC_PERIOD"] == "10m"
    assert env["AWS_RATE_LIMIT_RPS"] == "5"
    assert env["LABEL_SELECTOR"] == "shard=a"
    assert "WATCH_NAMESPACE" not in env
    assert env_of(render(VALUE_SETS["namespaced"]))["WATCH_NAMESPACE"] == "team-a,team-b"


def test_image_tag_defaults_to_app_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    [deployment] = by_kind(render([]), "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":" + chart["appVersion"])


EXPECTED_RULES = [
    (["apigatewayv2.aws.operator.rs"], ["integrationresponses"], ["get", "list", "watch", "patch"]),
    (["apigatewayv2.aws.operator.rs"], ["integrationresponses/status"], ["patch"]),
    (["apigatewayv2.aws.operator.rs"], ["integrationresponses/finalizers"], ["update"]),
    (["events.k8s.io"], ["events"], ["create", "patch"]),
]
# Cluster-scoped, so always a ClusterRole: read the selectors, write their status, read namespaces' labels.
SELECTOR_RULES = [
    (["apigatewayv2.aws.operator.rs"], ["iamroleselectors"], ["get", "list", "watch"]),
    (["apigatewayv2.aws.operator.rs"], ["iamroleselectors/status"], ["patch"]),
    ([""], ["namespaces"], ["get"]),
]
ACK_RULE = (["apigatewayv2.services.k8s.aws"], ["integrations", "apis"], ["get", "list", "watch"])
CROSSPLANE_RULE = (["apigatewayv2.aws.m.upbound.io"], ["integrations"], ["get", "list", "watch"])


def rules(role):
    return [(r["apiGroups"], r["resources"], r["verbs"]) for r in role["rules"]]


def test_rbac_is_least_privilege_and_cluster_wide_by_default():
    docs = render([])
    role, selectors = by_kind(docs, "ClusterRole")
    assert rules(role) == EXPECTED_RULES + [ACK_RULE, CROSSPLANE_RULE]
    assert rules(selectors) == SELECTOR_RULES
    binding, _ = by_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == "operators"


def test_more_than_one_replica_turns_on_leader_election_with_a_lease_role():
    docs = render(VALUE_SETS["ha"])
    env = env_of(docs)
    assert env["LEADER_ELECT"] == "true"
    assert env["LEASE_NAMESPACE"] == "operators"
    assert env["LEASE_NAME"] == "iro-integration-response-operator"
    [deployment] = by_kind(docs, "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    [role] = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("leader-election")]
    assert role["metadata"]["namespace"] == "operators"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [env["LEASE_NAME"]], "verbs": ["get", "update"]},
    ]


def test_one_replica_runs_without_election_and_never_side_by_side():
    docs = render([])
    assert "LEADER_ELECT" not in env_of(docs)
    [deployment] = by_kind(docs, "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert not by_kind(docs, "Role")


def test_rbac_is_namespaced_when_the_watch_is():
    docs = render(VALUE_SETS["namespaced"])
    # Only the selectors' (cluster-scoped) rules stay cluster-wide.
    [cluster_role] = by_kind(docs, "ClusterRole")
    assert rules(cluster_role) == SELECTOR_RULES
    assert len(by_kind(docs, "ClusterRoleBinding")) == 1
    roles = [r for r in by_kind(docs, "Role") if not r["metadata"]["name"].endswith("leader-election")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(rules(r) == EXPECTED_RULES + [ACK_RULE, CROSSPLANE_RULE] for r in roles)
    assert sorted(b["metadata"]["namespace"] for b in by_kind(docs, "RoleBinding")) == ["team-a", "team-b"]


def test_templated_crds_are_kept_on_uninstall_and_match_the_files():
    crds = by_kind(render(VALUE_SETS["templated-crd"]), "CustomResourceDefinition")
    assert len(crds) == len(CRDS)
    for crd, name in zip(crds, CRDS):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        original = yaml.safe_load((ROOT / "crds" / name).read_text())
        assert crd["spec"] == original["spec"]


@pytest.mark.parametrize("name", CRDS)
def test_chart_crds_are_the_generated_crds(name):
    assert filecmp.cmp(ROOT / "crds" / name, CHART / "crds" / name, shallow=False), "run: cp crds/*.yaml charts/integration-response-operator/crds/"


@pytest.mark.parametrize("setting,message", [
    ("replicaCount=-1", "minimum"),
    ("leaderElection.leaseDuration=forever", "pattern"),
    ("operator.logFormat=xml", "plain"),
    ("operator.awsRateLimitRps=20", "maximum"),
    ("operator.resyncPeriod=often", "pattern"),
    ("operator.defaultRegion=Mars", "pattern"),
    ("image.pullPolicy=Sometimes", "IfNotPresent"),
    ("colour=blue", "additional properties"),
])
def test_wrong_values_fail_with_a_clear_message(setting, message):
    result = helm("template", "iro", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0, f"{setting} was accepted"
    assert message in result.stderr, result.stderr


# Periods, concurrency and rates that would make the operator loop or stall (issue 9): the
# schema refuses them at install, as the operator refuses them at start (src/cli.rs).
LOOPING_VALUES = [
    ("operator.resyncPeriod", "\"0s\"", "does not match pattern"),
    ("operator.resyncPeriod", "0", "want string"),
    ("operator.resyncPeriod", "\"0\"", "does not match pattern"),
    ("operator.resyncPeriod", "\"999ms\"", "does not match pattern"),
    ("operator.resyncPeriod", "\"0h\"", "does not match pattern"),
    ("operator.concurrency", "0", "minimum: got 0, want 1"),
    ("operator.concurrency", "65", "maximum: got 65, want 64"),
    ("operator.awsRateLimitRps", "-1", "minimum: got -1, want 0"),
    ("operator.awsRateLimitRps", "0.05", "minimum: got 0.05, want 0.1"),
    ("operator.awsRateLimitRps", "10.5", "maximum: got 10.5, want 10"),
    ("operator.awsRateLimitBurst", "0", "minimum: got 0, want 1"),
    ("operator.awsRateLimitBurst", "101", "maximum: got 101, want 100"),
    ("leaderElection.leaseDuration", "\"2s\"", "does not match pattern"),
    ("leaderElection.leaseDuration", "\"2999ms\"", "does not match pattern"),
]


@pytest.mark.parametrize("key,value,message", LOOPING_VALUES)
def test_values_that_would_loop_or_stall_are_refused(key, value, message):
    # --set-json: --set would turn 0.05 into a string and "0" into a number.
    setting = f"{key}={value}"
    for command in ("template", "lint"):
        args = [command, "iro", str(CHART)] if command == "template" else [command, "--strict", str(CHART)]
        result = helm(*args, "--set-json", setting, check=False)
        assert result.returncode != 0, f"helm {command} accepted {setting}"
        assert message in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("key,value,env_name,env_value", [
    ("operator.resyncPeriod", "\"1s\"", "RESYNC_PERIOD", "1s"),
    ("operator.resyncPeriod", "\"1000ms\"", "RESYNC_PERIOD", "1000ms"),
    ("operator.resyncPeriod", "\"1h30m\"", "RESYNC_PERIOD", "1h30m"),
    ("operator.resyncPeriod", "\"24h\"", "RESYNC_PERIOD", "24h"),
    ("operator.concurrency", "1", "RECONCILE_CONCURRENCY", "1"),
    ("operator.concurrency", "64", "RECONCILE_CONCURRENCY", "64"),
    ("operator.awsRateLimitRps", "0", "AWS_RATE_LIMIT_RPS", "0"),
    ("operator.awsRateLimitRps", "0.1", "AWS_RATE_LIMIT_RPS", "0.1"),
    ("operator.awsRateLimitRps", "10", "AWS_RATE_LIMIT_RPS", "10"),
    ("operator.awsRateLimitBurst", "1", "AWS_RATE_LIMIT_BURST", "1"),
    ("operator.awsRateLimitBurst", "100", "AWS_RATE_LIMIT_BURST", "100"),
])
def test_values_at_the_bounds_are_accepted(key, value, env_name, env_value):
    assert env_of(render(["--set-json", f"{key}={value}"]))[env_name] == env_value


@pytest.mark.parametrize("duration", ["3s", "3000ms", "15s", "1m"])
def test_lease_durations_from_three_seconds_are_accepted(duration):
    env = env_of(render(VALUE_SETS["ha"] + ["--set", f"leaderElection.leaseDuration={duration}"]))
    assert env["LEASE_DURATION"] == duration


def test_defaults_are_within_the_bounds():
    env = env_of(render([]))
    assert (env["RESYNC_PERIOD"], env["RECONCILE_CONCURRENCY"]) == ("10m", "4")
    assert (env["AWS_RATE_LIMIT_RPS"], env["AWS_RATE_LIMIT_BURST"]) == ("5", "5")
    result = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout, result.stdout + result.stderr


def test_service_monitor_needs_the_metrics_service():
    result = helm("template", "iro", str(CHART), "--set", "metrics.serviceMonitor.enabled=true",
                  "--set", "metrics.service.enabled=false", check=False)
    assert result.returncode != 0 and "needs metrics.service.enabled" in result.stderr


def test_argocd_cm_patch_embeds_the_tested_health_check():
    patch = yaml.safe_load((ROOT / "deploy" / "argocd-cm-patch.yaml").read_text())
    embedded = patch["data"]["resource.customizations.health.apigatewayv2.aws.operator.rs_IntegrationResponse"]
    assert embedded == (ROOT / "argocd" / "health.lua").read_text()


def test_argocd_application_example_orders_operator_before_objects():
    apps = list(yaml.safe_load_all((ROOT / "deploy" / "argocd-application.yaml").read_text()))
    waves = {a["metadata"]["name"]: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for a in apps}
    assert waves["integration-response-operator"] < waves["websocket-integration-responses"]
    assert apps[0]["spec"]["source"]["path"] == "charts/integration-response-operator"


def test_iam_policy_grants_only_integration_response_calls():
    import json
    policy = json.loads((ROOT / "deploy" / "iam-policy.json").read_text())
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["apigateway:DELETE", "apigateway:GET", "apigateway:PATCH", "apigateway:POST"]
    assert all("/integrationresponses" in r for r in statement["Resource"])


def test_multi_account_iam_is_assume_role_only_and_the_trust_needs_the_external_id():
    import json
    operator = json.loads((ROOT / "deploy" / "iam-policy-assume-roles.json").read_text())
    [statement] = operator["Statement"]
    assert statement["Action"] == ["sts:AssumeRole"]
    assert all(r.startswith("arn:aws:iam::*:role/") for r in statement["Resource"])
    trust = json.loads((ROOT / "deploy" / "iam-tenant-role-trust-policy.json").read_text())
    [statement] = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"]["AWS"].endswith(":role/integration-response-operator")
    assert "sts:ExternalId" in statement["Condition"]["StringEquals"]
    selector = yaml.safe_load((ROOT / "deploy" / "iam-role-selector-example.yaml").read_text())
    assert selector["kind"] == "IAMRoleSelector"
    assert selector["spec"]["roleArn"].endswith(":role/integration-response-operator")


# Monitoring: the PrometheusRule and the Grafana dashboard ConfigMap (issue 14). tests/monitoring.rs
# checks every expression against a scrape of the operator; these check the rendered objects.
MONITORING = ["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true",
              "--set", "metrics.dashboard.enabled=true"]
ALERTS = ["IntegrationResponseOperatorObjectsStalled", "IntegrationResponseOperatorAwsThrottled",
          "IntegrationResponseOperatorReconcileErrors", "IntegrationResponseOperatorNoLeader",
          "IntegrationResponseOperatorWatchRestarts", "IntegrationResponseOperatorDown"]
PROMETHEUS_DURATION = r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"


def github_anchor(heading):
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    import re
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def readme_anchors():
    anchors = set()
    in_code = False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(github_anchor(line.lstrip("#")))
    return anchors


def prometheus_rule(extra=()):
    [rule] = by_kind(render(MONITORING + list(extra)), "PrometheusRule")
    return rule


def test_monitoring_objects_are_off_by_default():
    kinds = {d["kind"] for d in render([])}
    assert "PrometheusRule" not in kinds and "ConfigMap" not in kinds
    assert not by_kind(render(["--set", "metrics.serviceMonitor.enabled=true"]), "PrometheusRule")


def test_monitoring_values_pass_strict_validation_for_the_built_in_kinds(tmp_path):
    # kubernetes-validate knows no PrometheusRule or ServiceMonitor: validate the rest strictly,
    # and the PrometheusRule's structure below.
    docs = [d for d in render(MONITORING) if d["kind"] not in ("PrometheusRule", "ServiceMonitor")]
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    result = subprocess.run(["kubernetes-validate", "--strict", "-k", "1.33.0", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed for resource configmap/iro-integration-response-operator-dashboard" in result.stdout, result.stdout


def test_prometheus_rule_has_every_alert_with_what_to_do_and_a_runbook_in_the_readme():
    import re
    rule = prometheus_rule()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "operators"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(rule["spec"]) == {"groups"}
    anchors = readme_anchors()
    alerts = []
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        for r in group["rules"]:
            assert set(r) == {"alert", "expr", "for", "labels", "annotations"}, r
            alerts.append(r["alert"])
            assert isinstance(r["expr"], str) and r["expr"].strip()
            assert re.match(PROMETHEUS_DURATION, r["for"]) and r["for"], r["for"]
            assert r["labels"]["severity"] in ("warning", "critical")
            annotations = r["annotations"]
            assert set(annotations) == {"summary", "description", "runbook_url"}
            assert annotations["summary"].strip() and len(annotations["description"]) > 80
            base, anchor = annotations["runbook_url"].split("#")
            assert base == "https://github.com/integration-response-operator/integration-response-operator/blob/v0.1.0/README.md"
            assert anchor == r["alert"].lower() and anchor in anchors, f"README.md has no heading for #{anchor}"
            # Scoped to this release's target, as the ServiceMonitor names it.
            assert 'job="iro-integration-response-operator-metrics", namespace="operators"' in r["expr"]
    assert alerts == ALERTS


def test_prometheus_rule_takes_thresholds_labels_job_and_runbook_base_from_values():
    rule = prometheus_rule([
        "--set", "metrics.prometheusRule.additionalLabels.release=kube-prometheus-stack",
        "--set", "metrics.prometheusRule.job=custom", "--set", "metrics.prometheusRule.runbookBaseUrl=https://wiki.example/iro",
        "--set", "metrics.prometheusRule.thresholds.stalledFor=1h", "--set", "metrics.prometheusRule.thresholds.watchRestarts=7",
        "--set-json", "metrics.prometheusRule.thresholds.awsThrottledRatio=0.25",
        "--set", "metrics.prometheusRule.thresholds.watchRestartsWindow=2h",
    ])
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert rules["IntegrationResponseOperatorObjectsStalled"]["for"] == "1h"
    assert rules["IntegrationResponseOperatorWatchRestarts"]["expr"].endswith("[2h])) > 7")
    assert rules["IntegrationResponseOperatorAwsThrottled"]["expr"].rstrip().endswith("> 0.25")
    assert "25%" in rules["IntegrationResponseOperatorAwsThrottled"]["annotations"]["summary"]
    for r in rules.values():
        assert 'job="custom"' in r["expr"]
        assert r["annotations"]["runbook_url"] == "https://wiki.example/iro#" + r["alert"].lower()


@pytest.mark.parametrize("setting,message", [
    ("metrics.prometheusRule.thresholds.stalledFor=soon", "does not match pattern"),
    ("metrics.prometheusRule.thresholds.awsThrottledRatio=2", "maximum"),
    ("metrics.prometheusRule.thresholds.reconcileErrorRatio=0", "exclusiveMinimum"),
    ("metrics.prometheusRule.runbookBaseUrl=https://x/README.md#a", "does not match pattern"),
    ("metrics.prometheusRule.severity=page", "additional properties"),
    ("metrics.dashboard.labels.grafana_dashboard=1", "want string"),
])
def test_wrong_monitoring_values_are_refused(setting, message):
    flag = "--set-json" if "grafana_dashboard" in setting else "--set"
    result = helm("template", "iro", str(CHART), flag, setting, check=False)
    assert result.returncode != 0, f"{setting} was accepted"
    assert message in result.stderr, result.stderr


def test_dashboard_config_map_is_labelled_for_the_grafana_sidecar_and_carries_the_file():
    import json
    [config_map] = by_kind(render(MONITORING + ["--set", "metrics.dashboard.annotations.grafana_folder=Operators"]), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Operators"}
    [(key, text)] = config_map["data"].items()
    assert key.endswith(".json")
    assert json.loads(text) == json.loads((CHART / "dashboards" / "integration-response-operator.json").read_text())
    # A sidecar with its own label: Helm merges maps, so null drops the default label.
    [moved] = by_kind(render(["--set", "metrics.dashboard.enabled=true", "--set", "metrics.dashboard.namespace=grafana",
                              "--set", "metrics.dashboard.labels.dashboards=grafana",
                              "--set", "metrics.dashboard.labels.grafana_dashboard=null"]), "ConfigMap")
    assert moved["metadata"]["namespace"] == "grafana"
    assert moved["metadata"]["labels"]["dashboards"] == "grafana" and "grafana_dashboard" not in moved["metadata"]["labels"]


def test_one_place_holds_the_version():
    import tomllib
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert cargo == chart["version"] == chart["appVersion"], (cargo, chart["version"], chart["appVersion"])
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["tag"] == "", "the default image tag follows appVersion"
    [deployment] = by_kind(render([]), "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f'{values["image"]["repository"]}:{chart["appVersion"]}'


@pytest.mark.parametrize("ack, crossplane, granted, references", [
    (True, True, [ACK_RULE, CROSSPLANE_RULE], "ack,crossplane"),
    (True, False, [ACK_RULE], "ack"),
    (False, True, [CROSSPLANE_RULE], "crossplane"),
    (False, False, [], "none"),
])
def test_reference_kinds_are_read_only_and_each_switchable(ack, crossplane, granted, references):
    docs = render(["--set", f"references.ack.enabled={str(ack).lower()}",
                   "--set", f"references.crossplane.enabled={str(crossplane).lower()}"])
    role, _ = by_kind(docs, "ClusterRole")
    assert rules(role) == EXPECTED_RULES + granted
    env = env_of(docs)
    assert env["REFERENCES"] == references
    assert env["ALLOW_CLUSTER_SCOPED_REFS"] == "false"


def test_cluster_scoped_crossplane_references_need_their_own_switch_and_a_cluster_role():
    docs = render(VALUE_SETS["cluster-scoped-references"])
    assert env_of(docs)["ALLOW_CLUSTER_SCOPED_REFS"] == "true"
    [cluster_role] = [r for r in by_kind(docs, "ClusterRole") if rules(r) != SELECTOR_RULES]
    assert cluster_role["metadata"]["name"].endswith("cluster-scoped-references")
    assert rules(cluster_role) == [(["apigatewayv2.aws.upbound.io"], ["integrations"], ["get", "list", "watch"])]
    assert any(b["roleRef"]["name"] == cluster_role["metadata"]["name"] for b in by_kind(docs, "ClusterRoleBinding"))
    # Not without Crossplane references at all.
    off = render(VALUE_SETS["cluster-scoped-references"] + ["--set", "references.crossplane.enabled=false"])
    assert [rules(r) for r in by_kind(off, "ClusterRole")] == [SELECTOR_RULES]
    assert env_of(off)["ALLOW_CLUSTER_SCOPED_REFS"] == "false"
