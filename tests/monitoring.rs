//! The chart's alerts and dashboard name only what the operator exports. Both are rendered with
//! `helm template` as a user would install them; every expression is parsed with a PromQL parser
//! and each selector (metric name, label names, label values) is checked against a scrape of the
//! real operator binary's `/metrics`, taken after it has been driven through the situations the
//! alerts are about (AWS throttling, a Kubernetes API error, a watch restart).
//!
//! Needs helm (`HELM` or on `PATH`) and moto (`MOTO_SERVER` or on `PATH`); without them the
//! tests fail with install advice: `scripts/install-test-tools.sh && . .tools/env`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use integration_response_operator::metrics::{Metrics, ObjectState};
use kube_emulator::Fault;
use prometheus_client::registry::Registry;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, LabelModifier, VectorSelector};
use serde_json::Value;
use support::proxy::Proxy;
use support::stack::{Stack, WAIT, eventually, wait_ready};

const CHART: &str = "charts/integration-response-operator";
const RELEASE: &str = "iro";
const NAMESPACE: &str = "operators";
/// The job the chart's ServiceMonitor gives the operator: the metrics Service's name.
const JOB: &str = "iro-integration-response-operator-metrics";

/// Labels Prometheus adds to every series of a target found by a ServiceMonitor. The operator's
/// own labels never use these names.
const TARGET_LABELS: [&str; 7] = ["job", "namespace", "instance", "pod", "service", "endpoint", "container"];

/// Grafana's interval variables, which only Grafana can expand, as a concrete range.
const GRAFANA_INTERVALS: [(&str, &str); 3] = [("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h")];

/// What a scrape exports: each sample name, with the values seen for each of its labels.
#[derive(Debug, Default)]
struct Exported {
    samples: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Exported {
    /// Reads the text format. Every sample's name must be one its family's `# TYPE` line allows:
    /// a counter `x` exports `x_total`, a histogram `x` exports `x_bucket` (with `le`), `x_sum`
    /// and `x_count`, a gauge `x` exports `x`.
    fn parse(text: &str) -> Self {
        let mut allowed = BTreeSet::new();
        let mut exported = Self::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (family, kind) = rest.split_once(' ').expect("# TYPE name kind");
                let names: Vec<String> = match kind {
                    "counter" => vec![format!("{family}_total")],
                    "gauge" => vec![family.to_owned()],
                    "histogram" => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{family}{s}")).collect(),
                    other => panic!("family {family} has a type this test does not know: {other}"),
                };
                allowed.extend(names);
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name, labels) = sample(line);
            assert!(allowed.contains(&name), "sample {name} belongs to no family declared before it:\n{text}");
            let entry = exported.samples.entry(name).or_default();
            for (label, value) in labels {
                entry.entry(label).or_default().insert(value);
            }
        }
        let missing: Vec<_> = allowed.iter().filter(|n| !exported.samples.contains_key(*n)).collect();
        assert!(
            missing.is_empty(),
            "the scrape has no samples yet for {missing:?}; drive the operator further:\n{text}"
        );
        exported
    }
}

/// One sample line: `name{a="x",b="y"} value` or `name value`.
fn sample(line: &str) -> (String, Vec<(String, String)>) {
    let Some((name, rest)) = line.split_once('{') else {
        let name = line.split_whitespace().next().expect("sample name");
        return (name.to_owned(), vec![]);
    };
    let mut labels = vec![];
    let mut chars = rest.chars();
    loop {
        let label: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let label = label.trim_start_matches(',').to_owned();
        if label.starts_with('}') || label.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "label value is quoted in {line}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("cut escape in {line}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((label, value));
        if chars.as_str().starts_with('}') {
            break;
        }
    }
    (name.to_owned(), labels)
}

/// One selector of an expression: its metric name and label matchers.
struct Selector {
    name: String,
    matchers: Vec<Matcher>,
}

/// An expression taken apart: its selectors, and for each `by (...)` aggregation the labels it
/// groups by with the range of `selectors` beneath it.
#[derive(Default)]
struct Parts {
    selectors: Vec<Selector>,
    groupings: Vec<(Vec<String>, std::ops::Range<usize>)>,
    problems: Vec<String>,
}

impl Parts {
    fn parse(expr: &str) -> Result<Self, String> {
        let ast = parser::parse(expr).map_err(|err| format!("does not parse: {err}: {expr}"))?;
        let mut parts = Self::default();
        parts.walk(&ast, expr);
        Ok(parts)
    }

    fn walk(&mut self, node: &Expr, expr: &str) {
        match node {
            Expr::Aggregate(aggregate) => {
                let first = self.selectors.len();
                self.walk(&aggregate.expr, expr);
                if let Some(param) = &aggregate.param {
                    self.walk(param, expr);
                }
                if let Some(LabelModifier::Include(labels)) = &aggregate.modifier {
                    self.groupings.push((labels.labels.clone(), first..self.selectors.len()));
                }
            }
            Expr::Unary(unary) => self.walk(&unary.expr, expr),
            Expr::Binary(binary) => {
                self.walk(&binary.lhs, expr);
                self.walk(&binary.rhs, expr);
            }
            Expr::Paren(paren) => self.walk(&paren.expr, expr),
            Expr::Subquery(subquery) => self.walk(&subquery.expr, expr),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
            Expr::VectorSelector(vs) => self.selector(vs, expr),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs, expr),
            Expr::Call(call) => call.args.args.iter().for_each(|arg| self.walk(arg, expr)),
            Expr::Extension(_) => self.problems.push(format!("an extension node: {expr}")),
        }
    }

    /// The metric name comes from `name{...}` or `{__name__="name"}`; anything looser is refused,
    /// since it could not be checked.
    fn selector(&mut self, vs: &VectorSelector, expr: &str) {
        let mut matchers = vs.matchers.matchers.clone();
        matchers.extend(vs.matchers.or_matchers.iter().flatten().cloned());
        let by_matcher: Vec<&Matcher> = matchers.iter().filter(|m| m.name == "__name__").collect();
        let name = match (&vs.name, by_matcher.as_slice()) {
            (Some(name), []) => name.clone(),
            (None, [Matcher { op: MatchOp::Equal, value, .. }]) => value.clone(),
            _ => {
                self.problems.push(format!("a selector without one plain metric name: {expr}"));
                return;
            }
        };
        matchers.retain(|m| m.name != "__name__");
        self.selectors.push(Selector { name, matchers });
    }
}

/// What is wrong with `expr` against `exported`: a parse error, a metric the operator does not
/// export, a label it never sets, a label value it never uses, a grouping label none of the
/// aggregated metrics has. Empty when the expression is sound.
fn problems(expr: &str, exported: &Exported) -> Vec<String> {
    let parts = match Parts::parse(expr) {
        Ok(parts) => parts,
        Err(problem) => return vec![problem],
    };
    let mut problems = parts.problems;
    for Selector { name, matchers } in &parts.selectors {
        let Some(labels) = exported.samples.get(name) else {
            problems.push(format!("{name} is not exported by the operator (in: {expr})"));
            continue;
        };
        for matcher in matchers.iter().filter(|m| !TARGET_LABELS.contains(&m.name.as_str())) {
            let Some(values) = labels.get(&matcher.name) else {
                problems.push(format!("{name} has no label {} (in: {expr})", matcher.name));
                continue;
            };
            let wanted: Vec<&str> = match &matcher.op {
                MatchOp::Equal | MatchOp::NotEqual => vec![matcher.value.as_str()],
                MatchOp::Re(_) | MatchOp::NotRe(_) => {
                    let words: Vec<&str> = matcher.value.split('|').collect();
                    if words.iter().any(|w| w.is_empty() || !w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
                        problems.push(format!(
                            "{name}: the regex {:?} is not a list of values this test can check (in: {expr})",
                            matcher.value
                        ));
                        continue;
                    }
                    words
                }
            };
            for value in wanted.into_iter().filter(|v| !values.contains(*v)) {
                problems.push(format!("{name} never has {}={value:?}; seen: {values:?} (in: {expr})", matcher.name));
            }
        }
    }
    for (labels, range) in &parts.groupings {
        let beneath = &parts.selectors[range.clone()];
        for label in labels.iter().filter(|l| !TARGET_LABELS.contains(&l.as_str())) {
            let somewhere =
                beneath.iter().any(|s| exported.samples.get(&s.name).is_some_and(|l| l.contains_key(label)));
            if !somewhere {
                problems.push(format!("grouping by {label}, which none of its metrics has (in: {expr})"));
            }
        }
    }
    problems
}

/// Every selector of `expr` carries these equality or regex matchers.
fn scoped(expr: &str, wanted: &[(&str, &str)]) -> bool {
    let parts = Parts::parse(expr).expect("parses");
    !parts.selectors.is_empty()
        && parts.selectors.iter().all(|s| {
            wanted.iter().all(|(label, value)| s.matchers.iter().any(|m| m.name == *label && m.value == *value))
        })
}

fn helm(args: &[&str]) -> String {
    let program = std::env::var("HELM").unwrap_or_else(|_| "helm".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(&program)
        .current_dir(root)
        .args(["template", RELEASE, CHART, "--namespace", NAMESPACE])
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run {program} ({err}); install it with: scripts/install-test-tools.sh && . .tools/env")
        });
    assert!(output.status.success(), "helm template failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|err| panic!("rendered YAML does not parse: {err}\n{text}"))
}

/// The alerting rules as the chart renders them: (alert name, expression).
fn rendered_alerts() -> Vec<(String, String)> {
    let rule =
        yaml(&helm(&["--set", "metrics.prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml"]));
    let alerts: Vec<(String, String)> = rule["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules").iter())
        .map(|rule| {
            let alert = rule["alert"].as_str().expect("an alerting rule").to_owned();
            let expr = rule["expr"].as_str().unwrap_or_else(|| panic!("{alert} has an expr")).to_owned();
            (alert, expr)
        })
        .collect();
    assert_eq!(alerts.len(), 6, "{alerts:?}");
    alerts
}

/// The dashboard as the chart's ConfigMap carries it.
fn rendered_dashboard() -> Value {
    let config_map =
        yaml(&helm(&["--set", "metrics.dashboard.enabled=true", "--show-only", "templates/dashboard.yaml"]));
    let text = config_map["data"]["integration-response-operator.json"].as_str().expect("the dashboard's key");
    serde_json::from_str(text).unwrap_or_else(|err| panic!("the dashboard is not JSON: {err}"))
}

fn panels(dashboard: &Value) -> Vec<&Value> {
    fn collect<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            collect(&panel["panels"], out);
        }
    }
    let mut out = vec![];
    collect(&dashboard["panels"], &mut out);
    out
}

/// Every PromQL expression of the dashboard: panel targets and variable queries, with Grafana's
/// interval variables replaced by a concrete range. `label_values(selector, label)` contributes its
/// selector, and its label as a grouping on it.
fn dashboard_expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut exprs = vec![];
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let mut expr = target["expr"].as_str().expect("every target has an expr").to_owned();
            for (variable, range) in GRAFANA_INTERVALS {
                expr = expr.replace(variable, range);
            }
            exprs.push((format!("panel {}", panel["title"]), expr));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("templating") {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"].as_str().expect("query variable");
        let inner = query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')).expect("label_values(...)");
        let (selector, label) = inner.rsplit_once(',').expect("label_values(selector, label)");
        exprs.push((format!("variable {}", variable["name"]), format!("count by ({}) ({selector})", label.trim())));
    }
    exprs
}

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn metrics_text(operator: &support::stack::Operator) -> String {
    let (code, text) = operator.http_get("/metrics").await;
    assert_eq!(code, 200, "{text}");
    text
}

/// Scrapes the real operator after it has met AWS throttling, a Kubernetes API error and a watch
/// restart, so that every series an alert looks for has been exported at least once.
async fn scrape_after_trouble() -> String {
    let stack = Stack::start().await;
    let proxy = Proxy::in_front_of(&stack.moto).await;
    let operator = stack.operator(&[("AWS_ENDPOINT_URL_APIGATEWAYV2", proxy.endpoint.as_str())]);
    eventually(WAIT, "ready", Some(&operator), || async {
        (operator.http_get("/readyz").await.0 == 200).then_some(())
    })
    .await;

    let mut object = stack.cr("fine");
    object.spec.integration_response_key = "/fine/".into();
    stack.apply(&object).await;
    wait_ready(&stack, "fine", &operator).await;

    proxy.throttle();
    let mut object = stack.cr("throttled");
    object.spec.integration_response_key = "/throttled/".into();
    stack.apply(&object).await;
    eventually(WAIT, "a throttled call and a transient reconcile", Some(&operator), || async {
        let text = metrics_text(&operator).await;
        (text.contains(r#"outcome="throttled""#) && text.contains(r#"result="transient""#)).then_some(())
    })
    .await;
    proxy.up();
    wait_ready(&stack, "throttled", &operator).await;

    // The finalizer's patch fails once: a Kubernetes API error.
    stack.emulator.faults().add(Fault::fail("patch", "integrationresponses", 500, 1));
    let mut object = stack.cr("kube-error");
    object.spec.integration_response_key = "/kube-error/".into();
    stack.apply(&object).await;
    wait_ready(&stack, "kube-error", &operator).await;

    stack.emulator.faults().add(Fault::fail("watch", "integrationresponses", 500, 1));
    stack.emulator.drop_watches();
    eventually(WAIT, "a kube_error reconcile and a watch restart", Some(&operator), || async {
        let text = metrics_text(&operator).await;
        (text.contains(r#"result="kube_error""#)
            && !text.contains("integration_response_operator_watch_restarts_total 0"))
        .then_some(text)
    })
    .await
}

#[tokio::test]
async fn every_alert_and_panel_names_only_series_the_running_operator_exports() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let exported = Exported::parse(&scrape_after_trouble().await);
    // The exact sample names, so that a counter without `_total` or a gauge with `_bucket` fails.
    let names: Vec<&str> = exported.samples.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "integration_response_operator_aws_calls_total",
            "integration_response_operator_aws_pacer_wait_seconds_bucket",
            "integration_response_operator_aws_pacer_wait_seconds_count",
            "integration_response_operator_aws_pacer_wait_seconds_sum",
            "integration_response_operator_event_write_failures_total",
            "integration_response_operator_leader",
            "integration_response_operator_objects",
            "integration_response_operator_reconcile_duration_seconds_bucket",
            "integration_response_operator_reconcile_duration_seconds_count",
            "integration_response_operator_reconcile_duration_seconds_sum",
            "integration_response_operator_reconciles_total",
            "integration_response_operator_watch_restarts_total",
        ]
    );

    let mut checked = BTreeSet::new();
    let mut all_problems = vec![];
    for (origin, expr) in rendered_alerts().into_iter().chain(dashboard_expressions(&rendered_dashboard())) {
        for problem in problems(&expr, &exported) {
            all_problems.push(format!("{origin}: {problem}"));
        }
        if let Ok(parts) = Parts::parse(&expr) {
            checked.extend(parts.selectors.into_iter().map(|s| s.name));
        }
    }
    assert!(all_problems.is_empty(), "{}", all_problems.join("\n"));
    // Every series the operator exports is on the dashboard (bucket and sum/count of both histograms).
    let unused: Vec<_> = names.iter().filter(|n| !checked.contains(**n)).collect();
    assert!(unused.is_empty(), "exported but on no panel or alert: {unused:?}");
}

/// The same check, fed with expressions that are wrong, against a scrape of the operator's own
/// registry: it reports each mistake (so the test above can fail).
#[test]
fn an_expression_naming_what_the_operator_does_not_export_is_reported() {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    metrics.count_aws_call("GetIntegrationResponse", "throttled", "self");
    metrics.observe_reconcile("ok", Duration::from_millis(3));
    metrics.observe_pacer_wait(Duration::ZERO, "self");
    metrics.set_object_state("default/a", Some(ObjectState::Stalled));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let exported = Exported::parse(&text);

    let sound = r#"sum by (operation, pod) (rate(integration_response_operator_aws_calls_total{outcome="throttled", job="x"}[5m]))"#;
    assert_eq!(problems(sound, &exported), Vec::<String>::new());
    let wrong = [
        ("integration_response_operator_reconcile_errors_total", "is not exported"),
        // A counter's family name without `_total`, and a histogram family without a suffix.
        ("rate(integration_response_operator_aws_calls[5m])", "aws_calls is not exported"),
        ("integration_response_operator_reconcile_duration_seconds", "is not exported"),
        ("integration_response_operator_leader_bucket", "is not exported"),
        ("integration_response_operator_objects_total", "is not exported"),
        (r#"integration_response_operator_objects{phase="stalled"}"#, "has no label phase"),
        (r#"integration_response_operator_objects{state="Stalled"}"#, "never has state=\"Stalled\""),
        (r#"integration_response_operator_reconciles_total{result=~"ok|eror"}"#, "never has result=\"eror\""),
        (r#"integration_response_operator_reconciles_total{result=~"k.*"}"#, "not a list of values"),
        ("sum by (state) (integration_response_operator_leader)", "grouping by state"),
        (r#"{__name__=~"integration_response_operator_.+"}"#, "without one plain metric name"),
        ("rate(integration_response_operator_leader[$__rate_interval])", "does not parse"),
    ];
    for (expr, expected) in wrong {
        let found = problems(expr, &exported);
        assert!(found.iter().any(|p| p.contains(expected)), "{expr}: expected {expected:?}, got {found:?}");
    }
}

#[test]
fn alerts_are_scoped_to_the_release_and_parse() {
    for (alert, expr) in rendered_alerts() {
        assert!(
            scoped(&expr, &[("job", JOB), ("namespace", NAMESPACE)]),
            "{alert}: every selector needs job={JOB:?} and namespace={NAMESPACE:?}: {expr}"
        );
    }
}

#[test]
fn the_dashboard_has_unique_panel_ids_and_every_query_uses_the_datasource_and_scope_variables() {
    let dashboard = rendered_dashboard();
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(CHART).join("dashboards/integration-response-operator.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(dashboard, on_disk, "the ConfigMap carries the file as it is");

    let variables: BTreeMap<&str, &Value> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().expect("variable name"), v))
        .collect();
    let datasource = variables.get("datasource").expect("a datasource variable");
    assert_eq!((&datasource["type"], &datasource["query"]), (&Value::from("datasource"), &Value::from("prometheus")));
    for name in ["namespace", "job"] {
        let variable = variables.get(name).unwrap_or_else(|| panic!("a {name} variable"));
        assert_eq!(variable["datasource"]["uid"], "${datasource}", "{name} queries the chosen data source");
    }

    let panels = panels(&dashboard);
    assert!(panels.len() >= 7, "objects, reconciles, duration, AWS calls, pacer, leader, watch restarts");
    let ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().expect("numeric panel id")).collect();
    let unique: BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "panel ids repeat: {ids:?}");
    for panel in &panels {
        let title = &panel["title"];
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {title}");
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("panel {title} has targets"));
        assert!(!targets.is_empty(), "panel {title} has targets");
        let refs: BTreeSet<_> = targets.iter().map(|t| t["refId"].as_str().expect("refId")).collect();
        assert_eq!(refs.len(), targets.len(), "panel {title}: refIds repeat");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "panel {title}");
        }
    }
    for (origin, expr) in dashboard_expressions(&dashboard).into_iter().filter(|(o, _)| o.starts_with("panel")) {
        assert!(
            scoped(&expr, &[("namespace", "$namespace"), ("job", "$job")]),
            "{origin}: every selector needs namespace=~\"$namespace\" and job=~\"$job\": {expr}"
        );
    }
}
