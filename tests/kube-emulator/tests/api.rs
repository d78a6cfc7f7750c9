//! The emulator's behaviour, checked with a real kube client against what the Kubernetes API
//! documentation says kube-apiserver does.

use std::path::Path;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::{Client, Config};
use kube_emulator::{Emulator, Fault};
use serde_json::{Value, json};

async fn start() -> (Emulator, Api<DynamicObject>) {
    let crd =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds/integrationresponses.apigatewayv2.aws.operator.rs.yaml");
    let emulator = Emulator::start(&[crd.as_path()]).await.unwrap();
    let config = Config::new(emulator.url().parse().unwrap());
    let client = Client::try_from(config).unwrap();
    let gvk = GroupVersionKind::gvk("apigatewayv2.aws.operator.rs", "v1alpha1", "IntegrationResponse");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "integrationresponses");
    let api = Api::namespaced_with(client, "default", &resource);
    (emulator, api)
}

fn object(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
        "kind": "IntegrationResponse",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn spec() -> Value {
    json!({"apiId": "a1", "integrationId": "i1", "integrationResponseKey": "$default"})
}

fn rv(o: &DynamicObject) -> u64 {
    o.metadata.resource_version.as_deref().unwrap().parse().unwrap()
}

fn api_error(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_sets_system_fields_and_drops_status() {
    let (_e, api) = start().await;
    let mut o = object("a", spec());
    o.data["status"] = json!({"integrationResponseId": "forged"});
    let created = api.create(&PostParams::default(), &o).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert!(created.data.get("status").is_none(), "status is ignored on create when the status subresource is on");
    let (code, message) = api_error(api.create(&PostParams::default(), &o).await.unwrap_err());
    assert_eq!(code, 409);
    assert!(message.contains("already exists"), "{message}");
}

#[tokio::test]
async fn generation_follows_spec_only_and_resource_version_every_write() {
    let (_e, api) = start().await;
    let created = api.create(&PostParams::default(), &object("a", spec())).await.unwrap();
    let labelled = api
        .patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})))
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    assert!(rv(&labelled) > rv(&created));
    let status = api
        .patch_status("a", &PatchParams::default(), &Patch::Merge(json!({"status": {"integrationResponseId": "x1"}})))
        .await
        .unwrap();
    assert_eq!(status.metadata.generation, Some(1));
    assert_eq!(status.data["status"]["integrationResponseId"], "x1");
    let changed = api
        .patch("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"integrationResponseKey": "/5\\d\\d/"}})))
        .await
        .unwrap();
    assert_eq!(changed.metadata.generation, Some(2));
    assert_eq!(changed.data["status"]["integrationResponseId"], "x1", "main-resource writes keep status");
    // A write that changes nothing is not a write.
    let same = api
        .patch("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"integrationResponseKey": "/5\\d\\d/"}})))
        .await
        .unwrap();
    assert_eq!(rv(&same), rv(&changed));
    // Status writes cannot change spec.
    let sneaky =
        api.patch_status("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"apiId": "zz"}}))).await.unwrap();
    assert_eq!(sneaky.data["spec"]["apiId"], "a1");
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_conflicts() {
    let (_e, api) = start().await;
    let created = api.create(&PostParams::default(), &object("a", spec())).await.unwrap();
    api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}))).await.unwrap();
    let (code, message) = api_error(api.replace("a", &PostParams::default(), &created).await.unwrap_err());
    assert_eq!(code, 409);
    assert!(message.contains("the object has been modified"), "{message}");
}

#[tokio::test]
async fn deletion_waits_for_finalizers_and_forbids_new_ones() {
    let (_e, api) = start().await;
    let mut o = object("a", spec());
    o.metadata.finalizers = Some(vec!["example.com/f".into()]);
    api.create(&PostParams::default(), &o).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("a").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(deleting.metadata.generation, Some(2), "deletion bumps generation");
    let (code, message) = api_error(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/f", "example.com/g"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(message.contains("no new finalizers can be added if the object is being deleted"), "{message}");

    let mut watch = api.watch(&WatchParams::default(), &rv(&deleting).to_string()).await.unwrap().boxed();
    let remove = json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "example.com/f"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]);
    api.patch("a", &PatchParams::default(), &Patch::Json::<()>(serde_json::from_value(remove).unwrap())).await.unwrap();
    assert!(api.get_opt("a").await.unwrap().is_none());
    let event = tokio::time::timeout(Duration::from_secs(5), watch.try_next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(event, WatchEvent::Deleted(_)), "{event:?}");
}

#[tokio::test]
async fn json_patch_tests_are_enforced() {
    let (_e, api) = start().await;
    api.create(&PostParams::default(), &object("a", spec())).await.unwrap();
    let failing = json!([{"op": "test", "path": "/spec/apiId", "value": "other"}, {"op": "replace", "path": "/spec/integrationResponseKey", "value": "/x/"}]);
    let (code, _) = api_error(
        api.patch("a", &PatchParams::default(), &Patch::Json::<()>(serde_json::from_value(failing).unwrap()))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert_eq!(api.get("a").await.unwrap().data["spec"]["integrationResponseKey"], "$default");
}

#[tokio::test]
async fn watch_resumes_from_a_version_and_answers_410_once_it_is_compacted() {
    let (emulator, api) = start().await;
    let created = api.create(&PostParams::default(), &object("a", spec())).await.unwrap();
    api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}}))).await.unwrap();
    let mut watch = api.watch(&WatchParams::default(), &rv(&created).to_string()).await.unwrap().boxed();
    let event = tokio::time::timeout(Duration::from_secs(5), watch.try_next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(&event, WatchEvent::Modified(o) if o.metadata.labels.as_ref().unwrap()["x"] == "1"), "{event:?}");

    emulator.compact();
    let mut stale = api.watch(&WatchParams::default(), &rv(&created).to_string()).await.unwrap().boxed();
    let event = tokio::time::timeout(Duration::from_secs(5), stale.try_next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(&event, WatchEvent::Error(e) if e.code == 410), "{event:?}");
}

#[tokio::test]
async fn dropped_watches_end_their_streams() {
    let (emulator, api) = start().await;
    let created = api.create(&PostParams::default(), &object("a", spec())).await.unwrap();
    let mut watch = api.watch(&WatchParams::default(), &rv(&created).to_string()).await.unwrap().boxed();
    tokio::time::sleep(Duration::from_millis(100)).await;
    emulator.drop_watches();
    let end = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.expect("stream ended");
    assert!(end.is_none(), "{end:?}");
}

#[tokio::test]
async fn label_selectors_filter_lists_and_watches() {
    let (_e, api) = start().await;
    let mut a = object("a", spec());
    a.metadata.labels = Some([("shard".to_owned(), "one".to_owned())].into());
    let created = api.create(&PostParams::default(), &a).await.unwrap();
    api.create(&PostParams::default(), &object("b", spec())).await.unwrap();
    let listed = api.list(&ListParams::default().labels("shard=one")).await.unwrap();
    assert_eq!(listed.items.iter().map(|o| o.metadata.name.clone().unwrap()).collect::<Vec<_>>(), ["a"]);
    let mut watch =
        api.watch(&WatchParams::default().labels("shard=one"), &rv(&created).to_string()).await.unwrap().boxed();
    // Leaving the selector reads as DELETED through a filtered watch.
    api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"shard": "two"}}})))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), watch.try_next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(event, WatchEvent::Deleted(_)), "{event:?}");
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let (_e, api) = start().await;
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &object(name, spec())).await.unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = api.list(&ListParams::default().limit(2).continue_token(&token)).await.unwrap();
    assert_eq!(second.items.iter().map(|o| o.metadata.name.clone().unwrap()).collect::<Vec<_>>(), ["c"]);
    assert!(second.metadata.continue_.as_deref().unwrap_or("").is_empty());
}

#[tokio::test]
async fn the_schema_refuses_bad_objects_with_the_servers_messages() {
    let (_e, api) = start().await;
    let missing = object("a", json!({"apiId": "a1", "integrationId": "i1"}));
    let (code, message) = api_error(api.create(&PostParams::default(), &missing).await.unwrap_err());
    assert_eq!(code, 422);
    assert!(message.contains("spec.integrationResponseKey: Required value"), "{message}");

    let mut bad_enum = spec();
    bad_enum["contentHandlingStrategy"] = json!("BOGUS");
    let (_, message) = api_error(api.create(&PostParams::default(), &object("a", bad_enum)).await.unwrap_err());
    assert!(
        message.contains("Unsupported value: \"BOGUS\": supported values: \"CONVERT_TO_BINARY\", \"CONVERT_TO_TEXT\""),
        "{message}"
    );

    let mut bad_key = spec();
    bad_key["integrationResponseKey"] = json!("foo");
    let (_, message) = api_error(api.create(&PostParams::default(), &object("a", bad_key)).await.unwrap_err());
    assert!(
        message.contains(
            "spec.integrationResponseKey: Invalid value: \"string\": integrationResponseKey must be $default"
        ),
        "{message}"
    );

    let mut long = spec();
    long["responseTemplates"] = json!({"application/json": "x".repeat(32 * 1024 + 1)});
    let (_, message) = api_error(api.create(&PostParams::default(), &object("a", long)).await.unwrap_err());
    assert!(message.contains("Too long: may not be more than 32768 bytes"), "{message}");

    let mut unknown = spec();
    unknown["colour"] = json!("blue");
    let created = api.create(&PostParams::default(), &object("a", unknown)).await.unwrap();
    assert!(created.data["spec"].get("colour").is_none(), "unknown fields are pruned");

    let (code, message) = api_error(
        api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"apiId": "other"}}))).await.unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(message.contains("spec.apiId: Invalid value: \"string\": apiId is immutable"), "{message}");
}

#[tokio::test]
async fn status_server_side_apply_needs_a_manager_and_replaces_what_it_owns() {
    let (_e, api) = start().await;
    api.create(&PostParams::default(), &object("a", spec())).await.unwrap();
    let body = |status: Value| json!({"apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1", "kind": "IntegrationResponse", "status": status});
    let params = PatchParams::apply("op").force();
    api.patch_status("a", &params, &Patch::Apply(body(json!({"integrationResponseId": "x", "pendingCreateKey": "k"}))))
        .await
        .unwrap();
    let applied =
        api.patch_status("a", &params, &Patch::Apply(body(json!({"integrationResponseId": "x"})))).await.unwrap();
    assert_eq!(applied.data["status"], json!({"integrationResponseId": "x"}));
    let (code, message) =
        api_error(api.patch_status("a", &PatchParams::default(), &Patch::Apply(body(json!({})))).await.unwrap_err());
    assert_eq!(code, 400, "{message}");
    // Leases take server-side apply (create if absent, field ownership); Namespaces do not
    // here: refused loudly.
    let client = Client::try_from(Config::new(_e.url().parse().unwrap())).unwrap();
    let leases: Api<DynamicObject> = Api::default_namespaced_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease")),
    );
    let lease = |holder: &str| {
        Patch::Apply(
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {"holderIdentity": holder}}),
        )
    };
    let created = leases.patch("l", &PatchParams::apply("a"), &lease("a")).await.unwrap();
    assert_eq!(created.data["spec"]["holderIdentity"], "a");
    let (code, message) = api_error(leases.patch("l", &PatchParams::apply("b"), &lease("b")).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (409, "Apply failed with 1 conflict: conflict with \"a\": .spec.holderIdentity")
    );
    let namespaces: Api<DynamicObject> =
        Api::all_with(client, &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Namespace")));
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    let (code, message) = api_error(namespaces.patch("default", &params, &Patch::Apply(namespace)).await.unwrap_err());
    assert_eq!(code, 501, "{message}");
}

#[tokio::test]
async fn injected_faults_answer_with_the_given_status() {
    let (emulator, api) = start().await;
    api.create(&PostParams::default(), &object("a", spec())).await.unwrap();
    emulator.faults().add(Fault::fail("patch", "integrationresponses/status", 500, 1));
    let (code, _) = api_error(
        api.patch_status("a", &PatchParams::default(), &Patch::Merge(json!({"status": {}}))).await.unwrap_err(),
    );
    assert_eq!(code, 500);
    api.patch_status("a", &PatchParams::default(), &Patch::Merge(json!({"status": {}}))).await.unwrap();
    assert_eq!(emulator.request_count("patch", "integrationresponses/status"), 2);
    // kube's client retries 429 by itself (honouring Retry-After), so one injected 429 costs a
    // second request, not an error.
    emulator.faults().add(Fault::fail("get", "integrationresponses", 429, 1));
    api.get("a").await.unwrap();
    assert_eq!(emulator.request_count("get", "integrationresponses"), 2);
}

#[tokio::test]
async fn objects_need_an_existing_namespace_and_unknown_parameters_are_refused() {
    let (emulator, api) = start().await;
    let other: Api<DynamicObject> = Api::namespaced_with(
        Client::try_from(Config::new(emulator.url().parse().unwrap())).unwrap(),
        "nowhere",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apigatewayv2.aws.operator.rs", "v1alpha1", "IntegrationResponse"),
            "integrationresponses",
        ),
    );
    let (code, message) = api_error(other.create(&PostParams::default(), &object("a", spec())).await.unwrap_err());
    assert_eq!((code, message.as_str()), (404, "namespaces \"nowhere\" not found"));
    let (code, _) = api_error(
        api.create(&PostParams { dry_run: true, field_manager: None }, &object("a", spec())).await.unwrap_err(),
    );
    assert_eq!(code, 501);
}

/// Published CRDs (ACK's, Crossplane's) declare `metadata` as a bare object in their schema;
/// kube-apiserver still keeps every ObjectMeta field, and a merge patch of status needs no name.
#[tokio::test]
async fn a_crd_schema_that_declares_metadata_as_an_object_keeps_it_whole() {
    let crd = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ack-integrations.yaml");
    let emulator = Emulator::start(&[crd.as_path()]).await.unwrap();
    let client = Client::try_from(Config::new(emulator.url().parse().unwrap())).unwrap();
    let gvk = GroupVersionKind::gvk("apigatewayv2.services.k8s.aws", "v1alpha1", "Integration");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, "default", &ApiResource::from_gvk_with_plural(&gvk, "integrations"));
    let integration: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apigatewayv2.services.k8s.aws/v1alpha1", "kind": "Integration",
        "metadata": {"name": "chat", "labels": {"team": "a"}, "annotations": {"services.k8s.aws/region": "us-east-1"}},
        "spec": {"apiID": "api1", "integrationType": "MOCK"},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &integration).await.unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("chat"));
    assert_eq!(created.metadata.annotations.unwrap()["services.k8s.aws/region"], "us-east-1");
    assert_eq!(created.metadata.labels.unwrap()["team"], "a");
    let status = json!({"status": {"integrationID": "int1"}});
    let patched = api.patch_status("chat", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    assert_eq!(patched.data["status"]["integrationID"], "int1");
    assert_eq!(patched.metadata.name.as_deref(), Some("chat"));
}

/// Two groups with the same plural would share objects here: refused at start, not served wrongly.
#[tokio::test]
async fn two_crds_with_one_plural_in_different_groups_are_refused() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let (ack, crossplane) = (fixtures.join("ack-integrations.yaml"), fixtures.join("crossplane-integrations.yaml"));
    let err = Emulator::start(&[ack.as_path(), crossplane.as_path()]).await.err().expect("refused");
    assert!(
        err.contains(
            "cannot serve integrations.apigatewayv2.aws.m.upbound.io beside integrations.apigatewayv2.services.k8s.aws"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn legacy_discovery_describes_the_crd_and_the_built_in_kinds() {
    // kube's Discovery reads the legacy documents (/api, /api/v1, /apis, /apis/<group>/<version>);
    // kubectl reads the aggregated ones (tests/kubectl.rs).
    let (emulator, _) = start().await;
    let client = Client::try_from(Config::new(emulator.url().parse().unwrap())).unwrap();
    let discovery = kube::Discovery::new(client).run().await.unwrap();
    let group = discovery.get("apigatewayv2.aws.operator.rs").expect("the CRD's group");
    let (resource, capabilities) = group.recommended_kind("IntegrationResponse").expect("the CRD's kind");
    assert_eq!(resource.plural, "integrationresponses");
    assert_eq!(capabilities.scope, kube::discovery::Scope::Namespaced);
    assert!(capabilities.subresources.iter().any(|(r, _)| r.plural == "status"), "{capabilities:?}");
    for (group, kind) in
        [("", "Namespace"), ("", "Event"), ("events.k8s.io", "Event"), ("coordination.k8s.io", "Lease")]
    {
        let found = discovery.get(group).and_then(|g| g.recommended_kind(kind));
        assert!(found.is_some(), "{group}/{kind}");
    }
}
