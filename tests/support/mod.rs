//! Test support shared by the integration test binaries.
#![allow(dead_code)]

pub mod fake_aws;
pub mod fake_kube;
pub mod moto;
pub mod proxy;
pub mod sim_kube;
pub mod stack;
pub mod sts_gate;

use std::sync::Arc;
use std::time::Duration;

use integration_response_operator::aws::AwsClients;
use integration_response_operator::controller::{Context, EventRecorder, Settings};
use integration_response_operator::crd::IntegrationResponse;
use integration_response_operator::metrics::Metrics;
use integration_response_operator::pacing::Pacer;

/// A fresh operator context (as after a process start) over the given fakes.
pub fn context(kube: &fake_kube::FakeKube, aws: &fake_aws::FakeAws) -> Arc<Context> {
    context_as(kube, aws, "test")
}

/// A fresh context for an operator instance named `identity`.
pub fn context_as(kube: &fake_kube::FakeKube, aws: &fake_aws::FakeAws, identity: &str) -> Arc<Context> {
    context_with(kube, aws, identity, Duration::from_secs(30))
}

/// A fresh context for an instance named `identity` whose view of other instances' claims
/// expires after `claim_timeout`.
pub fn context_with(
    kube: &fake_kube::FakeKube,
    aws: &fake_aws::FakeAws,
    identity: &str,
    claim_timeout: Duration,
) -> Arc<Context> {
    context_with_settings(kube, aws, identity, |settings| settings.claim_timeout = claim_timeout)
}

/// A fresh context whose settings `edit` adjusts.
pub fn context_with_settings(
    kube: &fake_kube::FakeKube,
    aws: &fake_aws::FakeAws,
    identity: &str,
    edit: impl FnOnce(&mut Settings),
) -> Arc<Context> {
    let metrics = Arc::new(Metrics::default());
    let clients = AwsClients::fixed(aws.client(), Arc::new(Pacer::unlimited()), metrics.clone());
    let events = EventRecorder::new(kube.client(), "integration-response-operator", identity);
    let mut settings = Settings {
        default_region: Some("us-east-1".into()),
        resync_period: Duration::from_secs(600),
        identity: identity.into(),
        claim_timeout: Duration::from_secs(30),
        allow_cluster_scoped_refs: false,
        reference_kinds: integration_response_operator::references::RefKind::ALL.to_vec(),
        require_role_selector: false,
    };
    edit(&mut settings);
    Arc::new(Context::new(kube.client(), clients, events, settings, metrics))
}

/// A CR as a user would apply it.
pub fn integration_response(name: &str, api_id: &str, integration_id: &str) -> IntegrationResponse {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
        "kind": "IntegrationResponse",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "generation": 1, "resourceVersion": "1"},
        "spec": {
            "apiId": api_id,
            "integrationId": integration_id,
            "integrationResponseKey": "/4\\d\\d/",
            "templateSelectionExpression": "$integration.response.statuscode",
            "responseTemplates": {"application/json": "{\"error\": \"$context.error.message\"}"},
            "responseParameters": {"method.response.header.X-Failed": "'true'"}
        }
    }))
    .expect("valid IntegrationResponse")
}
