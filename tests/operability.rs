//! End to end, for the people who run the operator: leader election and hand-over, sharding,
//! metrics, readiness, a malformed object, a missing CRD. The operator binary runs as a process
//! against the Kubernetes API emulator and moto.

mod support;

use std::time::Duration;

use integration_response_operator::crd::IntegrationResponse;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_emulator::Fault;
use serde_json::json;
use support::stack::{Stack, WAIT, crd_path, events, eventually, wait_ready};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Which operator instance recorded Events about `name`.
async fn reporters_of(stack: &Stack, name: &str) -> Vec<String> {
    let mut instances: Vec<String> = events(stack)
        .await
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reporting_instance)
        .collect();
    instances.sort();
    instances.dedup();
    instances
}

async fn lease_holder(stack: &Stack) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(stack.client.clone(), "default");
    leases.get_opt("integration-response-operator").await.ok()??.spec?.holder_identity.filter(|h| !h.is_empty())
}

fn keyed(stack: &Stack, name: &str, key: &str) -> IntegrationResponse {
    let mut object = stack.cr(name);
    object.spec.integration_response_key = key.into();
    object
}

fn elected(name: &str) -> Vec<(&'static str, String)> {
    vec![("LEADER_ELECT", "true".into()), ("LEASE_DURATION", "3s".into()), ("POD_NAME", name.into())]
}

fn env<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_dies_and_at_once_when_it_exits_cleanly() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let (a_env, b_env) = (elected("op-a"), elected("op-b"));
    let mut a = stack.operator(&env(&a_env));
    eventually(WAIT, "op-a to lead", Some(&a), || async {
        (lease_holder(&stack).await.as_deref() == Some("op-a")).then_some(())
    })
    .await;
    let b = stack.operator(&env(&b_env));
    stack.apply(&keyed(&stack, "first", "/1/")).await;
    wait_ready(&stack, "first", &a).await;
    assert_eq!(reporters_of(&stack, "first").await, ["op-a"], "only the leader reconciles");
    // A healthy standby reports ready (once it has started: it may still be listing when the
    // leader has already made the first response).
    eventually(WAIT, "the standby to be ready", Some(&b), || async {
        (b.http_get("/readyz").await == (200, "ok".to_owned())).then_some(())
    })
    .await;
    let (_, metrics) = b.http_get("/metrics").await;
    assert!(metrics.contains("integration_response_operator_leader 0"), "{metrics}");

    // The leader dies without releasing: the standby waits out the lease (3 s), then leads.
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5)).await.expect("killed");
    eventually(WAIT, "op-b to lead", Some(&b), || async {
        (lease_holder(&stack).await.as_deref() == Some("op-b")).then_some(())
    })
    .await;
    stack.apply(&keyed(&stack, "second", "/2/")).await;
    wait_ready(&stack, "second", &b).await;
    assert_eq!(reporters_of(&stack, "second").await, ["op-b"]);

    // A clean exit releases the lease, so the next standby leads well before it would expire.
    let c_env = vec![("LEADER_ELECT", "true".into()), ("LEASE_DURATION", "30s".into()), ("POD_NAME", "op-c".into())];
    let c = stack.operator(&env(&c_env));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut b = b;
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(10)).await.expect("exits after SIGTERM").success(), "{}", b.logs());
    let started = std::time::Instant::now();
    eventually(Duration::from_secs(10), "op-c to lead", Some(&c), || async {
        (lease_holder(&stack).await.as_deref() == Some("op-c")).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10), "hand-over took {:?}", started.elapsed());
    stack.apply(&keyed(&stack, "third", "/3/")).await;
    wait_ready(&stack, "third", &c).await;
    assert_eq!(stack.moto_responses().await.len(), 3);
}

#[tokio::test]
async fn sharded_instances_each_reconcile_only_their_own_objects() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let a = stack.operator(&[("LABEL_SELECTOR", "shard=a"), ("POD_NAME", "shard-a")]);
    let b = stack.operator(&[("LABEL_SELECTOR", "shard=b"), ("POD_NAME", "shard-b")]);
    for (name, shard) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        let mut object = keyed(&stack, name, &format!("/{name}/"));
        object.metadata.labels = Some([("shard".to_owned(), shard.to_owned())].into());
        stack.apply(&object).await;
    }
    let mut unlabelled = keyed(&stack, "nobody", "/n/");
    unlabelled.metadata.labels = None;
    stack.apply(&unlabelled).await;
    for name in ["a1", "a2"] {
        wait_ready(&stack, name, &a).await;
        assert_eq!(reporters_of(&stack, name).await, ["shard-a"]);
    }
    wait_ready(&stack, "b1", &b).await;
    assert_eq!(reporters_of(&stack, "b1").await, ["shard-b"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let nobody = stack.api().get("nobody").await.unwrap();
    assert!(nobody.status.is_none() && nobody.metadata.finalizers.is_none(), "no instance touched it");
    assert_eq!(stack.moto_responses().await.len(), 3);
}

#[tokio::test]
async fn metrics_move_with_the_work_done() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let operator = stack.operator(&[]);
    eventually(WAIT, "ready", Some(&operator), || async {
        (operator.http_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let (code, before) = operator.http_get("/metrics").await;
    assert_eq!(code, 200);
    // Families without label sets yet appear once something is counted; these exist from the start.
    assert!(before.contains("integration_response_operator_leader 1"), "{before}");
    assert!(before.contains(r#"integration_response_operator_objects{state="ready"} 0"#));
    assert!(before.contains("integration_response_operator_watch_restarts_total 0"));

    stack.apply(&stack.cr("errors")).await;
    wait_ready(&stack, "errors", &operator).await;
    let mut orphan = support::integration_response("orphan", &stack.api_id, "missing");
    orphan.spec.integration_response_key = "$default".into();
    stack.apply(&orphan).await;
    // A dropped watch that cannot be re-established at once is a restart (a clean resume from
    // the last resourceVersion is not).
    stack.emulator.faults().add(Fault::fail("watch", "integrationresponses", 500, 1));
    stack.emulator.drop_watches();
    let after = eventually(WAIT, "metrics to move", Some(&operator), || async {
        let (_, text) = operator.http_get("/metrics").await;
        // The gauge moves inside the reconcile, its result is counted when it returns.
        (text.contains(r#"integration_response_operator_objects{state="progressing"} 1"#)
            && text.contains(r#"integration_response_operator_reconciles_total{result="dependency_not_found"}"#)
            && !text.contains("integration_response_operator_watch_restarts_total 0"))
        .then_some(text)
    })
    .await;
    assert!(after.contains(r#"integration_response_operator_objects{state="ready"} 1"#), "{after}");
    assert!(
        after.contains(
            r#"integration_response_operator_aws_calls_total{operation="CreateIntegrationResponse",outcome="ok",account="self"} 1"#
        ),
        "{after}"
    );
    assert!(after.contains(r#"operation="GetIntegrationResponses",outcome="not_found""#), "{after}");
    assert!(after.contains(r#"integration_response_operator_reconciles_total{result="ok"}"#));
    // The emulator validates Events as kube-apiserver does: every one was stored.
    assert!(after.contains("integration_response_operator_event_write_failures_total 0"), "{after}");
    for family in [
        "aws_calls",
        "aws_pacer_wait_seconds",
        "reconciles",
        "reconcile_duration_seconds",
        "objects",
        "leader",
        "watch_restarts",
        "event_write_failures",
    ] {
        assert!(
            after.contains(&format!("# TYPE integration_response_operator_{family} ")),
            "{family} missing:\n{after}"
        );
    }
}

#[tokio::test]
async fn readiness_waits_for_the_watch_to_sync() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    stack.emulator.faults().add(Fault::delay("list", "integrationresponses", Duration::from_secs(3), 2));
    let operator = stack.operator(&[]);
    eventually(WAIT, "the admin server", Some(&operator), || async {
        (operator.http_get("/livez").await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(operator.http_get("/readyz").await.0, 503, "not ready while the initial list is outstanding");
    eventually(WAIT, "ready", Some(&operator), || async {
        (operator.http_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_malformed_object_does_not_stop_the_others() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    // As if written under an older schema: apiId is a number.
    stack.emulator.insert_raw(
        "integrationresponses",
        "default",
        "broken",
        json!({
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1", "kind": "IntegrationResponse",
            "metadata": {"name": "broken", "namespace": "default", "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"apiId": 42, "integrationId": "x", "integrationResponseKey": "$default"},
        }),
    );
    let operator = stack.operator(&[]);
    stack.apply(&stack.cr("fine")).await;
    wait_ready(&stack, "fine", &operator).await;
    let warnings: Vec<_> =
        events(&stack).await.into_iter().filter(|e| e.reason.as_deref() == Some("InvalidObject")).collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].regarding.as_ref().unwrap().name.as_deref(), Some("broken"));
}

#[tokio::test]
async fn a_missing_crd_is_reported_and_waited_for() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start_with_crd(false).await;
    let operator = stack.operator(&[]);
    eventually(WAIT, "the missing-CRD message", Some(&operator), || async {
        operator.logs().contains("the IntegrationResponse CRD is not installed").then_some(())
    })
    .await;
    assert_eq!(operator.http_get("/readyz").await.0, 503);
    stack.emulator.add_crd(&std::fs::read_to_string(crd_path()).unwrap()).unwrap();
    eventually(WAIT, "ready once the CRD exists", Some(&operator), || async {
        (operator.http_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    stack.apply(&stack.cr("errors")).await;
    wait_ready(&stack, "errors", &operator).await;
}

/// The `objects` gauge counts watched objects only: one that leaves the label selector, or whose
/// finalizer someone removes by hand, stops being counted.
#[tokio::test]
async fn objects_that_leave_the_watch_leave_the_gauges() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let operator = stack.operator(&[("LABEL_SELECTOR", "shard=a")]);
    for (name, key) in [("leaves", "/4\\d\\d/"), ("unfinalized", "/5\\d\\d/")] {
        let mut object = keyed(&stack, name, key);
        object.metadata.labels = Some([("shard".to_owned(), "a".to_owned())].into());
        stack.apply(&object).await;
        wait_ready(&stack, name, &operator).await;
    }
    let ready = |count: u32| format!("integration_response_operator_objects{{state=\"ready\"}} {count}");
    let gauge_reads = |want: String| {
        let operator = &operator;
        async move {
            eventually(WAIT, &want.clone(), Some(operator), || {
                let want = want.clone();
                async move { operator.http_get("/metrics").await.1.contains(&want).then_some(()) }
            })
            .await
        }
    };
    gauge_reads(ready(2)).await;

    // Relabelled out of this instance's selector: the watch reports it deleted.
    let patch = kube::api::Patch::Merge(json!({"metadata": {"labels": {"shard": "b"}}}));
    stack.api().patch("leaves", &Default::default(), &patch).await.unwrap();
    gauge_reads(ready(1)).await;

    // Finalizer removed by hand, then deleted: gone without a cleanup by the operator.
    let patch = kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}}));
    stack.api().patch("unfinalized", &Default::default(), &patch).await.unwrap();
    stack.api().delete("unfinalized", &Default::default()).await.unwrap();
    gauge_reads(ready(0)).await;
    let (_, text) = operator.http_get("/metrics").await;
    for state in ["progressing", "stalled"] {
        assert!(text.contains(&format!("integration_response_operator_objects{{state=\"{state}\"}} 0")), "{text}");
    }
}
