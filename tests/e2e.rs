//! End to end: the real operator binary, as a process, against the Kubernetes API emulator and a
//! real moto_server. Each test asserts on both the Kubernetes object and what moto holds.
//! Tests run one at a time: each starts its own processes, and the machine has two cores.

mod support;

use std::sync::Arc;
use std::time::Duration;

use integration_response_operator::crd::{DeletionPolicy, IntegrationResponse};
use integration_response_operator::references::RefKind;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube_emulator::Fault;
use serde_json::json;
use support::stack::{Operator, Stack, WAIT, events, eventually, ready, wait_ready};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn wait_gone(stack: &Stack, name: &str, operator: &Operator) {
    let api = stack.api();
    eventually(WAIT, &format!("{name} to be deleted"), Some(operator), || {
        let api = api.clone();
        async move { api.get_opt(name).await.unwrap().is_none().then_some(()) }
    })
    .await
}

/// Waits until every one of `expected` ("Type/Reason") is stored as an Event regarding `name`.
/// The emulator validates Events as kube-apiserver does, so this shows that they are accepted.
async fn wait_events(stack: &Stack, name: &str, expected: &[&str], operator: &Operator) -> Vec<String> {
    eventually(WAIT, &format!("Events {expected:?} for {name}"), Some(operator), || async {
        let stored: Vec<String> = events(stack)
            .await
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| format!("{}/{}", e.type_.unwrap_or_default(), e.reason.unwrap_or_default()))
            .collect();
        expected.iter().all(|want| stored.iter().any(|have| have == want)).then_some(stored)
    })
    .await
}

#[tokio::test]
async fn an_applied_cr_becomes_ready_with_exactly_one_response_in_aws() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let operator = stack.operator(&[]);
    stack.apply(&stack.cr("errors")).await;
    let object = wait_ready(&stack, "errors", &operator).await;

    let status = object.status.unwrap();
    let in_aws = stack.moto_responses().await;
    assert_eq!(in_aws.len(), 1);
    let response = &in_aws[0];
    assert_eq!(status.integration_response_id.as_deref(), response.integration_response_id());
    assert_eq!(response.integration_response_key(), Some("/4\\d\\d/"));
    assert_eq!(response.template_selection_expression(), Some("$integration.response.statuscode"));
    assert_eq!(response.response_parameters().unwrap()["method.response.header.X-Failed"], "'true'");
    assert_eq!(status.region.as_deref(), Some("us-east-1"));
    assert_eq!(object.metadata.finalizers.unwrap(), ["apigatewayv2.aws.operator.rs/finalizer"]);
    wait_events(&stack, "errors", &["Normal/Created"], &operator).await;
}

#[tokio::test]
async fn spec_changes_update_aws_in_place() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let operator = stack.operator(&[]);
    stack.apply(&stack.cr("errors")).await;
    let before = wait_ready(&stack, "errors", &operator).await;
    let change = json!({"spec": {
        "integrationResponseKey": "/5\\d\\d/",
        "responseTemplates": {"application/json": "{\"v\": 2}"},
        // A merge patch merges maps: null removes the old parameter.
        "responseParameters": {"method.response.header.X-Failed": null, "method.response.header.X-Version": "'2'"},
    }});
    stack.api().patch("errors", &PatchParams::default(), &Patch::Merge(change)).await.unwrap();
    let after = wait_ready(&stack, "errors", &operator).await;
    assert_eq!(after.status.as_ref().unwrap().observed_generation, Some(2));

    let in_aws = stack.moto_responses().await;
    assert_eq!(in_aws.len(), 1, "updated in place, no second response");
    let response = &in_aws[0];
    assert_eq!(response.integration_response_id(), before.status.unwrap().integration_response_id.as_deref());
    assert_eq!(response.integration_response_key(), Some("/5\\d\\d/"));
    assert_eq!(response.response_templates().unwrap()["application/json"], "{\"v\": 2}");
    let parameters = response.response_parameters().unwrap();
    assert_eq!(parameters.len(), 1);
    assert_eq!(parameters["method.response.header.X-Version"], "'2'");
    let stored = wait_events(&stack, "errors", &["Normal/Created", "Normal/Updated"], &operator).await;
    assert!(!stored.iter().any(|e| e.ends_with("/DriftCorrected")), "a spec edit is no drift: {stored:?}");
}

#[tokio::test]
async fn drift_is_put_back_and_a_deleted_response_is_recreated() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let operator = stack.operator(&[("RESYNC_PERIOD", "1s")]);
    stack.apply(&stack.cr("errors")).await;
    let object = wait_ready(&stack, "errors", &operator).await;
    let id = object.status.unwrap().integration_response_id.unwrap();
    let aws = stack.moto.client().await;

    aws.update_integration_response()
        .api_id(&stack.api_id)
        .integration_id(&stack.integration_id)
        .integration_response_id(&id)
        .template_selection_expression("$request.body.hacked")
        .send()
        .await
        .unwrap();
    eventually(WAIT, "drift to be corrected", Some(&operator), || async {
        let responses = stack.moto_responses().await;
        (responses[0].template_selection_expression() == Some("$integration.response.statuscode")).then_some(())
    })
    .await;

    aws.delete_integration_response()
        .api_id(&stack.api_id)
        .integration_id(&stack.integration_id)
        .integration_response_id(&id)
        .send()
        .await
        .unwrap();
    let recreated = eventually(WAIT, "the response to be recreated", Some(&operator), || async {
        let responses = stack.moto_responses().await;
        let new_id = responses.first().and_then(|r| r.integration_response_id()).map(str::to_owned);
        new_id.filter(|new| *new != id)
    })
    .await;
    eventually(WAIT, "status to record the new id", Some(&operator), || async {
        let status = stack.api().get("errors").await.unwrap().status.unwrap();
        (status.integration_response_id.as_deref() == Some(recreated.as_str())).then_some(())
    })
    .await;
    assert_eq!(stack.moto_responses().await.len(), 1);
    wait_events(&stack, "errors", &["Normal/Created", "Normal/DriftCorrected", "Normal/Recreated"], &operator).await;
}

#[tokio::test]
async fn deleting_the_cr_deletes_in_aws_unless_retained() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let operator = stack.operator(&[]);
    stack.apply(&stack.cr("gone")).await;
    let mut kept = stack.cr("kept");
    kept.spec.integration_response_key = "$default".into();
    kept.spec.deletion_policy = Some(DeletionPolicy::Retain);
    stack.apply(&kept).await;
    wait_ready(&stack, "gone", &operator).await;
    let kept_id = wait_ready(&stack, "kept", &operator).await.status.unwrap().integration_response_id.unwrap();
    assert_eq!(stack.moto_responses().await.len(), 2);

    stack.api().delete("gone", &DeleteParams::default()).await.unwrap();
    wait_gone(&stack, "gone", &operator).await;
    stack.api().delete("kept", &DeleteParams::default()).await.unwrap();
    wait_gone(&stack, "kept", &operator).await;

    let left: Vec<_> = stack.moto_responses().await.into_iter().filter_map(|r| r.integration_response_id).collect();
    assert_eq!(left, [kept_id], "Delete removed its response; Retain kept its own");
    wait_events(&stack, "gone", &["Normal/Created", "Normal/Deleted"], &operator).await;
    wait_events(&stack, "kept", &["Normal/Created", "Normal/Retained"], &operator).await;
}

#[tokio::test]
async fn invalid_specs_are_refused_at_apply_and_nothing_reaches_aws() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let operator = stack.operator(&[]);
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        stack.client.clone(),
        "default",
        &kube::api::ApiResource::erase::<IntegrationResponse>(&()),
    );
    let cases = [
        (
            json!({"integrationId": stack.integration_id, "integrationResponseKey": "$default"}),
            "spec: Invalid value: \"object\": set either apiId and integrationId, or integrationRef, but not both",
        ),
        (
            json!({"apiId": stack.api_id, "integrationId": stack.integration_id, "integrationResponseKey": "foo"}),
            "integrationResponseKey must be $default or a regular expression wrapped in slashes",
        ),
        (
            json!({"apiId": stack.api_id, "integrationId": stack.integration_id, "integrationResponseKey": "$default", "contentHandlingStrategy": "BOGUS"}),
            "Unsupported value: \"BOGUS\"",
        ),
        (
            json!({"apiId": stack.api_id, "integrationId": stack.integration_id, "integrationResponseKey": "$default", "deletionPolicy": "Orphan"}),
            "Unsupported value: \"Orphan\"",
        ),
    ];
    for (spec, expected) in cases {
        let object = serde_json::from_value(json!({
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1", "kind": "IntegrationResponse",
            "metadata": {"name": "bad"}, "spec": spec,
        }))
        .unwrap();
        match api.create(&Default::default(), &object).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422);
                assert!(status.message.contains(expected), "{} does not say {expected:?}", status.message);
            }
            other => panic!("expected a 422, got {other:?}"),
        }
    }
    // Changing apiId of an existing object is refused too.
    stack.apply(&stack.cr("good")).await;
    wait_ready(&stack, "good", &operator).await;
    let err = stack
        .api()
        .patch("good", &PatchParams::default(), &Patch::Merge(json!({"spec": {"apiId": "other"}})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("apiId is immutable"), "{err}");
    assert_eq!(stack.moto_responses().await.len(), 1, "only the valid object reached AWS");
}

#[tokio::test]
async fn a_missing_integration_is_reported_and_the_cr_stays_deletable() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let operator = stack.operator(&[]);
    let orphan = support::integration_response("orphan", &stack.api_id, "does-not-exist");
    stack.apply(&orphan).await;
    let api = stack.api();
    eventually(WAIT, "DependencyNotFound", Some(&operator), || {
        let api = api.clone();
        async move {
            let object = api.get("orphan").await.ok()?;
            let ready = object.status?.condition("Ready").cloned()?;
            (ready.status == "False" && ready.reason == "DependencyNotFound").then_some(())
        }
    })
    .await;
    // Retried slowly: a second look is not due for at least 15 s.
    let lists = stack.emulator.request_count("patch", "integrationresponses/status");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.emulator.request_count("patch", "integrationresponses/status"), lists, "no hot retry");

    wait_events(&stack, "orphan", &["Warning/DependencyNotFound"], &operator).await;

    api.delete("orphan", &DeleteParams::default()).await.unwrap();
    wait_gone(&stack, "orphan", &operator).await;
}

#[tokio::test]
async fn a_crash_between_the_create_and_the_status_write_makes_no_duplicate() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    // The first status write (the pending key) goes through; every later one fails, so the id
    // never reaches the API server.
    stack.emulator.faults().add(Fault::fail("patch", "integrationresponses/status", 500, 1_000).after(1));
    // The same pod, restarted: it recognises its own claim at once.
    let mut first = stack.operator(&[("POD_NAME", "operator-0")]);
    stack.apply(&stack.cr("errors")).await;
    eventually(WAIT, "the create to reach AWS", Some(&first), || async {
        (!stack.moto_responses().await.is_empty()).then_some(())
    })
    .await;
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5)).await.expect("killed");
    let status = stack.api().get("errors").await.unwrap().status.unwrap();
    assert_eq!(status.integration_response_id, None, "the id was never written");
    assert_eq!(status.claimed_key(), Some("/4\\d\\d/"));

    stack.emulator.faults().clear();
    let second = stack.operator(&[("POD_NAME", "operator-0")]);
    let object = wait_ready(&stack, "errors", &second).await;
    let in_aws = stack.moto_responses().await;
    assert_eq!(in_aws.len(), 1, "exactly one integration response");
    assert_eq!(object.status.unwrap().integration_response_id.as_deref(), in_aws[0].integration_response_id());
    wait_events(&stack, "errors", &["Normal/TakenOver"], &second).await;
}

#[tokio::test]
async fn the_operator_converges_through_api_server_faults() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let faults = stack.emulator.faults();
    faults.add(Fault::fail("patch", "integrationresponses/status", 409, 2));
    faults.add(Fault::fail("patch", "integrationresponses/status", 500, 2));
    faults.add(Fault::fail("patch", "integrationresponses", 500, 1));
    let operator = stack.operator(&[]);
    for name in ["a", "b", "c"] {
        let mut object = stack.cr(name);
        object.spec.integration_response_key = format!("/{name}/");
        stack.apply(&object).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.emulator.drop_watches();
    for name in ["a", "b", "c"] {
        wait_ready(&stack, name, &operator).await;
    }
    // Written after the watches dropped: seen through the re-established watch.
    let mut late = stack.cr("d");
    late.spec.integration_response_key = "/d/".into();
    stack.apply(&late).await;
    wait_ready(&stack, "d", &operator).await;
    let mut keys: Vec<_> =
        stack.moto_responses().await.into_iter().filter_map(|r| r.integration_response_key).collect();
    keys.sort();
    assert_eq!(keys, ["/a/", "/b/", "/c/", "/d/"]);
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_and_exits_zero() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let mut operator = stack.operator(&[]);
    stack.apply(&stack.cr("errors")).await;
    wait_ready(&stack, "errors", &operator).await;
    let (code, _) = operator.http_get("/readyz").await;
    assert_eq!(code, 200);
    operator.signal("TERM");
    let status = operator.wait_exit(Duration::from_secs(10)).await.expect("exits promptly after SIGTERM");
    assert!(status.success(), "exit status {status:?}\n{}", operator.logs());
}

#[tokio::test]
async fn a_hundred_crs_applied_at_once_all_become_ready_without_duplicates() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let operator = stack.operator(&[("AWS_RATE_LIMIT_RPS", "0"), ("RECONCILE_CONCURRENCY", "8")]);
    let stack = Arc::new(stack);
    let creates = (0..100).map(|i| {
        let stack = stack.clone();
        async move {
            let mut object = stack.cr(&format!("r{i:03}"));
            object.spec.integration_response_key = format!("/{i}\\d/");
            stack.apply(&object).await;
        }
    });
    futures::future::join_all(creates).await;
    let api = stack.api();
    eventually(Duration::from_secs(90), "100 Ready objects", Some(&operator), || {
        let api = api.clone();
        async move {
            let objects = api.list(&ListParams::default()).await.ok()?;
            (objects.items.len() == 100 && objects.items.iter().all(ready)).then_some(())
        }
    })
    .await;
    let responses = stack.moto_responses().await;
    assert_eq!(responses.len(), 100);
    let mut keys: Vec<_> = responses.iter().filter_map(|r| r.integration_response_key()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 100, "every object has its own response");
    let mut ids: Vec<_> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|o| o.status?.integration_response_id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The reasons of every Warning Event recorded in the `default` namespace.
async fn warning_reasons(stack: &Stack) -> Vec<String> {
    events(stack)
        .await
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| e.reason.unwrap_or_default())
        .collect()
}

/// An IntegrationResponse that takes its API and integration from another controller's object.
fn referencing(stack: &Stack, name: &str, api_version: &str, target: &str) -> IntegrationResponse {
    let mut object = stack.cr(name);
    object.spec.api_id = None;
    object.spec.integration_id = None;
    object.spec.integration_ref = Some(integration_response_operator::crd::IntegrationRef {
        api_version: api_version.into(),
        kind: "Integration".into(),
        name: target.into(),
    });
    object
}

async fn reason_of(stack: &Stack, name: &str) -> Option<String> {
    let object = stack.api().get(name).await.ok()?;
    let status = object.status?;
    (status.observed_generation == object.metadata.generation).then_some(())?;
    status.condition("Ready").map(|c| c.reason.clone())
}

/// The IntegrationResponse `via` waits for the referenced Integration; once `integration` is
/// created and its status set to `usable`, it becomes Ready on the stack's integration, woken by
/// the watch on that kind; when both are deleted, the response goes from AWS.
async fn follows_the_reference(kind: RefKind, integration: serde_json::Value, usable: serde_json::Value, waits: &str) {
    let fixture = fixture(match kind {
        RefKind::Ack => "ack-integrations.yaml",
        RefKind::Crossplane => "crossplane-cluster-integrations.yaml",
        RefKind::CrossplaneNamespaced => "crossplane-integrations.yaml",
    });
    let stack = Stack::start_with_crds(true, &[&fixture]).await;
    let allow = if kind.namespaced() { "false" } else { "true" };
    let operator = stack.operator(&[("ALLOW_CLUSTER_SCOPED_REFS", allow)]);
    stack.apply(&referencing(&stack, "via", &kind.api_version(), "chat")).await;
    eventually(WAIT, "waiting for its reference", Some(&operator), || async {
        (reason_of(&stack, "via").await.as_deref() == Some("ReferenceNotReady")).then_some(())
    })
    .await;
    let message = stack.api().get("via").await.unwrap().status.unwrap().condition("Ready").unwrap().message.clone();
    assert_eq!(message, format!("Waiting for {waits}: waiting for it to be created."));

    // The other controller makes its Integration and, later, reports it usable.
    let integrations: Api<kube::api::DynamicObject> = if kind.namespaced() {
        Api::namespaced_with(stack.client.clone(), "default", &kind.integrations())
    } else {
        Api::all_with(stack.client.clone(), &kind.integrations())
    };
    let ids = json!({"apiId": stack.api_id, "integrationId": stack.integration_id});
    let fill = |value: serde_json::Value| -> serde_json::Value {
        let text = value.to_string().replace("API_ID", ids["apiId"].as_str().unwrap());
        serde_json::from_str(&text.replace("INTEGRATION_ID", ids["integrationId"].as_str().unwrap())).unwrap()
    };
    let object = serde_json::from_value(fill(integration)).unwrap();
    integrations.create(&Default::default(), &object).await.unwrap();
    eventually(WAIT, "waiting for it to be usable", Some(&operator), || async {
        let object = stack.api().get("via").await.ok()?;
        let message = object.status?.condition("Ready")?.message.clone();
        (!message.ends_with("waiting for it to be created.")).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    integrations.patch_status("chat", &PatchParams::default(), &Patch::Merge(&fill(usable))).await.unwrap();
    let object = wait_ready(&stack, "via", &operator).await;
    // Its next retry was 15 s or more away (the dependency schedule): the watch woke it.
    assert!(started.elapsed() < Duration::from_secs(12), "woken by the watch, took {:?}", started.elapsed());
    let status = object.status.unwrap();
    assert_eq!(status.api_id.as_deref(), Some(stack.api_id.as_str()));
    assert_eq!(status.integration_id.as_deref(), Some(stack.integration_id.as_str()));
    assert_eq!(status.region.as_deref(), Some("us-east-1"));
    let in_aws = stack.moto_responses().await;
    assert_eq!(in_aws.len(), 1);
    assert_eq!(in_aws[0].integration_response_id(), status.integration_response_id.as_deref());

    // The Integration goes first (an Argo CD prune, say); ours is still deleted in AWS, by what
    // its status recorded.
    integrations.delete("chat", &DeleteParams::default()).await.unwrap();
    stack.api().delete("via", &DeleteParams::default()).await.unwrap();
    wait_gone(&stack, "via", &operator).await;
    assert_eq!(stack.moto_responses().await, Vec::new());
    assert_eq!(warning_reasons(&stack).await, Vec::<String>::new(), "waiting for a reference is not a failure");
}

/// As an Argo CD sync would: ACK's API and Integration (the Integration naming the API by
/// reference) and two IntegrationResponses, all applied at once. The test then acts as ACK: a few
/// seconds later it writes the ids of the API and integration made in moto into their status.
#[tokio::test]
async fn objects_applied_with_acks_api_and_integration_are_ready_once_ack_has_synced_them() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let fixtures = [fixture("ack-integrations.yaml"), fixture("ack-apis.yaml")];
    let stack = Stack::start_with_crds(true, &[&fixtures[0], &fixtures[1]]).await;
    let operator = stack.operator(&[]);
    let ack = |plural: &str, kind: &str| {
        Api::<kube::api::DynamicObject>::namespaced_with(
            stack.client.clone(),
            "default",
            &kube::api::ApiResource {
                group: "apigatewayv2.services.k8s.aws".into(),
                version: "v1alpha1".into(),
                api_version: "apigatewayv2.services.k8s.aws/v1alpha1".into(),
                kind: kind.into(),
                plural: plural.into(),
            },
        )
    };
    let (apis, integrations) = (ack("apis", "API"), ack("integrations", "Integration"));
    let api = serde_json::from_value(json!({
        "apiVersion": "apigatewayv2.services.k8s.aws/v1alpha1", "kind": "API",
        "metadata": {"name": "chat-api"},
        "spec": {"name": "chat", "protocolType": "WEBSOCKET", "routeSelectionExpression": "$request.body.action"},
    }))
    .unwrap();
    let integration = serde_json::from_value(json!({
        "apiVersion": "apigatewayv2.services.k8s.aws/v1alpha1", "kind": "Integration",
        "metadata": {"name": "chat", "annotations": {"services.k8s.aws/region": "us-east-1"}},
        "spec": {"apiRef": {"from": {"name": "chat-api"}}, "integrationType": "MOCK"},
    }))
    .unwrap();
    apis.create(&Default::default(), &api).await.unwrap();
    integrations.create(&Default::default(), &integration).await.unwrap();
    let mut second = referencing(&stack, "via-ack-2", "apigatewayv2.services.k8s.aws/v1alpha1", "chat");
    second.spec.integration_response_key = "$default".into();
    stack.apply(&referencing(&stack, "via-ack", "apigatewayv2.services.k8s.aws/v1alpha1", "chat")).await;
    stack.apply(&second).await;
    for name in ["via-ack", "via-ack-2"] {
        let message = eventually(WAIT, &format!("{name} waiting for ACK"), Some(&operator), || async {
            let object = stack.api().get(name).await.ok()?;
            (reason_of(&stack, name).await.as_deref() == Some("ReferenceNotReady"))
                .then(|| object.status.unwrap().condition("Ready").unwrap().message.clone())
        })
        .await;
        assert_eq!(
            message,
            "Waiting for ACK Integration default/chat: waiting for its ACK.ResourceSynced condition to be True."
        );
    }

    // ACK reconciles: the API first, the integration a little later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let synced = |field: &str, id: &str| json!({"status": {field: id, "conditions": [{"type": "ACK.ResourceSynced", "status": "True"}]}});
    apis.patch_status("chat-api", &PatchParams::default(), &Patch::Merge(&synced("apiID", &stack.api_id)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    integrations
        .patch_status("chat", &PatchParams::default(), &Patch::Merge(&synced("integrationID", &stack.integration_id)))
        .await
        .unwrap();
    for name in ["via-ack", "via-ack-2"] {
        let object = wait_ready(&stack, name, &operator).await;
        let status = object.status.unwrap();
        assert_eq!(status.api_id.as_deref(), Some(stack.api_id.as_str()), "the API id from the ACK API");
        assert_eq!(status.integration_id.as_deref(), Some(stack.integration_id.as_str()));
    }
    // The objects' next retries were 30 s or more away: the watch on ACK's Integrations woke them.
    assert!(started.elapsed() < Duration::from_secs(5), "woken by the watch, took {:?}", started.elapsed());
    assert_eq!(stack.moto_responses().await.len(), 2);
    assert_eq!(warning_reasons(&stack).await, Vec::<String>::new(), "waiting for a reference is not a failure");
}

#[tokio::test]
async fn a_crossplane_integration_reference_is_followed_as_soon_as_it_is_ready() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let integration = json!({
        "apiVersion": "apigatewayv2.aws.m.upbound.io/v1beta1", "kind": "Integration",
        "metadata": {"name": "chat", "annotations": {"crossplane.io/external-name": "INTEGRATION_ID"}},
        "spec": {"forProvider": {"apiId": "API_ID", "region": "us-east-1", "integrationType": "MOCK"}},
    });
    let ready =
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "True"}]}});
    follows_the_reference(RefKind::CrossplaneNamespaced, integration, ready, "Crossplane Integration default/chat")
        .await;
}

/// A WebSocket API and MOCK integration made in moto's account `account`, through STS.
async fn api_in_account(stack: &Stack, account: &str) -> (aws_sdk_apigatewayv2::Client, String, String) {
    let config = stack.moto.loader().load().await;
    let sts = aws_sdk_sts::Client::new(&config);
    let assumed = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/iro"))
        .role_session_name("test")
        .send()
        .await
        .expect("moto assumes the role");
    let credentials = assumed.credentials().unwrap();
    let client = aws_sdk_apigatewayv2::Client::new(
        &stack
            .moto
            .loader()
            .credentials_provider(aws_sdk_apigatewayv2::config::Credentials::new(
                credentials.access_key_id(),
                credentials.secret_access_key(),
                Some(credentials.session_token().to_owned()),
                None,
                "moto-assumed",
            ))
            .load()
            .await,
    );
    let (api_id, integration_id) = support::moto::websocket_integration_with(&client).await;
    (client, api_id, integration_id)
}

async fn responses_of(client: &aws_sdk_apigatewayv2::Client, api_id: &str, integration_id: &str) -> Vec<String> {
    match client.get_integration_responses().api_id(api_id).integration_id(integration_id).send().await {
        Ok(out) => out.items().iter().filter_map(|r| r.integration_response_id().map(str::to_owned)).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn each_tenant_namespace_is_reconciled_in_its_own_account() {
    use integration_response_operator::crd::IAMRoleSelector;
    use k8s_openapi::api::core::v1::Namespace;
    let _serial = ONE_AT_A_TIME.lock().await;
    let selectors_crd = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crds/iamroleselectors.apigatewayv2.aws.operator.rs.yaml");
    let stack = Stack::start_with_crds(true, &[&selectors_crd]).await;
    let namespaces: Api<Namespace> = Api::all(stack.client.clone());
    for (name, labels) in [
        ("team-a", json!({})),
        ("team-b", json!({"tenant": "b"})),
        ("team-c", json!({})),
        ("team-d", json!({"tenant": "b"})),
        ("team-e", json!({})),
    ] {
        let namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        namespaces.create(&Default::default(), &namespace).await.unwrap();
    }
    let selectors: Api<IAMRoleSelector> = Api::all(stack.client.clone());
    for (name, account, namespace_selector) in [
        ("team-a", "111111111111", json!({"names": ["team-a", "team-d"]})),
        ("tenant-b", "222222222222", json!({"matchLabels": {"tenant": "b"}})),
        // Its role's trust policy does not name the operator (the STS gate refuses it).
        ("untrusted", "333333333333", json!({"names": ["team-e"]})),
    ] {
        let selector = serde_json::from_value(json!({
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1", "kind": "IAMRoleSelector",
            "metadata": {"name": name},
            "spec": {"roleArn": format!("arn:aws:iam::{account}:role/iro"), "externalId": "shared-secret",
                     "namespaceSelector": namespace_selector},
        }))
        .unwrap();
        selectors.create(&Default::default(), &selector).await.unwrap();
    }
    let (client_a, api_a, integration_a) = api_in_account(&stack, "111111111111").await;
    let (client_b, api_b, integration_b) = api_in_account(&stack, "222222222222").await;
    let default_account = stack.moto.client().await;

    let gate = support::sts_gate::StsGate::start(&stack.moto.endpoint, "333333333333").await;
    let operator = stack.operator(&[("REQUIRE_ROLE_SELECTOR", "true"), ("AWS_ENDPOINT_URL_STS", &gate.endpoint)]);
    let placed = |namespace: &str, api: &str, integration: &str| {
        let mut object = support::integration_response("errors", api, integration);
        object.metadata = kube::api::ObjectMeta {
            name: Some("errors".into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        };
        object
    };
    let in_ns = |namespace: &str| -> Api<IntegrationResponse> { Api::namespaced(stack.client.clone(), namespace) };
    for (namespace, api, integration) in [
        ("team-a", &api_a, &integration_a),
        ("team-b", &api_b, &integration_b),
        ("team-c", &api_a, &integration_a),
        ("team-d", &api_b, &integration_b),
        ("team-e", &api_a, &integration_a),
    ] {
        let mut object = placed(namespace, api, integration);
        if namespace == "team-c" {
            // Shares team-a's integration once it has a selector: another key.
            object.spec.integration_response_key = "$default".into();
        }
        in_ns(namespace).create(&Default::default(), &object).await.unwrap();
    }
    for (namespace, account) in [("team-a", "111111111111"), ("team-b", "222222222222")] {
        let api = in_ns(namespace);
        let object = eventually(WAIT, &format!("{namespace}/errors to be Ready"), Some(&operator), || {
            let api = api.clone();
            async move { api.get("errors").await.ok().filter(ready) }
        })
        .await;
        assert_eq!(object.status.unwrap().account_id.as_deref(), Some(account), "{namespace}");
    }
    // Each response is in its own account only.
    assert_eq!(responses_of(&client_a, &api_a, &integration_a).await.len(), 1);
    assert_eq!(responses_of(&client_b, &api_b, &integration_b).await.len(), 1);
    assert_eq!(
        responses_of(&default_account, &api_a, &integration_a).await,
        Vec::<String>::new(),
        "not in the default account"
    );
    // team-e's role cannot be assumed: a permission problem (Stalled AccessDenied), not an outage.
    for (namespace, reason) in
        [("team-c", "NoRoleSelector"), ("team-d", "AmbiguousRoleSelector"), ("team-e", "AccessDenied")]
    {
        let api = in_ns(namespace);
        let message = eventually(WAIT, &format!("{namespace}/errors Stalled {reason}"), Some(&operator), || {
            let api = api.clone();
            async move {
                let status = api.get("errors").await.ok()?.status?;
                let stalled = status.condition("Stalled")?.clone();
                (stalled.status == "True" && stalled.reason == reason).then_some(stalled.message)
            }
        })
        .await;
        if namespace == "team-e" {
            assert!(
                message.contains("could not obtain credentials: AccessDenied: User is not authorized"),
                "{message}"
            );
        } else {
            assert!(message.contains(namespace), "{message}");
        }
    }
    // The selectors say they work, and in which account.
    for (name, account) in [("team-a", "111111111111"), ("tenant-b", "222222222222")] {
        let selectors = selectors.clone();
        let status = eventually(WAIT, &format!("selector {name} Ready"), Some(&operator), || {
            let selectors = selectors.clone();
            async move {
                let status = selectors.get(name).await.ok()?.status?;
                status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(status)
            }
        })
        .await;
        assert_eq!(status.account_id.as_deref(), Some(account));
    }
    let untrusted = eventually(WAIT, "selector untrusted reported", Some(&operator), || {
        let selectors = selectors.clone();
        async move {
            let status = selectors.get("untrusted").await.ok()?.status?;
            status.conditions.iter().find(|c| c.type_ == "Ready" && c.status == "False").cloned()
        }
    })
    .await;
    assert_eq!(untrusted.reason, "AssumeRoleFailed");
    assert!(
        untrusted.message
            == "Could not assume arn:aws:iam::333333333333:role/iro (AccessDenied: User is not authorized to \
                perform: sts:AssumeRole); check its trust policy and the operator's sts:AssumeRole permission.",
        "{}",
        untrusted.message
    );
    // A selector for team-c unblocks its object at once (the operator's resync is an hour away).
    let selector = serde_json::from_value(json!({
        "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1", "kind": "IAMRoleSelector",
        "metadata": {"name": "team-c"},
        "spec": {"roleArn": "arn:aws:iam::111111111111:role/iro", "namespaceSelector": {"names": ["team-c"]}},
    }))
    .unwrap();
    selectors.create(&Default::default(), &selector).await.unwrap();
    let api = in_ns("team-c");
    let object = eventually(WAIT, "team-c/errors Ready once selected", Some(&operator), || {
        let api = api.clone();
        async move { api.get("errors").await.ok().filter(ready) }
    })
    .await;
    assert_eq!(object.status.unwrap().account_id.as_deref(), Some("111111111111"));
    // team-c shares account 111111111111's integration with team-a, under another key.
    assert_eq!(responses_of(&client_a, &api_a, &integration_a).await.len(), 2);
    // Deleting deletes in the account the response lives in.
    in_ns("team-b").delete("errors", &DeleteParams::default()).await.unwrap();
    let api = in_ns("team-b");
    eventually(WAIT, "team-b/errors to be deleted", Some(&operator), || {
        let api = api.clone();
        async move { api.get_opt("errors").await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert_eq!(responses_of(&client_b, &api_b, &integration_b).await, Vec::<String>::new());
    assert_eq!(responses_of(&client_a, &api_a, &integration_a).await.len(), 2, "the other tenant's are untouched");
    let logs = operator.logs();
    assert!(
        !logs.contains("SessionToken") && !logs.contains("shared-secret"),
        "no credentials or external ids in logs"
    );
}

#[tokio::test]
async fn a_cluster_scoped_crossplane_integration_is_followed_with_the_flag() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let integration = json!({
        "apiVersion": "apigatewayv2.aws.upbound.io/v1beta1", "kind": "Integration",
        "metadata": {"name": "chat", "annotations": {"crossplane.io/external-name": "INTEGRATION_ID"}},
        "spec": {"forProvider": {"apiId": "API_ID", "region": "us-east-1", "integrationType": "MOCK"}},
    });
    let ready =
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "True"}]}});
    follows_the_reference(RefKind::Crossplane, integration, ready, "Crossplane Integration chat").await;
}
