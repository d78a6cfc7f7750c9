//! Reconcile scenarios against a fake Kubernetes API (tower-test) and a fake API Gateway
//! (aws-smithy-mocks). Each test drives `reconcile` as the controller would: it hands in the
//! object as currently stored, and asserts on what Kubernetes and AWS hold afterwards.

mod support;

use std::sync::Arc;
use std::time::Duration;

use integration_response_operator::controller::{Context, error_policy, reconcile};
use integration_response_operator::crd::{IntegrationResponse, IntegrationResponseStatus};
use integration_response_operator::{Error, Result};
use kube::runtime::controller::Action;
use serde_json::json;
use support::fake_aws::{FakeAws, error_response, moto_html_500};
use support::fake_kube::FakeKube;

const API: &str = "api1";
const INTEGRATION: &str = "int1";

struct Harness {
    kube: FakeKube,
    aws: FakeAws,
    ctx: Arc<Context>,
}

impl Harness {
    fn new(aws: FakeAws) -> Self {
        Self::with_object(aws, support::integration_response("errors", API, INTEGRATION))
    }

    fn with_object(aws: FakeAws, object: IntegrationResponse) -> Self {
        let kube = FakeKube::start(&object);
        let ctx = support::context(&kube, &aws);
        Self { kube, aws, ctx }
    }

    fn ready_integration() -> FakeAws {
        FakeAws::new().with_integration(API, INTEGRATION)
    }

    fn object(&self) -> IntegrationResponse {
        self.kube.object().expect("object still exists")
    }

    fn status(&self) -> IntegrationResponseStatus {
        self.object().status.expect("status written")
    }

    fn condition(&self, type_: &str) -> (String, String, String) {
        let status = self.status();
        let c = status.condition(type_).unwrap_or_else(|| panic!("no {type_} condition"));
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    async fn reconcile(&self) -> Result<Action> {
        let object = self.kube.object().expect("object exists");
        let result = tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(object), self.ctx.clone()))
            .await
            .expect("reconcile finished within 5s");
        assert_eq!(self.kube.unexpected(), Vec::<String>::new(), "requests the fake API server does not serve");
        result
    }

    /// What the controller would do after a failed reconcile.
    async fn fail_and_requeue(&self) -> (Error, Duration) {
        let object = self.kube.object().expect("object exists");
        let err = self.reconcile().await.expect_err("reconcile should fail");
        let delay = requeue_after(&error_policy(Arc::new(object), &err, self.ctx.clone()));
        (err, delay)
    }

    /// Finalizer, then the create: the state a CR is in right after `kubectl apply`.
    async fn created(aws: FakeAws) -> Self {
        let h = Self::new(aws);
        h.reconcile().await.unwrap();
        h.reconcile().await.unwrap();
        assert!(h.status().integration_response_id.is_some());
        h.kube.clear_requests();
        h.aws.clear_calls();
        h
    }

    /// Moves tokio's clock past the snapshot and verification age (a quarter of the 10 min
    /// resync period), as the periodic resync comes that much later in production.
    async fn later(&self) {
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(151)).await;
        tokio::time::resume();
    }

    fn id(&self) -> String {
        self.status().integration_response_id.expect("id recorded")
    }
}

/// The next GetIntegrationResponses answers; the one after it is throttled.
fn throttle_the_second_listing(aws: &FakeAws) {
    aws.before_next("GetIntegrationResponses", |state| {
        state.before_next("GetIntegrationResponses", |state| {
            state.fail_this_call("GetIntegrationResponses", error_response(429, "TooManyRequestsException", "x"));
        });
    });
}

fn requeue_after(action: &Action) -> Duration {
    // Action keeps its delay private; its Debug form is `Action { requeue_after: Some(1.5s) }`.
    let text = format!("{action:?}");
    let inner = text.split("Some(").nth(1).and_then(|s| s.split(')').next()).expect("a requeue delay");
    if let Some(ms) = inner.strip_suffix("ms") {
        Duration::from_secs_f64(ms.parse::<f64>().unwrap() / 1000.0)
    } else {
        Duration::from_secs_f64(inner.strip_suffix('s').unwrap().parse().unwrap())
    }
}

#[tokio::test]
async fn the_finalizer_is_added_before_anything_reaches_aws() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    assert_eq!(h.kube.requests(), ["PATCH finalizers"]);
    assert_eq!(h.aws.calls(), Vec::<String>::new());
    assert_eq!(h.object().metadata.finalizers.unwrap(), ["apigatewayv2.aws.operator.rs/finalizer"]);
}

#[tokio::test]
async fn create_records_the_pending_key_first_then_the_id_and_goes_ready() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    h.kube.clear_requests();
    let action = h.reconcile().await.unwrap();

    // Looked up by key first (never blindly create), then created once.
    assert_eq!(h.aws.calls(), ["GetIntegrationResponses", "CreateIntegrationResponse"]);
    // Pending key, then the id right after the create; the Event comes after both.
    assert_eq!(h.kube.requests(), ["APPLY status", "APPLY status", "POST event"]);
    let stored = h.aws.only_response();
    assert_eq!(stored.key, "/4\\d\\d/");
    assert_eq!(stored.template_selection_expression.as_deref(), Some("$integration.response.statuscode"));
    assert_eq!(stored.response_templates["application/json"], "{\"error\": \"$context.error.message\"}");
    assert_eq!(stored.response_parameters["method.response.header.X-Failed"], "'true'");

    let status = h.status();
    assert_eq!(status.integration_response_id.as_deref(), Some(stored.id.as_str()));
    assert_eq!(status.claimed_key(), None);
    assert_eq!((status.region.as_deref(), status.api_id.as_deref()), (Some("us-east-1"), Some(API)));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.condition("Reconciling").0, "False");
    assert_eq!(h.condition("Stalled").0, "False");
    assert_eq!(h.kube.event_reasons(), ["Created"]);
    // No timer of its own: the resync clock looks again at the integration's next slot.
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn the_resync_clock_wakes_objects_in_sync_at_their_slot_and_leaves_a_failing_one_to_its_retry() {
    use integration_response_operator::controller::CachedObject;
    use integration_response_operator::controller::resync::{due, due_objects, phase};

    let h = Harness::created(Harness::ready_integration()).await;
    let cached = |h: &Harness| -> Vec<Arc<CachedObject>> {
        vec![Arc::new(serde_json::from_value(serde_json::to_value(h.object()).unwrap()).unwrap())]
    };
    let period = h.ctx.settings.resync_period;
    let slot = Duration::from_millis(phase(&h.object()) % period.as_millis() as u64);
    let window_with_slot = (period * 7 + slot - Duration::from_secs(1), period * 7 + slot);
    let names = |due: Vec<kube::runtime::reflector::ObjectRef<CachedObject>>| -> Vec<String> {
        due.into_iter().map(|o| format!("{}/{}", o.namespace.unwrap_or_default(), o.name)).collect()
    };
    assert_eq!(names(due_objects(&h.ctx, &cached(&h), window_with_slot.0, window_with_slot.1)), ["default/errors"]);
    let before_slot = (window_with_slot.0 - Duration::from_secs(5), window_with_slot.0);
    assert!(!due(period, phase(&h.object()), before_slot.0, before_slot.1));
    assert_eq!(names(due_objects(&h.ctx, &cached(&h), before_slot.0, before_slot.1)), Vec::<String>::new());

    // A failed reconcile has its retry scheduled by the error policy; the clock must not
    // bring it forward. Once it succeeds again, the clock takes it back.
    h.later().await;
    h.aws.fail_next("GetIntegrationResponses", error_response(429, "TooManyRequestsException", "slow down"));
    h.fail_and_requeue().await;
    assert_eq!(names(due_objects(&h.ctx, &cached(&h), window_with_slot.0, window_with_slot.1)), Vec::<String>::new());
    h.reconcile().await.unwrap();
    assert_eq!(names(due_objects(&h.ctx, &cached(&h), window_with_slot.0, window_with_slot.1)), ["default/errors"]);

    // An object that does not match the schema waits for a change.
    let mut invalid = serde_json::to_value(h.object()).unwrap();
    invalid["spec"]["apiId"] = json!(7);
    let invalid: Vec<Arc<CachedObject>> = vec![Arc::new(serde_json::from_value(invalid).unwrap())];
    assert_eq!(names(due_objects(&h.ctx, &invalid, Duration::ZERO, period)), Vec::<String>::new());
}

#[tokio::test]
async fn an_object_in_sync_costs_one_shared_read_and_no_writes() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.later().await;
    h.reconcile().await.unwrap();
    // The integration's snapshot: shared by every object on it that resyncs soon after.
    assert_eq!(h.aws.calls(), ["GetIntegrationResponses"]);
    assert_eq!(h.kube.requests(), Vec::<String>::new());
}

#[tokio::test]
async fn a_spec_change_updates_only_the_changed_fields() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.kube.edit_spec(|spec| spec["responseTemplates"] = json!({"application/json": "{\"v\": 2}"}));
    h.reconcile().await.unwrap();
    assert_eq!(h.aws.calls(), ["GetIntegrationResponse", "UpdateIntegrationResponse[responseTemplates]"]);
    assert_eq!(h.aws.only_response().response_templates["application/json"], "{\"v\": 2}");
    assert_eq!(h.status().observed_generation, Some(2));
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.kube.event_reasons(), ["Created", "Updated"]);

    h.kube.edit_spec(|spec| spec["integrationResponseKey"] = json!("$default"));
    h.reconcile().await.unwrap();
    assert_eq!(h.aws.only_response().key, "$default");
    assert!(h.aws.calls().contains(&"UpdateIntegrationResponse[key]".to_owned()));
}

#[tokio::test]
async fn a_field_changed_outside_kubernetes_is_put_back() {
    let h = Harness::created(Harness::ready_integration()).await;
    let id = h.id();
    h.aws.tamper(&id, |stored| {
        stored.response_parameters.insert("method.response.header.Injected".into(), "'x'".into());
    });
    h.later().await;
    h.reconcile().await.unwrap();
    // The snapshot's fingerprint differs, so the response is read directly, then put back.
    assert_eq!(
        h.aws.calls(),
        ["GetIntegrationResponses", "GetIntegrationResponse", "UpdateIntegrationResponse[responseParameters]"]
    );
    let stored = h.aws.only_response();
    assert_eq!(stored.response_parameters.len(), 1);
    assert_eq!(stored.id, id);
    assert_eq!(h.kube.event_reasons(), ["Created", "DriftCorrected"]);
    assert!(h.kube.event_notes()[1].contains("responseParameters"));
}

#[tokio::test]
async fn a_response_deleted_outside_kubernetes_is_created_again() {
    let h = Harness::created(Harness::ready_integration()).await;
    let old_id = h.id();
    h.aws.state.lock().unwrap().responses.clear();
    h.later().await;
    h.reconcile().await.unwrap();
    assert_eq!(
        h.aws.calls(),
        ["GetIntegrationResponses", "GetIntegrationResponse", "GetIntegrationResponses", "CreateIntegrationResponse"]
    );
    let stored = h.aws.only_response();
    assert_ne!(stored.id, old_id);
    assert_eq!(h.id(), stored.id);
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.kube.event_reasons(), ["Created", "Recreated"]);
}

#[tokio::test]
async fn removing_content_handling_replaces_the_response() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.kube.edit_spec(|spec| spec["contentHandlingStrategy"] = json!("CONVERT_TO_TEXT"));
    h.reconcile().await.unwrap();
    assert_eq!(h.aws.only_response().content_handling.as_deref(), Some("CONVERT_TO_TEXT"));
    let before = h.id();
    h.kube.edit_spec(|spec| {
        spec.as_object_mut().unwrap().remove("contentHandlingStrategy");
    });
    h.reconcile().await.unwrap();
    let stored = h.aws.only_response();
    assert_eq!(stored.content_handling, None);
    assert_ne!(stored.id, before);
    assert_eq!(h.id(), stored.id);
    assert_eq!(h.kube.event_reasons(), ["Created", "Updated", "Replacing", "Created"]);
}

#[tokio::test]
async fn deleting_the_object_deletes_in_aws_then_releases_the_finalizer() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert_eq!(h.aws.calls(), ["DeleteIntegrationResponse"]);
    assert!(h.aws.responses().is_empty());
    assert!(h.kube.object().is_none(), "the finalizer was removed and the object is gone");
    assert_eq!(h.kube.event_reasons(), ["Created", "Deleted"]);
}

#[tokio::test]
async fn delete_finishes_when_aws_says_not_found() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.aws.state.lock().unwrap().responses.clear();
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert!(h.kube.object().is_none());
}

#[tokio::test]
async fn delete_finishes_when_the_integration_itself_is_gone() {
    let h = Harness::created(Harness::ready_integration()).await;
    {
        let mut state = h.aws.state.lock().unwrap();
        state.responses.clear();
        state.integrations.clear();
    }
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert!(h.kube.object().is_none());
}

#[tokio::test]
async fn delete_reads_back_after_an_untyped_500_as_moto_sends() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.aws.state.lock().unwrap().responses.clear();
    h.aws.fail_next("DeleteIntegrationResponse", moto_html_500());
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert_eq!(h.aws.calls(), ["DeleteIntegrationResponse", "GetIntegrationResponse"]);
    assert!(h.kube.object().is_none());
}

#[tokio::test]
async fn a_500_on_delete_of_a_response_that_still_exists_keeps_the_finalizer() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.aws.fail_next("DeleteIntegrationResponse", error_response(503, "ServiceUnavailableException", "try later"));
    h.kube.request_deletion();
    let (err, delay) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "transient");
    assert!(delay < Duration::from_secs(1));
    assert!(h.kube.object().is_some(), "finalizer must stay until AWS confirms");
    assert_eq!(h.aws.responses().len(), 1);
    h.reconcile().await.unwrap();
    assert!(h.aws.responses().is_empty());
    assert!(h.kube.object().is_none());
}

#[tokio::test]
async fn retain_leaves_aws_alone() {
    let mut object = support::integration_response("errors", API, INTEGRATION);
    object.spec.deletion_policy = Some(integration_response_operator::crd::DeletionPolicy::Retain);
    let h = Harness::with_object(Harness::ready_integration(), object);
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    h.aws.clear_calls();
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert_eq!(h.aws.calls(), Vec::<String>::new());
    assert_eq!(h.aws.responses().len(), 1);
    assert!(h.kube.object().is_none());
}

#[tokio::test]
async fn a_foreign_response_with_the_same_key_stalls_without_a_create() {
    let aws = Harness::ready_integration();
    let foreign = aws.insert_foreign(API, INTEGRATION, "/4\\d\\d/");
    let h = Harness::new(aws);
    h.reconcile().await.unwrap();
    let (err, delay) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    assert_eq!(h.aws.calls(), ["GetIntegrationResponses"]);
    let (stalled, reason, message) = h.condition("Stalled");
    assert_eq!((stalled.as_str(), reason.as_str()), ("True", "AlreadyExists"));
    assert!(message.contains(&foreign) && message.contains("apigatewayv2.aws.operator.rs/adopt"), "{message}");
    assert!(delay >= Duration::from_secs(540), "stalled objects are not retried hot: {delay:?}");
    assert_eq!(h.status().integration_response_id, None);
    assert_eq!(h.kube.event_reasons(), ["AlreadyExists"]);

    // Opting in to adoption takes it over.
    h.kube.set_annotation("apigatewayv2.aws.operator.rs/adopt", "true");
    h.reconcile().await.unwrap();
    assert_eq!(h.id(), foreign);
    assert_eq!(h.aws.only_response().response_templates.len(), 1, "adopted, then brought in line");
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.kube.event_reasons(), ["AlreadyExists", "Adopted", "Updated"]);
}

#[tokio::test]
async fn a_conflict_on_create_with_the_key_taken_meanwhile_stalls_with_already_exists() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    // Another tool creates the key between the operator's lookup and its create; AWS refuses
    // the create with ConflictException.
    h.aws.before_next("CreateIntegrationResponse", |state| {
        state.insert(API, INTEGRATION, "/4\\d\\d/");
    });
    let (err, delay) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    assert_eq!(
        h.aws.calls(),
        ["GetIntegrationResponses", "CreateIntegrationResponse", "GetIntegrationResponses"],
        "the key is looked up again after the conflict"
    );
    let (stalled, reason, message) = h.condition("Stalled");
    assert_eq!((stalled.as_str(), reason.as_str()), ("True", "AlreadyExists"));
    let foreign = h.aws.only_response().id;
    assert!(message.contains(&foreign), "{message}");
    assert_eq!(h.status().claimed_key(), None, "a refused create leaves nothing to take over");
    assert!(delay >= Duration::from_secs(540));
}

#[tokio::test]
async fn a_conflict_from_a_concurrent_change_to_the_api_is_retried_not_stalled() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    h.aws.fail_next("CreateIntegrationResponse", support::fake_aws::concurrent_modification());
    let (err, delay) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "transient");
    assert!(delay < Duration::from_secs(1), "retried with the transient backoff: {delay:?}");
    let (ready, reason, message) = h.condition("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "ConcurrentModification"));
    assert!(!message.contains("already has"), "no false AlreadyExists message: {message}");
    assert_eq!(h.condition("Stalled").0, "False");
    assert_eq!(h.status().claimed_key(), None, "409 means nothing was created");
    assert!(h.aws.responses().is_empty());

    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.aws.responses().len(), 1);
}

#[tokio::test]
async fn a_conflict_on_update_or_delete_is_retried() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.kube.edit_spec(|spec| spec["responseTemplates"] = json!({"application/json": "{}"}));
    h.aws.fail_next("UpdateIntegrationResponse", support::fake_aws::concurrent_modification());
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "transient");
    assert_eq!(h.condition("Ready").1, "ConcurrentModification");
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").0, "True");

    h.kube.request_deletion();
    h.aws.fail_next("DeleteIntegrationResponse", support::fake_aws::concurrent_modification());
    let (err, delay) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "transient", "a deletion is not stalled for a resync period");
    assert!(delay < Duration::from_secs(1), "{delay:?}");
    assert!(h.kube.object().is_some());
    h.reconcile().await.unwrap();
    assert!(h.kube.object().is_none());
    assert!(h.aws.responses().is_empty());
}

#[tokio::test]
async fn one_process_sends_one_mutation_per_api_at_a_time() {
    use integration_response_operator::aws::AwsClients;
    use integration_response_operator::domain::{Desired, Target};
    use integration_response_operator::metrics::Metrics;
    use integration_response_operator::pacing::Pacer;

    let aws = Harness::ready_integration();
    aws.set(|state| {
        state.integrations.insert((API.into(), "int2".into()));
        state.mutation_latency = Duration::from_millis(200);
    });
    let clients =
        |aws: &FakeAws| AwsClients::fixed(aws.client(), Arc::new(Pacer::unlimited()), Arc::new(Metrics::default()));
    let desired = |key: &str| Desired {
        key: key.into(),
        content_handling: None,
        template_selection_expression: None,
        response_templates: Default::default(),
        response_parameters: Default::default(),
    };
    let target = |integration: &str| Target {
        region: "us-east-1".into(),
        api_id: API.into(),
        integration_id: integration.into(),
        identity: integration_response_operator::roles::Identity::Own,
    };

    // One process: its creates on one API take turns, so AWS never sees them overlap.
    let one = clients(&aws);
    let (a, b) = (one.for_region("us-east-1"), one.for_region("us-east-1"));
    let (t1, t2, d) = (target(INTEGRATION), target("int2"), desired("$default"));
    let (first, second) = tokio::join!(a.create(&t1, &d), b.create(&t2, &d));
    assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");

    // Two processes (no shared lock): AWS refuses the overlapping one, as API Gateway does.
    let (x, y) = (clients(&aws), clients(&aws));
    let (x, y) = (x.for_region("us-east-1"), y.for_region("us-east-1"));
    let d = desired("/5\\d\\d/");
    let (first, second) = tokio::join!(x.create(&t1, &d), y.create(&t2, &d));
    let refused: Vec<_> = [first, second].into_iter().filter_map(Result::err).collect();
    assert_eq!(refused.len(), 1, "exactly one of two overlapping creates is refused");
    assert_eq!(refused[0].kind, integration_response_operator::aws::ErrorKind::Conflict);
}

#[tokio::test]
async fn a_create_answered_with_proof_that_nothing_was_made_clears_the_claim() {
    for (status, error_type) in [
        (429, "TooManyRequestsException"),
        (400, "BadRequestException"),
        (403, "AccessDeniedException"),
        (404, "NotFoundException"),
    ] {
        let h = Harness::new(Harness::ready_integration());
        h.reconcile().await.unwrap();
        h.aws.fail_next("CreateIntegrationResponse", error_response(status, error_type, "no"));
        h.fail_and_requeue().await;
        assert_eq!(h.status().claimed_key(), None, "{status}: the claim is cleared");

        // Someone else then creates the key: it is foreign, never taken over as ours.
        let foreign = h.aws.insert_foreign(API, INTEGRATION, "/4\\d\\d/");
        let (err, _) = h.fail_and_requeue().await;
        assert_eq!(err.category(), "stalled", "{status}");
        assert_eq!(h.condition("Stalled").1, "AlreadyExists", "{status}");
        assert_eq!(h.status().integration_response_id, None, "{status}: {foreign} not taken over");
        assert!(!h.kube.event_reasons().contains(&"TakenOver".to_owned()), "{status}");
    }
}

#[tokio::test]
async fn a_create_with_an_unknown_outcome_keeps_the_claim() {
    for response in [error_response(500, "InternalServerErrorException", "oops"), moto_html_500()] {
        let h = Harness::new(Harness::ready_integration());
        h.reconcile().await.unwrap();
        h.aws.fail_next("CreateIntegrationResponse", response);
        h.fail_and_requeue().await;
        assert_eq!(h.status().claimed_key(), Some("/4\\d\\d/"), "AWS may have created it");
    }
}

#[tokio::test]
async fn a_restart_after_an_unrecorded_create_takes_over_instead_of_creating_twice() {
    let aws = Harness::ready_integration();
    // Other responses on the integration, so the lookup has to follow NextToken (pages of 2).
    for key in ["/1\\d\\d/", "/2\\d\\d/", "/3\\d\\d/"] {
        aws.insert_foreign(API, INTEGRATION, key);
    }
    let h = Harness::new(aws);
    h.reconcile().await.unwrap();
    // The pending marker is stored, the create succeeds, then the write of its id fails (as if
    // the process died there).
    {
        let mut state = h.kube.state.lock().unwrap();
        state.pass_status_writes = 1;
        state.fail_status_writes = 1;
    }
    let err = h.reconcile().await.expect_err("status write failed");
    assert_eq!(err.category(), "kube_error");
    assert_eq!(h.aws.responses().len(), 4);
    assert_eq!(h.status().claimed_key(), Some("/4\\d\\d/"));
    assert_eq!(h.status().integration_response_id, None);

    // A new process: nothing in memory, only what the API server stored.
    let restarted = Harness { kube: h.kube.clone(), aws: h.aws.clone(), ctx: support::context(&h.kube, &h.aws) };
    restarted.aws.clear_calls();
    restarted.reconcile().await.unwrap();
    assert!(!restarted.aws.calls().contains(&"CreateIntegrationResponse".to_owned()), "{:?}", restarted.aws.calls());
    assert_eq!(restarted.aws.calls().iter().filter(|c| *c == "GetIntegrationResponses").count(), 2, "two pages");
    let ours: Vec<_> = restarted.aws.responses().into_iter().filter(|r| r.key == "/4\\d\\d/").collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(restarted.id(), ours[0].id);
    assert_eq!(restarted.status().claimed_key(), None);
    assert_eq!(restarted.condition("Ready").0, "True");
    assert!(restarted.kube.event_reasons().contains(&"TakenOver".to_owned()));
}

#[tokio::test]
async fn throttling_backs_off_with_growing_jittered_delays_and_one_event() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    let mut delays = Vec::new();
    for _ in 0..6 {
        h.aws
            .fail_next("GetIntegrationResponses", error_response(429, "TooManyRequestsException", "Too Many Requests"));
        let (err, delay) = h.fail_and_requeue().await;
        assert_eq!(err.category(), "transient");
        delays.push(delay);
    }
    for (attempt, delay) in delays.iter().enumerate() {
        let full = Duration::from_secs(1) * 2u32.pow(attempt as u32);
        assert!(*delay >= full / 2 && *delay < full, "attempt {attempt}: {delay:?} not in [{:?}, {full:?})", full / 2);
    }
    let fractions: Vec<f64> = delays.iter().enumerate().map(|(a, d)| d.as_secs_f64() / 2f64.powi(a as i32)).collect();
    assert!(fractions.windows(2).any(|w| (w[0] - w[1]).abs() > 1e-6), "no jitter: {delays:?}");
    let (ready, reason, _) = h.condition("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "Throttled"));
    assert_eq!(h.condition("Reconciling").0, "True");
    assert_eq!(h.condition("Stalled").0, "False");
    assert_eq!(h.kube.event_reasons(), ["Throttled"], "one event for the kind of failure, not one per retry");
    assert_eq!(h.kube.requests().iter().filter(|r| *r == "APPLY status").count(), 1, "status written once");

    // Success resets the backoff.
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").0, "True");
    h.aws.fail_next("GetIntegrationResponses", error_response(429, "TooManyRequestsException", "slow down"));
    h.later().await;
    let (_, delay) = h.fail_and_requeue().await;
    assert!(delay < Duration::from_secs(1), "{delay:?}");
}

#[tokio::test]
async fn a_transient_failure_of_a_ready_object_does_not_flap_ready() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.aws.fail_next("GetIntegrationResponses", error_response(500, "InternalServerError", "oops"));
    h.later().await;
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "transient");
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.kube.requests(), Vec::<String>::new());
}

#[tokio::test]
async fn bad_request_stalls_with_the_aws_message_and_no_immediate_requeue() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    h.aws.fail_next(
        "CreateIntegrationResponse",
        error_response(400, "BadRequestException", "Invalid mapping expression specified: 'nope'"),
    );
    let (err, delay) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    let (stalled, reason, message) = h.condition("Stalled");
    assert_eq!((stalled.as_str(), reason.as_str()), ("True", "BadRequest"));
    assert!(message.contains("Invalid mapping expression specified: 'nope'"), "{message}");
    assert_eq!(h.condition("Ready").0, "False");
    assert!(delay >= Duration::from_secs(540), "{delay:?}");
    assert!(h.aws.responses().is_empty());

    // Fixing the spec (a new generation) retries and succeeds.
    h.kube.edit_spec(|spec| spec["responseParameters"] = json!({}));
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.condition("Stalled").0, "False");
    assert_eq!(h.aws.responses().len(), 1);
}

#[tokio::test]
async fn access_denied_stalls() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    h.aws.fail_next(
        "GetIntegrationResponses",
        error_response(403, "AccessDeniedException", "User is not authorized to perform: apigateway:GET"),
    );
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    let (_, reason, message) = h.condition("Stalled");
    assert_eq!(reason, "AccessDenied");
    assert!(message.contains("apigateway:GET"));
}

#[tokio::test]
async fn a_missing_integration_waits_slowly_then_creates_once_it_appears() {
    let h = Harness::new(FakeAws::new());
    h.reconcile().await.unwrap();
    let (err, delay) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "dependency_not_found");
    assert!(delay >= Duration::from_secs(15) && delay < Duration::from_secs(30), "{delay:?}");
    let (ready, reason, _) = h.condition("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "DependencyNotFound"));
    assert_eq!(h.condition("Stalled").0, "False");
    assert_eq!(h.status().claimed_key(), None);
    let (_, second) = h.fail_and_requeue().await;
    assert!(second >= Duration::from_secs(30), "slower the second time: {second:?}");

    h.aws.state.lock().unwrap().integrations.insert((API.into(), INTEGRATION.into()));
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.aws.responses().len(), 1);
}

#[tokio::test]
async fn an_object_whose_integration_never_existed_is_still_deletable() {
    let h = Harness::new(FakeAws::new());
    h.reconcile().await.unwrap();
    h.fail_and_requeue().await;
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert!(h.kube.object().is_none());
}

#[tokio::test]
async fn no_region_anywhere_stalls_before_calling_aws() {
    let h = Harness::new(Harness::ready_integration());
    let ctx = {
        let mut settings = h.ctx.settings.clone();
        settings.default_region = None;
        settings
    };
    let h = Harness {
        ctx: Arc::new(Context::new(
            h.kube.client(),
            integration_response_operator::aws::AwsClients::fixed(
                h.aws.client(),
                Arc::new(integration_response_operator::pacing::Pacer::unlimited()),
                h.ctx.metrics.clone(),
            ),
            integration_response_operator::controller::EventRecorder::new(h.kube.client(), "t", "t"),
            ctx,
            h.ctx.metrics.clone(),
        )),
        ..h
    };
    h.reconcile().await.unwrap();
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    assert_eq!(h.condition("Stalled").1, "RegionMissing");
    assert_eq!(h.aws.calls(), Vec::<String>::new());
}

#[tokio::test]
async fn a_stale_copy_with_a_pending_create_is_read_fresh_instead_of_taken_over() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    // The copy the watch delivers right after our own pending-key write: no id yet.
    h.kube.state.lock().unwrap().pass_status_writes = usize::MAX;
    let mut stale = h.object();
    stale.status = Some(IntegrationResponseStatus {
        pending_create_key: Some("/4\\d\\d/".into()),
        region: Some("us-east-1".into()),
        api_id: Some(API.into()),
        integration_id: Some(INTEGRATION.into()),
        ..Default::default()
    });
    h.reconcile().await.unwrap();
    h.aws.clear_calls();
    h.kube.clear_requests();
    h.later().await;
    reconcile(Arc::new(stale), h.ctx.clone()).await.unwrap();
    assert_eq!(h.kube.requests(), ["GET object"], "read fresh, then nothing to write");
    assert_eq!(h.aws.calls(), ["GetIntegrationResponses"], "the recorded id is checked; no take-over by key");
    assert_eq!(h.kube.event_reasons(), ["Created"], "no take-over");
}

#[tokio::test(start_paused = true)]
async fn snapshots_are_shared_per_integration_until_they_expire_or_a_write_drops_them() {
    use integration_response_operator::aws::AwsClients;
    use integration_response_operator::domain::Target;
    use integration_response_operator::metrics::Metrics;
    use integration_response_operator::pacing::Pacer;
    use integration_response_operator::snapshots::Snapshots;

    let aws = Harness::ready_integration();
    let first = aws.insert_foreign(API, INTEGRATION, "/1/");
    let second = aws.insert_foreign(API, INTEGRATION, "/2/");
    let clients = AwsClients::fixed(aws.client(), Arc::new(Pacer::unlimited()), Arc::new(Metrics::default()));
    let calls = clients.for_region("us-east-1");
    let target = Target {
        region: "us-east-1".into(),
        api_id: API.into(),
        integration_id: INTEGRATION.into(),
        identity: integration_response_operator::roles::Identity::Own,
    };
    let snapshots = Snapshots::new(Duration::from_secs(60));

    let a = snapshots.fingerprint(&calls, &target, &first).await.unwrap();
    let b = snapshots.fingerprint(&calls, &target, &second).await.unwrap();
    assert!(a.is_some() && b.is_some() && a != b);
    assert_eq!(snapshots.fingerprint(&calls, &target, "unknown").await.unwrap(), None);
    let lists = |aws: &FakeAws| aws.calls().iter().filter(|c| *c == "GetIntegrationResponses").count();
    assert_eq!(lists(&aws), 1, "one snapshot served all three reads");

    tokio::time::advance(Duration::from_secs(61)).await;
    snapshots.fingerprint(&calls, &target, &first).await.unwrap();
    assert_eq!(lists(&aws), 2, "an expired snapshot is taken again");

    snapshots.invalidate(&target);
    snapshots.fingerprint(&calls, &target, &first).await.unwrap();
    assert_eq!(lists(&aws), 3, "a write drops the snapshot");
}

#[tokio::test]
async fn a_reconcile_right_after_a_verified_write_costs_no_aws_call() {
    // As after our own status write: the object was just created and checked by this process.
    let h = Harness::created(Harness::ready_integration()).await;
    h.reconcile().await.unwrap();
    assert_eq!(h.aws.calls(), Vec::<String>::new());
    assert_eq!(h.kube.requests(), Vec::<String>::new());
    // A spec change is never served from memory.
    h.kube.edit_spec(|spec| spec["responseParameters"] = json!({}));
    h.reconcile().await.unwrap();
    assert_eq!(h.aws.calls(), ["GetIntegrationResponse", "UpdateIntegrationResponse[responseParameters]"]);
}

#[tokio::test]
async fn a_spec_edit_whose_first_update_failed_is_reported_as_updated_not_as_drift() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.kube.edit_spec(|spec| spec["responseTemplates"] = json!({"application/json": "{\"v\": 3}"}));
    h.aws.fail_next("UpdateIntegrationResponse", error_response(429, "TooManyRequestsException", "slow down"));
    h.fail_and_requeue().await;
    assert_eq!(h.status().observed_generation, Some(2), "the failure is recorded at the new generation");
    h.reconcile().await.unwrap();
    assert_eq!(h.kube.event_reasons(), ["Created", "Throttled", "Updated"]);
    assert!(!h.kube.event_reasons().contains(&"DriftCorrected".to_owned()));
}

#[tokio::test]
async fn a_delete_that_finds_nothing_does_not_claim_to_have_deleted() {
    let h = Harness::created(Harness::ready_integration()).await;
    let id = h.id();
    h.aws.state.lock().unwrap().responses.clear();
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert!(h.kube.object().is_none());
    assert_eq!(h.kube.event_reasons(), ["Created", "AlreadyGone"]);
    assert!(h.kube.event_notes()[1].contains(&id) && h.kube.event_notes()[1].contains("already gone"));
}

#[tokio::test]
async fn an_update_that_aws_applied_as_asked_keeps_the_response() {
    let h = Harness::created(Harness::ready_integration()).await;
    let id = h.id();
    h.kube.edit_spec(|spec| spec["responseParameters"] = json!({"method.response.header.Other": "'y'"}));
    h.reconcile().await.unwrap();
    let stored = h.aws.only_response();
    assert_eq!(stored.id, id, "updated in place");
    assert_eq!(stored.response_parameters.keys().collect::<Vec<_>>(), ["method.response.header.Other"]);
    assert_eq!(h.kube.event_reasons(), ["Created", "Updated"]);
}

#[tokio::test]
async fn an_update_whose_answer_still_differs_is_not_ready_until_aws_matches() {
    // An API Gateway that merges maps on update: a removed parameter stays.
    let aws = Harness::ready_integration();
    aws.set(|state| state.merge_maps_on_update = true);
    let h = Harness::created(aws).await;
    let id = h.id();
    h.kube.edit_spec(|spec| spec["responseParameters"] = json!({"method.response.header.Other": "'y'"}));
    h.reconcile().await.unwrap();
    let stored = h.aws.only_response();
    assert_eq!(
        stored.response_parameters.keys().collect::<Vec<_>>(),
        ["method.response.header.Other"],
        "the parameter removed from the spec is gone from AWS"
    );
    assert_ne!(stored.id, id, "made anew, since an update could not remove it");
    assert_eq!(h.id(), stored.id);
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.kube.event_reasons(), ["Created", "Updated", "Replacing", "Created"]);
    assert!(h.kube.event_notes()[2].contains("responseParameters"), "{:?}", h.kube.event_notes());
}

#[tokio::test]
async fn objects_in_progress_stay_counted_until_they_leave_the_watch() {
    let h = Harness::created(Harness::ready_integration()).await;
    assert_eq!(h.ctx.tracked(), (1, 1, 0));
    h.aws.fail_next("DeleteIntegrationResponse", error_response(503, "ServiceUnavailableException", "later"));
    h.kube.request_deletion();
    h.fail_and_requeue().await;
    let (gauged, _, attempts) = h.ctx.tracked();
    assert_eq!((gauged, attempts), (1, 1), "a terminating object whose delete failed is still counted");

    // The watch reports it gone (deleted, finalizer removed by hand, or out of the selector).
    h.ctx.forget(Some("default"), "errors");
    assert_eq!(h.ctx.tracked(), (0, 0, 0));
}

#[tokio::test]
async fn a_relist_forgets_objects_that_went_while_the_watch_was_down() {
    let h = Harness::created(Harness::ready_integration()).await;
    assert_eq!(h.ctx.tracked().0, 1);
    h.ctx.forget_unlisted(Some("other"), &Default::default());
    assert_eq!(h.ctx.tracked().0, 1, "another namespace's list says nothing about this one");
    h.ctx.forget_unlisted(None, &["default/errors".to_owned()].into());
    assert_eq!(h.ctx.tracked().0, 1, "still listed");
    h.ctx.forget_unlisted(Some("default"), &Default::default());
    assert_eq!(h.ctx.tracked(), (0, 0, 0));
}

#[tokio::test]
async fn a_repeated_event_updates_its_series_instead_of_adding_another() {
    let h = Harness::created(Harness::ready_integration()).await;
    for round in 2..=3 {
        h.kube.edit_spec(|spec| spec["responseTemplates"] = json!({"application/json": format!("{round}")}));
        h.aws.fail_next("UpdateIntegrationResponse", error_response(429, "TooManyRequestsException", "slow down"));
        h.fail_and_requeue().await;
        h.reconcile().await.unwrap();
    }
    // Throttled twice and Updated twice, each time with the same note: one Event each, with a
    // series of two.
    assert_eq!(h.kube.event_reasons(), ["Created", "Throttled", "Updated"]);
    for reason in ["Throttled", "Updated"] {
        let event = h.kube.events().into_iter().find(|e| e["reason"] == reason).unwrap();
        assert_eq!(event["series"]["count"], 2, "{event}");
        assert!(event["series"]["lastObservedTime"].is_string(), "{event}");
    }
    assert!(h.kube.events()[0].get("series").is_none_or(serde_json::Value::is_null), "a single Event has no series");
    assert!(h.kube.requests().contains(&"PATCH event".to_owned()));
    for event in h.kube.events() {
        let name = event["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("errors.") && !name.ends_with('.'), "a name kube-apiserver accepts: {name}");
        assert!(event["metadata"].get("generateName").is_none());
        assert_eq!(event["regarding"]["namespace"], event["metadata"]["namespace"]);
    }
}

#[tokio::test]
async fn a_writer_with_a_stale_copy_is_refused_and_never_erases_the_id() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    let stale = h.object(); // finalizer, no status: what a lagging second instance still holds
    h.reconcile().await.unwrap();
    let id = h.id();

    let b = instance(&h, "b", Duration::from_secs(30));
    let result = tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(stale), b.ctx.clone())).await.unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(h.id(), id, "the id written by the first instance stays");
    assert_eq!(h.aws.responses().len(), 1, "no second response");
    assert!(h.kube.requests().iter().any(|r| r == "GET object"), "re-read after the refused write");
}

#[tokio::test]
async fn a_fresh_claim_of_another_instance_makes_the_second_wait_instead_of_creating() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    let stale = h.object();
    // The first instance's create is in flight: AWS made it, the reply is lost (500).
    h.aws.before_next("CreateIntegrationResponse", |state| {
        state.insert(API, INTEGRATION, "/4\\d\\d/");
    });
    h.aws.fail_next("CreateIntegrationResponse", error_response(500, "InternalServerErrorException", "lost"));
    h.fail_and_requeue().await;
    let claim = h.status().pending_create.expect("claim kept");
    assert_eq!((claim.key.as_str(), claim.holder.as_str()), ("/4\\d\\d/", "test"));

    let b = instance(&h, "b", Duration::from_secs(30));
    h.aws.clear_calls();
    let err = tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(stale), b.ctx.clone()))
        .await
        .unwrap()
        .expect_err("waits");
    assert_eq!(err.failure().map(|f| f.reason()), Some("CreateInProgress"));
    assert!(!h.aws.calls().iter().any(|c| c.starts_with("Create")), "{:?}", h.aws.calls());
    assert_eq!(h.status().pending_create.unwrap().holder, "test", "the claim is not taken");

    // The first instance finishes by taking its own response over.
    h.reconcile().await.unwrap();
    assert_eq!(h.aws.responses().len(), 1);
    assert_eq!(h.id(), h.aws.only_response().id);
}

#[tokio::test]
async fn an_old_claim_of_another_instance_is_taken_over_by_key() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    h.aws.before_next("CreateIntegrationResponse", |state| {
        state.insert(API, INTEGRATION, "/4\\d\\d/");
    });
    h.aws.fail_next("CreateIntegrationResponse", error_response(500, "InternalServerErrorException", "lost"));
    h.fail_and_requeue().await;

    // The claim's holder crashed: an instance whose claim timeout has passed takes over.
    let b = instance(&h, "b", Duration::ZERO);
    b.reconcile().await.unwrap();
    assert_eq!(h.aws.responses().len(), 1, "taken over, not created twice");
    assert_eq!(h.id(), h.aws.only_response().id);
    assert!(h.kube.event_reasons().contains(&"TakenOver".to_owned()));
}

#[tokio::test]
async fn adopting_a_response_another_object_records_stalls_with_already_managed() {
    let aws = Harness::ready_integration();
    let owned = aws.insert_foreign(API, INTEGRATION, "/4\\d\\d/");
    let mut object = support::integration_response("errors", API, INTEGRATION);
    object.metadata.annotations = Some([("apigatewayv2.aws.operator.rs/adopt".to_owned(), "true".to_owned())].into());
    let h = Harness::with_object(aws, object);
    // Object one/a records it (the operator's cache of objects holds it).
    let mut other = support::integration_response("a", API, INTEGRATION);
    other.metadata.namespace = Some("one".into());
    other.status = Some(IntegrationResponseStatus {
        integration_response_id: Some(owned.clone()),
        api_id: Some(API.into()),
        integration_id: Some(INTEGRATION.into()),
        ..Default::default()
    });
    h.ctx.owners.observe(&other);
    h.reconcile().await.unwrap();
    let (err, delay) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    let (stalled, reason, message) = h.condition("Stalled");
    assert_eq!((stalled.as_str(), reason.as_str()), ("True", "AlreadyManaged"));
    assert!(message.contains("one/a") && message.contains(&owned), "{message}");
    assert!(delay >= Duration::from_secs(540));
    assert_eq!(h.status().integration_response_id, None);
    assert!(!h.aws.calls().iter().any(|c| c.starts_with("Update")), "the other object's response is left alone");
}

#[tokio::test]
async fn objects_failing_on_an_unreachable_aws_wait_to_be_woken_and_leave_on_success() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    h.aws.fail_next("GetIntegrationResponses", error_response(429, "TooManyRequestsException", "slow down"));
    h.fail_and_requeue().await;
    assert_eq!(h.ctx.waiting_on_aws(), 1, "throttled: woken when AWS answers again");
    h.reconcile().await.unwrap();
    assert_eq!(h.ctx.waiting_on_aws(), 0);

    // A failure about the request itself is no reason to wake early.
    h.kube.edit_spec(|spec| spec["responseTemplates"] = json!({"a": "b"}));
    h.aws.fail_next("UpdateIntegrationResponse", error_response(400, "BadRequestException", "no"));
    h.fail_and_requeue().await;
    assert_eq!(h.ctx.waiting_on_aws(), 0);
}

#[tokio::test]
async fn of_two_objects_recording_one_response_the_later_by_name_gives_it_up() {
    let h = Harness::created(Harness::ready_integration()).await;
    let id = h.id();
    // "default/a" sorts before "default/errors" and records the same response (two instances'
    // caches lagged each other).
    let mut other = support::integration_response("a", API, INTEGRATION);
    other.status = Some(IntegrationResponseStatus {
        integration_response_id: Some(id.clone()),
        api_id: Some(API.into()),
        integration_id: Some(INTEGRATION.into()),
        ..Default::default()
    });
    h.ctx.owners.observe(&other);
    // The index alone is not enough: while the API server says otherwise, nothing is given up.
    h.later().await;
    h.reconcile().await.unwrap();
    assert_eq!(h.id(), id, "default/a is not in the API server: kept");
    h.kube.state.lock().unwrap().others.insert("a".into(), serde_json::to_value(&other).unwrap());
    h.later().await;
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    assert_eq!(h.condition("Stalled").1, "AlreadyManaged");
    assert_eq!(h.status().integration_response_id, None, "given up");
    assert_eq!(h.aws.responses().len(), 1, "left in AWS for its owner");

    // Deleting it now leaves the response to default/a.
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert!(h.kube.object().is_none());
    assert_eq!(h.aws.only_response().id, id);
}

#[tokio::test]
async fn a_conflict_on_a_retried_create_under_our_own_claim_takes_the_response_over() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    // The first attempt's outcome is unknown (500): the claim stays.
    h.aws.fail_next("CreateIntegrationResponse", error_response(500, "InternalServerErrorException", "timeout"));
    h.fail_and_requeue().await;
    assert!(h.status().claimed_key().is_some());
    // The retry's listing misses the response that attempt made (pages shift under concurrent
    // changes), so it creates again and AWS answers ConflictException.
    h.aws.before_next("CreateIntegrationResponse", |state| {
        let id = state.insert(API, INTEGRATION, "/4\\d\\d/");
        let stored = state.responses.get_mut(&id).unwrap();
        stored.template_selection_expression = Some("$integration.response.statuscode".into());
        stored.response_templates =
            [("application/json".into(), "{\"error\": \"$context.error.message\"}".into())].into();
        stored.response_parameters = [("method.response.header.X-Failed".into(), "'true'".into())].into();
    });
    h.reconcile().await.unwrap();
    let only = h.aws.only_response();
    assert_eq!(h.id(), only.id, "ours, taken over rather than called foreign");
    assert_eq!(h.condition("Ready").0, "True");
    assert!(h.kube.event_reasons().contains(&"TakenOver".to_owned()));
}

#[tokio::test]
async fn a_cleanup_from_a_copy_of_an_earlier_incarnation_leaves_the_new_objects_finalizer() {
    let h = Harness::created(Harness::ready_integration()).await;
    // A copy of the object as it was being deleted, still held by a lagging instance ...
    let mut stale = h.object();
    stale.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-11-29T00:00:00Z".parse().unwrap()));
    // ... while the object was deleted and created again under the same name.
    {
        let mut state = h.kube.state.lock().unwrap();
        let object = state.object.as_mut().unwrap();
        object["metadata"]["uid"] = json!("uid-errors-2");
        object.as_object_mut().unwrap().remove("status");
    }
    let result = tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(stale), h.ctx.clone())).await.unwrap();
    assert!(result.is_err(), "the finalizer patch is refused: another incarnation");
    let finalizers = h.object().metadata.finalizers.unwrap_or_default();
    assert_eq!(finalizers, ["apigatewayv2.aws.operator.rs/finalizer"], "the new object keeps its finalizer");
}

#[tokio::test]
async fn a_pass_from_an_old_copy_makes_nothing_for_a_new_object_without_the_finalizer() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap(); // finalizer
    let stale = h.object();
    // Deleted and created again under the same name: no finalizer, no status yet.
    {
        let mut state = h.kube.state.lock().unwrap();
        let object = state.object.as_mut().unwrap();
        object["metadata"]["uid"] = json!("uid-errors-2");
        object["metadata"]["resourceVersion"] = json!("99");
        object["metadata"].as_object_mut().unwrap().remove("finalizers");
    }
    let result = tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(stale), h.ctx.clone())).await.unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(!h.aws.calls().iter().any(|c| c.starts_with("Create")), "{:?}", h.aws.calls());
    assert!(h.aws.responses().is_empty());
}

/// Another operator instance named `identity`, for which claims expire after `claim_timeout`.
fn instance(h: &Harness, identity: &str, claim_timeout: Duration) -> Harness {
    let ctx = support::context_with(&h.kube, &h.aws, identity, claim_timeout);
    Harness { kube: h.kube.clone(), aws: h.aws.clone(), ctx }
}

#[tokio::test]
async fn a_cleanup_that_rereads_a_new_object_under_the_same_name_deletes_nothing() {
    // An old object that never got a response is being deleted; a lagging instance holds it.
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    let mut stale = h.object();
    stale.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-11-29T00:00:00Z".parse().unwrap()));
    // Meanwhile it went, and a new object under the same name made its response.
    h.kube.state.lock().unwrap().object.as_mut().unwrap()["metadata"]["uid"] = json!("uid-errors-2");
    h.reconcile().await.unwrap();
    let id = h.id();
    h.aws.clear_calls();
    let result = tokio::time::timeout(Duration::from_secs(5), reconcile(Arc::new(stale), h.ctx.clone())).await.unwrap();
    assert!(result.is_err(), "the old object's finalizer patch is refused: {result:?}");
    assert!(!h.aws.calls().iter().any(|c| c.starts_with("Delete")), "{:?}", h.aws.calls());
    assert_eq!(h.aws.only_response().id, id, "the new object's response stays");
}

#[tokio::test]
async fn a_create_after_an_expired_claim_takes_over_what_the_slow_holder_made() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    // Instance a claims and sends its create, which is slow: its outcome is not known yet.
    h.aws.fail_next("CreateIntegrationResponse", error_response(500, "InternalServerErrorException", "slow"));
    h.fail_and_requeue().await;
    // Instance b takes the claim as expired; a's create lands between b's lookup and b's create.
    let b = instance(&h, "b", Duration::ZERO);
    h.aws.before_next("CreateIntegrationResponse", |state| {
        state.insert(API, INTEGRATION, "/4\\d\\d/");
    });
    b.reconcile().await.unwrap();
    let only = h.aws.only_response();
    assert_eq!(h.id(), only.id, "taken over: this object's own response, not a foreign one");
    assert_eq!(h.condition("Ready").0, "True");
}

#[tokio::test]
async fn ready_is_not_kept_once_aws_was_seen_to_differ() {
    let h = Harness::created(Harness::ready_integration()).await;
    let id = h.id();
    h.aws.tamper(&id, |stored| {
        stored.response_templates.insert("application/json".into(), "tampered".into());
    });
    h.later().await;
    h.aws.fail_next("UpdateIntegrationResponse", error_response(429, "TooManyRequestsException", "slow down"));
    h.fail_and_requeue().await;
    let (ready, reason, _) = h.condition("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "Throttled"), "drift seen, not yet put back");

    // A response deleted outside Kubernetes whose lookup is throttled is not Ready either.
    h.reconcile().await.unwrap();
    h.aws.state.lock().unwrap().responses.clear();
    h.later().await;
    h.aws.clear_calls();
    // The shared read answers (the id is missing), the direct read says 404, then the lookup
    // by key is throttled.
    throttle_the_second_listing(&h.aws);
    h.fail_and_requeue().await;
    assert_eq!(
        h.aws.calls(),
        ["GetIntegrationResponses", "GetIntegrationResponse", "GetIntegrationResponses"],
        "shared read, direct read, lookup"
    );
    assert_eq!(h.condition("Ready").0, "False");
}

#[tokio::test]
async fn a_response_deleted_during_its_update_is_created_again_promptly() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.kube.edit_spec(|spec| spec["responseTemplates"] = json!({"application/json": "{}"}));
    h.aws.before_next("UpdateIntegrationResponse", |state| state.responses.clear());
    let (err, delay) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "transient");
    assert!(delay < Duration::from_secs(1), "not the slow DependencyNotFound schedule: {delay:?}");
    assert_eq!(h.condition("Ready").1, "ResponseMissing");
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.aws.only_response().response_templates["application/json"], "{}");
}

#[tokio::test]
async fn an_interrupted_replace_is_not_reported_as_a_deletion_outside_kubernetes() {
    let h = Harness::created(Harness::ready_integration()).await;
    h.kube.edit_spec(|spec| spec["contentHandlingStrategy"] = json!("CONVERT_TO_TEXT"));
    h.reconcile().await.unwrap();
    h.kube.edit_spec(|spec| {
        spec.as_object_mut().unwrap().remove("contentHandlingStrategy");
    });
    // Deleted, then the create's outcome is unknown.
    h.aws.fail_next("CreateIntegrationResponse", error_response(503, "ServiceUnavailableException", "x"));
    h.fail_and_requeue().await;
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.aws.only_response().content_handling, None);
    assert!(!h.kube.event_reasons().contains(&"Recreated".to_owned()), "{:?}", h.kube.event_reasons());
}

#[tokio::test]
async fn with_duplicate_keys_allowed_a_claim_that_finds_two_responses_takes_neither() {
    let aws = Harness::ready_integration();
    aws.set(|state| state.lenient_keys = true);
    let h = Harness::new(aws);
    h.reconcile().await.unwrap();
    // Another tool made the key between our lookup and our create; ours took effect too, but
    // its answer was lost.
    h.aws.before_next("CreateIntegrationResponse", |state| {
        state.insert(API, INTEGRATION, "/4\\d\\d/");
        state.insert(API, INTEGRATION, "/4\\d\\d/");
    });
    h.aws.fail_next("CreateIntegrationResponse", error_response(500, "InternalServerErrorException", "lost"));
    h.fail_and_requeue().await;
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    let (_, reason, message) = h.condition("Stalled");
    assert_eq!(reason, "AlreadyExists");
    for stored in h.aws.responses() {
        assert!(message.contains(&stored.id), "{message}");
    }
    assert_eq!(h.status().integration_response_id, None, "neither taken");
    assert!(h.status().claimed_key().is_some(), "the claim stays until one is left");
}

#[tokio::test]
async fn events_of_a_new_object_under_an_old_name_are_its_own() {
    let h = Harness::created(Harness::ready_integration()).await;
    for uid in ["uid-errors", "uid-errors-2"] {
        h.kube.state.lock().unwrap().object.as_mut().unwrap()["metadata"]["uid"] = json!(uid);
        h.kube.edit_spec(|spec| spec["responseTemplates"] = json!({"application/json": uid}));
        h.aws.fail_next("UpdateIntegrationResponse", error_response(429, "TooManyRequestsException", "x"));
        h.fail_and_requeue().await;
        h.reconcile().await.unwrap();
    }
    let throttled: Vec<_> = h.kube.events().into_iter().filter(|e| e["reason"] == "Throttled").collect();
    let uids: Vec<_> = throttled.iter().map(|e| e["regarding"]["uid"].clone()).collect();
    assert_eq!(uids, [json!("uid-errors"), json!("uid-errors-2")], "one Event each, not a series across both");
}

// managementPolicy Observe: reads only, differences in status, never a write or delete in AWS.

/// An object with managementPolicy Observe, and AWS holding a response under its key made by
/// another tool: with the spec's fields exactly (`matching`) or with other ones.
fn observing(matching: bool) -> (Harness, String) {
    let aws = Harness::ready_integration();
    let id = aws.insert_foreign(API, INTEGRATION, "/4\\d\\d/");
    aws.tamper(&id, |stored| {
        stored.template_selection_expression = Some("$integration.response.statuscode".into());
        stored.response_templates.insert(
            "application/json".into(),
            if matching { "{\"error\": \"$context.error.message\"}" } else { "{\"legacy\": true}" }.into(),
        );
        stored.response_parameters.insert("method.response.header.X-Failed".into(), "'true'".into());
        if !matching {
            stored.response_parameters.insert("method.response.header.X-Old".into(), "'1'".into());
        }
    });
    let mut object = support::integration_response("errors", API, INTEGRATION);
    object.spec.management_policy = Some(integration_response_operator::crd::ManagementPolicy::Observe);
    (Harness::with_object(aws, object), id)
}

fn aws_writes(h: &Harness) -> Vec<String> {
    h.aws.calls().into_iter().filter(|c| !c.starts_with("Get")).collect()
}

#[tokio::test]
async fn observing_a_matching_response_records_it_as_in_sync_without_writing_to_aws() {
    let (h, id) = observing(true);
    h.reconcile().await.unwrap();
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::await_change(), "next look at the resync clock's slot");
    assert_eq!(h.aws.calls(), ["GetIntegrationResponses"]);
    let status = h.status();
    assert_eq!(status.integration_response_id.as_deref(), Some(id.as_str()));
    assert!(status.observed_only, "found, not created or adopted");
    assert!(status.differences.is_empty());
    let (ready, reason, message) = h.condition("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "InSync"));
    assert!(message.contains(&id) && message.contains("Observe"), "{message}");
    assert_eq!(h.kube.event_reasons(), Vec::<String>::new(), "nothing happened worth an Event");

    // A resync costs the integration's shared read and no Kubernetes write.
    h.kube.clear_requests();
    h.aws.clear_calls();
    h.later().await;
    h.reconcile().await.unwrap();
    assert_eq!(h.aws.calls(), ["GetIntegrationResponses"]);
    assert_eq!(h.kube.requests(), Vec::<String>::new());
}

#[tokio::test]
async fn observing_a_differing_response_lists_the_differences_and_changes_nothing() {
    let (h, id) = observing(false);
    h.reconcile().await.unwrap();
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::await_change(), "not an error retried hot: the resync clock looks again");
    assert_eq!(aws_writes(&h), Vec::<String>::new());
    let stored = h.aws.only_response();
    assert_eq!(stored.response_templates["application/json"], "{\"legacy\": true}", "AWS untouched");

    let (ready, reason, message) = h.condition("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "Differs"));
    assert!(message.contains("responseTemplates, responseParameters") && message.contains(&id), "{message}");
    assert_eq!(h.condition("Stalled").0, "False");
    assert_eq!(h.condition("Reconciling").0, "False");
    let differences = h.status().differences;
    let fields: Vec<&str> = differences.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["responseTemplates[application/json]", "responseParameters[method.response.header.X-Old]"]);
    let template = &differences[0];
    assert_eq!(template.spec.as_deref(), Some("35 bytes (text not shown)"), "{template:?}");
    assert!(!template.aws.as_deref().unwrap().contains("legacy"), "no template text in status: {template:?}");
    assert_eq!((differences[1].spec.as_deref(), differences[1].aws.as_deref()), (None, Some("'1'")));
    assert_eq!(h.kube.event_reasons(), ["Differs"]);

    // The same differences again: no status write, no second Event.
    h.kube.clear_requests();
    h.later().await;
    h.reconcile().await.unwrap();
    assert_eq!(h.kube.requests(), Vec::<String>::new());
    assert_eq!(aws_writes(&h), Vec::<String>::new());

    // AWS is brought in line by someone else: InSync, said once.
    h.aws.tamper(&id, |stored| {
        stored.response_templates.insert("application/json".into(), "{\"error\": \"$context.error.message\"}".into());
        stored.response_parameters.remove("method.response.header.X-Old");
    });
    h.later().await;
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").1, "InSync");
    assert!(h.status().differences.is_empty());
    assert_eq!(h.kube.event_reasons(), ["Differs", "InSync"]);
}

#[tokio::test]
async fn observing_a_missing_response_creates_nothing_and_finds_it_once_it_exists() {
    let mut object = support::integration_response("errors", API, INTEGRATION);
    object.spec.management_policy = Some(integration_response_operator::crd::ManagementPolicy::Observe);
    let h = Harness::with_object(Harness::ready_integration(), object);
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    assert!(h.aws.responses().is_empty());
    assert_eq!(aws_writes(&h), Vec::<String>::new());
    let (ready, reason, message) = h.condition("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "Differs"));
    assert!(message.contains("AWS has no integration response with key /4\\d\\d/"), "{message}");
    assert_eq!(h.status().integration_response_id, None);
    assert_eq!(h.status().differences[0].field, "integrationResponseKey");

    let id = h.aws.insert_foreign(API, INTEGRATION, "/4\\d\\d/");
    h.later().await;
    h.reconcile().await.unwrap();
    assert_eq!(h.status().integration_response_id.as_deref(), Some(id.as_str()));
    assert_eq!(h.condition("Ready").1, "Differs", "found, with none of the spec's fields");
    assert_eq!(aws_writes(&h), Vec::<String>::new());
}

#[tokio::test]
async fn switching_an_observed_response_to_manage_needs_the_adopt_annotation_then_applies_the_differences() {
    let (h, id) = observing(false);
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    h.aws.clear_calls();
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Manage"));
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    let (stalled, reason, message) = h.condition("Stalled");
    assert_eq!((stalled.as_str(), reason.as_str()), ("True", "AlreadyExists"));
    assert!(message.contains(&id) && message.contains("apigatewayv2.aws.operator.rs/adopt"), "{message}");
    assert_eq!(aws_writes(&h), Vec::<String>::new(), "an observed response is not ours to change");
    assert_eq!(h.status().integration_response_id.as_deref(), Some(id.as_str()), "the id stays recorded");

    h.kube.set_annotation("apigatewayv2.aws.operator.rs/adopt", "true");
    h.reconcile().await.unwrap();
    assert_eq!(aws_writes(&h), ["UpdateIntegrationResponse[responseTemplates,responseParameters]"]);
    let stored = h.aws.only_response();
    assert_eq!(stored.id, id);
    assert_eq!(stored.response_templates["application/json"], "{\"error\": \"$context.error.message\"}");
    assert!(!stored.response_parameters.contains_key("method.response.header.X-Old"));
    let status = h.status();
    assert!(!status.observed_only && status.differences.is_empty());
    assert_eq!(
        h.condition("Ready"),
        ("True".into(), "Available".into(), format!("Integration response {id} matches the spec."))
    );
    assert_eq!(h.kube.event_reasons(), ["Differs", "AlreadyExists", "Adopted", "Updated"]);
}

#[tokio::test]
async fn switching_to_manage_with_the_adopt_annotation_applies_exactly_the_listed_differences() {
    let (h, id) = observing(false);
    h.kube.set_annotation("apigatewayv2.aws.operator.rs/adopt", "true");
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    let listed: Vec<String> = h.status().differences.iter().map(|d| d.field.clone()).collect();
    assert_eq!(listed.len(), 2);
    h.aws.clear_calls();
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Manage"));
    h.reconcile().await.unwrap();
    assert_eq!(
        h.aws.calls(),
        ["GetIntegrationResponse", "UpdateIntegrationResponse[responseTemplates,responseParameters]"]
    );
    assert_eq!(h.kube.event_reasons(), ["Differs", "Adopted", "Updated"]);
    let note = h.kube.event_notes().pop().unwrap();
    assert!(
        note.contains("Applied the differences observed")
            && note.contains("responseTemplates, responseParameters")
            && note.contains(&id),
        "{note}"
    );
}

#[tokio::test]
async fn deleting_an_observing_object_never_deletes_in_aws() {
    // A response the object created under Manage, then observed: still left in AWS.
    let h = Harness::created(Harness::ready_integration()).await;
    let id = h.id();
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Observe"));
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").1, "InSync");
    assert!(!h.status().observed_only, "created by this object, so still its own");
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert_eq!(aws_writes(&h), Vec::<String>::new());
    assert_eq!(h.aws.only_response().id, id);
    assert!(h.kube.object().is_none(), "the finalizer went");
    assert_eq!(h.kube.event_reasons().last().map(String::as_str), Some("Retained"));
    assert!(h.kube.event_notes().last().unwrap().contains("managementPolicy Observe"));
}

#[tokio::test]
async fn a_response_only_observed_is_never_deleted_even_after_switching_to_manage() {
    let (h, id) = observing(true);
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Manage"));
    h.fail_and_requeue().await;
    assert_eq!(h.condition("Stalled").1, "AlreadyExists");
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert_eq!(aws_writes(&h), Vec::<String>::new());
    assert_eq!(h.aws.only_response().id, id);
    assert!(h.kube.object().is_none());
}

#[tokio::test]
async fn an_owned_response_observed_then_managed_again_is_put_back_without_adoption() {
    let h = Harness::created(Harness::ready_integration()).await;
    let id = h.id();
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Observe"));
    h.reconcile().await.unwrap();
    h.aws.tamper(&id, |stored| stored.template_selection_expression = Some("$request.body.x".into()));
    h.later().await;
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").1, "Differs");
    assert_eq!(h.status().differences[0].aws.as_deref(), Some("$request.body.x"));
    assert_eq!(aws_writes(&h), Vec::<String>::new());
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Manage"));
    h.reconcile().await.unwrap();
    assert_eq!(aws_writes(&h), ["UpdateIntegrationResponse[templateSelectionExpression]"]);
    assert_eq!(h.condition("Ready").1, "Available");
    assert_eq!(h.kube.event_reasons(), ["Created", "Differs", "Updated"]);
}

#[tokio::test]
async fn an_observed_response_that_went_away_leaves_the_key_free_for_manage() {
    let (h, id) = observing(true);
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    h.aws.state.lock().unwrap().responses.remove(&id);
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Manage"));
    h.reconcile().await.unwrap();
    let stored = h.aws.only_response();
    assert_ne!(stored.id, id);
    assert_eq!(h.id(), stored.id);
    assert!(!h.status().observed_only);
    assert_eq!(h.condition("Ready").1, "Available");
}

// spec.integrationRef: ids and region from an ACK or Crossplane Integration.

const ACK_PATH: &str = "/apis/apigatewayv2.services.k8s.aws/v1alpha1/namespaces/default/integrations/chat";
const CROSSPLANE_PATH: &str = "/apis/apigatewayv2.aws.upbound.io/v1beta1/integrations/chat";

fn referencing(api_version: &str) -> IntegrationResponse {
    let mut object = support::integration_response("errors", API, INTEGRATION);
    object.spec.api_id = None;
    object.spec.integration_id = None;
    object.spec.integration_ref = Some(integration_response_operator::crd::IntegrationRef {
        api_version: api_version.into(),
        kind: "Integration".into(),
        name: "chat".into(),
    });
    object
}

fn ack_integration(synced: bool, integration_id: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apigatewayv2.services.k8s.aws/v1alpha1", "kind": "Integration",
        "metadata": {"name": "chat", "namespace": "default", "annotations": {"services.k8s.aws/region": "us-east-1"}},
        "spec": {"apiID": API, "integrationType": "MOCK"},
        "status": {"integrationID": integration_id, "conditions": [
            {"type": "ACK.ResourceSynced", "status": if synced { "True" } else { "False" }}]},
    })
}

#[tokio::test]
async fn a_reference_not_ready_waits_quietly_then_the_response_is_made_on_its_ids() {
    let h = Harness::with_object(Harness::ready_integration(), referencing("apigatewayv2.services.k8s.aws/v1alpha1"));
    h.reconcile().await.unwrap();
    let (err, delay) = h.fail_and_requeue().await;
    assert_eq!(err.failure().map(|f| f.reason()), Some("ReferenceNotReady"));
    assert!(delay >= Duration::from_secs(15), "no hot loop; its watch wakes the object: {delay:?}");
    let (ready, reason, message) = h.condition("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "ReferenceNotReady"));
    assert_eq!(message, "Waiting for ACK Integration default/chat: waiting for it to be created.");
    assert_eq!(h.condition("Reconciling").0, "True");
    assert_eq!(h.condition("Stalled").0, "False");
    assert_eq!(h.aws.calls(), Vec::<String>::new());

    h.kube.put_referenced(ACK_PATH, Some(ack_integration(false, "")));
    h.fail_and_requeue().await;
    let (_, _, message) = h.condition("Ready");
    assert!(message.ends_with("waiting for its ACK.ResourceSynced condition to be True."), "{message}");
    assert_eq!(h.kube.event_reasons(), Vec::<String>::new(), "waiting is not a failure: no Warning");

    h.kube.put_referenced(ACK_PATH, Some(ack_integration(true, INTEGRATION)));
    h.reconcile().await.unwrap();
    let stored = h.aws.only_response();
    assert_eq!((stored.api_id.as_str(), stored.integration_id.as_str()), (API, INTEGRATION));
    let status = h.status();
    assert_eq!(status.integration_response_id.as_deref(), Some(stored.id.as_str()));
    assert_eq!((status.api_id.as_deref(), status.integration_id.as_deref()), (Some(API), Some(INTEGRATION)));
    assert_eq!(status.region.as_deref(), Some("us-east-1"));
    assert_eq!(h.condition("Ready").0, "True");
}

#[tokio::test]
async fn a_reference_that_starts_resolving_elsewhere_stalls_and_deletion_uses_the_recorded_ids() {
    let h = Harness::with_object(Harness::ready_integration(), referencing("apigatewayv2.services.k8s.aws/v1alpha1"));
    h.kube.put_referenced(ACK_PATH, Some(ack_integration(true, INTEGRATION)));
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    let id = h.id();
    h.aws.clear_calls();

    // ACK re-syncing its Integration (ResourceSynced False for a while) changes nothing.
    h.kube.put_referenced(ACK_PATH, Some(ack_integration(false, INTEGRATION)));
    h.later().await;
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.kube.event_reasons(), ["Created"]);
    assert_eq!(h.aws.calls(), ["GetIntegrationResponses"], "an ordinary resync, on the recorded ids");
    h.aws.clear_calls();

    h.kube.put_referenced(ACK_PATH, Some(ack_integration(true, "int-elsewhere")));
    h.later().await;
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    let (_, reason, message) = h.condition("Stalled");
    assert_eq!(reason, "ImmutableFieldChanged");
    assert!(message.starts_with("spec.integrationRef now resolves to integrationId int-elsewhere"), "{message}");
    assert_eq!(h.aws.calls(), Vec::<String>::new());

    // The Integration goes first (an Argo CD prune, say): ours is still deleted, by its record.
    h.kube.put_referenced(ACK_PATH, None);
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert_eq!(h.aws.calls(), ["DeleteIntegrationResponse"]);
    assert!(h.aws.responses().is_empty(), "{id} deleted");
    assert!(h.kube.object().is_none());
}

#[tokio::test]
async fn a_cluster_scoped_reference_is_followed_only_with_the_flag() {
    let crossplane = json!({
        "apiVersion": "apigatewayv2.aws.upbound.io/v1beta1", "kind": "Integration",
        "metadata": {"name": "chat", "annotations": {"crossplane.io/external-name": INTEGRATION}},
        "spec": {"forProvider": {"apiId": API, "region": "us-east-1"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "True"}]},
    });
    let h = Harness::with_object(Harness::ready_integration(), referencing("apigatewayv2.aws.upbound.io/v1beta1"));
    h.kube.put_referenced(CROSSPLANE_PATH, Some(crossplane));
    h.reconcile().await.unwrap();
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    let (_, reason, message) = h.condition("Stalled");
    assert_eq!(reason, "ClusterScopedReference");
    assert!(
        message.contains("Crossplane Integration chat is cluster-scoped")
            && message.contains("--allow-cluster-scoped-refs"),
        "{message}"
    );
    assert!(!h.kube.requests().iter().any(|r| r.contains("upbound")), "not even read");

    let allowed = Harness {
        ctx: support::context_with_settings(&h.kube, &h.aws, "test", |s| s.allow_cluster_scoped_refs = true),
        kube: h.kube.clone(),
        aws: h.aws.clone(),
    };
    allowed.reconcile().await.unwrap();
    let stored = allowed.aws.only_response();
    assert_eq!((stored.api_id.as_str(), stored.integration_id.as_str()), (API, INTEGRATION));
    assert_eq!(allowed.condition("Ready").0, "True");
}

// IAMRoleSelectors: which account reconciles which namespace.

fn role_selector(
    name: &str,
    account: &str,
    namespaces: &[&str],
) -> integration_response_operator::crd::IAMRoleSelector {
    serde_json::from_value(json!({
        "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1", "kind": "IAMRoleSelector",
        "metadata": {"name": name},
        "spec": {"roleArn": format!("arn:aws:iam::{account}:role/iro"), "namespaceSelector": {"names": namespaces}},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_selected_namespace_records_the_roles_account_and_it_may_not_change() {
    let h = Harness::new(Harness::ready_integration());
    h.ctx.role_selectors.replace(vec![role_selector("team", "111111111111", &["default"])]);
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    assert_eq!(h.status().account_id.as_deref(), Some("111111111111"));
    assert_eq!(h.condition("Ready").0, "True");

    // The namespace is given to another account: the response cannot follow.
    h.ctx.role_selectors.replace(vec![role_selector("other", "222222222222", &["default"])]);
    h.kube.edit_spec(|spec| spec["responseTemplates"] = json!({"application/json": "{}"}));
    h.aws.clear_calls();
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    let (_, reason, message) = h.condition("Stalled");
    assert_eq!(reason, "ImmutableFieldChanged");
    assert!(
        message.starts_with("The integration response was created in account 111111111111, but this namespace now uses account 222222222222 (IAMRoleSelector other)"),
        "{message}"
    );
    assert_eq!(h.aws.calls(), Vec::<String>::new());

    // Deleting it needs the recorded account's role: without it the finalizer stays.
    h.kube.request_deletion();
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.failure().map(|f| f.reason()), Some("RoleSelectorGone"));
    assert!(h.kube.object().is_some(), "the finalizer stays");
    assert_eq!(h.aws.responses().len(), 1, "nothing deleted in the wrong account");
    h.ctx.role_selectors.replace(vec![role_selector("team", "111111111111", &["default"])]);
    h.reconcile().await.unwrap();
    assert!(h.aws.responses().is_empty());
    assert!(h.kube.object().is_none());
}

#[tokio::test]
async fn no_selector_with_the_requirement_or_two_selectors_stall_before_aws() {
    let h = Harness::new(Harness::ready_integration());
    let ctx = support::context_with_settings(&h.kube, &h.aws, "test", |s| s.require_role_selector = true);
    let h = Harness { ctx, kube: h.kube.clone(), aws: h.aws.clone() };
    h.reconcile().await.unwrap();
    let (err, delay) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    assert!(delay >= Duration::from_secs(540));
    let (_, reason, message) = h.condition("Stalled");
    assert_eq!(reason, "NoRoleSelector");
    assert!(message.contains("No IAMRoleSelector selects namespace default"), "{message}");

    h.ctx.role_selectors.replace(vec![
        role_selector("b", "222222222222", &["default"]),
        role_selector("a", "111111111111", &["default", "other"]),
    ]);
    h.kube.edit_spec(|spec| spec["responseTemplates"] = json!({"application/json": "{}"}));
    h.fail_and_requeue().await;
    let (_, reason, message) = h.condition("Stalled");
    assert_eq!(reason, "AmbiguousRoleSelector");
    assert!(message.starts_with("IAMRoleSelectors a and b both select namespace default"), "{message}");
    assert_eq!(h.aws.calls(), Vec::<String>::new());
    assert_eq!(h.status().account_id, None);
}

#[tokio::test]
async fn a_namespaced_crossplane_reference_waits_then_resolves_and_its_deletion_does_not_block_ours() {
    const PATH: &str = "/apis/apigatewayv2.aws.m.upbound.io/v1beta1/namespaces/default/integrations/chat";
    let h = Harness::with_object(Harness::ready_integration(), referencing("apigatewayv2.aws.m.upbound.io/v1beta1"));
    h.reconcile().await.unwrap();
    h.fail_and_requeue().await;
    assert_eq!(
        h.condition("Ready").2,
        "Waiting for Crossplane Integration default/chat: waiting for it to be created."
    );
    let integration = |ready: &str| {
        json!({
            "apiVersion": "apigatewayv2.aws.m.upbound.io/v1beta1", "kind": "Integration",
            "metadata": {"name": "chat", "namespace": "default"},
            "spec": {"forProvider": {"apiId": API, "region": "us-east-1"}},
            "status": {"atProvider": {"id": INTEGRATION},
                       "conditions": [{"type": "Ready", "status": ready}, {"type": "Synced", "status": "True"}]},
        })
    };
    h.kube.put_referenced(PATH, Some(integration("False")));
    h.fail_and_requeue().await;
    assert!(h.condition("Ready").2.ends_with("waiting for its Ready and Synced conditions to be True."));
    assert_eq!(h.aws.calls(), Vec::<String>::new());
    h.kube.put_referenced(PATH, Some(integration("True")));
    h.reconcile().await.unwrap();
    let stored = h.aws.only_response();
    assert_eq!(
        (stored.api_id.as_str(), stored.integration_id.as_str()),
        (API, INTEGRATION),
        "from status.atProvider.id"
    );
    assert_eq!(h.condition("Ready").0, "True");
    h.kube.put_referenced(PATH, None);
    h.kube.request_deletion();
    h.reconcile().await.unwrap();
    assert!(h.aws.responses().is_empty());
    assert!(h.kube.object().is_none());
}

#[tokio::test]
async fn observing_a_response_seen_gone_is_not_left_in_sync_when_the_lookup_fails() {
    let (h, id) = observing(true);
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").1, "InSync");
    h.aws.state.lock().unwrap().responses.remove(&id);
    h.later().await;
    h.aws.clear_calls();
    // The shared read answers (the id is missing), the direct read says 404, then the lookup
    // by key is throttled.
    throttle_the_second_listing(&h.aws);
    h.fail_and_requeue().await;
    assert_eq!(h.aws.calls(), ["GetIntegrationResponses", "GetIntegrationResponse", "GetIntegrationResponses"]);
    let (ready, reason, _) = h.condition("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "Throttled"), "seen gone: not InSync any more");
    assert_eq!(aws_writes(&h), Vec::<String>::new());
}

/// A create under Manage whose outcome is unknown (500): the claim of instance "test" stays.
async fn with_an_unresolved_claim() -> Harness {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    h.aws.fail_next("CreateIntegrationResponse", error_response(500, "InternalServerErrorException", "timeout"));
    h.fail_and_requeue().await;
    assert_eq!(h.status().claimed_key(), Some("/4\\d\\d/"));
    assert_eq!(h.status().integration_response_id, None);
    h.aws.clear_calls();
    h
}

#[tokio::test]
async fn observing_under_a_claim_never_makes_another_objects_response_its_own() {
    let h = with_an_unresolved_claim().await;
    assert!(h.aws.responses().is_empty(), "the create did not happen");
    // Meanwhile default/zeta made a response under that key, and records it.
    let theirs = h.aws.insert_foreign(API, INTEGRATION, "/4\\d\\d/");
    let mut zeta = support::integration_response("zeta", API, INTEGRATION);
    zeta.status = Some(IntegrationResponseStatus {
        integration_response_id: Some(theirs.clone()),
        api_id: Some(API.into()),
        integration_id: Some(INTEGRATION.into()),
        ..Default::default()
    });
    h.ctx.owners.observe(&zeta);
    h.kube.state.lock().unwrap().others.insert("zeta".into(), serde_json::to_value(&zeta).unwrap());

    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Observe"));
    h.reconcile().await.unwrap();
    let status = h.status();
    assert_eq!(status.integration_response_id.as_deref(), Some(theirs.as_str()));
    assert!(status.observed_only, "default/zeta's response: only observed here");
    assert_eq!(status.claimed_key(), None);
    assert_eq!(aws_writes(&h), Vec::<String>::new());
    // So default/zeta, which sorts after it, does not give its response up to an observer.
    h.ctx.owners.observe(&h.object());
    assert_eq!(h.ctx.owners.yields_to(API, &theirs, "default/zeta"), None);
    // And this object, switched to Manage, follows the adopt rules for it.
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Manage"));
    h.fail_and_requeue().await;
    assert_eq!(h.condition("Stalled").1, "AlreadyExists");
    assert_eq!(aws_writes(&h), Vec::<String>::new());
}

#[tokio::test]
async fn observing_waits_for_another_instances_fresh_claim_and_its_response_is_recorded() {
    // Instance "other" is creating this object's response under the key the spec had then,
    // when the user switches to Observe and changes the key, which another tool already uses.
    let mut object = support::integration_response("errors", API, INTEGRATION);
    object.metadata.finalizers = Some(vec!["apigatewayv2.aws.operator.rs/finalizer".into()]);
    object.spec.management_policy = Some(integration_response_operator::crd::ManagementPolicy::Observe);
    let since = k8s_openapi::jiff::Timestamp::from_second(k8s_openapi::jiff::Timestamp::now().as_second()).unwrap();
    object.status = Some(
        serde_json::from_value(json!({
            "region": "us-east-1", "apiId": API, "integrationId": INTEGRATION,
            "pendingCreate": {"key": "/5\\d\\d/", "holder": "other", "since": since.to_string()},
        }))
        .unwrap(),
    );
    let h = Harness::with_object(Harness::ready_integration(), object);
    let foreign = h.aws.insert_foreign(API, INTEGRATION, "/4\\d\\d/");
    let _ = h.reconcile().await;
    // Then the other instance's create lands, and that instance looks again.
    let made = h.aws.insert_foreign(API, INTEGRATION, "/5\\d\\d/");
    let other = support::context_as(&h.kube, &h.aws, "other");
    let _ = reconcile(Arc::new(h.object()), other).await;
    let status = h.status();
    assert_eq!(status.claimed_key(), None, "the claim is resolved");
    assert_eq!(status.integration_response_id.as_deref(), Some(made.as_str()), "its own create, not {foreign}");
    assert!(!status.observed_only);
    assert_eq!(status.differences[0].field, "integrationResponseKey");
    assert_eq!(aws_writes(&h), Vec::<String>::new());
}

#[tokio::test]
async fn an_observed_response_gone_before_adoption_is_not_reported_as_adopted() {
    let (h, id) = observing(true);
    h.kube.set_annotation("apigatewayv2.aws.operator.rs/adopt", "true");
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    h.aws.state.lock().unwrap().responses.remove(&id);
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Manage"));
    h.reconcile().await.unwrap();
    let created = h.aws.only_response();
    assert_eq!(h.id(), created.id);
    assert_eq!(h.kube.event_reasons(), ["Created"], "{:?}", h.kube.event_notes());
}

#[tokio::test]
async fn deleting_an_observing_object_with_a_claim_names_the_response_it_keeps() {
    // A create whose reply was lost: the response exists, its id was never recorded.
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    h.aws.before_next("CreateIntegrationResponse", |state| {
        state.insert(API, INTEGRATION, "/4\\d\\d/");
        state.fail_this_call("CreateIntegrationResponse", error_response(500, "InternalServerErrorException", "x"));
    });
    h.fail_and_requeue().await;
    assert_eq!(h.status().integration_response_id, None);
    let made = h.aws.only_response().id;
    // Switched to Observe and deleted before any pass looked the key up.
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Observe"));
    h.kube.request_deletion();
    h.aws.clear_calls();
    h.reconcile().await.unwrap();
    assert!(h.kube.object().is_none());
    assert_eq!(aws_writes(&h), Vec::<String>::new(), "Observe never deletes");
    assert_eq!(h.aws.only_response().id, made);
    let notes = h.kube.event_notes();
    assert!(notes.last().is_some_and(|n| n.contains(&made) && n.contains("managementPolicy Observe")), "{notes:?}");
}

#[tokio::test]
async fn a_pass_from_a_copy_that_predates_the_switch_to_observe_does_not_update_aws() {
    let h = Harness::created(Harness::ready_integration()).await;
    let id = h.id();
    h.aws.tamper(&id, |stored| stored.template_selection_expression = Some("$request.body.x".into()));
    h.later().await;
    // The watch has not delivered the switch yet: the pass starts from the Manage copy.
    let stale = h.object();
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Observe"));
    let _ = reconcile(Arc::new(stale), h.ctx.clone()).await;
    assert_eq!(aws_writes(&h), Vec::<String>::new(), "the object is observed now");
    assert_eq!(h.aws.only_response().template_selection_expression.as_deref(), Some("$request.body.x"));
    assert_eq!(h.condition("Ready").1, "Differs", "decided again from the object as it is");
}

#[tokio::test]
async fn a_cleanup_from_a_copy_that_predates_the_switch_to_observe_does_not_delete_in_aws() {
    let h = Harness::created(Harness::ready_integration()).await;
    let id = h.id();
    h.kube.request_deletion();
    // The delete failed; the user switches to Observe to keep the response, as the README says
    // Retain does. The retry starts from the copy the watch had before that edit.
    let stale = h.object();
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Observe"));
    let _ = reconcile(Arc::new(stale), h.ctx.clone()).await;
    assert_eq!(aws_writes(&h), Vec::<String>::new());
    assert_eq!(h.aws.only_response().id, id);
}

#[tokio::test]
async fn the_differs_message_of_an_only_observed_response_says_that_managing_it_needs_the_adopt_annotation() {
    let (h, _) = observing(false);
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    let (_, reason, message) = h.condition("Ready");
    assert_eq!(reason, "Differs");
    assert!(message.contains("apigatewayv2.aws.operator.rs/adopt"), "switching alone would stall: {message}");

    // With the annotation set, switching is all it takes.
    h.kube.set_annotation("apigatewayv2.aws.operator.rs/adopt", "true");
    h.later().await;
    h.reconcile().await.unwrap();
    let (_, _, message) = h.condition("Ready");
    assert!(message.ends_with("Set managementPolicy: Manage to apply the spec."), "{message}");
}

#[tokio::test]
async fn observing_under_a_claim_with_two_responses_under_its_key_takes_neither() {
    let h = with_an_unresolved_claim().await;
    // An emulator that accepts duplicate keys: the create made one, another tool the other.
    let first = h.aws.insert_foreign(API, INTEGRATION, "/4\\d\\d/");
    let second = h.aws.insert_foreign(API, INTEGRATION, "/4\\d\\d/");
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Observe"));
    let (err, _) = h.fail_and_requeue().await;
    assert_eq!(err.category(), "stalled");
    let status = h.status();
    assert_eq!(status.integration_response_id, None, "neither is known to be its own");
    assert_eq!(status.claimed_key(), Some("/4\\d\\d/"), "the claim stays, as under Manage");
    let (_, reason, message) = h.condition("Stalled");
    assert_eq!(reason, "AlreadyExists");
    assert!(message.contains(&first) && message.contains(&second), "{message}");
    assert_eq!(aws_writes(&h), Vec::<String>::new());
}

#[tokio::test]
async fn observing_keeps_a_claim_whose_create_may_still_land_and_then_owns_what_it_made() {
    let h = Harness::new(Harness::ready_integration());
    h.reconcile().await.unwrap();
    // The create's answer is lost (a 500): it may or may not have been made.
    h.aws.fail_next("CreateIntegrationResponse", error_response(500, "InternalServerErrorException", "lost"));
    h.fail_and_requeue().await;
    assert!(h.status().claimed_key().is_some());
    h.kube.edit_spec(|spec| spec["managementPolicy"] = json!("Observe"));
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").1, "Differs", "nothing in AWS yet");
    assert_eq!(h.status().claimed_key(), Some("/4\\d\\d/"), "no definite answer: the claim stays");
    // The create lands after all: it is this object's own, not just observed.
    let id = h.aws.insert_foreign(API, INTEGRATION, "/4\\d\\d/");
    h.later().await;
    h.reconcile().await.unwrap();
    let status = h.status();
    assert_eq!(status.integration_response_id.as_deref(), Some(id.as_str()));
    assert!(!status.observed_only);
    assert_eq!(status.claimed_key(), None);
    assert_eq!(aws_writes(&h), ["CreateIntegrationResponse"], "the lost create only");
}

const ROLE_SELECTORS: &str = "/apis/apigatewayv2.aws.operator.rs/v1alpha1/iamroleselectors";

#[tokio::test(start_paused = true)]
async fn nothing_is_reconciled_while_the_role_selectors_cannot_be_listed() {
    let h = Harness::new(Harness::ready_integration());
    // The API server fails the list (a 500, a 403 from RBAC not yet bound): that is not "no
    // selectors", and reconciling now would use the operator's own identity for every namespace.
    let (code, body) = support::fake_kube::status_error(500, "InternalError", "etcd timeout");
    h.kube.answer(ROLE_SELECTORS, code.as_u16(), body);
    let started = tokio::time::timeout(
        Duration::from_secs(120),
        integration_response_operator::controller::selectors::start(h.ctx.clone()),
    )
    .await;
    assert!(started.is_err(), "start returned before the selectors could be listed");
    assert!(
        h.kube.requests().iter().filter(|r| r.contains("iamroleselectors")).count() > 1,
        "the list is tried again: {:?}",
        h.kube.requests()
    );

    // A 404 is the CRD not being installed: every object then uses the operator's own identity.
    let (code, body) =
        support::fake_kube::status_error(404, "NotFound", "the server could not find the requested resource");
    h.kube.answer(ROLE_SELECTORS, code.as_u16(), body);
    let started = tokio::time::timeout(
        Duration::from_secs(120),
        integration_response_operator::controller::selectors::start(h.ctx.clone()),
    )
    .await;
    started.expect("returns at once when the CRD is not installed").abort();
}

#[tokio::test]
async fn an_empty_label_selector_beside_names_selects_no_other_namespace() {
    let h = Harness::new(Harness::ready_integration());
    h.kube.answer(
        "/api/v1/namespaces/default",
        200,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default", "labels": {"kubernetes.io/metadata.name": "default"}}}),
    );
    // Templated as tools often render an unset map or list: only team-a is meant. Selecting by
    // no label at all must not hand team-a's account to every namespace.
    let mut selector = role_selector("team-a", "111111111111", &["team-a"]);
    selector.spec.namespace_selector.match_labels = Some(Default::default());
    selector.spec.namespace_selector.match_expressions = Some(Vec::new());
    h.ctx.role_selectors.replace(vec![selector]);
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.status().account_id, None, "default is not team-a's: the operator's own identity");
}
