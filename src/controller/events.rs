//! Kubernetes Events on the object: one per change made, and one per new kind of failure.
//!
//! Written directly with `events.k8s.io/v1` rather than through kube's `Recorder`, whose series
//! cache keeps a copy of every recent event and its object reference in memory. The reconciler
//! already emits an event only when something changes, so there is nothing to aggregate.

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use super::Context;
use crate::crd::IntegrationResponse;

/// API limit on an Event's note.
const MAX_NOTE_BYTES: usize = 1024;

pub struct EventRecorder {
    client: Client,
    controller: String,
    instance: String,
}

impl EventRecorder {
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        Self { client, controller: controller.to_owned(), instance: instance.to_owned() }
    }

    /// Events are informational: failing to record one must not fail the reconcile.
    async fn publish(
        &self,
        obj: &impl Resource<DynamicType = ()>,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let namespace = obj.namespace().unwrap_or_else(|| "default".into());
        let mut note = note.to_owned();
        if note.len() > MAX_NOTE_BYTES {
            let mut end = MAX_NOTE_BYTES;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", obj.name_any())),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            event_time: Some(MicroTime(Timestamp::now())),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            reason: Some(reason.into()),
            action: Some(action.into()),
            note: Some(note),
            regarding: Some(obj.object_ref(&())),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        if let Err(err) =
            Api::<Event>::namespaced(self.client.clone(), &namespace).create(&PostParams::default(), &event).await
        {
            warn!(%err, reason, "could not record event");
        }
    }
}

pub async fn normal(ctx: &Context, obj: &IntegrationResponse, reason: &str, note: String) {
    info!(reason, note, "event");
    ctx.events.publish(obj, false, reason, reason, &note).await;
}

pub async fn warning(ctx: &Context, obj: &IntegrationResponse, reason: &str, note: String) {
    warn!(reason, note, "event");
    ctx.events.publish(obj, true, reason, reason, &note).await;
}

/// A Warning on an object that could not be read as an IntegrationResponse.
pub async fn invalid_object(ctx: &Context, obj: &impl Resource<DynamicType = ()>, error: &str) {
    let note = format!("Not reconciled: the object does not match the IntegrationResponse schema: {error}");
    ctx.events.publish(obj, true, "InvalidObject", "Reconcile", &note).await;
}
