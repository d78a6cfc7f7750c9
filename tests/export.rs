//! `integration-response-operator export`: paging and error paths against the fake API Gateway,
//! the real binary against moto, and the round trip export → apply → Ready with no AWS write
//! (then observed, then managed) against the whole local stack.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::sync::Arc;

use aws_sdk_apigatewayv2::types::IntegrationType;
use integration_response_operator::aws::AwsClients;
use integration_response_operator::crd::{DeletionPolicy, IntegrationResponse, ManagementPolicy};
use integration_response_operator::export::{self, ExportError, Found};
use integration_response_operator::metrics::Metrics;
use integration_response_operator::pacing::Pacer;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::fake_aws::{FakeAws, error_response};
use support::moto::Moto;
use support::stack::{Stack, WAIT, eventually, wait_ready};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const KEYS: [&str; 4] = ["$default", "/4\\d\\d/", "/5\\d{2}|(429)/", "/[^a-z].*$/"];

fn template(n: usize) -> String {
    format!("{{\"error\": \"it's \\\"bad\\\" #{n}\"}}\n  line two\n")
}

async fn collect(
    aws: &FakeAws,
    api: &str,
    integration: Option<&str>,
) -> (Result<Vec<Found>, ExportError>, Vec<String>) {
    let clients = AwsClients::fixed(aws.client(), Arc::new(Pacer::unlimited()), Arc::new(Metrics::default()));
    let mut progress = Vec::new();
    let found =
        export::collect(&clients.for_region("us-east-1"), "us-east-1", api, integration, |line| progress.push(line))
            .await;
    (found, progress)
}

/// Five integrations on api1 (three pages of two), the middle one with all of KEYS (two pages
/// of responses), plus another API that must not appear.
fn paged_fake() -> FakeAws {
    let aws = FakeAws::new();
    for n in 1..=5 {
        aws.set(|state| {
            state.integrations.insert(("api1".into(), format!("int{n}")));
        });
    }
    aws.set(|state| {
        state.integrations.insert(("api2".into(), "other".into()));
    });
    for (n, key) in KEYS.iter().enumerate() {
        let id = aws.insert_foreign("api1", "int3", key);
        aws.tamper(&id, |stored| {
            stored.response_templates.insert("application/json".into(), template(n));
            stored.response_parameters.insert("method.response.header.X-N".into(), format!("'{n}'"));
            stored.template_selection_expression = Some("$integration.response.statuscode".into());
        });
    }
    aws.insert_foreign("api1", "int5", "$default");
    aws.insert_foreign("api2", "other", "$default");
    aws
}

#[tokio::test]
async fn every_page_of_integrations_and_responses_is_exported() {
    let aws = paged_fake();
    let (found, progress) = collect(&aws, "api1", None).await;
    let found = found.expect("export succeeds");
    let calls = aws.calls();
    assert_eq!(calls.iter().filter(|c| *c == "GetIntegrations").count(), 3, "{calls:?}");
    assert_eq!(calls.iter().filter(|c| *c == "GetIntegrationResponses").count(), 6, "two pages for int3: {calls:?}");
    assert!(calls.iter().all(|c| c.starts_with("Get")), "reads only: {calls:?}");
    assert_eq!(progress.len(), 5);
    assert_eq!(progress[2], "integration 3/5 int3: 4 responses");

    let keys: Vec<(&str, &str)> =
        found.iter().map(|f| (f.integration_id.as_str(), f.response.fields.key.as_str())).collect();
    let mut expected: Vec<(&str, &str)> = KEYS.iter().map(|k| ("int3", *k)).collect();
    expected.sort();
    expected.push(("int5", "$default"));
    assert_eq!(keys, expected);
    for item in found.iter().filter(|f| f.integration_id == "int3") {
        let n = KEYS.iter().position(|k| *k == item.response.fields.key).unwrap();
        assert_eq!(item.response.fields.response_templates["application/json"], template(n));
        assert_eq!(item.response.fields.response_parameters["method.response.header.X-N"], format!("'{n}'"));
    }

    // One integration only: no listing of integrations.
    aws.clear_calls();
    let (found, progress) = collect(&aws, "api1", Some("int5")).await;
    assert_eq!(found.unwrap().len(), 1);
    assert!(progress.is_empty());
    assert!(!aws.calls().contains(&"GetIntegrations".to_owned()));
}

#[tokio::test]
async fn errors_say_what_is_missing_or_refused() {
    let aws = paged_fake();
    let (found, _) = collect(&aws, "nope", None).await;
    let err = found.unwrap_err();
    assert!(matches!(err, ExportError::ApiNotFound { .. }), "{err:?}");
    assert_eq!(err.to_string(), "API nope was not found in us-east-1: check --api-id and --region");

    let (found, _) = collect(&aws, "api1", Some("int9")).await;
    assert_eq!(found.unwrap_err().to_string(), "integration int9 was not found on API api1: check --integration-id");

    aws.set(|state| {
        state.http_apis.insert("api2".into());
    });
    let (found, _) = collect(&aws, "api2", None).await;
    assert_eq!(
        found.unwrap_err().to_string(),
        "API api2 is an HTTP API; integration responses exist only on WebSocket APIs"
    );

    aws.fail_next("GetIntegrationResponses", error_response(403, "AccessDeniedException", "not authorized"));
    let (found, _) = collect(&aws, "api1", None).await;
    let message = found.unwrap_err().to_string();
    assert!(
        message.starts_with("AWS denied GetIntegrationResponses: AccessDeniedException: not authorized"),
        "{message}"
    );
    assert!(message.contains("apigateway:GET on arn:aws:apigateway:us-east-1::/apis/api1"), "{message}");
}

/// Runs the real binary's export with moto's endpoint; `env` adds to or overrides the defaults.
fn run_export(moto: &Moto, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_integration-response-operator"));
    command
        .arg("export")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL_APIGATEWAYV2", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("export runs")
}

fn parse(output: &Output) -> Vec<IntegrationResponse> {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(output.status.success(), "export failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_saphyr::from_multiple(&stdout).expect("a YAML stream of IntegrationResponses")
}

/// A WebSocket API in moto with two MOCK integrations holding `KEYS` and `$default`.
async fn moto_api(moto: &Moto) -> (String, Vec<String>) {
    let client = moto.client().await;
    let (api_id, first) = moto.websocket_integration().await;
    let second = client
        .create_integration()
        .api_id(&api_id)
        .integration_type(IntegrationType::Mock)
        .send()
        .await
        .unwrap()
        .integration_id()
        .unwrap()
        .to_owned();
    for (n, key) in KEYS.iter().enumerate() {
        client
            .create_integration_response()
            .api_id(&api_id)
            .integration_id(&first)
            .integration_response_key(*key)
            .template_selection_expression("$integration.response.statuscode")
            .response_templates("application/json", template(n))
            .response_parameters("method.response.header.X-N", format!("'{n}'"))
            .send()
            .await
            .unwrap();
    }
    client
        .create_integration_response()
        .api_id(&api_id)
        .integration_id(&second)
        .integration_response_key("$default")
        .content_handling_strategy(aws_sdk_apigatewayv2::types::ContentHandlingStrategy::ConvertToText)
        .send()
        .await
        .unwrap();
    (api_id, vec![first, second])
}

#[tokio::test]
async fn the_binary_exports_what_moto_holds_exactly() {
    let moto = Moto::start();
    let (api_id, integrations) = moto_api(&moto).await;
    let output = run_export(&moto, &["--api-id", &api_id, "--namespace", "team-a", "--observe"], &[]);
    let objects = parse(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("integration 1/2") && stderr.contains("exported 5 integration responses"), "{stderr}");
    assert_eq!(objects.len(), 5);

    let names: BTreeSet<String> = objects.iter().map(|o| o.metadata.name.clone().unwrap()).collect();
    assert_eq!(names.len(), 5, "unique names: {names:?}");
    for object in &objects {
        let name = object.metadata.name.as_deref().unwrap();
        assert!(name.len() <= 63 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        assert_eq!(object.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(object.metadata.annotations.as_ref().unwrap()["apigatewayv2.aws.operator.rs/adopt"], "true");
        assert_eq!(object.spec.deletion_policy, Some(DeletionPolicy::Retain));
        assert_eq!(object.spec.management_policy, Some(ManagementPolicy::Observe));
        assert_eq!(object.spec.api_id.as_deref(), Some(api_id.as_str()));
        assert_eq!(object.spec.region.as_deref(), Some("us-east-1"));
    }
    let by_key: BTreeMap<(&str, &str), &IntegrationResponse> = objects
        .iter()
        .map(|o| ((o.spec.integration_id.as_deref().unwrap(), o.spec.integration_response_key.as_str()), o))
        .collect();
    for (n, key) in KEYS.iter().enumerate() {
        let spec = &by_key[&(integrations[0].as_str(), *key)].spec;
        assert_eq!(spec.response_templates.as_ref().unwrap()["application/json"], template(n));
        assert_eq!(spec.response_parameters.as_ref().unwrap()["method.response.header.X-N"], format!("'{n}'"));
        assert_eq!(spec.template_selection_expression.as_deref(), Some("$integration.response.statuscode"));
        assert_eq!(spec.content_handling_strategy, None);
    }
    let other = &by_key[&(integrations[1].as_str(), "$default")].spec;
    assert_eq!(other.content_handling_strategy.map(|c| c.as_str()), Some("CONVERT_TO_TEXT"));
    assert_eq!((other.response_templates.as_ref(), other.response_parameters.as_ref()), (None, None));

    let output = run_export(&moto, &["--api-id", &api_id, "--deletion-policy", "Delete"], &[]);
    assert!(
        parse(&output)
            .iter()
            .all(|o| o.spec.deletion_policy == Some(DeletionPolicy::Delete) && o.spec.management_policy.is_none())
    );
}

#[tokio::test]
async fn the_binary_fails_clearly_without_credentials_or_api() {
    let moto = Moto::start();
    let (api_id, _) = moto_api(&moto).await;

    let missing = run_export(&moto, &["--api-id", "nope"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty(), "no YAML on failure");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.trim(), "error: API nope was not found in us-east-1: check --api-id and --region");

    let mut command = Command::new(env!("CARGO_BIN_EXE_integration-response-operator"));
    let no_credentials = command
        .args(["export", "--api-id", &api_id, "--region", "us-east-1"])
        .env_clear()
        .env("AWS_ENDPOINT_URL_APIGATEWAYV2", &moto.endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .output()
        .unwrap();
    assert_eq!(no_credentials.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&no_credentials.stderr);
    assert!(stderr.starts_with("error: no AWS credentials: set AWS_PROFILE"), "{stderr}");
    assert!(!stderr.contains("testing"), "{stderr}");

    let no_region = run_export(&moto, &["--api-id", &api_id], &[("AWS_REGION", "")]);
    let stderr = String::from_utf8_lossy(&no_region.stderr);
    assert_eq!(stderr.trim(), "error: no AWS region: pass --region or set AWS_REGION");
}

/// The `integration_response_operator_aws_calls_total` samples of mutating operations.
async fn aws_writes(operator: &support::stack::Operator) -> Vec<String> {
    let (_, metrics) = operator.http_get("/metrics").await;
    metrics
        .lines()
        .filter(|l| l.starts_with("integration_response_operator_aws_calls_total{"))
        .filter(|l| ["Create", "Update", "Delete"].iter().any(|op| l.contains(&format!("operation=\"{op}"))))
        .map(str::to_owned)
        .collect()
}

async fn exported_into_the_stack(stack: &Stack, args: &[&str]) -> Vec<IntegrationResponse> {
    let mut all = vec!["--api-id", stack.api_id.as_str(), "--namespace", "default"];
    all.extend(args);
    let objects = parse(&run_export(&stack.moto, &all, &[]));
    for object in &objects {
        stack.apply(object).await;
    }
    objects
}

/// The real kubectl reads the YAML (go-yaml, YAML 1.1 rules) and applies it: what reaches the API
/// server is exactly what was exported.
#[tokio::test]
async fn kubectl_applies_the_export_exactly() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let client = stack.moto.client().await;
    for (n, key) in KEYS.iter().enumerate() {
        client
            .create_integration_response()
            .api_id(&stack.api_id)
            .integration_id(&stack.integration_id)
            .integration_response_key(*key)
            .template_selection_expression("$integration.response.statuscode")
            .response_templates("application/json", template(n))
            .response_templates("text/plain", "on\n---\n  no: 0x1F\t\n")
            .response_parameters("method.response.header.X-N", format!("'{n}'"))
            .send()
            .await
            .unwrap();
    }
    let output = run_export(&stack.moto, &["--api-id", &stack.api_id, "--namespace", "default", "--observe"], &[]);
    let exported = parse(&output);
    let file = stack.kubeconfig().with_file_name("exported.yaml");
    std::fs::write(&file, &output.stdout).unwrap();
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let kubeconfig = stack.kubeconfig();
    let file_arg = file.clone();
    let applied = tokio::task::spawn_blocking(move || {
        Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["apply", "-f"])
            .arg(&file_arg)
            .output()
            .unwrap_or_else(|err| panic!("cannot run {kubectl} ({err}); scripts/install-test-tools.sh installs it"))
    })
    .await
    .unwrap();
    assert!(applied.status.success(), "kubectl apply failed: {}", String::from_utf8_lossy(&applied.stderr));
    let stdout = String::from_utf8_lossy(&applied.stdout);
    assert_eq!(stdout.matches("created").count(), KEYS.len(), "{stdout}");
    for object in &exported {
        let stored = stack.api().get(object.metadata.name.as_deref().unwrap()).await.unwrap();
        assert_eq!(stored.spec, object.spec);
        assert_eq!(stored.metadata.annotations.unwrap()["apigatewayv2.aws.operator.rs/adopt"], "true");
    }
}

#[tokio::test]
async fn exported_objects_become_ready_without_a_single_aws_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let client = stack.moto.client().await;
    for (n, key) in KEYS.iter().enumerate() {
        client
            .create_integration_response()
            .api_id(&stack.api_id)
            .integration_id(&stack.integration_id)
            .integration_response_key(*key)
            .response_templates("application/json", template(n))
            .response_parameters("method.response.header.X-N", format!("'{n}'"))
            .send()
            .await
            .unwrap();
    }
    let before = stack.moto_responses().await;
    let objects = exported_into_the_stack(&stack, &[]).await;
    assert_eq!(objects.len(), KEYS.len());
    let operator = stack.operator(&[]);
    for object in &objects {
        let name = object.metadata.name.as_deref().unwrap();
        let ready = wait_ready(&stack, name, &operator).await;
        let status = ready.status.unwrap();
        let original = before
            .iter()
            .find(|r| r.integration_response_key() == Some(&object.spec.integration_response_key))
            .unwrap();
        assert_eq!(
            status.integration_response_id.as_deref(),
            original.integration_response_id(),
            "adopted, not created"
        );
    }
    assert_eq!(aws_writes(&operator).await, Vec::<String>::new(), "adopted with nothing to update");
    assert_eq!(stack.moto_responses().await, before);
}

#[tokio::test]
async fn exported_for_observing_then_differing_then_managed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let client = stack.moto.client().await;
    client
        .create_integration_response()
        .api_id(&stack.api_id)
        .integration_id(&stack.integration_id)
        .integration_response_key("$default")
        .response_templates("application/json", template(0))
        .send()
        .await
        .unwrap();
    let objects = exported_into_the_stack(&stack, &["--observe"]).await;
    let name = objects[0].metadata.name.clone().unwrap();
    let operator = stack.operator(&[]);
    let observed = wait_ready(&stack, &name, &operator).await;
    let ready = observed.status.as_ref().unwrap().condition("Ready").unwrap().clone();
    assert_eq!(ready.reason, "InSync");

    // The spec now asks for another template: Observe reports it and leaves AWS alone.
    let api = stack.api();
    let params = PatchParams::default();
    let wanted = json!({"spec": {"responseTemplates": {"application/json": "{\"v\": 2}"}}});
    api.patch(&name, &params, &Patch::Merge(&wanted)).await.unwrap();
    let differs = eventually(WAIT, "Differs", Some(&operator), || {
        let (api, name) = (api.clone(), name.clone());
        async move {
            let object = api.get(&name).await.ok()?;
            let status = object.status.clone()?;
            (status.observed_generation == object.metadata.generation
                && status.condition("Ready").is_some_and(|c| c.reason == "Differs"))
            .then_some(status)
        }
    })
    .await;
    assert_eq!(differs.differences.len(), 1);
    assert_eq!(differs.differences[0].field, "responseTemplates[application/json]");
    assert!(differs.condition("Ready").unwrap().message.contains("responseTemplates"));
    assert_eq!(differs.condition("Stalled").unwrap().status, "False");
    assert_eq!(stack.moto_responses().await[0].response_templates().unwrap()["application/json"], template(0));
    assert_eq!(aws_writes(&operator).await, Vec::<String>::new());

    // Managed: the listed difference is applied, once.
    let manage = json!({"spec": {"managementPolicy": "Manage"}});
    api.patch(&name, &params, &Patch::Merge(&manage)).await.unwrap();
    let managed = wait_ready(&stack, &name, &operator).await;
    assert_eq!(managed.status.as_ref().unwrap().condition("Ready").unwrap().reason, "Available");
    assert!(managed.status.unwrap().differences.is_empty());
    let in_aws = stack.moto_responses().await;
    assert_eq!(in_aws.len(), 1);
    assert_eq!(in_aws[0].response_templates().unwrap()["application/json"], "{\"v\": 2}");
    assert_eq!(
        aws_writes(&operator).await,
        [
            r#"integration_response_operator_aws_calls_total{operation="UpdateIntegrationResponse",outcome="ok",account="self"} 1"#
        ]
    );
}
