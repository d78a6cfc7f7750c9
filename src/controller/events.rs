//! Kubernetes Events on the object: one per change made, and one per new kind of failure.
//!
//! Written directly with `events.k8s.io/v1` rather than through kube's `Recorder`, whose cache
//! keeps a copy of every recent event and its object reference for hours. Like client-go, an
//! Event that repeats (same object, type, reason and note) within a few minutes updates the first
//! one's `series` instead of adding another; only that small key is remembered, and only briefly.
//!
//! kube-apiserver validates Events strictly, so every field is kept within its limits here: the
//! name is the object's name plus a unique suffix (a `generateName` ending in `.` is refused),
//! reason, action and the reporting fields at most 128 characters, the note at most 1 KiB.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::time::Instant;
use tracing::{info, warn};

use super::Context;
use crate::crd::IntegrationResponse;

/// kube-apiserver's limits for `events.k8s.io/v1`.
const MAX_NOTE_BYTES: usize = 1024;
const MAX_FIELD_CHARS: usize = 128;
const MAX_NAME_CHARS: usize = 253;
/// How long a repeat joins the earlier Event's series (client-go uses 6 minutes as well).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// Bound on remembered series; a full map first drops expired entries, then everything.
const MAX_SERIES: usize = 1024;

/// What makes two Events the same for a series.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    namespace: String,
    object: String,
    /// An object deleted and created again under the same name is another object.
    uid: Option<String>,
    warning: bool,
    reason: String,
    note: String,
}

struct Series {
    event_name: String,
    count: i32,
    last: Instant,
}

pub struct EventRecorder {
    client: Client,
    controller: String,
    instance: String,
    series: Mutex<HashMap<SeriesKey, Series>>,
    sequence: AtomicU64,
}

impl EventRecorder {
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        Self {
            client,
            controller: truncate_chars(controller, MAX_FIELD_CHARS),
            instance: truncate_chars(instance, MAX_FIELD_CHARS),
            series: Mutex::default(),
            sequence: AtomicU64::new(0),
        }
    }

    /// Events are informational: failing to record one must not fail the reconcile (in a
    /// namespace being deleted the server refuses them, and the deletion must still finish).
    /// Returns whether the Event was stored.
    async fn publish(
        &self,
        obj: &impl Resource<DynamicType = ()>,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) -> bool {
        let namespace = obj.namespace().unwrap_or_else(|| "default".into());
        let api = Api::<Event>::namespaced(self.client.clone(), &namespace);
        let note = truncate_bytes(note, MAX_NOTE_BYTES);
        let key = SeriesKey {
            namespace: namespace.clone(),
            object: obj.name_any(),
            uid: obj.uid(),
            warning,
            reason: reason.to_owned(),
            note: note.clone(),
        };
        let now = Timestamp::now();

        if let Some((event_name, count)) = self.repeat(&key) {
            let patch = json!({"series": {"count": count, "lastObservedTime": MicroTime(now)}});
            match api.patch(&event_name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return true,
                // Gone (Events expire after an hour by default): start a new one below.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => {
                    warn!(%err, reason, "could not update event series");
                    return false;
                }
            }
        }

        let nanos = now.as_nanosecond().max(0) as u64;
        let name = event_name(&obj.name_any(), nanos.wrapping_add(self.sequence.fetch_add(1, Ordering::Relaxed)));
        let event = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace), ..Default::default() },
            event_time: Some(MicroTime(now)),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            reason: Some(truncate_chars(reason, MAX_FIELD_CHARS)),
            action: Some(truncate_chars(action, MAX_FIELD_CHARS)),
            note: Some(note),
            regarding: Some(obj.object_ref(&())),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            series: None::<EventSeries>,
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                self.remember(key, name);
                true
            }
            Err(err) => {
                warn!(%err, reason, "could not record event");
                false
            }
        }
    }

    /// For an Event seen within the window: its name and the series count to write now.
    fn repeat(&self, key: &SeriesKey) -> Option<(String, i32)> {
        let mut series = self.series.lock().expect("event series lock");
        let entry = series.get_mut(key).filter(|s| s.last.elapsed() <= SERIES_WINDOW)?;
        entry.count = entry.count.saturating_add(1);
        entry.last = Instant::now();
        Some((entry.event_name.clone(), entry.count))
    }

    fn remember(&self, key: SeriesKey, event_name: String) {
        let mut series = self.series.lock().expect("event series lock");
        if series.len() >= MAX_SERIES {
            series.retain(|_, s| s.last.elapsed() <= SERIES_WINDOW);
            if series.len() >= MAX_SERIES {
                series.clear();
            }
        }
        // The first Event is the series' first member; a repeat makes the count 2.
        series.insert(key, Series { event_name, count: 1, last: Instant::now() });
    }
}

/// "<object>.<unique hex>", as client-go names Events; the object's name is cut so the whole
/// stays a valid DNS subdomain of at most 253 characters.
fn event_name(object: &str, unique: u64) -> String {
    let suffix = format!(".{unique:x}");
    let mut prefix = truncate_chars(object, MAX_NAME_CHARS - suffix.len());
    while prefix.ends_with(['.', '-']) {
        prefix.pop();
    }
    format!("{prefix}{suffix}")
}

fn truncate_bytes(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

pub async fn normal(ctx: &Context, obj: &IntegrationResponse, reason: &str, note: String) {
    info!(reason, note, "event");
    if !ctx.events.publish(obj, false, reason, reason, &note).await {
        ctx.metrics.count_event_failure();
    }
}

pub async fn warning(ctx: &Context, obj: &IntegrationResponse, reason: &str, note: String) {
    warn!(reason, note, "event");
    if !ctx.events.publish(obj, true, reason, reason, &note).await {
        ctx.metrics.count_event_failure();
    }
}

/// A Warning on an object that could not be read as an IntegrationResponse.
pub async fn invalid_object(ctx: &Context, obj: &impl Resource<DynamicType = ()>, error: &str) {
    let note = format!("Not reconciled: the object does not match the IntegrationResponse schema: {error}");
    if !ctx.events.publish(obj, true, "InvalidObject", "Reconcile", &note).await {
        ctx.metrics.count_event_failure();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_dns_subdomains_of_at_most_253_characters() {
        assert_eq!(event_name("errors", 0x1a2b), "errors.1a2b");
        let long = format!("{}-{}", "a".repeat(235), "b".repeat(17));
        let name = event_name(&long, u64::MAX);
        assert_eq!(name.len(), 252);
        assert_eq!(name, format!("{}.ffffffffffffffff", "a".repeat(235)), "cut before the '-', never ending in one");
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_bytes("aé", 2), "a");
        assert_eq!(truncate_bytes(&"x".repeat(2000), MAX_NOTE_BYTES).len(), 1024);
        assert_eq!(truncate_chars(&"é".repeat(200), MAX_FIELD_CHARS).chars().count(), 128);
    }
}
