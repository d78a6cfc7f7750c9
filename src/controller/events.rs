//! Kubernetes Events on the object: one per change made, and one per new kind of failure.

use kube::Resource;
use kube::runtime::events::{Event, EventType};
use tracing::{info, warn};

use super::Context;
use crate::crd::IntegrationResponse;

pub async fn normal(ctx: &Context, obj: &IntegrationResponse, reason: &str, note: String) {
    publish(ctx, obj, EventType::Normal, reason, note).await;
}

pub async fn warning(ctx: &Context, obj: &IntegrationResponse, reason: &str, note: String) {
    publish(ctx, obj, EventType::Warning, reason, note).await;
}

/// A Warning on an object that could not be read as an IntegrationResponse.
pub async fn invalid_object(ctx: &Context, obj: &impl Resource<DynamicType = ()>, error: &str) {
    let event = Event {
        type_: EventType::Warning,
        reason: "InvalidObject".into(),
        note: Some(format!("Not reconciled: the object does not match the IntegrationResponse schema: {error}")),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        warn!(%err, "could not record event");
    }
}

/// Events are informational: failing to record one must not fail the reconcile.
async fn publish(ctx: &Context, obj: &IntegrationResponse, type_: EventType, reason: &str, note: String) {
    match type_ {
        EventType::Normal => info!(reason, note, "event"),
        EventType::Warning => warn!(reason, note, "event"),
    }
    let event =
        Event { type_, reason: reason.to_owned(), note: Some(note), action: reason.to_owned(), secondary: None };
    if let Err(err) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        warn!(%err, reason, "could not record event");
    }
}
