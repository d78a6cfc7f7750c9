//! The real `kubectl` (v1.33, from `KUBECTL`; `scripts/install-test-tools.sh` installs it and
//! writes `.tools/env`) against the emulator: discovery and short names, Tables with the CRD's
//! printer columns, `explain` from OpenAPI v3, client-side and server-side apply, `describe`
//! with Events, `wait`. Each test asserts what kubectl prints, as a user would see it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Client, Config};
use kube_emulator::Emulator;
use serde_json::json;

const EXAMPLE: &str = r#"apiVersion: apigatewayv2.aws.operator.rs/v1alpha1
kind: IntegrationResponse
metadata:
  name: client-errors
  namespace: default
spec:
  apiId: "a1"
  integrationId: "i1"
  integrationResponseKey: '/4\d\d/'
  responseTemplates:
    application/json: '{"error": "$context.error.message"}'
"#;

struct Stack {
    emulator: Emulator,
    dir: PathBuf,
    kubectl: PathBuf,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Stack {
    async fn start() -> Self {
        let kubectl = std::env::var_os("KUBECTL").map(PathBuf::from).unwrap_or_else(|| {
            panic!(
                "KUBECTL is not set: these tests drive the real kubectl. Run scripts/install-test-tools.sh, \
                 then `. .tools/env` (it exports KUBECTL), and run the tests again."
            )
        });
        assert!(kubectl.is_file(), "KUBECTL={} is not a file", kubectl.display());
        let crd = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../crds/integrationresponses.apigatewayv2.aws.operator.rs.yaml");
        let emulator = Emulator::start(&[crd.as_path()]).await.unwrap();
        let dir =
            std::env::temp_dir().join(format!("kube-emulator-kubectl-{}-{}", std::process::id(), emulator.addr.port()));
        std::fs::create_dir_all(&dir).unwrap();
        emulator.write_kubeconfig(&dir.join("kubeconfig")).unwrap();
        Self { emulator, dir, kubectl }
    }

    /// Runs kubectl with `args` (and `stdin`, if any) off the runtime's threads.
    async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(&self.kubectl);
        command
            .args(args)
            .arg(format!("--cache-dir={}", self.dir.join("cache").display()))
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("HOME", &self.dir)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let stdin = stdin.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("kubectl starts");
            if let Some(text) = stdin {
                child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            }
            let output = child.wait_with_output().unwrap();
            Output {
                ok: output.status.success(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        })
        .await
        .unwrap()
    }

    /// Starts kubectl for a command that does not end by itself (`get --watch`); `stop` ends
    /// it (SIGKILL) and returns its stdout.
    fn kubectl_running(&self, args: &[&str]) -> impl FnOnce() -> String + use<> {
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .arg(format!("--cache-dir={}", self.dir.join("cache").display()))
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl starts");
        move || {
            child.kill().unwrap();
            String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
        }
    }

    /// kubectl, which must succeed; returns its stdout.
    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin).await;
        assert!(out.ok, "kubectl {args:?} failed:\n{}\n{}", out.stdout, out.stderr);
        out.stdout
    }

    fn api(&self, group: &str, version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
        let client = Client::try_from(Config::new(self.emulator.url().parse().unwrap())).unwrap();
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        Api::namespaced_with(client, "default", &resource)
    }

    fn irs(&self) -> Api<DynamicObject> {
        self.api("apigatewayv2.aws.operator.rs", "v1alpha1", "IntegrationResponse", "integrationresponses")
    }

    /// Writes status as the operator does (server-side apply of the status subresource).
    async fn set_ready(&self, name: &str) {
        let generation = self.irs().get(name).await.unwrap().metadata.generation.unwrap();
        let status = json!({
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
            "kind": "IntegrationResponse",
            "status": {
                "integrationResponseId": "ir-123",
                "observedGeneration": generation,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Synced", "message": "in line with AWS",
                    "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": generation,
                }],
            },
        });
        self.irs()
            .patch_status(name, &PatchParams::apply("integration-response-operator").force(), &Patch::Apply(status))
            .await
            .unwrap();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cells of a kubectl table line, split on runs of two or more spaces.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_lists_the_crd_with_its_short_name_and_the_built_in_kinds() {
    let stack = Stack::start().await;
    let resources = stack.ok(&["api-resources"], None).await;
    let line = resources.lines().find(|l| l.starts_with("integrationresponses")).expect(&resources);
    assert_eq!(
        cells(line),
        ["integrationresponses", "apigwir", "apigatewayv2.aws.operator.rs/v1alpha1", "true", "IntegrationResponse"]
    );
    for kind in ["coordination.k8s.io/v1", "events.k8s.io/v1"] {
        assert!(resources.contains(kind), "{resources}");
    }
    let verbs = stack.ok(&["api-resources", "--api-group=apigatewayv2.aws.operator.rs", "-o", "wide"], None).await;
    assert!(verbs.contains("delete,deletecollection,get,list,patch,create,update,watch"), "{verbs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn get_shows_the_printer_columns_and_yaml() {
    let stack = Stack::start().await;
    let applied = stack.ok(&["apply", "-f", "-"], Some(EXAMPLE)).await;
    assert_eq!(applied.trim(), "integrationresponse.apigatewayv2.aws.operator.rs/client-errors created");
    let table = stack.ok(&["get", "apigwir"], None).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(cells(lines[0]), ["NAME", "READY", "REASON", "INTEGRATION RESPONSE ID", "KEY", "AGE"], "{table}");
    assert_eq!(cells(lines[1])[..2], ["client-errors", r"/4\d\d/"], "no status yet: empty cells\n{table}");

    stack.set_ready("client-errors").await;
    let table = stack.ok(&["get", "integrationresponses", "client-errors"], None).await;
    let row = cells(table.lines().nth(1).unwrap());
    assert_eq!(row[..5], ["client-errors", "True", "Synced", "ir-123", r"/4\d\d/"], "{table}");
    assert!(row[5].ends_with('s'), "age in seconds: {table}");

    let yaml = stack.ok(&["get", "apigwir", "client-errors", "-o", "yaml"], None).await;
    for expected in ["kind: IntegrationResponse", "apiId: a1", "integrationResponseId: ir-123", "type: Ready"] {
        assert!(yaml.contains(expected), "{expected} in\n{yaml}");
    }
    let json_path = stack
        .ok(&["get", "apigwir", "-o", r#"jsonpath={.items[0].status.conditions[?(@.type=="Ready")].reason}"#], None)
        .await;
    assert_eq!(json_path, "Synced");
}

#[tokio::test(flavor = "multi_thread")]
async fn get_watch_prints_a_row_per_change() {
    let stack = Stack::start().await;
    stack.ok(&["apply", "-f", "-"], Some(EXAMPLE)).await;
    let stop = stack.kubectl_running(&["get", "apigwir", "--watch", "--output-watch-events"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stack.set_ready("client-errors").await;
    stack.ok(&["delete", "apigwir", "client-errors"], None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let watched = tokio::task::spawn_blocking(stop).await.unwrap();
    let rows: Vec<Vec<&str>> = watched.lines().map(cells).collect();
    assert_eq!(rows[0], ["EVENT", "NAME", "READY", "REASON", "INTEGRATION RESPONSE ID", "KEY", "AGE"], "{watched}");
    assert_eq!(rows[1][..3], ["ADDED", "client-errors", r"/4\d\d/"], "{watched}");
    assert_eq!(rows[2][..5], ["MODIFIED", "client-errors", "True", "Synced", "ir-123"], "{watched}");
    assert_eq!(rows[3][..2], ["DELETED", "client-errors"], "{watched}");
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_prints_the_crd_field_descriptions() {
    let stack = Stack::start().await;
    let spec = stack.ok(&["explain", "integrationresponses.spec"], None).await;
    assert!(spec.contains("KIND:       IntegrationResponse"), "{spec}");
    assert!(spec.contains("An API Gateway V2 integration response on a WebSocket API's non-proxy"), "{spec}");
    assert!(spec.contains("integrationResponseKey\t<string> -required-"), "{spec}");
    assert!(spec.contains("apiId\t<string>\n"), "{spec}");
    assert!(spec.contains("Id of the WebSocket API that holds the integration. Immutable."), "{spec}");
    assert!(spec.contains("enum: CONVERT_TO_BINARY, CONVERT_TO_TEXT"), "{spec}");
    let conditions = stack.ok(&["explain", "apigwir.status.conditions.reason"], None).await;
    assert!(conditions.contains("One CamelCase word saying why."), "{conditions}");
    let name = stack.ok(&["explain", "apigwir.metadata.name"], None).await;
    assert!(name.contains("Name must be unique within a namespace."), "{name}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_side_apply_creates_then_patches_and_strict_validation_refuses_unknown_fields() {
    let stack = Stack::start().await;
    stack.ok(&["apply", "-f", "-"], Some(EXAMPLE)).await;
    let changed = EXAMPLE.replace(r"'/4\d\d/'", r"'/5\d\d/'");
    let applied = stack.ok(&["apply", "-f", "-"], Some(&changed)).await;
    assert_eq!(applied.trim(), "integrationresponse.apigatewayv2.aws.operator.rs/client-errors configured");
    let stored = stack.irs().get("client-errors").await.unwrap();
    assert_eq!(stored.data["spec"]["integrationResponseKey"], r"/5\d\d/");
    assert_eq!(stored.metadata.generation, Some(2));
    let unchanged = stack.ok(&["apply", "-f", "-"], Some(&changed)).await;
    assert_eq!(unchanged.trim(), "integrationresponse.apigatewayv2.aws.operator.rs/client-errors unchanged");

    // Moving to server-side apply: another manager's apply conflicts with the client-side
    // apply's fields; kubectl's own takes them over (the server's last-applied upgrade) and
    // kubectl migrates the managed fields.
    let third = EXAMPLE.replace(r"'/4\d\d/'", "$default");
    let other = stack.kubectl(&["apply", "--server-side", "--field-manager=other", "-f", "-"], Some(&third)).await;
    assert!(
        other.stderr.contains(r#"conflict with "kubectl-client-side-apply" using apigatewayv2.aws.operator.rs/v1alpha1: .spec.integrationResponseKey"#),
        "{}",
        other.stderr
    );
    let upgraded = stack.ok(&["apply", "--server-side", "-f", "-"], Some(&third)).await;
    assert_eq!(upgraded.trim(), "integrationresponse.apigatewayv2.aws.operator.rs/client-errors serverside-applied");
    let stored = stack.irs().get("client-errors").await.unwrap();
    assert_eq!(stored.data["spec"]["integrationResponseKey"], "$default");
    let managers: Vec<String> = stored.metadata.managed_fields.unwrap().into_iter().filter_map(|m| m.manager).collect();
    assert!(
        managers.contains(&"kubectl".to_owned()) && !managers.contains(&"kubectl-client-side-apply".to_owned()),
        "{managers:?}"
    );

    // kubectl asks for fieldValidation=Strict (the server supports it, says OpenAPI v3).
    let typo = EXAMPLE.replace("client-errors", "typo").replace("  apiId:", "  colour: blue\n  apiId:");
    let refused = stack.kubectl(&["apply", "-f", "-"], Some(&typo)).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains(
            "IntegrationResponse in version \"v1alpha1\" cannot be handled as a IntegrationResponse: strict decoding error: unknown field \"spec.colour\""
        ),
        "{}",
        refused.stderr
    );
    let warned = stack.kubectl(&["create", "--validate=warn", "-f", "-"], Some(&typo)).await;
    assert!(warned.ok, "{}", warned.stderr);
    assert!(warned.stderr.contains("Warning: unknown field \"spec.colour\""), "{}", warned.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_owns_fields_and_a_second_manager_conflicts() {
    let stack = Stack::start().await;
    let applied = stack.ok(&["apply", "--server-side", "-f", "-"], Some(EXAMPLE)).await;
    assert_eq!(applied.trim(), "integrationresponse.apigatewayv2.aws.operator.rs/client-errors serverside-applied");
    let stored = stack.irs().get("client-errors").await.unwrap();
    let managed = stored.metadata.managed_fields.unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!((managed[0].manager.as_deref(), managed[0].operation.as_deref()), (Some("kubectl"), Some("Apply")));
    let fields = &managed[0].fields_v1.as_ref().unwrap().0;
    assert_eq!(fields["f:spec"]["f:responseTemplates"], json!({"f:application/json": {}}));

    let theirs = EXAMPLE.replace(r"'/4\d\d/'", r"'/5\d\d/'");
    let conflict = stack.kubectl(&["apply", "--server-side", "--field-manager=other", "-f", "-"], Some(&theirs)).await;
    assert!(!conflict.ok);
    assert!(
        conflict
            .stderr
            .contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.integrationResponseKey"#),
        "{}",
        conflict.stderr
    );
    assert_eq!(stack.irs().get("client-errors").await.unwrap().data["spec"]["integrationResponseKey"], r"/4\d\d/");

    // The same value is shared, not a conflict; --force-conflicts takes the field over.
    stack.ok(&["apply", "--server-side", "--field-manager=other", "-f", "-"], Some(EXAMPLE)).await;
    stack.ok(&["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"], Some(&theirs)).await;
    let stored = stack.irs().get("client-errors").await.unwrap();
    assert_eq!(stored.data["spec"]["integrationResponseKey"], r"/5\d\d/");
    let kubectl_entry =
        stored.metadata.managed_fields.unwrap().into_iter().find(|m| m.manager.as_deref() == Some("kubectl"));
    let kubectl_fields = kubectl_entry.unwrap().fields_v1.unwrap().0;
    assert!(kubectl_fields["f:spec"].get("f:integrationResponseKey").is_none(), "{kubectl_fields}");

    // A field stays while any manager still applies it, and goes when the last one drops it.
    let without_templates =
        theirs.replace("  responseTemplates:\n    application/json: '{\"error\": \"$context.error.message\"}'\n", "");
    assert!(!without_templates.contains("responseTemplates"));
    stack.ok(&["apply", "--server-side", "-f", "-"], Some(&without_templates)).await;
    let stored = stack.irs().get("client-errors").await.unwrap();
    assert!(stored.data["spec"].get("responseTemplates").is_some(), "\"other\" still applies it: {:?}", stored.data);
    stack.ok(&["apply", "--server-side", "--field-manager=other", "-f", "-"], Some(&without_templates)).await;
    let stored = stack.irs().get("client-errors").await.unwrap();
    assert!(stored.data["spec"].get("responseTemplates").is_none(), "{:?}", stored.data);

    // A field changed by an ordinary write (kubectl patch: an Update by "kubectl-patch") leaves
    // its appliers; applying the old value again conflicts with the writer.
    let patch = r#"{"spec":{"integrationResponseKey":"$default"}}"#;
    stack.ok(&["patch", "apigwir", "client-errors", "--type=merge", "-p", patch], None).await;
    let conflict =
        stack.kubectl(&["apply", "--server-side", "--field-manager=other", "-f", "-"], Some(&without_templates)).await;
    assert!(!conflict.ok);
    assert!(
        conflict.stderr.contains(
            r#"Apply failed with 1 conflict: conflict with "kubectl-patch" using apigatewayv2.aws.operator.rs/v1alpha1: .spec.integrationResponseKey"#
        ),
        "{}",
        conflict.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_shows_the_events_the_operator_wrote() {
    let stack = Stack::start().await;
    stack.ok(&["apply", "-f", "-"], Some(EXAMPLE)).await;
    let object = stack.irs().get("client-errors").await.unwrap();
    // An Event as kube's Recorder writes it (events.k8s.io/v1); describe reads core v1 Events.
    let event: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "client-errors.created"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "integration-response-operator",
        "reportingInstance": "operator-0",
        "action": "Create",
        "reason": "Created",
        "type": "Normal",
        "note": "created integration response ir-123",
        "regarding": {
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
            "kind": "IntegrationResponse",
            "name": "client-errors",
            "namespace": "default",
            "uid": object.metadata.uid.clone().unwrap(),
        },
    }))
    .unwrap();
    stack.api("events.k8s.io", "v1", "Event", "events").create(&PostParams::default(), &event).await.unwrap();

    let described = stack.ok(&["describe", "apigwir", "client-errors"], None).await;
    assert!(described.contains("Integration Response Key:  /4\\d\\d/"), "{described}");
    let events = described.split("Events:").nth(1).expect(&described);
    let row = events.lines().find(|l| l.contains("Created")).expect(&described);
    assert_eq!(cells(row)[0..2], ["Normal", "Created"], "{described}");
    assert_eq!(
        cells(row)[3..],
        ["integration-response-operator", "created integration response ir-123"],
        "{described}"
    );

    let listed = stack.ok(&["get", "events"], None).await;
    assert_eq!(cells(listed.lines().next().unwrap()), ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], "{listed}");
    let row = cells(listed.lines().nth(1).unwrap());
    assert_eq!(
        row[1..],
        ["Normal", "Created", "integrationresponse/client-errors", "created integration response ir-123"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_returns_when_ready_is_set_and_times_out_otherwise() {
    let stack = Stack::start().await;
    stack.ok(&["apply", "-f", "-"], Some(EXAMPLE)).await;
    let not_yet =
        stack.kubectl(&["wait", "--for=condition=Ready", "apigwir/client-errors", "--timeout=1s"], None).await;
    assert!(!not_yet.ok);
    assert!(not_yet.stderr.contains("timed out waiting for the condition"), "{}", not_yet.stderr);

    let started = Instant::now();
    let (waited, ()) = tokio::join!(
        stack.kubectl(&["wait", "--for=condition=Ready", "apigwir/client-errors", "--timeout=60s"], None),
        async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            stack.set_ready("client-errors").await;
        }
    );
    assert!(waited.ok, "{}", waited.stderr);
    assert_eq!(waited.stdout.trim(), "integrationresponse.apigatewayv2.aws.operator.rs/client-errors condition met");
    assert!(started.elapsed() < Duration::from_secs(30), "wait returned on the watch event, not the timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn built_in_kinds_apply_explain_and_print_as_on_the_real_server() {
    let stack = Stack::start().await;
    let lease = |holder: &str| {
        format!(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: operator\nspec:\n  holderIdentity: {holder}\n  leaseDurationSeconds: 15\n"
        )
    };
    let created = stack.ok(&["apply", "-f", "-"], Some(&lease("pod-a"))).await;
    assert_eq!(created.trim(), "lease.coordination.k8s.io/operator created");
    let configured = stack.ok(&["apply", "-f", "-"], Some(&lease("pod-b"))).await;
    assert_eq!(configured.trim(), "lease.coordination.k8s.io/operator configured");
    let table = stack.ok(&["get", "leases"], None).await;
    assert_eq!(cells(table.lines().next().unwrap()), ["NAME", "HOLDER", "AGE"], "{table}");
    assert_eq!(cells(table.lines().nth(1).unwrap())[..2], ["operator", "pod-b"], "{table}");

    let typo = lease("pod-c").replace("  leaseDurationSeconds", "  leaseDurationSecs");
    let refused = stack.kubectl(&["apply", "-f", "-"], Some(&typo)).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("strict decoding error: unknown field \"spec.leaseDurationSecs\""),
        "{}",
        refused.stderr
    );

    let explained = stack.ok(&["explain", "lease.spec.holderIdentity"], None).await;
    assert!(
        explained.contains("holderIdentity contains the identity of the holder of a current lease."),
        "{explained}"
    );
    let namespaces = stack.ok(&["get", "ns"], None).await;
    assert_eq!(cells(namespaces.lines().nth(1).unwrap())[..2], ["default", "Active"], "{namespaces}");
}
