//! What the controller's cache keeps of each object: its metadata, and its spec and status as one
//! compact JSON string, decoded again for each reconcile.
//!
//! The typed object costs about 3 KiB in memory even when small (its struct is large, each map
//! of the spec a B-tree node of its own, each condition field a separate allocation); the same
//! content as one string costs what its text does. Decoding gives back exactly the object that
//! was stored (a serde round trip of our own types), so reconcile sees what it always saw.
//! Managed fields and annotations other than the adopt annotation are dropped on the way in, as
//! before: kubectl's last-applied-configuration alone is a full copy of the object.

use std::borrow::Cow;

use kube::core::{DeserializeGuard, NamespaceResourceScope, ObjectMeta};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Deserializer};

use crate::crd::{
    ADOPT_ANNOTATION, Condition, IntegrationResponse, IntegrationResponseSpec, IntegrationResponseStatus,
};

/// A condition as a JSON array instead of an object: its six field names were a quarter of the
/// cached text.
type ConditionRow = (String, String, String, String, Option<i64>, String);

fn row(c: Condition) -> ConditionRow {
    (c.type_, c.status, c.reason, c.message, c.observed_generation, c.last_transition_time)
}

fn condition((type_, status, reason, message, observed_generation, last_transition_time): ConditionRow) -> Condition {
    Condition { type_, status, reason, message, observed_generation, last_transition_time }
}

/// One watched IntegrationResponse as cached.
#[derive(Clone, Debug)]
pub struct CachedObject {
    metadata: ObjectMeta,
    /// Spec, status (without its conditions) and the conditions as rows: a JSON array, or why
    /// the object does not match the schema.
    body: Result<Box<str>, String>,
    /// Its integration's resync slot (see [`super::resync::phase`]).
    resync_phase: u64,
    /// What of it starts a reconcile (see [`super::reconcile_trigger`]).
    trigger: u64,
    /// Whether this version starts a reconcile: its trigger differs from the cached version
    /// before it (see [`CachedObject::mark_trigger`]).
    starts_reconcile: bool,
}

impl CachedObject {
    /// The object as reconcile takes it; `Err` says why it does not match the schema.
    pub fn decode(&self) -> Result<IntegrationResponse, String> {
        let body = self.body.as_deref().map_err(Clone::clone)?;
        let (spec, mut status, rows): (IntegrationResponseSpec, Option<IntegrationResponseStatus>, Vec<ConditionRow>) =
            serde_json::from_str(body).map_err(|err| err.to_string())?;
        if let Some(status) = &mut status {
            status.conditions = rows.into_iter().map(condition).collect();
        }
        Ok(IntegrationResponse { metadata: self.metadata.clone(), spec, status })
    }
}

impl From<DeserializeGuard<IntegrationResponse>> for CachedObject {
    fn from(guarded: DeserializeGuard<IntegrationResponse>) -> Self {
        let (mut metadata, body, resync_phase) = match guarded.0 {
            Ok(mut obj) => {
                let rows: Vec<ConditionRow> = obj
                    .status
                    .as_mut()
                    .map(|s| std::mem::take(&mut s.conditions).into_iter().map(row).collect())
                    .unwrap_or_default();
                let body = serde_json::to_string(&(&obj.spec, &obj.status, rows)).map_err(|err| err.to_string());
                let phase = super::resync::phase(&obj);
                (obj.metadata, body.map(String::into_boxed_str), phase)
            }
            Err(invalid) => (invalid.metadata, Err(invalid.error), 0),
        };
        let trigger = super::reconcile_trigger(&metadata);
        metadata.managed_fields = Some(Vec::new());
        metadata.annotations.get_or_insert_default().retain(|key, _| key == ADOPT_ANNOTATION);
        Self { metadata, body, resync_phase, trigger, starts_reconcile: true }
    }
}

/// Read straight off the watch, so a page of a list never holds more than one object in full.
impl<'de> Deserialize<'de> for CachedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DeserializeGuard::<IntegrationResponse>::deserialize(deserializer).map(Self::from)
    }
}

impl Resource for CachedObject {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        IntegrationResponse::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        IntegrationResponse::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        IntegrationResponse::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        IntegrationResponse::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl CachedObject {
    /// "namespace/name".
    pub fn key(&self) -> String {
        super::key_of(self.namespace().as_deref(), &self.name_any())
    }

    /// Decides whether this version, just off the watch, starts a reconcile: only when what
    /// [`super::reconcile_trigger`] looks at differs from the version `cache` holds (which the
    /// event has not replaced yet). Our own status writes come back as watch events and must not
    /// start reconciles. The cache itself is the memory of what was seen, so this costs no map
    /// of its own (kube-runtime's predicate filter keeps three strings per object).
    pub fn mark_trigger(&mut self, cache: &Store<CachedObject>) {
        let cached = cache.get(&super::reference_to(self));
        self.starts_reconcile = cached.is_none_or(|previous| previous.trigger != self.trigger);
    }

    pub fn starts_reconcile(&self) -> bool {
        self.starts_reconcile
    }

    /// Its integration's resync slot; `None` for an object that does not match the schema,
    /// which waits for a change instead.
    pub fn resync_phase(&self) -> Option<u64> {
        self.body.is_ok().then_some(self.resync_phase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::FINALIZER;

    fn assert_same(decoded: &IntegrationResponse, expected: &IntegrationResponse) {
        assert_eq!(decoded.metadata, expected.metadata);
        assert_eq!(decoded.spec, expected.spec);
        assert_eq!(decoded.status, expected.status);
    }

    fn from_json(value: serde_json::Value) -> CachedObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn decoding_gives_back_the_object_as_stored_without_managed_fields_and_other_annotations() {
        let full = serde_json::json!({
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
            "kind": "IntegrationResponse",
            "metadata": {
                "name": "a", "namespace": "ns", "uid": "u-1", "generation": 3, "resourceVersion": "7",
                "creationTimestamp": "2026-11-29T00:00:00Z", "deletionTimestamp": "2026-11-29T01:00:00Z",
                "finalizers": [FINALIZER], "labels": {"team": "x"},
                "annotations": {ADOPT_ANNOTATION: "true", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {
                "region": "eu-west-1", "apiId": "api", "integrationId": "int", "integrationResponseKey": "/4\\d\\d/",
                "contentHandlingStrategy": "CONVERT_TO_TEXT", "templateSelectionExpression": "$x",
                "responseTemplates": {"application/json": "{}", "text/plain": "é"},
                "responseParameters": {"method.response.header.X": "'1'"},
                "deletionPolicy": "Retain", "managementPolicy": "Observe",
            },
            "status": {
                "integrationResponseId": "r1", "region": "eu-west-1", "apiId": "api", "integrationId": "int",
                "pendingCreate": {"key": "/4\\d\\d/", "holder": "pod-1", "since": "2026-11-29T00:00:00Z"},
                "pendingCreateKey": "/5\\d\\d/", "observedOnly": true,
                "differences": [{"field": "responseTemplates[text/plain]", "spec": "é", "aws": null}, {"field": "x"}],
                "observedGeneration": 2,
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "Differs", "message": "m",
                     "observedGeneration": 2, "lastTransitionTime": "2026-11-29T00:00:00Z"},
                    {"type": "Stalled", "status": "False", "reason": "Differs", "message": "",
                     "observedGeneration": null, "lastTransitionTime": "2026-11-29T00:00:01Z"},
                ],
            },
        });
        let mut expected: IntegrationResponse = serde_json::from_value(full.clone()).unwrap();
        *expected.managed_fields_mut() = Vec::new();
        expected.annotations_mut().retain(|key, _| key == ADOPT_ANNOTATION);
        let cached = from_json(full);
        assert_same(&cached.decode().unwrap(), &expected);
        assert_eq!(cached.key(), "ns/a");

        let mut bare = serde_json::json!({
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
            "kind": "IntegrationResponse",
            "metadata": {"name": "b", "namespace": "ns"},
            "spec": {"apiId": "api", "integrationId": "int", "integrationResponseKey": "$default"},
        });
        let mut expected: IntegrationResponse = serde_json::from_value(bare.clone()).unwrap();
        *expected.managed_fields_mut() = Vec::new();
        expected.annotations_mut();
        assert_same(&from_json(bare.clone()).decode().unwrap(), &expected);
        bare["status"] = serde_json::json!({});
        let decoded = from_json(bare).decode().unwrap();
        assert_eq!(decoded.status, Some(IntegrationResponseStatus::default()));
    }

    #[test]
    fn an_object_that_does_not_match_the_schema_keeps_its_metadata_and_the_error() {
        let cached = from_json(serde_json::json!({
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
            "kind": "IntegrationResponse",
            "metadata": {"name": "bad", "namespace": "ns", "uid": "u-2"},
            "spec": {"apiId": 7},
        }));
        assert_eq!(cached.name_any(), "bad");
        assert_eq!(cached.uid().as_deref(), Some("u-2"));
        assert!(cached.decode().is_err());
    }
}
