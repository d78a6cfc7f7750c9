//! End to end: two operator instances running at once, without leader election (a failed
//! election, two Helm releases overlapping, someone running the binary locally), against one
//! Kubernetes API emulator and one moto. moto accepts a second response with the same key, so
//! only the operator's claims (`status.pendingCreate`) and its conditional status writes keep
//! the two from creating duplicates. Each instance reaches moto through its own recording proxy,
//! so the AWS calls of each can be counted.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_response_operator::crd::IntegrationResponse;
use kube::api::{Api, DeleteParams, ListParams};
use support::proxy::{Proxy, Request};
use support::stack::{Operator, Stack, WAIT, eventually, ready};

const APIS: usize = 5;
const INTEGRATIONS_PER_API: usize = 4;
/// Ten keys per integration: 20 integrations, 200 objects.
const KEYS: [&str; 10] =
    ["$default", "/2\\d\\d/", "/3\\d\\d/", "/4\\d\\d/", "/5\\d\\d/", "/400/", "/401/", "/403/", "/404/", "/500/"];
const OBJECTS: usize = APIS * INTEGRATIONS_PER_API * KEYS.len();
/// For all 200 objects to become Ready, or to be gone.
const LONG_WAIT: Duration = Duration::from_secs(120);
/// After everything is Ready: long enough for a lagging instance to act on a stale copy.
const SETTLE: Duration = Duration::from_secs(3);

/// One WebSocket integration in moto, and the objects that target it.
struct Target {
    api_id: String,
    integration_id: String,
}

/// `APIS` WebSocket APIs with `INTEGRATIONS_PER_API` MOCK integrations each.
async fn integrations(stack: &Stack) -> Vec<Target> {
    let client = stack.moto.client().await;
    let mut targets = Vec::new();
    for a in 0..APIS {
        let api = client
            .create_api()
            .name(format!("chat-{a}"))
            .protocol_type(aws_sdk_apigatewayv2::types::ProtocolType::Websocket)
            .route_selection_expression("$request.body.action")
            .send()
            .await
            .expect("create API in moto");
        let api_id = api.api_id().unwrap().to_owned();
        for _ in 0..INTEGRATIONS_PER_API {
            let integration = client
                .create_integration()
                .api_id(&api_id)
                .integration_type(aws_sdk_apigatewayv2::types::IntegrationType::Mock)
                .send()
                .await
                .expect("create integration in moto");
            targets
                .push(Target { api_id: api_id.clone(), integration_id: integration.integration_id().unwrap().into() });
        }
    }
    targets
}

fn object_name(integration: usize, key: usize) -> String {
    format!("ir-{integration:02}-{key}")
}

/// (key, id) of every response moto holds on `target`.
async fn moto_responses(stack: &Stack, target: &Target) -> Vec<(String, String)> {
    let client = stack.moto.client().await;
    let out = client
        .get_integration_responses()
        .api_id(&target.api_id)
        .integration_id(&target.integration_id)
        .send()
        .await
        .expect("list in moto");
    out.items
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.integration_response_key.unwrap_or_default(), r.integration_response_id.unwrap_or_default()))
        .collect()
}

/// AWS calls one instance made, by operation.
fn calls(requests: &[Request]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for request in requests {
        let path = request.path.split('?').next().unwrap_or_default().trim_end_matches('/');
        let operation = match (request.method.as_str(), request.is_integration_responses()) {
            ("GET", true) if request.is_list_responses() => "GetIntegrationResponses",
            ("GET", true) => "GetIntegrationResponse",
            ("POST", true) if path.ends_with("/integrationresponses") => "CreateIntegrationResponse",
            ("PATCH", true) => "UpdateIntegrationResponse",
            ("DELETE", true) => "DeleteIntegrationResponse",
            _ => "other",
        };
        *counts.entry(operation).or_default() += 1;
    }
    counts
}

/// What a stuck object looks like: finalizers, deletion, status.
fn describe(object: &IntegrationResponse) -> String {
    format!(
        "{} (generation {:?}, finalizers {:?}, deleting {}): status {}",
        object.metadata.name.as_deref().unwrap_or_default(),
        object.metadata.generation,
        object.metadata.finalizers.as_deref().unwrap_or_default(),
        object.metadata.deletion_timestamp.is_some(),
        serde_json::to_string(&object.status).unwrap_or_default(),
    )
}

/// The last `lines` lines of `operator`'s log, and every line that names one of `names`.
fn log_excerpt(label: &str, operator: &Operator, names: &[String], lines: usize) -> String {
    let logs = operator.logs();
    let all: Vec<&str> = logs.lines().collect();
    let naming: Vec<&str> =
        all.iter().copied().filter(|line| names.iter().any(|n| line.contains(n.as_str()))).take(200).collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    format!(
        "--- {label}: lines naming {names:?} ---\n{}\n--- {label}: last {lines} lines ---\n{}",
        naming.join("\n"),
        tail.join("\n")
    )
}

/// Polls every 200 ms until `done` holds for the listed objects; the time it took. On timeout,
/// panics with the objects that are not done (their status) and both operators' logs.
async fn wait_all(
    api: &Api<IntegrationResponse>,
    what: &str,
    operators: &[(&str, &Operator)],
    done: impl Fn(&IntegrationResponse) -> bool,
    expected: usize,
) -> Duration {
    let started = Instant::now();
    loop {
        let objects = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        let stuck: Vec<&IntegrationResponse> = objects.iter().filter(|o| !done(o)).collect();
        if objects.len() == expected && stuck.is_empty() {
            return started.elapsed();
        }
        if started.elapsed() > LONG_WAIT {
            let names: Vec<String> = stuck.iter().take(3).filter_map(|o| o.metadata.name.clone()).collect();
            let mut report = format!(
                "timed out after {LONG_WAIT:?} waiting for {what}: {} objects listed (expected {expected}), {} not done\n",
                objects.len(),
                stuck.len()
            );
            for object in stuck.iter().take(20) {
                report.push_str(&describe(object));
                report.push('\n');
            }
            for (label, operator) in operators {
                report.push_str(&log_excerpt(label, operator, &names, 40));
                report.push('\n');
            }
            panic!("{report}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn as_env<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Event reasons, per reporting instance.
async fn event_counts(stack: &Stack) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for event in support::stack::events(stack).await {
        let instance = event.reporting_instance.unwrap_or_default();
        let reason = format!("{}/{}", event.type_.unwrap_or_default(), event.reason.unwrap_or_default());
        *counts.entry(instance).or_default().entry(reason).or_default() += 1;
    }
    counts
}

/// For objects with a `TakenOver` Event: how many were taken over by the instance that created
/// the response (its own id write lost a race), and how many by the other instance.
async fn takeovers(stack: &Stack) -> (usize, usize) {
    let mut by_object: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for event in support::stack::events(stack).await {
        let name = event.regarding.and_then(|r| r.name).unwrap_or_default();
        by_object
            .entry(name)
            .or_default()
            .push((event.reason.unwrap_or_default(), event.reporting_instance.unwrap_or_default()));
    }
    let (mut own, mut other) = (0, 0);
    for events in by_object.values() {
        let creators: BTreeSet<&str> = events.iter().filter(|(r, _)| r == "Created").map(|(_, i)| i.as_str()).collect();
        for (_, instance) in events.iter().filter(|(r, _)| r == "TakenOver") {
            if creators.contains(instance.as_str()) { own += 1 } else { other += 1 }
        }
    }
    (own, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_without_leader_election_make_each_response_once_and_delete_them_all() {
    let stack = Arc::new(Stack::start().await);
    let targets = Arc::new(integrations(&stack).await);
    let (proxy_a, proxy_b) = (Proxy::in_front_of(&stack.moto).await, Proxy::in_front_of(&stack.moto).await);
    let settings = |name: &'static str, proxy: &Proxy| {
        vec![
            ("POD_NAME", name.to_owned()),
            ("AWS_ENDPOINT_URL_APIGATEWAYV2", proxy.endpoint.clone()),
            ("AWS_RATE_LIMIT_RPS", "100".into()),
            ("AWS_RATE_LIMIT_BURST", "50".into()),
            ("RECONCILE_CONCURRENCY", "8".into()),
        ]
    };
    let (env_a, env_b) = (settings("op-a", &proxy_a), settings("op-b", &proxy_b));
    let a = stack.operator(&as_env(&env_a));
    let b = stack.operator(&as_env(&env_b));
    let operators = [("op-a", &a), ("op-b", &b)];
    for (label, operator) in operators {
        eventually(WAIT, &format!("{label} to be ready"), Some(operator), || async {
            (operator.http_get("/readyz").await.0 == 200).then_some(())
        })
        .await;
    }

    // 200 objects at once, 10 keys on each of 20 integrations.
    let applied = Instant::now();
    let creates = (0..targets.len()).flat_map(|i| (0..KEYS.len()).map(move |k| (i, k))).map(|(i, k)| {
        let (stack, targets) = (stack.clone(), targets.clone());
        async move {
            let target = &targets[i];
            let mut object = support::integration_response(&object_name(i, k), &target.api_id, &target.integration_id);
            object.spec.integration_response_key = KEYS[k].into();
            stack.apply(&object).await;
        }
    });
    futures::future::join_all(creates).await;
    let apply_time = applied.elapsed();
    let api = stack.api();
    let has_id =
        |o: &IntegrationResponse| ready(o) && o.status.as_ref().is_some_and(|s| s.integration_response_id.is_some());
    wait_all(&api, "every object Ready with an id", &operators, has_id, OBJECTS).await;
    let to_ready = applied.elapsed();
    let ready_calls = (calls(&proxy_a.requests()), calls(&proxy_b.requests()));
    let ready_events = event_counts(&stack).await;
    let (own_takeovers, other_takeovers) = takeovers(&stack).await;
    // A lagging instance acting on a stale copy would create its duplicate now.
    tokio::time::sleep(SETTLE).await;

    // Exactly one response per (integration, key) in moto, and it is the one its object records.
    let objects = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(objects.len(), OBJECTS);
    let mut in_moto = 0;
    let mut duplicates = Vec::new();
    let mut by_target_key: BTreeMap<(usize, String), String> = BTreeMap::new();
    for (i, target) in targets.iter().enumerate() {
        let responses = moto_responses(&stack, target).await;
        in_moto += responses.len();
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, id) in responses {
            keys.entry(key).or_default().push(id);
        }
        let expected: BTreeSet<String> = KEYS.iter().map(|k| (*k).to_owned()).collect();
        assert_eq!(keys.keys().cloned().collect::<BTreeSet<_>>(), expected, "keys on integration {i}");
        for (key, ids) in keys {
            if ids.len() != 1 {
                duplicates.push(format!("integration {i} ({}) key {key}: {ids:?}", target.integration_id));
            }
            by_target_key.insert((i, key), ids[0].clone());
        }
    }
    assert!(duplicates.is_empty(), "duplicate responses in moto:\n{}", duplicates.join("\n"));
    assert_eq!(in_moto, OBJECTS, "moto holds one response per object");
    let mut ids = BTreeMap::new();
    for object in &objects {
        let name = object.metadata.name.clone().unwrap();
        let status = object.status.as_ref().unwrap();
        let i: usize = name[3..5].parse().unwrap();
        let key = &object.spec.integration_response_key;
        let id = status.integration_response_id.clone().unwrap();
        assert_eq!(Some(&id), by_target_key.get(&(i, key.clone())), "{name} records the response with its key");
        assert_eq!(status.integration_id.as_deref(), Some(targets[i].integration_id.as_str()), "{name}");
        assert!(status.pending_create.is_none() && status.pending_create_key.is_none(), "{}", describe(object));
        if let Some(other) = ids.insert(id.clone(), name.clone()) {
            panic!("{name} and {other} both record {id}");
        }
    }
    let settled_calls = (calls(&proxy_a.requests()), calls(&proxy_b.requests()));
    let creates_sent = settled_calls.0.get("CreateIntegrationResponse").copied().unwrap_or(0)
        + settled_calls.1.get("CreateIntegrationResponse").copied().unwrap_or(0);
    assert_eq!(creates_sent, OBJECTS, "one CreateIntegrationResponse per object across both instances");

    // Delete everything: both instances race to delete; nothing may leak.
    let deleted = Instant::now();
    let deletes = objects.iter().map(|o| {
        let api = api.clone();
        let name = o.metadata.name.clone().unwrap();
        async move { api.delete(&name, &DeleteParams::default()).await.expect("delete CR") }
    });
    futures::future::join_all(deletes).await;
    let delete_time = deleted.elapsed();
    wait_all(&api, "every object gone", &operators, |_| false, 0).await;
    let to_gone = deleted.elapsed();
    let mut left = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        for (key, id) in moto_responses(&stack, target).await {
            left.push(format!("integration {i} key {key} id {id}"));
        }
    }
    assert!(left.is_empty(), "responses leaked in moto:\n{}", left.join("\n"));

    let total_calls = (calls(&proxy_a.requests()), calls(&proxy_b.requests()));
    let status_patches = stack.emulator.request_count("patch", "integrationresponses/status");
    let patches = stack.emulator.request_count("patch", "integrationresponses");
    let gets = stack.emulator.request_count("get", "integrationresponses");
    println!("two writers, {OBJECTS} objects on {} integrations of {APIS} APIs", targets.len());
    println!("  applying {OBJECTS} objects took {apply_time:?}");
    println!("  time to all Ready (from the first apply): {to_ready:?}");
    println!(
        "  deleting {OBJECTS} objects took {delete_time:?}; time to all gone (from the first delete): {to_gone:?}"
    );
    println!("  AWS calls when all Ready:  op-a {:?}", ready_calls.0);
    println!("                             op-b {:?}", ready_calls.1);
    println!("  AWS calls in total:        op-a {:?}", total_calls.0);
    println!("                             op-b {:?}", total_calls.1);
    println!("  API server: {status_patches} status patches, {patches} object patches, {gets} gets");
    println!("  Events when all Ready, per instance: {ready_events:?}");
    println!("  TakenOver by the instance that created the response: {own_takeovers}, by the other: {other_takeovers}");
    println!("  Events in total, per instance: {:?}", event_counts(&stack).await);
}
