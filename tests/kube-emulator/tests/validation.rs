//! Validation of what the operator writes, pinned to kube-apiserver's wording: object metadata
//! for every kind, `events.k8s.io/v1` Events, `coordination.k8s.io/v1` Leases, Namespaces,
//! resourceVersion preconditions, and 501 for built-in resources the emulator does not serve.
//! Each rule has an accepted and a refused case.

use std::path::Path;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::core::Status;
use kube::{Client, Config};
use kube_emulator::Emulator;
use serde_json::{Value, json};

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const NAME_PART: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const IR: &str = "apigatewayv2.aws.operator.rs";

struct Stack {
    emulator: Emulator,
    client: Client,
}

async fn start() -> Stack {
    let crd =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds/integrationresponses.apigatewayv2.aws.operator.rs.yaml");
    let emulator = Emulator::start(&[crd.as_path()]).await.unwrap();
    let client = Client::try_from(Config::new(emulator.url().parse().unwrap())).unwrap();
    Stack { emulator, client }
}

impl Stack {
    fn api(&self, group: &str, version: &str, kind: &str, plural: &str, namespace: &str) -> Api<DynamicObject> {
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        Api::namespaced_with(self.client.clone(), namespace, &resource)
    }

    fn events(&self) -> Api<DynamicObject> {
        self.api("events.k8s.io", "v1", "Event", "events", "default")
    }

    fn leases(&self) -> Api<DynamicObject> {
        self.api("coordination.k8s.io", "v1", "Lease", "leases", "default")
    }

    fn irs(&self) -> Api<DynamicObject> {
        self.api(IR, "v1alpha1", "IntegrationResponse", "integrationresponses", "default")
    }

    /// A plain HTTP request; returns the status code and the body as JSON.
    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let addr = self.emulator.addr;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: emulator\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let response = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        })
        .await
        .unwrap();
        let code = response.split(' ').nth(1).unwrap().parse().unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
        (code, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

fn dynamic(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

fn status(err: kube::Error) -> Box<Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The status as (code, reason, message).
fn refusal(err: kube::Error) -> (u16, String, String) {
    let s = status(err);
    (s.code, s.reason, s.message)
}

const NOW: &str = "2026-01-02T03:04:05.123456Z";

/// An Event as the operator writes it.
fn event(name: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name},
        "eventTime": NOW,
        "type": "Normal",
        "reason": "Created",
        "action": "Created",
        "note": "created the integration response",
        "regarding": {
            "apiVersion": format!("{IR}/v1alpha1"),
            "kind": "IntegrationResponse",
            "name": "a",
            "namespace": "default",
            "uid": "0b6e8a1e-0000-4000-8000-000000000001",
        },
        "reportingController": "integration-response-operator",
        "reportingInstance": "integration-response-operator-7d9f-abcde",
    })
}

fn lease(name: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {
            "holderIdentity": "pod-1",
            "leaseDurationSeconds": 15,
            "acquireTime": NOW,
            "renewTime": NOW,
            "leaseTransitions": 0,
        },
    })
}

fn ir(name: &str) -> Value {
    json!({
        "apiVersion": format!("{IR}/v1alpha1"),
        "kind": "IntegrationResponse",
        "metadata": {"name": name},
        "spec": {"apiId": "a1", "integrationId": "i1", "integrationResponseKey": "$default"},
    })
}

fn without_name(mut object: Value) -> Value {
    object["metadata"].as_object_mut().unwrap().remove("name");
    object
}

#[tokio::test]
async fn event_generate_name_ending_in_a_dot_is_refused_with_the_servers_words() {
    let stack = start().await;
    let mut body = without_name(event(""));
    body["metadata"]["generateName"] = json!("name.");
    let err = stack.events().create(&PostParams::default(), &dynamic(body)).await.unwrap_err();
    let s = status(err);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    // The name in the message is the generated one: "name." and five random characters.
    let generated = s.details.as_ref().unwrap().name.clone();
    assert!(generated.starts_with("name.") && generated.len() == 10, "{generated}");
    assert_eq!(
        s.message,
        format!("Event \"{generated}\" is invalid: metadata.generateName: Invalid value: \"name.\": {SUBDOMAIN}")
    );
    let details = s.details.unwrap();
    assert_eq!((details.kind.as_str(), details.group.as_str()), ("Event", ""));
    assert_eq!(details.causes.len(), 1);
    assert_eq!(details.causes[0].reason, "FieldValueInvalid");
    assert_eq!(details.causes[0].field, "metadata.generateName");
    assert_eq!(details.causes[0].message, format!("Invalid value: \"name.\": {SUBDOMAIN}"));

    // A trailing dash is what generateName is for.
    let mut body = without_name(event(""));
    body["metadata"]["generateName"] = json!("name-");
    let created = stack.events().create(&PostParams::default(), &dynamic(body)).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert_eq!(name.len(), 10, "{name}");
    assert!(name.starts_with("name-"), "{name}");
    assert!(name[5..].bytes().all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)), "{name}");
}

#[tokio::test]
async fn generate_name_is_cut_to_58_characters_before_the_random_suffix() {
    let stack = start().await;
    let mut body = without_name(ir(""));
    body["metadata"]["generateName"] = json!(format!("{}-", "a".repeat(80)));
    let created = stack.irs().create(&PostParams::default(), &dynamic(body)).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert_eq!(name.len(), 63);
    assert!(name.starts_with(&"a".repeat(58)), "{name}");

    // Neither name nor generateName.
    let (code, _, message) =
        refusal(stack.irs().create(&PostParams::default(), &dynamic(without_name(ir("")))).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        message,
        format!(
            "IntegrationResponse.{IR} \"\" is invalid: metadata.name: Required value: name or generateName is required"
        )
    );
}

#[tokio::test]
async fn event_names_are_dns_subdomains() {
    let stack = start().await;
    stack.events().create(&PostParams::default(), &dynamic(event("a.18a2b3c4d5e6f708"))).await.unwrap();
    // Errors from storage name the request's resource.
    let (code, reason, message) = refusal(
        stack.events().create(&PostParams::default(), &dynamic(event("a.18a2b3c4d5e6f708"))).await.unwrap_err(),
    );
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (409, "AlreadyExists", "events.events.k8s.io \"a.18a2b3c4d5e6f708\" already exists")
    );
    let (code, _, message) = refusal(stack.events().get("missing").await.unwrap_err());
    assert_eq!((code, message.as_str()), (404, "events.events.k8s.io \"missing\" not found"));
    let (code, _, message) =
        refusal(stack.events().create(&PostParams::default(), &dynamic(event("Bad_Name"))).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        message,
        format!("Event \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": {SUBDOMAIN}")
    );
    let long = "a".repeat(254);
    let (_, _, message) =
        refusal(stack.events().create(&PostParams::default(), &dynamic(event(&long))).await.unwrap_err());
    assert_eq!(
        message,
        format!(
            "Event \"{long}\" is invalid: metadata.name: Invalid value: \"{long}\": must be no more than 253 characters"
        )
    );
}

#[tokio::test]
async fn event_note_is_at_most_1024_bytes() {
    let stack = start().await;
    let mut body = event("ok");
    body["note"] = json!("é".repeat(512));
    stack.events().create(&PostParams::default(), &dynamic(body)).await.unwrap();
    let mut body = event("long");
    body["note"] = json!(format!("{}x", "é".repeat(512)));
    let (code, reason, message) =
        refusal(stack.events().create(&PostParams::default(), &dynamic(body)).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    // Validation runs on the internal Event, whose note is `message`.
    assert_eq!(message, "Event \"long\" is invalid: message: Invalid value: \"\": can have at most 1024 characters");
}

#[tokio::test]
async fn event_reporting_controller_is_required_and_a_qualified_name() {
    let stack = start().await;
    let mut body = event("missing");
    body.as_object_mut().unwrap().remove("reportingController");
    let err = stack.events().create(&PostParams::default(), &dynamic(body)).await.unwrap_err();
    let s = status(err);
    assert_eq!(s.code, 422);
    assert_eq!(
        s.message,
        format!(
            "Event \"missing\" is invalid: [reportingController: Required value, reportingController: Invalid value: \"\": name part must be non-empty, reportingController: Invalid value: \"\": {NAME_PART}]"
        )
    );
    let causes = s.details.unwrap().causes;
    assert_eq!(causes[0].reason, "FieldValueRequired");
    assert_eq!(causes[0].field, "reportingController");
    assert_eq!(causes[0].message, "Required value");

    let mut body = event("bad");
    body["reportingController"] = json!("integration response operator");
    let (_, _, message) = refusal(stack.events().create(&PostParams::default(), &dynamic(body)).await.unwrap_err());
    assert_eq!(
        message,
        format!(
            "Event \"bad\" is invalid: reportingController: Invalid value: \"integration response operator\": {NAME_PART}"
        )
    );

    let mut body = event("prefixed");
    body["reportingController"] = json!("operator.rs/integration-response-operator");
    stack.events().create(&PostParams::default(), &dynamic(body)).await.unwrap();
}

#[tokio::test]
async fn event_fields_follow_the_servers_rules() {
    let stack = start().await;
    stack.emulator.create_namespace("other");
    let create = |body: Value| {
        let events = stack.events();
        async move { refusal(events.create(&PostParams::default(), &dynamic(body)).await.unwrap_err()) }
    };
    let mutate = |change: &dyn Fn(&mut Value)| {
        let mut body = event("e");
        change(&mut body);
        body
    };

    let (code, _, message) = create(mutate(&|e| {
        e.as_object_mut().unwrap().remove("eventTime");
    }))
    .await;
    assert_eq!((code, message.as_str()), (422, "Event \"e\" is invalid: eventTime: Required value"));

    let (_, _, message) = create(mutate(&|e| e["type"] = json!("Info"))).await;
    assert_eq!(message, "Event \"e\" is invalid: type: Invalid value: \"\": has invalid value: Info");

    let (_, _, message) = create(mutate(&|e| e["reportingInstance"] = json!("i".repeat(129)))).await;
    assert_eq!(
        message,
        "Event \"e\" is invalid: reportingInstance: Invalid value: \"\": can have at most 128 characters"
    );

    let (_, _, message) = create(mutate(&|e| e["action"] = json!(""))).await;
    assert_eq!(message, "Event \"e\" is invalid: action: Required value");

    let (_, _, message) = create(mutate(&|e| e["reason"] = json!("r".repeat(129)))).await;
    assert_eq!(message, "Event \"e\" is invalid: reason: Invalid value: \"\": can have at most 128 characters");

    let (_, _, message) = create(mutate(&|e| e["series"] = json!({"count": 1, "lastObservedTime": NOW}))).await;
    assert_eq!(message, "Event \"e\" is invalid: series.count: Invalid value: \"\": should be at least 2");

    let (_, _, message) = create(mutate(&|e| e["deprecatedCount"] = json!(3))).await;
    assert_eq!(message, "Event \"e\" is invalid: count: Invalid value: \"\": needs to be unset");

    // A domain-less finalizer on a core kind must be one of Kubernetes' own.
    let (_, _, message) = create(mutate(&|e| e["metadata"]["finalizers"] = json!(["foo"]))).await;
    assert_eq!(
        message,
        "Event \"e\" is invalid: metadata.finalizers[0]: Invalid value: \"foo\": name is neither a standard finalizer name nor is it fully qualified"
    );

    // An Event about a cluster-scoped object (no namespace) may only live in default or
    // kube-system.
    let cluster_scoped = |e: &mut Value| {
        e["regarding"].as_object_mut().unwrap().remove("namespace");
    };
    let other = stack.api("events.k8s.io", "v1", "Event", "events", "other");
    let (code, _, message) =
        refusal(other.create(&PostParams::default(), &dynamic(mutate(&cluster_scoped))).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "Event \"e\" is invalid: involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
    );
    stack.events().create(&PostParams::default(), &dynamic(mutate(&cluster_scoped))).await.unwrap();

    // The strict rules do not compare a namespaced object's namespace with the Event's; the
    // legacy ones (an Event without eventTime) do.
    let elsewhere = |e: &mut Value| e["regarding"]["namespace"] = json!("other");
    let accepted = mutate(&|e| {
        elsewhere(e);
        e["metadata"]["name"] = json!("elsewhere");
    });
    stack.events().create(&PostParams::default(), &dynamic(accepted)).await.unwrap();
    let (_, _, message) = create(mutate(&|e| {
        elsewhere(e);
        e["metadata"]["name"] = json!("legacy");
        e.as_object_mut().unwrap().remove("eventTime");
    }))
    .await;
    assert_eq!(
        message,
        "Event \"legacy\" is invalid: [involvedObject.namespace: Invalid value: \"other\": does not match event.namespace, eventTime: Required value]"
    );

    let mut valid = event("series");
    valid["series"] = json!({"count": 2, "lastObservedTime": NOW});
    stack.events().create(&PostParams::default(), &dynamic(valid)).await.unwrap();
}

#[tokio::test]
async fn event_series_can_be_recorded_by_patch_and_put_and_the_rest_is_immutable() {
    let stack = start().await;
    let events = stack.events();
    let created = events.create(&PostParams::default(), &dynamic(event("e"))).await.unwrap();
    assert_eq!(created.data["deprecatedSource"], json!({}), "Go writes empty structs");
    assert_eq!(created.data["deprecatedFirstTimestamp"], Value::Null);

    let fetched = events.get("e").await.unwrap();
    assert_eq!(fetched.metadata.uid, created.metadata.uid);

    // As kube's Recorder does: a merge patch of the whole Event with a series.
    let mut patch = event("e");
    patch["metadata"]["namespace"] = json!("default");
    patch["series"] = json!({"count": 2, "lastObservedTime": "2026-01-02T03:05:00.000000Z"});
    let patched = events.patch("e", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    assert_eq!(patched.data["series"], json!({"count": 2, "lastObservedTime": "2026-01-02T03:05:00.000000Z"}));

    // Strategic merge patches of built-in kinds apply as merge patches here.
    let series = json!({"series": {"count": 3, "lastObservedTime": "2026-01-02T03:06:00.000000+01:00"}});
    let patched = events.patch("e", &PatchParams::default(), &Patch::Strategic(&series)).await.unwrap();
    assert_eq!(patched.data["series"], json!({"count": 3, "lastObservedTime": "2026-01-02T02:06:00.000000Z"}));
    let directive = json!({"metadata": {"$patch": "replace"}});
    let (code, _, _) =
        refusal(events.patch("e", &PatchParams::default(), &Patch::Strategic(&directive)).await.unwrap_err());
    assert_eq!(code, 501);

    // PUT, with and without a resourceVersion (Events allow unconditional updates).
    let mut put = patched.clone();
    put.data["series"]["count"] = json!(4);
    let put = events.replace("e", &PostParams::default(), &put).await.unwrap();
    assert_eq!(put.data["series"]["count"], 4);
    let mut unconditional = put.clone();
    unconditional.metadata.resource_version = None;
    unconditional.data["series"]["count"] = json!(5);
    events.replace("e", &PostParams::default(), &unconditional).await.unwrap();

    let (code, _, message) = refusal(
        events.patch("e", &PatchParams::default(), &Patch::Merge(json!({"series": {"count": 1}}))).await.unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (422, "Event \"e\" is invalid: series.count: Invalid value: \"\": should be at least 2")
    );

    let (code, _, message) = refusal(
        events.patch("e", &PatchParams::default(), &Patch::Merge(json!({"note": "changed"}))).await.unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (422, "Event \"e\" is invalid: message: Invalid value: \"changed\": field is immutable")
    );

    // PUT of a missing Event creates it.
    let (code, body) = {
        let created = events.replace("fresh", &PostParams::default(), &dynamic(event("fresh"))).await.unwrap();
        (created.metadata.name.unwrap(), created.data)
    };
    assert_eq!(code, "fresh");
    assert_eq!(body["reason"], "Created");
}

#[tokio::test]
async fn kube_recorder_series_reach_the_store() {
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let stack = start().await;
    let reporter = Reporter { controller: "integration-response-operator".into(), instance: Some("pod-1".into()) };
    let recorder = Recorder::new(stack.client.clone(), reporter);
    let reference = ObjectReference {
        api_version: Some(format!("{IR}/v1alpha1")),
        kind: Some("IntegrationResponse".into()),
        name: Some("a".into()),
        namespace: Some("default".into()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Warning,
        reason: "Throttled".into(),
        note: Some("slow down".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let stored = stack.emulator.list("events", "default");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["series"]["count"], 2);
    // Events of one object, by field selector.
    let listed = stack.events().list(&ListParams::default().fields("regarding.name=a,type=Warning")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let listed = stack.events().list(&ListParams::default().fields("regarding.name=b")).await.unwrap();
    assert!(listed.items.is_empty());
}

#[tokio::test]
async fn lease_times_are_micro_times_and_types_are_checked_when_decoding() {
    let stack = start().await;
    let leases = stack.leases();
    let mut body = lease("l");
    body["spec"]["renewTime"] = json!("2026-01-02T04:04:05.123456+01:00");
    let created = leases.create(&PostParams::default(), &dynamic(body)).await.unwrap();
    assert_eq!(created.data["spec"]["renewTime"], NOW, "stored in UTC");

    let mut body = lease("seconds");
    body["spec"]["renewTime"] = json!("2026-01-02T03:04:05Z");
    let (code, reason, message) = refusal(leases.create(&PostParams::default(), &dynamic(body)).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        message,
        "Lease in version \"v1\" cannot be handled as a Lease: parsing time \"2026-01-02T03:04:05Z\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"Z\" as \".000000\""
    );

    let mut body = lease("typed");
    body["spec"]["leaseDurationSeconds"] = json!("15");
    let (code, _, message) = refusal(leases.create(&PostParams::default(), &dynamic(body)).await.unwrap_err());
    assert_eq!(code, 400);
    assert_eq!(
        message,
        "Lease in version \"v1\" cannot be handled as a Lease: json: cannot unmarshal string into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32"
    );

    let mut body = lease("unknown");
    body["spec"]["colour"] = json!("blue");
    let created = leases.create(&PostParams::default(), &dynamic(body)).await.unwrap();
    assert!(created.data["spec"].get("colour").is_none(), "unknown fields are dropped");

    // A patch whose result does not decode names the patch.
    let (code, _, message) = refusal(
        leases
            .patch("l", &PatchParams::default(), &Patch::Merge(json!({"spec": {"leaseTransitions": "one"}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(message.starts_with(" \"\" is invalid: patch: Invalid value: \"{"), "{message}");
    assert!(
        message.ends_with(
            "\": json: cannot unmarshal string into Go struct field LeaseSpec.spec.leaseTransitions of type int32"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn lease_spec_and_update_rules() {
    let stack = start().await;
    let leases = stack.leases();
    let mut body = lease("zero");
    body["spec"]["leaseDurationSeconds"] = json!(0);
    let (code, _, message) = refusal(leases.create(&PostParams::default(), &dynamic(body)).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "Lease.coordination.k8s.io \"zero\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    );
    let mut body = lease("negative");
    body["spec"]["leaseTransitions"] = json!(-1);
    let (_, _, message) = refusal(leases.create(&PostParams::default(), &dynamic(body)).await.unwrap_err());
    assert_eq!(
        message,
        "Lease.coordination.k8s.io \"negative\" is invalid: spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"
    );
    let mut body = lease("gated");
    body["spec"]["strategy"] = json!("OldestEmulationVersion");
    let (code, _, _) = refusal(leases.create(&PostParams::default(), &dynamic(body)).await.unwrap_err());
    assert_eq!(code, 501);

    // A domain-less finalizer is fine on a Lease (apimachinery's rules only).
    let mut body = lease("l");
    body["metadata"]["finalizers"] = json!(["foo"]);
    let created = leases.create(&PostParams::default(), &dynamic(body)).await.unwrap();

    // Leases need a resourceVersion on update, and a current one.
    let mut renewed = created.clone();
    renewed.data["spec"]["renewTime"] = json!("2026-01-02T03:04:20.000000Z");
    let renewed = leases.replace("l", &PostParams::default(), &renewed).await.unwrap();
    let (code, _, message) = refusal(leases.replace("l", &PostParams::default(), &created).await.unwrap_err());
    assert_eq!(code, 409);
    assert_eq!(
        message,
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"l\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let mut unconditional = renewed.clone();
    unconditional.metadata.resource_version = None;
    let (code, _, message) = refusal(leases.replace("l", &PostParams::default(), &unconditional).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "leases.coordination.k8s.io \"l\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update"
    );
    let mut zero = renewed.clone();
    zero.data["spec"]["leaseDurationSeconds"] = json!(0);
    let (code, _, _) = refusal(leases.replace("l", &PostParams::default(), &zero).await.unwrap_err());
    assert_eq!(code, 422, "spec rules apply on update too");

    // PUT of a missing Lease creates it (as client-go's leader election may).
    let created = leases.replace("fresh", &PostParams::default(), &dynamic(lease("fresh"))).await.unwrap();
    assert_eq!(created.data["spec"]["holderIdentity"], "pod-1");
}

#[tokio::test]
async fn labels_annotations_and_finalizers_are_validated_on_every_kind() {
    let stack = start().await;
    let irs = stack.irs();
    let with_meta = |name: &str, key: &str, value: Value| {
        let mut body = ir(name);
        body["metadata"][key] = value;
        dynamic(body)
    };

    irs.create(
        &PostParams::default(),
        &with_meta("ok", "labels", json!({"example.com/shard": "a".repeat(63), "empty": ""})),
    )
    .await
    .unwrap();
    let long = "a".repeat(64);
    let err =
        irs.create(&PostParams::default(), &with_meta("long", "labels", json!({"shard": long}))).await.unwrap_err();
    let s = status(err);
    assert_eq!(s.code, 422);
    assert_eq!(
        s.message,
        format!(
            "IntegrationResponse.{IR} \"long\" is invalid: metadata.labels: Invalid value: \"{long}\": must be no more than 63 bytes"
        )
    );
    let details = s.details.unwrap();
    assert_eq!((details.group.as_str(), details.kind.as_str()), (IR, "IntegrationResponse"));
    assert_eq!(details.causes[0].field, "metadata.labels");

    let (_, _, message) = refusal(
        irs.create(&PostParams::default(), &with_meta("key", "labels", json!({"bad key": "x"}))).await.unwrap_err(),
    );
    assert_eq!(
        message,
        format!(
            "IntegrationResponse.{IR} \"key\" is invalid: metadata.labels: Invalid value: \"bad key\": {NAME_PART}"
        )
    );

    // Annotations: keys plus values up to 256 KiB in total.
    let key = "example.com/big";
    irs.create(
        &PostParams::default(),
        &with_meta("fits", "annotations", json!({key: "x".repeat(262_144 - key.len())})),
    )
    .await
    .unwrap();
    let (code, _, message) = refusal(
        irs.create(
            &PostParams::default(),
            &with_meta("big", "annotations", json!({key: "x".repeat(262_145 - key.len())})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert_eq!(
        message,
        format!(
            "IntegrationResponse.{IR} \"big\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes"
        )
    );

    irs.create(
        &PostParams::default(),
        &with_meta("fin", "finalizers", json!(["apigatewayv2.aws.operator.rs/cleanup", "plain"])),
    )
    .await
    .unwrap();
    let (_, _, message) = refusal(
        irs.create(&PostParams::default(), &with_meta("badfin", "finalizers", json!(["bad finalizer"])))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        message,
        format!(
            "IntegrationResponse.{IR} \"badfin\" is invalid: metadata.finalizers: Invalid value: \"bad finalizer\": {NAME_PART}"
        )
    );

    let (_, _, message) = refusal(irs.create(&PostParams::default(), &dynamic(ir("Bad"))).await.unwrap_err());
    assert_eq!(
        message,
        format!("IntegrationResponse.{IR} \"Bad\" is invalid: metadata.name: Invalid value: \"Bad\": {SUBDOMAIN}")
    );

    // Updates are checked too, by patch as by PUT.
    let (code, _, message) = refusal(
        irs.patch("ok", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"shard": long}}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(message.ends_with("must be no more than 63 bytes"), "{message}");

    // Metadata of the wrong type does not decode.
    let mut body = ir("typed");
    body["metadata"]["labels"] = json!({"shard": 1});
    let (code, refused) =
        stack.raw("POST", &format!("/apis/{IR}/v1alpha1/namespaces/default/integrationresponses"), Some(body)).await;
    assert_eq!((code, refused["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(
        refused["message"],
        "IntegrationResponse in version \"v1alpha1\" cannot be handled as a IntegrationResponse: metadata: Invalid value: {\"labels\":{\"shard\":1},\"name\":\"typed\"}: json: cannot unmarshal number into Go struct field ObjectMeta.labels of type string"
    );

    // The same rules hold for Leases.
    let mut body = lease("l");
    body["metadata"]["labels"] = json!({"holder": long});
    let (code, _, message) = refusal(stack.leases().create(&PostParams::default(), &dynamic(body)).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        message,
        format!(
            "Lease.coordination.k8s.io \"l\" is invalid: metadata.labels: Invalid value: \"{long}\": must be no more than 63 bytes"
        )
    );
}

#[tokio::test]
async fn resource_version_in_a_patch_is_a_precondition_on_the_resource_and_its_status() {
    let stack = start().await;
    let irs = stack.irs();
    let created = irs.create(&PostParams::default(), &dynamic(ir("a"))).await.unwrap();
    let stale = created.metadata.resource_version.clone().unwrap();
    let moved = irs
        .patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})))
        .await
        .unwrap();
    let current = moved.metadata.resource_version.clone().unwrap();
    let conflict = format!(
        "Operation cannot be fulfilled on integrationresponses.{IR} \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let expect_conflict = |err: kube::Error| {
        let (code, reason, message) = refusal(err);
        assert_eq!((code, reason.as_str(), message.as_str()), (409, "Conflict", conflict.as_str()));
    };
    let with_rv = |rv: &str, rest: Value| {
        let mut patch = rest;
        patch["metadata"]["resourceVersion"] = json!(rv);
        patch
    };
    let pp = PatchParams::default();

    // Merge patch, on the resource and on status.
    expect_conflict(
        irs.patch("a", &pp, &Patch::Merge(with_rv(&stale, json!({"metadata": {"labels": {"x": "2"}}}))))
            .await
            .unwrap_err(),
    );
    expect_conflict(
        irs.patch_status("a", &pp, &Patch::Merge(with_rv(&stale, json!({"status": {"integrationResponseId": "r1"}}))))
            .await
            .unwrap_err(),
    );
    // JSON patch.
    let json_patch = |rv: &str, op: Value| {
        Patch::Json::<()>(
            serde_json::from_value(json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
                op,
            ]))
            .unwrap(),
        )
    };
    expect_conflict(
        irs.patch("a", &pp, &(json_patch(&stale, json!({"op": "add", "path": "/metadata/labels/y", "value": "1"}))))
            .await
            .unwrap_err(),
    );
    expect_conflict(
        irs.patch_status(
            "a",
            &pp,
            &(json_patch(&stale, json!({"op": "add", "path": "/status", "value": {"integrationResponseId": "r1"}}))),
        )
        .await
        .unwrap_err(),
    );
    // Server-side apply of status.
    let apply = |rv: &str| {
        json!({
            "apiVersion": format!("{IR}/v1alpha1"),
            "kind": "IntegrationResponse",
            "metadata": {"name": "a", "resourceVersion": rv},
            "status": {"integrationResponseId": "r1"},
        })
    };
    let ssa = PatchParams::apply("integration-response-operator").force();
    expect_conflict(irs.patch_status("a", &ssa, &Patch::Apply(apply(&stale))).await.unwrap_err());
    assert!(irs.get("a").await.unwrap().data.get("status").is_none(), "nothing was written");

    // With the current version each is accepted.
    let applied = irs.patch_status("a", &ssa, &Patch::Apply(apply(&current))).await.unwrap();
    assert_eq!(applied.data["status"]["integrationResponseId"], "r1");
    let current = applied.metadata.resource_version.unwrap();
    let patched = irs
        .patch_status("a", &pp, &Patch::Merge(with_rv(&current, json!({"status": {"integrationResponseId": "r2"}}))))
        .await
        .unwrap();
    let current = patched.metadata.resource_version.unwrap();
    let patched = irs
        .patch("a", &pp, &(json_patch(&current, json!({"op": "add", "path": "/metadata/labels/y", "value": "1"}))))
        .await
        .unwrap();
    let current = patched.metadata.resource_version.unwrap();
    irs.patch("a", &pp, &Patch::Merge(with_rv(&current, json!({"metadata": {"labels": {"x": "3"}}})))).await.unwrap();
    // Without one, apply is unconditional.
    let mut unconditional = apply("");
    unconditional["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    unconditional["status"]["integrationResponseId"] = json!("r3");
    irs.patch_status("a", &ssa, &Patch::Apply(unconditional)).await.unwrap();

    // A custom resource's PUT needs a resourceVersion.
    let mut put = irs.get("a").await.unwrap();
    put.metadata.resource_version = None;
    let (code, _, message) = refusal(irs.replace("a", &PostParams::default(), &put).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        message,
        format!(
            "integrationresponses.{IR} \"a\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update"
        )
    );
}

#[tokio::test]
async fn namespaces_are_dns_labels_and_get_the_kubernetes_finalizer() {
    let stack = start().await;
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Namespace"), "namespaces");
    let namespaces: Api<DynamicObject> = Api::all_with(stack.client.clone(), &resource);
    let created = namespaces
        .create(
            &PostParams::default(),
            &dynamic(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})),
        )
        .await
        .unwrap();
    assert_eq!(created.data["status"], json!({"phase": "Active"}));
    assert_eq!(created.data["spec"], json!({"finalizers": ["kubernetes"]}));
    assert_eq!(created.metadata.labels.as_ref().unwrap()["kubernetes.io/metadata.name"], "team-a");
    let (code, _, message) = refusal(
        namespaces
            .create(
                &PostParams::default(),
                &dynamic(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team.a"}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "Namespace \"team.a\" is invalid: metadata.name: Invalid value: \"team.a\": must not contain dots"
    );
    let (_, _, message) = refusal(
        namespaces
            .create(
                &PostParams::default(),
                &dynamic(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Team"}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(message, format!("Namespace \"Team\" is invalid: metadata.name: Invalid value: \"Team\": {LABEL}"));

    // Spec and status do not change through an update of the namespace itself.
    let mut changed = created.clone();
    changed.data["spec"] = json!({"finalizers": []});
    changed.data["status"] = json!({"phase": "Terminating"});
    changed.metadata.labels = Some([("team".to_owned(), "a".to_owned())].into());
    let updated = namespaces.replace("team-a", &PostParams::default(), &changed).await.unwrap();
    assert_eq!(updated.data["spec"], json!({"finalizers": ["kubernetes"]}));
    assert_eq!(updated.data["status"], json!({"phase": "Active"}));
    let labels = updated.metadata.labels.unwrap();
    assert_eq!((labels["team"].as_str(), labels["kubernetes.io/metadata.name"].as_str()), ("a", "team-a"));
}

#[tokio::test]
async fn an_update_cannot_change_the_uid() {
    let stack = start().await;
    let irs = stack.irs();
    let created = irs.create(&PostParams::default(), &dynamic(ir("a"))).await.unwrap();
    let mut changed = created.clone();
    changed.metadata.uid = Some("another-uid".into());
    let (code, _, message) = refusal(irs.replace("a", &PostParams::default(), &changed).await.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        message,
        format!(
            "IntegrationResponse.{IR} \"a\" is invalid: metadata.uid: Invalid value: \"another-uid\": field is immutable"
        )
    );
    let mut unchanged = created.clone();
    unchanged.metadata.labels = Some([("x".to_owned(), "1".to_owned())].into());
    irs.replace("a", &PostParams::default(), &unchanged).await.unwrap();
}

#[tokio::test]
async fn built_in_resources_it_does_not_serve_are_501_and_unknown_groups_404() {
    let stack = start().await;
    for path in [
        "/api/v1/namespaces/default/configmaps",
        "/api/v1/namespaces/default/status",
        "/apis/apps/v1/namespaces/default/deployments",
        "/apis/coordination.k8s.io/v1/namespaces/default/leasecandidates",
    ] {
        let (code, body) = stack.raw("GET", path, None).await;
        assert_eq!(code, 501, "{path}: {body}");
        assert_eq!(body["reason"], "NotImplemented", "{path}");
    }
    let (code, _) = stack.raw("GET", "/apis/example.com/v1/namespaces/default/widgets", None).await;
    assert_eq!(code, 404);
    let (code, _) = stack.raw("GET", "/apis/events.k8s.io/v1/namespaces/default/events", None).await;
    assert_eq!(code, 200);
    // Core v1 Events are served read-only (converted from events.k8s.io/v1); writes are 501.
    let (code, _) = stack.raw("GET", "/api/v1/namespaces/default/events", None).await;
    assert_eq!(code, 200);
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}});
    let (code, body) = stack.raw("POST", "/api/v1/namespaces/default/events", Some(event)).await;
    assert_eq!(code, 501, "{body}");
}
