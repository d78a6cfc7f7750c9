//! The AWS layer against a real moto_server: every call the operator makes, with a WebSocket
//! API and integration made first (moto checks they exist).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use integration_response_operator::aws::{AwsClients, ErrorKind, IntegrationResponses};
use integration_response_operator::crd::ContentHandlingStrategy;
use integration_response_operator::domain::{Changes, Desired, Target};
use integration_response_operator::metrics::Metrics;
use integration_response_operator::pacing::Pacer;
use integration_response_operator::roles::Identity;
use support::moto::Moto;

async fn setup() -> (Moto, IntegrationResponses, Target, Arc<Metrics>) {
    let moto = Moto::start();
    let (api_id, integration_id) = moto.websocket_integration().await;
    let metrics = Arc::new(Metrics::default());
    let clients = AwsClients::from_loader(moto.loader(), Arc::new(Pacer::new(50.0, 10)), metrics.clone()).await;
    let target = Target { region: "us-east-1".into(), api_id, integration_id, identity: Identity::Own };
    (moto, clients.for_region("us-east-1"), target, metrics)
}

fn desired(key: &str) -> Desired {
    Desired {
        key: key.into(),
        content_handling: Some(ContentHandlingStrategy::ConvertToText),
        template_selection_expression: Some("$integration.response.statuscode".into()),
        response_templates: BTreeMap::from([("application/json".into(), "{\"ok\": false}".into())]),
        response_parameters: BTreeMap::from([("method.response.header.X-Err".into(), "'1'".into())]),
    }
}

#[tokio::test]
async fn create_read_list_update_delete_round_trip() {
    let (_moto, aws, target, metrics) = setup().await;

    let created = aws.create(&target, &desired("/4\\d\\d/")).await.expect("create");
    assert!(!created.id.is_empty());
    assert_eq!(created.fields.key, "/4\\d\\d/");

    let read = aws.get(&target, &created.id).await.expect("get");
    assert_eq!(read.id, created.id);
    assert_eq!(read.fields.content_handling, Some(ContentHandlingStrategy::ConvertToText));
    assert_eq!(read.fields.template_selection_expression.as_deref(), Some("$integration.response.statuscode"));
    assert_eq!(read.fields.response_templates["application/json"], "{\"ok\": false}");
    assert_eq!(read.fields.response_parameters["method.response.header.X-Err"], "'1'");

    let other = aws.create(&target, &desired("$default")).await.expect("second key");
    let listed = aws.list(&target).await.expect("list");
    assert_eq!(listed.len(), 2);
    let by_key = listed.iter().find(|r| r.fields.key == "/4\\d\\d/").expect("found by key");
    assert_eq!(by_key.id, created.id);
    assert_eq!(by_key.fields.response_templates, read.fields.response_templates);

    let changes = Changes {
        key: Some("/5\\d\\d/".into()),
        response_templates: Some(BTreeMap::from([("application/json".into(), "{\"v\": 2}".into())])),
        ..Default::default()
    };
    aws.update(&target, &created.id, &changes).await.expect("update");
    let updated = aws.get(&target, &created.id).await.unwrap();
    assert_eq!(updated.fields.key, "/5\\d\\d/");
    assert_eq!(updated.fields.response_templates["application/json"], "{\"v\": 2}");
    // Fields not in the update are left as they were.
    assert_eq!(updated.fields.response_parameters, read.fields.response_parameters);
    assert_eq!(updated.fields.content_handling, read.fields.content_handling);

    aws.delete(&target, &created.id).await.expect("delete");
    let gone = aws.get(&target, &created.id).await.expect_err("deleted");
    assert_eq!(gone.kind, ErrorKind::NotFound);
    // moto answers a delete of a missing response with an untyped 500; reading back shows it is gone.
    aws.delete(&target, &created.id).await.expect("deleting twice is done");
    assert_eq!(aws.list(&target).await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>(), [other.id]);

    assert!(metrics.aws_call_count("CreateIntegrationResponse", "ok") >= 2);
    assert_eq!(metrics.aws_call_count("GetIntegrationResponse", "not_found"), 2);
    assert_eq!(metrics.aws_call_count("DeleteIntegrationResponse", "server_error"), 1);
}

#[tokio::test]
async fn a_missing_api_or_integration_is_not_found() {
    let (_moto, aws, target, _) = setup().await;
    let no_integration = Target { integration_id: "nope".into(), ..target.clone() };
    let err = aws.list(&no_integration).await.expect_err("missing integration");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    let no_api = Target { api_id: "nope".into(), ..target.clone() };
    let err = aws.create(&no_api, &desired("$default")).await.expect_err("missing API");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    // A delete under a missing API counts as done.
    aws.delete(&no_api, "abc").await.expect("nothing left to delete");
}

#[tokio::test]
async fn clearing_fields_with_empty_values() {
    let (_moto, aws, target, _) = setup().await;
    let created = aws.create(&target, &desired("$default")).await.unwrap();
    let changes = Changes {
        response_parameters: Some(BTreeMap::new()),
        template_selection_expression: Some(String::new()),
        ..Default::default()
    };
    aws.update(&target, &created.id, &changes).await.expect("update");
    let read = aws.get(&target, &created.id).await.unwrap();
    assert!(read.fields.response_parameters.is_empty(), "{read:?}");
    assert_eq!(read.fields.template_selection_expression, None);
    assert_eq!(read.fields.response_templates.len(), 1);
}
